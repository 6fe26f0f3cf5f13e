"""``REPORT.md``: the run's figures, one ``<location> hits: N`` line per searched location, and a verdict.

The report names secrets only by category and number (``token#12``), never by value: it is itself a file
that must pass the residue scan of the next run.
"""

from __future__ import annotations

import platform
import statistics
from pathlib import Path

from tests.audit.state import Audit


def _pct(values: list[float], q: float) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)
    at = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return f"{ordered[at] * 1000:.0f} ms"


def _growth(before: int, after: int) -> str:
    if before <= 0:
        return "n/a"
    return f"{before} -> {after} ({(after - before) / before * 100:+.1f} %)"


def write_report(audit: Audit, command: str, verdict_failures: list[str]) -> str:
    """Render the report and write it to ``<out>/REPORT.md``; returns the text."""
    s = audit.settings
    lines: list[str] = []
    add = lines.append
    status = "PASS" if not verdict_failures else f"FAIL ({len(verdict_failures)} finding(s))"
    add(f"# Privacy, fault and load audit — {s.mode} mode — {status}")
    add("")
    add(f"- Command: `{command}`")
    add(f"- Elapsed: {audit.elapsed():.0f} s ({audit.elapsed() / 60:.1f} min)")
    add(f"- Machine: {platform.machine()}, Linux {platform.release()}, Python {platform.python_version()}")
    add(f"- Seed: {audit.seed} (frames, choices, fuzz cases)")
    ready = ", ".join(f"{x:.1f} s" for x in audit.kiosk.start_seconds)
    add(f"- Kiosk starts: {audit.kiosk.starts} (start-to-ready {ready})")
    add("")
    add("## Sessions")
    total = sum(audit.visits.values())
    add(f"- Visits run: {total} (planned {s.sessions} API visits incl. kills, + browser and load visits)")
    for kind, n in sorted(audit.visits.items()):
        add(f"  - {kind}: {n}")
    add(f"- Preview frames read: {audit.preview_frames}; distinct images learnt: {len(audit.image_shas)}")
    states: dict[str, int] = {}
    for d in audit.deliveries.values():
        states[d.state] = states.get(d.state, 0) + 1
    by_state = ", ".join(f"{k} {v}" for k, v in sorted(states.items()))
    add(f"- Delivery links: {len(audit.deliveries)} ({by_state})")
    add(f"- Kills (kill -9) and their phases: {len(audit.kills)}")
    for k in audit.kills:
        add(f"  - {k}")
    add(f"- Session-worker pids observed: {len(audit.session_workers)}")
    add("")
    add("## P0-4 RAM store snapshots (mid-session)")
    for snap in audit.snapshots or ["none taken"]:
        add(f"- {snap}")
    add("")
    add("## Secrets searched")
    counts = audit.book.counts
    add(
        f"- {len(audit.book)} patterns from {sum(counts.values())} secrets: "
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    )
    add(
        "- Forms: raw, hex (lower/upper), UTF-16LE (raw and hex), URL-encoded (both hex cases), base64 and "
        "base64url at all three alignments; 32-byte windows of every render and sampled preview frame, "
        "of the raw capture pixels and of the planted patch (RGB and BGR)."
    )
    add("")
    add("## P0-6 / P1-6 hits per location")
    add("")
    add("```")
    for where, hits in audit.hits.items():
        add(f"{where} hits: {hits.total}")
    add("```")
    add("")
    for where, info in audit.scanned.items():
        add(f"- {where}: {info}")
    details = [(w, h) for w, h in audit.hits.items() if h.total]
    if details:
        add("")
        add("### Hit details")
        for where, hits in details:
            add(f"- **{where}**: {hits.summary()}")
            for example in hits.examples:
                add(f"  - {example}")
    add("")
    add("## P1-4 fuzzing and headers")
    for name, text in audit.fuzz.items():
        add(f"- {name}: {text}")
    add(
        f"- All HTTP responses seen by the visit clients: {audit.headers.responses}; >= 500: "
        f"{len(audit.headers.server_errors)}; missing required headers: {len(audit.headers.missing_headers)}"
    )
    if audit.expected_5xx:
        add(f"- Expected 503s from requests cut by a worker kill (not counted): {len(audit.expected_5xx)}")
    add("")
    add("## P1-5 image intake")
    for name, text in audit.intake.items():
        add(f"- {name}: {text}")
    add("")
    add("## Load and soak")
    add(
        f"- Phone downloads during visits: {len(audit.latencies)}; GET+POST latency "
        f"p50 {_pct(audit.latencies, 0.5)}, p99 {_pct(audit.latencies, 0.99)}"
    )
    add(
        f"- 50 concurrent phones: {len(audit.load_latencies)} downloads; GET+POST latency p50 "
        f"{_pct(audit.load_latencies, 0.5)}, p99 {_pct(audit.load_latencies, 0.99)}"
        + (f", mean {statistics.mean(audit.load_latencies) * 1000:.0f} ms" if audit.load_latencies else "")
    )
    base, after, end = audit.soak.get("baseline"), audit.soak.get("after_sessions"), audit.soak.get("end")
    if base and after:
        add(
            f"- Main process RSS (KiB) after the first 10 visits since the last start -> after the visits "
            f"({audit.soak_visits} visits later): {_growth(base.rss_kib, after.rss_kib)}"
        )
        add(f"- Open fds: {_growth(base.fds, after.fds)}; threads: {_growth(base.threads, after.threads)}")
    if end:
        add(
            f"- At the end (after load and fuzzing): RSS {end.rss_kib} KiB, fds {end.fds}, "
            f"threads {end.threads}"
        )
    add("")
    add("## Phases (seconds)")
    for name, secs in audit.phase_seconds.items():
        add(f"- {name}: {secs:.0f}")
    if audit.notes:
        add("")
        add("## Notes")
        for n in audit.notes:
            add(f"- {n}")
    add("")
    add("## Verdict")
    if verdict_failures:
        for f in verdict_failures:
            add(f"- FAIL: {f}")
    else:
        add("- PASS: no hit, no 5xx, no crash, no hang, soak within bounds.")
    text = "\n".join(lines) + "\n"
    (audit.out / "REPORT.md").write_text(text)
    return text


def report_path(out: Path) -> Path:
    return out / "REPORT.md"
