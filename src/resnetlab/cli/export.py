"""`resnetlab export RUN_DIR --out FILE`: a self-describing safetensors weights file."""

from __future__ import annotations

import argparse
import sys

HELP = "export a run's weights to one safetensors file with its metadata (classes, metrics, ...)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="run folder written by `resnetlab train`")
    p.add_argument("--out", required=True, help="output file (.safetensors)")
    p.add_argument(
        "--which",
        choices=["best", "last"],
        default="best",
        help="checkpoint to export (best: lowest validation/test error)",
    )


def run(args: argparse.Namespace) -> int:
    from resnetlab.transfer.export import export_run

    try:
        meta = export_run(args.run_dir, args.out, which=args.which)
    except FileNotFoundError as err:
        print(f"resnetlab export: error: {err}", file=sys.stderr)
        return 2
    m = meta.get("metrics", {})
    err = f", test top-1 error {m['test_top1_err']:.2f}%" if "test_top1_err" in m else ""
    print(
        f"wrote {args.out}: {meta['model']} ({meta['in_chans']} ch, {meta['num_classes']} classes, "
        f"{'x'.join(str(s) for s in meta['image_size'])} px) trained on {meta.get('data')}{err}"
    )
    return 0
