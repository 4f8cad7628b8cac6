"""The transfer report: curves.png, report.md and a self-contained report.html (PNG inlined as
base64). Every sentence with a number is computed from `results` (see `comparison.summarize`)."""

from __future__ import annotations

import html
import io
import json
from pathlib import Path
from typing import Any

from ..reporting import html_page, html_table, img_tag
from ..train.checkpoint import atomic_write, atomic_write_text

_COLORS = {"finetune": "#1f77b4", "scratch": "#d62728"}
_LABELS = {"finetune": "fine-tuned from pretrained", "scratch": "from scratch"}


def _fmt_images(n: float | None) -> str:
    return "never (within the budget)" if n is None else f"{n:,.0f}"


def findings(results: dict[str, Any]) -> dict[str, list[str]]:
    """Plain-language findings per target, computed from the summaries."""
    out: dict[str, list[str]] = {}
    for name, t in results["targets"].items():
        s = t["summary"]
        ft, sc = s["finetune"], s["scratch"]
        n_seeds = len(t["runs"]["finetune"])
        lines = []
        first = s["at_budgets"][0]
        lines.append(
            f"After {first['images']:,} training images ({100 * first['fraction']:g} % of the "
            f"budget), the fine-tuned model has {first['finetune_err']:.1f} % test error, the "
            f"from-scratch model {first['scratch_err']:.1f} %."
        )
        lines.append(
            f"At the full budget ({s['budget_images']:,} images): fine-tuned "
            f"{ft['mean'][-1]:.1f} % vs from scratch {sc['mean'][-1]:.1f} % test error "
            f"(mean of {n_seeds} seed{'s' if n_seeds > 1 else ''}; range "
            f"{ft['min'][-1]:.1f}-{ft['max'][-1]:.1f} % vs {sc['min'][-1]:.1f}-"
            f"{sc['max'][-1]:.1f} %)."
        )
        reach = s["images_to_target"]
        tgt = f"{s['target_err']:.1f} % error ({s['target_source']})"
        if reach["finetune"] == 0:
            lines.append(
                f"The fine-tuned model is at {tgt} before any training: the target is too easy "
                "to measure a speed-up; pass a lower target error."
            )
        elif s["speedup"] is not None:
            lines.append(
                f"To reach {tgt}, fine-tuning needs {_fmt_images(reach['finetune'])} images, "
                f"from scratch {_fmt_images(reach['scratch'])}: a {s['speedup']:.1f}x speed-up "
                "in training images (linear interpolation between evaluations)."
            )
        elif reach["finetune"] is not None:
            lines.append(
                f"Fine-tuning reaches {tgt} after {_fmt_images(reach['finetune'])} images; from "
                "scratch does not reach it within the budget, so the speed-up is at least "
                f"{s['budget_images'] / max(reach['finetune'], 1):.1f}x."
            )
        else:
            lines.append(
                f"Fine-tuning does not reach {tgt} within the budget "
                f"(from scratch: {_fmt_images(reach['scratch'])} images): no speed-up here."
            )
        start_ft, start_sc = ft["mean"][0], sc["mean"][0]
        lines.append(
            f"Before any training (new random head) both start near chance: {start_ft:.1f} % "
            f"(pretrained backbone) and {start_sc:.1f} % (random)."
        )
        out[name] = lines
    return out


def curves_png(results: dict[str, Any]) -> bytes:
    """Test error against training images seen, one panel per target; shaded: seed range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["targets"])
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(6.2 * max(1, len(names)), 4.4))
    axes = [axes] if len(names) <= 1 else list(axes)
    for ax, name in zip(axes, names):
        s = results["targets"][name]["summary"]
        values = [v for arm in ("finetune", "scratch") for v in s[arm]["min"] + s[arm]["max"]]
        lo, hi = max(min(values), 0.1), max(values)
        for arm in ("finetune", "scratch"):
            c = s[arm]
            ax.plot(c["images"], c["mean"], "o-", color=_COLORS[arm], label=_LABELS[arm], ms=4)
            ax.fill_between(c["images"], c["min"], c["max"], color=_COLORS[arm], alpha=0.15)
            n = s["images_to_target"][arm]
            if n is not None:
                ax.axvline(n, color=_COLORS[arm], ls=":", lw=1)
        ax.axhline(
            s["target_err"], color="0.4", ls="--", lw=1, label=f"target {s['target_err']:.1f} %"
        )
        ax.set_yscale("log")
        ticks = [t for t in (0.5, 1, 2, 5, 10, 20, 50, 100) if lo / 1.5 <= t <= hi * 1.5]
        ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("training images seen")
        ax.set_ylabel("test top-1 error (%)")
        sp = f", speed-up {s['speedup']:.1f}x" if s["speedup"] else ""
        ax.set_title(f"{name}{sp}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    src = results["source"]["description"]
    fig.suptitle(f"Transfer from {src}", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _budget_rows(summary: dict[str, Any]) -> list[list[str]]:
    seen, rows = set(), []
    for b in summary["at_budgets"]:  # one row per evaluation point
        if b["images"] not in seen:
            seen.add(b["images"])
            rows.append(b)
    return [
        [
            f"{b['images']:,} ({100 * b['fraction']:g} %)",
            f"{b['finetune_err']:.2f}",
            f"{b['scratch_err']:.2f}",
            f"{b['scratch_err'] - b['finetune_err']:+.2f}",
        ]
        for b in rows
    ]


_HEAD = ["images seen (of budget)", "fine-tuned err %", "scratch err %", "gain (points)"]


def _setup(results: dict[str, Any]) -> list[str]:
    cfg, src, pre = results["config"], results["source"], results.get("pretrain")
    lines = [f"Source weights: {src['description']}."]
    if pre:
        lines.append(
            f"Pretrained here on {pre['data']} ({pre['train_images'] or 'all':} training images, "
            f"{pre['epochs']} epochs, {pre['wall_time_s']:.0f} s): test error "
            f"{pre['test_top1_err']:.2f} % (best {pre['best_top1_err']:.2f} %)."
        )
    lines.append(
        f"Both arms: {src['model']} {json.dumps(src['model_kwargs']) if src['model_kwargs'] else ''}"
        f" {cfg['optimizer']} lr {cfg['lr']} (cosine), batch {cfg['batch_size']}, "
        f"{cfg['epochs']} epochs over {cfg['train_subset'] or 'all'} target training images, "
        f"weight decay {cfg['weight_decay']}, seeds {cfg['seeds']}; same data order and same "
        "initial head. Fine-tune arm: freeze="
        f"{cfg['freeze']}, backbone lr x{cfg['backbone_lr_scale']:g}."
    )
    if results["skipped_targets"]:
        lines.append(
            f"Skipped (data not found): {', '.join(results['skipped_targets'])}; place the files "
            "where `resnetlab train --data NAME` finds them to include it."
        )
    lines.append(f"Total wall time {results['wall_time_s']:.0f} s.")
    return lines


def render_markdown(results: dict[str, Any], found: dict[str, list[str]]) -> str:
    lines = ["# Transfer learning: fine-tuning vs training from scratch", ""]
    lines += [f"- {s}" for s in _setup(results)] + ["", "![curves](curves.png)", ""]
    for name, t in results["targets"].items():
        lines += [f"## {name}", ""]
        lines += [f"- {f}" for f in found[name]] + [""]
        lines += ["| " + " | ".join(_HEAD) + " |", "|" + "---|" * len(_HEAD)]
        lines += ["| " + " | ".join(r) + " |" for r in _budget_rows(t["summary"])] + [""]
        report = t["runs"]["finetune"][0].get("load_report")
        if report:
            lines += ["Loading the source weights:", "", "```", report, "```", ""]
    lines += ["## Configuration", "", "```json", json.dumps(results["config"], indent=1), "```"]
    return "\n".join(lines) + "\n"


def render_html(results: dict[str, Any], found: dict[str, list[str]], png: bytes) -> str:
    esc = html.escape
    parts = ["<ul>"]
    parts += [f"<li>{esc(s)}</li>" for s in _setup(results)]
    parts.append("</ul>" + img_tag(png, "learning curves"))
    for name, t in results["targets"].items():
        parts.append(f"<h2>{esc(name)}</h2><ul>")
        parts += [f"<li>{esc(f)}</li>" for f in found[name]]
        parts.append("</ul>" + html_table(_HEAD, _budget_rows(t["summary"])))
        report = t["runs"]["finetune"][0].get("load_report")
        if report:
            parts.append(f"<p>Loading the source weights:</p><pre>{esc(report)}</pre>")
    parts.append("<h2>Configuration</h2><pre>" + esc(json.dumps(results["config"], indent=1)))
    parts.append("</pre>")
    return html_page("Transfer learning: fine-tuning vs training from scratch", "\n".join(parts))


def write_report(results: dict[str, Any], out: str | Path) -> dict[str, Path]:
    """Write curves.png, report.md and report.html into `out`; return their paths."""
    out = Path(out)
    found = findings(results)
    png = curves_png(results)
    paths = {"png": out / "curves.png", "md": out / "report.md", "html": out / "report.html"}
    atomic_write(paths["png"], lambda tmp: Path(tmp).write_bytes(png))
    atomic_write_text(paths["md"], render_markdown(results, found))
    atomic_write_text(paths["html"], render_html(results, found, png))
    return paths
