"""Checkpoints: model weights as safetensors, the training state as a torch file that loads with
`weights_only=True`. Every write goes to a temporary file in the same folder and is renamed
into place, so a run killed mid-write leaves the previous checkpoint intact.

Layout of `RUN/checkpoints/`:
    last.pt            training state (model, optimiser, RNG, epoch, step, position, history);
                       self-contained, so resuming reads this one file
    last.safetensors   weights of the same step, for `resnetlab eval` and other tools
    best.safetensors   weights of the epoch with the lowest validation (else test) top-1 error
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call `write(tmp_path)` then rename the temporary file onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def check_finite(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of floating-point tensors that hold NaN or infinity."""
    return [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]


def save_weights(
    path: str | os.PathLike, model: nn.Module, metadata: dict[str, Any] | None = None
) -> None:
    """Write the model's state_dict as safetensors (contiguous CPU copies; metadata as strings)."""
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata=meta))


def load_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a safetensors file: (state_dict, metadata with JSON values decoded)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    try:
        state = {}
        with safe_open(str(path), framework="pt") as fh:
            raw_meta = fh.metadata() or {}
            for key in fh.keys():
                state[key] = fh.get_tensor(key)
    except Exception as err:  # safetensors raises its own error types for truncation/corruption
        raise ValueError(
            f"{path}: not a readable safetensors file ({err}); it is truncated or corrupt"
        ) from None
    meta: dict[str, Any] = {}
    for k, v in raw_meta.items():
        try:
            meta[k] = json.loads(v)
        except json.JSONDecodeError:
            meta[k] = v
    return state, meta


def save_state(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write a training-state dict (tensors, numbers, strings, lists, dicts only)."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training state with `weights_only=True` (no code can run); ValueError names the
    file when it is truncated or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training state {path} does not exist; nothing to resume from")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"{path}: cannot read the training state ({type(err).__name__}: {str(err).splitlines()[0]}); "
            "the file is truncated or corrupt. Start a new run, or restore the file."
        ) from None
    if not isinstance(state, dict) or "model" not in state or "step" not in state:
        raise ValueError(f"{path}: not a resnetlab training state (missing model/step)")
    return state
