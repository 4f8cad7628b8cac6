"""The training engine: `train(config) -> TrainResult`, built from `train_one_epoch` and
`evaluate` (torchvision references' split), with run folders, checkpoints and exact resume.

Exact resume on CPU: the data order and augmentation are a function of (seed, epoch) and the
batch position (see `resnetlab.data.loader`), the learning rate a function of the step, and a
checkpoint holds the model, optimiser, global RNG state and position. A run killed at any step
and resumed from its last checkpoint therefore ends with bitwise-identical weights.
"""

from __future__ import annotations

import json
import math
import shlex
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import AugmentConfig, InMemoryLoader, build_folder_loader, load_dataset
from .checkpoint import atomic_write_text, check_finite, load_state, save_state, save_weights
from .config import ModelConfig, TrainConfig
from .optim import build_optimizer, lr_at, set_lr
from .progress import EPOCH_FIELDS, STEP_FIELDS, CsvLog, Progress, TensorBoard


class NonFiniteLossError(RuntimeError):
    """The loss (or the weights) became NaN/inf; the last good checkpoint is kept."""


class TrainingInterrupted(KeyboardInterrupt):
    """SIGTERM or Ctrl-C arrived; a checkpoint was saved at `step` in `run_dir`."""

    def __init__(self, message: str, run_dir: Path, step: int, signum: int):
        super().__init__(message)
        self.run_dir, self.step, self.signum = run_dir, step, signum


@dataclass
class TrainResult:
    """What `train` returns (and writes to RUN/result.json).

    history: one dict per epoch with the columns of metrics.csv (errors in %, lr, img/s, times).
    final: the last epoch's row plus best_epoch / best_top1_err and totals.
    """

    run_dir: Path
    history: list[dict[str, Any]]
    final: dict[str, Any]
    config: dict[str, Any]
    status: str = "finished"
    resumed: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["run_dir"] = str(self.run_dir)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainResult:
        d = dict(d)
        d["run_dir"] = Path(d["run_dir"])
        return cls(**d)


# --------------------------------------------------------------------------- set-up helpers


def resolve_device(name: str) -> torch.device:
    """ "auto" -> cuda if available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    return dev


def cpu_supports_bf16() -> bool:
    """True when oneDNN has native bf16 kernels on this CPU (AVX512-BF16 / AMX). Without them
    bf16 autocast is emulated and many times slower than fp32 (measured ~10x on an AVX2 EPYC)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision != "auto":
        if precision == "fp16" and device.type == "cpu":
            raise ValueError("fp16 autocast is for CUDA; on CPU use --precision bf16 or fp32")
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_supports_bf16() else "fp32"


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def build_model(
    cfg: ModelConfig, *, in_chans: int, num_classes: int, image_size: tuple[int, int]
) -> nn.Module:
    """A registered model (num_classes/in_chans from the data); "resnet" = the ResNet class with
    any shape (kwargs block, layers, widths, stem, shortcut, ...); or a generic skip stack:
    "skip_mlp" (input flattened: in_features = C*H*W) / "skip_cnn" with `width`, `depth`, ..."""
    import resnetlab.models as models

    kwargs = dict(cfg.kwargs)
    for key in ("num_classes", "in_chans", "in_features"):
        if key in kwargs:
            raise ValueError(f"model kwarg {key!r} is set from the data set; remove it")
    if cfg.name == "resnet":  # any ResNet shape: block, layers, widths, stem, shortcut, ...
        if "layers" not in kwargs:
            raise ValueError(
                "model resnet needs kwargs block and layers (e.g. block=basic, layers=[1, 1, 1])"
            )
        kwargs.setdefault("block", "basic")
        return models.ResNet(num_classes=num_classes, in_chans=in_chans, **kwargs)
    if cfg.name in ("skip_mlp", "skip_cnn"):
        missing = [k for k in ("width", "depth") if k not in kwargs]
        if missing:
            raise ValueError(f"model {cfg.name} needs kwargs {missing} (e.g. width=64, depth=20)")
        if cfg.name == "skip_mlp":
            return models.SkipMLP(
                in_chans * image_size[0] * image_size[1], num_classes=num_classes, **kwargs
            )
        return models.SkipCNN(in_chans, num_classes=num_classes, **kwargs)
    return models.create_model(cfg.name, num_classes=num_classes, in_chans=in_chans, **kwargs)


def git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except Exception:
        return None


def _default_augment(name: str, image_size: tuple[int, int]) -> tuple[int, bool]:
    """Crop padding (px) and flip per data set: 4 px + flip on 32 px photos (He et al. 2015),
    2 px on 28 px images; no flip for digits (a mirrored 2 is not a 2)."""
    pad = 4 if min(image_size) >= 32 else 2
    flip = name not in ("mnist", "digits")
    if name == "digits":
        pad = 2
    return pad, flip


@contextmanager
def _signal_guard(flag: dict):
    """SIGTERM and the first Ctrl-C only raise a flag; the loop saves and stops at the next
    step boundary. A second Ctrl-C interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if flag.get("signum") == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag["signum"] = signum

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader,
    *,
    device: torch.device | str | None = None,
    precision: str = "fp32",
    channels_last: bool = False,
    tta_flip: bool = False,
    topk: int = 5,
) -> dict[str, float]:
    """Loss and top-1/top-k error (%) of `model` over `loader` (batches of (images, labels)).

    tta_flip averages the logits of the image and its mirror (single-view otherwise, as in the
    paper). Returns {"loss", "top1_err", "top5_err", "n"} (top5_err uses k = min(topk, classes)).
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    loss_sum, correct1, correctk, n = 0.0, 0, 0, 0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            logits = model(x)
            if tta_flip:
                logits = 0.5 * (logits + model(x.flip(3)))
        logits = logits.float()
        loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        k = min(topk, logits.shape[1])
        top = logits.topk(k, dim=1).indices  # (B, k)
        hit = top == y.view(-1, 1)
        correct1 += hit[:, 0].sum().item()
        correctk += hit.any(dim=1).sum().item()
        n += y.numel()
    model.train(was_training)
    if n == 0:
        raise ValueError("evaluate: the loader yielded no images")
    return {
        "loss": loss_sum / n,
        "top1_err": 100.0 * (1 - correct1 / n),
        "top5_err": 100.0 * (1 - correctk / n),
        "n": n,
    }


# --------------------------------------------------------------------------- training


class _Run:
    """State shared by the loop pieces of one `train` call."""

    def __init__(self, cfg: TrainConfig, run_dir: Path):
        self.cfg, self.run_dir = cfg, run_dir
        self.ckpt_dir = run_dir / "checkpoints"
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        self.step = 0
        self.epoch = 0
        self.batch = 0  # batches of the current epoch already done
        self.acc = {"loss_sum": 0.0, "correct": 0, "seen": 0, "time": 0.0}
        self.history: list[dict[str, Any]] = []
        self.best = {"epoch": None, "top1_err": None}
        self.elapsed = 0.0  # wall seconds spent by previous processes of this run
        self.t_start = time.perf_counter()
        self.scaler = torch.amp.GradScaler(enabled=False)

    def wall(self) -> float:
        return self.elapsed + time.perf_counter() - self.t_start


def train_one_epoch(
    model: nn.Module,
    forward: nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    run: _Run,
    *,
    device: torch.device,
    precision: str,
    total_steps: int,
    steps_per_epoch: int,
    progress: Progress,
    steps_log: CsvLog,
    tb: TensorBoard,
    stop: dict,
    save,
) -> None:
    """One pass over `loader` from position `run.batch`: forward, finite-loss check, backward,
    step; rows to steps.csv, periodic checkpoints, and a clean stop on SIGTERM/Ctrl-C."""
    cfg = run.cfg
    o = cfg.optim
    model.train()
    progress.start_epoch(run.epoch, steps_per_epoch, initial=run.batch)
    t_last = time.perf_counter()
    for x, y in loader:
        if run.step >= total_steps:
            break
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        lr = lr_at(run.step, o, total_steps, steps_per_epoch)
        set_lr(optimizer, lr)
        with autocast(device, precision):
            logits = forward(x)
            loss = nn.functional.cross_entropy(logits.float(), y, label_smoothing=o.label_smoothing)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            last = run.ckpt_dir / "last.pt"
            kept = (
                f"the last good checkpoint is {last}"
                if last.exists()
                else "no checkpoint was written yet"
            )
            raise NonFiniteLossError(
                f"loss became {loss_value} at step {run.step + 1} (epoch {run.epoch + 1}, batch "
                f"{run.batch + 1}); stopping without saving these weights; {kept}. "
                "Lower the learning rate, add warm-up (warmup_steps) or gradient clipping."
            )
        optimizer.zero_grad(set_to_none=True)
        # fp16 needs loss scaling against gradient underflow; for bf16/fp32 the scaler is a no-op
        run.scaler.scale(loss).backward()
        if o.grad_clip:
            run.scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
        run.scaler.step(optimizer)
        run.scaler.update()
        run.step += 1
        run.batch += 1
        b = y.numel()
        correct = (logits.argmax(1) == y).sum().item()
        run.acc["loss_sum"] += loss_value * b
        run.acc["correct"] += correct
        run.acc["seen"] += b
        now = time.perf_counter()
        run.acc["time"] += now - t_last
        t_last = now
        ips = run.acc["seen"] / max(run.acc["time"], 1e-9)
        err = 100.0 * (1 - run.acc["correct"] / run.acc["seen"])
        progress.update(run.batch - 1, run.acc["loss_sum"] / run.acc["seen"], err, ips)
        if run.step % cfg.run.log_every == 0:
            row = {
                "step": run.step,
                "epoch": run.epoch + 1,
                "lr": lr,
                "loss": loss_value,
                "err": 100.0 * (1 - correct / b),
                "img_per_s": ips,
            }
            steps_log.append(row)
            tb.scalars(run.step, row, "step")
        if (
            cfg.run.checkpoint_every
            and run.step % cfg.run.checkpoint_every == 0
            and run.step < total_steps
        ):
            save()
            t_last = time.perf_counter()  # checkpoint time is not training time
        if stop.get("signum") is not None:
            save()
            progress.info(
                f"received signal {stop['signum']}: saved a checkpoint at step {run.step}"
            )
            raise TrainingInterrupted(
                f"training stopped by signal {stop['signum']} at step {run.step}; resume with "
                f"`resnetlab train --resume {run.run_dir}`",
                run.run_dir,
                run.step,
                stop["signum"],
            )


def train(config: TrainConfig, *, model: nn.Module | None = None) -> TrainResult:
    """Train a model as `config` says and return its `TrainResult`.

    The run folder (config.run.out) receives config.json, metrics.csv, steps.csv, checkpoints/
    and result.json. With config.run.resume set to a run folder (or "auto" = the `out` folder if
    it holds a checkpoint), training continues exactly where it stopped, using the saved config;
    a finished run returns its stored result at once. `model`, when given, replaces the model
    the config names (it must be the same architecture on resume).

    Raises ValueError for bad config values, FileNotFoundError for missing data,
    NonFiniteLossError when the loss diverges, TrainingInterrupted on SIGTERM/Ctrl-C (after
    saving a checkpoint).
    """
    threads = torch.get_num_threads()
    try:
        return _train(config, model)
    finally:
        torch.set_num_threads(threads)  # run.threads applies to this run only


def _train(config: TrainConfig, model: nn.Module | None) -> TrainResult:
    if not isinstance(config, TrainConfig):
        raise ValueError(f"train() takes a TrainConfig, got {type(config).__name__}")
    config = TrainConfig.from_dict(config.to_dict())  # our own copy; the caller's stays untouched
    config.validate()
    resume_dir = _resume_dir(config)
    state = None
    if resume_dir is not None:
        result_file = resume_dir / "result.json"
        if result_file.is_file():
            result = TrainResult.from_dict(json.loads(result_file.read_text()))
            result.run_dir = resume_dir
            return result
        saved = json.loads((resume_dir / "config.json").read_text())
        caller_run = config.run
        config = TrainConfig.from_dict({k: v for k, v in saved.items() if k != "meta"})
        # How a resumed run reports itself may change; what it computes may not.
        config.run.progress, config.run.threads = caller_run.progress, caller_run.threads
        config.run.out, config.run.resume = str(resume_dir), str(resume_dir)
        state = load_state(resume_dir / "checkpoints" / "last.pt")
    run_dir = Path(config.run.out) if config.run.out else _default_out(config)

    if config.run.threads:
        torch.set_num_threads(config.run.threads)
    device = resolve_device(config.run.device)
    precision = resolve_precision(config.run.precision, device)
    _set_determinism(config.run.deterministic, device)

    # ---- data
    d = config.data
    splits = load_dataset(
        d.name,
        data_dir=d.data_dir,
        download=d.download,
        val_split=d.val_split,
        train_subset=d.train_subset,
        test_subset=d.test_subset,
        image_size=d.image_size,
    )
    pad, flip = _default_augment(d.name, splits.image_size)
    d.crop_padding = pad if d.crop_padding is None else d.crop_padding
    d.flip = flip if d.flip is None else d.flip
    augment = AugmentConfig(d.crop_padding, d.flip, d.cutout)

    # ---- model
    torch.manual_seed(config.run.seed)  # weight initialisation
    if model is None:
        model = build_model(
            config.model,
            in_chans=splits.in_chans,
            num_classes=splits.num_classes,
            image_size=splits.image_size,
        )
        if config.model.weights and state is None:  # pretrained start (resnetlab.transfer)
            from ..transfer.pretrained import load_start_weights

            load_start_weights(model, config.model.name, config.model.weights)
    elif config.model.name == ModelConfig().name and not config.model.kwargs:
        config.model.name = type(model).__name__
    is_conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
    channels_last = is_conv if config.run.channels_last is None else config.run.channels_last
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    config.run.device, config.run.precision, config.run.channels_last = (
        str(device),
        precision,
        channels_last,
    )

    train_loader, eval_loaders = _make_loaders(splits, config, augment, device, channels_last)
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise ValueError(
            f"the training set ({len(splits.train)} images) is smaller than one batch ({d.batch_size}); lower batch_size"
        )
    o = config.optim
    total_steps = o.steps if o.steps else o.epochs * steps_per_epoch
    epochs = math.ceil(total_steps / steps_per_epoch)

    from ..transfer.finetune import setup_finetune

    # Freezing / backbone lr (OptimConfig.freeze, backbone_lr_scale): None for plain training.
    finetune = setup_finetune(model, o)
    groups = finetune.param_groups(o.weight_decay, o.decay_norm_and_bias) if finetune else None
    optimizer = build_optimizer(model, o, groups=groups)
    forward = torch.compile(model) if config.run.compile else model

    run = _Run(config, run_dir)
    run.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    if state is None:
        run_dir.mkdir(parents=True, exist_ok=True)
        if (run_dir / "checkpoints" / "last.pt").exists():
            raise ValueError(
                f"run folder {run_dir} already holds a run; resume it with --resume {run_dir}, or choose another --out"
            )
        meta = {
            "resnetlab_version": _version(),
            "git_sha": git_sha(),
            "torch_version": torch.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        meta.update(
            {
                "steps_per_epoch": steps_per_epoch,
                "total_steps": total_steps,
                "num_classes": splits.num_classes,
                "in_chans": splits.in_chans,
                "image_size": list(splits.image_size),
            }
        )
        atomic_write_text(
            run_dir / "config.json", json.dumps({**config.to_dict(), "meta": meta}, indent=2)
        )
        for name in ("metrics.csv", "steps.csv"):
            (run_dir / name).unlink(missing_ok=True)
    else:
        _restore(state, model, optimizer, run, device)
    metrics_log = CsvLog(run_dir / "metrics.csv", EPOCH_FIELDS)
    steps_log = CsvLog(run_dir / "steps.csv", STEP_FIELDS)
    if state is not None:  # drop rows a killed process wrote after its last checkpoint
        metrics_log.truncate(lambda r: int(r["epoch"]) <= len(run.history))
        steps_log.truncate(lambda r: int(r["step"]) <= run.step)
    tb = TensorBoard(run_dir / "tb", purge_step=run.step + 1 if state is not None else None)
    progress = Progress(config.run.progress, config.run.log_every, epochs)
    weights_meta = {
        "model": config.model.name,
        "model_kwargs": config.model.kwargs,
        "num_classes": splits.num_classes,
        "in_chans": splits.in_chans,
        "image_size": list(splits.image_size),
        "data": d.name,
        "mean": list(splits.mean),
        "std": list(splits.std),
        "classes": list(splits.classes),
        "pretrained": config.model.weights,
        "command": shlex.join(sys.argv),
        "resnetlab_version": _version(),
    }

    def save(best: bool = False) -> None:
        bad = check_finite(model.state_dict())
        if bad:
            raise NonFiniteLossError(
                f"weights {bad[:3]} hold NaN/inf at step {run.step}; refusing to checkpoint them"
            )
        tb.flush()  # events up to the checkpoint's step are on disk before the checkpoint is
        save_state(run.ckpt_dir / "last.pt", _state_dict(model, optimizer, run, device))
        meta = {**weights_meta, "epoch": run.epoch, "step": run.step}
        save_weights(run.ckpt_dir / "last.safetensors", model, meta)
        if best:
            save_weights(run.ckpt_dir / "best.safetensors", model, meta)

    if state is not None:
        progress.info(
            f"resuming {run_dir} at step {run.step} (epoch {run.epoch + 1}, batch {run.batch})"
        )
    else:
        progress.info(
            f"run folder {run_dir}: {config.model.name} on {d.name}, {len(splits.train)} training images, {epochs} epochs ({total_steps} steps), {device} {precision}{' channels_last' if channels_last else ''}"
        )

    progress.info(tb.note)

    stop: dict = {}
    try:
        with _signal_guard(stop):
            while run.step < total_steps:
                train_loader.set_epoch(run.epoch, run.batch)
                if finetune is not None:
                    finetune.set_epoch(run.epoch)
                train_one_epoch(
                    model, forward, train_loader, optimizer, run,
                    device=device, precision=precision, total_steps=total_steps,
                    steps_per_epoch=steps_per_epoch, progress=progress, steps_log=steps_log,
                    tb=tb, stop=stop, save=save,
                )  # fmt: skip
                row = _end_epoch(
                    run,
                    model,
                    eval_loaders,
                    optimizer,
                    device,
                    precision,
                    channels_last,
                    epochs,
                    total_steps,
                )
                metrics_log.append(row)
                tb.scalars(run.step, row, "epoch")
                progress.end_epoch(row)
                key = "val_top1_err" if "val" in eval_loaders else "test_top1_err"
                improved = row.get(key) is not None and (
                    run.best["top1_err"] is None or row[key] < run.best["top1_err"]
                )
                if improved:
                    run.best = {"epoch": row["epoch"], "top1_err": row[key]}
                save(best=improved)
    finally:
        tb.close()

    final = dict(run.history[-1])
    final.update(
        {
            "best_epoch": run.best["epoch"],
            "best_top1_err": run.best["top1_err"],
            "steps": run.step,
            "epochs": len(run.history),
            "wall_time_s": run.wall(),
        }
    )
    result = TrainResult(
        run_dir,
        run.history,
        final,
        json.loads((run_dir / "config.json").read_text()),
        resumed=state is not None,
    )
    atomic_write_text(run_dir / "result.json", json.dumps(result.to_dict(), indent=2))
    return result


# --------------------------------------------------------------------------- internals


def _version() -> str:
    from resnetlab import __version__

    return __version__


def _default_out(cfg: TrainConfig) -> Path:
    name = cfg.data.name.replace("folder:", "folder-").replace("/", "_").strip("_")
    return Path("runs") / f"{cfg.model.name}-{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _resume_dir(cfg: TrainConfig) -> Path | None:
    r = cfg.run.resume
    if not r:
        return None
    if r == "auto":
        if not cfg.run.out:
            raise ValueError(
                "resume='auto' needs run.out (the folder to continue if it holds a run)"
            )
        out = Path(cfg.run.out)
        has_run = (out / "result.json").is_file() or (out / "checkpoints" / "last.pt").is_file()
        return out if has_run else None
    path = Path(r)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"cannot resume: {path} is not a run folder (no config.json)")
    if not (path / "result.json").is_file() and not (path / "checkpoints" / "last.pt").is_file():
        raise FileNotFoundError(
            f"cannot resume: {path} holds no checkpoint yet (checkpoints/last.pt); start it again"
        )
    return path


def _set_determinism(deterministic: bool, device: torch.device) -> None:
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cudnn.benchmark = not deterministic


def _make_loaders(splits, cfg: TrainConfig, augment: AugmentConfig, device, channels_last: bool):
    d = cfg.data
    if splits.in_memory:
        train_loader = InMemoryLoader(
            splits.train,
            d.batch_size,
            train=True,
            augment=augment,
            seed=cfg.run.seed,
            device=device,
            channels_last=channels_last,
        )
        evals = {
            "test": InMemoryLoader(
                splits.test,
                d.eval_batch_size,
                train=False,
                device=device,
                channels_last=channels_last,
            )
        }
        if splits.val is not None:
            evals["val"] = InMemoryLoader(
                splits.val,
                d.eval_batch_size,
                train=False,
                device=device,
                channels_last=channels_last,
            )
        return train_loader, evals
    common = {
        "image_size": splits.image_size,
        "in_chans": splits.in_chans,
        "mean": splits.mean,
        "std": splits.std,
        "num_workers": d.num_workers,
        "pin_memory": device.type == "cuda",
    }
    if len(splits.train) < d.batch_size:
        raise ValueError(
            f"batch_size {d.batch_size} is larger than the training set ({len(splits.train)} images); lower the batch size"
        )
    train_loader = _FolderTrainLoader(splits.train, d.batch_size, augment, cfg.run.seed, common)
    evals = {
        "test": build_folder_loader(
            splits.test, batch_size=d.eval_batch_size, train=False, **common
        )
    }
    if splits.val is not None:
        evals["val"] = build_folder_loader(
            splits.val, batch_size=d.eval_batch_size, train=False, **common
        )
    return train_loader, evals


class _FolderTrainLoader:
    """DataLoader path with the in-memory loader's interface: a fresh loader per epoch seeded by
    (seed, epoch); resuming mid-epoch skips the batches already done."""

    def __init__(self, dataset, batch_size, augment, seed, common):
        self.dataset, self.batch_size, self.augment, self.seed, self.common = (
            dataset,
            batch_size,
            augment,
            seed,
            common,
        )
        self.epoch, self.start_batch = 0, 0

    def __len__(self):
        return len(self.dataset) // self.batch_size

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def __iter__(self):
        loader = build_folder_loader(
            self.dataset,
            batch_size=self.batch_size,
            train=True,
            augment=self.augment,
            seed=self.seed,
            epoch=self.epoch,
            **self.common,
        )
        for i, batch in enumerate(loader):
            if i >= self.start_batch:
                yield batch


def _end_epoch(
    run: _Run, model, eval_loaders, optimizer, device, precision, channels_last, epochs, total_steps
) -> dict[str, Any]:
    cfg = run.cfg
    acc = run.acc
    row: dict[str, Any] = {
        "epoch": run.epoch + 1,
        "step": run.step,
        "lr": optimizer.param_groups[0]["lr"],
        "train_loss": acc["loss_sum"] / max(1, acc["seen"]),
        "train_err": 100.0 * (1 - acc["correct"] / max(1, acc["seen"])),
        "img_per_s": acc["seen"] / max(acc["time"], 1e-9),
        "epoch_time_s": acc["time"],
    }
    last = run.step >= total_steps
    if last or (run.epoch + 1) % cfg.run.eval_every == 0:
        for split, loader in eval_loaders.items():
            m = evaluate(
                model,
                loader,
                device=device,
                precision=precision,
                channels_last=channels_last,
                tta_flip=cfg.run.tta_flip,
            )
            row.update(
                {
                    f"{split}_loss": m["loss"],
                    f"{split}_top1_err": m["top1_err"],
                    f"{split}_top5_err": m["top5_err"],
                }
            )
    row["wall_time_s"] = run.wall()
    run.history.append(row)
    run.epoch += 1
    run.batch = 0
    run.acc = {"loss_sum": 0.0, "correct": 0, "seen": 0, "time": 0.0}
    return row


def _state_dict(model, optimizer, run: _Run, device) -> dict[str, Any]:
    state = {
        "format": 1,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": run.step,
        "epoch": run.epoch,
        "batch": run.batch,
        "acc": dict(run.acc),
        "history": run.history,
        "best": dict(run.best),
        "elapsed": run.wall(),
        "rng_cpu": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["rng_cuda"] = torch.cuda.get_rng_state(device)
    if run.scaler.is_enabled():
        state["scaler"] = run.scaler.state_dict()
    return state


def _restore(state, model, optimizer, run: _Run, device) -> None:
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as err:
        raise ValueError(
            f"{run.ckpt_dir / 'last.pt'} does not match this model/optimiser ({str(err).splitlines()[0]})"
        ) from None
    run.step, run.epoch, run.batch = int(state["step"]), int(state["epoch"]), int(state["batch"])
    run.acc = dict(state["acc"])
    run.history = list(state["history"])
    run.best = dict(state["best"])
    run.elapsed = float(state["elapsed"])
    if "scaler" in state:
        run.scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng_cpu"])
    if device.type == "cuda" and "rng_cuda" in state:
        torch.cuda.set_rng_state(state["rng_cuda"], device)
