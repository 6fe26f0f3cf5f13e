"""``python -m appliance check-config [PATH]``: validate a kiosk.toml and list every problem."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from appliance.cli import EXIT_USAGE
from appliance.config import ConfigError, load_config, summarize

__all__ = ["check_config_main"]

_USAGE = "usage: python -m appliance check-config [PATH]   (no PATH: check the built-in defaults)"


def check_config_main(argv: Sequence[str]) -> int:
    """``python -m appliance check-config [PATH]``: 0 and a summary if valid, 2 and every problem if not.

    ``argv`` is the arguments after ``check-config``. Prints to stdout on success and stderr on failure;
    never calls ``sys.exit`` so the caller decides what the process does. No argparse: it takes one
    optional path, and prints the problems as ``ConfigError`` words them, without an ``error:`` prefix.
    """
    args = list(argv)
    if args in (["-h"], ["--help"]):
        print(_USAGE)
        return 0
    if len(args) > 1 or (args and args[0].startswith("-")):
        print(_USAGE, file=sys.stderr)
        return EXIT_USAGE
    path = Path(args[0]) if args else None
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    print(f"config OK: {summarize(config)}")
    return 0
