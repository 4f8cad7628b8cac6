"""Data sets: IDX/CIFAR/digits/folder loading, lookup order and errors, the in-memory loader."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from resnetlab.data import (
    ArrayDataset,
    AugmentConfig,
    InMemoryLoader,
    augment_batch,
    datasets,
    load_dataset,
    read_idx,
    safe_unpickle,
)

FMNIST = Path("/usr/share/datasets/fashion-mnist")


def _write_idx(path: Path, array: np.ndarray, gz: bool = False) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def _fake_mnist(folder: Path, n_train: int = 40, n_test: int = 20, gz: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    sfx = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        _write_idx(
            folder / f"{prefix}-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n, 28, 28)), gz
        )
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte{sfx}", np.arange(n) % 10, gz)


@pytest.fixture
def no_well_known(monkeypatch):
    """Keep the real /usr/share/datasets and ~/.cache out of lookups."""
    monkeypatch.setattr(datasets, "WELL_KNOWN", [])
    monkeypatch.delenv("RESNETLAB_DATA", raising=False)


@pytest.mark.skipif(not FMNIST.exists(), reason="needs Fashion-MNIST: make data")
def test_fashion_mnist_real_files():
    splits = load_dataset("fashion-mnist")
    assert (
        splits.train.images.shape == (60000, 1, 28, 28) and splits.train.images.dtype == torch.uint8
    )
    assert len(splits.test) == 10000 and splits.num_classes == 10
    assert torch.bincount(splits.train.labels).tolist() == [6000] * 10
    # published mean of the training pixels is 0.2860
    assert abs(splits.train.images.float().mean().item() / 255 - splits.mean[0]) < 1e-3


def test_lookup_order_data_dir_before_env(tmp_path, monkeypatch, no_well_known):
    _fake_mnist(tmp_path / "a", n_train=30)
    _fake_mnist(
        tmp_path / "b" / "mnist", n_train=50, gz=False
    )  # <base>/<name>/ layout, not gzipped
    monkeypatch.setenv("RESNETLAB_DATA", str(tmp_path / "b"))
    assert len(load_dataset("mnist").train) == 50  # env var
    assert len(load_dataset("mnist", data_dir=tmp_path / "a").train) == 30  # --data-dir wins


def test_missing_data_lists_every_place(tmp_path, monkeypatch, no_well_known):
    monkeypatch.setattr(datasets, "WELL_KNOWN", [tmp_path / "share"])
    monkeypatch.setenv("RESNETLAB_DATA", str(tmp_path / "env"))
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("fashion-mnist", data_dir=tmp_path / "dir")
    msg = str(err.value)
    for place in ("dir", "env", "share"):
        assert str(tmp_path / place) in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "--download" in msg
    assert "train-images-idx3-ubyte" in msg


def test_corrupt_idx_names_the_file(tmp_path, no_well_known):
    _fake_mnist(tmp_path, gz=False)
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-100])  # truncated
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*truncated"):
        load_dataset("mnist", data_dir=tmp_path)
    bad.write_bytes(b"\x50\x4b\x03\x04" + b"\0" * 64)  # not IDX at all
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*magic"):
        read_idx(bad)
    gz = tmp_path / "x.gz"
    gz.write_bytes(gzip.compress(b"\0" * 100)[:20])  # broken gzip stream
    with pytest.raises(ValueError, match="x.gz"):
        read_idx(gz)


def _cifar_batch(path: Path, n: int, label_key: bytes = b"labels", seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    batch = {
        b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
        label_key: list(rng.integers(0, 10, n)),
    }
    path.write_bytes(pickle.dumps(batch, protocol=2))


def test_cifar10_batches(tmp_path, no_well_known):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 6):
        _cifar_batch(folder / f"data_batch_{i}", 8, seed=i)
    _cifar_batch(folder / "test_batch", 6)
    names = [
        n.encode()
        for n in ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    ]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=2))
    splits = load_dataset("cifar10", data_dir=tmp_path)
    assert splits.train.images.shape == (40, 3, 32, 32) and len(splits.test) == 6
    assert splits.classes[1] == "car"
    raw = pickle.loads((folder / "data_batch_1").read_bytes())
    # channel-major rows: the first 1024 bytes are the red plane of image 0
    assert splits.train.images[0, 0].flatten().tolist() == raw[b"data"][0, :1024].tolist()


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch should_not_exist",))


def test_code_running_pickle_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Evil(), b"labels": [0]}))
    with pytest.raises(ValueError, match="refusing to load .*system"):
        safe_unpickle(path)
    assert not (tmp_path / "should_not_exist").exists()


def test_digits_real_small_set():
    splits = load_dataset("digits")
    assert splits.image_size == (32, 32) and splits.in_chans == 1
    assert len(splits.train) + len(splits.test) == 1797
    assert set(splits.test.labels.tolist()) == set(range(10))


def test_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 2)):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(
                    tmp_path / split / cls / f"{i}.png"
                )
    splits = load_dataset(f"folder:{tmp_path}")
    assert not splits.in_memory and splits.classes == ["cat", "dog"] and splits.in_chans == 3
    assert len(splits.train) == 12 and len(splits.test) == 4
    with pytest.raises(FileNotFoundError, match="train/ and test/"):
        load_dataset(f"folder:{tmp_path / 'train'}")


def test_val_split_and_subset():
    splits = load_dataset("digits", val_split=100, train_subset=500)
    assert len(splits.val) == 100 and len(splits.train) == 500
    again = load_dataset("digits", val_split=100)
    assert torch.equal(splits.val.labels, again.val.labels)  # same hold-out every time
    with pytest.raises(ValueError, match="val_split"):
        load_dataset("digits", val_split=10**6)
    with pytest.raises(ValueError, match="unknown data set"):
        load_dataset("imagenet-22k")


def _toy(n: int = 50) -> ArrayDataset:
    images = (
        torch.arange(n * 2 * 8 * 8, dtype=torch.int64)
        .remainder(251)
        .to(torch.uint8)
        .view(n, 2, 8, 8)
    )
    return ArrayDataset(images, torch.arange(n) % 3, ["a", "b", "c"], (0.5, 0.5), (0.25, 0.25))


def test_loader_order_is_a_function_of_seed_and_epoch():
    data = _toy()
    aug = AugmentConfig(crop_padding=2, flip=True, cutout=3)

    def epoch(seed, e, start=0):
        loader = InMemoryLoader(data, 8, train=True, augment=aug, seed=seed)
        loader.set_epoch(e, start)
        return list(loader)

    a, b = epoch(0, 1), epoch(0, 1)
    assert len(a) == 50 // 8
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))
    c = epoch(0, 2)
    assert not torch.equal(a[0][0], c[0][0])  # a new epoch reshuffles
    d = epoch(1, 1)
    assert not torch.equal(a[0][0], d[0][0])  # another seed, another order
    resumed = epoch(0, 1, start=3)  # mid-epoch resume sees exactly the remaining batches
    assert len(resumed) == len(a) - 3
    assert all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a[3:], resumed))


def test_eval_loader_in_order_and_normalised():
    data = _toy(10)
    batches = list(InMemoryLoader(data, 4, train=False))
    assert [len(y) for _, y in batches] == [4, 4, 2]
    x = torch.cat([b[0] for b in batches])
    expected = (data.images.float() / 255 - 0.5) / 0.25
    assert torch.allclose(x, expected)


def test_augment_batch_crop_flip_cutout():
    x = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4).repeat(2, 1, 1, 1) + 1
    aug = AugmentConfig(crop_padding=1)
    # offset (1, 1) with padding 1 is the identity; offset (0, 0) shifts down-right, zeros enter
    out = augment_batch(x, {"dy": torch.tensor([1, 0]), "dx": torch.tensor([1, 0])}, aug)
    assert torch.equal(out[0], x[0])
    assert out[1, 0, 0].tolist() == [0, 0, 0, 0] and out[1, 0, 1, 1:].tolist() == [1, 2, 3]
    out = augment_batch(x, {"flip": torch.tensor([True, False])}, AugmentConfig(flip=True))
    assert torch.equal(out[0], x[0].flip(2)) and torch.equal(out[1], x[1])
    out = augment_batch(
        x, {"cy": torch.tensor([0, 3]), "cx": torch.tensor([0, 3])}, AugmentConfig(cutout=2)
    )
    assert out[0, 0, :2, :2].sum() == 0 and out[0, 0, 2:, 2:].equal(x[0, 0, 2:, 2:])
    assert (out[1] == 0).sum() == 4


def test_loader_rejects_bad_sizes():
    with pytest.raises(ValueError, match="batch_size"):
        InMemoryLoader(_toy(5), 0, train=True)
    with pytest.raises(ValueError, match="larger than the training set"):
        InMemoryLoader(_toy(5), 8, train=True)
