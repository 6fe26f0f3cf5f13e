"""``python -m appliance compliance generate``: write the privacy documents rendered from the config."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from appliance.cli import command_parser, run_command, with_config
from appliance.compliance import Controller, write_documents
from appliance.config import load_config

__all__ = ["compliance_main"]


def _parser() -> argparse.ArgumentParser:
    parser, commands = command_parser("compliance", "Render privacy documents from the kiosk config.")
    for command in ("generate", "render"):
        sub = commands.add_parser(command, help="write the documents as Markdown")
        if command == "render":
            sub.add_argument("outdir", type=Path, nargs="?", default=None)
        sub.add_argument("-o", "--output", type=Path, default=None, help="directory (default ./compliance)")
        with_config(sub)
        sub.add_argument(
            "--controller-name", default=None, help='organisation (default "the event organiser")'
        )
        sub.add_argument("--controller-contact", default=None, help="how guests reach it")
        sub.add_argument("--dpo-contact", default=None, help="data protection officer, if any")
    return parser


def _generate(args: argparse.Namespace) -> int:
    defaults = Controller()
    controller = Controller(
        name=args.controller_name or defaults.name,
        contact=args.controller_contact or defaults.contact,
        dpo_contact=args.dpo_contact,
    )
    outdir = args.output or getattr(args, "outdir", None) or Path("compliance")
    cfg = load_config(args.config)
    paths = write_documents(cfg, outdir, controller=controller)
    for path in paths:
        print(path)
    return 0


def compliance_main(argv: Sequence[str]) -> int:
    """``python -m appliance compliance generate [--config PATH] [-o DIR]`` (also ``render [OUTDIR]``).

    Exit codes: 0 written, 2 usage, config or I/O error. Never calls ``sys.exit``.
    """
    return run_command(_parser(), argv, _generate)
