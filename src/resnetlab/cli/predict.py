"""`resnetlab predict WEIGHTS IMAGE...`: top-5 classes with probabilities."""

from __future__ import annotations

import argparse
import sys

HELP = "classify images with pretrained or exported weights (top-5 with probabilities)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "weights",
        help="resnetlab .safetensors file or run folder, ARCH.TAG (e.g. resnet50.IMAGENET1K_V2), "
        "or a torchvision-format .pth with --model",
    )
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--model", help="architecture of a bare .pth state dict (e.g. resnet50)")
    p.add_argument("--topk", type=int, default=5)


def run(args: argparse.Namespace) -> int:
    from resnetlab.transfer.predict import load_for_inference, predict

    try:
        model, meta = load_for_inference(args.weights, model=args.model)
        results = predict(model, meta, args.images, topk=args.topk)
    except FileNotFoundError as err:
        print(f"resnetlab predict: error: {err}", file=sys.stderr)
        return 2
    for image, top in zip(args.images, results):
        print(image)
        for rank, (name, prob) in enumerate(top, start=1):
            print(f"  {rank}. {name:<30s} {100 * prob:6.2f}%")
    return 0
