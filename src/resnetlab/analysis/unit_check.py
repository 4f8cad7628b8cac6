"""Bridge between the NumPy reference (`reference.py`) and the library's torch `BasicBlock`.

`reference_params(block)` reads a BasicBlock's weights into `ResidualUnitParams`;
`check_against_autograd(block, x, grad_y)` runs both implementations and returns the largest
differences, plus how ∇X splits between the residual branch and the shortcut.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from resnetlab.analysis.reference import (
    BatchNormEval,
    ResidualUnitParams,
    SkipShare,
    skip_share,
    unit_backward,
    unit_forward,
)
from resnetlab.layers import FixedScale, LearnedScale, PadIdentity, Projection

_ACTS = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float64).numpy()


def _norm(module: nn.Module, where: str) -> BatchNormEval | None:
    if isinstance(module, nn.Identity):
        return None
    if isinstance(module, nn.BatchNorm2d):
        if module.training:
            raise ValueError(
                f"{where} is a BatchNorm2d in training mode (batch statistics); call "
                "block.eval() or build the block with norm_layer=nn.Identity"
            )
        if not module.track_running_stats or module.running_mean is None:
            raise ValueError(f"{where} has no running statistics; the reference needs them")
        ones = torch.ones(module.num_features)
        zeros = torch.zeros(module.num_features)
        return BatchNormEval(
            gamma=_np(module.weight if module.affine else ones),
            beta=_np(module.bias if module.affine else zeros),
            mean=_np(module.running_mean),
            var=_np(module.running_var),
            eps=float(module.eps),
        )
    raise ValueError(
        f"{where} is a {type(module).__name__}; the reference supports BatchNorm2d (eval mode) "
        "and nn.Identity"
    )


def reference_params(block: nn.Module) -> ResidualUnitParams:
    """Read a library `BasicBlock` (conv1, bn1, act1, conv2, bn2, act2, downsample) into NumPy."""
    for attr in ("conv1", "bn1", "conv2", "bn2", "act1", "act2"):
        if not hasattr(block, attr):
            raise ValueError(
                f"expected a BasicBlock with conv1/bn1/conv2/bn2; {type(block).__name__} has no {attr!r}"
            )
    if hasattr(block, "conv3"):
        raise ValueError("the reference covers the basic (two-conv) unit, not bottlenecks")
    if block.training and not isinstance(getattr(block, "drop_path", nn.Identity()), nn.Identity):
        raise ValueError("drop-path is random in training mode; call block.eval() first")
    act_types = {type(block.act1), type(block.act2)}
    if len(act_types) != 1 or next(iter(act_types)) not in _ACTS:
        raise ValueError("the reference supports a single ReLU, Tanh or Sigmoid activation")
    activation = _ACTS[type(block.act1)]
    conv1, conv2 = block.conv1, block.conv2
    for name, conv in (("conv1", conv1), ("conv2", conv2)):
        if conv.bias is not None or conv.groups != 1 or conv.dilation != (1, 1):
            raise ValueError(f"{name}: the reference expects bias-free, ungrouped, undilated convs")
        if conv.padding[0] != conv.padding[1] or conv.stride[0] != conv.stride[1]:
            raise ValueError(f"{name}: the reference expects square stride and padding")
    if conv2.stride[0] != 1 or conv1.padding[0] != conv2.padding[0]:
        raise ValueError("conv2 must have stride 1 and the same padding as conv1")

    params = dict(
        w1=_np(conv1.weight),
        w2=_np(conv2.weight),
        stride=int(conv1.stride[0]),
        padding=int(conv1.padding[0]),
        activation=activation,
        norm1=_norm(block.bn1, "bn1"),
        norm2=_norm(block.bn2, "bn2"),
    )
    ds = block.downsample
    if ds is None:
        params["shortcut"] = "none"
    elif isinstance(ds, nn.Identity):
        params["shortcut"] = "identity"
    elif isinstance(ds, FixedScale):
        params.update(shortcut="fixed", skip_scale=float(ds.scale))
    elif isinstance(ds, LearnedScale):
        params.update(shortcut="scalar", skip_scale=float(ds.scale.detach()))
    elif isinstance(ds, PadIdentity):
        params["shortcut"] = "pad"
    elif isinstance(ds, Projection) and isinstance(ds[0], nn.Conv2d):
        params.update(
            shortcut="projection",
            proj_weight=_np(ds[0].weight),
            proj_bias=None if ds[0].bias is None else _np(ds[0].bias),
            proj_norm=_norm(ds[1], "downsample[1]") if len(ds) > 1 else None,
        )
    else:
        raise ValueError(f"unsupported shortcut module {type(ds).__name__}")
    return ResidualUnitParams(**params)


@dataclass(frozen=True)
class UnitCheck:
    """Largest |reference - autograd| per quantity, relative to that quantity's largest value."""

    max_rel_error: dict[str, float]
    share: SkipShare

    @property
    def worst(self) -> float:
        return max(self.max_rel_error.values())


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    scale = max(float(np.max(np.abs(b))), 1e-300)
    return float(np.max(np.abs(a - b))) / scale


def check_against_autograd(
    block: nn.Module, x: torch.Tensor, grad_y: torch.Tensor | None = None
) -> UnitCheck:
    """Run the NumPy reference and torch autograd on the same block, input and ∇Y (float64).

    The block is evaluated on a float64 deep copy, so the caller's block is left untouched.
    """
    import copy

    if x.dim() != 4:
        raise ValueError(f"x must be (N, C, H, W); got shape {tuple(x.shape)}")
    params = reference_params(block)
    ref_block = copy.deepcopy(block).to(torch.float64)
    xt = x.detach().to(torch.float64).clone().requires_grad_(True)
    y = ref_block(xt)
    if grad_y is None:
        grad_y = torch.randn_like(y)
    grad_y = grad_y.detach().to(torch.float64)
    y.backward(grad_y)

    y_ref, cache = unit_forward(_np(xt), params)
    g = unit_backward(_np(grad_y), cache, params)

    err = {
        "y": _rel(y_ref, _np(y)),
        "x": _rel(g.x, _np(xt.grad)),
        "w1": _rel(g.w1, _np(ref_block.conv1.weight.grad)),
        "w2": _rel(g.w2, _np(ref_block.conv2.weight.grad)),
    }
    for key, bn in (("bn1", ref_block.bn1), ("bn2", ref_block.bn2)):
        pair = g.norm1 if key == "bn1" else g.norm2
        if pair is not None and getattr(bn, "affine", False):
            err[f"{key}.weight"] = _rel(pair[0], _np(bn.weight.grad))
            err[f"{key}.bias"] = _rel(pair[1], _np(bn.bias.grad))
    ds = ref_block.downsample
    if params.shortcut == "projection":
        err["downsample.0.weight"] = _rel(g.proj_weight, _np(ds[0].weight.grad))
        if g.proj_bias is not None:
            err["downsample.0.bias"] = _rel(g.proj_bias, _np(ds[0].bias.grad))
        if g.proj_norm is not None and getattr(ds[1], "affine", False):
            err["downsample.1.weight"] = _rel(g.proj_norm[0], _np(ds[1].weight.grad))
            err["downsample.1.bias"] = _rel(g.proj_norm[1], _np(ds[1].bias.grad))
    if params.shortcut == "scalar":
        err["downsample.scale"] = _rel(np.asarray(g.skip_scale), _np(ds.scale.grad))
    return UnitCheck(max_rel_error=err, share=skip_share(g))
