"""Shared pieces of the HTML/Markdown reports: self-contained pages with inlined PNGs, tables,
and a description of the machine that produced the numbers."""

from __future__ import annotations

import base64
import html
import io
import os
import platform
from collections.abc import Sequence
from pathlib import Path

from resnetlab.train.checkpoint import atomic_write, atomic_write_text

__all__ = [
    "atomic_write_text",
    "figure_png",
    "html_page",
    "html_table",
    "img_tag",
    "machine_info",
    "md_table",
    "save_png",
]

CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; }
pre, code { background: #f6f6f6; padding: 0.1em 0.3em; font-size: 0.9em; }
pre { padding: 0.6em; overflow-x: auto; white-space: pre-wrap; }
li.present { color: #a40000; } li.absent { color: #2a6e00; } .setup { color: #555; }
"""


def figure_png(fig, tight: bool = True) -> bytes:
    """Render a matplotlib figure to PNG bytes (110 dpi) and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight" if tight else None)
    plt.close(fig)
    return buf.getvalue()


def save_png(path: str | os.PathLike, png: bytes) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(png))


def img_tag(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def html_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(map(str, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def html_page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


_ISA = [
    ("avx2", "AVX2"),
    ("avx512f", "AVX-512"),
    ("avx512_bf16", "AVX512-BF16"),
    ("amx_bf16", "AMX"),
]


def machine_info() -> dict[str, str]:
    """Where a result was produced: CPU/GPU, core count, torch and resnetlab versions."""
    import torch

    from resnetlab import __version__

    model, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
            if model and flags:
                break
    except OSError:
        pass
    cpu = model or platform.processor() or platform.machine()
    # the vector units that decide which precision is fast here (bf16 needs AVX512-BF16 or AMX)
    isa = [name for flag, name in _ISA if flag in flags]
    info = {
        "cpu": cpu + (f" ({', '.join(isa)})" if isa else ""),
        "cores": str(os.cpu_count()),
        "torch threads": str(torch.get_num_threads()),
        "torch": torch.__version__,
        "resnetlab": __version__,
        "python": platform.python_version(),
        "os": platform.platform(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
