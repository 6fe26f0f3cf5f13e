"""Bring a kiosk's staff accounts in line with the fleet inventory, which holds argon2id hashes only.

Run by the ``headshot_kiosk`` Ansible role with the kiosk's own interpreter (it uses the kiosk's accounts
store, ``appliance.accounts``): ``python staff_sync.py --accounts FILE --wanted WANTED.json --applied
APPLIED.json [--prune]``. Prints one JSON line ``{"changed": bool, "added": [...], "updated": [...],
"removed": [...]}`` (account names only) and exits 0; exits 2 with a message on bad input.

``WANTED.json`` is ``[{"name": ..., "role": "admin"|"operator", "password_hash": "$argon2id$..."}, ...]``.
A password, a TOTP secret or recovery codes are refused: none of them may ever be in the repository.

- An account missing on the kiosk is created with the inventory's role and hash and a TOTP secret made here,
  on the kiosk, that nobody has seen: it cannot sign in until an admin enrols it (console "reset TOTP", or
  ``python -m appliance staff reset-totp NAME`` on the kiosk), which shows the enrolment QR and recovery
  codes once. The account model has no "enrol at first sign-in" state (docs/FLEET.md, "Staff accounts").
- An existing account gets the inventory's role, and its hash when the inventory's hash changed since the
  last run (``APPLIED.json`` remembers what was applied: the kiosk re-hashes a password on sign-in when its
  argon2 parameters differ, and that must not count as a change to undo). Its TOTP secret, recovery codes
  and lockout state are never touched.
- Accounts the inventory does not name (made in the console) are kept, unless ``--prune``; the last admin is
  never removed (the store refuses).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from appliance.accounts import Role, StaffError, StaffStore

_FORBIDDEN = ("password", "totp_secret", "totp", "secret", "recovery_codes", "recovery_hashes")
_ARGON2ID = re.compile(r"^\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$")


class SyncError(Exception):
    """The inventory's accounts are not acceptable; the message names the account, never a secret."""


def load_wanted(path: Path) -> dict[str, dict[str, str]]:
    """The inventory's accounts by name, checked: known role, argon2id hash, no secret of any kind."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SyncError(f"cannot read {path}: {type(exc).__name__}") from None
    if not isinstance(entries, list):
        raise SyncError("the staff accounts must be a list")
    wanted: dict[str, dict[str, str]] = {}
    roles = {r.value for r in Role}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise SyncError("every staff account needs a name")
        name = entry["name"]
        leaked = sorted(k for k in entry if k in _FORBIDDEN)
        if leaked:
            raise SyncError(f"{name}: {', '.join(leaked)} must never be in the inventory (hashes only)")
        unknown = sorted(set(entry) - {"name", "role", "password_hash"})
        if unknown:
            raise SyncError(f"{name}: unknown keys {', '.join(unknown)}")
        if entry.get("role") not in roles:
            raise SyncError(f"{name}: role must be one of {', '.join(sorted(roles))}")
        if not _ARGON2ID.fullmatch(str(entry.get("password_hash", ""))):
            raise SyncError(f"{name}: password_hash must be an argon2id hash ($argon2id$v=19$...)")
        if name in wanted:
            raise SyncError(f"{name}: listed twice")
        wanted[name] = {"role": entry["role"], "password_hash": entry["password_hash"]}
    return wanted


def sync(
    store: StaffStore, wanted: dict[str, dict[str, str]], applied_path: Path, prune: bool
) -> dict[str, Any]:
    """Apply ``wanted`` to ``store``; returns what changed (names only)."""
    try:
        applied: dict[str, str] = json.loads(applied_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        applied = {}
    added, updated = [], []
    for name, want in sorted(wanted.items()):
        # The inventory's hash replaces the kiosk's only when the inventory changed it since the last run:
        # a password staff changed on the kiosk stays until the operator rotates it centrally.
        outcome = store.provision(
            name, want["role"], want["password_hash"], replace_hash=applied.get(name) != want["password_hash"]
        )
        if outcome == "added":
            added.append(name)
        elif outcome == "updated":
            updated.append(name)
    accounts = {summary.name for summary in store.list()}
    removed, kept = [], []
    if prune:
        for name in sorted(set(accounts) - set(wanted)):
            try:
                store.remove(name)
            except StaffError:  # the last admin: nobody could manage staff any more; kept, and said so
                kept.append(name)
                continue
            removed.append(name)
    applied_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(applied_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({name: want["password_hash"] for name, want in wanted.items()}, handle, sort_keys=True)
    return {
        "changed": bool(added or updated or removed),
        "added": added,
        "updated": updated,
        "removed": removed,
        "kept": kept,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Sync staff accounts from the fleet inventory (hashes only)."
    )
    parser.add_argument("--accounts", type=Path, required=True, help="the kiosk's [staff] accounts_path")
    parser.add_argument("--wanted", type=Path, required=True, help="JSON list from the inventory")
    parser.add_argument("--applied", type=Path, required=True, help="state: hashes applied by the last run")
    parser.add_argument("--prune", action="store_true", help="remove accounts the inventory does not name")
    args = parser.parse_args(argv)
    try:
        result = sync(StaffStore(args.accounts), load_wanted(args.wanted), args.applied, args.prune)
    except (SyncError, StaffError) as exc:
        print(f"staff_sync: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
