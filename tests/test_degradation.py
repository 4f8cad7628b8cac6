"""The degradation sweep on real Fashion-MNIST at tiny settings: report, findings, resume."""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from resnetlab.experiments.degradation import (
    DegradationConfig,
    findings,
    noise_margin,
    resolve,
    run_sweep,
)

TINY = dict(
    depths=[8, 14], epochs=1, train_subset=256, test_subset=200, batch_size=64, progress="none"
)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("deg")
    logs: list[str] = []
    results = run_sweep(DegradationConfig(out=str(out), **TINY), log=logs.append)
    return out, results, logs


def test_sweep_writes_report_with_one_row_per_model(sweep):
    out, results, logs = sweep
    for name in ("report.html", "report.md", "degradation.png", "results.json", "sweep.json"):
        assert (out / name).stat().st_size > 0, name
    md = (out / "report.md").read_text()
    rows = [line for line in md.splitlines() if re.match(r"\| (plain|resnet)-\d+ ", line)]
    assert [r.split("|")[1].strip() for r in rows] == [
        "plain-8",
        "resnet-8",
        "plain-14",
        "resnet-14",
    ]
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "<table>" in html
    assert len(logs) == 4 and all("training" in line for line in logs)
    png = (out / "degradation.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_findings_match_the_numbers(sweep):
    out, results, _ = sweep
    by = {(r["kind"], r["depth"]): r for r in results["runs"]}
    texts = [f["text"] for f in findings(results)]
    for kind, label in (("plain", "plain"), ("resnet", "resnet")):
        gap = by[(kind, 14)]["train_err"] - by[(kind, 8)]["train_err"]
        (text,) = [t for t in texts if t.startswith(f"{label}-14 ends")]
        if round(abs(gap), 1):
            m = re.search(r"ends ([\d.]+) points (above|below)", text)
            assert float(m.group(1)) == pytest.approx(abs(gap), abs=0.051)
            assert m.group(2) == ("above" if gap > 0 else "below")
        margin = noise_margin(by[(kind, 8)]["train_err"], by[(kind, 14)]["train_err"], 256)
        verdict = "present" if gap > margin else "absent" if gap >= -margin else "no degradation"
        assert verdict in text
        nums = re.search(r"\(([\d.]+) % vs ([\d.]+) %\)", text)
        assert float(nums.group(1)) == pytest.approx(by[(kind, 14)]["train_err"], abs=0.051)
    for depth in (8, 14):
        (text,) = [t for t in texts if t.startswith(f"At depth {depth} ")]
        assert f"({by[('resnet', depth)]['params']:,} vs" in text
        assert "the same number of parameters" in text  # option A: identical counts
    saved = json.loads((out / "results.json").read_text())
    assert [f["text"] for f in saved["findings"]] == texts


def test_rerun_skips_finished_runs(sweep):
    out, _, _ = sweep
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/result.json")}
    logs: list[str] = []
    run_sweep(DegradationConfig(out=str(out), **TINY), log=logs.append)
    assert len(logs) == 4 and all("finished earlier, skipped" in line for line in logs)
    assert stamps == {p: p.stat().st_mtime_ns for p in out.glob("runs/*/result.json")}


def test_other_settings_in_the_same_folder_are_refused(sweep):
    out, _, _ = sweep
    with pytest.raises(ValueError, match="holds a sweep with other settings.*epochs 1 -> 2"):
        run_sweep(DegradationConfig(out=str(out), **{**TINY, "epochs": 2}))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"depths": [20, 21]}, "depth 21 is not a CIFAR-style depth 6n\\+2"),
        ({"preset": "huge"}, "unknown preset"),
        ({"preset": "imagenet"}, "needs --data folder:PATH"),
        ({"seeds": 0}, "--seeds must be >= 1"),
        ({"shortcut": "none"}, "--shortcut must be A, B or C"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        resolve(DegradationConfig(**kwargs))


def test_noise_margin_is_two_standard_errors():
    # 30 % vs 30 % on 3,000 images: 2 * sqrt(2 * 0.21 / 3000) = 2.37 points
    assert noise_margin(30, 30, 3000) == pytest.approx(2.366, abs=1e-3)
    assert noise_margin(0, 0, 10) == 0.5  # never below the fixed margin


def test_paper_preset_is_the_papers_recipe():
    r = resolve(DegradationConfig(preset="paper"))
    assert (r.data, r.steps, r.milestones, r.lr, r.batch_size, r.weight_decay) == (
        "cifar10",
        64000,
        [32000, 48000],
        0.1,
        128,
        1e-4,
    )
    assert r.depths == [20, 32, 44, 56, 110] and r.shortcut == "A" and r.val_split == 5000


def test_killed_sweep_resumes(tmp_path):
    """SIGKILL the CLI mid-sweep; rerunning the same command resumes instead of restarting."""
    out = tmp_path / "sweep"
    cmd = [
        sys.executable, "-m", "resnetlab.cli.main", "degradation", "--depths", "8", "14",
        "--epochs", "2", "--train-subset", "256", "--test-subset", "100", "--batch-size", "64",
        "--progress", "none", "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    target = out / "runs" / "resnet8-seed0" / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert target.exists(), proc.communicate()[0] if proc.poll() is not None else "timeout"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    had_checkpoint = {p.parent.parent.name for p in out.glob("runs/*/checkpoints/last.pt")}
    done_before = {p.parent.name for p in out.glob("runs/*/result.json")}
    assert "plain8-seed0" in done_before  # models run in order: plain8 then resnet8
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    for name in had_checkpoint:
        line = next(x for x in rerun.stdout.splitlines() if f"] {name}:" in x)
        assert ("skipped" in line) if name in done_before else ("resuming" in line), line
    assert len(list(out.glob("runs/*/result.json"))) == 4
    assert (out / "report.html").is_file()


def test_imagenet_preset_on_an_image_folder(tmp_path):
    """plain-18 vs ResNet-18 (option B) on a tiny ImageNet-layout folder of generated images."""
    from PIL import Image

    rng = __import__("numpy").random.default_rng(0)
    for split, n in (("train", 8), ("val", 4)):
        for cls in ("cat", "dog"):
            folder = tmp_path / "imgs" / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (40, 40, 3), dtype="uint8")
                Image.fromarray(pixels).save(folder / f"{i}.png")
    out = tmp_path / "sweep"
    cfg = DegradationConfig(
        preset="imagenet", data=f"folder:{tmp_path / 'imgs'}", depths=[18], epochs=1,
        batch_size=8, progress="none", out=str(out),
    )  # fmt: skip
    recipe = resolve(cfg)
    assert recipe.image_size == 224 and recipe.shortcut == "B"
    results = run_sweep(dataclasses.replace(cfg, image_size=32), log=lambda _: None)
    assert {(r["kind"], r["depth"]) for r in results["runs"]} == {("plain", 18), ("resnet", 18)}
    assert "paper err %" in (out / "report.md").read_text()
