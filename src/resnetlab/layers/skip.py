"""The general skip connection of the chapter: Y_l = f(Z_l + W∘S_{l-s}).

S_{l-s} is the activated output Y_{l-s} (the original proposal) or the linear output Z_{l-s};
W matches dimensions and is one of the modes below. Residual units, the generic stacks and the
dense/U-Net merges all take their W from `make_skip_weight`, so there is one definition of it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

WEIGHT_MODES = ("identity", "fixed", "scalar", "gate", "projection", "pad")
MERGE_MODES = ("add", "concat")
KINDS = ("conv", "dense")


def _broadcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape a per-channel vector so it broadcasts over (N, C, ...) tensors."""
    return v.view(1, -1, *([1] * (x.dim() - 2)))


class PadIdentity(nn.Module):
    """Option A: parameter-free identity with spatial subsampling and zero-padded extra channels
    (He et al. 2015, Sec. 4.2)."""

    def __init__(self, in_features: int, out_features: int, stride: int = 1):
        super().__init__()
        if out_features < in_features:
            raise ValueError(
                f"a zero-padding shortcut cannot shrink {in_features} to {out_features} "
                "channels; use shortcut='B' (projection) instead"
            )
        self.in_features, self.out_features, self.stride = in_features, out_features, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        extra = self.out_features - self.in_features
        if extra:
            before = extra // 2
            pad = [0, 0] * (x.dim() - 2) + [before, extra - before]
            x = F.pad(x, pad)
        return x

    def extra_repr(self) -> str:
        return f"{self.in_features}->{self.out_features}, stride={self.stride}"


class FixedScale(nn.Module):
    """W = a fixed scalar (He et al. 2016 tried 0.5 on the shortcut: it trains worse)."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


class LearnedScale(nn.Module):
    """W = one learned scalar, initialised to `init`."""

    def __init__(self, init: float = 1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class Gate(nn.Module):
    """W = sigmoid(b), a learned per-channel gate on the shortcut (highway-style,
    "shortcut-only gating" in He et al. 2016). b starts at `bias` so the gate starts open."""

    def __init__(self, features: int, bias: float = 2.0):
        super().__init__()
        self.logit = nn.Parameter(torch.full((features,), float(bias)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * _broadcast(torch.sigmoid(self.logit), x)


class Projection(nn.Sequential):
    """W = a learned projection: 1×1 conv (or linear) + optional norm. Options B and C.

    A Sequential so the state_dict keys are `0.weight`, `1.*` — torchvision's `downsample.0/1`.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        stride: int = 1,
        kind: str = "conv",
        norm_layer: Callable[[int], nn.Module] | None = None,
    ):
        if kind == "conv":
            layers: list[nn.Module] = [
                nn.Conv2d(in_features, out_features, 1, stride=stride, bias=norm_layer is None)
            ]
        else:
            layers = [nn.Linear(in_features, out_features, bias=norm_layer is None)]
        if norm_layer is not None:
            layers.append(norm_layer(out_features))
        super().__init__(*layers)


def make_skip_weight(
    mode: str,
    in_features: int,
    out_features: int,
    *,
    stride: int = 1,
    kind: str = "conv",
    norm_layer: Callable[[int], nn.Module] | None = None,
    scale: float = 0.5,
) -> nn.Module:
    """Build the W of a skip connection.

    mode: "identity" (W = I), "fixed" (W = `scale`), "scalar" (learned scalar), "gate" (learned
    per-channel sigmoid gate), "projection" (1×1 conv / linear + optional norm), "pad" (option A:
    subsample + zero-pad channels). Shape-preserving modes need in == out and stride 1.
    """
    if mode not in WEIGHT_MODES:
        raise ValueError(f"unknown skip weight {mode!r}; choose one of {', '.join(WEIGHT_MODES)}")
    if kind not in KINDS:
        raise ValueError(f"unknown layer kind {kind!r}; choose 'conv' or 'dense'")
    if kind == "dense" and stride != 1:
        raise ValueError("a dense (fully-connected) skip has no stride; pass stride=1")
    if mode == "projection":
        return Projection(
            in_features, out_features, stride=stride, kind=kind, norm_layer=norm_layer
        )
    if mode == "pad":
        return PadIdentity(in_features, out_features, stride)
    if in_features != out_features or stride != 1:
        raise ValueError(
            f"skip weight {mode!r} keeps the shape, but the skip goes from {in_features} to "
            f"{out_features} features with stride {stride}; use 'projection' or 'pad'"
        )
    if mode == "identity":
        return nn.Identity()
    if mode == "fixed":
        return FixedScale(scale)
    if mode == "scalar":
        return LearnedScale(1.0)
    return Gate(out_features)


def skip_weight_kind(module: nn.Module | None) -> str:
    """Name the W of a skip for summaries: none, identity, pad (A), projection, fixed, ..."""
    if module is None:
        return "none"
    return {
        nn.Identity: "identity",
        PadIdentity: "pad (A)",
        Projection: "projection",
        FixedScale: "fixed",
        LearnedScale: "scalar",
        Gate: "gate",
    }.get(type(module), type(module).__name__)


class SkipConnection(nn.Module):
    """Merge a layer's linear output Z_l with W∘S_{l-s}: add (residual) or concat (dense/U-Net).

    `forward(z, s)` returns Z_l + W(s) or cat[Z_l, W(s)] along the feature dimension; the caller
    applies the activation f, so the formula reads Y_l = f(skip(Z_l, S_{l-s})).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        weight: str = "identity",
        merge: str = "add",
        kind: str = "conv",
        stride: int = 1,
        norm_layer: Callable[[int], nn.Module] | None = None,
        scale: float = 0.5,
    ):
        super().__init__()
        if merge not in MERGE_MODES:
            raise ValueError(f"unknown merge {merge!r}; choose 'add' or 'concat'")
        self.merge = merge
        self.weight = make_skip_weight(
            weight,
            in_features,
            out_features,
            stride=stride,
            kind=kind,
            norm_layer=norm_layer,
            scale=scale,
        )

    def forward(self, z: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        ws = self.weight(s)
        if self.merge == "add":
            return z + ws
        return torch.cat([z, ws], dim=1)

    def extra_repr(self) -> str:
        return f"merge={self.merge}"
