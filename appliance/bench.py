"""`python -m appliance.bench`: session-level figures with real workers, the real engine and the demo camera.

Consent -> first preview frame (with the warm spare), the facade's preview relay rate at 1280×720 with pose
guidance, WIPE latency (request -> files unlinked, key destroyed, state cleared), and the main process's
memory after many sessions compared with after the first few (a leak shows as growth).

``client_preview``: the live preview where the guest meets it (STYLE.md §12). The kiosk is started as the
product runs it (``python -m appliance run``: the scrubbing allocator, the real listeners), a plain HTTP
client opens ``/api/session/preview.mjpg`` and counts the JPEG parts it receives per second at 1280×720 with
pose guidance from a 30 fps demo camera, with and without a replaced background, while the CPU time of the
main process (the relay) and of the session worker is read from /proc."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
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


# -- the live preview at the client ------------------------------------------------------------------------

CLIENT_FPS_TARGET = 25.0
CLIENT_BACKGROUND_FPS_TARGET = 15.0
RELAY_CORES_MAX = 1.0
READY_TIMEOUT_SECONDS = 180.0  # the first worker after a cold start loads every model


@dataclass(frozen=True)
class StreamCount:
    """JPEG parts of an MJPEG stream received in a window of ``seconds``: the rate, the slowest whole
    second and the median part size in bytes."""

    parts: int
    seconds: float
    per_second_min: int
    bytes_median: int

    @property
    def fps(self) -> float:
        return self.parts / self.seconds if self.seconds > 0 else 0.0


def read_part(response: http.client.HTTPResponse) -> bytes | None:
    """The next JPEG of a ``multipart/x-mixed-replace`` response, or None where the stream ends."""
    line = response.readline()
    while line and not line.startswith(b"--"):
        line = response.readline()
    if not line:
        return None
    length: int | None = None
    while (line := response.readline()) not in (b"\r\n", b"\n"):
        if not line:
            return None
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        raise ValueError("an MJPEG part without Content-Length")
    data = response.read(length)
    return data if len(data) == length else None


def count_parts(response: http.client.HTTPResponse, *, warmup: float, seconds: float) -> StreamCount:
    """Read parts for ``warmup`` seconds (not counted: the first frames of a stream come faster, from the
    worker's pipeline), then count those that arrive within ``seconds``."""
    start = time.monotonic() + warmup
    end = start + seconds
    per_second = [0] * max(1, int(seconds))
    sizes: list[int] = []
    while (now := time.monotonic()) < end:
        part = read_part(response)
        if part is None:
            raise RuntimeError("the preview stream ended early")
        now = time.monotonic()
        if start <= now < end:
            sizes.append(len(part))
            per_second[min(len(per_second) - 1, int(now - start))] += 1
    return StreamCount(len(sizes), seconds, min(per_second), int(statistics.median(sizes)) if sizes else 0)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the tests' too: tests/support.py)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (its own threads, not its children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out.update(int(x) for x in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return sorted(out)


class KioskServer:
    """``python -m appliance run`` on free loopback ports with a demo camera at ``fps``, in ``base``."""

    def __init__(self, base: Path, *, fps: float) -> None:
        self.base = base
        self.ui_port = free_port()
        config = base / "kiosk.toml"
        config.write_text(
            f"""[camera]
source = "demo"
width = 1280
height = 720
fps = {fps}

[store]
path = {json.dumps(str(base / "store"))}
size_mib = 128

[ui]
port = {self.ui_port}

[delivery]
port = {free_port()}

[staff]
port = {free_port()}
accounts_path = {json.dumps(str(base / "staff-accounts.json"))}

[audit]
path = {json.dumps(str(base / "audit"))}
"""
        )
        self.log = base / "kiosk.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "appliance", "run", "--config", str(config), "--log-level", "WARNING"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the kiosk exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                if self.request("GET", "/api/session")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the kiosk did not become ready: {self.log_tail()}")

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]

    def connection(self, timeout: float = 30.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.ui_port, timeout=timeout)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        conn = self.connection()
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {} if body is None else {"Content-Type": "application/json"}
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            return response.status, json.loads(payload) if payload else None
        finally:
            conn.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _stream(server: KioskServer, query: str, warmup: float, seconds: float) -> dict[str, Any]:
    """One preview stream: parts per second at the client, and the CPU of the relay and of the worker."""
    conn = server.connection()
    try:
        conn.request("GET", f"/api/session/preview.mjpg{query}")
        response = conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"preview answered {response.status}: {response.read()[:200]!r}")
        read_part(response)  # the stream is up; the worker's first frame is made
        main, workers = server.proc.pid, child_pids(server.proc.pid)
        wall0, client0 = time.monotonic(), time.process_time()
        cpu0 = cpu_seconds(main), sum(cpu_seconds(p) for p in workers)
        count = count_parts(response, warmup=warmup, seconds=seconds)
        wall, client = time.monotonic() - wall0, time.process_time() - client0
        cpu1 = cpu_seconds(main), sum(cpu_seconds(p) for p in workers)
        status, guidance = server.request("GET", "/api/session/guidance")
        return {
            "fps": round(count.fps, 1),
            "slowest_second_frames": count.per_second_min,
            "jpeg_bytes_median": count.bytes_median,
            "relay_cores": round((cpu1[0] - cpu0[0]) / wall, 3),
            "worker_cores": round((cpu1[1] - cpu0[1]) / wall, 3),
            "client_cores": round(client / wall, 3),  # this benchmark's own HTTP client
            "guidance_fresh": bool(status == 200 and guidance and guidance.get("fresh")),
        }
    finally:
        conn.close()


def _delete_during_stream(server: KioskServer) -> float:
    """Milliseconds from Delete now (sent while the stream runs) to the end of the stream at the client."""
    conn = server.connection()
    try:
        conn.request("GET", "/api/session/preview.mjpg")
        response = conn.getresponse()
        for _ in range(5):
            read_part(response)
        t0 = time.monotonic()
        status, _body = server.request("POST", "/api/session/delete", {})
        if status != 200:
            raise RuntimeError(f"Delete now answered {status}")
        while read_part(response) is not None:
            pass
        return (time.monotonic() - t0) * 1000
    finally:
        conn.close()


def client_preview(
    *, seconds: float = 6.0, warmup: float = 1.0, fps: float = 30.0, background: str = "studio-grey"
) -> dict[str, Any]:
    """The live preview at an HTTP client of the real kiosk (see the module docstring)."""
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="kiosk-bench-client-") as tmp:
        server = KioskServer(Path(tmp), fps=fps)
        try:
            for path in ("/api/session", "/api/session/consent"):
                status, body = server.request("POST", path, {"accept": True} if "consent" in path else {})
                if status not in (200, 201):
                    raise RuntimeError(f"{path} answered {status}: {body}")
            guided = _stream(server, "", warmup, seconds)
            replaced = _stream(server, f"?background={background}", warmup, seconds)
            delete_ms = _delete_during_stream(server)
        finally:
            server.stop()
    return {
        "camera": f"demo 1280x720 at {fps:g} fps",
        "seconds": seconds,
        "guided": guided,
        "background": {"name": background, **replaced},
        "delete_to_stream_end_ms": round(delete_ms, 1),
        # Before and after: the machine's other work moves these figures (BENCHMARKS.md, issue 14).
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


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
        "preview": "1280x720 demo camera at 60 fps, the facade in process, pose guidance at up to 10 Hz",
        "full_visit_every": full_every,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.bench", description=__doc__)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--frames", type=int, default=30, help="preview frames per session")
    parser.add_argument("--full-every", type=int, default=10, help="every Nth session captures and delivers")
    parser.add_argument("--client-seconds", type=float, default=6.0, help="preview counted at the client (s)")
    parser.add_argument("--client-fps", type=float, default=30.0, help="the demo camera's rate for that")
    parser.add_argument("--client-only", action="store_true", help="only the preview at the client")
    parser.add_argument("--no-client", action="store_true", help="skip the preview at the client")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {}
    if not args.client_only:
        result = run(args.sessions, args.frames, args.full_every)
    if not args.no_client:
        client = client_preview(seconds=args.client_seconds, fps=args.client_fps)
        result["client_preview"] = client
        result["preview_client_fps"] = client["guided"]["fps"]
        result["preview_client_background_fps"] = client["background"]["fps"]
        result["preview_relay_cores"] = max(
            client["guided"]["relay_cores"], client["background"]["relay_cores"]
        )
        targets = result.setdefault("targets", {})
        targets.update(
            {
                "preview_fps_min": CLIENT_FPS_TARGET,
                "preview_background_fps_min": CLIENT_BACKGROUND_FPS_TARGET,
                "preview_relay_cores_max": RELAY_CORES_MAX,
            }
        )
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
