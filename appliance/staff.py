"""Staff accounts: argon2id hashes, single-use TOTP, lockout with back-off, and ``python -m appliance staff``.

Invariant 8 (DESIGN.md §2): staff access is role-based with a TOTP second factor. The accounts live in one
JSON file (``[staff] accounts_path``), owner-only (mode 0600, refused if group/world may read it), rewritten
atomically under an exclusive ``flock`` so the CLI and the staff console can share it. File format::

    {"format": "headshot-kiosk-staff", "version": 1,
     "accounts": {"alice": {"role": "admin", "password_hash": "$argon2id$v=19$m=65536,t=3,p=4$...",
                            "totp_secret": "<base32>", "totp_last_step": 58000000,
                            "failures": 0, "locked_until": 0.0, "created": "2025-01-15T10:42Z"}}}

Sign-in (``StaffStore.verify``) fails with one ``AuthFailed`` whose message never says why; the reason is an
attribute for the audit trail only (P1-1). Nothing here logs a password, a code, a secret or a hash.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import getpass
import hmac
import io
import json
import logging
import math
import os
import re
import secrets
import stat
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

import pyotp
import segno
from argon2 import Parameters, PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from appliance.audit import AuditError, AuditLog
from appliance.config import ConfigError, load_config
from appliance.fileowner import keep_owner
from engine.fileio import write_atomic

__all__ = [
    "PRODUCTION_ARGON2",
    "TOTP_DIGITS",
    "TOTP_INTERVAL_SECONDS",
    "TOTP_VALID_WINDOW",
    "AuthFailed",
    "Enrolment",
    "FailureReason",
    "LockoutPolicy",
    "Role",
    "StaffError",
    "StaffStore",
    "StaffSummary",
    "bootstrap_admin",
    "staff_main",
]

logger = logging.getLogger(__name__)

# RFC 9106 §4, second recommended option ("memory-constrained"): argon2id, t=3, m=64 MiB, p=4. A Jetson has
# the RAM; one sign-in costs ~0.1-0.3 s, which is the point. Written out instead of relying on the library
# defaults so an upgrade of argon2-cffi cannot silently change what we store.
PRODUCTION_ARGON2 = Parameters(
    type=Type.ID,
    version=19,
    salt_len=16,
    hash_len=32,
    time_cost=3,
    memory_cost=64 * 1024,  # KiB
    parallelism=4,
)

TOTP_INTERVAL_SECONDS = 30  # RFC 6238 default; what every authenticator app assumes
TOTP_DIGITS = 6
TOTP_VALID_WINDOW = 1  # ±1 step of clock skew, never more (P1-1)

_FORMAT = "headshot-kiosk-staff"
_VERSION = 1
_NAME = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")
# Names the audit trail uses for actions that no signed-in account performed.
_RESERVED_NAMES = frozenset({"cli", "system", "unknown", "root", "admin", "operator"})
_MIN_PASSWORD_CHARS = 12
_MAX_PASSWORD_CHARS = 1024
_MAX_FILE_BYTES = 4 * 1024 * 1024
_CODE = re.compile(r"^[0-9]{6}$")

# The single message for every sign-in failure. Never vary it: which of name, password, code or lockout was
# wrong is exactly what an attacker wants to learn.
_AUTH_FAILED_MESSAGE = "sign-in failed: check the name, password and code, or wait and try again"


class StaffError(Exception):
    """The accounts file or a staff command cannot do what was asked; the message says what to do."""


class Role(str, Enum):
    """What a staff member may do; the console maps roles to routes."""

    OPERATOR = "operator"  # dashboard, pause/resume, abort a session, backgrounds and presets
    ADMIN = "admin"  # everything an operator can, plus event config, accounts, audit export, compliance


class FailureReason(str, Enum):
    """Why a sign-in failed. For the audit trail only: never shown to the person signing in."""

    UNKNOWN_USER = "unknown_user"
    WRONG_PASSWORD = "wrong_password"  # noqa: S105 - a reason label, not a password
    WRONG_CODE = "wrong_code"
    REUSED_CODE = "reused_code"
    LOCKED = "locked"


class AuthFailed(Exception):
    """Sign-in refused. ``str(error)`` is identical for every reason.

    ``reason`` and ``account`` are for the audit trail only. ``account`` is None when the name is not an
    account (it might be a password typed into the wrong field).
    """

    def __init__(self, reason: FailureReason, account: str | None = None) -> None:
        super().__init__(_AUTH_FAILED_MESSAGE)
        self.reason = reason
        self.account = account

    def __repr__(self) -> str:
        # Keep the reason out of reprs that end up in tracebacks shown to a browser by mistake.
        return f"AuthFailed({_AUTH_FAILED_MESSAGE!r})"


@dataclass(frozen=True)
class LockoutPolicy:
    """Per-account back-off: after ``max_failures`` consecutive failures the account is locked for
    ``base_seconds``, each further failure (after the lock expires) doubles it, up to ``cap_seconds``.
    Attempts during a lock are refused without counting, so an attacker cannot extend a lock indefinitely."""

    max_failures: int = 5
    base_seconds: float = 60.0
    cap_seconds: float = 15 * 60.0

    def lock_seconds(self, failures: int) -> float:
        """How long to lock after the ``failures``-th consecutive failure; 0 below the threshold."""
        if failures < self.max_failures:
            return 0.0
        exponent = min(failures - self.max_failures, 32)  # 2**32 * base is far past any cap
        return min(self.base_seconds * (2.0**exponent), self.cap_seconds)


@dataclass(frozen=True)
class StaffSummary:
    """A staff account without any secret: safe to show in the console."""

    name: str
    role: Role
    created: str  # ISO 8601 minute, UTC
    locked_until: float | None  # epoch seconds, None if not locked at the time of reading


@dataclass(frozen=True)
class Enrolment:
    """A new TOTP secret for ``name``: show it once (QR + URI), then forget it.

    ``secret``, ``uri`` and ``qr`` are left out of ``repr`` so an accidental log line cannot leak them.
    """

    name: str
    role: Role
    secret: str = field(repr=False)  # base32, for manual entry in an authenticator app
    uri: str = field(repr=False)  # otpauth://totp/...
    qr: str = field(repr=False)  # the URI as a QR code drawn with Unicode half blocks for a terminal


def _minute(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise StaffError(
            f"invalid staff name {name!r}: use 2-32 characters, lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter"
        )
    if name in _RESERVED_NAMES:
        raise StaffError(f"staff name {name!r} is reserved for the audit trail; choose another name")
    return name


def _check_password(password: str) -> str:
    if len(password) < _MIN_PASSWORD_CHARS:
        raise StaffError(f"password too short: use at least {_MIN_PASSWORD_CHARS} characters")
    if len(password) > _MAX_PASSWORD_CHARS:
        raise StaffError(f"password too long: use at most {_MAX_PASSWORD_CHARS} characters")
    return password


def _role(value: str | Role) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise StaffError(f"unknown role {value!r}: expected 'operator' or 'admin'") from None


def _qr_text(uri: str) -> str:
    buffer = io.StringIO()
    # compact=True draws two modules per character cell with half blocks, so it fits an 80x24 terminal and
    # can be captured as a string (the ANSI mode writes escape codes meant for a live TTY).
    segno.make_qr(uri, error="m").terminal(out=buffer, border=2, compact=True)
    return buffer.getvalue()


class StaffStore:
    """The staff accounts file at ``path``. Every method re-reads the file, so several processes can share it.

    ``argon2`` sets the hashing cost (tests pass cheaper ``Parameters``; production must not). ``issuer`` is
    the label authenticator apps show. ``lockout`` sets the back-off.
    """

    def __init__(
        self,
        path: Path,
        *,
        argon2: Parameters = PRODUCTION_ARGON2,
        lockout: LockoutPolicy | None = None,
        issuer: str = "Headshot kiosk",
    ) -> None:
        if argon2.type is not Type.ID:
            raise StaffError(f"staff passwords must be hashed with argon2id; got {argon2.type.name}")
        self.path = Path(path)
        self.lockout = lockout if lockout is not None else LockoutPolicy()
        self.issuer = issuer
        self._hasher = PasswordHasher.from_parameters(argon2)
        self._dummy_hash: str | None = None

    # ---------------------------------------------------------------------------------------------- file I/O

    @property
    def _lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def _ensure_parent(self) -> None:
        parent = self.path.parent
        if not parent.exists():
            # Created owner-only; an existing directory (e.g. /etc/headshot-kiosk made by provisioning) is
            # left as it is: the file's own 0600 mode is what protects the hashes.
            parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(parent, 0o700)  # mkdir's mode is filtered by the umask

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold an exclusive flock on ``<path>.lock``.

        A sibling file, not the accounts file itself: the atomic rename replaces that inode, and a process
        waiting on the old one would then hold a lock nobody else checks.
        """
        self._ensure_parent()
        created = not self._lock_path.exists()
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            if created:
                keep_owner(fd, self.path)
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _read(self) -> dict[str, dict[str, Any]]:
        """The accounts, or {} if the file does not exist. Refuses a file others may read."""
        try:
            # O_NOFOLLOW: a symlink planted in place of the file is refused rather than followed.
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StaffError(
                    f"staff accounts file {self.path} is a symlink; refusing to follow it"
                ) from None
            raise StaffError(f"cannot read staff accounts file {self.path}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())  # of the open file, so it cannot change between check and read
            if not stat.S_ISREG(info.st_mode):
                raise StaffError(f"staff accounts file {self.path} is not a regular file")
            mode = stat.S_IMODE(info.st_mode)
            if mode & 0o077:
                raise StaffError(
                    f"staff accounts file {self.path} has mode {mode:04o}, so other users may read the "
                    "password hashes and TOTP secrets; refusing to use it. Fix it with: "
                    f"chmod 600 {self.path}"
                )
            raw = handle.read(_MAX_FILE_BYTES + 1)
        if len(raw) > _MAX_FILE_BYTES:
            raise StaffError(f"staff accounts file {self.path} is larger than {_MAX_FILE_BYTES} bytes")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise StaffError(
                f"staff accounts file {self.path} is not valid JSON; restore it from backup"
            ) from None
        if (
            not isinstance(data, dict)
            or data.get("format") != _FORMAT
            or not isinstance(data.get("accounts"), dict)
        ):
            raise StaffError(f"staff accounts file {self.path} is not a headshot-kiosk staff file")
        if data.get("version") != _VERSION:
            raise StaffError(
                f"staff accounts file {self.path} has version {data.get('version')!r}; this software reads "
                f"version {_VERSION}"
            )
        accounts: dict[str, dict[str, Any]] = data["accounts"]
        return accounts

    def _write(self, accounts: dict[str, dict[str, Any]]) -> None:
        """Replace the file atomically (``engine.fileio.write_atomic``): 0600, keeping the file's owner."""
        self._ensure_parent()
        payload = json.dumps(
            {"format": _FORMAT, "version": _VERSION, "accounts": accounts}, indent=2, sort_keys=True
        ).encode("utf-8")
        write_atomic(self.path, payload + b"\n", mode=0o600, set_owner=lambda fd: keep_owner(fd, self.path))

    # ---------------------------------------------------------------------------------------------- accounts

    def _enrolment(self, name: str, role: Role, secret: str) -> Enrolment:
        uri = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_INTERVAL_SECONDS).provisioning_uri(
            name=name, issuer_name=self.issuer
        )
        return Enrolment(name=name, role=role, secret=secret, uri=uri, qr=_qr_text(uri))

    def add(self, name: str, role: Role | str, password: str, *, now: float | None = None) -> Enrolment:
        """Create an account with a fresh TOTP secret; ``StaffError`` if the name exists or is invalid."""
        _check_name(name)
        role = _role(role)
        _check_password(password)
        password_hash = self._hasher.hash(password)  # outside the lock: it is the slow part
        secret = pyotp.random_base32()  # 160 bits from the secrets module
        with self._locked():
            accounts = self._read()
            if name in accounts:
                raise StaffError(f"staff account {name!r} already exists; remove it first or reset its TOTP")
            accounts[name] = {
                "role": role.value,
                "password_hash": password_hash,
                "totp_secret": secret,
                "totp_last_step": 0,
                "failures": 0,
                "locked_until": 0.0,
                "created": _minute(time.time() if now is None else now),
            }
            self._write(accounts)
        logger.info("staff account added (role %s)", role.value)
        return self._enrolment(name, role, secret)

    def remove(self, name: str) -> None:
        """Delete an account. Refuses to remove the last admin: nobody could manage staff any more."""
        with self._locked():
            accounts = self._read()
            if name not in accounts:
                raise StaffError(f"no staff account named {name!r}")
            admins = [n for n, a in accounts.items() if a.get("role") == Role.ADMIN.value]
            if admins == [name]:
                raise StaffError(f"{name!r} is the last admin; add another admin before removing it")
            del accounts[name]
            self._write(accounts)
        logger.info("staff account removed")

    def list(self, *, now: float | None = None) -> list[StaffSummary]:
        """All accounts sorted by name, without secrets."""
        current = time.time() if now is None else now
        summaries = []
        for name, account in sorted(self._read().items()):
            locked_until = float(account.get("locked_until", 0.0))
            summaries.append(
                StaffSummary(
                    name=name,
                    role=_role(account["role"]),
                    created=str(account.get("created", "")),
                    locked_until=locked_until if locked_until > current else None,
                )
            )
        return summaries

    def reset_totp(self, name: str) -> Enrolment:
        """Give ``name`` a new TOTP secret (lost phone); the old secret stops working at once."""
        secret = pyotp.random_base32()
        with self._locked():
            accounts = self._read()
            if name not in accounts:
                raise StaffError(f"no staff account named {name!r}")
            account = accounts[name]
            account["totp_secret"] = secret
            account["totp_last_step"] = 0
            role = _role(account["role"])
            self._write(accounts)
        logger.info("staff TOTP secret reset")
        return self._enrolment(name, role, secret)

    # ---------------------------------------------------------------------------------------------- sign-in

    def _dummy(self) -> str:
        # A real hash with this store's parameters, so an unknown name costs as much time as a known one.
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(24))
        return self._dummy_hash

    def _password_ok(self, stored_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash if stored_hash is not None else self._dummy(), password)
        except (VerificationError, InvalidHashError):
            return False

    @staticmethod
    def _matching_step(secret: str, code: str, step: int) -> int | None:
        """The time step within ±``TOTP_VALID_WINDOW`` of ``step`` whose code equals ``code``, or None.

        This is what ``pyotp.TOTP.verify(code, valid_window=1)`` checks, but it also says *which* step
        matched, which the replay check needs. Every candidate is compared in constant time, none skipped.
        """
        totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_INTERVAL_SECONDS)
        found: int | None = None
        for candidate in range(step - TOTP_VALID_WINDOW, step + TOTP_VALID_WINDOW + 1):
            if hmac.compare_digest(totp.generate_otp(candidate).encode(), code.encode()) and found is None:
                found = candidate
        return found

    def verify(self, name: str, password: str, totp_code: str, *, now: float | None = None) -> StaffSummary:
        """Check name, password and TOTP code; return the account summary or raise ``AuthFailed``.

        ``now`` is epoch seconds (injected by tests; default the system clock). A code is accepted for the
        current step or one step either side, and only if its step is later than the last step this account
        used, so a code is never accepted twice (pyotp alone would accept it again within its window).
        Failures count towards the ``LockoutPolicy``; success resets the count. A hash made with other
        parameters than this store's is replaced on success.
        """
        current = time.time() if now is None else now
        code = totp_code.strip().replace(" ", "")
        # Read once without the lock to get the hash; argon2 runs outside the lock because it is deliberately
        # slow and must not serialise the CLI behind a sign-in. Unknown names still pay for one argon2 verify.
        try:
            snapshot = self._read() if _NAME.fullmatch(name) else {}
        except StaffError:
            logger.error("staff accounts file unusable; refusing sign-in")
            raise
        known = snapshot.get(name)
        stored_hash = str(known["password_hash"]) if known is not None else None
        password_ok = self._password_ok(stored_hash, password)
        if known is None:
            raise AuthFailed(FailureReason.UNKNOWN_USER)

        with self._locked():
            accounts = self._read()
            account = accounts.get(name)
            if account is None:  # removed while we were hashing
                raise AuthFailed(FailureReason.UNKNOWN_USER)
            if float(account.get("locked_until", 0.0)) > current:
                # Not counted: refusing during a lock must not lengthen it (that would let anyone lock staff
                # out for ever), and nothing else is evaluated, so a lock reveals nothing about credentials.
                raise AuthFailed(FailureReason.LOCKED, name)
            reason: FailureReason | None = None
            step = math.floor(current / TOTP_INTERVAL_SECONDS)
            matched: int | None = None
            if not password_ok or account["password_hash"] != stored_hash:
                reason = FailureReason.WRONG_PASSWORD
            elif not _CODE.fullmatch(code):
                reason = FailureReason.WRONG_CODE
            else:
                matched = self._matching_step(str(account["totp_secret"]), code, step)
                if matched is None:
                    reason = FailureReason.WRONG_CODE
                elif matched <= int(account.get("totp_last_step", 0)):
                    reason = FailureReason.REUSED_CODE
            if reason is not None:
                failures = int(account.get("failures", 0)) + 1
                account["failures"] = failures
                lock = self.lockout.lock_seconds(failures)
                account["locked_until"] = current + lock if lock else 0.0
                self._write(accounts)
                if lock:
                    logger.warning("staff account locked for %.0fs after %d failed sign-ins", lock, failures)
                raise AuthFailed(reason, name)
            if matched is None:  # unreachable: no failure reason means a step matched; keeps the types honest
                raise AuthFailed(FailureReason.WRONG_CODE, name)
            account["totp_last_step"] = matched
            account["failures"] = 0
            account["locked_until"] = 0.0
            if self._hasher.check_needs_rehash(str(account["password_hash"])):
                # The only moment we hold the clear password: upgrade a hash made with older parameters.
                account["password_hash"] = self._hasher.hash(password)
                logger.info("staff password hash upgraded to current argon2id parameters")
            self._write(accounts)
            role = _role(account["role"])
            created = str(account.get("created", ""))
        return StaffSummary(name=name, role=role, created=created, locked_until=None)


def bootstrap_admin(store: StaffStore, name: str, password: str) -> Enrolment:
    """Create the first admin during provisioning; refuses if an admin already exists (use ``staff add``)."""
    if any(summary.role is Role.ADMIN for summary in store.list()):
        raise StaffError(
            f"{store.path} already has an admin account; use 'python -m appliance staff add' to add more"
        )
    return store.add(name, Role.ADMIN, password)


# ---------------------------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m appliance staff", description="Manage staff accounts of the headshot kiosk."
    )
    parser.add_argument("--config", type=Path, default=None, help="kiosk.toml (default: built-in defaults)")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="add an account and print its TOTP enrolment")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--password-stdin", action="store_true", help="read the password as one line from stdin")
    add.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    lst = commands.add_parser("list", help="list accounts (no secrets)")
    lst.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    remove = commands.add_parser("remove", help="remove an account")
    remove.add_argument("name")
    remove.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    reset = commands.add_parser("reset-totp", help="issue a new TOTP secret and print its enrolment")
    reset.add_argument("name")
    reset.add_argument("--config", type=Path, default=argparse.SUPPRESS)
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


def _print_enrolment(enrolment: Enrolment) -> None:
    print(f"Scan this code with an authenticator app to enrol {enrolment.name} ({enrolment.role.value}):")
    print(enrolment.qr)
    print(f"or open: {enrolment.uri}")
    print(f"or type the secret: {enrolment.secret}")
    print("This is shown once and not stored in any log.")


def staff_main(argv: Sequence[str]) -> int:
    """``python -m appliance staff add|list|remove|reset-totp ...``: 0 on success, 2 on any error.

    ``argv`` is the arguments after ``staff``. Account changes are recorded in the audit trail as done by
    ``cli``. Never calls ``sys.exit``.
    """
    try:
        args = _parser().parse_args(list(argv))
    except SystemExit as exc:  # argparse printed usage or help
        return 0 if exc.code == 0 else 2
    try:
        cfg = load_config(args.config)
        store = StaffStore(cfg.staff.accounts_path)
        if args.command == "list":
            summaries = store.list()
            if not summaries:
                print("no staff accounts")
            for summary in summaries:
                locked = f"  locked until {_minute(summary.locked_until)}" if summary.locked_until else ""
                print(f"{summary.name:<32} {summary.role.value:<8} created {summary.created}{locked}")
            return 0
        if args.command == "add":
            password = _read_password(args.password_stdin)
            enrolment = store.add(args.name, args.role, password)
            _print_enrolment(enrolment)
            action = f"staff.add.{enrolment.role.value}"
        elif args.command == "remove":
            store.remove(args.name)
            print(f"removed staff account {args.name}")
            action = "staff.remove"
        else:
            enrolment = store.reset_totp(args.name)
            _print_enrolment(enrolment)
            action = "staff.reset_totp"
        AuditLog(cfg.audit.path).append_staff("cli", action, target=args.name)
    except (ConfigError, StaffError, AuditError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.strerror or type(exc).__name__} ({exc.filename})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return 2
    return 0
