"""The `speechmask` command: a thin parser; each package's cli module adds its subcommands."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from . import __version__


class Parser(argparse.ArgumentParser):
    """argparse with the project's error convention: one line naming the flag and the problem,
    exit code 1 (argparse's own is usage text and 2). Subcommand parsers are of this class too."""

    def error(self, message: str):
        where = self.prog.removeprefix("speechmask").strip()
        fatal(f"{where + ': ' if where else ''}{message} (see `{self.prog} --help`)")


def get_parser() -> argparse.ArgumentParser:
    """Build the full parser. Imports nothing heavy: handlers import their modules when run."""
    from .corpus import cli as corpus_cli
    from . import mask_cli
    from .train import cli as train_cli

    parser = Parser(
        prog="speechmask",
        description="Privacy-preserving speech masking for microcontrollers: corpora, front-end, "
                    "mask training, attacks, export.")
    parser.add_argument("--version", action="version", version=f"speechmask {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    corpus_cli.register(sub)
    train_cli.register(sub)
    mask_cli.register(sub)
    for plugin in _plugins():
        plugin.load()(sub)
    return parser


def _plugins():
    """Subcommands other packages add (entry point group `speechmask.commands`, e.g. the attack
    suite's `attack`): the core never imports them by name."""
    from importlib.metadata import entry_points

    return sorted(entry_points(group="speechmask.commands"), key=lambda e: e.name)


def fatal(message: str, code: int = 1) -> NoReturn:
    """Print one line to stderr and exit."""
    print(f"speechmask: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def main(argv: list[str] | None = None) -> int:
    from .errors import SpeechmaskError

    args = get_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except SpeechmaskError as exc:
        fatal(str(exc).replace("\n", " "))
    except KeyboardInterrupt:
        fatal("interrupted", 130)
    except BrokenPipeError:
        return 0
    except OSError as exc:  # a disk that fills up, a file that vanishes mid-run
        where = f"{exc.filename}: " if exc.filename else ""
        fatal(f"{where}{exc.strerror or exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
