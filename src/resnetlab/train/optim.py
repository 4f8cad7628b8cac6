"""Optimisers and learning-rate schedules.

The learning rate is a pure function of the global step (`lr_at`), set on the optimiser before
every step, so resuming needs only the step number to restore the schedule exactly.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import OptimConfig


def param_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool) -> list[dict]:
    """Two groups: weights that decay, and norm weights/biases (1-D tensors) that do not.

    Decaying BN scales and biases only shrinks them towards a value the next layer undoes; the
    common practice (Goyal et al. 2017; timm's `no_weight_decay`) excludes them.
    """
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 and not decay_norm_and_bias else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(
    model: nn.Module, cfg: OptimConfig, groups: list[dict] | None = None
) -> torch.optim.Optimizer:
    """SGD (momentum, optional Nesterov) or AdamW over `groups` (default: `param_groups`)."""
    if groups is None:
        groups = param_groups(model, cfg.weight_decay, cfg.decay_norm_and_bias)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas))
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def milestone_steps(cfg: OptimConfig, total_steps: int, steps_per_epoch: int) -> list[int]:
    """Step-schedule milestones converted to steps."""
    if cfg.milestone_unit == "step":
        return [int(m) for m in cfg.milestones]
    if cfg.milestone_unit == "epoch":
        return [int(round(m * steps_per_epoch)) for m in cfg.milestones]
    return [int(round(m * total_steps)) for m in cfg.milestones]


def lr_at(step: int, cfg: OptimConfig, total_steps: int, steps_per_epoch: int) -> float:
    """Learning rate for optimiser step `step` (0-based) of `total_steps`."""
    base = cfg.lr
    if cfg.warmup_steps and step < cfg.warmup_steps:
        if cfg.warmup == "constant":  # He et al. 2015 (ResNet-110): 0.01 until training starts
            return base * cfg.warmup_factor
        frac = step / cfg.warmup_steps
        return base * (cfg.warmup_factor + (1 - cfg.warmup_factor) * frac)
    if cfg.schedule == "constant":
        return base
    if cfg.schedule == "step":  # He et al. 2015: divide by 10 at 32k and 48k iterations
        passed = sum(step >= m for m in milestone_steps(cfg, total_steps, steps_per_epoch))
        return base * cfg.gamma**passed
    start = cfg.warmup_steps if cfg.schedule != "onecycle" else 0
    span = max(1, total_steps - start)
    t = min(1.0, (step - start) / span)
    if cfg.schedule == "cosine":
        floor = cfg.min_lr_factor
        return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))
    if cfg.schedule == "linear":
        return base * (1 - t)
    if cfg.schedule == "onecycle":  # triangular one-cycle (Smith 2018; airbench's shape)
        peak = max(1, int(cfg.pct_start * total_steps))
        if step < peak:
            return base * (cfg.warmup_factor + (1 - cfg.warmup_factor) * step / peak)
        return base * max(0.0, (total_steps - step) / max(1, total_steps - peak))
    raise ValueError(f"unknown schedule {cfg.schedule!r}")


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    # "lr_scale" (timm's convention): a group's multiplier, e.g. a lower backbone lr when fine-tuning
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
