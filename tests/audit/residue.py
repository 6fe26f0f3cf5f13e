"""P0-6 residue scan: the filesystem, the logs (rotated and compressed too), the journal export and the
kiosk's own output, searched for every secret of the run.

Which files: every regular file under ``/`` (not /proc, /sys, /dev except /dev/shm) whose ctime or mtime is
at or after the run's start — a process can set mtime back (utimes) but not ctime, so anything written or
renamed during the run is included — plus *all* files under /tmp, /var/tmp and /var/log whatever their
times, compressed ones (.gz, .xz, .bz2, .lzma) also decompressed in memory. The run's own input-frame
directory is excluded (it holds the planted markers by construction).

Printing (issue 17) adds CUPS's directories to the always-scanned ones: its spool, job cache, state and
configuration. On the device the spool is a tmpfs in cupsd's own mount namespace, invisible from outside,
so every running cupsd's view of it is scanned too (``/proc/<pid>/root/<spool>``).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tests.audit.markers import Hits, Matcher, iter_file_chunks

PRUNE = ("/proc", "/sys", "/dev")
SANDBOX = "/mnt/sandboxing"  # the machinery running this session, not part of the system under audit
CUPS_DIRS = ("/var/spool/cups", "/var/cache/cups", "/etc/cups", "/run/cups")
ALWAYS = ("/tmp", "/var/tmp", "/var/log", *CUPS_DIRS)
CUPSD_VIEW = "cupsd's own mount namespace"
DECOMPRESSED_CAP = 512 * 2**20
_OPENERS = {".gz": gzip.open, ".xz": lzma.open, ".lzma": lzma.open, ".bz2": bz2.open}


@dataclass
class ScanResult:
    """Hits per location plus what was covered."""

    hits: dict[str, Hits] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def location(self, name: str) -> Hits:
        self.files.setdefault(name, 0)
        self.bytes.setdefault(name, 0)
        return self.hits.setdefault(name, Hits())


def _find(roots: list[str], prune: list[str], since: float | None) -> list[str]:
    """Regular files under ``roots`` (GNU find: fast, no symlinks followed), pruning ``prune``; with
    ``since``, only files whose mtime or ctime is at or after it."""
    existing = [r for r in roots if os.path.isdir(r)]
    if not existing:
        return []
    expr: list[str] = []
    for path in prune:
        expr += ["-path", path, "-o"]
    cmd = ["find", *existing]
    if expr:
        cmd += ["(", *expr[:-1], ")", "-prune", "-o"]
    cmd += ["-type", "f"]
    if since is not None:
        stamp = f"@{int(since)}"
        cmd += ["(", "-newermt", stamp, "-o", "-newerct", stamp, ")"]
    cmd.append("-print0")
    proc = subprocess.run(cmd, capture_output=True, timeout=900, check=False)
    return [p for p in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if p]


def cupsd_views(spools: tuple[str, ...] = CUPS_DIRS[:2]) -> list[str]:
    """``spools`` as every running cupsd sees them (``/proc/<pid>/root/...``): a spool mounted in cupsd's
    private namespace (provisioning's ``TemporaryFileSystem=``) is only reachable this way."""
    views = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text(encoding="ascii").strip() != "cupsd":
                continue
        except OSError:
            continue
        for spool in spools:
            view = f"{comm.parent}/root{spool}"
            if os.path.isdir(view):
                views.append(view)
    return views


def _location_of(path: str) -> str:
    if path.startswith("/proc/"):
        return CUPSD_VIEW
    for root in ALWAYS:
        if path == root or path.startswith(root + "/"):
            return root
    if path.startswith("/dev/shm/"):
        return "/dev/shm"
    return "filesystem (changed since start)"


def scan_filesystem(
    matcher: Matcher, since: float, exclude: list[Path], *, extra: tuple[str, ...] = ()
) -> ScanResult:
    """The P0-6 scan of files (see the module docstring). ``since`` is epoch seconds; ``exclude`` are
    directories left out (the run's input frames, the sandbox's own mount); ``extra`` are more directories
    scanned whole (a test's own CUPS spool, as its cupsd sees it)."""
    result = ScanResult()
    excluded = [str(p) for p in exclude]
    for name in ("filesystem (changed since start)", "/dev/shm", *ALWAYS, CUPSD_VIEW):
        result.location(name)
    # One second of slack: find compares whole seconds.
    changed = _find(["/"], [*PRUNE, *excluded], since - 1)
    always = _find([*ALWAYS, "/dev/shm", *cupsd_views(), *extra], excluded, None)
    seen: set[tuple[int, int]] = set()
    for path in [*always, *changed]:
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        where = _location_of(path)
        hits = result.location(where)
        result.files[where] += 1
        try:
            found = matcher.scan_chunks(iter_file_chunks(Path(path)))
        except OSError as exc:
            result.errors.append(f"{path}: {type(exc).__name__}")
            continue
        result.bytes[where] += st.st_size
        for pattern in found:
            hits.add(pattern, path)
        suffix = Path(path).suffix
        if suffix in _OPENERS:
            _scan_decompressed(matcher, path, suffix, result)
    return result


def _scan_decompressed(matcher: Matcher, path: str, suffix: str, result: ScanResult) -> None:
    where = f"{_location_of(path)} (decompressed)"
    hits = result.location(where)
    try:
        with _OPENERS[suffix](path, "rb") as handle:
            total = 0

            def chunks() -> Iterator[bytes]:
                nonlocal total
                while total < DECOMPRESSED_CAP:
                    data = handle.read(4 * 2**20)
                    if not data:
                        return
                    total += len(data)
                    yield data

            found = matcher.scan_chunks(chunks())
    except (OSError, EOFError, lzma.LZMAError, ValueError) as exc:
        result.errors.append(f"{path} (decompress): {type(exc).__name__}")
        return
    result.files[where] += 1
    result.bytes[where] += total
    for pattern in found:
        hits.add(pattern, f"{path} (decompressed)")


def scan_journal(matcher: Matcher, since: float, result: ScanResult) -> None:
    """``journalctl -o export --since <start>`` when journald runs; a note otherwise."""
    where = "journal export"
    hits = result.location(where)
    journalctl = shutil.which("journalctl")
    running = Path("/run/systemd/journal/socket").exists()
    if journalctl is None or not running:
        result.notes.append(
            "journald is not running on this machine (no /run/systemd/journal/socket"
            + ("" if journalctl else ", no journalctl")
            + "): no journal export to scan; on-disk journal files under /var/log/journal were scanned raw"
        )
        return
    start = datetime.fromtimestamp(since, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    proc = subprocess.run(
        [journalctl, "-o", "export", "--since", start, "--no-pager"],
        capture_output=True,
        timeout=300,
        check=False,
    )
    result.files[where] = 1
    result.bytes[where] = len(proc.stdout)
    for pattern in matcher.find(proc.stdout):
        hits.add(pattern, "journalctl -o export")


def scan_bytes(matcher: Matcher, where: str, data: bytes, result: ScanResult) -> None:
    """Scan an in-memory buffer as one location (the kiosk's captured stdout/stderr)."""
    hits = result.location(where)
    result.files[where] += 1
    result.bytes[where] += len(data)
    for pattern in matcher.find(data):
        hits.add(pattern, where)
