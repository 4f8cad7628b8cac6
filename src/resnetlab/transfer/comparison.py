"""The transfer comparison: fine-tune pretrained weights and train the same architecture from
scratch with the same budget, data order and head initialisation; compare learning curves.

    result = run_transfer(TransferConfig(out="runs/transfer"))

Offline default: pretrain a small ResNet on Fashion-MNIST with the training engine (or reuse
`source`), then transfer to scikit-learn's digits (real handwritten digits, few samples, where
transfer should matter) and to MNIST when its files are present. With torchvision weights
(`source="resnet18.IMAGENET1K_V1"`) the same function transfers an ImageNet ResNet.

Everything reported is computed from the runs: the curves (test error against training images
seen, with the untrained start at 0 images), the errors at fixed budgets, and the speed-up =
images from scratch / images fine-tuning to reach a target error (by default the error the
from-scratch model ends at), interpolated linearly between evaluations.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..train.checkpoint import atomic_write_text

logger = logging.getLogger(__name__)

# The default small ResNet: ResNet-8 (one basic unit per stage, option A, CIFAR stem). On this
# project's 2 shared CPU cores ResNet-20 trains at ~30-40 img/s at 28 px, ResNet-8 at ~200 img/s,
# which is what makes a pretrain + 2x2 transfer runs fit in a few minutes.
SMALL_RESNET = {
    "block": "basic",
    "layers": [1, 1, 1],
    "widths": [16, 32, 64],
    "stem_width": 16,
    "stem": "cifar",
    "shortcut": "A",
}


@dataclass
class TransferConfig:
    """Every knob of the comparison in one place; units in the comments."""

    out: str = "runs/transfer"
    source: str | None = None  # run folder / .safetensors / ARCH.TAG; None = pretrain one
    model: str | None = None  # architecture for ARCH.TAG or .pth sources (else from metadata)
    targets: list[str] = field(default_factory=lambda: ["digits", "mnist?"])  # "?" = if present
    # pretraining (used only when source is None)
    pretrain_model: str = "resnet"
    pretrain_model_kwargs: dict[str, Any] = field(default_factory=lambda: dict(SMALL_RESNET))
    pretrain_data: str = "fashion-mnist"
    pretrain_subset: int | None = 16000  # training images
    pretrain_test_subset: int | None = 2000  # test images evaluated per epoch
    pretrain_epochs: int = 2
    pretrain_lr: float = 0.2  # one-cycle peak
    # transfer arms (identical for fine-tune and scratch except the start weights)
    train_subset: int | None = 500  # target training images (few samples)
    test_subset: int | None = None  # target test images (None: all)
    image_size: int | None = None  # px for digits; None = the source's training size
    epochs: int = 8  # budget, in passes over the target training subset
    batch_size: int = 50
    lr: float = 0.1  # peak lr (cosine schedule)
    optimizer: str = "sgd"
    weight_decay: float = 5e-4
    freeze: str = "none"  # fine-tune arm: none | linear | gradual
    backbone_lr_scale: float = 1.0  # fine-tune arm: lr multiplier of the backbone
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    target_err: float | None = None  # % top-1 error for the speed-up; None = scratch's final
    budgets: list[float] = field(default_factory=lambda: [0.125, 0.25, 0.5, 1.0])  # of budget
    precision: str = "auto"
    device: str = "auto"
    threads: int | None = None
    progress: str = "log"

    def validate(self) -> TransferConfig:
        from .finetune import check_finetune

        check_finetune(self.freeze, self.backbone_lr_scale, 1)
        for key in ("epochs", "batch_size", "pretrain_epochs"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{key} must be an integer >= 1, got {v!r}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct integers, got {self.seeds!r}")
        if not self.targets:
            raise ValueError("name at least one target data set (e.g. digits)")
        if not all(0 < b <= 1 for b in self.budgets):
            raise ValueError(f"budgets are fractions of the budget in (0, 1], got {self.budgets}")
        if self.target_err is not None and not 0 < self.target_err < 100:
            raise ValueError(f"target_err is a % error in (0, 100), got {self.target_err}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        return self


# --------------------------------------------------------------------------- curve arithmetic


def images_to_reach(images: list[float], errors: list[float], target: float) -> float | None:
    """Training images seen when the test error first reaches `target` (%), interpolating
    linearly between evaluations; None when it never does."""
    if len(images) != len(errors) or not images:
        raise ValueError("images and errors must be non-empty and of equal length")
    if errors[0] <= target:
        return float(images[0])
    for i in range(1, len(images)):
        if errors[i] <= target:
            x0, x1, e0, e1 = images[i - 1], images[i], errors[i - 1], errors[i]
            return float(x0 + (x1 - x0) * (e0 - target) / (e0 - e1))
    return None


def error_at(images: list[float], errors: list[float], budget: float) -> float:
    """Test error (%) of the last evaluation at or before `budget` images."""
    at = [e for x, e in zip(images, errors) if x <= budget + 1e-9]
    if not at:
        raise ValueError(f"no evaluation at or before {budget} images")
    return at[-1]


def mean_curve(curves: list[dict[str, list[float]]]) -> dict[str, list[float]]:
    """Mean, min and max test error across seeds (all seeds share the evaluation points)."""
    xs = curves[0]["images"]
    if any(c["images"] != xs for c in curves):
        raise ValueError("runs of one arm must share their evaluation points")
    errs = torch.tensor([c["test_err"] for c in curves], dtype=torch.float64)
    return {
        "images": list(xs),
        "mean": errs.mean(0).tolist(),
        "min": errs.min(0).values.tolist(),
        "max": errs.max(0).values.tolist(),
    }


# --------------------------------------------------------------------------- running


def _source_description(source: str, model: str | None) -> dict[str, Any]:
    """Architecture (name + kwargs), image size and description of a source of weights."""
    from ..models.weights import get_pretrained, read_state_file

    m = re.fullmatch(r"([a-z][a-z0-9_]*)[.:]([A-Z][A-Z0-9_]*)", source)
    if m and not Path(source).exists():
        arch, tag = m.groups()
        info = get_pretrained(arch, tag)
        acc = info.metrics.get("ImageNet-1K", {}).get("acc@1")
        return {
            "model": arch,
            "model_kwargs": {},
            "weights": info.tag,
            "image_size": info.crop_size,
            "description": f"torchvision {arch} {info.tag} (ImageNet-1K top-1 {acc} %)",
            "data": "ImageNet-1K",
        }
    path = Path(source)
    if path.is_dir():
        ckpt = path / "checkpoints"
        file = ckpt / "best.safetensors"
        path = file if file.is_file() else ckpt / "last.safetensors"
    _, meta = read_state_file(path)
    if path.suffix != ".safetensors":
        if not model:
            raise ValueError(f"{path.name} is a bare state dict; name its architecture (--model)")
        return {
            "model": model,
            "model_kwargs": {},
            "weights": str(path),
            "image_size": None,
            "description": f"{model} weights from {path}",
            "data": "unknown",
        }
    if "model" not in meta:
        raise ValueError(f"{path} has no resnetlab metadata (model); it cannot describe itself")
    if model and model != meta["model"]:
        raise ValueError(f"{path} holds {meta['model']} weights, not {model}")
    return {
        "model": meta["model"],
        "model_kwargs": dict(meta.get("model_kwargs") or {}),
        "weights": str(path),
        "image_size": (meta.get("image_size") or [None])[0],
        "description": f"{meta['model']} trained on {meta.get('data')} ({path})",
        "data": meta.get("data"),
    }


def _pretrain(cfg: TransferConfig, out: Path) -> tuple[str, dict[str, Any]]:
    """Train the source model on the pretraining data (reusing a finished run in the same
    folder), export it, and return (weights file, summary)."""
    from ..train import TrainConfig, train
    from .export import export_run

    tcfg = TrainConfig.from_flat(
        model=cfg.pretrain_model,
        model_kwargs=cfg.pretrain_model_kwargs,
        data=cfg.pretrain_data,
        train_subset=cfg.pretrain_subset,
        test_subset=cfg.pretrain_test_subset,
        epochs=cfg.pretrain_epochs,
        batch_size=128,
        lr=cfg.pretrain_lr,
        schedule="onecycle",
        label_smoothing=0.1,
        out=str(out / "pretrain"),
        resume="auto",
        seed=0,
        precision=cfg.precision,
        device=cfg.device,
        threads=cfg.threads,
        progress=cfg.progress,
    )
    result = train(tcfg)
    weights = out / "source.safetensors"
    export_run(result.run_dir, weights, which="best")
    summary = {
        "run_dir": str(result.run_dir),
        "test_top1_err": result.final.get("test_top1_err"),
        "best_top1_err": result.final.get("best_top1_err"),
        "epochs": result.final.get("epochs"),
        "train_images": cfg.pretrain_subset,
        "wall_time_s": result.final.get("wall_time_s"),
        "data": cfg.pretrain_data,
    }
    return str(weights), summary


def _target_available(name: str) -> bool:
    from ..data import load_dataset

    try:
        load_dataset(name, test_subset=1, train_subset=1)
    except FileNotFoundError:
        return False
    return True


def _run_arm(
    cfg: TransferConfig,
    src: dict[str, Any],
    target: str,
    arm: str,
    seed: int,
    out: Path,
) -> dict[str, Any]:
    """One training run of one arm ("finetune" | "scratch"); its curve starts at 0 images."""
    from ..data import InMemoryLoader, load_dataset
    from ..train import TrainConfig, evaluate, train
    from ..train.engine import build_model, resolve_device
    from .pretrained import load_start_weights

    finetune = arm == "finetune"
    flat: dict[str, Any] = dict(
        model=src["model"],
        model_kwargs=src["model_kwargs"],
        data=target,
        train_subset=cfg.train_subset,
        test_subset=cfg.test_subset,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        optimizer=cfg.optimizer,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        schedule="cosine",
        seed=seed,
        out=str(out / target / f"{arm}-seed{seed}"),
        resume="auto",
        precision=cfg.precision,
        device=cfg.device,
        threads=cfg.threads,
        progress=cfg.progress,
        weights=src["weights"] if finetune else None,
        freeze=cfg.freeze if finetune else "none",
        backbone_lr_scale=cfg.backbone_lr_scale if finetune else 1.0,
    )
    if target == "digits":
        flat["image_size"] = cfg.image_size or src.get("image_size") or 28
    tcfg = TrainConfig.from_flat(**flat).validate()
    d = tcfg.data
    splits = load_dataset(
        d.name,
        train_subset=d.train_subset,
        test_subset=d.test_subset,
        image_size=d.image_size,
    )
    # The untrained start (0 images): built exactly as the engine builds it (same seed), so the
    # two arms share every initial weight except those the pretrained file replaces.
    torch.manual_seed(seed)
    model = build_model(
        tcfg.model,
        in_chans=splits.in_chans,
        num_classes=splits.num_classes,
        image_size=splits.image_size,
    )
    report = None
    if finetune:
        report = load_start_weights(model, src["model"], src["weights"])
    device = resolve_device(cfg.device)
    loader = InMemoryLoader(splits.test, 512, train=False, device=device)
    start = evaluate(model.to(device), loader, device=device)
    # The engine builds its own copy the same way (seed, then weights) and trains it.
    result = train(tcfg)
    rows = [r for r in result.history if r.get("test_top1_err") is not None]
    steps_per_epoch = result.config["meta"]["steps_per_epoch"]
    images = [0] + [int(r["step"]) * cfg.batch_size for r in rows]
    errors = [start["top1_err"]] + [float(r["test_top1_err"]) for r in rows]
    return {
        "arm": arm,
        "seed": seed,
        "run_dir": str(result.run_dir),
        "images": images,
        "test_err": errors,
        "final_err": errors[-1],
        "train_images": len(splits.train),
        "test_images": len(splits.test),
        "image_size": list(splits.image_size),
        "steps_per_epoch": steps_per_epoch,
        "wall_time_s": result.final.get("wall_time_s"),
        "load_report": str(report) if report else None,
    }


def summarize(
    finetune: list[dict[str, Any]],
    scratch: list[dict[str, Any]],
    budgets: list[float],
    target_err: float | None = None,
) -> dict[str, Any]:
    """Curves, errors at budgets and the speed-up to the target error, from the runs."""
    ft, sc = mean_curve(finetune), mean_curve(scratch)
    total = ft["images"][-1]
    target = sc["mean"][-1] if target_err is None else float(target_err)
    n_ft = images_to_reach(ft["images"], ft["mean"], target)
    n_sc = images_to_reach(sc["images"], sc["mean"], target)
    at = []
    for frac in budgets:
        b = frac * total
        at.append(
            {
                "fraction": frac,
                "images": error_at_point(ft["images"], b),
                "finetune_err": error_at(ft["images"], ft["mean"], b),
                "scratch_err": error_at(sc["images"], sc["mean"], b),
            }
        )
    speedup = None
    if n_ft is not None and n_sc is not None and n_ft > 0:
        speedup = n_sc / n_ft
    return {
        "finetune": ft,
        "scratch": sc,
        "target_err": target,
        "target_source": "from-scratch final error" if target_err is None else "given",
        "images_to_target": {"finetune": n_ft, "scratch": n_sc},
        "speedup": speedup,
        "at_budgets": at,
        "budget_images": total,
    }


def error_at_point(images: list[float], budget: float) -> int:
    """The evaluation point (images seen) used for `budget`: the last one at or before it."""
    return int(max(x for x in images if x <= budget + 1e-9))


def run_transfer(cfg: TransferConfig) -> dict[str, Any]:
    """Run the comparison and write OUT/results.json, report.md, report.html and curves.png.
    Returns the results dict (also in results.json)."""
    from .report import write_report

    cfg.validate()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        pretrain = None
        if cfg.source is None:
            weights, pretrain = _pretrain(cfg, out)
            src = _source_description(weights, None)
        else:
            src = _source_description(cfg.source, cfg.model)
        targets, skipped = [], []
        for t in cfg.targets:
            optional = t.endswith("?")
            name = t.rstrip("?")
            if optional and not _target_available(name):
                skipped.append(name)
                continue
            targets.append(name)
        per_target = {}
        for name in targets:
            runs = {"finetune": [], "scratch": []}
            for seed in cfg.seeds:
                for arm in ("finetune", "scratch"):
                    logger.info("transfer: %s %s seed %d", name, arm, seed)
                    runs[arm].append(_run_arm(cfg, src, name, arm, seed, out))
            per_target[name] = {
                "runs": runs,
                "summary": summarize(
                    runs["finetune"], runs["scratch"], cfg.budgets, cfg.target_err
                ),
            }
    finally:
        torch.set_num_threads(threads)
    results = {
        "config": asdict(cfg),
        "source": src,
        "pretrain": pretrain,
        "targets": per_target,
        "skipped_targets": skipped,
        "wall_time_s": time.perf_counter() - t0,
        "torch_threads": cfg.threads or threads,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    atomic_write_text(out / "results.json", json.dumps(results, indent=2))
    write_report(results, out)
    return results


def default_out() -> str:
    return os.path.join("runs", f"transfer-{time.strftime('%Y%m%d-%H%M%S')}")
