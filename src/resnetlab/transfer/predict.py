"""Inference with a weights file: load the model with its metadata, preprocess images the way
the weights expect, return the top-k classes with probabilities."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn


def load_for_inference(
    weights: str | os.PathLike, *, model: str | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode, metadata) from:

    * "ARCH.TAG" / "ARCH:TAG" — published weights (e.g. "resnet50.IMAGENET1K_V2");
    * a run folder or a resnetlab .safetensors file (the metadata names the architecture);
    * a torchvision-format .pth state dict — `model` must name the architecture.
    """
    from ..models import create_model
    from ..models.weights import pretrained_tags

    text = str(weights)
    m = re.fullmatch(r"([a-z][a-z0-9_]*)[.:]([A-Z][A-Z0-9_]*)", text)
    if m and not Path(text).exists():
        arch, tag = m.groups()
        if model and model != arch:
            raise ValueError(f"{text} names {arch} but --model says {model}")
        if not pretrained_tags(arch):
            raise ValueError(f"no published weights for {arch!r}")
        net = create_model(arch, weights=tag)
        return net.eval(), dict(net.pretrained_cfg)
    path = Path(text)
    if path.is_dir() or path.suffix == ".safetensors":
        from ..train.loading import load_trained

        net, meta = load_trained(path, "best" if path.is_dir() and _has_best(path) else "last")
        meta = dict(meta)
        meta["categories"] = meta.get("classes") or [str(i) for i in range(meta["num_classes"])]
        net.pretrained_cfg = meta
        return net.eval(), meta
    if not path.exists():
        raise FileNotFoundError(
            f"weights {text} not found: give a file, a run folder, or ARCH.TAG (e.g. "
            "resnet50.IMAGENET1K_V2)"
        )
    if not model:
        raise ValueError(f"{path.name} is a bare state dict; name its architecture with --model")
    net = create_model(model, weights=str(path))
    return net.eval(), dict(net.pretrained_cfg)


def _has_best(run_dir: Path) -> bool:
    return (run_dir / "checkpoints" / "best.safetensors").is_file()


def preprocess(image_path: str | os.PathLike, meta: dict[str, Any], in_chans: int) -> torch.Tensor:
    """One image file -> (1, C, H, W) float tensor, prepared as the weights expect: torchvision
    ImageNet weights resize the shorter side to `resize_size` and centre-crop `crop_size`;
    resnetlab weights resize to their training `image_size`. Then mean/std normalisation."""
    import torchvision.transforms.functional as TF
    from PIL import Image, UnidentifiedImageError

    path = Path(image_path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    try:
        img = Image.open(path)
        img = img.convert("L" if in_chans == 1 else "RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"{path}: not a readable image ({err})") from None
    x = TF.pil_to_tensor(img).float().div(255.0)  # (C, H, W) in [0, 1]
    if in_chans not in (1, 3):
        x = x[:1].repeat(in_chans, 1, 1)
    if meta.get("resize_size") and meta.get("crop_size"):
        x = TF.resize(x, [int(meta["resize_size"])], antialias=True)
        x = TF.center_crop(x, [int(meta["crop_size"])] * 2)
    else:
        size = [int(s) for s in meta.get("image_size", x.shape[-2:])]
        x = TF.resize(x, size, antialias=True)
    mean = torch.tensor(_per_channel(meta.get("mean"), in_chans, 0.0)).view(-1, 1, 1)
    std = torch.tensor(_per_channel(meta.get("std"), in_chans, 1.0)).view(-1, 1, 1)
    return ((x - mean) / std).unsqueeze(0)


def _per_channel(values, n: int, default: float) -> list[float]:
    if not values:
        return [default] * n
    values = list(values)
    return values if len(values) == n else [sum(values) / len(values)] * n


@torch.no_grad()
def predict(
    model: nn.Module, meta: dict[str, Any], images: list[str | os.PathLike], topk: int = 5
) -> list[list[tuple[str, float]]]:
    """Top-k (class name, probability) for each image file."""
    if topk < 1:
        raise ValueError(f"topk must be >= 1, got {topk}")
    in_chans = int(getattr(model, "in_chans", meta.get("in_chans", 3)))
    categories = meta.get("categories")
    out = []
    model.eval()
    for image in images:
        x = preprocess(image, meta, in_chans)
        probs = model(x).float().softmax(dim=1)[0]
        k = min(topk, probs.numel())
        p, idx = probs.topk(k)
        names = [
            categories[i] if categories and i < len(categories) else str(i) for i in idx.tolist()
        ]
        out.append(list(zip(names, p.tolist())))
    return out
