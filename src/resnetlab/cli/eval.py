"""`resnetlab eval RUN_DIR_OR_WEIGHTS --data NAME`: top-1/top-5 error of a trained model."""

from __future__ import annotations

import argparse
import json
import sys

HELP = "evaluate a run folder or safetensors weights: top-1/top-5 error"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "path", help="run folder (uses checkpoints/<which>.safetensors) or a .safetensors file"
    )
    p.add_argument("--data", help="data set (default: the one the model was trained on)")
    p.add_argument("--data-dir", help="folder holding the data files")
    p.add_argument(
        "--which", choices=["last", "best"], default="last", help="checkpoint of a run folder"
    )
    p.add_argument("--split", choices=["test", "val", "train"], default="test")
    p.add_argument("--tta", action="store_true", help="average with the horizontally flipped image")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--test-subset", type=int, metavar="N", help="first N test images only")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from resnetlab.train.loading import evaluate_path

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    try:
        m = evaluate_path(
            args.path,
            data=args.data,
            data_dir=args.data_dir,
            which=args.which,
            split=args.split,
            batch_size=args.batch_size,
            tta_flip=args.tta,
            device=args.device,
            precision=args.precision,
            test_subset=args.test_subset,
        )
    except FileNotFoundError as err:
        print(f"resnetlab eval: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(m))
    else:
        tta = " (flip TTA)" if m["tta_flip"] else ""
        print(
            f"{m['model']} on {m['data']} {m['split']} ({m['n']} images){tta}: "
            f"top-1 error {m['top1_err']:.2f}%  top-5 error {m['top5_err']:.2f}%  loss {m['loss']:.4f}"
        )
    return 0
