"""The anonymous audit trail: hash-chained JSON Lines of consent receipts and staff actions.

Invariant 7 (DESIGN.md §2): consent is recorded as an anonymous receipt only. The log lives on disk (it must
outlive reboots) in ``<[audit] path>/audit.jsonl``; every line is one JSON object in canonical form (sorted
keys, no spaces, ASCII) and carries ``prev``, the SHA-256 (hex) of the previous line's bytes, or ``GENESIS``
for the first line. Two record types, and nothing else (``verify`` enforces the allow-list on every line)::

    {"choices":{"processing":true},"ended":"2025-01-15T10:43Z","outcome":"delivered",
     "policy":"<sha256 hex>","prev":"<sha256 hex>","receipt":"7K3QX9MD","started":"2025-01-15T10:42Z",
     "type":"consent"}
    {"account":"alice","action":"kiosk.pause","at":"2025-01-15T10:44Z","prev":"<sha256 hex>","type":"staff"}
    {"account":"alice","action":"event.settings","at":"2025-01-15T10:45Z",
     "changes":{"delivery.window_minutes":25,"event.languages":["en","de"],"event.name":null},...}

A staff record may name the staff account acted on (``target``) and, for a change of the event settings,
the settings changed and their new values (``changes``; ``STAFF_CHANGES``): closed vocabularies only
(language codes, background and preset names, minutes). The event name is free text, so only the fact
that it changed is kept (``null``).

Times are UTC, rounded down to the minute, so a receipt cannot be matched to a CCTV frame or a badge scan to
the second. ``audit.head`` (replaced atomically after each append) records the line count, the last line's
hash and the file size, so cutting lines off the end is detected too.

``choices`` holds the guest's yes/no answers to the event's optional choices, or ``null`` when the event
offered none — said outright, rather than ``{}``, which reads like answers that were left out.

Limit, stated plainly: the chain is unkeyed. It proves the log was not edited *by accident or by a careless
hand*; someone with write access who recomputes every hash and the head can forge it. Export regularly
(``python -m appliance audit export``, in ``appliance.cli.audit``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from appliance.compliance import Controller, policy_hash
from appliance.config import KioskConfig
from appliance.fileowner import keep_owner
from appliance.lifecycle import WipeReason
from engine.fileio import write_atomic

__all__ = [
    "CONSENT_FIELDS",
    "GENESIS",
    "HEAD_NAME",
    "LOG_NAME",
    "STAFF_CHANGES",
    "STAFF_FIELDS",
    "AuditError",
    "AuditLog",
    "ConsentOutcome",
    "FinishedVisit",
    "VerifyResult",
    "outcome_for",
    "policy_version_hash",
    "receipt_id",
    "receipt_recorder",
]

logger = logging.getLogger(__name__)

LOG_NAME = "audit.jsonl"
HEAD_NAME = "audit.head"
GENESIS = "0" * 64  # ``prev`` of the first line

# The allow-list: every key a record may carry. A new field is a privacy decision, made here and nowhere else.
CONSENT_FIELDS = frozenset({"type", "prev", "receipt", "policy", "choices", "outcome", "started", "ended"})
STAFF_FIELDS = frozenset({"type", "prev", "account", "action", "at"})
# target: the staff account an action was done to (add/remove/reset); changes: event settings changed.
_STAFF_OPTIONAL = frozenset({"target", "changes"})
_TOKEN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_COLOUR = re.compile(r"^#[0-9A-Fa-f]{6}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")


def _tokens(pattern: re.Pattern[str], *more: re.Pattern[str]) -> Callable[[Any], bool]:
    patterns = (pattern, *more)
    return lambda value: (
        isinstance(value, list)
        and 0 < len(value) <= 16
        and all(isinstance(v, str) and any(p.fullmatch(v) for p in patterns) for v in value)
    )


# The event settings a staff record may say were changed, and what a new value may look like. The event
# name is free text (a place where a person's name could slip in), so only ``null`` ("changed") is allowed.
STAFF_CHANGES: Mapping[str, Callable[[Any], bool]] = {
    "event.name": lambda value: value is None,
    "event.languages": _tokens(_LANGUAGE),
    "event.backgrounds": _tokens(_TOKEN, _COLOUR),
    "event.presets": _tokens(_TOKEN),
    "delivery.window_minutes": lambda value: type(value) is int and 1 <= value <= 24 * 60,
}

# Crockford base32: no I, L, O, U, so a guest reading the receipt aloud cannot confuse 1/I/L or 0/O.
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RECEIPT = re.compile(r"^[0-9A-HJKMNP-TV-Z]{8}$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_MINUTE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}Z$")
_CHOICE_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_MAX_CHOICES = 16
_ACCOUNT = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")  # the staff name rule (appliance.accounts)
_ACTION = re.compile(r"^[a-z][a-z0-9_.:-]{0,63}$")
_MAX_LINE_BYTES = 4096


class AuditError(Exception):
    """A record is not allowed, or the log cannot be read or written; the message says which and why."""


class ConsentOutcome(str, Enum):
    """How a visit ended, as written on its receipt."""

    DELIVERED = "delivered"  # the guest reached the QR code
    DECLINED = "declined"  # consent refused: nothing was captured
    TIMED_OUT = "timed_out"  # the guest walked away; idle timeout wiped the session
    DELETED = "deleted"  # the guest pressed Delete now
    REVOKED = "revoked"  # the guest withdrew consent
    ABORTED = "aborted"  # staff aborted the session (it was wiped)
    ERROR = "error"  # camera, engine or worker failure; the session was wiped


_OUTCOME_FOR_REASON: Mapping[WipeReason, ConsentOutcome] = {
    WipeReason.FINISHED: ConsentOutcome.DELIVERED,
    WipeReason.DELETED_BY_GUEST: ConsentOutcome.DELETED,
    WipeReason.CONSENT_REVOKED: ConsentOutcome.REVOKED,
    WipeReason.CONSENT_DECLINED: ConsentOutcome.DECLINED,
    WipeReason.IDLE_TIMEOUT: ConsentOutcome.TIMED_OUT,
    WipeReason.ERROR: ConsentOutcome.ERROR,
    WipeReason.WORKER_DIED: ConsentOutcome.ERROR,
    WipeReason.STAFF_ABORT: ConsentOutcome.ABORTED,
    WipeReason.SHUTDOWN: ConsentOutcome.ERROR,
}


def outcome_for(reason: WipeReason) -> ConsentOutcome:
    """The receipt outcome for a session wiped for ``reason``."""
    return _OUTCOME_FOR_REASON[reason]


@dataclass(frozen=True)
class VerifyResult:
    """What ``AuditLog.verify`` found. ``first_bad_line`` is 1-based; None when ``ok``."""

    ok: bool
    records: int
    first_bad_line: int | None = None
    problem: str | None = None


def receipt_id() -> str:
    """A fresh random receipt id: 8 Crockford base32 characters (40 bits), shown to the guest.

    Random and never derived from the guest or the session, so it links the receipt to nothing but itself.
    """
    return "".join(secrets.choice(_CROCKFORD) for _ in range(8))


def policy_version_hash(cfg: KioskConfig, *, controller: Controller | None = None) -> str:
    """SHA-256 (hex) of the consent text and privacy notice the guest is shown, as rendered from ``cfg``.

    Any change to the wording, the durations in the config or ``[event] policy_version`` gives a new hash, so
    a receipt proves which text the guest agreed to.
    """
    return policy_hash(cfg, controller=controller)


def _minute(value: datetime | float) -> str:
    """ISO 8601 UTC, rounded *down* to the minute. Accepts epoch seconds or an aware datetime."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise AuditError("audit times must be timezone-aware (use datetime.now(timezone.utc))")
        moment = value.astimezone(timezone.utc)
    else:
        moment = datetime.fromtimestamp(value, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%MZ")  # strftime truncates seconds: rounding down


def _canonical(record: Mapping[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _digest(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def _record_problem(record: Mapping[str, Any]) -> str | None:
    """Why ``record`` is not an allowed audit record (schema allow-list), or None if it is."""
    kind = record.get("type")
    if kind == "consent":
        keys = set(record)
        if keys != CONSENT_FIELDS:
            return f"consent record fields {sorted(keys)} differ from the allowed {sorted(CONSENT_FIELDS)}"
        if not isinstance(record["receipt"], str) or not _RECEIPT.fullmatch(record["receipt"]):
            return "receipt is not 8 Crockford base32 characters"
        if not isinstance(record["policy"], str) or not _SHA256_HEX.fullmatch(record["policy"]):
            return "policy is not a SHA-256 hex digest"
        choices = record["choices"]
        if choices is None:
            choices = {}  # no optional choice was offered
        elif not isinstance(choices, dict) or len(choices) > _MAX_CHOICES:
            return f"choices must be an object of at most {_MAX_CHOICES} entries"
        for key, value in choices.items():
            # Yes/no answers only: a free-text value is where a name or an e-mail address would slip in.
            if not _CHOICE_KEY.fullmatch(key) or not isinstance(value, bool):
                return "choices must map short lowercase keys to true/false"
        if record["outcome"] not in {o.value for o in ConsentOutcome}:
            return f"outcome {record['outcome']!r} is not one of {', '.join(o.value for o in ConsentOutcome)}"
        for key in ("started", "ended"):
            if not isinstance(record[key], str) or not _MINUTE.fullmatch(record[key]):
                return f"{key} is not an ISO minute such as 2025-01-15T10:42Z"
        if record["ended"] < record["started"]:
            return "ended is before started"
    elif kind == "staff":
        keys = set(record)
        if not keys >= STAFF_FIELDS or keys - STAFF_FIELDS - _STAFF_OPTIONAL:
            allowed = sorted(STAFF_FIELDS | _STAFF_OPTIONAL)
            return f"staff record fields {sorted(keys)} differ from the allowed {allowed} (target optional)"
        if not isinstance(record["account"], str) or not _ACCOUNT.fullmatch(record["account"]):
            return "account is not a staff account name"
        if "target" in record and (
            not isinstance(record["target"], str) or not _ACCOUNT.fullmatch(record["target"])
        ):
            return "target is not a staff account name"
        if not isinstance(record["action"], str) or not _ACTION.fullmatch(record["action"]):
            return "action is not a short lowercase action name"
        if "changes" in record:
            changes = record["changes"]
            if not isinstance(changes, dict) or not changes:
                return "changes must be a non-empty object"
            for key, value in changes.items():
                check = STAFF_CHANGES.get(key)
                if check is None:
                    return f"changes may name only {', '.join(sorted(STAFF_CHANGES))}"
                if not check(value):
                    return f"changes.{key} is not an allowed value"
        if not isinstance(record["at"], str) or not _MINUTE.fullmatch(record["at"]):
            return "at is not an ISO minute such as 2025-01-15T10:42Z"
    else:
        return f"unknown record type {kind!r}"
    if not isinstance(record.get("prev"), str) or not _SHA256_HEX.fullmatch(record["prev"]):
        return "prev is not a SHA-256 hex digest"
    return None


class AuditLog:
    """The audit trail in ``directory`` (``[audit] path``). Safe to append from several threads and processes.

    Appends hold an exclusive ``flock`` on the log file for read-tail, write, fsync and head update, so
    concurrent writers form one valid chain. Each append is fsync'ed before it returns.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.log_path = self.directory / LOG_NAME
        self.head_path = self.directory / HEAD_NAME

    # ---------------------------------------------------------------------------------------------- internals

    @contextlib.contextmanager
    def _open_locked(self, *, write: bool) -> Iterator[int | None]:
        """The log's fd under an exclusive (``write``) or shared lock; None if reading a missing log."""
        if write:
            if not self.directory.exists():
                self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.chmod(self.directory, 0o700)  # mkdir's mode is filtered by the umask
            flags = os.O_RDWR | os.O_APPEND | os.O_CREAT
            created = not self.log_path.exists()
        else:
            flags = os.O_RDONLY
            created = False
        try:
            fd = os.open(self.log_path, flags | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except FileNotFoundError:
            yield None
            return
        except OSError as exc:
            raise AuditError(f"cannot open audit log {self.log_path}: {exc.strerror}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise AuditError(f"audit log {self.log_path} is not a regular file")
            if write and created:
                keep_owner(fd, self.directory)
            # The log inode is never replaced (append-only), so it can carry the lock itself.
            fcntl.flock(fd, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
            yield fd
        finally:
            os.close(fd)

    def _read_head(self) -> dict[str, Any] | None:
        try:
            raw = self.head_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            head = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return {}
        if (
            not isinstance(head, dict)
            or not isinstance(head.get("lines"), int)
            or not isinstance(head.get("size"), int)
            or not isinstance(head.get("last"), str)
        ):
            return {}
        return head

    def _write_head(self, lines: int, last: str, size: int) -> None:
        payload = _canonical({"last": last, "lines": lines, "size": size}) + b"\n"
        write_atomic(self.head_path, payload, mode=0o600, set_owner=lambda fd: keep_owner(fd, self.head_path))

    @staticmethod
    def _read_all(fd: int) -> bytes:
        chunks = []
        offset = 0
        while chunk := os.pread(fd, 1 << 20, offset):
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks)

    def _tail(self, fd: int) -> tuple[str, int, int]:
        """(hash of the last line, number of lines, file size).

        From the head when it matches the file, else by reading the file (after a crash between the append
        and the head update, or with the head missing).
        """
        size = os.fstat(fd).st_size
        head = self._read_head()
        if head and head["size"] == size:
            return str(head["last"]), int(head["lines"]), size
        if size == 0:
            return GENESIS, 0, 0
        data = self._read_all(fd)
        if not data.endswith(b"\n"):
            # A write torn by power loss: end the fragment so the next record starts on its own line. The
            # fragment stays (an audit log never deletes) and verify reports it.
            os.write(fd, b"\n")
            os.fsync(fd)
            data += b"\n"
            logger.warning("audit log ended in an incomplete line; it is kept and verify will report it")
        lines = data[:-1].split(b"\n")
        return _digest(lines[-1]), len(lines), len(data)

    def _append(self, record: dict[str, Any]) -> dict[str, Any]:
        with self._open_locked(write=True) as fd:
            if fd is None:  # cannot happen with O_CREAT; keeps the types honest
                raise AuditError(f"cannot create audit log {self.log_path}")
            prev, lines, size = self._tail(fd)
            record = {**record, "prev": prev}
            problem = _record_problem(record)
            if problem is not None:
                raise AuditError(f"refusing to write an audit record that is not allowed: {problem}")
            line = _canonical(record)
            if len(line) > _MAX_LINE_BYTES:
                raise AuditError(f"audit record of {len(line)} bytes exceeds {_MAX_LINE_BYTES} bytes")
            data = line + b"\n"
            written = 0
            while written < len(data):  # O_APPEND: each write lands at the end, even a partial one's rest
                written += os.write(fd, data[written:])
            os.fsync(fd)
            self._write_head(lines + 1, _digest(line), size + len(data))
        return record

    # ---------------------------------------------------------------------------------------------- public

    def append_consent(
        self,
        *,
        receipt: str,
        policy: str,
        choices: Mapping[str, bool] | None,
        outcome: ConsentOutcome | str,
        started: datetime | float,
        ended: datetime | float,
    ) -> dict[str, Any]:
        """Append one consent receipt; return the record written (with ``prev``).

        ``receipt`` from ``receipt_id()``, ``policy`` from ``policy_version_hash``, ``choices`` yes/no answers
        keyed by short lowercase names (None: the event offered no choice), ``started``/``ended`` epoch
        seconds or aware datetimes (stored rounded down to the minute, UTC). Raises ``AuditError`` for
        anything outside the allow-list.
        """
        try:
            outcome_value = ConsentOutcome(outcome).value
        except ValueError:
            known = ", ".join(o.value for o in ConsentOutcome)
            raise AuditError(f"unknown consent outcome {outcome!r}; expected one of {known}") from None
        record = {
            "type": "consent",
            "receipt": receipt,
            "policy": policy,
            "choices": None if choices is None else dict(choices),
            "outcome": outcome_value,
            "started": _minute(started),
            "ended": _minute(ended),
        }
        return self._append(record)

    def append_staff(
        self,
        account: str,
        action: str,
        *,
        target: str | None = None,
        changes: Mapping[str, Any] | None = None,
        at: datetime | float | None = None,
    ) -> dict[str, Any]:
        """Append one staff action: ``account`` did ``action`` (e.g. ``kiosk.pause``, ``login.failed``).

        ``at`` defaults to now and is stored rounded down to the minute. ``target`` names the staff account
        acted on, if any; ``changes`` the event settings changed, dotted key -> new value (``STAFF_CHANGES``
        says which keys and values are allowed). Use account ``cli`` for the command line and ``unknown``
        for a sign-in attempt with a name that is not an account.
        """
        record: dict[str, Any] = {
            "type": "staff",
            "account": account,
            "action": action,
            "at": _minute(datetime.now(timezone.utc) if at is None else at),
        }
        if target is not None:
            record["target"] = target
        if changes:
            record["changes"] = dict(changes)
        return self._append(record)

    def verify(self) -> VerifyResult:
        """Check every line: JSON object in canonical form, allowed record, ``prev`` chain, and the head.

        Detects an edited, removed, inserted or reordered line, a forged line appended without the right
        ``prev``, and lines cut off the end. Reports the first line that fails (1-based).
        """
        with self._open_locked(write=False) as fd:
            data = b"" if fd is None else self._read_all(fd)
            head = self._read_head()
        if fd is None and head is None:
            return VerifyResult(ok=True, records=0)
        lines = data.split(b"\n")
        complete = data.endswith(b"\n") or not data
        lines = lines[:-1]  # the piece after the final newline: empty, or an incomplete line
        if not complete:
            return VerifyResult(
                ok=False,
                records=len(lines),
                first_bad_line=len(lines) + 1,
                problem=f"line {len(lines) + 1} is incomplete (no newline): the file was cut or a write torn",
            )
        prev = GENESIS
        for number, line in enumerate(lines, start=1):
            problem = self._line_problem(line, prev, number)
            if problem is not None:
                return VerifyResult(ok=False, records=len(lines), first_bad_line=number, problem=problem)
            prev = _digest(line)
        return self._check_head(head, lines)

    @staticmethod
    def _line_problem(line: bytes, prev: str, number: int) -> str | None:
        try:
            record = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return f"line {number} is not valid JSON"
        if not isinstance(record, dict):
            return f"line {number} is not a JSON object"
        if _canonical(record) != line:
            return f"line {number} is not in canonical form (edited by hand?)"
        if record.get("prev") != prev:
            where = "the genesis value" if number == 1 else f"the hash of line {number - 1}"
            return (
                f"line {number}: prev does not match {where}; a line was edited, removed, inserted or "
                "reordered here"
            )
        problem = _record_problem(record)
        if problem is not None:
            return f"line {number}: {problem}"
        return None

    def _check_head(self, head: dict[str, Any] | None, lines: list[bytes]) -> VerifyResult:
        count = len(lines)
        if head is None:
            if count == 0:
                return VerifyResult(ok=True, records=0)
            return VerifyResult(
                ok=False,
                records=count,
                first_bad_line=count,
                problem=f"{HEAD_NAME} is missing, so lines cut off the end cannot be ruled out",
            )
        if not head:
            return VerifyResult(
                ok=False, records=count, first_bad_line=count or None, problem=f"{HEAD_NAME} is unreadable"
            )
        expected = int(head["lines"])
        if count < expected:
            return VerifyResult(
                ok=False,
                records=count,
                first_bad_line=count + 1,
                problem=f"the log has {count} lines but {HEAD_NAME} records {expected}: lines were cut off",
            )
        # One line more than the head is the window of an append interrupted before its head update; more than
        # that was not written by this code.
        if count > expected + 1:
            return VerifyResult(
                ok=False,
                records=count,
                first_bad_line=expected + 2,
                problem=f"lines from {expected + 2} on are not recorded in {HEAD_NAME}",
            )
        recorded = _digest(lines[expected - 1]) if expected else GENESIS
        if recorded != head["last"]:
            return VerifyResult(
                ok=False,
                records=count,
                first_bad_line=expected or 1,
                problem=f"line {expected} does not match the hash in {HEAD_NAME}: it was edited or replaced",
            )
        return VerifyResult(ok=True, records=count)

    def export(self) -> bytes:
        """The whole log as it is on disk (JSON Lines), read under a shared lock; b"" if there is none yet."""
        with self._open_locked(write=False) as fd:
            return b"" if fd is None else self._read_all(fd)


class FinishedVisit(Protocol):
    """What the kiosk hands over when a visit ends (``appliance.kiosk.Receipt`` has this shape)."""

    @property
    def code(self) -> str: ...
    @property
    def outcome(self) -> WipeReason: ...
    @property
    def choices(self) -> Mapping[str, bool] | None: ...
    @property
    def started_wall(self) -> float: ...
    @property
    def ended_wall(self) -> float: ...


def receipt_recorder(
    cfg: KioskConfig, *, controller: Controller | None = None
) -> Callable[[FinishedVisit], None]:
    """A ``Kiosk(on_receipt=...)`` callback that appends each finished visit to ``[audit] path``.

    The policy hash is computed once here, for this config: when staff change the event settings the kiosk
    takes a new recorder (``Kiosk.update_event``), so every receipt names the text its guest agreed to.
    Raises ``AuditError`` from the callback if the record cannot be written (the kiosk logs it; the session
    has been wiped already).
    """
    log = AuditLog(cfg.audit.path)
    policy = policy_version_hash(cfg, controller=controller)

    def record(visit: FinishedVisit) -> None:
        log.append_consent(
            receipt=visit.code,
            policy=policy,
            choices=visit.choices,
            outcome=outcome_for(visit.outcome),
            started=visit.started_wall,
            ended=visit.ended_wall,
        )

    return record
