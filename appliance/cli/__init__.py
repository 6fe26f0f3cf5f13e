"""The ``python -m appliance <command>`` functions, and the one parser and error boundary they share.

Each ``*_main(argv)`` takes the arguments after its command word and returns the exit status; none calls
``sys.exit`` (``appliance.__main__`` decides what the process does). The modules here hold the command-line
glue only; what the commands do lives in the modules they call (``appliance.accounts``, ``appliance.audit``,
``appliance.compliance``, ``appliance.config``). ``appliance.__main__`` imports them lazily, because some
need optional packages (argon2, pyotp, segno for ``staff``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from appliance.config import ConfigError

__all__ = ["EXIT_USAGE", "command_parser", "run_command", "with_config"]

EXIT_USAGE = 2  # usage, config and I/O errors alike: the message on stderr says which


def command_parser(
    command: str, description: str
) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction[argparse.ArgumentParser]]:
    """The parser of ``python -m appliance <command>`` with ``--config`` before the subcommand, and the
    action to add subcommands to (``dest="command"``, one required). Give each subcommand that reads the
    config ``with_config``, so ``--config`` may also come after the subcommand."""
    parser = argparse.ArgumentParser(prog=f"python -m appliance {command}", description=description)
    parser.add_argument("--config", type=Path, default=None, help="kiosk.toml (default: built-in defaults)")
    return parser, parser.add_subparsers(dest="command", required=True)


def with_config(subcommand: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Let ``subcommand`` take ``--config`` too (``audit verify --config PATH``); unset, the top level's
    value stands. Call it after the subcommand's own arguments: the help lists options in that order."""
    subcommand.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    return subcommand


def run_command(
    parser: argparse.ArgumentParser,
    argv: Sequence[str],
    body: Callable[[argparse.Namespace], int],
    *,
    errors: tuple[type[Exception], ...] = (),
) -> int:
    """Parse ``argv`` and run ``body``; turn usage, config and I/O errors into one line on stderr.

    Returns 0 after ``--help``, 2 for a usage error (argparse has printed why), ``ConfigError``, any of
    ``errors`` (the command's own, e.g. ``AuditError``) or ``OSError``; otherwise what ``body`` returns.
    """
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:  # argparse printed usage or help
        return 0 if exc.code == 0 else EXIT_USAGE
    handled: tuple[type[Exception], ...] = (ConfigError, *errors)
    try:
        return body(args)
    except handled as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"error: {exc.strerror or type(exc).__name__} ({exc.filename})", file=sys.stderr)
        return EXIT_USAGE
