"""Fine-tuning strategies through the training engine, and the transfer comparison."""

from __future__ import annotations

import base64
import json

import pytest
import torch

from resnetlab.cli.main import main
from resnetlab.models import ResNet
from resnetlab.train import TrainConfig, train
from resnetlab.train.optim import build_optimizer, set_lr
from resnetlab.transfer import Finetuner, images_to_reach, model_parts, summarize
from resnetlab.transfer.comparison import error_at

TINY = {
    "block": "basic",
    "layers": [1, 1, 1],
    "widths": [4, 8, 8],
    "stem": "cifar",
    "shortcut": "A",
}


def _cfg(out, **kw) -> TrainConfig:
    base = dict(
        model="resnet", model_kwargs=TINY, data="digits", image_size=8, train_subset=64,
        test_subset=32, epochs=2, batch_size=16, lr=0.2, precision="fp32", progress="none",
        out=str(out),
    )  # fmt: skip
    base.update(kw)
    return TrainConfig.from_flat(**base)


def _tiny_model() -> ResNet:
    return ResNet(
        "basic", (1, 1, 1), widths=(4, 8, 8), stem="cifar", shortcut="A", in_chans=1, num_classes=10
    )


def _snapshot(out):
    from resnetlab.train.checkpoint import load_weights

    return load_weights(out / "checkpoints" / "last.safetensors")[0]


def _initial_state(cfg: TrainConfig) -> dict[str, torch.Tensor]:
    """The weights the engine starts from (it seeds with run.seed before building)."""
    from resnetlab.train.engine import build_model

    torch.manual_seed(cfg.run.seed)
    m = build_model(cfg.model, in_chans=1, num_classes=10, image_size=(8, 8))
    return {k: v.clone() for k, v in m.state_dict().items()}


def test_parts_of_a_resnet():
    parts = model_parts(_tiny_model())
    assert [p for p, _ in parts] == ["stem", "layer1", "layer2", "layer3", "head"]
    assert parts[0][1] == ["conv1", "bn1", "relu", "maxpool"]
    assert "final_norm" in parts[3][1] and parts[-1][1] == ["fc"]


def test_linear_probe_leaves_backbone_bit_identical(tmp_path):
    cfg = _cfg(tmp_path / "probe", freeze="linear")
    start = _initial_state(cfg)
    train(cfg)
    end = _snapshot(tmp_path / "probe")
    backbone = [k for k in start if not k.startswith("fc.")]
    # weights and BatchNorm running statistics (BN stays in eval mode when frozen)
    assert all(torch.equal(start[k], end[k]) for k in backbone)
    assert not torch.equal(start["fc.weight"], end["fc.weight"])


def test_gradual_unfreezing_by_stage(tmp_path):
    cfg = _cfg(tmp_path / "gradual", freeze="gradual", unfreeze_every=1)  # 2 epochs
    start = _initial_state(cfg)
    train(cfg)
    end = _snapshot(tmp_path / "gradual")

    def same(prefix):
        return all(torch.equal(start[k], end[k]) for k in start if k.startswith(prefix))

    # epoch 1: head; epoch 2: head + layer3; stem, layer1, layer2 never train
    assert same("conv1") and same("bn1") and same("layer1") and same("layer2")
    assert not same("layer3") and not same("fc")
    f = Finetuner(_tiny_model(), "gradual", unfreeze_every=2)
    assert [f.trainable_parts(e) for e in (0, 1, 2, 9)] == [[4], [4], [3, 4], [0, 1, 2, 3, 4]]


def test_backbone_lr_scale_reaches_the_optimizer(tmp_path):
    model = _tiny_model()
    cfg = _cfg(tmp_path, backbone_lr_scale=0.1).optim
    f = Finetuner(model, "none", backbone_lr_scale=0.1)
    opt = build_optimizer(model, cfg, groups=f.param_groups(cfg.weight_decay, False))
    set_lr(opt, 0.5)
    head = {id(p) for p in model.fc.parameters()}
    for g in opt.param_groups:
        is_head = all(id(p) in head for p in g["params"])
        assert g["lr"] == pytest.approx(0.5 if is_head else 0.05)
    assert opt.param_groups[0]["lr"] == 0.5  # head first: the logged lr is the head's
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    # through the engine: a zero backbone lr leaves every backbone weight where it started
    cfg0 = _cfg(tmp_path / "zero", backbone_lr_scale=0.0, weight_decay=0.0)
    start = _initial_state(cfg0)
    train(cfg0)
    end = _snapshot(tmp_path / "zero")
    params = [n for n, _ in _tiny_model().named_parameters() if not n.startswith("fc.")]
    assert all(torch.equal(start[k], end[k]) for k in params)
    assert not torch.equal(start["fc.weight"], end["fc.weight"])


def test_bad_finetune_settings_are_value_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown freeze mode 'probe'"):
        _cfg(tmp_path, freeze="probe").validate()
    with pytest.raises(ValueError, match="backbone_lr_scale"):
        _cfg(tmp_path, backbone_lr_scale=-1.0).validate()


def test_train_cli_weights_and_freeze(tmp_path):
    src = tmp_path / "src"
    train(_cfg(src, epochs=1))
    out = tmp_path / "ft"
    code = main(
        ["train", "resnet", "--data", "digits", "--config", str(src / "config.json"),
         "--weights", str(src / "checkpoints" / "last.safetensors"), "--freeze", "linear",
         "--backbone-lr-scale", "0.5", "--epochs", "1", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"]["weights"].endswith("last.safetensors")
    assert saved["optim"]["freeze"] == "linear" and saved["optim"]["backbone_lr_scale"] == 0.5
    first, trained = _snapshot(src), _snapshot(out)
    assert torch.equal(first["layer2.0.conv1.weight"], trained["layer2.0.conv1.weight"])


def test_curve_arithmetic():
    images, errs = [0, 100, 200, 300], [90.0, 40.0, 20.0, 10.0]
    assert images_to_reach(images, errs, 30.0) == pytest.approx(150.0)
    assert images_to_reach(images, errs, 5.0) is None
    assert error_at(images, errs, 250) == 20.0
    ft = [{"images": [0, 100, 200], "test_err": e} for e in ([90, 20, 10], [90, 30, 12])]
    sc = [{"images": [0, 100, 200], "test_err": e} for e in ([90, 60, 30], [90, 70, 34])]
    s = summarize(ft, sc, budgets=[0.5, 1.0])
    assert s["target_err"] == pytest.approx(32.0)  # scratch's final mean error
    assert s["images_to_target"]["scratch"] == pytest.approx(200.0)
    assert s["images_to_target"]["finetune"] == pytest.approx(100 * 58 / 65)
    assert s["speedup"] == pytest.approx(200 / (100 * 58 / 65))
    assert s["at_budgets"][0] == {
        "fraction": 0.5, "images": 100, "finetune_err": 25.0, "scratch_err": 65.0
    }  # fmt: skip


def test_transfer_command_writes_its_report(tmp_path, capsys):
    out = tmp_path / "transfer"
    code = main(
        ["transfer", "--out", str(out), "--pretrain-subset", "256", "--pretrain-epochs", "1",
         "--pretrain-test-subset", "64", "--data", "digits", "--train-subset", "64",
         "--test-subset", "64", "--image-size", "8", "--epochs", "2", "--batch-size", "32",
         "--seeds", "0", "--precision", "fp32", "--progress", "none"]
    )  # fmt: skip
    assert code == 0
    assert "speed-up" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    s = results["targets"]["digits"]["summary"]
    assert s["finetune"]["images"] == [0, 64, 128] == s["scratch"]["images"]
    runs = results["targets"]["digits"]["runs"]
    assert runs["finetune"][0]["load_report"].startswith("loaded")
    assert results["pretrain"]["train_images"] == 256
    html = (out / "report.html").read_text()
    png = (out / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (
        base64.b64encode(png).decode() in html
        and "src='http" not in html
        and 'src="http' not in html
    )
    md = (out / "report.md").read_text()
    assert f"{s['finetune']['mean'][-1]:.1f} %" in md
