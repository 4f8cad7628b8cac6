"""`resnetlab models [PATTERN]`."""

HELP = "list registered models with depth, parameters and multiply-adds"


def add_arguments(parser) -> None:
    parser.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'plain*'")


def run(args) -> int:
    from resnetlab.models.summary import format_table, model_table

    rows = model_table(args.pattern)
    if not rows:
        raise ValueError(f"no model matches {args.pattern!r}; try `resnetlab models` for all")
    print(format_table(rows))
    print(
        "\nGMACs: multiply-adds of one image at the listed input (the papers' and torchvision's 'FLOPs')."
    )
    return 0
