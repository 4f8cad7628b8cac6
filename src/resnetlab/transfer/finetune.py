"""Fine-tuning strategies: which parameters train, and at what learning rate.

* "none"    full fine-tune: everything trains (optionally the backbone at a lower lr).
* "linear"  linear probe: only the head trains; the backbone is frozen and its BatchNorm layers
            stay in eval mode, so their running statistics are not touched either.
* "gradual" gradual unfreezing (Howard & Ruder 2018, ULMFiT): the head alone first, then one
            more stage from the top every `unfreeze_every` epochs, the stem last.

`backbone_lr_scale` multiplies the learning rate of every non-head parameter (discriminative
learning rates: pretrained features need smaller steps than a freshly initialised head). It is
carried as `lr_scale` in each optimiser param group; `train.optim.set_lr` honours it.

The training engine calls `setup_finetune(model, optim_cfg)` once after building the model, takes
its `param_groups` for the optimiser, and calls `set_epoch(epoch)` before every epoch, so the
frozen set is a function of the epoch and resuming mid-run reproduces it exactly.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..models.weights import head_name

FREEZE_MODES = ("none", "linear", "gradual")
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)


def model_parts(model: nn.Module) -> list[tuple[str, list[str]]]:
    """The model cut into parts from input to output, as (part name, module-name prefixes):
    "stem", then each stage (`model.stages()`, or each residual unit / layer), then "head".
    Modules outside every listed prefix (e.g. a final norm) belong to the last stage."""
    head = head_name(model)
    if head is None:
        raise ValueError(
            f"{type(model).__name__} has no classifier (fc/head) to fine-tune; "
            "freezing needs to know which layers are the head"
        )
    if hasattr(model, "stages"):
        stages = [name for name, _ in model.stages()]
    elif hasattr(model, "layers"):
        stages = [f"layers.{i}" for i in range(len(model.layers))]
    else:
        stages = [n for n, _ in model.named_children() if n != head]
    top = [n for n, _ in model.named_children()]
    first_stage_top = stages[0].split(".")[0] if stages else head
    stem = [n for n in top[: top.index(first_stage_top)] if n != head]
    if hasattr(model, "layers") and not hasattr(model, "stages"):
        stem = []  # skip stacks: the first layer is the stem
    parts: list[tuple[str, list[str]]] = []
    if stem:
        parts.append(("stem", stem))
    parts += [(s, [s]) for s in stages]
    listed = {p for _, prefixes in parts for p in prefixes} | {head}
    rest = [n for n in top if n not in listed and not any(s.startswith(n + ".") for s in stages)]
    if rest and parts:  # final norm / activation / pooling: with the top stage
        parts[-1] = (parts[-1][0], parts[-1][1] + rest)
    parts.append(("head", [head]))
    return parts


def _owner(name: str, parts: list[tuple[str, list[str]]]) -> int:
    for i, (_, prefixes) in enumerate(parts):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return i
    return 0  # unlisted: treat as the stem (frozen longest)


class Finetuner:
    """Freezes and unfreezes parts of `model` and builds its optimiser param groups."""

    def __init__(
        self,
        model: nn.Module,
        freeze: str = "none",
        backbone_lr_scale: float = 1.0,
        unfreeze_every: int = 1,
    ):
        check_finetune(freeze, backbone_lr_scale, unfreeze_every)
        self.model = model
        self.freeze = freeze
        self.backbone_lr_scale = float(backbone_lr_scale)
        self.unfreeze_every = int(unfreeze_every)
        self.parts = model_parts(model)
        self.head_index = len(self.parts) - 1
        self.frozen_parts: set[int] = set()
        self._part_of_param = {n: _owner(n, self.parts) for n, _ in model.named_parameters()}
        self._norm_part = {
            m: _owner(n, self.parts) for n, m in model.named_modules() if isinstance(m, _NORMS)
        }
        # A frozen part's norm layers stay in eval mode even when the engine calls model.train():
        # its statistics are part of the pretrained features (linear probe: "BN in eval").
        for m in self._norm_part:
            m.register_forward_pre_hook(self._keep_eval)
        self.set_epoch(0)

    def _keep_eval(self, module: nn.Module, args) -> None:
        if self._norm_part[module] in self.frozen_parts and module.training:
            module.train(False)

    def trainable_parts(self, epoch: int) -> list[int]:
        """Indices into `self.parts` that train during `epoch` (0-based)."""
        if self.freeze == "none":
            return list(range(len(self.parts)))
        if self.freeze == "linear":
            return [self.head_index]
        k = 1 + epoch // self.unfreeze_every  # head + (k - 1) parts below it
        return list(range(max(0, len(self.parts) - k), len(self.parts)))

    def set_epoch(self, epoch: int) -> None:
        """Set requires_grad (and norm-layer modes) for `epoch`."""
        trainable = set(self.trainable_parts(epoch))
        self.frozen_parts = set(range(len(self.parts))) - trainable
        for name, p in self.model.named_parameters():
            p.requires_grad_(self._part_of_param[name] in trainable)
        for m, part in self._norm_part.items():
            m.train(self.model.training and part not in self.frozen_parts)

    def frozen_parameters(self) -> list[str]:
        return [n for n, p in self.model.named_parameters() if not p.requires_grad]

    def describe(self, epoch: int) -> str:
        names = [self.parts[i][0] for i in self.trainable_parts(epoch)]
        scale = f", backbone lr x{self.backbone_lr_scale:g}" if self.backbone_lr_scale != 1 else ""
        return f"fine-tune {self.freeze}: training {', '.join(names)}{scale}"

    def param_groups(self, weight_decay: float, decay_norm_and_bias: bool) -> list[dict[str, Any]]:
        """Head groups first (so param_groups[0]["lr"] is the head's lr), then the backbone at
        `lr_scale = backbone_lr_scale`. Every parameter is included, frozen or not: frozen ones
        get no gradient, so SGD/AdamW skip them (no decay either), and gradual unfreezing needs
        them in the optimiser from the start."""
        buckets: dict[tuple[bool, bool], list[nn.Parameter]] = {}
        for name, p in self.model.named_parameters():
            is_head = self._part_of_param[name] == self.head_index
            no_decay = p.ndim <= 1 and not decay_norm_and_bias
            buckets.setdefault((not is_head, no_decay), []).append(p)
        groups = []
        for backbone in (False, True):
            for no_decay in (False, True):
                params = buckets.get((backbone, no_decay))
                if params:
                    groups.append(
                        {
                            "params": params,
                            "weight_decay": 0.0 if no_decay else weight_decay,
                            "lr_scale": self.backbone_lr_scale if backbone else 1.0,
                        }
                    )
        return groups


def check_finetune(freeze: str, backbone_lr_scale: float, unfreeze_every: int) -> None:
    """ValueError naming the first invalid fine-tuning setting."""
    if freeze not in FREEZE_MODES:
        raise ValueError(
            f"unknown freeze mode {freeze!r}; choose none (full fine-tune), linear (linear probe) "
            "or gradual (unfreeze one stage at a time)"
        )
    if (
        isinstance(backbone_lr_scale, bool)
        or not isinstance(backbone_lr_scale, int | float)
        or not 0 <= backbone_lr_scale <= 1e3
    ):
        raise ValueError(
            f"backbone_lr_scale must be a number >= 0 (1 = same lr as the head), got "
            f"{backbone_lr_scale!r}"
        )
    if (
        isinstance(unfreeze_every, bool)
        or not isinstance(unfreeze_every, int)
        or unfreeze_every < 1
    ):
        raise ValueError(f"unfreeze_every must be an integer >= 1 epoch, got {unfreeze_every!r}")


def setup_finetune(model: nn.Module, optim_cfg) -> Finetuner | None:
    """The engine's hook: a `Finetuner` when the config asks for freezing or a backbone lr
    scale (OptimConfig.freeze / backbone_lr_scale / unfreeze_every), else None."""
    freeze = getattr(optim_cfg, "freeze", "none")
    scale = getattr(optim_cfg, "backbone_lr_scale", 1.0)
    every = getattr(optim_cfg, "unfreeze_every", 1)
    if freeze == "none" and scale == 1.0:
        return None
    return Finetuner(model, freeze, scale, every)


__all__ = [
    "FREEZE_MODES",
    "Finetuner",
    "check_finetune",
    "model_parts",
    "setup_finetune",
]
