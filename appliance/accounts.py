"""Staff accounts: argon2id hashes, single-use TOTP, lockout with back-off (the accounts store).

Invariant 8 (DESIGN.md §2): staff access is role-based with a TOTP second factor. The accounts live in one
JSON file (``[staff] accounts_path``), owner-only (mode 0600, refused if group/world may read it), rewritten
atomically under an exclusive ``flock`` so the CLI and the staff console can share it. File format::

    {"format": "headshot-kiosk-staff", "version": 1,
     "accounts": {"alice": {"role": "admin", "password_hash": "$argon2id$v=19$m=65536,t=3,p=4$...",
                            "totp_secret": "<base32>", "totp_last_step": 58000000,
                            "recovery_hashes": ["$argon2id$...", ...],
                            "failures": 0, "locked_until": 0.0, "created": "2025-01-15T10:42Z"}}}

Sign-in (``StaffStore.verify``) fails with one ``AuthFailed`` whose message never says why; the reason is an
attribute for the audit trail only (P1-1). Nothing here logs a password, a code, a secret or a hash.

**Recovery codes** cover a wrong clock (an offline Jetson without an RTC battery comes back from a power cut
with a clock hours or years off, and then no TOTP code matches): every enrolment (``add``, ``reset_totp``,
``new_recovery_codes``) makes ``RECOVERY_CODES`` single-use codes of 60 random bits, written
``XXXX-XXXX-XXXX`` in Crockford base32, shown once and stored only as argon2id hashes. The sign-in form
takes one in place of the TOTP code, once. The TOTP window itself stays ±1 step.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hmac
import io
import json
import logging
import math
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

import pyotp
import segno
from argon2 import Parameters, PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from appliance.fileowner import keep_owner
from engine.fileio import write_atomic

__all__ = [
    "PRODUCTION_ARGON2",
    "RECOVERY_ARGON2",
    "RECOVERY_CODES",
    "TOTP_DIGITS",
    "TOTP_INTERVAL_SECONDS",
    "TOTP_VALID_WINDOW",
    "AuthFailed",
    "Enrolment",
    "FailureReason",
    "LockoutPolicy",
    "Role",
    "SignIn",
    "StaffError",
    "StaffStore",
    "StaffSummary",
    "bootstrap_admin",
    "new_recovery_code",
    "normalize_recovery_code",
    "utc_minute",
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

# Recovery codes carry 60 random bits, so their hash needs far less work than a password's to resist an
# offline search; OWASP's argon2id minimum (m=19 MiB, t=2, p=1) keeps checking all of an account's codes
# (only ever after the right password) well under a second on a Jetson.
RECOVERY_ARGON2 = Parameters(
    type=Type.ID,
    version=19,
    salt_len=16,
    hash_len=32,
    time_cost=2,
    memory_cost=19 * 1024,  # KiB
    parallelism=1,
)
RECOVERY_CODES = 8  # per enrolment
_RECOVERY_GROUPS = 3  # XXXX-XXXX-XXXX: 12 Crockford base32 characters, 60 bits
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# What people type for the letters Crockford base32 leaves out.
_CROCKFORD_ALIASES = str.maketrans({"O": "0", "I": "1", "L": "1"})
_RECOVERY = re.compile(r"^[0-9A-HJKMNP-TV-Z]{12}$")

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


# The PHC string argon2-cffi writes for argon2id (the only hash this store verifies).
_ARGON2ID_HASH = re.compile(r"\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+")


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
class SignIn:
    """A successful check of name, password and second factor.

    ``recovery`` is True when a recovery code stood in for the TOTP code (it is spent now), and
    ``recovery_left`` says how many of the account's recovery codes remain.
    """

    summary: StaffSummary
    recovery: bool
    recovery_left: int


@dataclass(frozen=True)
class Enrolment:
    """A new TOTP secret for ``name`` and its recovery codes: show them once (QR + URI), then forget them.

    ``secret``, ``uri``, ``qr`` and ``recovery_codes`` are left out of ``repr`` so an accidental log line
    cannot leak them.
    """

    name: str
    role: Role
    secret: str = field(repr=False)  # base32, for manual entry in an authenticator app
    uri: str = field(repr=False)  # otpauth://totp/...
    qr: str = field(repr=False)  # the URI as a QR code drawn with Unicode half blocks for a terminal
    recovery_codes: tuple[str, ...] = field(default=(), repr=False)  # XXXX-XXXX-XXXX, each works once


def new_recovery_code() -> str:
    """A fresh recovery code: 60 bits from the ``secrets`` module as ``XXXX-XXXX-XXXX`` (Crockford base32)."""
    chars = "".join(secrets.choice(_CROCKFORD) for _ in range(4 * _RECOVERY_GROUPS))
    return "-".join(chars[i : i + 4] for i in range(0, len(chars), 4))


def normalize_recovery_code(typed: str) -> str | None:
    """``typed`` as the 12 characters of a recovery code (case, spaces and dashes ignored, O read as 0 and
    I/L as 1), or None if it cannot be one."""
    compact = re.sub(r"[\s-]", "", typed).upper().translate(_CROCKFORD_ALIASES)
    return compact if _RECOVERY.fullmatch(compact) else None


def utc_minute(epoch: float) -> str:
    """``epoch`` as an ISO 8601 minute in UTC (``2025-01-15T10:42Z``), as ``created`` is written."""
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
        # Never costlier than the password hash: tests run the store with cheap parameters.
        recovery = argon2 if argon2.memory_cost < RECOVERY_ARGON2.memory_cost else RECOVERY_ARGON2
        self._recovery_hasher = PasswordHasher.from_parameters(recovery)
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

    def _enrolment(self, name: str, role: Role, secret: str, codes: tuple[str, ...]) -> Enrolment:
        uri = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_INTERVAL_SECONDS).provisioning_uri(
            name=name, issuer_name=self.issuer
        )
        return Enrolment(name=name, role=role, secret=secret, uri=uri, qr=_qr_text(uri), recovery_codes=codes)

    def _recovery_codes(self) -> tuple[tuple[str, ...], list[str]]:
        """Fresh recovery codes and their argon2id hashes (hashed outside the file lock: the slow part)."""
        codes = tuple(new_recovery_code() for _ in range(RECOVERY_CODES))
        return codes, [self._recovery_hasher.hash(code.replace("-", "")) for code in codes]

    def add(self, name: str, role: Role | str, password: str, *, now: float | None = None) -> Enrolment:
        """Create an account with a fresh TOTP secret; ``StaffError`` if the name exists or is invalid."""
        _check_name(name)
        role = _role(role)
        _check_password(password)
        password_hash = self._hasher.hash(password)  # outside the lock: it is the slow part
        secret = pyotp.random_base32()  # 160 bits from the secrets module
        codes, hashes = self._recovery_codes()
        with self._locked():
            accounts = self._read()
            if name in accounts:
                raise StaffError(f"staff account {name!r} already exists; remove it first or reset its TOTP")
            accounts[name] = {
                "role": role.value,
                "password_hash": password_hash,
                "totp_secret": secret,
                "totp_last_step": 0,
                "recovery_hashes": hashes,
                "failures": 0,
                "locked_until": 0.0,
                "created": utc_minute(time.time() if now is None else now),
            }
            self._write(accounts)
        logger.info("staff account added (role %s)", role.value)
        return self._enrolment(name, role, secret, codes)

    def provision(
        self,
        name: str,
        role: Role | str,
        password_hash: str,
        *,
        replace_hash: bool = True,
        now: float | None = None,
    ) -> str:
        """Create or update an account from a password *hash* (fleet configuration: the operator's
        repository holds hashes only, never a password or a TOTP secret). Returns "added", "updated" or
        "unchanged".

        A new account gets a TOTP secret made here and shown to no one, so it cannot sign in until an admin
        enrols it on the kiosk (``reset_totp``): the second factor is never in a repository. An existing
        account keeps its TOTP secret, recovery codes and lockout state; its role follows the inventory,
        and its password hash too unless ``replace_hash`` is False (the caller's way of keeping a password
        changed on the kiosk). ``StaffError`` for a bad name, role or a hash that is not argon2id."""
        _check_name(name)
        role = _role(role)
        if not _ARGON2ID_HASH.fullmatch(password_hash):
            raise StaffError("password_hash must be an argon2id hash ($argon2id$v=19$...)")
        with self._locked():
            accounts = self._read()
            account = accounts.get(name)
            if account is None:
                accounts[name] = {
                    "role": role.value,
                    "password_hash": password_hash,
                    "totp_secret": pyotp.random_base32(),
                    "totp_last_step": 0,
                    "recovery_hashes": [],
                    "failures": 0,
                    "locked_until": 0.0,
                    "created": utc_minute(time.time() if now is None else now),
                }
                outcome = "added"
            else:
                changed = account.get("role") != role.value
                account["role"] = role.value
                if replace_hash and account.get("password_hash") != password_hash:
                    account["password_hash"] = password_hash
                    changed = True
                outcome = "updated" if changed else "unchanged"
            if outcome != "unchanged":
                self._write(accounts)
        if outcome != "unchanged":
            logger.info("staff account %s from a hash (role %s)", outcome, role.value)
        return outcome

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
        """Give ``name`` a new TOTP secret and new recovery codes (lost phone); the old secret and the old
        codes stop working at once."""
        secret = pyotp.random_base32()
        codes, hashes = self._recovery_codes()
        with self._locked():
            accounts = self._read()
            if name not in accounts:
                raise StaffError(f"no staff account named {name!r}")
            account = accounts[name]
            account["totp_secret"] = secret
            account["totp_last_step"] = 0
            account["recovery_hashes"] = hashes
            role = _role(account["role"])
            self._write(accounts)
        logger.info("staff TOTP secret reset")
        return self._enrolment(name, role, secret, codes)

    def new_recovery_codes(self, name: str) -> tuple[str, ...]:
        """Replace ``name``'s recovery codes with fresh ones (the old ones stop working); show them once."""
        codes, hashes = self._recovery_codes()
        with self._locked():
            accounts = self._read()
            if name not in accounts:
                raise StaffError(f"no staff account named {name!r}")
            accounts[name]["recovery_hashes"] = hashes
            self._write(accounts)
        logger.info("staff recovery codes replaced")
        return codes

    def recovery_codes_left(self, name: str) -> int:
        """How many unused recovery codes ``name`` has; ``StaffError`` if there is no such account."""
        account = self._read().get(name)
        if account is None:
            raise StaffError(f"no staff account named {name!r}")
        return len(account.get("recovery_hashes", []))

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

    def _matching_recovery(self, hashes: tuple[str, ...], typed: str) -> str | None:
        """The stored hash among ``hashes`` that ``typed`` (a normalised recovery code) matches, or None.

        Every hash is tried (no early exit), so the time taken says nothing about which code matched."""
        found: str | None = None
        for stored in hashes:
            matched: bool
            try:
                matched = self._recovery_hasher.verify(stored, typed)
            except (VerificationError, InvalidHashError):
                matched = False
            if matched and found is None:
                found = stored
        return found

    def verify(self, name: str, password: str, totp_code: str, *, now: float | None = None) -> StaffSummary:
        """``authenticate`` with every failure counted: the account summary, or ``AuthFailed``."""
        return self.authenticate(name, password, totp_code, now=now).summary

    def authenticate(
        self,
        name: str,
        password: str,
        totp_code: str,
        *,
        now: float | None = None,
        lock_on_wrong_password: bool = True,
    ) -> SignIn:
        """Check name, password and TOTP code (or a recovery code); raise ``AuthFailed`` on any failure.

        ``now`` is epoch seconds (injected by tests; default the system clock). A code is accepted for the
        current step or one step either side, and only if its step is later than the last step this account
        used, so a code is never accepted twice (pyotp alone would accept it again within its window). In
        place of the code the account's recovery codes are accepted, each once (for a kiosk whose clock is
        wrong); they are checked only after the right password.

        Failures count towards the ``LockoutPolicy``; success resets the count. With
        ``lock_on_wrong_password=False`` (the console's sign-in form) a wrong password does not count: the
        console blocks the client's address for it instead, so an outsider who does not know the password
        cannot lock a staff member out; a wrong or reused code after the right password still counts (then
        the password is known and the second factor is what is under attack). A hash made with other
        parameters than this store's is replaced on success.
        """
        current = time.time() if now is None else now
        code = totp_code.strip().replace(" ", "")
        recovery = None if _CODE.fullmatch(code) else normalize_recovery_code(totp_code)
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
        spent: str | None = None
        if password_ok and recovery is not None:
            spent = self._matching_recovery(tuple(str(h) for h in known.get("recovery_hashes", [])), recovery)

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
            hashes = [str(h) for h in account.get("recovery_hashes", [])]
            if not password_ok or account["password_hash"] != stored_hash:
                reason = FailureReason.WRONG_PASSWORD
            elif recovery is not None:
                if spent is None:
                    reason = FailureReason.WRONG_CODE
                elif spent not in hashes:  # spent by a concurrent sign-in, or replaced meanwhile
                    reason = FailureReason.REUSED_CODE
            elif not _CODE.fullmatch(code):
                reason = FailureReason.WRONG_CODE
            else:
                matched = self._matching_step(str(account["totp_secret"]), code, step)
                if matched is None:
                    reason = FailureReason.WRONG_CODE
                elif matched <= int(account.get("totp_last_step", 0)):
                    reason = FailureReason.REUSED_CODE
            if reason is not None:
                if reason is FailureReason.WRONG_PASSWORD and not lock_on_wrong_password:
                    raise AuthFailed(reason, name)
                failures = int(account.get("failures", 0)) + 1
                account["failures"] = failures
                lock = self.lockout.lock_seconds(failures)
                account["locked_until"] = current + lock if lock else 0.0
                self._write(accounts)
                if lock:
                    logger.warning("staff account locked for %.0fs after %d failed sign-ins", lock, failures)
                raise AuthFailed(reason, name)
            if spent is not None:
                hashes.remove(spent)  # single use
                account["recovery_hashes"] = hashes
                logger.warning("staff sign-in with a recovery code (%d left)", len(hashes))
            elif matched is not None:
                account["totp_last_step"] = matched
            else:  # unreachable: no failure reason means a factor matched; keeps the types honest
                raise AuthFailed(FailureReason.WRONG_CODE, name)
            account["failures"] = 0
            account["locked_until"] = 0.0
            if self._hasher.check_needs_rehash(str(account["password_hash"])):
                # The only moment we hold the clear password: upgrade a hash made with older parameters.
                account["password_hash"] = self._hasher.hash(password)
                logger.info("staff password hash upgraded to current argon2id parameters")
            self._write(accounts)
            role = _role(account["role"])
            created = str(account.get("created", ""))
        summary = StaffSummary(name=name, role=role, created=created, locked_until=None)
        return SignIn(summary=summary, recovery=spent is not None, recovery_left=len(hashes))


def bootstrap_admin(store: StaffStore, name: str, password: str) -> Enrolment:
    """Create the first admin during provisioning; refuses if an admin already exists (use ``staff add``)."""
    if any(summary.role is Role.ADMIN for summary in store.list()):
        raise StaffError(
            f"{store.path} already has an admin account; use 'python -m appliance staff add' to add more"
        )
    return store.add(name, Role.ADMIN, password)
