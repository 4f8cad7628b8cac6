"""Data sets by name: IDX (MNIST, Fashion-MNIST), CIFAR python batches, scikit-learn digits and
image folders.

Every in-memory data set comes back as an `ArrayDataset`: one uint8 tensor (N, C, H, W) and int64
labels, the smallest form that fits the whole set on the training device. Files are looked up in
a fixed order (`--data-dir`, `$RESNETLAB_DATA`, well-known local places, then a torchvision
download when asked); when nothing is found the error lists every place searched.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

ENV_VAR = "RESNETLAB_DATA"

# Per-channel statistics of the training sets (pixel values in [0, 1]), the usual published ones.
_STATS = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}

_IDX = {
    # name: (torchvision class name, class names)
    "mnist": ("MNIST", [str(i) for i in range(10)]),
    "fashion-mnist": (
        "FashionMNIST",
        [
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ],
    ),
}
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_CIFAR = {
    # name: (folder, train files, test files, label key, torchvision class, archive)
    "cifar10": (
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)],
        ["test_batch"],
        b"labels",
        "CIFAR10",
    ),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels", "CIFAR100"),
}
# Debian's dataset packages install here (`apt-get install dataset-fashion-mnist`).
WELL_KNOWN = [Path("/usr/share/datasets"), Path("~/.cache/resnetlab").expanduser()]

DATASETS = ("fashion-mnist", "mnist", "cifar10", "cifar100", "digits", "folder:PATH")


@dataclass
class ArrayDataset:
    """A whole data set split in memory: uint8 images (N, C, H, W) and int64 labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str = ""

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"images must be a uint8 (N, C, H, W) tensor, got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"{self.images.shape[0]} images but labels of shape {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_chans(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.images.shape[2:])

    def subset(self, index: torch.Tensor | slice) -> ArrayDataset:
        return ArrayDataset(
            self.images[index], self.labels[index], self.classes, self.mean, self.std, self.source
        )


@dataclass
class DataSplits:
    """What `load_dataset` returns: the training split, an optional validation split held out of
    the training set, and the test split. `folder` data sets carry torchvision datasets instead."""

    name: str
    train: ArrayDataset | torch.utils.data.Dataset
    test: ArrayDataset | torch.utils.data.Dataset
    val: ArrayDataset | torch.utils.data.Dataset | None = None
    classes: list[str] = field(default_factory=list)
    in_chans: int = 1
    image_size: tuple[int, int] = (28, 28)
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)
    in_memory: bool = True

    @property
    def num_classes(self) -> int:
        return len(self.classes)


# --------------------------------------------------------------------------- lookup


def search_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The base folders searched, in order: `data_dir`, `$RESNETLAB_DATA`, well-known places."""
    dirs: list[Path] = []
    if data_dir:
        dirs.append(Path(data_dir).expanduser())
    if os.environ.get(ENV_VAR):
        dirs.append(Path(os.environ[ENV_VAR]).expanduser())
    dirs.extend(WELL_KNOWN)
    return dirs


def _candidates(base: Path, name: str, tv_name: str) -> list[Path]:
    # A base may hold the files directly, in a folder named after the set, or in torchvision's
    # download layout (<base>/<ClassName>/raw).
    return [base, base / name, base / tv_name / "raw", base / name / tv_name / "raw"]


def _find_file(folder: Path, stem: str) -> Path | None:
    for suffix in ("", ".gz"):
        p = folder / (stem + suffix)
        if p.is_file():
            return p
    return None


def _not_found(
    name: str, looked: list[Path], expected: Sequence[str], hint: str
) -> FileNotFoundError:
    places = "\n".join(f"  - {p}" for p in looked)
    return FileNotFoundError(
        f"data set {name!r} not found. Looked for {', '.join(expected)} in:\n{places}\n"
        f"To get it: {hint}; or put the files in one of these folders, pass --data-dir DIR "
        f"(data_dir=...), or set ${ENV_VAR}; or add --download (download=True) on a machine "
        f"that is online."
    )


def _download(name: str, tv_name: str, data_dir: str | os.PathLike | None) -> Path:
    import torchvision

    root = Path(data_dir or os.environ.get(ENV_VAR) or WELL_KNOWN[-1]).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    cls = getattr(torchvision.datasets, tv_name)
    for train in (True, False):
        cls(str(root / name), train=train, download=True)
    return root / name


# --------------------------------------------------------------------------- IDX

_IDX_DTYPES = {0x08: np.uint8}


def read_idx(path: str | os.PathLike, expect_dims: int | None = None) -> np.ndarray:
    """Read an IDX file (gzipped or not) into a NumPy array, checking its header against its size.

    Raises ValueError naming the file when the magic number, dimensions or length are wrong.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise ValueError(
            f"{path}: cannot read IDX file ({err}); the file is corrupt, delete it and fetch it again"
        ) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(
            f"{path}: not an IDX file of bytes (bad magic number {raw[:4].hex()}); the file is corrupt or of another format"
        )
    ndim = raw[3]
    if expect_dims is not None and ndim != expect_dims:
        raise ValueError(f"{path}: expected a {expect_dims}-D IDX array, the header says {ndim}-D")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    size = int(np.prod(shape))
    if len(raw) - header != size:
        raise ValueError(
            f"{path}: header announces shape {shape} ({size} bytes) but the file holds "
            f"{len(raw) - header} bytes; the file is truncated or corrupt, fetch it again"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _load_idx(name: str, data_dir, download: bool) -> DataSplits:
    tv_name, classes = _IDX[name]
    expected = [s + "[.gz]" for pair in _IDX_FILES.values() for s in pair]
    looked: list[Path] = []
    found: Path | None = None
    for base in search_dirs(data_dir):
        for folder in _candidates(base, name, tv_name):
            looked.append(folder)
            if all(_find_file(folder, s) for pair in _IDX_FILES.values() for s in pair):
                found = folder
                break
        if found:
            break
    if found is None and download:
        try:
            root = _download(name, tv_name, data_dir)
        except Exception as err:  # offline, proxy, disk: say so next to the places searched
            raise _not_found(name, looked, expected, f"download failed ({err})") from None
        found = root / tv_name / "raw"
    if found is None:
        hint = (
            "`apt-get install dataset-fashion-mnist`"
            if name == "fashion-mnist"
            else "download the four IDX files from yann.lecun.com/exdb/mnist"
        )
        raise _not_found(name, looked, expected, hint)
    splits = {}
    for split, (img_stem, lbl_stem) in _IDX_FILES.items():
        img_path, lbl_path = _find_file(found, img_stem), _find_file(found, lbl_stem)
        images = read_idx(img_path, expect_dims=3)
        labels = read_idx(lbl_path, expect_dims=1)
        if len(images) != len(labels):
            raise ValueError(
                f"{img_path} holds {len(images)} images but {lbl_path} holds {len(labels)} labels"
            )
        if labels.size and labels.max() >= len(classes):
            raise ValueError(
                f"{lbl_path}: label {labels.max()} out of range for {len(classes)} classes"
            )
        splits[split] = ArrayDataset(
            torch.from_numpy(images.copy()).unsqueeze(1),
            torch.from_numpy(labels.astype(np.int64)),
            classes,
            *_STATS[name],
            source=str(found),
        )
    return DataSplits(
        name,
        splits["train"],
        splits["test"],
        classes=classes,
        in_chans=1,
        image_size=(28, 28),
        mean=_STATS[name][0],
        std=_STATS[name][1],
    )


# --------------------------------------------------------------------------- CIFAR


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches and nothing else: only the NumPy array reconstruction the batches
    need is allowed, so a crafted file cannot run code (pickle's `find_class` is the only way a
    pickle reaches callables)."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: a CIFAR batch holds only arrays, lists and bytes"
        )


def safe_unpickle(path: str | os.PathLike) -> object:
    """Load a CIFAR-style python pickle without letting it run code; ValueError names the file."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return _RestrictedUnpickler(io.BytesIO(fh.read()), encoding="bytes").load()
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{path}: {err}; the file is not a genuine CIFAR batch, refusing it"
        ) from None
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError) as err:
        raise ValueError(
            f"{path}: not a readable CIFAR batch ({type(err).__name__}: {err}); the file is corrupt, fetch it again"
        ) from None


def _read_cifar_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    batch = safe_unpickle(path)
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        raise ValueError(
            f"{path}: expected a dict with keys b'data' and {label_key!r}; not a CIFAR batch"
        )
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if (
        data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != 3 * 32 * 32
        or len(data) != len(labels)
    ):
        raise ValueError(
            f"{path}: data of shape {data.shape} / {data.dtype} with {len(labels)} labels; expected uint8 (N, 3072)"
        )
    return data.reshape(-1, 3, 32, 32), labels


def _load_cifar(name: str, data_dir, download: bool) -> DataSplits:
    folder_name, train_files, test_files, label_key, tv_name = _CIFAR[name]
    looked: list[Path] = []
    found = None
    for base in search_dirs(data_dir):
        for folder in (base / folder_name, base / name / folder_name, base / name):
            looked.append(folder)
            if all((folder / f).is_file() for f in train_files + test_files):
                found = folder
                break
        if found:
            break
    if found is None and download:
        try:
            found = _download(name, tv_name, data_dir) / folder_name
        except Exception as err:
            raise _not_found(
                name,
                looked,
                [folder_name + "/" + f for f in train_files + test_files],
                f"download failed ({err})",
            ) from None
    if found is None:
        raise _not_found(
            name,
            looked,
            [folder_name + "/" + f for f in train_files + test_files],
            f"download the python version from https://www.cs.toronto.edu/~kriz/cifar.html and unpack it ({folder_name}/)",
        )
    meta_name = "batches.meta" if name == "cifar10" else "meta"
    classes: list[str]
    if (found / meta_name).is_file():
        meta = safe_unpickle(found / meta_name)
        key = b"label_names" if name == "cifar10" else b"fine_label_names"
        classes = (
            [c.decode() if isinstance(c, bytes) else str(c) for c in meta.get(key, [])]
            if isinstance(meta, dict)
            else []
        )
    else:
        classes = []
    n_classes = 10 if name == "cifar10" else 100
    if len(classes) != n_classes:
        classes = [str(i) for i in range(n_classes)]
    splits = {}
    for split, files in (("train", train_files), ("test", test_files)):
        parts = [_read_cifar_batch(found / f, label_key) for f in files]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
            raise ValueError(f"{found}: labels outside 0..{n_classes - 1}")
        splits[split] = ArrayDataset(
            torch.from_numpy(images),
            torch.from_numpy(labels),
            classes,
            *_STATS[name],
            source=str(found),
        )
    return DataSplits(
        name,
        splits["train"],
        splits["test"],
        classes=classes,
        in_chans=3,
        image_size=(32, 32),
        mean=_STATS[name][0],
        std=_STATS[name][1],
    )


# --------------------------------------------------------------------------- digits


def _load_digits(image_size: int = 32) -> DataSplits:
    """scikit-learn's bundled 8×8 handwritten digits (1,797 real images), upsampled bilinearly to
    `image_size` so CIFAR-style nets apply; a fixed 80/20 split (seed 0)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(
        1
    )  # (N, 1, 8, 8) in [0, 1]
    x = torch.nn.functional.interpolate(
        x, size=(image_size, image_size), mode="bilinear", align_corners=False
    )
    images = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    n_test = len(labels) // 5
    classes = [str(i) for i in range(10)]
    mean = (images.float().mean().item() / 255,)
    std = (images.float().std().item() / 255,)
    full = ArrayDataset(images, labels, classes, mean, std, source="sklearn.datasets.load_digits")
    return DataSplits(
        "digits",
        full.subset(perm[n_test:]),
        full.subset(perm[:n_test]),
        classes=classes,
        in_chans=1,
        image_size=(image_size, image_size),
        mean=mean,
        std=std,
    )


# --------------------------------------------------------------------------- folders

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _load_folder(path: str, image_size: int | None) -> DataSplits:
    """An image-folder tree: PATH/train/<class>/*.png and PATH/test (or PATH/val)/<class>/*."""
    import torchvision

    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"image folder {root} does not exist; expected {root}/train/<class>/<image> and {root}/test/<class>/<image>"
        )
    train_dir = root / "train"
    test_dir = next((root / d for d in ("test", "val") if (root / d).is_dir()), None)
    if not train_dir.is_dir() or test_dir is None:
        raise FileNotFoundError(
            f"image folder {root} must contain train/ and test/ (or val/) sub-folders with one folder per class"
        )
    try:
        probe = torchvision.datasets.ImageFolder(str(train_dir))
    except (FileNotFoundError, RuntimeError) as err:
        raise FileNotFoundError(f"{train_dir}: {err}") from None
    first, _ = probe[0]
    in_chans = len(first.getbands())
    size = image_size or min(first.size)
    mean, std = (
        (IMAGENET_MEAN, IMAGENET_STD) if in_chans == 3 else ((0.5,) * in_chans, (0.5,) * in_chans)
    )
    return DataSplits(
        f"folder:{root}",
        torchvision.datasets.ImageFolder(str(train_dir)),
        torchvision.datasets.ImageFolder(str(test_dir)),
        classes=list(probe.classes),
        in_chans=in_chans,
        image_size=(size, size),
        mean=mean,
        std=std,
        in_memory=False,
    )


# --------------------------------------------------------------------------- entry point


def load_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    val_split: int = 0,
    train_subset: int | None = None,
    test_subset: int | None = None,
    image_size: int | None = None,
) -> DataSplits:
    """Load a data set by name into memory (or, for `folder:PATH`, as torchvision datasets).

    name: fashion-mnist | mnist | cifar10 | cifar100 | digits | folder:PATH.
    val_split: hold out this many training images as a validation split (a fixed permutation with
        seed 0, so every run with the same split sees the same validation images; the paper's
        CIFAR-10 45k/5k is val_split=5000).
    train_subset: keep only the first N training images (after the validation hold-out).
    test_subset: keep only the first N test images.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"data set name must be a non-empty string, got {name!r}")
    key = name.lower()
    if key in _IDX:
        splits = _load_idx(key, data_dir, download)
    elif key in _CIFAR:
        splits = _load_cifar(key, data_dir, download)
    elif key == "digits":
        splits = _load_digits(image_size or 32)
    elif key.startswith("folder:"):
        splits = _load_folder(name.split(":", 1)[1], image_size)
    else:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    n_train = len(splits.train)
    if val_split < 0 or (val_split and val_split >= n_train):
        raise ValueError(
            f"val_split must be between 0 and {n_train - 1} (the training set size minus one), got {val_split}"
        )
    if train_subset is not None and train_subset < 1:
        raise ValueError(f"train_subset must be >= 1 image, got {train_subset}")
    if val_split:
        perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(0))
        val_idx, train_idx = perm[:val_split], perm[val_split:].sort().values
        splits.val = _take(splits.train, val_idx.sort().values)
        splits.train = _take(splits.train, train_idx)
    if test_subset is not None and test_subset < 1:
        raise ValueError(f"test_subset must be >= 1 image, got {test_subset}")
    if test_subset is not None:
        splits.test = _take(splits.test, torch.arange(min(test_subset, len(splits.test))))
    if train_subset is not None:
        splits.train = _take(splits.train, torch.arange(min(train_subset, len(splits.train))))
    if (
        image_size is not None
        and splits.in_memory
        and splits.image_size != (image_size, image_size)
    ):
        # e.g. 28 px Fashion-MNIST -> 224 px for an ImageNet-stem net; done after subsetting so
        # only the kept images are resized.
        if image_size < 1:
            raise ValueError(f"image_size must be >= 1 px, got {image_size}")
        for split in ("train", "val", "test"):
            ds = getattr(splits, split)
            if ds is not None:
                setattr(splits, split, _resize(ds, image_size))
        splits.image_size = (image_size, image_size)
    return splits


def _resize(ds: ArrayDataset, size: int, chunk: int = 2048) -> ArrayDataset:
    """Bilinear resize of a uint8 image set, in chunks to bound the float copy's memory."""
    parts = []
    for start in range(0, len(ds), chunk):
        x = ds.images[start : start + chunk].float()
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
        parts.append(x.round().clamp(0, 255).to(torch.uint8))
    images = torch.cat(parts) if parts else ds.images.new_zeros((0, ds.in_chans, size, size))
    return ArrayDataset(images, ds.labels, ds.classes, ds.mean, ds.std, ds.source)


def _take(ds, index: torch.Tensor):
    if isinstance(ds, ArrayDataset):
        return ds.subset(index)
    return torch.utils.data.Subset(ds, index.tolist())
