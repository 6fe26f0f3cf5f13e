"""Shared helpers of the fleet tests (Mender OTA, ansible-pull, Prometheus): the Debian tools they drive,
system files they must place and put back, tiny test packages, a simulated kiosk for the pause protocol, and
ending a process tree the way a power cut would (everything at once, SIGKILL)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FLEET = REPO / "fleet"
PYTHON = REPO / ".venv" / "bin" / "python"


def need_tools(*tools: str, root: bool = False) -> None:
    """Skip the calling test, with the Debian package to install, when a tool is missing (or not root)."""
    packages = {
        "mender-artifact": "mender-artifact",
        "mender": "mender-client",
        "prometheus": "prometheus",
        "promtool": "prometheus",
        "prometheus-node-exporter": "prometheus-node-exporter",
        "ansible-pull": "ansible-core",
        "gpg": "gnupg",
        "git": "git",
        "dpkg-deb": "dpkg",
        "flock": "util-linux",
    }
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        wanted = " ".join(sorted({packages.get(t, t) for t in missing}))
        pytest.skip(f"needs {', '.join(missing)} (apt-get install {wanted}; make system-deps)")
    if root and os.geteuid() != 0:
        pytest.skip("needs root: installs a test package with dpkg and a Mender Update Module")


@contextlib.contextmanager
def placed_file(path: Path, content: bytes, mode: int = 0o644) -> Iterator[Path]:
    """Put ``content`` at a system ``path`` for the duration; afterwards restore what was there (or
    remove the file and any directory this created)."""
    before = path.read_bytes() if path.exists() else None
    before_mode = path.stat().st_mode & 0o7777 if path.exists() else None
    created = []
    parent = path.parent
    while not parent.exists():
        created.append(parent)
        parent = parent.parent
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    path.chmod(mode)
    try:
        yield path
    finally:
        if before is None:
            path.unlink(missing_ok=True)
            for directory in created:
                with contextlib.suppress(OSError):
                    directory.rmdir()
        else:
            path.write_bytes(before)
            assert before_mode is not None
            path.chmod(before_mode)


def build_deb(out: Path, package: str, version: str, *, marker: str, block_flag: Path, started: Path) -> Path:
    """A tiny ``Architecture: all`` package installing ``/usr/share/<package>/VERSION`` (= ``marker``).

    Its postinst stands still while ``block_flag`` exists (after touching ``started``): the moment to cut
    the power in the middle of dpkg's run."""
    tree = out / f"{package}-{version}"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "usr" / "share" / package).mkdir(parents=True)
    (tree / "usr" / "share" / package / "VERSION").write_text(marker + "\n")
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: all\nSection: misc\nPriority: optional\n"
        "Maintainer: Headshot kiosk tests <tests@example.invalid>\n"
        "Description: OTA self-test package of the headshot-kiosk fleet tests\n"
    )
    postinst = tree / "DEBIAN" / "postinst"
    postinst.write_text(
        "#!/bin/sh\nset -e\n"
        f'if [ -e "{block_flag}" ]; then\n  touch "{started}"\n'
        f'  while [ -e "{block_flag}" ]; do sleep 0.1; done\nfi\nexit 0\n'
    )
    postinst.chmod(0o755)
    deb = out / f"{package}_{version}_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(deb)],
        check=True,
        capture_output=True,
    )
    return deb


def dpkg(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """``dpkg ARGS`` as the tests' own setup/teardown step, waiting while another dpkg (a parallel test of
    the Debian package) holds the lock."""
    deadline = time.monotonic() + timeout
    while True:
        result = subprocess.run(["dpkg", *args], capture_output=True, text=True, check=False)
        if result.returncode == 0 or "lock" not in result.stderr or time.monotonic() > deadline:
            return result
        time.sleep(1)


def installed_version(package: str) -> tuple[str, str] | None:
    """``(status abbreviation, version)`` from dpkg's database, None when not installed."""
    result = subprocess.run(
        ["dpkg-query", "--show", "--showformat=${db:Status-Abbrev}|${Version}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return None
    status, _, version = result.stdout.partition("|")
    if status.strip()[1:2] in ("n", "c", ""):
        return None
    return status.strip(), version.strip()


def kill_session(sid: int) -> None:
    """SIGKILL every process of session ``sid`` at once: what a power cut does to a process tree, also to
    children that moved to their own process group."""
    for _ in range(5):
        victims = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[3]) == sid:  # field 6 of /proc/PID/stat: the session id
                victims.append(int(entry.name))
        if not victims:
            return
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll ``predicate()`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class SimulatedKiosk:
    """The kiosk's half of the update pause protocol (appliance.maintenance), on a loopback port.

    ``/metrics`` reports ``headshot_kiosk_update_ready 1`` while the pause file exists and no visit is in
    progress (``visit_in_progress``), and answers 500 while the installed test package says "broken" — a
    release that cannot serve, for the health check to catch."""

    def __init__(self, pause_file: Path, version_file: Path) -> None:
        self.pause_file = pause_file
        self.version_file = version_file
        self.visit_in_progress = False
        kiosk = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/metrics":
                    self.send_error(404)
                    return
                try:
                    broken = "broken" in kiosk.version_file.read_text()
                except OSError:
                    broken = False
                if broken:
                    self.send_error(500)
                    return
                ready = kiosk.pause_file.exists() and not kiosk.visit_in_progress
                body = (
                    "# TYPE headshot_kiosk_update_ready gauge\n"
                    f"headshot_kiosk_update_ready {1 if ready else 0}\n"
                    "# TYPE headshot_kiosk_session_active gauge\n"
                    f"headshot_kiosk_session_active {1 if kiosk.visit_in_progress else 0}\n"
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="simulated-kiosk", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/metrics"

    def __enter__(self) -> SimulatedKiosk:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
