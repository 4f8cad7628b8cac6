"""Shortcut options of He et al. 2015 (Sec. 3.3/4.1) on top of the general skip weight W.

A: identity, zero-padding identity where the shape changes (parameter-free).
B: identity, projection (1×1 conv + norm) where the shape changes (torchvision's choice).
C: projection on every shortcut.
none: no shortcut at all — the plain twin with identical layers.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .skip import make_skip_weight

SHORTCUT_OPTIONS = ("A", "B", "C", "none")


def check_shortcut(option: str) -> str:
    if option not in SHORTCUT_OPTIONS:
        raise ValueError(
            f"unknown shortcut option {option!r}; choose 'A' (zero-pad), 'B' (projection where "
            "the shape changes), 'C' (projection everywhere) or 'none' (plain net)"
        )
    return option


def make_shortcut(
    option: str,
    in_chs: int,
    out_chs: int,
    stride: int = 1,
    norm_layer: Callable[[int], nn.Module] | None = nn.BatchNorm2d,
) -> nn.Module | None:
    """The shortcut W of one residual unit for an option, or None for the plain twin."""
    check_shortcut(option)
    if option == "none":
        return None
    reshapes = stride != 1 or in_chs != out_chs
    if option == "C" or (option == "B" and reshapes):
        mode = "projection"
    elif option == "A" and reshapes:
        mode = "pad"
    else:
        mode = "identity"
    return make_skip_weight(mode, in_chs, out_chs, stride=stride, norm_layer=norm_layer)
