"""``python -m appliance staff add|list|remove|reset-totp|recovery-codes``: manage the staff accounts."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence

from appliance.accounts import Enrolment, Role, StaffError, StaffStore, utc_minute
from appliance.audit import AuditError, AuditLog
from appliance.cli import EXIT_USAGE, command_parser, run_command, with_config
from appliance.config import load_config

__all__ = ["staff_main"]


def _parser() -> argparse.ArgumentParser:
    parser, commands = command_parser("staff", "Manage staff accounts of the headshot kiosk.")
    add = commands.add_parser("add", help="add an account and print its TOTP enrolment")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--password-stdin", action="store_true", help="read the password as one line from stdin")
    with_config(add)
    with_config(commands.add_parser("list", help="list accounts (no secrets)"))
    for name, text in (
        ("remove", "remove an account"),
        ("reset-totp", "issue a new TOTP secret and recovery codes and print them"),
        ("recovery-codes", "replace an account's recovery codes and print the new ones"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("name")
        with_config(sub)
    return parser


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise StaffError("--password-stdin: no password on stdin")
        return line.rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise StaffError("the passwords do not match")
    return first


def _print_recovery_codes(codes: tuple[str, ...]) -> None:
    print(
        "Recovery codes: each signs in once in place of the authenticator code (e.g. when the kiosk's "
        "clock is wrong). Keep them apart from the phone:"
    )
    for code in codes:
        print(f"recovery code: {code}")


def _print_enrolment(enrolment: Enrolment) -> None:
    print(f"Scan this code with an authenticator app to enrol {enrolment.name} ({enrolment.role.value}):")
    print(enrolment.qr)
    print(f"or open: {enrolment.uri}")
    print(f"or type the secret: {enrolment.secret}")
    _print_recovery_codes(enrolment.recovery_codes)
    print("This is shown once and not stored in any log.")


def _staff(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    store = StaffStore(cfg.staff.accounts_path)
    if args.command == "list":
        summaries = store.list()
        if not summaries:
            print("no staff accounts")
        for summary in summaries:
            locked = f"  locked until {utc_minute(summary.locked_until)}" if summary.locked_until else ""
            print(f"{summary.name:<32} {summary.role.value:<8} created {summary.created}{locked}")
        return 0
    if args.command == "add":
        password = _read_password(args.password_stdin)
        enrolment = store.add(args.name, args.role, password)
        _print_enrolment(enrolment)
        action = f"staff.add.{enrolment.role.value}"
    elif args.command == "recovery-codes":
        _print_recovery_codes(store.new_recovery_codes(args.name))
        print("These are shown once and not stored in any log; the account's earlier codes no longer work.")
        action = "staff.recovery_codes"
    elif args.command == "remove":
        store.remove(args.name)
        print(f"removed staff account {args.name}")
        action = "staff.remove"
    else:
        enrolment = store.reset_totp(args.name)
        _print_enrolment(enrolment)
        action = "staff.reset_totp"
    AuditLog(cfg.audit.path).append_staff("cli", action, target=args.name)
    return 0


def _staff_or_cancelled(args: argparse.Namespace) -> int:
    try:
        return _staff(args)
    except KeyboardInterrupt:  # Ctrl-C at the password prompt
        print("cancelled", file=sys.stderr)
        return EXIT_USAGE


def staff_main(argv: Sequence[str]) -> int:
    """``python -m appliance staff add|list|remove|reset-totp|recovery-codes ...``: 0 on success, 2 on any
    error.

    ``argv`` is the arguments after ``staff``. Account changes are recorded in the audit trail as done by
    ``cli``. Never calls ``sys.exit``.
    """
    return run_command(_parser(), argv, _staff_or_cancelled, errors=(StaffError, AuditError))
