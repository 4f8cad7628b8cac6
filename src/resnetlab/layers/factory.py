"""Norm and activation factories: choices passed as values (`act_layer="relu"` or a class)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

_ACTS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "identity": nn.Identity,
}
_NORMS: dict[str, Callable[[int], nn.Module]] = {
    "batch": nn.BatchNorm2d,
    "batchnorm": nn.BatchNorm2d,
    "group": lambda c: nn.GroupNorm(min(32, c), c),
    "none": lambda c: nn.Identity(),
}


def get_act_layer(act: str | type[nn.Module] | None) -> type[nn.Module]:
    """Resolve an activation given by name or class (default ReLU)."""
    if act is None:
        return nn.ReLU
    if isinstance(act, str):
        if act.lower() not in _ACTS:
            raise ValueError(f"unknown activation {act!r}; choose one of {', '.join(_ACTS)}")
        return _ACTS[act.lower()]
    return act


def make_act(act: str | type[nn.Module] | None, inplace: bool = True) -> nn.Module:
    """Instantiate an activation; in-place where the class supports it and the caller allows."""
    cls = get_act_layer(act)
    if inplace:
        try:
            return cls(inplace=True)  # type: ignore[call-arg]
        except TypeError:
            pass
    return cls()


def get_norm_layer(norm: str | Callable[[int], nn.Module] | None) -> Callable[[int], nn.Module]:
    """Resolve a norm layer given by name or callable (default BatchNorm2d)."""
    if norm is None:
        return nn.BatchNorm2d
    if isinstance(norm, str):
        if norm.lower() not in _NORMS:
            raise ValueError(f"unknown norm layer {norm!r}; choose one of {', '.join(_NORMS)}")
        return _NORMS[norm.lower()]
    return norm
