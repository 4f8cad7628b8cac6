"""The gradient-flow report behind `resnetlab gradients`.

Three parts, each a figure plus findings computed from the plotted numbers:

1. the scalar chain: |dR/dw_1| against depth, plain vs skip, per activation, with the fitted
   geometric decay rate; plus the NumPy reference of one residual unit checked against autograd
   and the share of ∇X that takes the shortcut;
2. deep generic stacks (SkipMLP / SkipCNN) without skips and with skips of several spans, W modes
   and sources: first-layer gradient norm against depth and per-layer profiles at init;
3. registered models (default plain-56 vs resnet-56) on real Fashion-MNIST: per-layer gradient
   norms and the residual-vs-skip split at init and after a short training run.

Outputs in `out_dir`: one PNG per part, report.html (self-contained, images inlined as base64),
report.md (links the PNGs) and results.json (every plotted number, so findings can be checked).
"""

from __future__ import annotations

import html
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from resnetlab.analysis.chain import ACTIVATIONS, depth_sweep, fit_decay_rate
from resnetlab.reporting import (
    atomic_write_text,
    figure_png,
    html_page,
    html_table,
    img_tag,
    save_png,
)

# --------------------------------------------------------------------------- configuration

# Stack variants: name -> (W mode or None for plain, span s, source). Users can also write any
# "<mode>[-s<span>][-Z|-Y]" such as "gate-s2" or "projection-Z".
DEFAULT_VARIANTS = (
    "plain",
    "identity",
    "identity-s2",
    "identity-s4",
    "fixed",
    "scalar",
    "projection",
    "identity-Z",
)
_VARIANT_MODES = ("plain", "identity", "fixed", "scalar", "gate", "projection")


@dataclass(frozen=True)
class StackVariant:
    name: str
    weight: str | None  # None = plain stack
    span: int
    source: str

    @property
    def label(self) -> str:
        if self.weight is None:
            return "no skips"
        w = {
            "fixed": "W=0.5 fixed",
            "scalar": "W learned scalar (starts at 1)",
            "gate": "W learned gate",
        }.get(self.weight, f"W={self.weight}")
        return f"{w}, s={self.span}, source {self.source}"


def parse_variant(name: str) -> StackVariant:
    """'identity-s2' -> identity skips of span 2 from Y; 'projection-Z' -> projection from Z."""
    parts = name.strip().split("-")
    mode = parts[0]
    if mode not in _VARIANT_MODES:
        raise ValueError(
            f"unknown stack variant {name!r}: start with one of {', '.join(_VARIANT_MODES)}, "
            "then optional -s<span> and -Z/-Y (e.g. identity-s2, projection-Z)"
        )
    span, source = 1, "Y"
    for p in parts[1:]:
        if p in ("Y", "Z"):
            source = p
        elif p.startswith("s") and p[1:].isdigit() and int(p[1:]) >= 1:
            span = int(p[1:])
        else:
            raise ValueError(f"stack variant {name!r}: cannot read {p!r}; use -s<span> or -Z/-Y")
    if mode == "plain" and (span != 1 or source != "Y"):
        raise ValueError(f"stack variant {name!r}: a plain stack has no span or source")
    return StackVariant(name, None if mode == "plain" else mode, span, source)


@dataclass
class GradientReportConfig:
    """Every knob of the report in one place (units in comments)."""

    out_dir: str = "runs/gradients"
    seed: int = 0
    threads: int | None = None  # torch intra-op threads; None = torch's default
    # Part 1: scalar chain
    chain_max_depth: int = 100  # L = 1..this
    activations: tuple[str, ...] = ACTIVATIONS
    # Part 2: generic stacks at initialisation
    stack_kinds: tuple[str, ...] = ("mlp", "cnn")
    stack_depths: tuple[int, ...] = (10, 25, 50, 100)  # weighted layers in the stack
    mlp_width: int = 64  # units per hidden layer
    cnn_width: int = 16  # channels per conv layer
    stack_act: str = "relu"
    stack_init: str = "default"  # PyTorch's default init, what a user gets; or kaiming / xavier
    variants: tuple[str, ...] = DEFAULT_VARIANTS
    stack_batch: int = 16  # images per gradient measurement
    # Part 3: registered models, init vs after a short training run
    models: tuple[str, ...] = ("plain56", "resnet56")
    steps: int = 200  # SGD steps
    batch_size: int = 16  # images per step
    lr: float = 0.05  # SGD learning rate (momentum 0.9, weight decay 1e-4)
    train_images: int = 4096  # Fashion-MNIST training images used
    image_size: int = 16  # px; Fashion-MNIST is 28 px, resized (area) to keep the run short
    probe_batch: int = 64  # fixed images on which init/trained gradients are measured
    record_every: int = 10  # steps between gradient records during training
    data: str = "fashion-mnist"
    data_dir: str | None = None

    def __post_init__(self) -> None:
        self.activations = tuple(self.activations)
        for a in self.activations:
            if a not in ACTIVATIONS:
                raise ValueError(f"unknown activation {a!r}; choose from {', '.join(ACTIVATIONS)}")
        if self.chain_max_depth < 2:
            raise ValueError(f"chain_max_depth must be >= 2, got {self.chain_max_depth}")
        self.stack_kinds = tuple(self.stack_kinds)
        for k in self.stack_kinds:
            if k not in ("mlp", "cnn"):
                raise ValueError(f"unknown stack kind {k!r}; choose mlp and/or cnn")
        self.stack_depths = tuple(sorted({int(d) for d in self.stack_depths}))
        if self.stack_kinds and (not self.stack_depths or self.stack_depths[0] < 1):
            raise ValueError(f"stack depths must be integers >= 1, got {self.stack_depths}")
        self.variants = tuple(self.variants)
        for v in self.variants:
            parse_variant(v)
        self.models = tuple(self.models)
        for name, value in (
            ("steps", self.steps),
            ("batch_size", self.batch_size),
            ("train_images", self.train_images),
            ("image_size", self.image_size),
            ("probe_batch", self.probe_batch),
            ("record_every", self.record_every),
            ("mlp_width", self.mlp_width),
            ("cnn_width", self.cnn_width),
            ("stack_batch", self.stack_batch),
        ):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")

    @classmethod
    def quick(cls, **overrides) -> GradientReportConfig:
        """Seconds instead of minutes: shallow chain and stacks, ResNet-20 pair, a few steps."""
        base = dict(
            chain_max_depth=20,
            stack_depths=(3, 6),
            mlp_width=16,
            cnn_width=4,
            stack_batch=4,
            models=("plain20", "resnet20"),
            steps=4,
            batch_size=8,
            train_images=64,
            image_size=16,
            probe_batch=8,
            record_every=2,
            threads=1,  # tiny tensors: one thread avoids OpenMP overhead on shared cores
        )
        base.update(overrides)
        return cls(**base)


# --------------------------------------------------------------------------- small helpers


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write text or bytes atomically (temp file + rename): readers never see half a file."""
    if isinstance(data, str):
        atomic_write_text(path, data)
    else:
        save_png(path, data)


def fmt_ratio(r: float) -> str:
    """'within 1.4×' near 1, else the power of ten: 'a factor 10^-12.3 (5.0e-13)'."""
    if not math.isfinite(r):
        return "undefined"
    if r == 0:
        return "exactly 0 (underflow)"
    if 0.5 <= r <= 2.0:
        return f"within {max(r, 1 / r):.2f}× ({r:.3g})"
    return f"10^{math.log10(r):+.1f} ({r:.2g})"


def _log(msg: str, log: Callable[[str], None] | None) -> None:
    (log or print)(msg)


def _figure_png(fig) -> bytes:
    return figure_png(fig, tight=False)


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def MaxNLocator(**kw):  # noqa: N802 (matplotlib's class name)
    from matplotlib.ticker import MaxNLocator as _M

    return _M(steps=[1, 2, 5, 10], **kw)


def _decade_ticks(ax, values) -> None:
    """Major ticks on round powers of ten (10^0, 10^-10, ...) for axes spanning many decades."""
    v = np.abs(np.asarray(values, dtype=np.float64))
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        return
    lo, hi = math.floor(math.log10(v.min())), math.ceil(math.log10(v.max()))
    span = hi - lo
    if span <= 12:
        return  # matplotlib's own log ticks are fine
    step = next(s for s in (2, 5, 10, 20, 50) if span / s <= 10)
    ticks = [10.0**e for e in range(hi - hi % step + step, lo - step, -step)]
    ax.set_yticks(ticks)
    ax.set_ylim(10.0**lo / 2, 10.0**hi * 2)


# --------------------------------------------------------------------------- part 1


def run_chain_part(cfg: GradientReportConfig) -> dict:
    """Scalar chain sweeps + the residual-unit reference check."""
    depths = list(range(1, cfg.chain_max_depth + 1))
    out: dict = {"depths": depths, "activations": {}}
    for act in cfg.activations:
        sw = depth_sweep(act, depths, seed=cfg.seed)
        fit = fit_decay_rate(sw.depths, sw.plain)
        out["activations"][act] = {
            "plain": sw.plain.tolist(),
            "skip": sw.skip.tolist(),
            "skip_limit": sw.skip_limit.tolist(),
            "fit": asdict(fit),
        }
    out["weights"] = f"w_l ~ U[0.5, 1.0] (seed {cfg.seed}), x = 1, R = θ (θ̄ = 1)"
    out["unit_checks"] = _unit_checks(cfg.seed)
    return out


def _unit_checks(seed: int) -> list[dict]:
    """The NumPy reference vs autograd on three BasicBlocks, and the skip share of ∇X."""
    import torch
    from torch import nn

    from resnetlab.analysis.unit_check import check_against_autograd
    from resnetlab.blocks import BasicBlock

    cases = [
        (
            "16→16, stride 1, identity shortcut, no BN",
            dict(in_chs=16, planes=16, stride=1, shortcut="B", norm_layer=nn.Identity),
        ),
        (
            "16→16, stride 1, identity shortcut, BN (eval)",
            dict(in_chs=16, planes=16, stride=1, shortcut="B", norm_layer=nn.BatchNorm2d),
        ),
        (
            "16→32, stride 2, option A (pad), BN (eval)",
            dict(in_chs=16, planes=32, stride=2, shortcut="A", norm_layer=nn.BatchNorm2d),
        ),
        (
            "16→32, stride 2, option B (projection), BN (eval)",
            dict(in_chs=16, planes=32, stride=2, shortcut="B", norm_layer=nn.BatchNorm2d),
        ),
        (
            "16→16, stride 1, plain twin (no shortcut), BN (eval)",
            dict(in_chs=16, planes=16, stride=1, shortcut="none", norm_layer=nn.BatchNorm2d),
        ),
    ]
    rows = []
    gen = torch.Generator().manual_seed(seed)
    for label, kw in cases:
        torch.manual_seed(seed)
        block = BasicBlock(
            kw["in_chs"],
            kw["planes"],
            kw["stride"],
            shortcut=kw["shortcut"],
            norm_layer=kw["norm_layer"],
        ).eval()
        x = torch.randn(4, kw["in_chs"], 16, 16, generator=gen)
        check = check_against_autograd(block, x, None)
        rows.append(
            {
                "unit": label,
                "max_rel_error": check.worst,
                "residual_norm": check.share.residual_norm,
                "skip_norm": check.share.skip_norm,
                "skip_share": check.share.share,
                "cosine": check.share.cosine,
            }
        )
    return rows


def chain_findings(part: dict) -> list[str]:
    lines = []
    depths = part["depths"]
    max_d = depths[-1]
    for act, r in part["activations"].items():
        fit = r["fit"]
        plain_last, skip_last, limit = r["plain"][-1], r["skip"][-1], r["skip_limit"][-1]
        rel = abs(skip_last - limit) / abs(limit) if limit else float("nan")
        lines.append(
            f"{act}: without the skip |dR/dw1| shrinks by a factor {fit['rate']:.3f} per layer "
            f"(geometric fit over L = {depths[0]}..{max_d}, R² = {fit['r2']:.4f}) and is "
            f"{abs(plain_last):.2e} at L = {max_d}; with the skip it is {skip_last:.6f} "
            f"against θ̄·x = {limit:.6g} (relative gap {rel:.1e})."
        )
    worst = max(row["max_rel_error"] for row in part["unit_checks"])
    lines.append(
        f"NumPy reference backward pass = autograd on the library's BasicBlock: largest relative "
        f"error {worst:.1e} over {len(part['unit_checks'])} units (float64)."
    )
    res = [row for row in part["unit_checks"] if row["skip_norm"] > 0]
    if res:
        lo = min(row["skip_share"] for row in res)
        hi = max(row["skip_share"] for row in res)
        lines.append(
            f"In a freshly initialised residual unit the shortcut term carries {lo:.0%}–{hi:.0%} of "
            "‖∇X‖ (share = ‖skip‖ / (‖skip‖ + ‖residual‖)); the plain twin has no such term."
        )
    return lines


def chain_figure(part: dict) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 6), layout="constrained")
    colors = {"sigmoid": "tab:blue", "tanh": "tab:orange", "relu": "tab:green"}
    d = np.asarray(part["depths"])
    widths = [
        5,
        3,
        1.5,
    ]  # the skip curves lie on top of each other: wide to narrow keeps all visible
    for i, (act, r) in enumerate(part["activations"].items()):
        c = colors.get(act)
        plain = np.abs(np.asarray(r["plain"]))
        skip = np.abs(np.asarray(r["skip"]))
        ax.plot(d, skip, "-", color=c, lw=widths[i % 3], alpha=0.8, label=f"{act}, with skip")
        ax.plot(d, np.where(plain > 0, plain, np.nan), "--", color=c, lw=1.5, label=f"{act}, plain")
        fit = r["fit"]
        ax.plot(
            d,
            10 ** (fit["intercept"] + fit["slope"] * d),
            ":",
            color=c,
            lw=1,
            label=f"{act}, fit: ×{fit['rate']:.3f} per layer",
        )
    limit = np.abs(np.asarray(next(iter(part["activations"].values()))["skip_limit"]))
    ax.plot(d, limit, color="grey", lw=0.8)
    ax.set_yscale("log")
    _decade_ticks(
        ax, [v for r in part["activations"].values() for k in ("plain", "skip") for v in r[k]]
    )
    ax.set_xlabel("depth L (layers after the first)")
    ax.set_ylabel(r"$|\partial R/\partial w_1|$  (log scale)")
    ax.set_title(
        "Scalar chain: gradient of the first weight vs depth\n"
        r"plain: $\theta = y_{L+1}$;  skip: $\theta = y_{L+1} + w_1 x$;  grey line: $\bar\theta x$"
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, which="major", alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), fontsize=8, ncol=3, loc="outside lower center")
    return _figure_png(fig)


# --------------------------------------------------------------------------- part 2


def _stack_batch(cfg: GradientReportConfig, kind: str, data: ImageSource):
    """A fixed batch of real images (flattened for the MLP) in float64."""
    images, labels = data.images(cfg.stack_batch)
    x = images.double()
    if kind == "mlp":
        x = x.flatten(1)
    return x, labels


def run_stack_part(cfg: GradientReportConfig, log=None, data: ImageSource | None = None) -> dict:
    """First-layer and per-layer gradient norms of generic stacks at initialisation (float64)."""
    import torch

    from resnetlab.analysis.flow import measure_gradient_flow
    from resnetlab.models import SkipCNN, SkipMLP

    out: dict = {"depths": list(cfg.stack_depths), "kinds": {}}
    variants = [parse_variant(v) for v in cfg.variants]
    for kind in cfg.stack_kinds:
        x, y = _stack_batch(cfg, kind, data or ImageSource(cfg))
        rows = {}
        for v in variants:
            first, last, ratio, profile = [], [], [], None
            for depth in cfg.stack_depths:
                torch.manual_seed(cfg.seed)
                kwargs = dict(
                    span=v.span,
                    weight=v.weight,
                    source=v.source,
                    act=cfg.stack_act,
                    init=cfg.stack_init,
                )
                if kind == "mlp":
                    model = SkipMLP(x.shape[1], cfg.mlp_width, depth, 10, **kwargs)
                else:
                    model = SkipCNN(x.shape[1], cfg.cnn_width, depth, 10, **kwargs)
                # float64: plain stacks underflow float32 long before depth 100.
                model = model.double()
                flow = measure_gradient_flow(model, x, y)
                hidden = flow.weight_grad_norms[:depth]  # the stack's layers, head excluded
                first.append(float(hidden[0]))
                last.append(float(hidden[-1]))
                ratio.append(float(hidden[0] / hidden[-1]) if hidden[-1] > 0 else float("nan"))
                profile = hidden.tolist()
            rows[v.name] = {
                "label": v.label,
                "first": first,
                "last": last,
                "first_over_last": ratio,
                "profile": profile,  # per-layer ‖∂R/∂W_l‖ at the largest depth
            }
            _log(
                f"  {kind} {v.name:>14}: first/last at depth {cfg.stack_depths[-1]} = {fmt_ratio(ratio[-1])}",
                log,
            )
        out["kinds"][kind] = rows
    out["setup"] = (
        f"width {cfg.mlp_width} (MLP) / {cfg.cnn_width} channels (CNN), {cfg.stack_act}, "
        f"init '{cfg.stack_init}', {cfg.stack_batch} Fashion-MNIST images at {cfg.image_size} px, "
        "cross-entropy, float64"
    )
    return out


def stack_findings(part: dict) -> list[str]:
    lines = []
    depths = part["depths"]
    max_d = depths[-1]
    names = {"mlp": "MLP", "cnn": "CNN"}
    for kind, rows in part["kinds"].items():
        for r in rows.values():
            ratio = r["first_over_last"][-1]
            text = (
                f"{names[kind]}, {r['label']}: at depth {max_d} the first layer's gradient norm is "
                f"{fmt_ratio(ratio)} of the last layer's (‖∂R/∂W₁‖ = {r['first'][-1]:.2g})"
            )
            if len(depths) >= 3 and all(v > 0 for v in r["first"]):
                fit = fit_decay_rate(depths, r["first"])
                text += f"; across depths {depths[0]}–{max_d} it changes by ×{fit.rate:.3g} per added layer"
            lines.append(text + ".")
        plain = rows.get("plain")
        skips = {n: r for n, r in rows.items() if n != "plain"}
        if plain and skips:
            best = max(skips, key=lambda n: _closeness(skips[n]["first_over_last"][-1]))
            lines.append(
                f"{names[kind]}: closest to uniform at depth {max_d}: {skips[best]['label']} "
                f"({fmt_ratio(skips[best]['first_over_last'][-1])}) vs no skips "
                f"({fmt_ratio(plain['first_over_last'][-1])})."
            )
    return lines


def _closeness(r: float) -> float:
    """Higher = closer to 1 on a log scale."""
    if not (math.isfinite(r) and r > 0):
        return -math.inf
    return -abs(math.log10(r))


def stack_figure(part: dict) -> bytes:
    plt = _plt()
    kinds = list(part["kinds"])
    fig, axes = plt.subplots(
        2, len(kinds), figsize=(6.5 * len(kinds), 9), squeeze=False, layout="constrained"
    )
    names = {"mlp": "MLP", "cnn": "CNN"}
    depths = part["depths"]
    cmap = plt.get_cmap("tab10")
    for j, kind in enumerate(kinds):
        rows = part["kinds"][kind]
        ax_d, ax_p = axes[0, j], axes[1, j]
        for i, (name, r) in enumerate(rows.items()):
            style = (
                dict(color="black", lw=2.5) if name == "plain" else dict(color=cmap(i % 10), lw=1.5)
            )
            ls = (
                "--"
                if r["label"].endswith("source Z")
                else ("-." if "scalar" in r["label"] else "-")
            )
            first = np.asarray(r["first"])
            ax_d.plot(
                depths,
                np.where(first > 0, first, np.nan),
                ls,
                marker="o",
                ms=4,
                label=r["label"],
                **style,
            )
            prof = np.asarray(r["profile"])
            ax_p.plot(
                np.arange(1, len(prof) + 1),
                np.where(prof > 0, prof, np.nan),
                ls,
                label=r["label"],
                **style,
            )
        ax_d.set_yscale("log")
        _decade_ticks(ax_d, [v for r in rows.values() for v in r["first"]])
        ax_d.set_xlabel("depth (weighted layers)")
        ax_d.set_ylabel(r"$\|\partial R/\partial W_1\|$, first layer (log scale)")
        ax_d.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_d.set_title(f"{names[kind]}: first-layer gradient vs depth (at init)")
        ax_p.set_yscale("log")
        _decade_ticks(ax_p, [v for r in rows.values() for v in r["profile"]])
        ax_p.set_xlabel("layer index l (1 = first)")
        ax_p.set_ylabel(r"$\|\partial R/\partial W_l\|$ (log scale)")
        ax_p.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_p.set_title(f"{names[kind]}: per-layer gradient at depth {depths[-1]} (at init)")
        for ax in (ax_d, ax_p):
            ax.grid(True, which="major", alpha=0.3)
        ax_d.legend(fontsize=7.5, loc="best")
    return _figure_png(fig)


# --------------------------------------------------------------------------- part 3


class ImageSource:
    """Training images of `cfg.data`, normalised and resized to `cfg.image_size`; the data set is
    read once, on first use, and shared by parts 2 and 3."""

    def __init__(self, cfg: GradientReportConfig):
        self.cfg = cfg
        self._train = None

    def images(self, n: int, offset: int = 0):
        """n images (float32, N×C×S×S) starting at `offset`, and their labels."""
        import torch
        import torch.nn.functional as F

        from resnetlab.data import load_dataset

        cfg = self.cfg
        if self._train is None:
            self._train = load_dataset(cfg.data, data_dir=cfg.data_dir).train
        train = self._train
        if offset + n > len(train):
            raise ValueError(f"asked for {offset + n} training images; {cfg.data} has {len(train)}")
        images = train.images[offset : offset + n].float().div(255.0)
        mean = torch.tensor(train.mean).view(1, -1, 1, 1)
        std = torch.tensor(train.std).view(1, -1, 1, 1)
        images = (images - mean) / std
        if tuple(images.shape[-2:]) != (cfg.image_size, cfg.image_size):
            images = F.interpolate(images, size=(cfg.image_size, cfg.image_size), mode="area")
        return images.contiguous(), train.labels[offset : offset + n].clone()


def _progress(total: int, desc: str, log):
    """tqdm on a terminal, plain log lines (every ~10 %) otherwise."""
    if sys.stdout.isatty() and log is None:
        from tqdm import tqdm

        bar = tqdm(total=total, desc=desc, leave=False)
        return lambda i, msg="": (
            bar.update(1),
            bar.set_postfix_str(msg),
            i + 1 == total and bar.close(),
        )
    every = max(1, total // 10)

    def step(i: int, msg: str = "") -> None:
        if (i + 1) % every == 0 or i + 1 == total:
            _log(f"  {desc}: step {i + 1}/{total} {msg}", log)

    return step


def run_model_part(cfg: GradientReportConfig, log=None, data: ImageSource | None = None) -> dict:
    """Per-layer gradients of each model at init and after `cfg.steps` SGD steps."""
    import torch
    import torch.nn.functional as F

    import resnetlab
    from resnetlab.analysis.flow import GradientFlowRecorder, measure_gradient_flow

    n_train = cfg.train_images
    images, labels = (data or ImageSource(cfg)).images(n_train + cfg.probe_batch)
    probe_x, probe_y = images[n_train:], labels[n_train:]  # held apart from the training images
    train_x, train_y = images[:n_train], labels[:n_train]
    out: dict = {"models": {}}
    for name in cfg.models:
        torch.manual_seed(cfg.seed)
        model = resnetlab.create_model(name, in_chans=train_x.shape[1], num_classes=10)
        model.train()
        init = measure_gradient_flow(model, probe_x, probe_y)
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=1e-4)
        gen = torch.Generator().manual_seed(cfg.seed)
        losses, accs, rec_steps, rec_first, rec_last = [], [], [], [], []
        t0 = time.perf_counter()
        tick = _progress(cfg.steps, f"train {name}", log)
        with GradientFlowRecorder(model) as rec:
            for step in range(cfg.steps):
                idx = torch.randint(0, n_train, (cfg.batch_size,), generator=gen)
                logits = model(train_x[idx])
                loss = F.cross_entropy(logits, train_y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if not torch.isfinite(loss):
                    raise ValueError(
                        f"{name}: loss became {loss.item()} at step {step}; lower --lr"
                    )
                if step % cfg.record_every == 0 or step == cfg.steps - 1:
                    flow = rec.result()
                    convs = flow.weight_grad_norms[:-1]  # head excluded
                    rec_steps.append(step)
                    rec_first.append(float(convs[0]))
                    rec_last.append(float(convs[-1]))
                opt.step()
                losses.append(float(loss.detach()))
                accs.append(float((logits.argmax(1) == train_y[idx]).float().mean()))
                tick(step, f"loss {losses[-1]:.3f}")
        train_s = time.perf_counter() - t0
        trained = measure_gradient_flow(model, probe_x, probe_y)
        tail = max(1, min(20, cfg.steps // 5))
        out["models"][name] = {
            "init": init.to_dict(),
            "trained": trained.to_dict(),
            "loss": losses,
            "acc": accs,
            "final_loss": float(np.mean(losses[-tail:])),
            "final_acc": float(np.mean(accs[-tail:])),
            "tail_steps": tail,
            "record_steps": rec_steps,
            "record_first": rec_first,
            "record_last": rec_last,
            "train_seconds": train_s,
            "params": sum(p.numel() for p in model.parameters()),
        }
        _log(
            f"  {name}: {cfg.steps} steps in {train_s:.1f} s, loss {losses[0]:.3f} -> "
            f"{out['models'][name]['final_loss']:.3f} (mean of last {tail})",
            log,
        )
    out["setup"] = (
        f"{cfg.data}, {n_train} training images resized to {cfg.image_size} px, SGD lr {cfg.lr} "
        f"momentum 0.9 wd 1e-4, batch {cfg.batch_size}, {cfg.steps} steps, BN in training mode; "
        f"gradients measured on {cfg.probe_batch} held-apart images"
    )
    return out


def _first_last(flow: dict) -> float:
    w = flow["weight_grad_norms"][:-1]  # convs only: the head's gradient is of another kind
    return w[0] / w[-1] if w[-1] > 0 else float("nan")


def model_findings(part: dict) -> list[str]:
    lines = []
    for name, r in part["models"].items():
        fi, ft = _first_last(r["init"]), _first_last(r["trained"])
        lines.append(
            f"{name}: first conv's gradient norm is {fmt_ratio(fi)} of the last conv's at init and "
            f"{fmt_ratio(ft)} after {len(r['loss'])} steps; training loss {r['loss'][0]:.3f} → "
            f"{r['final_loss']:.3f}, batch accuracy {r['final_acc']:.1%} (mean of last {r['tail_steps']} steps)."
        )
        skip = np.asarray(r["init"]["skip_grad_norms"])
        if skip.size and np.all(skip > 0):
            for when in ("init", "trained"):
                res = np.asarray(r[when]["residual_grad_norms"])
                sk = np.asarray(r[when]["skip_grad_norms"])
                share = sk / (sk + res)
                lines.append(
                    f"{name} ({'at init' if when == 'init' else 'trained'}): the shortcut carries "
                    f"{np.median(share):.0%} of the gradient reaching each unit's input (median over "
                    f"{share.size} units, range {share.min():.0%}–{share.max():.0%})."
                )
    names = list(part["models"])
    if len(names) >= 2:
        a, b = names[0], names[1]
        la, lb = part["models"][a]["final_loss"], part["models"][b]["final_loss"]
        better = a if la < lb else b
        lines.append(
            f"After the same {len(part['models'][a]['loss'])} steps {better} has the lower training "
            f"loss ({min(la, lb):.3f} vs {max(la, lb):.3f})."
        )
    return lines


def model_figure(part: dict) -> bytes:
    plt = _plt()
    fig, axes = plt.subplots(2, 2, figsize=(13, 9), layout="constrained")
    cmap = plt.get_cmap("tab10")
    ax_prof, ax_share, ax_loss, ax_rec = axes[0, 0], axes[0, 1], axes[1, 0], axes[1, 1]
    any_share = False
    for i, (name, r) in enumerate(part["models"].items()):
        c = cmap(i % 10)
        for when, ls in (("init", "--"), ("trained", "-")):
            w = np.asarray(r[when]["weight_grad_norms"][:-1])
            ax_prof.plot(np.arange(1, len(w) + 1), w, ls, color=c, label=f"{name}, {when}")
            res = np.asarray(r[when]["residual_grad_norms"])
            sk = np.asarray(r[when]["skip_grad_norms"])
            if sk.size and np.all(sk > 0):
                any_share = True
                ax_share.plot(
                    np.arange(1, sk.size + 1),
                    sk / (sk + res),
                    ls,
                    marker=".",
                    color=c,
                    label=f"{name}, {when}",
                )
        loss = np.asarray(r["loss"])
        k = max(1, len(loss) // 20)
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        ax_loss.plot(np.arange(k, len(loss) + 1), smooth, color=c, label=name)
        ax_rec.plot(r["record_steps"], r["record_first"], "-", color=c, label=f"{name}, first conv")
        ax_rec.plot(r["record_steps"], r["record_last"], ":", color=c, label=f"{name}, last conv")
    ax_prof.set_yscale("log")
    ax_prof.set_xlabel("conv layer index (1 = stem)")
    ax_prof.set_ylabel(r"$\|\partial R/\partial W_l\|$ on the probe batch (log scale)")
    ax_prof.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_prof.set_title("Per-layer gradient norm: init (dashed) vs trained (solid)")
    ax_share.set_ylim(0, 1)
    ax_share.set_xlabel("residual unit index (1 = first)")
    ax_share.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_share.set_ylabel("‖∇ via skip‖ / (‖∇ via skip‖ + ‖∇ via branch‖)")
    ax_share.set_title("Share of ∇X taking the shortcut")
    if not any_share:
        ax_share.text(0.5, 0.5, "no model with skips", ha="center", transform=ax_share.transAxes)
    ax_loss.set_xlabel("SGD step")
    ax_loss.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_loss.set_ylabel("training loss (running mean)")
    ax_loss.set_title("Training loss")
    ax_rec.set_yscale("log")
    ax_rec.set_xlabel("SGD step")
    ax_rec.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_rec.set_ylabel(r"$\|\partial R/\partial W\|$ on the training batch (log scale)")
    ax_rec.set_title("Gradient norms during training (recorded by hooks)")
    for ax in axes.flat:
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    return _figure_png(fig)


# --------------------------------------------------------------------------- the report


@dataclass
class GradientReport:
    out_dir: Path
    results: dict
    findings: dict[str, list[str]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


def compute_findings(results: dict) -> dict[str, list[str]]:
    """Findings text from the numbers alone (so tests can recompute them from results.json)."""
    found = {}
    if "chain" in results:
        found["chain"] = chain_findings(results["chain"])
    if "stacks" in results:
        found["stacks"] = stack_findings(results["stacks"])
    if "models" in results:
        found["models"] = model_findings(results["models"])
    return found


_TITLES = {
    "chain": ("1. The scalar chain", "chain.png"),
    "stacks": ("2. Deep generic stacks at initialisation", "stacks.png"),
    "models": ("3. Registered models: init vs after training", "models.png"),
}


def run_gradient_report(
    cfg: GradientReportConfig, *, log: Callable[[str], None] | None = None
) -> GradientReport:
    """Run all parts and write the PNGs, report.html, report.md and results.json."""
    import torch

    previous_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _run_report(cfg, log)
    finally:
        torch.set_num_threads(previous_threads)  # leave the caller's process as we found it


def _run_report(cfg: GradientReportConfig, log) -> GradientReport:
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict = {"config": asdict(cfg)}
    timings: dict[str, float] = {}
    pngs: dict[str, bytes] = {}
    data = ImageSource(cfg)

    t = time.perf_counter()
    _log("part 1: scalar chain and residual-unit reference", log)
    results["chain"] = run_chain_part(cfg)
    pngs["chain"] = chain_figure(results["chain"])
    timings["chain"] = time.perf_counter() - t

    if cfg.stack_kinds and cfg.variants:
        t = time.perf_counter()
        _log("part 2: generic stacks at init", log)
        results["stacks"] = run_stack_part(cfg, log, data)
        pngs["stacks"] = stack_figure(results["stacks"])
        timings["stacks"] = time.perf_counter() - t

    if cfg.models:
        t = time.perf_counter()
        _log("part 3: " + " vs ".join(cfg.models), log)
        results["models"] = run_model_part(cfg, log, data)
        pngs["models"] = model_figure(results["models"])
        timings["models"] = time.perf_counter() - t

    results["timings_s"] = timings
    findings = compute_findings(results)
    report = GradientReport(out_dir, results, findings)
    for key, png in pngs.items():
        path = out_dir / _TITLES[key][1]
        atomic_write(path, png)
        report.files.append(path)
    results_path = out_dir / "results.json"
    atomic_write(results_path, json.dumps(results, indent=1, default=_json_default))
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    atomic_write(md_path, render_markdown(results, findings))
    atomic_write(html_path, render_html(results, findings, pngs))
    report.files += [results_path, md_path, html_path]
    return report


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _setup_lines(results: dict) -> dict[str, str]:
    out = {}
    if "chain" in results:
        out["chain"] = results["chain"]["weights"]
    for key in ("stacks", "models"):
        if key in results:
            out[key] = results[key]["setup"]
    return out


def _unit_table_rows(results: dict) -> list[list[str]]:
    rows = []
    for r in results.get("chain", {}).get("unit_checks", []):
        rows.append(
            [
                r["unit"],
                f"{r['max_rel_error']:.1e}",
                f"{r['residual_norm']:.3g}",
                f"{r['skip_norm']:.3g}",
                f"{r['skip_share']:.0%}",
            ]
        )
    return rows


_UNIT_HEAD = [
    "residual unit",
    "max rel. error vs autograd",
    "‖Conv^T(∇Z1)‖",
    "‖skip term‖",
    "skip share",
]


def render_markdown(results: dict, findings: dict[str, list[str]]) -> str:
    setup = _setup_lines(results)
    lines = ["# Gradient flow: why skip connections work", ""]
    lines.append(
        "Generated by `resnetlab gradients`; timings (s): "
        + ", ".join(f"{k} {v:.1f}" for k, v in results["timings_s"].items())
    )
    lines.append("")
    for key, (title, png) in _TITLES.items():
        if key not in results:
            continue
        lines += [
            f"## {title}",
            "",
            f"Setup: {setup.get(key, '')}",
            "",
            f"![{title}]({png})",
            "",
            "Findings:",
            "",
        ]
        lines += [f"- {f}" for f in findings.get(key, [])]
        lines.append("")
        if key == "chain":
            rows = _unit_table_rows(results)
            lines += ["| " + " | ".join(_UNIT_HEAD) + " |", "|" + "---|" * len(_UNIT_HEAD)]
            lines += ["| " + " | ".join(r) + " |" for r in rows]
            lines.append("")
    lines += ["## Configuration", "", "```json", json.dumps(results["config"], indent=1), "```", ""]
    return "\n".join(lines)


def render_html(results: dict, findings: dict[str, list[str]], pngs: dict[str, bytes]) -> str:
    """One self-contained page: the PNGs are inlined as base64 data URIs."""
    esc = html.escape
    setup = _setup_lines(results)
    parts = [
        "<p class='setup'>Generated by <code>resnetlab gradients</code>. Timings (s): "
        + esc(", ".join(f"{k} {v:.1f}" for k, v in results["timings_s"].items()))
        + "</p>",
    ]
    for key, (title, _) in _TITLES.items():
        if key not in results:
            continue
        parts.append(f"<h2>{esc(title)}</h2>")
        parts.append(f"<p class='setup'>Setup: {esc(setup.get(key, ''))}</p>")
        if key in pngs:
            parts.append(img_tag(pngs[key], title))
        parts.append("<h3>Findings</h3><ul>")
        parts += [f"<li>{esc(f)}</li>" for f in findings.get(key, [])]
        parts.append("</ul>")
        if key == "chain":
            parts.append(html_table(_UNIT_HEAD, _unit_table_rows(results)))
    parts.append("<h2>Configuration</h2><pre>" + esc(json.dumps(results["config"])) + "</pre>")
    return html_page("Gradient flow: why skip connections work", "\n".join(parts))
