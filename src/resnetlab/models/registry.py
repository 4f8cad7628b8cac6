"""The single list of models. `create_model(name, **kwargs)` and `list_models(pattern)` drive
the CLI, the docs table and the generic tests."""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    """What a registered name means: a class, the hyperparameters the name fixes, and defaults."""

    name: str
    cls: type[nn.Module]
    family: str  # "imagenet" | "cifar" | "preact" | ...
    depth: int
    fixed: dict[str, Any]
    defaults: dict[str, Any] = field(default_factory=dict)
    input_size: tuple[int, int, int] = (3, 224, 224)
    description: str = ""

    def allowed_kwargs(self) -> list[str]:
        params = inspect.signature(self.cls.__init__).parameters
        return sorted(k for k in params if k != "self" and k not in self.fixed)

    @property
    def default_cfg(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "depth": self.depth,
            "input_size": self.input_size,
            **self.defaults,
        }


_REGISTRY: dict[str, ModelSpec] = {}
_BUILDERS: list[Callable[[], None]] = []


def register_model(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, in natural order."""
    return sorted((n for n in _REGISTRY if fnmatch.fnmatch(n, pattern)), key=_natural_key)


def get_model_spec(name: str) -> ModelSpec:
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `resnetlab models`"
        raise ValueError(f"unknown model {name!r}{hint}")
    return _REGISTRY[name]


def create_model(name: str, *, weights: str | None = None, **kwargs: Any) -> nn.Module:
    """Build a registered model. Keyword arguments override the name's defaults; unknown ones
    are an error (never silently dropped). `weights`: a published tag ("DEFAULT",
    "IMAGENET1K_V2", ...) or a weights file; see `resnetlab.models.weights`."""
    if weights is not None:  # build to fit the weights, load them, adapt in_chans / head
        from .weights import create_pretrained

        return create_pretrained(name, weights, **kwargs)
    spec = get_model_spec(name)
    allowed = spec.allowed_kwargs()
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        fixed = [k for k in unknown if k in spec.fixed]
        detail = (
            f"{', '.join(fixed)} {'is' if len(fixed) == 1 else 'are'} fixed by the name {name!r}"
            if fixed
            else f"accepted: {', '.join(allowed)}"
        )
        raise ValueError(f"unknown argument(s) {', '.join(unknown)} for model {name!r}; {detail}")
    model = spec.cls(**spec.fixed, **{**spec.defaults, **kwargs})
    cfg = spec.default_cfg
    cfg.update(kwargs)
    in_chans = kwargs.get("in_chans", spec.defaults.get("in_chans", 3))
    cfg["input_size"] = (in_chans, *spec.input_size[1:])
    model.default_cfg = cfg
    return model
