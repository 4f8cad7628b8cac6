"""`resnetlab degradation`: the plain-vs-residual degradation experiment with a report."""

HELP = "train plain nets and their residual twins at several depths; write the degradation report"


def add_arguments(parser) -> None:
    parser.add_argument(
        "--preset",
        choices=["default", "paper", "imagenet"],
        default="default",
        help="default: Fashion-MNIST, ~8 min on 2 CPU cores; paper: He et al. 2015 CIFAR-10 "
        "recipe (64k iterations, GPU); imagenet: plain/ResNet-18/34 on an image folder",
    )
    parser.add_argument(
        "--data", help="fashion-mnist | mnist | cifar10 | cifar100 | digits | folder:PATH"
    )
    parser.add_argument("--data-dir", help="where the data files are (default: known places)")
    parser.add_argument("--depths", type=int, nargs="+", help="e.g. 20 56 (CIFAR-style: 6n+2)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--steps", type=int, help="iteration budget instead of epochs")
    parser.add_argument("--train-subset", type=int, help="use the first N training images")
    parser.add_argument("--test-subset", type=int, help="evaluate on the first N test images")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float, help="peak learning rate")
    parser.add_argument("--image-size", type=int, help="resize images to PX (imagenet preset: 224)")
    parser.add_argument("--seeds", type=int, default=1, help="runs per model (mean ± std)")
    parser.add_argument("--shortcut", choices=["A", "B", "C"], help="residual twins' shortcuts")
    parser.add_argument(
        "--preact", action="store_true", help="pre-activation units (He et al. 2016)"
    )
    parser.add_argument("--out", default="runs/degradation", help="sweep folder (rerun to resume)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--progress", default="auto", choices=["auto", "bar", "log", "none"])
    parser.add_argument("--threads", type=int, help="torch CPU threads")


def run(args) -> int:
    from resnetlab.experiments.degradation import (
        DegradationConfig,
        command_line,
        findings,
        run_sweep,
    )

    cfg = DegradationConfig(
        preset=args.preset,
        data=args.data,
        data_dir=args.data_dir,
        depths=args.depths,
        epochs=args.epochs,
        steps=args.steps,
        train_subset=args.train_subset,
        test_subset=args.test_subset,
        batch_size=args.batch_size,
        lr=args.lr,
        image_size=args.image_size,
        seeds=args.seeds,
        shortcut=args.shortcut,
        preact=args.preact,
        out=args.out,
        device=args.device,
        precision=args.precision,
        progress=args.progress,
        threads=args.threads,
        command=command_line(),
    )
    results = run_sweep(cfg)
    print("\nFindings:")
    for f in findings(results):
        print(f"  - {f['text']}")
    print(f"\nReport: {args.out}/report.html (also report.md, degradation.png)")
    return 0
