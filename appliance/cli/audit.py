"""``python -m appliance audit verify|export``: check or export the anonymous audit trail."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from appliance.audit import AuditError, AuditLog
from appliance.cli import command_parser, run_command, with_config
from appliance.config import load_config

__all__ = ["audit_main"]


def _parser() -> argparse.ArgumentParser:
    parser, commands = command_parser("audit", "Check or export the anonymous audit trail.")
    with_config(commands.add_parser("verify", help="check the hash chain; exit 1 if tampered"))
    export = commands.add_parser("export", help="write the log (JSON Lines) to stdout or a file")
    export.add_argument("-o", "--output", type=Path, default=None, help="file to write (mode 0600)")
    with_config(export)
    return parser


def _audit(args: argparse.Namespace) -> int:
    log = AuditLog(load_config(args.config).audit.path)
    if args.command == "verify":
        result = log.verify()
        if not result.ok:
            print(f"audit log TAMPERED or damaged: {result.problem}", file=sys.stderr)
            return 1
        print(f"audit log OK: {result.records} records, chain and head intact")
        return 0
    data = log.export()
    if args.output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        records = data.count(b"\n")
        print(f"exported {records} records to {args.output}", file=sys.stderr)
    log.append_staff("cli", "audit.export")
    return 0


def audit_main(argv: Sequence[str]) -> int:
    """``python -m appliance audit verify|export [--config PATH] [-o FILE]``.

    Exit codes: 0 OK, 1 the log fails verification, 2 usage, config or I/O error. Never calls ``sys.exit``.
    """
    return run_command(_parser(), argv, _audit, errors=(AuditError,))
