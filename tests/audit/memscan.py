"""P1-6: the live memory of a long-lived process, read through /proc/<pid>/mem (root), searched for secrets.

Every readable mapping in /proc/<pid>/maps is read (except [vvar]/[vsyscall], which the kernel does not let
one read this way); regions that fail to read are counted, not fatal. The scan is of the process as it is
at that moment — freed but not yet reused heap is included, which is the point.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.audit.markers import Hits, Matcher

CHUNK = 16 * 2**20
DUMP = os.environ.get("HK_AUDIT_MEMDUMP")


def _dump_contexts(data: bytes, base: int, label: str, matcher: Matcher) -> None:
    """Diagnostics (``HK_AUDIT_MEMDUMP=<file>``): append the 160 bytes either side of every hit, the secret
    itself cut out, so the object that holds it can be recognised (an object header, a neighbouring string).
    Neighbouring secrets may still show: delete the file before the residue scan, or expect it to be found."""
    assert DUMP
    with open(DUMP, "a") as out:
        for pattern, s, e in matcher.find_spans(data):
            ctx = data[max(0, s - 160) : s] + b"<SECRET>" + data[e : e + 160]
            out.write(f"== {pattern.category} {pattern.label} {pattern.encoding} {label} @{base + s:#x}\n")
            out.write(repr(ctx) + "\n")


SKIP = ("[vvar]", "[vvar_vclock]", "[vsyscall]")


@dataclass
class MemoryScan:
    """Hits in one process's memory, and where (per mapping name)."""

    pid: int
    hits: Hits = field(default_factory=Hits)
    regions: int = 0
    unreadable: int = 0
    bytes: int = 0
    where: Counter[str] = field(default_factory=Counter)


def scan_process(pid: int, matcher: Matcher) -> MemoryScan:
    """Scan the memory of ``pid``; raises OSError if its maps cannot be read at all."""
    result = MemoryScan(pid)
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            parts = line.split(maxsplit=5)
            perms = parts[1]
            name = parts[5].strip() if len(parts) > 5 else "[anon]"
            if "r" not in perms or name in SKIP:
                continue
            start, end = (int(x, 16) for x in parts[0].split("-"))
            result.regions += 1

            def chunks(start: int = start, end: int = end) -> list[bytes]:
                out = []
                at = start
                while at < end:
                    mem.seek(at)
                    out.append(mem.read(min(CHUNK, end - at)))
                    at += CHUNK
                return out

            try:
                data = chunks()
            except OSError:
                result.unreadable += 1
                continue
            result.bytes += sum(len(d) for d in data)
            label = name if not name.startswith("/") else Path(name).name
            if DUMP:
                _dump_contexts(b"".join(data), start, label, matcher)
            for pattern in matcher.scan_chunks(data):
                result.hits.add(pattern, f"pid {pid} {label} {perms}")
                result.where[f"{pattern.category}/{pattern.encoding} in {label}"] += 1
    return result
