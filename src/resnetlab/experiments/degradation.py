"""The degradation experiment of He et al. 2015 (Fig. 1, Fig. 6): deeper plain nets train
*worse*; residual nets of the same depth and parameter count do not.

For every depth, a plain net and its residual twin (option A: identical layers and parameter
counts) are trained with the same recipe, seed and data order by the training engine; each run
has its own run folder, so the sweep is resumable run by run. The report (report.html,
report.md, degradation.png, results.json) is built from the run folders alone.
"""

from __future__ import annotations

import csv
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from resnetlab.train import DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig, train

# Each preset is a recipe; command-line values override it field by field.
PRESETS: dict[str, dict[str, Any]] = {
    # Measured on a 2-core AVX2 CPU (fp32 + channels_last: plain/resnet-20 ~250 img/s, -56 ~80):
    # the four nets fit in ~8 minutes and plain-56 already trains far worse than plain-20 (README,
    # "What you should see"). Small batches give the most optimiser steps per image; one-cycle
    # SGD; no label smoothing, since training error is the quantity under study.
    "default": dict(
        family="cifar",
        data="fashion-mnist",
        depths=[20, 56],
        epochs=3,
        train_subset=3000,
        test_subset=1000,
        batch_size=32,
        lr=0.05,
        schedule="onecycle",
        weight_decay=5e-4,
        log_every=5,
    ),
    # He et al. 2015, Sec. 4.2: 45k/5k split, batch 128, lr 0.1 ÷10 at 32k and 48k iterations,
    # stop at 64k; weight decay 1e-4, momentum 0.9; 4-px pad + crop + flip. ResNet-110 warms up
    # at 0.01 for 400 iterations. Meant for a GPU.
    "paper": dict(
        family="cifar",
        data="cifar10",
        depths=[20, 32, 44, 56, 110],
        steps=64000,
        val_split=5000,
        batch_size=128,
        lr=0.1,
        schedule="step",
        milestones=[32000, 48000],
        weight_decay=1e-4,
        log_every=100,
    ),
    # He et al. 2015, Sec. 3.4 / Fig. 4: plain-18/34 vs ResNet-18/34 on an image folder
    # (ImageNet layout), batch 256, lr 0.1 ÷10 at epochs 30 and 60, weight decay 1e-4.
    "imagenet": dict(
        family="imagenet",
        data=None,
        depths=[18, 34],
        epochs=90,
        batch_size=256,
        lr=0.1,
        schedule="step",
        milestones=[30, 60],
        milestone_unit="epoch",
        weight_decay=1e-4,
        image_size=224,
        log_every=100,
    ),
}

# CIFAR-10 test error (%) of He et al. 2015, Table 6 (residual nets; plain nets are only plotted).
PAPER_CIFAR10_TEST_ERR = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43, 1202: 7.93}
# ImageNet top-1 10-crop error (%) of He et al. 2015, Table 3 (option B for ResNet-34).
PAPER_IMAGENET_ERR = {
    ("plain", 18): 27.94,
    ("resnet", 18): 27.88,
    ("plain", 34): 28.54,
    ("resnet", 34): 24.52,
}

KINDS = ("plain", "resnet")
# Ending more than this many points apart counts as a difference at all.
MARGIN = 0.5


def noise_margin(err_a: float, err_b: float, n: int) -> float:
    """Two standard errors (in points) of the difference of two error rates, each measured on n
    images: a gap smaller than this is within the sampling noise of the measurement itself."""
    pa, pb = err_a / 100, err_b / 100
    se = ((pa * (1 - pa) + pb * (1 - pb)) / max(1, n)) ** 0.5
    return max(MARGIN, 200 * se)


@dataclass
class DegradationConfig:
    """A sweep. Fields left at None take the preset's value."""

    preset: str = "default"
    data: str | None = None
    data_dir: str | None = None
    depths: list[int] | None = None
    epochs: int | None = None
    steps: int | None = None
    train_subset: int | None = None
    test_subset: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    image_size: int | None = None  # px; image folders / resized in-memory sets
    seeds: int = 1
    shortcut: str | None = None  # default: "A" for CIFAR-style nets, "B" for ImageNet-style
    preact: bool = False
    out: str = "runs/degradation"
    device: str = "auto"
    precision: str = "auto"
    progress: str = "auto"
    threads: int | None = None
    command: str = ""  # the command line that started the sweep, for the report


@dataclass
class Recipe:
    """The resolved recipe every run of a sweep shares (what results depend on)."""

    family: str
    data: str
    depths: list[int]
    epochs: int | None
    steps: int | None
    train_subset: int | None
    test_subset: int | None
    val_split: int
    batch_size: int
    lr: float
    schedule: str
    milestones: list[float]
    milestone_unit: str
    weight_decay: float
    image_size: int | None
    seeds: int
    shortcut: str
    preact: bool
    log_every: int
    data_dir: str | None = field(default=None, compare=False)


def resolve(cfg: DegradationConfig) -> Recipe:
    """Merge the preset with the user's values and check them."""
    if cfg.preset not in PRESETS:
        raise ValueError(f"unknown preset {cfg.preset!r}; choose one of {', '.join(PRESETS)}")
    p = dict(PRESETS[cfg.preset])
    family = p["family"]
    user = {
        k: getattr(cfg, k)
        for k in (
            "data",
            "depths",
            "epochs",
            "steps",
            "train_subset",
            "test_subset",
            "batch_size",
            "lr",
        )
        if getattr(cfg, k) is not None
    }
    if "epochs" in user and "steps" not in user:
        p.pop("steps", None)  # an epoch budget from the user replaces the preset's iterations
        if p.get("milestone_unit", "step") == "step" and p.get("schedule") == "step":
            p["milestones"], p["milestone_unit"] = [0.5, 0.75], "fraction"
    p.update(user)
    if not p.get("data"):
        raise ValueError(
            f"preset {cfg.preset!r} needs --data folder:PATH (an ImageNet-style image folder "
            "with train/ and val/ sub-folders)"
        )
    depths = [int(d) for d in p["depths"]]
    if len(depths) < 1 or len(set(depths)) != len(depths):
        raise ValueError(f"--depths needs distinct depths, got {depths}")
    for d in depths:
        if family == "cifar" and (d < 8 or (d - 2) % 6):
            raise ValueError(
                f"depth {d} is not a CIFAR-style depth 6n+2 (e.g. 8, 14, 20, 32, 44, 56, 110)"
            )
        if family == "imagenet" and d not in (18, 34, 50):
            raise ValueError(f"ImageNet-style degradation runs take depths 18, 34, 50; got {d}")
    if cfg.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {cfg.seeds}")
    shortcut = cfg.shortcut or ("A" if family == "cifar" else "B")
    if shortcut not in ("A", "B", "C"):
        raise ValueError(f"--shortcut must be A, B or C for the residual twins, got {shortcut!r}")
    if cfg.preact and family != "cifar":
        raise ValueError("--preact applies to CIFAR-style nets; drop it for the imagenet preset")
    epochs = p.get("epochs")
    steps = p.get("steps")
    if not epochs and not steps:
        raise ValueError("set a budget: --epochs or --steps")
    return Recipe(
        family=family,
        data=p["data"],
        depths=sorted(depths),
        epochs=epochs if not steps else None,
        steps=steps,
        train_subset=p.get("train_subset"),
        test_subset=p.get("test_subset"),
        val_split=p.get("val_split", 0),
        batch_size=p["batch_size"],
        lr=p["lr"],
        schedule=p["schedule"],
        milestones=list(p.get("milestones", [0.5, 0.75])),
        milestone_unit=p.get("milestone_unit", "fraction" if "milestones" not in p else "step"),
        weight_decay=p["weight_decay"],
        image_size=p.get("image_size"),
        seeds=cfg.seeds,
        shortcut=shortcut,
        preact=cfg.preact,
        log_every=p["log_every"],
        data_dir=cfg.data_dir,
    )


def model_config(recipe: Recipe, kind: str, depth: int) -> ModelConfig:
    """The registered name where one exists (plain20, resnet56, ...), else the ResNet class with
    the CIFAR shape (three stages of n units, 16/32/64 planes) for any depth 6n+2."""
    shortcut = "none" if kind == "plain" else recipe.shortcut
    if recipe.family == "imagenet":
        return ModelConfig(f"{kind}{depth}", {} if kind == "plain" else {"shortcut": shortcut})
    from resnetlab.models import list_models

    name = f"{kind}{depth}"
    if not recipe.preact and name in list_models():
        return ModelConfig(name, {} if kind == "plain" else {"shortcut": shortcut})
    n = (depth - 2) // 6
    block = "preact_basic" if recipe.preact else "basic"
    kwargs = dict(
        block=block,
        layers=[n, n, n],
        widths=[16, 32, 64],
        stem_width=16,
        stem="cifar",
        shortcut=shortcut,
    )
    return ModelConfig("resnet", kwargs)


def run_name(kind: str, depth: int, seed: int, preact: bool = False) -> str:
    return f"{'preact_' if preact else ''}{kind}{depth}-seed{seed}"


def train_config(
    recipe: Recipe, cfg: DegradationConfig, kind: str, depth: int, seed: int
) -> TrainConfig:
    optim = OptimConfig(
        optimizer="sgd",
        lr=recipe.lr,
        momentum=0.9,
        weight_decay=recipe.weight_decay,
        epochs=recipe.epochs or 1,
        steps=recipe.steps,
        schedule=recipe.schedule,
        milestones=recipe.milestones,
        milestone_unit=recipe.milestone_unit,
    )
    if recipe.family == "cifar" and depth >= 110 and recipe.schedule == "step":
        # He et al. 2015: ResNet-110 starts at 0.01 until training error is below 80 %
        # (~400 iterations), then returns to 0.1.
        optim.warmup_steps, optim.warmup, optim.warmup_factor = 400, "constant", 0.1
    return TrainConfig(
        model=model_config(recipe, kind, depth),
        data=DataConfig(
            name=recipe.data,
            data_dir=recipe.data_dir,
            train_subset=recipe.train_subset,
            test_subset=recipe.test_subset,
            val_split=recipe.val_split,
            batch_size=recipe.batch_size,
            image_size=recipe.image_size,
        ),
        optim=optim,
        run=RunConfig(
            out=str(Path(cfg.out) / "runs" / run_name(kind, depth, seed, recipe.preact)),
            resume="auto",
            seed=seed,
            device=cfg.device,
            precision=cfg.precision,
            progress=cfg.progress,
            log_every=recipe.log_every,
            threads=cfg.threads,
        ),
    )


def _check_sweep_folder(out: Path, recipe: Recipe) -> None:
    """A sweep folder belongs to one recipe: rerunning with other settings would mix results."""
    saved = out / "sweep.json"
    if not saved.is_file():
        return
    old = json.loads(saved.read_text()).get("recipe", {})
    new = asdict(recipe)
    diff = [
        f"{k} {old.get(k)!r} -> {new[k]!r}"
        for k in new
        if k not in ("data_dir", "depths", "seeds") and old.get(k) != new[k]
    ]
    if diff:
        raise ValueError(
            f"{out} holds a sweep with other settings ({'; '.join(diff)}); pass another --out "
            "or delete that folder"
        )


def run_sweep(cfg: DegradationConfig, log=print) -> dict[str, Any]:
    """Train every (depth, plain/residual, seed) run not finished yet, then write the report.
    Returns the results dict that the report was made from."""
    from resnetlab.reporting import atomic_write_text, machine_info

    recipe = resolve(cfg)
    out = Path(cfg.out)
    _check_sweep_folder(out, recipe)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        out / "sweep.json",
        json.dumps({"recipe": asdict(recipe), "config": asdict(cfg)}, indent=2),
    )
    jobs = [(kind, d, s) for s in range(recipe.seeds) for d in recipe.depths for kind in KINDS]
    t0 = time.perf_counter()
    for i, (kind, depth, seed) in enumerate(jobs, start=1):
        tcfg = train_config(recipe, cfg, kind, depth, seed)
        label = f"[model {i}/{len(jobs)}] {run_name(kind, depth, seed, recipe.preact)}"
        if (Path(tcfg.run.out) / "result.json").is_file():
            log(f"{label}: finished earlier, skipped")
            continue
        resuming = (Path(tcfg.run.out) / "checkpoints" / "last.pt").is_file()
        log(
            f"{label}: {'resuming' if resuming else 'training'} (sweep time {time.perf_counter() - t0:.0f} s)"
        )
        train(tcfg)
    results = collect(out, recipe)
    from resnetlab.train.engine import git_sha

    results["machine"] = {**machine_info(), "git SHA": git_sha() or "unknown"}
    results["command"] = cfg.command
    results["sweep_wall_time_s"] = sum(r["wall_time_s"] for r in results["runs"])
    write_report(out, results)
    return results


# --------------------------------------------------------------------------- results


def _read_csv(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [
            {k: float(v) for k, v in row.items() if v not in ("", None)}
            for row in csv.DictReader(fh)
        ]


def collect(out: Path, recipe: Recipe) -> dict[str, Any]:
    """Read every run folder of the sweep into one results dict."""
    from resnetlab.models.summary import count_params
    from resnetlab.train import build_model

    runs = []
    for seed in range(recipe.seeds):
        for depth in recipe.depths:
            for kind in KINDS:
                folder = out / "runs" / run_name(kind, depth, seed, recipe.preact)
                result = json.loads((folder / "result.json").read_text())
                meta = result["config"]["meta"]
                model = build_model(
                    ModelConfig(**result["config"]["model"]),
                    in_chans=meta["in_chans"],
                    num_classes=meta["num_classes"],
                    image_size=tuple(meta["image_size"]),
                )
                history = result["history"]
                batch = result["config"]["data"]["batch_size"]
                test_key = "val_top1_err" if recipe.val_split else "test_top1_err"
                final = result["final"]
                runs.append(
                    dict(
                        kind=kind,
                        depth=depth,
                        seed=seed,
                        folder=str(folder),
                        params=count_params(model),
                        train_err=final["train_err"],
                        test_err=final.get(test_key),
                        best_test_err=min(
                            h[test_key] for h in history if h.get(test_key) is not None
                        ),
                        wall_time_s=final["wall_time_s"],
                        train_images=meta["steps_per_epoch"] * batch,
                        img_per_s=statistics.fmean(h["img_per_s"] for h in history),
                        epochs=[
                            dict(step=h["step"], train_err=h["train_err"], test_err=h.get(test_key))
                            for h in history
                        ],
                        steps=[
                            dict(step=r["step"], err=r["err"])
                            for r in _read_csv(folder / "steps.csv")
                        ],
                    )
                )
    return {
        "recipe": asdict(recipe),
        "runs": runs,
        "test_split": "val" if recipe.val_split else "test",
    }


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (kind, depth): means and standard deviations over seeds."""
    rows = []
    recipe = results["recipe"]
    for depth in recipe["depths"]:
        for kind in KINDS:
            rs = [r for r in results["runs"] if r["kind"] == kind and r["depth"] == depth]
            row = dict(
                kind=kind,
                depth=depth,
                params=rs[0]["params"],
                n=len(rs),
                train_images=rs[0]["train_images"],
            )
            for key in ("train_err", "test_err", "best_test_err", "wall_time_s", "img_per_s"):
                row[key], row[key + "_std"] = _mean_std([r[key] for r in rs])
            rows.append(row)
    return rows


def _label(kind: str, depth: int, preact: bool) -> str:
    return f"{'preact-' if preact and kind == 'resnet' else ''}{'plain' if kind == 'plain' else 'resnet'}-{depth}"


def findings(results: dict[str, Any]) -> list[dict[str, str]]:
    """Statements computed from the summary rows; each has a `kind` for styling."""
    rows = summarize(results)
    recipe = results["recipe"]
    depths = recipe["depths"]
    seeds = recipe["seeds"]
    by = {(r["kind"], r["depth"]): r for r in rows}
    out = []
    if len(depths) >= 2:
        shallow, deep = depths[0], depths[-1]
        for kind in KINDS:
            a, b = by[(kind, shallow)], by[(kind, deep)]
            gap = b["train_err"] - a["train_err"]
            spread = b["train_err_std"] + a["train_err_std"]
            name_a, name_b = (
                _label(kind, shallow, recipe["preact"]),
                _label(kind, deep, recipe["preact"]),
            )
            margin = noise_margin(a["train_err"], b["train_err"], a["train_images"])
            if gap > margin:
                verdict, style = "degradation present", "present"
            elif gap < -margin:
                verdict, style = "the deeper net trains better: no degradation", "absent"
            else:
                verdict, style = (
                    f"within the sampling noise (±{margin:.1f} points), so degradation is absent "
                    "at this budget",
                    "absent",
                )
            direction = "above" if gap > 0 else "below"
            where = f"{abs(gap):.1f} points {direction}" if round(abs(gap), 1) else "level with"
            text = (
                f"{name_b} ends {where} {name_a} in training error "
                f"({b['train_err']:.1f} % vs {a['train_err']:.1f} %): {verdict}."
            )
            if seeds > 1:
                exceeds = abs(gap) > spread
                text += (
                    f" Over {seeds} seeds the gap {'exceeds' if exceeds else 'does not exceed'} the "
                    f"spread (±{b['train_err_std']:.1f} and ±{a['train_err_std']:.1f})."
                )
                if not exceeds:
                    style = "absent" if style == "present" else style
            out.append(dict(kind=style, text=text))
    if len(depths) >= 2:
        shallow, deep = depths[0], depths[-1]
        plain_gap = by[("plain", deep)]["train_err"] - by[("plain", shallow)]["train_err"]
        res_gap = by[("resnet", deep)]["train_err"] - by[("resnet", shallow)]["train_err"]
        if plain_gap > res_gap + MARGIN:
            text = (
                f"Going from {shallow} to {deep} layers costs the plain nets {plain_gap:+.1f} "
                f"points of training error and the residual nets {res_gap:+.1f}: the shortcuts "
                f"remove {plain_gap - res_gap:.1f} points of the depth penalty."
            )
        else:
            text = (
                f"Going from {shallow} to {deep} layers changes training error by {plain_gap:+.1f} "
                f"points for plain nets and {res_gap:+.1f} for residual nets: at this budget the "
                "shortcuts do not reduce the depth penalty."
            )
        out.append(dict(kind="info", text=text))
    for depth in depths:
        p, r = by[("plain", depth)], by[("resnet", depth)]
        d_train = p["train_err"] - r["train_err"]
        d_test = p["test_err"] - r["test_err"]
        out.append(
            dict(
                kind="info",
                text=(
                    f"At depth {depth} the residual net ends {abs(d_train):.1f} points "
                    f"{'below' if d_train >= 0 else 'above'} its plain twin in training error and "
                    f"{abs(d_test):.1f} points {'below' if d_test >= 0 else 'above'} in "
                    f"{results['test_split']} error, with {'the same' if p['params'] == r['params'] else 'a different'} "
                    f"number of parameters ({r['params']:,} vs {p['params']:,})."
                ),
            )
        )
    return out


# --------------------------------------------------------------------------- report


def _smooth(xs: list[float], ys: list[float], window: int) -> tuple[list[float], list[float]]:
    if len(ys) < window or window < 2:
        return xs, ys
    out = [statistics.fmean(ys[i - window + 1 : i + 1]) for i in range(window - 1, len(ys))]
    return xs[window - 1 :], out


def figure(results: dict[str, Any]) -> bytes:
    """The paper-style figure: error against iterations; plain nets left, residual nets right;
    thin lines training error (smoothed mini-batch error), bold lines test error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from resnetlab.reporting import figure_png

    recipe = results["recipe"]
    depths = recipe["depths"]
    colours = plt.get_cmap("viridis" if len(depths) > 4 else "tab10")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    top = 0.0
    for ax, kind in zip(axes, KINDS):
        for i, depth in enumerate(depths):
            colour = colours(i / max(1, len(depths) - 1)) if len(depths) > 4 else colours(i)
            rs = [r for r in results["runs"] if r["kind"] == kind and r["depth"] == depth]
            label = _label(kind, depth, recipe["preact"])
            steps = [s["step"] for s in rs[0]["steps"]]
            if steps:
                errs = [
                    statistics.fmean(r["steps"][j]["err"] for r in rs if j < len(r["steps"]))
                    for j in range(len(steps))
                ]
                xs, ys = _smooth(steps, errs, max(1, min(10, len(errs) // 8)))
                ax.plot(xs, ys, color=colour, lw=0.9, alpha=0.75)
                top = max(top, max(ys))
            ep_steps = [e["step"] for e in rs[0]["epochs"]]
            test = [
                statistics.fmean(r["epochs"][j]["test_err"] for r in rs)
                for j in range(len(ep_steps))
            ]
            ax.plot(ep_steps, test, color=colour, lw=2.6, marker="o", ms=4, label=label)
            top = max(top, max(test))
        ax.set_title(
            ("plain networks" if kind == "plain" else "residual networks") + f" on {recipe['data']}"
        )
        ax.set_xlabel("iterations")
        ax.grid(alpha=0.3)
        ax.legend(title="bold: test error, thin: training error", fontsize=9, title_fontsize=8)
    axes[0].set_ylabel("error (%)")
    axes[0].set_ylim(0, min(100, top * 1.08 + 1))
    fig.tight_layout()
    return figure_png(fig)


def _fmt(v: float, sd: float, n: int, digits: int = 2) -> str:
    return f"{v:.{digits}f} ± {sd:.{digits}f}" if n > 1 else f"{v:.{digits}f}"


def table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    recipe = results["recipe"]
    split = results["test_split"]
    headers = [
        "model",
        "depth",
        "params",
        "train err %",
        f"{split} err %",
        f"best {split} err %",
        "wall time s",
        "img/s",
    ]
    paper = recipe["data"] == "cifar10" or recipe["family"] == "imagenet"
    if paper:
        headers.append("paper err %")
    rows = []
    for r in summarize(results):
        row = [
            _label(r["kind"], r["depth"], recipe["preact"]),
            str(r["depth"]),
            f"{r['params']:,}",
            _fmt(r["train_err"], r["train_err_std"], r["n"]),
            _fmt(r["test_err"], r["test_err_std"], r["n"]),
            _fmt(r["best_test_err"], r["best_test_err_std"], r["n"]),
            f"{r['wall_time_s']:.0f}",
            f"{r['img_per_s']:.0f}",
        ]
        if paper:
            if recipe["family"] == "imagenet":
                ref = PAPER_IMAGENET_ERR.get((r["kind"], r["depth"]))
            else:
                ref = PAPER_CIFAR10_TEST_ERR.get(r["depth"]) if r["kind"] == "resnet" else None
            row.append(f"{ref:.2f}" if ref is not None else "–")
        rows.append(row)
    return headers, rows


def recipe_text(recipe: dict[str, Any]) -> str:
    budget = f"{recipe['steps']} iterations" if recipe["steps"] else f"{recipe['epochs']} epochs"
    subset = (
        f"first {recipe['train_subset']:,} training images"
        if recipe["train_subset"]
        else "the full training set"
    )
    test = (
        f"first {recipe['test_subset']:,} test images"
        if recipe["test_subset"]
        else "the full test set"
    )
    if recipe["val_split"]:
        test = f"a {recipe['val_split']:,}-image validation split"
    sched = recipe["schedule"]
    if sched == "step":
        sched += f" ÷10 at {recipe['milestones']} ({recipe['milestone_unit']})"
    twin = "pre-activation " if recipe["preact"] else ""
    return (
        f"{recipe['data']}, {subset}, evaluated on {test}; {budget}, batch {recipe['batch_size']}, "
        f"SGD momentum 0.9, lr {recipe['lr']} ({sched}), weight decay {recipe['weight_decay']}; "
        f"{twin}residual twins with shortcut option {recipe['shortcut']}; {recipe['seeds']} seed(s); "
        "plain and residual nets of a seed see the same data order."
    )


def write_report(out: Path, results: dict[str, Any]) -> None:
    """report.html (self-contained), report.md, degradation.png and results.json in `out`."""
    import html as _html

    from resnetlab.reporting import (
        atomic_write_text,
        html_page,
        html_table,
        img_tag,
        md_table,
        save_png,
    )

    png = figure(results)
    save_png(out / "degradation.png", png)
    found = findings(results)
    headers, rows = table(results)
    recipe = results["recipe"]
    atomic_write_text(out / "results.json", json.dumps({**results, "findings": found}, indent=2))
    title = "Degradation: plain vs residual networks"
    machine = results.get("machine", {})
    cfg_json = json.dumps(recipe, indent=2)
    train_note = (
        "Training error is the mini-batch error averaged over the last epoch (with augmentation), "
        "as in the paper's curves."
    )
    md = [
        f"# {title}",
        "",
        f"Command: `{results.get('command') or 'resnetlab degradation'}`",
        "",
        f"Recipe: {recipe_text(recipe)}",
        "",
        "![error against iterations](degradation.png)",
        "",
        "## Findings",
        "",
        *[f"- {f['text']}" for f in found],
        "",
        "## Results",
        "",
        md_table(headers, rows),
        "",
        train_note,
        "",
        "## Machine and config",
        "",
        *[f"- {k}: {v}" for k, v in machine.items()],
        f"- total training time: {results.get('sweep_wall_time_s', 0):.0f} s",
        "",
        "```json",
        cfg_json,
        "```",
        "",
    ]
    atomic_write_text(out / "report.md", "\n".join(md))
    body = (
        f"<p><b>Command:</b> <code>{_html.escape(results.get('command') or 'resnetlab degradation')}</code></p>"
        f"<p><b>Recipe:</b> {_html.escape(recipe_text(recipe))}</p>"
        + img_tag(png, "error against iterations")
        + "<h2>Findings</h2><ul>"
        + "".join(f'<li class="{f["kind"]}">{_html.escape(f["text"])}</li>' for f in found)
        + "</ul><h2>Results</h2>"
        + html_table(headers, rows)
        + f"<p>{_html.escape(train_note)}</p>"
        + "<h2>Machine and config</h2><ul>"
        + "".join(f"<li>{_html.escape(k)}: {_html.escape(str(v))}</li>" for k, v in machine.items())
        + f"<li>total training time: {results.get('sweep_wall_time_s', 0):.0f} s</li></ul>"
        + f"<pre>{_html.escape(cfg_json)}</pre>"
    )
    atomic_write_text(out / "report.html", html_page(title, body))


def command_line() -> str:
    return " ".join(["resnetlab", *sys.argv[1:]]) if sys.argv else "resnetlab degradation"


__all__ = [
    "DegradationConfig",
    "PRESETS",
    "Recipe",
    "collect",
    "findings",
    "resolve",
    "run_sweep",
    "summarize",
    "write_report",
]
