"""Training configuration: one dataclass per concern (model, data, optimisation, run), nested in
`TrainConfig`. Loaded from Python, a YAML/JSON file, or CLI flags; saved resolved in every run.

    cfg = TrainConfig(
        model=ModelConfig("resnet20"),
        data=DataConfig("fashion-mnist", train_subset=5000),
        optim=OptimConfig(epochs=2, lr=0.2, schedule="onecycle"),
        run=RunConfig(out="runs/demo", seed=0),
    )
    # or flat: TrainConfig.from_flat(model="resnet20", data="fashion-mnist", epochs=2, out="runs/demo")
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("constant", "step", "cosine", "onecycle", "linear")
WARMUPS = ("linear", "constant")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
PROGRESS = ("auto", "bar", "log", "none")


@dataclass
class ModelConfig:
    """name: a registered model (`resnetlab models`), or "skip_mlp" / "skip_cnn" for the generic
    skip stacks. kwargs go to the builder; num_classes and in_chans come from the data set."""

    name: str = "resnet20"
    kwargs: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None  # pretrained start: published tag (DEFAULT, ...) or weights file


@dataclass
class DataConfig:
    """name: fashion-mnist | mnist | cifar10 | cifar100 | digits | folder:PATH."""

    name: str = "fashion-mnist"
    data_dir: str | None = None
    download: bool = False
    train_subset: int | None = None  # first N training images (quick runs)
    test_subset: int | None = None  # first N test images (quick runs; full test set by default)
    val_split: int = 0  # images held out of the training set for validation (paper: 5000)
    batch_size: int = 128
    eval_batch_size: int = 512
    crop_padding: int | None = None  # px; None = data set default (2 for 28 px, 4 for 32 px)
    flip: bool | None = None  # None = data set default (off for digits/MNIST, on otherwise)
    cutout: int = 0  # px side of the cut-out square, 0 = off
    image_size: int | None = None  # folder data sets: resize to this many px
    num_workers: int = 2  # folder data sets only


@dataclass
class OptimConfig:
    """Optimiser, schedule and budget. Budget: `epochs`, or `steps` (iterations) when set."""

    optimizer: str = "sgd"
    lr: float = 0.1  # peak learning rate
    momentum: float = 0.9
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW
    weight_decay: float = 5e-4
    decay_norm_and_bias: bool = False  # False: no weight decay on norm weights and biases
    label_smoothing: float = 0.0
    epochs: int = 10
    steps: int | None = None  # iteration budget; overrides epochs
    schedule: str = "cosine"
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])  # step schedule
    milestone_unit: str = "fraction"  # "fraction" of the budget | "epoch" | "step"
    gamma: float = 0.1  # step schedule factor (the paper's ÷10)
    min_lr_factor: float = 0.0  # cosine floor, as a fraction of lr
    pct_start: float = 0.25  # one-cycle: fraction of the budget spent warming up
    warmup_steps: int = 0
    warmup: str = (
        "linear"  # "linear" ramp, or "constant" (He et al. 2015, ResNet-110: 0.01 for ~400 it)
    )
    warmup_factor: float = 0.1  # lr multiplier at the start of (or during constant) warm-up
    grad_clip: float | None = None
    # fine-tuning (resnetlab.transfer.finetune): none | linear (probe) | gradual (by stage)
    freeze: str = "none"
    unfreeze_every: int = 1  # gradual: epochs between unfreezing one more stage
    backbone_lr_scale: float = 1.0  # lr multiplier for every non-head parameter


@dataclass
class RunConfig:
    """Where and how a run executes."""

    out: str | None = None  # run folder; default runs/<model>-<data>-<time>
    resume: str | None = None  # run folder to continue; "auto" = `out` if it holds a checkpoint
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    channels_last: bool | None = None  # None = auto (on for conv nets)
    compile: bool = False
    deterministic: bool = True  # deterministic kernels (bitwise resume on CPU)
    checkpoint_every: int = 0  # also checkpoint every N steps (0: only at epoch ends)
    log_every: int = 50  # steps between steps.csv rows / log lines
    eval_every: int = 1  # epochs between evaluations (the last epoch always evaluates)
    progress: str = "auto"  # auto (bar on a TTY, log lines otherwise) | bar | log | none
    tta_flip: bool = False  # evaluate with horizontal-flip test-time augmentation
    threads: int | None = None  # torch CPU threads; None = torch's default


SECTIONS = {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig, "run": RunConfig}


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Nested dict {"model": {...}, "data": {...}, ...}; unknown keys are an error."""
        if not isinstance(d, dict):
            raise ValueError(f"a config must be a mapping of sections, got {type(d).__name__}")
        unknown = set(d) - set(SECTIONS) - {"meta"}
        if unknown:
            raise ValueError(
                f"unknown config section(s) {sorted(unknown)}; sections are {list(SECTIONS)}"
            )
        parts = {}
        for name, sec_cls in SECTIONS.items():
            sec = d.get(name) or {}
            if isinstance(sec, str) and name in ("model", "data"):
                sec = {"name": sec}
            names = {f.name for f in fields(sec_cls)}
            bad = set(sec) - names
            if bad:
                raise ValueError(
                    f"unknown key(s) {sorted(bad)} in config section {name!r}; valid: {sorted(names)}"
                )
            parts[name] = sec_cls(**sec)
        if isinstance(parts["optim"].betas, list):
            parts["optim"].betas = tuple(parts["optim"].betas)
        return cls(**parts)

    @classmethod
    def from_flat(cls, base: TrainConfig | None = None, **kw: Any) -> TrainConfig:
        """Build from flat keys (`epochs=3, lr=0.1, out=...`); `model=`/`data=` set the names.
        Each key must name a field of exactly one section."""
        cfg = dataclasses.replace(base) if base is not None else cls()
        cfg = cls.from_dict(cfg.to_dict())  # deep copy
        for key, value in kw.items():
            if key in ("model", "data") and isinstance(value, str):
                getattr(cfg, key).name = value
                continue
            if key == "model_kwargs":
                cfg.model.kwargs = dict(value)
                continue
            owners = [s for s, c in SECTIONS.items() if key in {f.name for f in fields(c)}]
            if not owners:
                raise ValueError(f"unknown config key {key!r}")
            if len(owners) > 1:
                raise ValueError(
                    f"config key {key!r} is ambiguous between sections {owners}; use a nested config"
                )
            setattr(getattr(cfg, owners[0]), key, value)
        return cfg

    @classmethod
    def load(cls, path: str | os.PathLike) -> TrainConfig:
        """Read a YAML or JSON config file (nested sections, or flat keys)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        text = path.read_text()
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml

                d = yaml.safe_load(text) or {}
            else:
                d = json.loads(text)
        except Exception as err:
            raise ValueError(f"{path}: cannot parse config ({err})") from None
        if not isinstance(d, dict):
            raise ValueError(f"{path}: a config file must hold a mapping, got {type(d).__name__}")
        if set(d) <= set(SECTIONS) | {"meta"}:
            return cls.from_dict(d)
        nested = {k: v for k, v in d.items() if k in SECTIONS and isinstance(v, dict)}
        flat = {k: v for k, v in d.items() if k not in nested}
        return cls.from_flat(cls.from_dict(nested), **flat)

    def validate(self) -> TrainConfig:
        """Raise ValueError naming the first invalid value and its valid range."""
        d, o, r = self.data, self.optim, self.run

        def need(ok: bool, msg: str):
            if not ok:
                raise ValueError(msg)

        need(
            isinstance(self.model.name, str) and self.model.name != "",
            "model name must be a non-empty string",
        )
        need(isinstance(self.model.kwargs, dict), "model kwargs must be a mapping")
        need(
            _is_int(d.batch_size) and d.batch_size >= 1,
            f"batch_size must be an integer >= 1, got {d.batch_size!r}",
        )
        need(
            _is_int(d.eval_batch_size) and d.eval_batch_size >= 1,
            f"eval_batch_size must be an integer >= 1, got {d.eval_batch_size!r}",
        )
        need(
            d.train_subset is None or (_is_int(d.train_subset) and d.train_subset >= 1),
            f"train_subset must be >= 1 image, got {d.train_subset!r}",
        )
        need(
            _is_int(d.val_split) and d.val_split >= 0,
            f"val_split must be an integer >= 0, got {d.val_split!r}",
        )
        need(
            d.crop_padding is None or (_is_int(d.crop_padding) and d.crop_padding >= 0),
            f"crop_padding must be >= 0 px, got {d.crop_padding!r}",
        )
        need(_is_int(d.cutout) and d.cutout >= 0, f"cutout must be >= 0 px, got {d.cutout!r}")
        need(
            o.optimizer in OPTIMIZERS,
            f"unknown optimizer {o.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}",
        )
        need(_is_num(o.lr) and o.lr > 0, f"lr must be a positive number, got {o.lr!r}")
        need(
            _is_num(o.momentum) and 0 <= o.momentum < 1,
            f"momentum must be in [0, 1), got {o.momentum!r}",
        )
        need(not (o.nesterov and o.momentum == 0), "nesterov needs momentum > 0")
        need(
            _is_num(o.weight_decay) and o.weight_decay >= 0,
            f"weight_decay must be >= 0, got {o.weight_decay!r}",
        )
        need(
            _is_num(o.label_smoothing) and 0 <= o.label_smoothing < 1,
            f"label_smoothing must be in [0, 1), got {o.label_smoothing!r}",
        )
        need(
            _is_int(o.epochs) and o.epochs >= 1, f"epochs must be an integer >= 1, got {o.epochs!r}"
        )
        need(
            o.steps is None or (_is_int(o.steps) and o.steps >= 1),
            f"steps must be an integer >= 1, got {o.steps!r}",
        )
        need(
            o.schedule in SCHEDULES,
            f"unknown schedule {o.schedule!r}; choose one of {', '.join(SCHEDULES)}",
        )
        need(
            o.milestone_unit in ("fraction", "epoch", "step"),
            f"milestone_unit must be fraction, epoch or step, got {o.milestone_unit!r}",
        )
        need(
            all(_is_num(m) and m >= 0 for m in o.milestones),
            f"milestones must be numbers >= 0, got {o.milestones!r}",
        )
        need(
            list(o.milestones) == sorted(o.milestones),
            f"milestones must be increasing, got {o.milestones!r}",
        )
        need(_is_num(o.gamma) and 0 < o.gamma <= 1, f"gamma must be in (0, 1], got {o.gamma!r}")
        need(0 <= o.min_lr_factor <= 1, f"min_lr_factor must be in [0, 1], got {o.min_lr_factor!r}")
        need(0 < o.pct_start < 1, f"pct_start must be in (0, 1), got {o.pct_start!r}")
        need(
            _is_int(o.warmup_steps) and o.warmup_steps >= 0,
            f"warmup_steps must be an integer >= 0, got {o.warmup_steps!r}",
        )
        need(
            o.warmup in WARMUPS, f"unknown warmup {o.warmup!r}; choose one of {', '.join(WARMUPS)}"
        )
        need(0 < o.warmup_factor <= 1, f"warmup_factor must be in (0, 1], got {o.warmup_factor!r}")
        need(
            o.grad_clip is None or (_is_num(o.grad_clip) and o.grad_clip > 0),
            f"grad_clip must be > 0, got {o.grad_clip!r}",
        )
        from ..transfer.finetune import check_finetune

        check_finetune(o.freeze, o.backbone_lr_scale, o.unfreeze_every)
        need(
            r.precision in PRECISIONS,
            f"unknown precision {r.precision!r}; choose one of {', '.join(PRECISIONS)}",
        )
        need(
            r.progress in PROGRESS,
            f"unknown progress mode {r.progress!r}; choose one of {', '.join(PROGRESS)}",
        )
        need(_is_int(r.seed) and r.seed >= 0, f"seed must be an integer >= 0, got {r.seed!r}")
        need(
            _is_int(r.checkpoint_every) and r.checkpoint_every >= 0,
            f"checkpoint_every must be >= 0 steps, got {r.checkpoint_every!r}",
        )
        need(
            _is_int(r.log_every) and r.log_every >= 1,
            f"log_every must be >= 1 step, got {r.log_every!r}",
        )
        need(
            _is_int(r.eval_every) and r.eval_every >= 1,
            f"eval_every must be >= 1 epoch, got {r.eval_every!r}",
        )
        need(
            r.threads is None or (_is_int(r.threads) and r.threads >= 1),
            f"threads must be >= 1, got {r.threads!r}",
        )
        need(
            r.device == "auto"
            or r.device == "cpu"
            or r.device == "mps"
            or r.device.startswith("cuda"),
            f"unknown device {r.device!r}; use auto, cpu, cuda or cuda:N",
        )
        return self


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
