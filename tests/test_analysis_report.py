"""`resnetlab gradients` on tiny settings: files written, findings agree with the plotted data."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from resnetlab.analysis.chain import fit_decay_rate
from resnetlab.analysis.report import (
    GradientReportConfig,
    compute_findings,
    fmt_ratio,
    parse_variant,
)
from resnetlab.cli.main import main

TINY = [
    "--quick",
    "--chain-depth", "12",
    "--depths", "2,3,5",
    "--variants", "plain,identity,fixed",
    "--width", "8",
    "--cnn-width", "3",
    "--models", "plain20,resnet20",
    "--steps", "3",
]  # fmt: skip


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("gradients")
    assert main(["gradients", *TINY, "--out", str(out)]) == 0
    return out


def test_files_written_and_html_self_contained(report_dir: Path):
    for name in (
        "chain.png",
        "stacks.png",
        "models.png",
        "report.md",
        "report.html",
        "results.json",
    ):
        path = report_dir / name
        assert path.is_file() and path.stat().st_size > 0, name
    for png in ("chain.png", "stacks.png", "models.png"):
        assert (report_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (report_dir / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 3
    # Nothing fetched from elsewhere: no external src/href, no links to the PNG files.
    assert not re.search(r"""(src|href)=['"](?!data:)""", page)
    md = (report_dir / "report.md").read_text()
    for png in ("chain.png", "stacks.png", "models.png"):
        assert f"]({png})" in md
    assert not list(report_dir.glob(".*.tmp"))  # atomic writes leave no temp files


def test_findings_are_computed_from_the_plotted_numbers(report_dir: Path):
    results = json.loads((report_dir / "results.json").read_text())
    findings = compute_findings(results)
    md = (report_dir / "report.md").read_text()
    for lines in findings.values():
        for line in lines:
            assert f"- {line}" in md
    # Part 1: the decay rate quoted is the fit of the plotted plain gradients.
    chain = results["chain"]
    for act, r in chain["activations"].items():
        fit = fit_decay_rate(chain["depths"], r["plain"])
        line = next(f for f in findings["chain"] if f.startswith(act + ":"))
        assert f"factor {fit.rate:.3f} per layer" in line
        assert abs(r["skip"][-1] - r["skip_limit"][-1]) < abs(r["skip"][0] - r["skip_limit"][0])
    # Part 2: the first/last ratio quoted is the plotted profile's first over last point.
    for rows in results["stacks"]["kinds"].values():
        for r in rows.values():
            prof = r["profile"]
            assert r["first_over_last"][-1] == pytest.approx(prof[0] / prof[-1])
            assert r["first"][-1] == pytest.approx(prof[0])
            assert any(fmt_ratio(prof[0] / prof[-1]) in f for f in findings["stacks"])
    # Part 3: loss numbers quoted are those plotted.
    for name, r in results["models"]["models"].items():
        line = next(f for f in findings["models"] if f.startswith(name + ":"))
        assert f"{r['loss'][0]:.3f} → {np.mean(r['loss'][-r['tail_steps'] :]):.3f}" in line
        assert len(r["init"]["weight_grad_norms"]) == len(r["init"]["layer_names"])


def test_findings_change_when_the_numbers_change(report_dir: Path):
    results = json.loads((report_dir / "results.json").read_text())
    before = compute_findings(results)["stacks"]
    rows = results["stacks"]["kinds"]["mlp"]
    rows["plain"]["first_over_last"][-1] = 1e-30
    after = compute_findings(results)["stacks"]
    assert after != before
    assert any("10^-30.0" in f for f in after)


def test_variant_parsing_and_config_errors():
    v = parse_variant("projection-s2-Z")
    assert (v.weight, v.span, v.source) == ("projection", 2, "Z")
    assert parse_variant("plain").weight is None
    with pytest.raises(ValueError, match="unknown stack variant"):
        parse_variant("highway")
    with pytest.raises(ValueError, match="activation"):
        GradientReportConfig(activations=("gelu",))
    with pytest.raises(ValueError, match="steps"):
        GradientReportConfig(steps=0)


def test_cli_rejects_unknown_model_in_process(capsys, tmp_path):
    assert main(["gradients", "--quick", "--models", "resnet7", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown model" in err and "Traceback" not in err


def test_console_script_reports_bad_input_cleanly(tmp_path):
    exe = shutil.which("resnetlab")
    if exe is None:  # the venv's script next to the interpreter
        import sys

        exe = str(Path(sys.executable).with_name("resnetlab"))
    proc = subprocess.run(
        [exe, "gradients", "--variants", "identity-s0", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0  # one clean line
    assert "identity-s0" in proc.stderr
