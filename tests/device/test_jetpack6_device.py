"""What only a Jetson on JetPack 6 can settle (issue 19; PROVISIONING.md "Device checklist").

Every test runs the real thing on a provisioned device (``sudo make test-device`` after ``apply``) and is
skipped elsewhere with the reason: the exact set of nodes CUDA opens, CUDA inside the kiosk's own sandbox
(cgroup v2 device BPF, PrivateUsers=, groups), DevicePolicy= really enforced on the L4T kernel, the kiosk
browser (cage on Tegra DRM, the Chromium snap) running, Argus serving one process per session in turn,
and snapd's version on JetPack 6. Nothing here is mocked.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from provisioning.render import BROWSER_UNIT, KIOSK_UNIT, unit_path
from provisioning.target import GPU_DEVICE_PATTERNS, discover_devices, version_tuple

pytestmark = pytest.mark.device

ROOT = Path("/")
UNIT_FILE = Path(str(unit_path(KIOSK_UNIT)))
# Creates a CUDA context on device 0 and frees a buffer: the smallest thing that opens every node CUDA needs.
CUDA_PROBE = (
    "import pycuda.driver as c; c.init(); d = c.Device(0); ctx = d.make_context(); "
    "b = c.mem_alloc(1 << 20); b.free(); ctx.pop(); print('cuda ok', d.name())"
)
# Properties of the kiosk unit that systemd-run cannot take or that would change what is tested.
_NOT_FOR_SYSTEMD_RUN = {
    "Type",
    "NotifyAccess",
    "ExecStart",
    "ExecStartPre",
    "WatchdogSec",
    "TimeoutStartSec",
    "TimeoutStopSec",
    "Restart",
    "RestartSec",
    "StateDirectory",
    "StateDirectoryMode",
    "ConfigurationDirectory",
    "ConfigurationDirectoryMode",
}


def _require_jetson() -> None:
    if not Path("/etc/nv_tegra_release").is_file():
        pytest.skip("not a Jetson (no /etc/nv_tegra_release): run make test-device on the device")


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (systemd-run with the kiosk's User= and sandbox): sudo make test-device")


def _kiosk_properties() -> tuple[str, list[str]]:
    """(the venv's python, ``-p Key=Value`` for every [Service] setting of the installed kiosk unit)."""
    if not UNIT_FILE.is_file():
        pytest.skip(f"{UNIT_FILE} is not installed: run python -m provisioning apply first")
    text = UNIT_FILE.read_text(encoding="utf-8")
    properties: list[str] = []
    python = ""
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
            continue
        key, _, value = line.partition("=")
        if section != "[Service]":
            continue
        if key == "ExecStart":
            python = value.split()[0]
        if key not in _NOT_FOR_SYSTEMD_RUN:
            properties += ["-p", f"{key}={value}"]
    return python, properties


def _run_in_kiosk_sandbox(*argv: str) -> subprocess.CompletedProcess[str]:
    _python, properties = _kiosk_properties()
    return subprocess.run(
        ["systemd-run", "--wait", "--pipe", "--collect", "--quiet", *properties, *argv],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_cuda_works_inside_the_kiosk_sandbox() -> None:
    # The point of issue 19 #1: doctor runs as root outside the sandbox; this runs as the service does.
    _require_jetson()
    _require_root()
    python, _ = _kiosk_properties()
    done = _run_in_kiosk_sandbox(python, "-c", CUDA_PROBE)
    assert done.returncode == 0 and "cuda ok" in done.stdout, done.stderr[-2000:]


def test_every_node_cuda_opens_is_allowed() -> None:
    _require_jetson()
    _require_root()
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed (apt-get install strace)")
    done = subprocess.run(
        [strace, "-f", "-e", "trace=openat", "-o", "/dev/stderr", sys.executable, "-c", CUDA_PROBE],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if "cuda ok" not in done.stdout:
        pytest.skip(f"CUDA does not work for {sys.executable} here: {done.stderr[-300:]}")
    opened = set(re.findall(r'openat\([^,]+, "(/dev/[^"]+)"[^)]*\) = \d', done.stderr))
    gpu = {p for p in opened if not p.startswith(("/dev/null", "/dev/urandom", "/dev/shm", "/dev/pts"))}
    allowed = set(discover_devices(ROOT, GPU_DEVICE_PATTERNS))
    assert gpu <= allowed, f"CUDA opened nodes provisioning does not allow: {sorted(gpu - allowed)}"


def test_device_policy_is_enforced_on_this_kernel() -> None:
    # cgroup v2 device control is a BPF program; an L4T kernel without CONFIG_CGROUP_BPF would ignore it.
    _require_jetson()
    _require_root()
    if not Path("/sys/fs/cgroup/cgroup.controllers").is_file():
        pytest.fail("not a cgroup v2 (unified) hierarchy: DevicePolicy= and MemorySwapMax= need it")
    done = subprocess.run(
        ["systemd-run", "--wait", "--pipe", "--collect", "--quiet", "-p", "DevicePolicy=closed",
         "/bin/sh", "-c", "exec 3<>/dev/nvmap && echo opened"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "opened" not in done.stdout, "DevicePolicy=closed did not stop /dev/nvmap"


def test_kiosk_browser_is_running_on_the_panel() -> None:
    _require_jetson()
    if not Path(str(unit_path(BROWSER_UNIT))).is_file():
        pytest.skip("browser unit not installed (--no-browser)")
    state = subprocess.run(
        ["systemctl", "is-active", BROWSER_UNIT], capture_output=True, text=True, check=False
    ).stdout.strip()
    assert state == "active", f"{BROWSER_UNIT} is {state}: journalctl -u {BROWSER_UNIT} (cage on Tegra DRM?)"


def test_snapd_is_one_jetpack6_can_run() -> None:
    # snapd >= 2.70 broke every snap (Chromium included) on JetPack 6 kernels
    # (jetsonhacks/jetson-orin-setup#5, ARK-Electronics/ark_jetson_kernel#36): revert and hold it.
    _require_jetson()
    snap = shutil.which("snap")
    if snap is None:
        pytest.skip("snapd is not installed")
    out = subprocess.run([snap, "version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"^snapd\s+(\S+)", out, re.MULTILINE)
    assert match is not None, out
    release = Path("/etc/nv_tegra_release").read_text(encoding="utf-8")
    if release.startswith("# R36"):
        assert version_tuple(match.group(1)) < (2, 70), (
            f"snapd {match.group(1)} on JetPack 6: `snap revert snapd` and `snap refresh --hold snapd`"
        )


def test_argus_serves_one_process_per_session_in_turn() -> None:
    # Each guest's session worker is a new process that opens the camera and exits at WIPE; nvargus-daemon
    # must hand the sensor to the next process every time (a stale session would lock the camera).
    _require_jetson()
    if not Path("/tmp/argus_socket").exists():  # nvargus-daemon's socket
        pytest.skip("nvargus-daemon is not running (no CSI camera stack)")
    code = (
        "from appliance.camera.csi_source import CsiFrameSource\n"
        "from appliance.config import CsiCameraConfig\n"
        "s = CsiFrameSource(CsiCameraConfig(source='csi'))\n"
        "s.open(); [s.read() for _ in range(5)]; s.close(); print('frames ok')\n"
    )
    repo = Path(__file__).resolve().parents[2]
    for session in range(3):
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=repo, check=False
        )
        if session == 0 and "is not available" in done.stderr:
            pytest.skip("no nvarguscamerasrc / CSI sensor on this device")
        assert "frames ok" in done.stdout, f"session {session}: {done.stderr[-1000:]}"
