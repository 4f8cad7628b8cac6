"""Fast in-memory loading: the whole split as one uint8 tensor on the training device, batched
augmentation on tensors, and an order that is a pure function of (seed, epoch).

The idea is airbench's (Keller Jordan): with the data already on the device, per-sample Python
transforms and worker processes are the bottleneck, so crop/flip/cutout run on whole batches.
Each epoch draws its permutation and all its augmentation parameters from one
`torch.Generator` seeded with (seed, epoch); a run resumed at batch k of epoch e therefore sees
exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from .datasets import ArrayDataset


@dataclass
class AugmentConfig:
    """Batched augmentation. crop_padding: pad by this many px (zeros) and crop back at a random
    offset (He et al. 2015 use 4 px on CIFAR); flip: random horizontal flip; cutout: side in px
    of a zeroed square (DeVries & Taylor 2017), 0 = off."""

    crop_padding: int = 0
    flip: bool = False
    cutout: int = 0

    def __post_init__(self):
        if self.crop_padding < 0 or self.cutout < 0:
            raise ValueError(
                f"crop_padding and cutout must be >= 0 px, got {self.crop_padding}, {self.cutout}"
            )


def epoch_seed(seed: int, epoch: int) -> int:
    """The generator seed of one epoch: distinct per (seed, epoch), stable across runs."""
    return (int(seed) * 1_000_003 + int(epoch) * 7919 + 12345) % (2**63 - 1)


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 normalised by per-channel mean/std given for [0, 1] pixels."""
    return (images.float().div_(255.0) - mean) / std


class InMemoryLoader:
    """Iterate over an `ArrayDataset` held on `device` in batches of normalised float32 tensors.

    train=True: shuffled each epoch, augmented, last incomplete batch dropped (every step sees a
    full batch, which keeps batch-norm statistics and step counts predictable). train=False: in
    order, no augmentation, every image once.

    Call `set_epoch(e)` before iterating; `start_batch` skips the first batches of that epoch
    (mid-epoch resume). The loader's whole state is `state_dict()` = seed, epoch, position.
    """

    def __init__(
        self,
        data: ArrayDataset,
        batch_size: int,
        *,
        train: bool,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        device: torch.device | str = "cpu",
        channels_last: bool = False,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if train and batch_size > len(data):
            raise ValueError(
                f"batch_size {batch_size} is larger than the training set ({len(data)} images); lower the batch size"
            )
        self.device = torch.device(device)
        self.images = data.images.to(self.device)
        self.labels = data.labels.to(self.device)
        self.mean = torch.tensor(data.mean, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(data.std, device=self.device).view(1, -1, 1, 1)
        if self.mean.shape[1] != self.images.shape[1]:
            raise ValueError(
                f"{self.mean.shape[1]} mean values for {self.images.shape[1]} channels"
            )
        self.batch_size = batch_size
        self.train = train
        self.augment = augment or AugmentConfig()
        self.seed = seed
        self.channels_last = channels_last
        self.epoch = 0
        self.start_batch = 0
        self.generator = torch.Generator(device="cpu")

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.train else -(-n // self.batch_size)

    @property
    def num_images(self) -> int:
        return len(self.labels)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch = epoch
        self.start_batch = start_batch

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch, "start_batch": self.start_batch}

    def load_state_dict(self, state: dict) -> None:
        self.seed, self.epoch, self.start_batch = (
            state["seed"],
            state["epoch"],
            state["start_batch"],
        )

    def _epoch_plan(self) -> dict[str, torch.Tensor]:
        """Everything random about one epoch, drawn in a fixed order from one seeded generator."""
        n = len(self.labels)
        g = self.generator
        g.manual_seed(epoch_seed(self.seed, self.epoch))
        plan = {"order": torch.randperm(n, generator=g)}
        aug = self.augment
        h, w = self.images.shape[2:]
        if aug.crop_padding:
            plan["dy"] = torch.randint(0, 2 * aug.crop_padding + 1, (n,), generator=g)
            plan["dx"] = torch.randint(0, 2 * aug.crop_padding + 1, (n,), generator=g)
        if aug.flip:
            plan["flip"] = torch.rand(n, generator=g) < 0.5
        if aug.cutout:
            plan["cy"] = torch.randint(0, h, (n,), generator=g)
            plan["cx"] = torch.randint(0, w, (n,), generator=g)
        return {k: v.to(self.device) for k, v in plan.items()}

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        start = self.start_batch
        self.start_batch = 0  # only the first pass after a resume skips batches
        if not self.train:
            for i in range(start, len(self)):
                sl = slice(i * self.batch_size, (i + 1) * self.batch_size)
                yield self._finish(self.images[sl]), self.labels[sl]
            return
        plan = self._epoch_plan()
        for i in range(start, len(self)):
            idx = plan["order"][i * self.batch_size : (i + 1) * self.batch_size]
            x = self.images[idx]  # (B, C, H, W) uint8
            x = augment_batch(x, {k: v[idx] for k, v in plan.items() if k != "order"}, self.augment)
            yield self._finish(x), self.labels[idx]

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        x = normalize(x, self.mean, self.std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def augment_batch(
    x: torch.Tensor, params: dict[str, torch.Tensor], aug: AugmentConfig
) -> torch.Tensor:
    """Apply per-image crop offsets, flips and cutout squares to a uint8 batch (B, C, H, W)."""
    b, c, h, w = x.shape
    dev = x.device
    if aug.crop_padding:
        p = aug.crop_padding
        padded = torch.nn.functional.pad(x, (p, p, p, p))  # zero padding, (B, C, H+2p, W+2p)
        # All (2p+1)^2 crops as a strided view, then one gather of each image's own window:
        # far faster on CPU than per-pixel fancy indexing.
        windows = padded.unfold(2, h, 1).unfold(3, w, 1)  # (B, C, 2p+1, 2p+1, H, W)
        x = windows[torch.arange(b, device=dev), :, params["dy"], params["dx"]]  # (B, C, H, W)
    if aug.flip:
        flipped = params["flip"].nonzero().squeeze(1)
        x = x.index_copy(0, flipped, x[flipped].flip(3))
    if aug.cutout:
        half = aug.cutout // 2
        rows = (torch.arange(h, device=dev).view(1, h) - params["cy"].view(b, 1)).abs() <= half
        cols = (torch.arange(w, device=dev).view(1, w) - params["cx"].view(b, 1)).abs() <= half
        inside = rows.view(b, 1, h, 1) & cols.view(b, 1, 1, w)  # (B, 1, H, W)
        x = x.masked_fill(inside, 0)
    return x


def build_folder_loader(
    dataset: torch.utils.data.Dataset,
    *,
    batch_size: int,
    train: bool,
    image_size: tuple[int, int],
    in_chans: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    augment: AugmentConfig | None = None,
    num_workers: int = 2,
    seed: int = 0,
    epoch: int = 0,
    pin_memory: bool = False,
) -> torch.utils.data.DataLoader:
    """The DataLoader path for image folders: torchvision transforms per sample, worker processes,
    pinned memory on CUDA. The shuffling generator is seeded with (seed, epoch) like the in-memory
    loader, so the order is reproducible."""
    from torchvision import transforms as T

    augment = augment or AugmentConfig()
    tf: list = [T.Grayscale(in_chans)] if in_chans == 1 else [T.Lambda(_to_rgb)]
    tf.append(T.Resize(image_size))
    if train and augment.crop_padding:
        tf.append(T.RandomCrop(image_size, padding=augment.crop_padding))
    if train and augment.flip:
        tf.append(T.RandomHorizontalFlip())
    tf += [T.ToTensor(), T.Normalize(mean, std)]
    if train and augment.cutout:
        area = augment.cutout**2 / (image_size[0] * image_size[1])
        tf.append(T.RandomErasing(p=1.0, scale=(area, area), ratio=(1.0, 1.0)))
    dataset = _Transformed(dataset, T.Compose(tf))
    g = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train,
        drop_last=train and len(dataset) >= batch_size,
        num_workers=num_workers,
        pin_memory=pin_memory,
        generator=g,
        persistent_workers=False,
    )


def _to_rgb(image):
    return image.convert("RGB")


class _Transformed(torch.utils.data.Dataset):
    def __init__(self, base, transform):
        self.base, self.transform = base, transform

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        img, label = self.base[i]
        return self.transform(img), label
