"""`resnetlab gradients [--out DIR] [--quick] [--models plain56,resnet56] ...`."""

HELP = "gradient-flow report: scalar chain, deep skip stacks, plain vs residual nets (PNG/HTML/MD)"


def _csv(kind=str):
    def parse(text: str):
        items = [t.strip() for t in text.split(",") if t.strip()]
        try:
            return tuple(kind(t) for t in items)
        except ValueError:
            raise ValueError(f"cannot read {text!r} as a comma-separated list") from None

    return parse


def add_arguments(parser) -> None:
    parser.add_argument(
        "--out", default="runs/gradients", help="output folder (default: %(default)s)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny settings (seconds): shallow chain/stacks, plain20 vs resnet20, 4 steps",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    g = parser.add_argument_group("part 1: scalar chain")
    g.add_argument("--chain-depth", type=int, default=None, help="largest depth L (default 100)")
    g.add_argument("--activations", default=None, help="comma list of sigmoid,tanh,relu")
    g = parser.add_argument_group("part 2: generic stacks at init")
    g.add_argument("--depths", default=None, help="stack depths, comma list (default 10,25,50,100)")
    g.add_argument("--kinds", default=None, help="mlp,cnn (either or both; 'none' skips part 2)")
    g.add_argument(
        "--variants",
        default=None,
        help="comma list of <mode>[-s<span>][-Z]: plain, identity, identity-s2, fixed, scalar, gate, "
        "projection, identity-Z ... (default: a standard set of 8)",
    )
    g.add_argument("--width", type=int, default=None, help="MLP width (default 64)")
    g.add_argument("--cnn-width", type=int, default=None, help="CNN channels (default 16)")
    g.add_argument("--stack-act", choices=["relu", "tanh", "sigmoid"], default=None)
    g.add_argument("--init", choices=["default", "kaiming", "xavier"], default=None)
    g = parser.add_argument_group("part 3: registered models, init vs trained")
    g.add_argument(
        "--model",
        "--models",
        dest="models",
        default=None,
        help="comma list of registered models (default plain56,resnet56; 'none' skips part 3)",
    )
    g.add_argument("--steps", type=int, default=None, help="SGD steps (default 200)")
    g.add_argument("--batch-size", type=int, default=None, help="images per step (default 16)")
    g.add_argument("--lr", type=float, default=None, help="SGD learning rate (default 0.05)")
    g.add_argument("--train-images", type=int, default=None, help="training images (default 4096)")
    g.add_argument(
        "--image-size", type=int, default=None, help="resize images to this many px (default 16)"
    )
    g.add_argument("--data", default=None, help="data set name (default fashion-mnist)")
    g.add_argument("--data-dir", default=None, help="folder to look for the data set in")


def run(args) -> int:
    from resnetlab.analysis.report import GradientReportConfig, run_gradient_report

    over = {
        "out_dir": args.out,
        "seed": args.seed,
        "threads": args.threads,
        "chain_max_depth": args.chain_depth,
        "activations": _csv()(args.activations) if args.activations else None,
        "stack_depths": _csv(int)(args.depths) if args.depths else None,
        "stack_kinds": (() if args.kinds == "none" else _csv()(args.kinds)) if args.kinds else None,
        "variants": _csv()(args.variants) if args.variants else None,
        "mlp_width": args.width,
        "cnn_width": args.cnn_width,
        "stack_act": args.stack_act,
        "stack_init": args.init,
        "models": (() if args.models == "none" else _csv()(args.models)) if args.models else None,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "train_images": args.train_images,
        "image_size": args.image_size,
        "data": args.data,
        "data_dir": args.data_dir,
    }
    over = {k: v for k, v in over.items() if v is not None}
    if over.get("models"):
        import resnetlab

        known = set(resnetlab.list_models())
        bad = [m for m in over["models"] if m not in known]
        if bad:
            raise ValueError(
                f"unknown model(s) {', '.join(bad)}; see `resnetlab models` for registered names"
            )
    cfg = GradientReportConfig.quick(**over) if args.quick else GradientReportConfig(**over)
    report = run_gradient_report(cfg)
    for part, lines in report.findings.items():
        print(f"[{part}]")
        for line in lines:
            print(f"  - {line}")
    print("wrote " + ", ".join(str(p) for p in report.files))
    return 0
