"""Pretrained weights: torchvision enum names through the hub cache, SHA-256 checks, offline
errors, .pth / safetensors files, first-conv adaptation, head replacement, export round-trip."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision

import resnetlab
from resnetlab.cli.main import main
from resnetlab.models import weights as W
from resnetlab.train import TrainConfig, train


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A private torch hub cache; downloads are off so no test touches the network."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    monkeypatch.setenv(W.OFFLINE_ENV, "1")
    return tmp_path / "hub" / "checkpoints"


def _place_torchvision_file(hub_dir: Path, monkeypatch, arch="resnet18", tag="IMAGENET1K_V1"):
    """torchvision's own model (fixed seed) saved under torchvision's naming scheme
    `<arch>-<sha256[:8]>.pth`; the table entry for `tag` is pointed at that name."""
    torch.manual_seed(0)
    tv = getattr(torchvision.models, arch)().eval()
    hub_dir.mkdir(parents=True, exist_ok=True)
    tmp = hub_dir / "tmp.pth"
    torch.save(tv.state_dict(), tmp)
    name = f"{arch}-{W.sha256_file(tmp)[:8]}.pth"
    tmp.rename(hub_dir / name)
    info = W.get_pretrained(arch, tag)
    table = dict(W.pretrained_tags(arch))
    table[tag] = dataclasses.replace(info, url=f"https://download.pytorch.org/models/{name}")
    monkeypatch.setitem(W._TABLE, arch, table)
    return tv, hub_dir / name


def test_metadata_comes_from_torchvision():
    info = W.get_pretrained("resnet50", "DEFAULT")
    assert info.tag == "IMAGENET1K_V2"
    assert info.filename == "resnet50-11ad3fa6.pth" and info.sha256_prefix == "11ad3fa6"
    assert info.metrics["ImageNet-1K"]["acc@1"] == pytest.approx(80.858)
    assert (info.resize_size, info.crop_size) == (232, 224)
    assert len(info.categories) == 1000 and info.categories[0] == "tench"
    assert W.get_pretrained("resnet18", "IMAGENET1K_V1").gflops == pytest.approx(1.814)
    assert "resnet152.IMAGENET1K_V2" in W.list_pretrained()
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        W.get_pretrained("resnet50", "IMAGENET1K_V9")
    with pytest.raises(ValueError, match="no published weights"):
        resnetlab.create_model("resnet20", weights="DEFAULT")


def test_enum_name_loads_torchvision_file_from_hub_cache(hub, monkeypatch):
    tv, _ = _place_torchvision_file(hub, monkeypatch)
    model = resnetlab.create_model("resnet18", weights="IMAGENET1K_V1").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), tv(x))
    cfg = model.pretrained_cfg
    assert cfg["categories"][:2] == ["tench", "goldfish"]
    assert cfg["mean"] == pytest.approx([0.485, 0.456, 0.406]) and cfg["crop_size"] == 224


def test_wrong_hash_is_refused(hub, monkeypatch):
    _, path = _place_torchvision_file(hub, monkeypatch)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # one flipped byte
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="SHA-256 starts with .* promises"):
        resnetlab.create_model("resnet18", weights="IMAGENET1K_V1")


def test_offline_error_names_file_and_folder(hub):
    with pytest.raises(FileNotFoundError) as err:
        resnetlab.create_model("resnet50", weights="IMAGENET1K_V2")
    msg = str(err.value)
    assert "resnet50-11ad3fa6.pth" in msg and str(hub) in msg
    assert "https://download.pytorch.org/models/resnet50-11ad3fa6.pth" in msg


def test_failed_download_says_where_to_put_the_file(hub, monkeypatch):
    monkeypatch.delenv(W.OFFLINE_ENV)

    def no_network(url, dst, hash_prefix=None, progress=True):
        raise OSError("Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(FileNotFoundError, match=r"put resnet18-f37072fd\.pth .*download failed"):
        resnetlab.create_model("resnet18", weights="DEFAULT")


def test_one_channel_adaptation_matches_grey_repeated(hub, monkeypatch):
    tv, _ = _place_torchvision_file(hub, monkeypatch)
    rgb = resnetlab.create_model("resnet18", weights="IMAGENET1K_V1").eval()
    grey = resnetlab.create_model("resnet18", weights="IMAGENET1K_V1", in_chans=1).eval()
    assert "3 to 1 input channels" in grey.pretrained_cfg["load_report"]
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(grey(x), rgb(x.repeat(1, 3, 1, 1)), rtol=1e-4, atol=1e-4)


def test_n_channel_adaptation_repeats_and_scales():
    w = torch.randn(8, 3, 3, 3)
    five = W.adapt_input_conv(w, 5)
    assert five.shape == (8, 5, 3, 3)
    torch.testing.assert_close(five[:, 3:5], w[:, :2] * 3 / 5)
    # with N a multiple of 3, a constant image gives the RGB original's response exactly
    torch.testing.assert_close(W.adapt_input_conv(w, 6).sum(1), w.sum(1))
    torch.testing.assert_close(W.adapt_input_conv(w, 1), w.sum(1, keepdim=True))


def test_head_replacement_reports_skipped_keys(hub, monkeypatch, caplog):
    tv, _ = _place_torchvision_file(hub, monkeypatch)
    with caplog.at_level("WARNING"):
        model = resnetlab.create_model("resnet18", weights="IMAGENET1K_V1", num_classes=10)
    assert model.fc.out_features == 10
    report = model.pretrained_cfg["load_report"]
    assert "not loaded (head replaced): fc.bias, fc.weight" in report
    assert "head fc replaced" in caplog.text
    assert model.pretrained_cfg["categories"] is None
    torch.testing.assert_close(model.layer4[1].conv2.weight, tv.layer4[1].conv2.weight)


def test_pth_state_dict_and_mismatch_report(tmp_path):
    torch.manual_seed(1)
    tv = torchvision.models.resnet18(num_classes=7)
    path = tmp_path / "mine.pth"
    torch.save({"model": tv.state_dict(), "epoch": 3}, path)  # a references-style checkpoint
    model = resnetlab.create_model("resnet18", weights=str(path)).eval()
    assert model.fc.out_features == 7
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), tv.eval()(x))
    with pytest.raises(ValueError) as err:
        resnetlab.create_model("resnet34", weights=str(path))
    msg = str(err.value)
    assert "missing from the file" in msg and "layer1.2.conv1.weight" in msg
    # a file holding code is refused by weights_only loading
    evil = tmp_path / "evil.pth"
    torch.save({"fc.weight": torch.zeros(1), "hook": argparse.Namespace(x=1)}, evil)
    with pytest.raises(ValueError, match="weights_only"):
        resnetlab.create_model("resnet18", weights=str(evil))


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        resnetlab.create_model("resnet20", weights=str(tmp_path / "nope.safetensors"))


def _tiny_run(out: Path) -> Path:
    """resnet20 trained for 2 steps on digits at their native 8 px (fast on 2 cores)."""
    cfg = TrainConfig.from_flat(
        model="resnet20", data="digits", image_size=8, train_subset=64, test_subset=64,
        epochs=1, batch_size=32, precision="fp32", progress="none", out=str(out),
    )  # fmt: skip
    train(cfg)
    return out


def test_export_round_trips_bit_exactly(tmp_path):
    run = _tiny_run(tmp_path / "run")
    out = tmp_path / "digits20.safetensors"
    proc = subprocess.run(
        [sys.executable, "-m", "resnetlab.cli.main", "export", str(run), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "resnet20" in proc.stdout and "digits" in proc.stdout
    from resnetlab.train.checkpoint import load_weights

    original, _ = load_weights(run / "checkpoints" / "best.safetensors")
    model = resnetlab.create_model("resnet20", weights=str(out))
    assert model.conv1.in_channels == 1 and model.fc.out_features == 10
    state = model.state_dict()
    assert set(state) == set(original)
    assert all(torch.equal(state[k], original[k]) for k in original)
    cfg = model.pretrained_cfg
    assert cfg["classes"] == [str(i) for i in range(10)]
    assert cfg["metrics"]["status"] == "finished" and "test_top1_err" in cfg["metrics"]
    assert cfg["train_config"]["data"]["name"] == "digits" and cfg["image_size"] == [8, 8]
    assert isinstance(cfg["command"], str) and cfg["command"]
    with pytest.raises(ValueError, match="holds 'resnet20' weights"):
        resnetlab.create_model("resnet32", weights=str(out))


def test_predict_prints_top5(tmp_path, capsys):
    from PIL import Image

    run = _tiny_run(tmp_path / "run")
    img = tmp_path / "seven.png"
    Image.fromarray((torch.rand(40, 30) * 255).to(torch.uint8).numpy()).save(img)
    assert main(["predict", str(run), str(img)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == str(img) and len(lines) == 6
    probs = [float(line.split()[-1].rstrip("%")) for line in lines[1:]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 100.01
    assert main(["predict", str(tmp_path / "none.safetensors"), str(img)]) == 2
