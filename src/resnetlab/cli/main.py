"""`resnetlab` console entry point.

Each sub-command lives in its own module `resnetlab.cli.<name>` that defines
`HELP` (one line), `add_arguments(parser)` and `run(args) -> int`. Modules import
torch and the library lazily inside `run`, so `resnetlab --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# The order here is the order in `resnetlab --help`.
COMMANDS = [
    "models",
    "summary",
    "train",
    "eval",
    "degradation",
    "gradients",
    "export",
    "predict",
    "transfer",
]


def build_parser() -> argparse.ArgumentParser:
    from resnetlab import __version__

    parser = argparse.ArgumentParser(
        prog="resnetlab",
        description="Skip connections and residual networks: build, train, analyse, reuse.",
    )
    parser.add_argument("--version", action="version", version=f"resnetlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"resnetlab.cli.{name}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except ValueError as err:  # bad input from the user: one clear line, no traceback
        print(f"resnetlab {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
