"""Exact resume after SIGKILL, clean stop on SIGTERM: the real console script in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from resnetlab.cli.main import main

FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
pytestmark = pytest.mark.skipif(not FMNIST.exists(), reason="needs Fashion-MNIST: make data")

# A tiny ResNet with batch norm, channels_last, crop + flip augmentation and momentum SGD:
# every piece of state a resume must restore. 256 images / batch 32 = 8 steps per epoch.
ARGS = [
    "resnet",
    "--model-kw", "layers=[1, 1]",
    "--model-kw", "widths=[4, 8]",
    "--model-kw", "stem=cifar",
    "--model-kw", "shortcut=A",
    "--data", "fashion-mnist",
    "--train-subset", "256",
    "--test-subset", "64",
    "--batch-size", "32",
    "--epochs", "3",
    "--lr", "0.05",
    "--schedule", "onecycle",
    "--label-smoothing", "0.1",
    "--seed", "3",
    "--threads", "1",
    "--checkpoint-every", "3",
    "--log-every", "1",
    "--progress", "log",
]  # fmt: skip


def _console_script() -> list[str]:
    script = Path(sys.executable).parent / "resnetlab"
    return [str(script)] if script.exists() else [sys.executable, "-m", "resnetlab.cli.main"]


def _start(out: Path, extra: list[str] = ()) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [*_console_script(), "train", *ARGS, "--out", str(out), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.time()
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"training exited early ({proc.returncode}): {proc.stderr.read()}")
        if time.time() - t0 > timeout:
            proc.kill()
            raise AssertionError("no checkpoint appeared")
        time.sleep(0.002)


def _tb_steps(run: Path, tag: str) -> list[int]:
    """Steps TensorBoard shows for `tag`, with the purge of a resumed run applied."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


def _weights(run: Path) -> dict:
    return load_file(str(run / "checkpoints" / "last.safetensors"))


def test_sigkill_then_resume_is_bitwise_identical(tmp_path):
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    assert main(["train", *ARGS, "--out", str(ref)]) == 0

    proc = _start(killed)
    _wait_for(killed / "checkpoints" / "last.pt", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "result.json").exists(), "the run finished before it could be killed"

    assert main(["train", "--resume", str(killed), "--threads", "1", "--progress", "none"]) == 0
    a, b = _weights(ref), _weights(killed)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype
        assert a[key].shape == b[key].shape, key
        assert a[key].numpy().tobytes() == b[key].numpy().tobytes(), key  # bit for bit
    ref_result = json.loads((ref / "result.json").read_text())
    res_result = json.loads((killed / "result.json").read_text())
    for col in ("train_loss", "train_err", "test_top1_err", "test_loss", "lr", "step"):
        assert ref_result["final"][col] == res_result["final"][col], col
    # metrics.csv and steps.csv hold each epoch/step exactly once after the resume
    epochs = [line.split(",")[0] for line in (killed / "metrics.csv").read_text().splitlines()[1:]]
    assert epochs == ["1", "2", "3"]
    steps = [
        int(line.split(",")[0]) for line in (killed / "steps.csv").read_text().splitlines()[1:]
    ]
    assert steps == list(range(1, 25))
    # TensorBoard too: the resumed writer purges what the killed process logged after its checkpoint
    assert len(list((killed / "tb").glob("events.out.tfevents.*"))) == 2
    assert _tb_steps(killed, "step/loss") == list(range(1, 25))
    assert _tb_steps(killed, "epoch/test_top1_err") == [8, 16, 24]


def test_sigterm_saves_and_exits_cleanly(tmp_path):
    run = tmp_path / "run"
    proc = _start(run, ["--checkpoint-every", "0", "--epochs", "40"])
    _wait_for(run / "steps.csv", proc)
    # steps.csv is created before the first step: wait for a couple of rows
    t0 = time.time()
    while len((run / "steps.csv").read_text().splitlines()) < 3 and time.time() - t0 < 60:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "resume with" in err and "Traceback" not in err
    state_file = run / "checkpoints" / "last.pt"
    assert state_file.exists()
    from resnetlab.train import load_state

    state = load_state(state_file)
    assert 1 <= state["step"] < 40 * 8
    assert not (run / "result.json").exists()
