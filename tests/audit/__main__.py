"""``python -m tests.audit [--quick|--full] [--out build/audit]``: the whole-system audit (issue 7).

Exit status 0 when nothing was found, 1 on any finding (a hit, a 5xx, a missing header, a crash, a hang, a
soak bound exceeded), 2 on a usage error. Needs root (the kiosk mounts its tmpfs; /proc/<pid>/mem of a
non-dumpable process); without root it prints why and exits 0 having done nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from tests.audit import fuzz, intake, memscan, residue
from tests.audit.client import HeaderAudit
from tests.audit.kiosk import (
    REPO,
    KioskProcess,
    mounted_under,
    store_files,
    wait_dead,
    write_config,
)
from tests.audit.markers import Hits, SecretBook, plant_frames, register_frames
from tests.audit.report import write_report
from tests.audit.state import FULL, QUICK, Audit, Settings

PORTRAITS = [
    REPO / "tests" / "assets" / "faces" / "astronaut.png",
    REPO / "tests" / "assets" / "faces" / "grace_hopper.jpg",
]
RSS_GROWTH_LIMIT = 0.10


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.audit", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="about 50 visits, a few minutes (the default)")
    mode.add_argument("--full", action="store_true", help="1000 visits and more fuzzing (tens of minutes)")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "audit", help="report directory")
    parser.add_argument("--sessions", type=int, default=None, help="override the number of API visits")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: fresh per run)")
    return parser.parse_args(argv)


def phase(audit: Audit, name: str, body: Callable[[], None]) -> None:
    """Run one phase; an exception in it is a finding (the audit goes on with the next phase)."""
    t0 = time.monotonic()
    print(f"[audit {audit.elapsed():6.0f} s] {name} ...", flush=True)
    try:
        body()
    except Exception as exc:
        audit.fail(f"{name}: the phase crashed: {type(exc).__name__}: {str(exc)[:300]}")
        traceback.print_exc()
    audit.phase_seconds[name] = time.monotonic() - t0


def scan_memory(audit: Audit, label: str) -> None:
    """P1-6 on the live main process, plus: no worker of a finished session alive."""
    pid = audit.kiosk.pid
    result = memscan.scan_process(pid, audit.book.matcher())
    audit.hits[f"main process memory {label} (pid {pid})"] = result.hits
    where = ", ".join(f"{k} {v}" for k, v in result.where.most_common(10))
    audit.scanned[f"main process memory {label}"] = (
        f"{result.regions} readable mappings, {result.bytes / 2**20:.0f} MiB read, "
        f"{result.unreadable} unreadable" + (f"; hits by mapping: {where}" if where else "")
    )
    if result.bytes == 0:
        audit.fail(f"P1-6 {label}: nothing of the main process's memory could be read")
    from tests.audit.sessions import dead_session_workers

    live = dead_session_workers(audit)
    audit.hits[f"live workers of finished sessions {label}"] = Hits(total=len(live))
    if live:
        audit.fail(f"{len(live)} worker(s) of finished sessions still alive {label}")


def positive_controls(audit: Audit, frames_dir: Path) -> None:
    """The scanners must find what is there, or every "0 hits" would mean nothing: the harness's own memory
    holds every secret it knows, and the planted frames hold their text markers."""
    matcher = audit.book.matcher()
    own = memscan.scan_process(os.getpid(), matcher)
    frames = residue.ScanResult()
    for path in sorted(frames_dir.iterdir()):
        residue.scan_bytes(matcher, "planted frames", path.read_bytes(), frames)
    found = {
        "the harness's own memory": own.hits.by_category,
        "the planted frames": frames.location("planted frames").by_category,
    }
    counts = {where: ", ".join(f"{k} {v}" for k, v in sorted(c.items())) for where, c in found.items()}
    audit.scanned["positive controls"] = "; ".join(f"{w}: {c or 'nothing'}" for w, c in counts.items())
    if not own.hits.by_category.get("token") or not own.hits.by_category.get("marker"):
        audit.fail("positive control: the memory scan did not find the tokens and markers the harness holds")
    if not frames.location("planted frames").by_category.get("marker"):
        audit.fail("positive control: the scan did not find the text markers in the planted frames")


def settle_store(audit: Audit, timeout: float = 20.0) -> list[str]:
    """Wait until the RAM store is empty (every link collected, revoked or purged); returns what is left."""
    deadline = time.monotonic() + timeout
    left: list[str] = []
    while time.monotonic() < deadline:
        left = [str(p.relative_to(audit.layout.store)) for p in store_files(audit.layout.store)]
        if not left:
            return []
        time.sleep(0.5)
    return left


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    command = "python -m tests.audit " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    if os.geteuid() != 0:
        print(
            "tests.audit: SKIPPED — needs root (the kiosk mounts its RAM store; /proc/<pid>/mem of a "
            "non-dumpable process). Run it as root, as CI does."
        )
        return 0
    base_settings = FULL if args.full else QUICK
    settings = (
        base_settings
        if args.sessions is None
        else Settings(**{**vars(base_settings), "sessions": args.sessions})
    )
    seed = args.seed if args.seed is not None else secrets.randbits(48)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("REPORT.md", "kiosk.log"):
        (out / stale).unlink(missing_ok=True)
    started_wall = time.time()
    base = Path(tempfile.mkdtemp(prefix="hk-audit-"))
    rng = random.Random(seed)
    book = SecretBook()
    frames = plant_frames(base / "frames", PORTRAITS, seed=seed)
    register_frames(book, frames, rng)
    colour = f"#{rng.randrange(2**24):06x}"
    layout = write_config(base, frames.directory, colour)
    kiosk = KioskProcess(layout, out / "kiosk.log")
    audit = Audit(settings, seed, out, layout, kiosk, book, HeaderAudit(), rng, started_wall)
    audit.backgrounds = ["blur", colour, "white"]
    deadline = time.monotonic() + settings.time_budget_seconds
    print(f"[audit] {settings.mode} mode, seed {seed}, kiosk config {layout.config}", flush=True)
    try:
        run_phases(audit, deadline)
    finally:
        if kiosk.alive():
            kiosk.stop()
        for mount_point in reversed(mounted_under(base)):
            subprocess.run(["umount", "-l", mount_point], check=False)
    phase(audit, "P0-6 residue scan", lambda: residue_scan(audit, frames.directory))
    shutil.rmtree(base, ignore_errors=True)  # the planted frames go only after the scan
    failures = verdict(audit)
    text = write_report(audit, command, failures)
    print(text)
    print(f"[audit] report: {out / 'REPORT.md'}", flush=True)
    return 1 if failures else 0


def run_phases(audit: Audit, deadline: float) -> None:
    s = audit.settings
    from tests.audit import browser, load, sessions

    def intake_phase() -> None:
        work = audit.layout.base / "intake"
        result = intake.run_intake(work, work / "store", mutant_count=s.intake_mutants, seed=audit.seed)
        audit.intake["cases"] = (
            f"{result.cases} ({len(intake.crafted_cases())} crafted, {s.intake_mutants} mutants)"
        )
        audit.intake["in-process decoders"] = ", ".join(
            f"{k} {v}" for k, v in sorted(result.in_process.items())
        )
        audit.intake["python -m engine render"] = result.cli
        audit.intake["session worker, directory camera"] = result.worker
        audit.intake["problems"] = "; ".join(result.problems) or "none"
        if result.interesting:
            kept = audit.out / "corpus-candidates"
            shutil.rmtree(kept, ignore_errors=True)
            shutil.copytree(work / "corpus-candidates", kept)
            audit.intake["interesting cases kept in"] = str(kept)
        for p in result.problems:
            audit.fail(f"P1-5: {p}")

    phase(audit, "P1-5 image intake fuzzing", intake_phase)
    phase(audit, "kiosk start", audit.kiosk.start)
    if not audit.kiosk.alive():
        return
    phase(audit, "visits (API, kills)", lambda: sessions.run_sessions(audit, deadline - 150))
    phase(audit, "visits (browser)", lambda: browser.run_browser_shares(audit, s.browser_shares))
    phase(audit, "P1-6 memory scan after the visits", lambda: scan_memory(audit, "after the visits"))
    phase(audit, "positive controls", lambda: positive_controls(audit, audit.layout.frames))
    phase(audit, "load (50 phones over TLS)", lambda: load.run_load(audit, s.phones, deadline - 60))

    def fuzz_phase() -> None:
        fuzz_deadline = max(deadline - 30, time.monotonic() + 60)
        api = fuzz.fuzz_api(audit, s.fuzz_examples, fuzz_deadline)
        audit.fuzz["guest API (schemathesis, positive+negative, idle and mid-visit)"] = api.summary()
        delivery = fuzz.fuzz_delivery(audit, s.delivery_fuzz_cases, fuzz_deadline)
        audit.fuzz["delivery listener (random methods/paths/headers/bodies + malformed)"] = delivery.summary()
        staff = fuzz.fuzz_staff(audit, s.delivery_fuzz_cases // 3, fuzz_deadline)
        if staff is None:
            audit.note(
                f"staff listener: nothing listens on [staff] port {audit.layout.staff_port}; not fuzzed"
            )
        else:
            audit.fuzz["staff listener (random paths/methods)"] = staff.summary()
        for name, stats in (("API", api), ("delivery", delivery), ("staff", staff)):
            if stats is None:
                continue
            for e in stats.server_errors[:20]:
                audit.fail(f"P1-4 {name}: server error {e}")
            for e in stats.missing_headers[:20]:
                audit.fail(f"P1-4 {name}: {e}")
            # A well-formed request left without an answer is a hang or a crash; only the deliberately
            # malformed ones may be dropped.
            for e in [t for t in stats.transport_errors if not t.startswith("malformed")][:20]:
                audit.fail(f"P1-4 {name}: no answer: {e}")
            if stats.server_level:
                kinds = sorted({e.rsplit(" -> ", 1)[1] for e in stats.server_level})
                audit.fail(
                    f"P1-2/P1-4 {name}: {len(stats.server_level)} response(s) written by cheroot itself "
                    f"carry none of the security headers (statuses {', '.join(kinds)}), "
                    f"e.g. {stats.server_level[:3]}"
                )
            if len(stats.server_errors) > 20 or len(stats.missing_headers) > 20:
                audit.fail(
                    f"P1-4 {name}: ... {len(stats.server_errors)} server errors, "
                    f"{len(stats.missing_headers)} header misses in all"
                )

    phase(audit, "P1-4 fuzzing", fuzz_phase)
    phase(audit, "late phones (every link still pending)", lambda: load.collect_rest(audit))

    def end_checks() -> None:
        left = settle_store(audit)
        audit.scanned["RAM store at the end"] = f"{len(left)} file(s) left" if left else "empty"
        if left:
            audit.fail(f"the RAM store is not empty at the end: {len(left)} file(s)")
        audit.soak["end"] = sessions.settle_stats(audit)
        scan_memory(audit, "at the end")

    phase(audit, "end checks and P1-6 memory scan", end_checks)

    def stop() -> None:
        workers = audit.kiosk.workers()
        code = audit.kiosk.stop()
        if code != 0:
            audit.fail(f"the kiosk exited with status {code} on SIGTERM")
        alive = [p for p in workers if not wait_dead(p, 10)]
        if alive:
            audit.fail(f"{len(alive)} worker(s) alive after the kiosk stopped")
        if mounted_under(audit.layout.store):
            audit.note(
                "the RAM store tmpfs was still mounted after a clean stop (it was re-used after a crash; "
                "the kiosk unmounts only a tmpfs it mounted itself) — unmounted by the audit"
            )

    phase(audit, "kiosk stop", stop)


def residue_scan(audit: Audit, frames_dir: Path) -> None:
    matcher = audit.book.matcher()
    result = residue.scan_filesystem(matcher, audit.started_wall, [frames_dir, Path(residue.SANDBOX)])
    residue.scan_journal(matcher, audit.started_wall, result)
    log = audit.out / "kiosk.log"
    residue.scan_bytes(matcher, "kiosk stdout/stderr", log.read_bytes() if log.exists() else b"", result)
    for where, hits in result.hits.items():
        audit.hits[where] = hits
        audit.scanned[where] = (
            f"{result.files.get(where, 0)} file(s), {result.bytes.get(where, 0) / 2**20:.1f} MiB"
        )
    for note in result.notes:
        audit.note(note)
    if result.errors:
        audit.note(
            f"{len(result.errors)} file(s) could not be read during the scan, e.g. {result.errors[:3]}"
        )


def verdict(audit: Audit) -> list[str]:
    failures = list(audit.failures)
    for where, hits in audit.hits.items():
        if hits.total:
            failures.append(f"{where}: {hits.summary()}")
    for e in audit.headers.server_errors[:20]:
        failures.append(f"server error during visits: {e}")
    for e in audit.headers.missing_headers[:20]:
        failures.append(f"missing headers during visits: {e}")
    base, after = audit.soak.get("baseline"), audit.soak.get("after_sessions")
    if base is None or after is None:
        failures.append("soak: no baseline (fewer than 10 visits after the last start?)")
    else:
        if after.rss_kib > base.rss_kib * (1 + RSS_GROWTH_LIMIT):
            failures.append(f"soak: main RSS grew {base.rss_kib} -> {after.rss_kib} KiB (> 10 %)")
        if after.fds > base.fds:
            failures.append(f"soak: open fds grew {base.fds} -> {after.fds}")
        if after.threads > base.threads:
            failures.append(f"soak: threads grew {base.threads} -> {after.threads}")
    return failures


if __name__ == "__main__":
    sys.exit(main())
