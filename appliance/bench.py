"""`python -m appliance.bench`: session-level figures with real workers, the real engine and the demo camera.

Consent -> first preview frame (with the warm spare), preview relay rate at 1280×720 with pose guidance,
WIPE latency (request -> files unlinked, key destroyed, state cleared), and the main process's memory
after many sessions compared with after the first few (a leak shows as growth)."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from appliance.config import KioskConfig
from appliance.kiosk import Kiosk


def rss_mib() -> float:
    """Resident set size of this process (MiB), from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def run(sessions: int, frames: int, full_every: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="kiosk-bench-") as tmp:
        cfg = KioskConfig.model_validate(
            {"store": {"path": str(Path(tmp) / "store")}, "camera": {"source": "demo", "fps": 60}}
        )
        kiosk = Kiosk(cfg, log_level="WARNING")
        kiosk.start()
        first_frame_ms: list[float] = []
        fps: list[float] = []
        wipe_ms: list[float] = []
        rss_after: dict[int, float] = {}
        try:
            for n in range(1, sessions + 1):
                kiosk.wait_for_spare()  # a guest arriving at an idle kiosk finds the spare warm
                kiosk.start_session()
                t0 = time.perf_counter()
                kiosk.consent(True)
                kiosk.preview_frame()
                first_frame_ms.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                for _ in range(frames):
                    kiosk.preview_frame()
                fps.append(frames / (time.perf_counter() - t0))
                if full_every and n % full_every == 0:
                    shot = kiosk.capture()
                    kiosk.render(shot.take, "white", "portrait")
                    kiosk.deliver(shot.headshot.id)
                t0 = time.perf_counter()
                kiosk.delete_now()
                wipe_ms.append((time.perf_counter() - t0) * 1000)
                kiosk.tick()
                if n in (10, sessions):
                    rss_after[n] = rss_mib()
        finally:
            kiosk.close()
    growth = (rss_after[sessions] / rss_after[10] - 1) if 10 in rss_after and sessions > 10 else None
    return {
        "sessions": sessions,
        "consent_to_first_frame_ms_median": round(statistics.median(first_frame_ms), 1),
        "consent_to_first_frame_ms_p95": round(percentile(first_frame_ms, 95), 1),
        "preview_fps_median": round(statistics.median(fps), 1),
        "wipe_ms_median": round(statistics.median(wipe_ms), 1),
        "wipe_ms_p99": round(percentile(wipe_ms, 99), 1),
        "rss_mib_after_10": round(rss_after.get(10, 0.0), 1),
        "rss_mib_after_all": round(rss_after.get(sessions, 0.0), 1),
        "rss_growth": None if growth is None else round(growth, 3),
        "targets": {
            "consent_to_first_frame_ms_max": 1000,
            "preview_fps_min": 25,
            "wipe_ms_p99_max": 50,
            "rss_growth_max": 0.10,
        },
        "preview": "1280x720 demo camera, pose guidance on every frame",
        "full_visit_every": full_every,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.bench", description=__doc__)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--frames", type=int, default=30, help="preview frames per session")
    parser.add_argument("--full-every", type=int, default=10, help="every Nth session captures and delivers")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.sessions, args.frames, args.full_every)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
