"""The training engine: learning on real data, NaN handling, checkpoints, configs, schedules, CLI."""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from resnetlab.cli.main import main
from resnetlab.models import ResNet
from resnetlab.train import (
    NonFiniteLossError,
    OptimConfig,
    TrainConfig,
    evaluate,
    load_state,
    lr_at,
    train,
)

FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
needs_fmnist = pytest.mark.skipif(not FMNIST.exists(), reason="needs Fashion-MNIST: make data")

TINY_MLP = {"model": "skip_mlp", "model_kwargs": {"width": 32, "depth": 2}}


def _cfg(out, **kw) -> TrainConfig:
    base = {
        **TINY_MLP,
        "data": "digits",
        "epochs": 2,
        "batch_size": 64,
        "optimizer": "adamw",
        "lr": 3e-3,
        "weight_decay": 0.0,
        "progress": "none",
        "out": str(out),
    }
    base.update(kw)
    return TrainConfig.from_flat(**base)


@needs_fmnist
def test_small_resnet_learns_fashion_mnist(tmp_path):
    # An 8-layer option-A ResNet, 2000 real images, 2 epochs: a broken pipeline (shuffled labels,
    # wrong normalisation, no optimiser step) stays near chance (90 % error).
    model = ResNet(
        "basic",
        (1, 1, 1),
        widths=(8, 16, 32),
        stem="cifar",
        shortcut="A",
        in_chans=1,
        num_classes=10,
    )
    cfg = TrainConfig.from_flat(
        data="fashion-mnist",
        train_subset=2000,
        test_subset=500,
        epochs=2,
        batch_size=64,
        lr=0.1,
        schedule="onecycle",
        progress="none",
        out=str(tmp_path / "run"),
    )
    result = train(cfg, model=model)
    assert result.final["test_top1_err"] < 55.0
    assert result.history[1]["train_loss"] < result.history[0]["train_loss"]
    assert result.final["test_top5_err"] < result.final["test_top1_err"]
    run = result.run_dir
    saved = json.loads((run / "config.json").read_text())
    assert saved["meta"]["resnetlab_version"] and "git_sha" in saved["meta"]
    assert saved["data"]["crop_padding"] == 2 and saved["run"]["precision"] in ("fp32", "bf16")
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[-1]["test_top1_err"]) == pytest.approx(
        result.final["test_top1_err"], rel=1e-5
    )
    for name in ("last.pt", "last.safetensors", "best.safetensors"):
        assert (run / "checkpoints" / name).is_file()


def test_history_and_finished_run_returns_at_once(tmp_path):
    result = train(_cfg(tmp_path / "run", log_every=5))
    assert len(result.history) == 2
    for key in (
        "train_loss",
        "train_err",
        "test_top1_err",
        "test_top5_err",
        "lr",
        "img_per_s",
        "wall_time_s",
    ):
        assert math.isfinite(result.history[-1][key]), key
    assert result.final["steps"] == 2 * (1438 // 64)
    weights = (result.run_dir / "checkpoints" / "last.safetensors").read_bytes()
    t0 = time.perf_counter()
    again = train(_cfg(tmp_path / "other", resume=str(result.run_dir)))
    assert time.perf_counter() - t0 < 2.0
    assert again.final == result.final and again.run_dir == result.run_dir
    assert (result.run_dir / "checkpoints" / "last.safetensors").read_bytes() == weights
    # resume="auto": continue `out` if it holds a run, start fresh otherwise
    assert train(_cfg(result.run_dir, resume="auto")).final == result.final
    fresh = train(_cfg(tmp_path / "fresh", resume="auto", epochs=1))
    assert len(fresh.history) == 1
    steps = list(csv.DictReader(open(result.run_dir / "steps.csv")))
    assert [int(r["step"]) for r in steps] == list(range(5, result.final["steps"] + 1, 5))


def test_tensorboard_events_match_the_csv_logs(tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = train(_cfg(tmp_path / "run", log_every=5, progress="log"))
    run = result.run_dir
    assert f"TensorBoard events in {run / 'tb'}" in capsys.readouterr().out
    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"epoch/train_loss", "epoch/test_top1_err", "epoch/lr", "step/loss", "step/lr"} <= tags
    per_epoch = result.final["steps"] // 2
    events = acc.Scalars("epoch/test_top1_err")
    assert [e.step for e in events] == [per_epoch, 2 * per_epoch]  # logged at the global step
    for event, row in zip(events, result.history):
        assert event.value == pytest.approx(row["test_top1_err"], rel=1e-6)
    rows = list(csv.DictReader(open(run / "steps.csv")))
    losses = acc.Scalars("step/loss")
    assert [e.step for e in losses] == [int(r["step"]) for r in rows]
    assert [e.value for e in losses] == pytest.approx([float(r["loss"]) for r in rows], rel=1e-5)


def test_without_tensorboard_training_goes_on(tmp_path, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    result = train(_cfg(tmp_path / "run", epochs=1, progress="log"))
    assert "pip install tensorboard" in capsys.readouterr().out
    assert not (result.run_dir / "tb").exists()
    assert (result.run_dir / "metrics.csv").is_file()


def test_existing_run_is_not_overwritten(tmp_path):
    train(_cfg(tmp_path / "run", epochs=1))
    with pytest.raises(ValueError, match="already holds a run"):
        train(_cfg(tmp_path / "run", epochs=1))


class _NaNAfter(nn.Module):
    """A tiny net whose output turns NaN on its `bad_call`-th training forward."""

    def __init__(self, bad_call: int):
        super().__init__()
        self.fc = nn.Linear(32 * 32, 10)
        self.calls, self.bad_call = 0, bad_call

    def forward(self, x):
        out = self.fc(x.flatten(1))
        if self.training:
            self.calls += 1
            if self.calls >= self.bad_call:
                out = out * float("nan")
        return out


def test_nan_stops_without_nan_checkpoint(tmp_path):
    cfg = _cfg(tmp_path / "run", checkpoint_every=5)
    with pytest.raises(NonFiniteLossError, match="step 13 .*epoch 1.*last good checkpoint"):
        train(cfg, model=_NaNAfter(bad_call=13))
    state = load_state(tmp_path / "run" / "checkpoints" / "last.pt")
    assert state["step"] == 10
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert not (tmp_path / "run" / "result.json").exists()


def test_nan_via_cli_exits_nonzero(tmp_path, capsys):
    # lr 1e30 makes the loss overflow within a few steps
    code = main(["train", "skip_mlp", "--model-kw", "width=16", "--model-kw", "depth=2", "--data", "digits", "--lr", "1e30", "--schedule", "constant", "--momentum", "0.9", "--weight-decay", "0", "--epochs", "2", "--progress", "none", "--out", str(tmp_path / "run")])  # fmt: skip
    assert code == 3
    err = capsys.readouterr().err
    assert "loss became" in err and "step" in err and "Traceback" not in err


def test_truncated_checkpoint_names_the_file(tmp_path):
    result = train(_cfg(tmp_path / "run", epochs=1))
    (result.run_dir / "result.json").unlink()  # pretend it did not finish
    state = result.run_dir / "checkpoints" / "last.pt"
    state.write_bytes(state.read_bytes()[:200])
    with pytest.raises(ValueError, match="last.pt.*truncated or corrupt"):
        train(_cfg(tmp_path / "x", resume=str(result.run_dir)))
    weights = result.run_dir / "checkpoints" / "last.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert main(["eval", str(result.run_dir)]) == 2  # ValueError -> one clean line


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"lr": -0.1}, "lr must be a positive number"),
        ({"schedule": "exp"}, "unknown schedule 'exp'"),
        ({"optimizer": "lbfgs"}, "unknown optimizer"),
        ({"epochs": 0}, "epochs must be"),
        ({"label_smoothing": 1.5}, "label_smoothing"),
        ({"precision": "fp8"}, "unknown precision"),
    ],
)
def test_invalid_config_rejected(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        train(_cfg(tmp_path / "run", **kw))
    assert not (tmp_path / "run").exists()  # rejected before anything is written


def test_unknown_config_keys_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown config key 'epoch'"):
        TrainConfig.from_flat(epoch=3)
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 0.1\n  warmup_stepz: 3\n")
    with pytest.raises(ValueError, match="warmup_stepz"):
        TrainConfig.load(path)


def test_schedules():
    total, spe = 1000, 100
    step = OptimConfig(
        lr=0.1, schedule="step", milestones=[5, 8], milestone_unit="epoch", gamma=0.1
    )
    assert lr_at(499, step, total, spe) == pytest.approx(0.1)
    assert lr_at(500, step, total, spe) == pytest.approx(0.01)
    assert lr_at(800, step, total, spe) == pytest.approx(0.001)
    # He et al. 2015 ResNet-110: lr 0.01 for the first 400 iterations, then 0.1
    warm = OptimConfig(
        lr=0.1,
        schedule="step",
        milestones=[32000, 48000],
        milestone_unit="step",
        warmup_steps=400,
        warmup="constant",
    )
    assert lr_at(0, warm, 64000, 391) == pytest.approx(0.01)
    assert lr_at(400, warm, 64000, 391) == pytest.approx(0.1)
    assert lr_at(48000, warm, 64000, 391) == pytest.approx(0.001)
    cos = OptimConfig(lr=0.2, schedule="cosine")
    assert lr_at(0, cos, total, spe) == pytest.approx(0.2) and lr_at(
        500, cos, total, spe
    ) == pytest.approx(0.1)
    one = OptimConfig(lr=0.2, schedule="onecycle", pct_start=0.25)
    values = [lr_at(s, one, total, spe) for s in range(total)]
    assert (
        max(values) == pytest.approx(0.2) and values.index(max(values)) == 250 and values[-1] < 1e-3
    )


def test_iteration_budget_and_no_decay_groups(tmp_path):
    result = train(_cfg(tmp_path / "run", steps=30, epochs=1))
    assert result.final["steps"] == 30 and len(result.history) == 2  # 22 + 8 steps
    from resnetlab.train import build_optimizer

    model = ResNet("basic", (1,), widths=(4,), stem="cifar", in_chans=1, num_classes=3)
    opt = build_optimizer(model, OptimConfig(weight_decay=1e-4))
    decays = [g["weight_decay"] for g in opt.param_groups]
    assert decays == [1e-4, 0.0]
    assert all(p.ndim <= 1 for p in opt.param_groups[1]["params"])


def test_evaluate_top1_top5():
    class Fixed(nn.Module):
        def forward(self, x):
            return x  # logits are the inputs

    logits = torch.tensor([[5.0, 4, 3, 2, 1, 0], [0, 1, 2, 3, 4, 5], [0, 5, 4, 3, 2, 1]])
    labels = torch.tensor([0, 1, 0])
    model = Fixed()
    model.register_parameter("p", nn.Parameter(torch.zeros(1)))
    m = evaluate(model, [(logits, labels)])
    assert m["n"] == 3
    assert m["top1_err"] == pytest.approx(100 * 2 / 3)  # only sample 0 is right
    assert m["top5_err"] == pytest.approx(100 / 3)  # label 0 of sample 2 is ranked 6th


def test_cli_train_and_eval(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("model: skip_mlp\noptim:\n  epochs: 5\n  lr: 0.003\n  optimizer: adamw\n")
    out = tmp_path / "run"
    code = main(["train", "--config", str(cfg), "--model-kw", "width=32", "--model-kw", "depth=2", "--data", "digits", "--epochs", "1", "--progress", "none", "--out", str(out)])  # fmt: skip
    assert code == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["optim"]["epochs"] == 1 and saved["optim"]["lr"] == 0.003  # flag beats file
    assert "test top-1 error" in capsys.readouterr().out
    assert main(["eval", str(out), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    hist = json.loads((out / "result.json").read_text())["final"]
    assert m["n"] == 359 and m["top1_err"] == pytest.approx(hist["test_top1_err"], abs=1e-6)
    assert main(["eval", str(out / "checkpoints" / "best.safetensors"), "--tta"]) == 0
    assert "flip TTA" in capsys.readouterr().out
    assert main(["train", "--data", "digits"]) == 2
    assert "name a MODEL" in capsys.readouterr().err


def test_folder_dataset_trains_through_dataloader(tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "imgs"
    for split, n in (("train", 16), ("test", 4)):
        for c, value in (("dark", 40), ("light", 210)):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                arr = np.clip(rng.normal(value, 20, (16, 16)), 0, 255).astype(np.uint8)
                Image.fromarray(arr).save(root / split / c / f"{i}.png")
    cfg = _cfg(
        tmp_path / "run", data=f"folder:{root}", epochs=3, batch_size=8, num_workers=0, lr=0.01
    )
    result = train(cfg)
    assert result.final["test_top1_err"] <= 25.0  # dark vs light is easy


def test_precision_and_model_choices(tmp_path):
    from resnetlab.train import resolve_precision
    from resnetlab.train.engine import cpu_supports_bf16

    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == ("bf16" if cpu_supports_bf16() else "fp32")
    assert resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(ValueError, match="fp16 autocast is for CUDA"):
        resolve_precision("fp16", cpu)
    with pytest.raises(ValueError, match="needs kwargs"):
        train(_cfg(tmp_path / "a", model="skip_cnn", model_kwargs={}))
    with pytest.raises(ValueError, match="unknown model"):
        train(_cfg(tmp_path / "b", model="resnet21", model_kwargs={}))
    with pytest.raises(ValueError, match="set from the data set"):
        train(_cfg(tmp_path / "c", model="resnet20", model_kwargs={"num_classes": 3}))
    assert not any(tmp_path.iterdir())  # nothing written for a bad model


def test_compile_trains_like_eager_and_saves_plain_keys(tmp_path):
    # --compile wraps the model in torch.compile for the steps only: the same weights as eager
    # (up to fused-kernel rounding), and checkpoints keep the module's own key names.
    from safetensors.torch import load_file

    kw = {
        "model": "resnet",
        "model_kwargs": {"layers": [1], "widths": [4], "stem": "cifar", "shortcut": "A"},
        "optimizer": "sgd",
        "lr": 0.05,
        "epochs": 1,
        "train_subset": 256,
        "batch_size": 64,
        "precision": "fp32",
        "seed": 1,
    }
    eager = train(_cfg(tmp_path / "eager", **kw))
    compiled = train(_cfg(tmp_path / "compiled", compile=True, **kw))
    a = load_file(str(eager.run_dir / "checkpoints" / "last.safetensors"))
    b = load_file(str(compiled.run_dir / "checkpoints" / "last.safetensors"))
    assert a.keys() == b.keys() and not any("_orig_mod" in k for k in b)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-3, atol=1e-4, msg=key)
    assert math.isfinite(compiled.final["train_loss"])
