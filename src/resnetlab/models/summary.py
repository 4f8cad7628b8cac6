"""Parameter and FLOP counts, the registry table, and per-stage summaries.

FLOPs are counted by `torch.utils.flop_counter` on the meta device (no memory, no compute).
It counts 2 FLOPs per multiply-add; we report multiply-adds, the unit of He et al. 2015 and of
torchvision's "GFLOPS" column, so our numbers sit beside theirs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..layers import skip_weight_kind
from .registry import create_model, get_model_spec, list_models


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def parse_input_size(text: str) -> tuple[int, int, int]:
    """'1x28x28' -> (1, 28, 28)."""
    try:
        c, h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"input size must look like CxHxW, e.g. 1x28x28, got {text!r}") from None
    if min(c, h, w) < 1:
        raise ValueError(f"input size must be positive, got {text!r}")
    return c, h, w


def _meta_model(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        model = create_model(name, **kwargs)
    return model.eval()


def count_macs(model: nn.Module, input_size: tuple[int, int, int]) -> tuple[int, dict[str, int]]:
    """Multiply-adds of one forward pass of a single image, total and per top-level module."""
    device = next(model.parameters()).device
    x = torch.zeros((1, *input_size), device=device)
    counter = FlopCounterMode(display=False, depth=1)
    with counter, torch.no_grad():
        model(x)
    per_module = counter.get_flop_counts()
    top = {
        k.split(".", 1)[1]: sum(v.values()) // 2
        for k, v in per_module.items()
        if k.count(".") == 1  # "Global.<child>"
    }
    return counter.get_total_flops() // 2, top


@dataclass
class ModelRow:
    name: str
    family: str
    depth: int
    params: int
    gmacs: float
    input_size: tuple[int, int, int]
    description: str


def model_table(pattern: str = "*") -> list[ModelRow]:
    """One row per registered model matching `pattern`, counted at its default input size."""
    rows = []
    for name in list_models(pattern):
        spec = get_model_spec(name)
        model = _meta_model(name)
        macs, _ = count_macs(model, spec.input_size)
        rows.append(
            ModelRow(
                name,
                spec.family,
                spec.depth,
                count_params(model),
                macs / 1e9,
                spec.input_size,
                spec.description,
            )
        )
    return rows


def format_table(rows: list[ModelRow]) -> str:
    header = ("model", "family", "depth", "params", "GMACs", "input", "description")
    lines = [
        (
            r.name,
            r.family,
            str(r.depth),
            f"{r.params:,}",
            f"{r.gmacs:.3f}",
            "x".join(map(str, r.input_size)),
            r.description,
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    right = {2, 3, 4}

    def fmt(cells):
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, lines)])


def summarize(name: str, input_size: tuple[int, int, int] | None = None, **kwargs) -> str:
    """Per-stage output shapes, parameters and multiply-adds, and the skip connections by kind."""
    spec = get_model_spec(name)
    input_size = input_size or spec.input_size
    kwargs.setdefault("in_chans", input_size[0])
    model = _meta_model(name, **kwargs)
    x = torch.zeros((1, *input_size), device="meta")
    model.check_input(x)

    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [
        m.register_forward_hook(lambda _m, _i, out, n=n: shapes.__setitem__(n, tuple(out.shape)))
        for n, m in model.named_children()
    ]
    try:
        total, per_module = count_macs(model, input_size)
    finally:
        for h in hooks:
            h.remove()

    rows = [("input", "x".join(map(str, (1, *input_size))), "", "")]
    for child_name, child in model.named_children():
        if child_name not in shapes or child_name in ("avgpool", "relu", "final_act"):
            continue
        params = count_params(child)
        macs = per_module.get(child_name, 0)
        if params == 0 and macs == 0:
            continue
        rows.append(
            (
                child_name,
                "x".join(map(str, shapes[child_name])),
                f"{params:,}",
                f"{macs / 1e6:,.2f}",
            )
        )
    widths = [
        max(len(r[i]) for r in [("module", "output", "params", "MMACs"), *rows]) for i in range(4)
    ]
    lines = [
        "  ".join(h.ljust(w) if i < 2 else h.rjust(w) for i, (h, w) in enumerate(zip(r, widths)))
        for r in [("module", "output", "params", "MMACs"), *rows]
    ]
    kinds = Counter(
        skip_weight_kind(getattr(u, "downsample", None)) for _, u in model.residual_units()
    )
    skip_text = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "none"
    return "\n".join(
        [
            f"{name}: {spec.description}",
            *lines,
            f"total: {count_params(model):,} parameters, {total / 1e9:.3f} GMACs "
            f"at {'x'.join(map(str, input_size))}",
            f"residual units: {len(model.residual_units())}; shortcuts: {skip_text}",
        ]
    )
