"""Reading the audit trail from its end: the consent outcomes of one day, for the staff dashboard.

``AuditLog.verify`` and ``export`` read the whole log; the dashboard needs only today's receipts, and on a
kiosk that has run for years today's part is a small tail. So this reads backwards in chunks and stops at
the first receipt of an earlier day (the log is in time order). Only ``type``, ``ended`` and ``outcome``
are looked at: no receipt code, policy hash or staff name leaves this module.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator

from appliance.audit import AuditLog

__all__ = ["receipt_outcomes_on"]

# Bounds one read; today's part of a long log is usually within the last chunk or two.
_TAIL_CHUNK_BYTES = 64 * 1024


def receipt_outcomes_on(audit: AuditLog, day: str) -> Counter[str]:
    """Consent-receipt outcomes whose ``ended`` falls on ``day`` (``YYYY-MM-DD``, UTC), counted by outcome.

    An empty count when there is no log yet (or it cannot be opened). A line being appended right now may
    be cut short; it is skipped and counted on the next call. No lock is taken: a reader must never hold up
    the receipt of a guest who is leaving, and an append only ever adds at the end.
    """
    counts: Counter[str] = Counter()
    try:
        # O_NOFOLLOW as AuditLog opens it: a symlink planted in place of the log is not followed.
        fd = os.open(audit.log_path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return counts
    try:
        for line in _lines_backwards(fd):
            try:
                record = json.loads(line)
            except (UnicodeDecodeError, ValueError):
                continue
            if not isinstance(record, dict) or record.get("type") != "consent":
                continue
            ended = str(record.get("ended", ""))
            if ended[:10] < day:
                break
            if ended.startswith(day):
                counts[str(record.get("outcome"))] += 1
    finally:
        os.close(fd)
    return counts


def _lines_backwards(fd: int) -> Iterator[bytes]:
    """The non-empty lines of the file behind ``fd``, last first."""
    position = os.fstat(fd).st_size
    rest = b""
    while position > 0:
        size = min(_TAIL_CHUNK_BYTES, position)
        position -= size
        chunk = os.pread(fd, size, position) + rest
        lines = chunk.split(b"\n")
        rest = lines[0]  # may continue in the previous chunk
        yield from (line for line in reversed(lines[1:]) if line)
    if rest:
        yield rest
