"""`resnetlab summary NAME [--input CxHxW]`."""

HELP = "show a model's stages: output shapes, parameters, multiply-adds, skip connections"


def add_arguments(parser) -> None:
    parser.add_argument("name", help="a registered model name (see `resnetlab models`)")
    parser.add_argument("--input", default=None, help="input size CxHxW, e.g. 1x28x28")
    parser.add_argument("--num-classes", type=int, default=None)
    parser.add_argument("--shortcut", choices=["A", "B", "C", "none"], default=None)
    parser.add_argument("--stem", choices=["imagenet", "cifar"], default=None)


def run(args) -> int:
    from resnetlab.models.summary import parse_input_size, summarize

    size = parse_input_size(args.input) if args.input else None
    kwargs = {
        k: v
        for k, v in dict(
            num_classes=args.num_classes, shortcut=args.shortcut, stem=args.stem
        ).items()
        if v is not None
    }
    print(summarize(args.name, size, **kwargs))
    return 0
