"""Gradient flow in deep nets, measured with hooks that leave no trace.

Two kinds of numbers per backward pass:

* per weighted layer l (every Conv2d / Linear outside the shortcuts, in forward order):
  ‖∂R/∂W_l‖ (the weight gradient the optimiser sees) and ‖∂R/∂Z_l‖ (the gradient at its output);
* per skip unit (whatever `model.residual_units()` lists): how much of the gradient reaching the
  unit's input left through the residual branch (measured at the input of the branch's first
  layer) and how much through the shortcut W (measured at W's input). For a residual unit
  ∇X = ∇X_residual + ∇X_skip (REFERENCE.md); the plain twin has no skip term.

`GradientFlowRecorder` is a context manager usable inside any training loop; every forward pass
with grad enabled starts a new record, filled by the following backward pass.
`measure_gradient_flow` does one forward/backward and restores the model's `.grad`s and buffers,
so measuring at initialisation does not change the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_WEIGHTED = (nn.Conv2d, nn.Linear)


@dataclass
class GradientFlow:
    """Gradient norms of one backward pass."""

    layer_names: list[str]
    weight_grad_norms: np.ndarray  # ‖∂R/∂W_l‖_F per weighted layer
    output_grad_norms: np.ndarray  # ‖∂R/∂Z_l‖ per weighted layer (NaN if not reached)
    unit_names: list[str] = field(default_factory=list)
    residual_grad_norms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    skip_grad_norms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    loss: float = float("nan")

    @property
    def skip_ratio(self) -> np.ndarray:
        """‖∇ via residual branch‖ / ‖∇ via skip‖ per unit (inf where there is no skip)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(
                self.skip_grad_norms > 0,
                self.residual_grad_norms / self.skip_grad_norms,
                np.inf,
            )

    @property
    def first_to_last(self) -> float:
        """‖∂R/∂W_first‖ / ‖∂R/∂W_last‖ over the weighted layers (the head included)."""
        return float(self.weight_grad_norms[0] / self.weight_grad_norms[-1])

    def to_dict(self) -> dict:
        return {
            "layer_names": list(self.layer_names),
            "weight_grad_norms": [float(v) for v in self.weight_grad_norms],
            "output_grad_norms": [float(v) for v in self.output_grad_norms],
            "unit_names": list(self.unit_names),
            "residual_grad_norms": [float(v) for v in self.residual_grad_norms],
            "skip_grad_norms": [float(v) for v in self.skip_grad_norms],
            "loss": float(self.loss),
        }


def _skip_weight(unit: nn.Module) -> tuple[bool, nn.Module | None]:
    """(is a recognised unit, its W module or None for a plain unit)."""
    if hasattr(unit, "downsample"):  # residual blocks: BasicBlock, Bottleneck, pre-act
        return True, unit.downsample
    if hasattr(unit, "weight") and isinstance(unit.weight, nn.Module) and hasattr(unit, "merge"):
        return True, unit.weight  # SkipConnection of the generic stacks
    return False, None


def _branch_entries(model: nn.Module, name: str, unit: nn.Module) -> list[nn.Module]:
    """Candidates for the residual branch's first module, in the order they may be called."""
    if hasattr(unit, "downsample"):
        return [
            m for m in (getattr(unit, "bn1", None), getattr(unit, "conv1", None)) if m is not None
        ]
    # Generic stack: the skip ending at layer l with span s bypasses layers l-s+1..l, whose first
    # layer is model.layers[l - s] (0-based).
    layer = int(name.rsplit(".", 1)[-1])
    return [model.layers[layer - model.span]]


def weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Conv2d / Linear layers in registration (= forward) order, leaving out shortcut weights."""
    skip_modules: set[int] = set()
    units = model.residual_units() if hasattr(model, "residual_units") else []
    for _, unit in units:
        ok, w = _skip_weight(unit)
        if ok and w is not None:
            skip_modules |= {id(m) for m in w.modules()}
    return [
        (n, m)
        for n, m in model.named_modules()
        if isinstance(m, _WEIGHTED) and id(m) not in skip_modules
    ]


class GradientFlowRecorder:
    """Context manager: hooks on entry, all removed on exit.

    with GradientFlowRecorder(model) as rec:
        loss = loss_fn(model(x), y); loss.backward()
        flow = rec.result()     # GradientFlow of that backward pass
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.layers = weighted_layers(model)
        if not self.layers:
            raise ValueError(f"{type(model).__name__} has no Conv2d/Linear layers to measure")
        self.units = model.residual_units() if hasattr(model, "residual_units") else []
        self._handles: list = []
        self._reset()

    # -- state of the current record --
    def _reset(self) -> None:
        self._wgrad: dict[str, float] = {}
        self._ograd: dict[str, float] = {}
        self._unit_grad: dict[tuple[str, str], float] = {}  # (unit, role) -> norm, accumulated
        self._unit_src: dict[tuple[str, str], int] = {}  # (unit, role) -> id(input tensor)
        self._unit_order: dict[str, list[str]] = {}

    def __enter__(self) -> GradientFlowRecorder:
        if self._handles:
            raise ValueError("this recorder is already active; use one `with` block at a time")
        model = self.model
        self._handles.append(model.register_forward_pre_hook(lambda m, a: self._reset()))
        for name, layer in self.layers:
            self._handles.append(layer.weight.register_hook(self._norm_into("_wgrad", name)))
            self._handles.append(layer.register_forward_hook(self._output_hook(name)))
        for uname, unit in self.units:
            ok, w = _skip_weight(unit)
            if not ok:
                continue
            roles: list[tuple[str, nn.Module]] = []
            if w is not None:
                roles.append(("skip", w))
            roles += [(f"entry{i}", m) for i, m in enumerate(_branch_entries(model, uname, unit))]
            for role, module in roles:
                self._handles.append(
                    module.register_forward_pre_hook(self._input_hook(uname, role))
                )
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook this recorder registered."""
        for h in self._handles:
            h.remove()
        self._handles.clear()

    # -- hooks --
    def _norm_into(self, store: str, key) -> Callable[[torch.Tensor], None]:
        # The store is looked up when the hook fires: every forward pass starts fresh dicts.
        def hook(grad: torch.Tensor) -> None:
            getattr(self, store)[key] = float(grad.detach().double().norm())

        return hook

    def _output_hook(self, name: str):
        def hook(module, args, output):
            if isinstance(output, torch.Tensor) and output.requires_grad:
                output.register_hook(self._norm_into("_ograd", name))

        return hook

    def _input_hook(self, unit: str, role: str):
        def hook(module, args):
            if not args or not isinstance(args[0], torch.Tensor):
                return None
            x = args[0]
            self._unit_src[(unit, role)] = id(x)
            self._unit_order.setdefault(unit, []).append(role)
            if not (x.requires_grad and torch.is_grad_enabled()):
                return None
            # A fresh view gives this consumer its own autograd node, so the hook sees only the
            # gradient that flows back through this module, not the input's total gradient.
            v = x.view_as(x)
            v.register_hook(self._norm_into("_unit_grad", (unit, role)))
            return (v, *args[1:])

        return hook

    def result(self) -> GradientFlow:
        """The gradient norms of the last backward pass."""
        names = [n for n, _ in self.layers]
        nan = float("nan")
        unit_names, res, skip = [], [], []
        for uname, unit in self.units:
            ok, w = _skip_weight(unit)
            if not ok:
                continue
            order = self._unit_order.get(uname, [])
            entries = [r for r in order if r.startswith("entry")]
            if w is not None and ("skip" in order):
                src = self._unit_src[(uname, "skip")]
                same = [r for r in entries if self._unit_src[(uname, r)] == src]
                entry = same[0] if same else (entries[0] if entries else None)
                s = self._unit_grad.get((uname, "skip"), 0.0)
            else:
                entry = entries[0] if entries else None
                s = 0.0
            unit_names.append(uname)
            res.append(self._unit_grad.get((uname, entry), nan) if entry else nan)
            skip.append(s)
        return GradientFlow(
            layer_names=names,
            weight_grad_norms=np.array([self._wgrad.get(n, nan) for n in names]),
            output_grad_norms=np.array([self._ograd.get(n, nan) for n in names]),
            unit_names=unit_names,
            residual_grad_norms=np.array(res, dtype=np.float64),
            skip_grad_norms=np.array(skip, dtype=np.float64),
        )


def measure_gradient_flow(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> GradientFlow:
    """One forward/backward on (inputs, targets) and its gradient norms.

    The loss defaults to cross-entropy. The model's mode, parameters, `.grad`s and buffers
    (BatchNorm running statistics) are exactly as before when this returns.
    """
    if not isinstance(inputs, torch.Tensor):
        raise ValueError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}")
    params = list(model.parameters())
    saved_grads = [p.grad for p in params]
    saved_buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    for p in params:
        p.grad = None
    try:
        with GradientFlowRecorder(model) as rec, torch.enable_grad():
            out = model(inputs)
            # Loss in at least float32 (bf16 autocast outputs), never below the model's dtype.
            out = out.to(torch.promote_types(out.dtype, torch.float32))
            if targets is None:
                loss = out.pow(2).mean()  # no labels: any scalar function of the output
            else:
                loss = (loss_fn or F.cross_entropy)(out, targets)
            loss.backward()
            flow = rec.result()
            flow.loss = float(loss.detach())
    finally:
        for p, g in zip(params, saved_grads):
            p.grad = g
        with torch.no_grad():
            for n, b in model.named_buffers():
                b.copy_(saved_buffers[n])
    return flow
