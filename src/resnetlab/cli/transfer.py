"""`resnetlab transfer [--from WEIGHTS] [--data TARGET ...]`: fine-tune vs from scratch."""

from __future__ import annotations

import argparse
import sys

HELP = "compare fine-tuning pretrained weights with training from scratch (curves, speed-up)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--from",
        dest="source",
        metavar="WEIGHTS",
        help="run folder, .safetensors, .pth (with --model) or ARCH.TAG (resnet18.IMAGENET1K_V1); "
        "default: pretrain a small ResNet on Fashion-MNIST first",
    )
    p.add_argument(
        "--data",
        nargs="+",
        metavar="TARGET",
        help="target data set(s); a trailing ? means 'if present' (default: digits mnist?)",
    )
    p.add_argument("--model", help="architecture for ARCH.TAG / .pth sources")
    p.add_argument("--out", help="output folder (default runs/transfer-<time>)")
    p.add_argument("--epochs", type=int, help="budget: passes over the target training images")
    p.add_argument("--train-subset", type=int, metavar="N", help="target training images")
    p.add_argument("--test-subset", type=int, metavar="N", help="target test images")
    p.add_argument("--image-size", type=int, metavar="PX", help="digits: upsample 8x8 to PX")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="peak learning rate (both arms, cosine schedule)")
    p.add_argument("--optimizer", choices=["sgd", "adamw"])
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--freeze", choices=["none", "linear", "gradual"], help="fine-tune arm")
    p.add_argument("--backbone-lr-scale", type=float, metavar="X", help="fine-tune arm")
    p.add_argument("--seeds", type=int, nargs="+", help="one run per arm and seed")
    p.add_argument("--target-err", type=float, metavar="PCT", help="error for the speed-up")
    p.add_argument("--pretrain-subset", type=int, metavar="N", help="Fashion-MNIST images")
    p.add_argument("--pretrain-epochs", type=int)
    p.add_argument("--pretrain-test-subset", type=int, metavar="N", help="test images per epoch")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--device")
    p.add_argument("--threads", type=int)
    p.add_argument("--progress", choices=["auto", "bar", "log", "none"])


def run(args: argparse.Namespace) -> int:
    from resnetlab.transfer.comparison import TransferConfig, default_out, run_transfer

    cfg = TransferConfig(out=args.out or default_out())
    for key in (
        "source", "model", "epochs", "train_subset", "test_subset", "image_size", "batch_size",
        "lr", "optimizer", "weight_decay", "freeze", "backbone_lr_scale", "seeds", "target_err",
        "pretrain_subset", "pretrain_epochs", "pretrain_test_subset", "precision", "device", "threads", "progress",
    ):  # fmt: skip
        value = getattr(args, key)
        if value is not None:
            setattr(cfg, key, value)
    if args.data:
        cfg.targets = list(args.data)
    try:
        results = run_transfer(cfg)
    except FileNotFoundError as err:
        print(f"resnetlab transfer: error: {err}", file=sys.stderr)
        return 2
    for name, t in results["targets"].items():
        s = t["summary"]
        sp = f"{s['speedup']:.1f}x" if s["speedup"] else "n/a"
        print(
            f"{name}: fine-tuned {s['finetune']['mean'][-1]:.2f}% vs scratch "
            f"{s['scratch']['mean'][-1]:.2f}% test error after {s['budget_images']:,} images; "
            f"speed-up to {s['target_err']:.2f}% error: {sp}"
        )
    print(f"report: {cfg.out}/report.html (and report.md, curves.png, results.json)")
    return 0
