"""Load a trained model back from a run folder or a bare safetensors file, and evaluate it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import InMemoryLoader, build_folder_loader, load_dataset
from .checkpoint import load_weights
from .config import ModelConfig
from .engine import build_model, evaluate, resolve_device, resolve_precision


def load_trained(path: str | os.PathLike, which: str = "last") -> tuple[nn.Module, dict[str, Any]]:
    """(model, metadata) from RUN_DIR (its checkpoints/<which>.safetensors) or a .safetensors
    file written by `train`; the metadata names the architecture, data set and normalisation."""
    if which not in ("last", "best"):
        raise ValueError(f"which must be 'last' or 'best', got {which!r}")
    path = Path(path)
    if path.is_dir():
        weights = path / "checkpoints" / f"{which}.safetensors"
        if not weights.is_file():
            raise FileNotFoundError(
                f"{path} holds no {weights.relative_to(path)}; is it a resnetlab run folder that saved a checkpoint?"
            )
    elif path.is_file():
        weights = path
    else:
        raise FileNotFoundError(
            f"{path} does not exist (expected a run folder or a .safetensors file)"
        )
    state, meta = load_weights(weights)
    missing = [k for k in ("model", "num_classes", "in_chans", "image_size") if k not in meta]
    if missing:
        raise ValueError(
            f"{weights} lacks metadata {missing}; it was not written by resnetlab train, so the architecture is unknown"
        )
    cfg = ModelConfig(meta["model"], dict(meta.get("model_kwargs") or {}))
    model = build_model(
        cfg,
        in_chans=int(meta["in_chans"]),
        num_classes=int(meta["num_classes"]),
        image_size=tuple(meta["image_size"]),
    )
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(
            f"{weights} does not match model {cfg.name} ({str(err).splitlines()[0]})"
        ) from None
    meta["weights_file"] = str(weights)
    return model, meta


def evaluate_path(
    path: str | os.PathLike,
    *,
    data: str | None = None,
    data_dir: str | None = None,
    which: str = "last",
    split: str = "test",
    batch_size: int = 512,
    tta_flip: bool = False,
    device: str = "auto",
    precision: str = "auto",
    test_subset: int | None = None,
) -> dict[str, Any]:
    """Top-1/top-5 error (%) of a trained run or weights file on a data set split."""
    model, meta = load_trained(path, which)
    data = data or meta.get("data")
    if not data:
        raise ValueError("no data set given and none recorded in the weights; pass --data NAME")
    if split not in ("test", "val", "train"):
        raise ValueError(f"split must be test, val or train, got {split!r}")
    val_split = 0
    run_cfg = Path(path) / "config.json"
    if Path(path).is_dir() and run_cfg.is_file() and data == meta.get("data"):
        val_split = json.loads(run_cfg.read_text()).get("data", {}).get("val_split", 0)
    if split == "val" and not val_split:
        raise ValueError("this run had no validation split (val_split=0); use --split test")
    splits = load_dataset(data, data_dir=data_dir, val_split=val_split, test_subset=test_subset)
    if splits.in_chans != int(meta["in_chans"]) or splits.num_classes != int(meta["num_classes"]):
        raise ValueError(
            f"{data} has {splits.in_chans} channels / {splits.num_classes} classes but the model "
            f"expects {meta['in_chans']} / {meta['num_classes']}"
        )
    ds = getattr(splits, split)
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    channels_last = any(isinstance(m, nn.Conv2d) for m in model.modules())
    model = model.to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if splits.in_memory:
        # normalise with the statistics the model was trained with
        ds.mean, ds.std = tuple(meta.get("mean", ds.mean)), tuple(meta.get("std", ds.std))
        loader = InMemoryLoader(
            ds, batch_size, train=False, device=dev, channels_last=channels_last
        )
    else:
        loader = build_folder_loader(
            ds,
            batch_size=batch_size,
            train=False,
            image_size=splits.image_size,
            in_chans=splits.in_chans,
            mean=splits.mean,
            std=splits.std,
        )
    m = evaluate(
        model, loader, device=dev, precision=prec, channels_last=channels_last, tta_flip=tta_flip
    )
    return {
        **m,
        "data": data,
        "split": split,
        "weights": meta["weights_file"],
        "model": meta["model"],
        "tta_flip": tta_flip,
    }
