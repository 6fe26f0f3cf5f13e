"""``doctor``: audit the device's privacy posture, one check per promise, each OK / WARN / FAIL / SKIP with a
one-line fix. Exit status is non-zero when any check FAILs.

Every file is read under a root (``/`` on the device; a fake tree in tests), so the same checks run on a
staged image. Checks that need the live system (the running service, the clock, opening the camera) are
SKIPped on another root. On a CPU-only CI machine the report is still meaningful: it says what is missing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import json
import os
import platform
import re
import stat
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path

from appliance.clock import FIX_HINT as CLOCK_FIX_HINT
from appliance.clock import clock_evidence, clock_problem
from appliance.config import (
    ConfigError,
    CsiCameraConfig,
    DemoCameraConfig,
    KioskConfig,
    V4l2CameraConfig,
    is_loopback,
    load_config,
)
from appliance.hardening import dumpable_state
from appliance.tlscert import RENEW_WARN_DAYS, days_until_expiry
from provisioning.configfile import CONFIG_PATH
from provisioning.cups import CUPS_DROPIN, CUPS_FILES_CONF, CUPSD_CONF, PRIVACY_DIRECTIVES
from provisioning.render import KIOSK_UNIT, NVZRAM_UNIT, unit_path, zram_size_expressions
from provisioning.runner import Runner
from provisioning.target import (
    GPU_DEVICE_PATTERNS,
    SERVICE_USER,
    discover_devices,
    host_path,
    installed_packages,
    is_live_root,
    kernel_supports_noswap,
    kernel_version,
    lookup_id,
    secretmem_default_on,
    version_tuple,
)

__all__ = ["EXPOSURE_LIMIT", "Check", "Status", "exit_code", "format_json", "format_text", "run_doctor"]

EXPOSURE_LIMIT = 2.0
"""``systemd-analyze security`` exposure at or below which the unit check is OK (P1-8 gate)."""
# A due ACME renewal may wait this long for the kiosk to be online before doctor calls it overdue.
_RENEWAL_GRACE_DAYS = 3
# systemd-analyze security --offline= exists since systemd 250; Ubuntu 22.04 (JetPack 6) has 249.
_OFFLINE_ANALYSIS_SINCE = 250
# The unit names memfd_secret in SystemCallFilter= (known to systemd's syscall tables since 249) and
# uses ProtectProc= (247): an older systemd cannot load it.
_UNIT_NEEDS_SYSTEMD = 249
_REQUIRED_DIRECTIVES = {
    "Type": "notify",
    "MemorySwapMax": "0",
    "LimitCORE": "0",
    "UMask": "0077",
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "DevicePolicy": "closed",
    "SystemCallArchitectures": "native",
}


class Status(str, Enum):
    """Outcome of one check. SKIP: not applicable here (e.g. a live-only check on a staged root)."""

    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True)
class Check:
    """One line of the report. ``fix`` is empty for OK and SKIP."""

    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class _Context:
    root: Path
    live: bool
    runner: Runner
    kernel: str
    config: KioskConfig | None
    now: dt.datetime

    def path(self, device_path: str | os.PathLike[str]) -> Path:
        return host_path(self.root, str(device_path))

    def read(self, device_path: str) -> str | None:
        try:
            return self.path(device_path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None


_APPLY = "run `python -m provisioning apply`"


# ------------------------------------------------------------------------------------------- helpers


def _ini_values(text: str, section: str) -> dict[str, list[str]]:
    """``Key=Value`` assignments of one section of a systemd-style INI file (later ones append)."""
    values: dict[str, list[str]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            continue
        if current == section and "=" in line:
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def _effective(ctx: _Context, name: str, section: str, key: str) -> str | None:
    """The value systemd uses for ``key`` of ``/etc/systemd/<name>.conf`` after its drop-ins.

    systemd reads the main file, then every ``<name>.conf.d/*.conf`` from /usr/lib, /run and /etc sorted by
    file name (a name in /etc masks the same name in /run and /usr/lib); the last assignment wins.
    """
    value = None
    main = ctx.read(f"/etc/systemd/{name}.conf")
    if main is not None:
        found = _ini_values(main, section).get(key)
        value = found[-1] if found else value
    dropins: dict[str, Path] = {}
    for base in (
        f"/usr/lib/systemd/{name}.conf.d",
        f"/run/systemd/{name}.conf.d",
        f"/etc/systemd/{name}.conf.d",
    ):
        directory = ctx.path(base)
        if directory.is_dir():
            for file in directory.glob("*.conf"):
                dropins[file.name] = file  # later bases win for the same name
    for file_name in sorted(dropins):
        try:
            found = _ini_values(dropins[file_name].read_text(encoding="utf-8"), section).get(key)
        except OSError:
            continue
        if found:
            value = found[-1]
    return value


def _unit_values(ctx: _Context) -> dict[str, list[str]] | None:
    text = ctx.read(str(unit_path(KIOSK_UNIT)))
    return None if text is None else _ini_values(text, "Service")


# --------------------------------------------------------------------------------------------- checks


def _check_versions(ctx: _Context) -> Check:
    py = sys.version_info
    parts = [f"Python {py.major}.{py.minor}.{py.micro}", f"kernel {ctx.kernel}"]
    tegra = ctx.read("/etc/nv_tegra_release")
    if tegra:
        match = re.search(r"R(\d+) \(release\), REVISION: ([\d.]+)", tegra)
        if match:
            parts.append(f"L4T {match.group(1)}.{match.group(2)}")
    else:
        parts.append("not a Jetson (no /etc/nv_tegra_release)")
    if py < (3, 10):
        return Check("versions", Status.FAIL, ", ".join(parts), "use Python >= 3.10 (JetPack 6 or newer)")
    return Check("versions", Status.OK, ", ".join(parts))


def _check_swap(ctx: _Context) -> Check:
    text = ctx.read("/proc/swaps")
    if text is None:
        return Check("swap", Status.WARN, "cannot read /proc/swaps", "check swap with `swapon --show`")
    devices = [line.split()[0] for line in text.splitlines()[1:] if line.strip()]
    if not devices:
        return Check("swap", Status.OK, "no swap active")
    bad = []
    for device in devices:
        match = re.fullmatch(r"/dev/(zram\d+)", device)
        if match is None:
            bad.append(f"{device} (disk)")
            continue
        backing = ctx.read(f"/sys/block/{match.group(1)}/backing_dev")
        if backing is not None and backing.strip() not in ("none", ""):
            bad.append(f"{device} (zram with backing device {backing.strip()})")
    if bad:
        return Check(
            "swap",
            Status.FAIL,
            "swap can reach disk: " + ", ".join(bad),
            f"`swapoff --all`, then {_APPLY} (masks swap units)",
        )
    return Check("swap", Status.OK, f"zram only, no backing device: {', '.join(devices)}")


def _check_store(ctx: _Context) -> Check:
    if ctx.config is None:
        return Check("ram-store", Status.SKIP, "no valid config")
    store = str(ctx.config.store.path)
    unit = _unit_values(ctx)
    if unit is None:
        return Check("ram-store", Status.FAIL, f"{KIOSK_UNIT} is not installed", _APPLY)
    entries = [e for e in unit.get("TemporaryFileSystem", []) if e.split(":", 1)[0] == store]
    if not entries:
        return Check("ram-store", Status.FAIL, f"the unit mounts no tmpfs at {store}", _APPLY)
    has_noswap = "noswap" in entries[-1].split(":", 1)[-1].split(",")
    detail = f"tmpfs at {store}"
    if ctx.live:
        mounted = _service_store_mount(ctx, store)
        if mounted:
            detail += f" ({mounted})"
    if kernel_supports_noswap(ctx.kernel):
        if not has_noswap:
            return Check("ram-store", Status.WARN, detail + " without noswap", _APPLY)
        return Check("ram-store", Status.OK, detail + " with noswap")
    return Check(
        "ram-store",
        Status.WARN,
        detail + f"; kernel {ctx.kernel} has no tmpfs noswap (Linux >= 6.4)",
        "keep swap off (swap check) or move to JetPack 7 (kernel 6.8)",
    )


def _main_pid(ctx: _Context) -> int | None:
    result = ctx.runner.query(["systemctl", "show", "--property=MainPID", "--value", KIOSK_UNIT])
    text = result.stdout.strip()
    if result.returncode != 0 or not text.isdigit() or text == "0":
        return None
    return int(text)


def _service_store_mount(ctx: _Context, store: str) -> str | None:
    pid = _main_pid(ctx)
    if pid is None:
        return None
    try:
        lines = Path(f"/proc/{pid}/mountinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) > 4 and fields[4] == store:
            return "mounted in the running service: " + " ".join(right.split()[:1] + right.split()[2:3])
    return "not mounted in the running service"


def _check_secretmem(ctx: _Context) -> Check:
    major_minor = kernel_version(ctx.kernel)
    if ctx.live:
        from appliance.secretmem import memfd_secret_unavailable_reason  # noqa: PLC0415 - probes the kernel

        reason = memfd_secret_unavailable_reason()
        if reason is None:
            return Check("memfd-secret", Status.OK, "memfd_secret available for session keys")
    else:
        reason = None
        cmdline = ctx.read("/proc/cmdline") or ""
        if major_minor < (5, 14):
            reason = "kernel older than 5.14"
        elif not secretmem_default_on(ctx.kernel) and "secretmem.enable=1" not in cmdline.split():
            reason = "not enabled on the kernel command line"
        if reason is None:
            return Check("memfd-secret", Status.OK, f"kernel {ctx.kernel} provides memfd_secret")
    if (5, 14) <= major_minor < (6, 5):
        return Check(
            "memfd-secret",
            Status.WARN,
            f"secretmem.enable=1 needed on kernel {ctx.kernel}; session keys fall back to mlock ({reason})",
            "add secretmem.enable=1 to APPEND in /boot/extlinux/extlinux.conf and reboot",
        )
    return Check(
        "memfd-secret",
        Status.WARN,
        f"memfd_secret unavailable ({reason}); session keys use mlock + MADV_DONTDUMP",
        "use a kernel >= 6.5 (JetPack 7) for memfd_secret",
    )


def _check_core_pattern(ctx: _Context) -> Check:
    pattern = ctx.read("/proc/sys/kernel/core_pattern")
    persistent = ctx.path("/etc/sysctl.d/60-headshot-kiosk.conf").is_file()
    if pattern is None:
        return Check(
            "core-pattern",
            Status.WARN,
            "cannot read kernel.core_pattern",
            "check `sysctl kernel.core_pattern`",
        )
    pattern = pattern.strip()
    note = "" if persistent else " (not persistent: no sysctl drop-in)"
    if pattern == "|/bin/false":
        status = Status.OK if persistent else Status.WARN
        return Check(
            "core-pattern", status, f"core dumps discarded (|/bin/false){note}", "" if persistent else _APPLY
        )
    if pattern.startswith("|") and "systemd-coredump" in pattern:
        storage = (_effective(ctx, "coredump", "Coredump", "Storage") or "external").lower()
        if storage == "none":
            return Check("core-pattern", Status.WARN, f"systemd-coredump with Storage=none{note}", _APPLY)
        return Check(
            "core-pattern", Status.FAIL, f"systemd-coredump stores dumps (Storage={storage})", _APPLY
        )
    if pattern.startswith("|"):
        handler = pattern[1:].split()[0]
        return Check(
            "core-pattern", Status.FAIL, f"core dumps piped to {handler} (e.g. apport keeps them)", _APPLY
        )
    return Check(
        "core-pattern",
        Status.WARN,
        f"core files written as {pattern!r} for dumpable processes (the kiosk's are not)",
        _APPLY,
    )


def _check_coredump_storage(ctx: _Context) -> Check:
    storage = (_effective(ctx, "coredump", "Coredump", "Storage") or "external").lower()
    size = _effective(ctx, "coredump", "Coredump", "ProcessSizeMax")
    if storage == "none":
        return Check(
            "coredump-storage",
            Status.OK,
            f"systemd-coredump Storage=none, ProcessSizeMax={size or 'default'}",
        )
    return Check("coredump-storage", Status.WARN, f"systemd-coredump Storage={storage}", _APPLY)


def _check_journald(ctx: _Context) -> Check:
    storage = (_effective(ctx, "journald", "Journal", "Storage") or "auto").lower()
    persistent_dir = ctx.path("/var/log/journal")
    old = list(persistent_dir.rglob("*.journal*")) if persistent_dir.is_dir() else []
    forward = (_effective(ctx, "journald", "Journal", "ForwardToSyslog") or "").lower()
    syslog = ctx.path("/etc/rsyslog.conf").is_file() and forward not in ("no", "false", "0")
    if storage == "persistent" or (storage == "auto" and persistent_dir.is_dir()):
        return Check("journald", Status.FAIL, f"journal written to disk (Storage={storage})", _APPLY)
    if storage != "volatile":
        return Check(
            "journald", Status.WARN, f"Storage={storage}: RAM only while /var/log/journal is absent", _APPLY
        )
    if old:
        return Check(
            "journald",
            Status.WARN,
            f"Storage=volatile, but {len(old)} old journal files remain in /var/log/journal",
            "remove them: `rm -r /var/log/journal` (older logs, not the kiosk's)",
        )
    if syslog:
        return Check(
            "journald", Status.WARN, "Storage=volatile, but messages are forwarded to rsyslog (disk)", _APPLY
        )
    return Check("journald", Status.OK, "Storage=volatile (logs in RAM only)")


def _check_unit(ctx: _Context) -> Check:
    unit = _unit_values(ctx)
    if unit is None:
        return Check("unit-hardening", Status.FAIL, f"{KIOSK_UNIT} is not installed", _APPLY)
    missing = [
        f"{key}={want}" for key, want in _REQUIRED_DIRECTIVES.items() if unit.get(key, [None])[-1] != want
    ]
    if not any("memfd_secret" in v for v in unit.get("SystemCallFilter", [])):
        missing.append("SystemCallFilter=... memfd_secret")
    private_tmp = "/tmp"  # noqa: S108 - the unit's own tmpfs, not the shared /tmp
    if not any(e.split(":", 1)[0] == private_tmp for e in unit.get("TemporaryFileSystem", [])):
        missing.append("TemporaryFileSystem=/tmp")
    if unit.get("PrivateTmp", ["no"])[-1] in ("yes", "true", "1"):
        missing.append("PrivateTmp=no (disk-backed /tmp on systemd <= 255)")
    if missing:
        return Check("unit-hardening", Status.FAIL, "missing: " + ", ".join(missing), _APPLY)
    return Check("unit-hardening", Status.OK, f"{len(_REQUIRED_DIRECTIVES) + 2} required directives present")


def systemd_version(ctx: _Context) -> int | None:
    """The target's systemd version: ``systemctl --version`` on the live device; on another root the
    version in ``libsystemd-shared-<N>.so``'s name, else the dpkg database; ``None`` if unknown."""
    if ctx.live:
        result = ctx.runner.query(["systemctl", "--version"])
        match = re.match(r"systemd (\d+)", result.stdout)
        return int(match.group(1)) if match else None
    for base in ("/usr/lib/systemd", "/lib/systemd"):
        directory = ctx.path(base)
        if directory.is_dir():
            for lib in sorted(directory.glob("libsystemd-shared-*.so")):
                match = re.fullmatch(r"libsystemd-shared-(\d+)(?:[.-].*)?\.so", lib.name)
                if match:
                    return int(match.group(1))
    version = version_tuple((installed_packages(ctx.root) or {}).get("systemd", ""))
    return version[0] if version else None


def _check_systemd(ctx: _Context) -> Check:
    version = systemd_version(ctx)
    if version is None:
        return Check("systemd", Status.SKIP, "systemd version of this root unknown")
    if version < _UNIT_NEEDS_SYSTEMD:
        return Check(
            "systemd",
            Status.FAIL,
            f"systemd {version} cannot load the kiosk unit (needs >= {_UNIT_NEEDS_SYSTEMD})",
            "use JetPack 6 (Ubuntu 22.04, systemd 249) or newer",
        )
    limits = []
    if version < _OFFLINE_ANALYSIS_SINCE:
        limits.append("unit-exposure scores the loaded unit (offline analysis needs 250)")
    detail = f"systemd {version}" + (": " + "; ".join(limits) if limits else "")
    return Check("systemd", Status.OK, detail)


def _check_exposure(ctx: _Context) -> Check:
    unit = ctx.path(str(unit_path(KIOSK_UNIT)))
    if not unit.is_file():
        return Check("unit-exposure", Status.SKIP, f"{KIOSK_UNIT} is not installed")
    version = systemd_version(ctx)
    if ctx.live and version is not None and version < _OFFLINE_ANALYSIS_SINCE:
        # systemd 249 has no --offline: score the unit systemd has loaded (after daemon-reload), which is
        # what runs anyway (systemd-analyze(1), "security [UNIT...]").
        argv = ["systemd-analyze", "security", "--no-pager", KIOSK_UNIT]
        how = "loaded unit"
    else:
        argv = ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)]
        how = "unit file"
    result = ctx.runner.query(argv)
    if result.returncode == 127:
        return Check("unit-exposure", Status.SKIP, "systemd-analyze is not installed")
    score = parse_exposure(result.stdout + result.stderr)
    if score is None:
        if "--offline" in " ".join(argv) and "offline" in (result.stderr + result.stdout).lower():
            return Check(
                "unit-exposure",
                Status.SKIP,
                "this systemd-analyze cannot score a unit file (--offline needs systemd >= 250); "
                "run doctor on the device",
            )
        return Check(
            "unit-exposure",
            Status.WARN,
            "systemd-analyze gave no score",
            "run `systemd-analyze security` by hand",
        )
    if score <= EXPOSURE_LIMIT:
        return Check("unit-exposure", Status.OK, f"exposure {score:.1f} (limit {EXPOSURE_LIMIT}, {how})")
    return Check("unit-exposure", Status.FAIL, f"exposure {score:.1f} > {EXPOSURE_LIMIT}", _APPLY)


def _groups(ctx: _Context) -> dict[str, tuple[int, tuple[str, ...]]]:
    """``/etc/group`` of the root: name -> (gid, members)."""
    groups: dict[str, tuple[int, tuple[str, ...]]] = {}
    for line in (ctx.read("/etc/group") or "").splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[2].isdigit():
            groups[fields[0]] = (int(fields[2]), tuple(m for m in fields[3].split(",") if m))
    return groups


def _check_gpu_access(ctx: _Context) -> Check:
    """The service, as its own user inside its sandbox, can open every CUDA node: the node is in the
    unit's DeviceAllow= (DevicePolicy=closed hides the rest) and its mode lets one of the service's
    groups read and write it. doctor itself runs as root outside the sandbox, so it must not just open."""
    nodes = discover_devices(ctx.root, GPU_DEVICE_PATTERNS)
    if not nodes:
        return Check("gpu-access", Status.SKIP, "no GPU device nodes (CPU backend only)")
    unit = _unit_values(ctx)
    if unit is None:
        return Check("gpu-access", Status.SKIP, f"{KIOSK_UNIT} is not installed")
    uid = lookup_id(ctx.root, "passwd", SERVICE_USER)
    if uid is None:
        return Check("gpu-access", Status.FAIL, f"user {SERVICE_USER} does not exist", _APPLY)
    groups = _groups(ctx)
    by_gid = {gid: name for name, (gid, _) in groups.items()}
    primary = lookup_id(ctx.root, "group", SERVICE_USER)
    member_of = {name for name, (_, members) in groups.items() if SERVICE_USER in members}
    unit_groups = {g for entry in unit.get("SupplementaryGroups", []) for g in entry.split()}
    effective = {groups[g][0] for g in member_of | unit_groups if g in groups}
    if primary is not None:
        effective.add(primary)
    allowed = {entry.split()[0] for entry in unit.get("DeviceAllow", []) if entry.split()}
    hidden = [n for n in nodes if n not in allowed]
    closed: list[str] = []
    for node in nodes:
        st = ctx.path(node).stat()
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o006 == 0o006 or (st.st_uid == uid and mode & 0o600 == 0o600):
            continue
        if st.st_gid in effective and mode & 0o060 == 0o060:
            continue
        closed.append(f"{node} ({mode:04o} group {by_gid.get(st.st_gid, st.st_gid)})")
    needed = {"video"} | ({"render"} if any(n.startswith("/dev/dri/renderD") for n in nodes) else set())
    missing_groups = sorted(needed - (member_of | unit_groups))
    problems = []
    if hidden:
        problems.append(
            "not in the unit's DeviceAllow= (hidden by DevicePolicy=closed): " + ", ".join(hidden)
        )
    if closed:
        problems.append(f"{SERVICE_USER} may not open: " + ", ".join(closed))
    if missing_groups:
        problems.append(f"{SERVICE_USER} is not in group(s) {', '.join(missing_groups)}")
    if problems:
        backend = ctx.config.engine.backend if ctx.config is not None else "auto"
        effect = "the kiosk fails to start" if backend == "tensorrt" else "the kiosk silently runs on the CPU"
        return Check("gpu-access", Status.FAIL, "; ".join(problems) + f" ({effect})", _APPLY)
    return Check(
        "gpu-access",
        Status.OK,
        f"{len(nodes)} GPU nodes allowed and openable as {SERVICE_USER} "
        f"(groups {', '.join(sorted(member_of | unit_groups))})",
    )


_GSTREAMER_PROBE = "import cv2, sys; sys.stdout.write(cv2.getBuildInformation())"


def _check_opencv(ctx: _Context) -> Check:
    """OpenCV as the service imports it (the unit's interpreter, i.e. the venv) was built with GStreamer:
    PyPI's opencv wheels are not, JetPack's is, and only a --system-site-packages venv without an
    opencv wheel of its own sees JetPack's."""
    unit = _unit_values(ctx)
    exec_start = (unit or {}).get("ExecStart", [""])[-1].split()
    if not exec_start:
        return Check("opencv-gstreamer", Status.SKIP, f"{KIOSK_UNIT} is not installed")
    python = ctx.path(exec_start[0])
    if not python.exists():
        return Check("opencv-gstreamer", Status.SKIP, f"{exec_start[0]} not found under this root")
    result = ctx.runner.query([str(python), "-c", _GSTREAMER_PROBE], timeout=120)
    if result.returncode in (124, 126, 127):
        return Check("opencv-gstreamer", Status.SKIP, f"cannot run {exec_start[0]} here")
    csi = ctx.config is not None and isinstance(ctx.config.camera, CsiCameraConfig)
    if result.returncode != 0:
        return Check(
            "opencv-gstreamer",
            Status.FAIL if csi else Status.WARN,
            "cv2 cannot be imported by the service's interpreter",
            "make VENV_FLAGS=--system-site-packages venv",
        )
    match = re.search(r"^\s*GStreamer:\s*(\w+)", result.stdout, re.MULTILINE)
    if match is not None and match.group(1).upper() == "YES":
        return Check("opencv-gstreamer", Status.OK, "the venv's OpenCV has GStreamer")
    if not csi:
        return Check("opencv-gstreamer", Status.OK, "the venv's OpenCV has no GStreamer (no CSI camera)")
    return Check(
        "opencv-gstreamer",
        Status.FAIL,
        "the venv's OpenCV has no GStreamer: the CSI camera cannot open (a PyPI opencv wheel?)",
        "remove opencv-python* from the venv so JetPack's cv2 (--system-site-packages) is used",
    )


_ZRAM_GENERATOR_BINARIES = (
    "/usr/lib/systemd/system-generators/zram-generator",
    "/lib/systemd/system-generators/zram-generator",
)


def _check_zram_generator(ctx: _Context) -> Check:
    conf = ctx.read("/etc/systemd/zram-generator.conf")
    if conf is None:
        return Check("zram-generator", Status.SKIP, "no zram-generator.conf (swap policy off)")
    version = (installed_packages(ctx.root) or {}).get("systemd-zram-generator")
    present = any(ctx.path(b).exists() for b in _ZRAM_GENERATOR_BINARIES)
    if not version and not present:
        return Check(
            "zram-generator",
            Status.FAIL,
            "zram-generator.conf is installed but systemd-zram-generator is not: no zram swap is made",
            "apt-get install systemd-zram-generator, then " + _APPLY,
        )
    if not version:
        return Check("zram-generator", Status.WARN, "generator present, version unknown", _APPLY)
    upstream = version.split(":", 1)[-1].split("-", 1)[0]
    expression = re.search(r"^\s*zram-size\s*=", conf, re.MULTILINE) is not None
    if expression and not zram_size_expressions(upstream):
        return Check(
            "zram-generator",
            Status.FAIL,
            f"zram-generator {upstream} ignores zram-size (expressions need >= 1.1.0)",
            _APPLY + " (it renders zram-fraction/max-zram-size for this version)",
        )
    return Check("zram-generator", Status.OK, f"zram-generator {upstream} understands the config")


def _check_nvzramconfig(ctx: _Context) -> Check:
    paths = [
        d + "/" + NVZRAM_UNIT
        for d in ("/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")
    ]
    present = [p for p in paths if ctx.path(p).is_file()]
    if not present:
        return Check("nvzramconfig", Status.SKIP, "not an L4T root (no nvzramconfig.service)")
    masked = ctx.path(f"/etc/systemd/system/{NVZRAM_UNIT}").is_symlink()
    dropin = ctx.path(f"/etc/systemd/system/{NVZRAM_UNIT}.d/60-headshot-kiosk.conf").is_file()
    if masked or dropin:
        return Check("nvzramconfig", Status.OK, "L4T's zram swap is neutralised")
    return Check(
        "nvzramconfig",
        Status.FAIL,
        "L4T's nvzramconfig.service makes zram swap outside the kiosk's swap policy",
        _APPLY,
    )


def parse_exposure(text: str) -> float | None:
    """The overall score from ``systemd-analyze security`` output (``Overall exposure level ...: 1.4 OK``)."""
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", text)
    return float(match.group(1)) if match else None


def _check_config(ctx: _Context) -> Check:
    path = ctx.path(str(CONFIG_PATH))
    if not path.is_file():
        return Check("config", Status.FAIL, f"{CONFIG_PATH} is missing", _APPLY)
    try:
        load_config(path)  # what `python -m appliance check-config` runs
    except ConfigError as exc:
        problems = exc.problems
        return Check(
            "config",
            Status.FAIL,
            "check-config: " + "; ".join(problems[:3]) + (" ..." if len(problems) > 3 else ""),
            f"fix {CONFIG_PATH} (python -m appliance check-config {CONFIG_PATH})",
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o007:
        return Check("config", Status.WARN, f"valid, but mode {mode:04o} lets every user read it", _APPLY)
    return Check("config", Status.OK, "valid (check-config)")


def _check_tls(ctx: _Context) -> Check:
    if ctx.config is None:
        return Check("tls", Status.SKIP, "no valid config")
    delivery = ctx.config.delivery
    if delivery.tls_cert_path is None or delivery.tls_key_path is None:
        status = Status.WARN if is_loopback(delivery.host) else Status.FAIL
        return Check(
            "tls",
            status,
            "no TLS certificate: phones cannot download (delivery listens on loopback only)",
            "python -m provisioning tls --import CERT KEY (or --self-signed HOST), then update kiosk.toml",
        )
    from provisioning.tls import TlsError, inspect_certificate, key_matches  # noqa: PLC0415 - cryptography

    cert_path, key_path = ctx.path(str(delivery.tls_cert_path)), ctx.path(str(delivery.tls_key_path))
    try:
        chain = cert_path.read_bytes()
        key = key_path.read_bytes()
        info = inspect_certificate(chain, now=ctx.now)
    except (OSError, TlsError) as exc:
        return Check(
            "tls", Status.FAIL, f"cannot use the certificate or key: {exc}", "python -m provisioning tls ..."
        )
    fix_tls = "python -m provisioning tls --import CERT KEY"
    if stat.S_IMODE(key_path.stat().st_mode) & 0o077:
        return Check(
            "tls",
            Status.FAIL,
            f"{delivery.tls_key_path} is readable by others",
            f"chmod 0600 {delivery.tls_key_path}",
        )
    if not key_matches(chain, key):
        return Check("tls", Status.FAIL, "the key does not belong to the certificate", fix_tls)
    if delivery.public_host not in info.hosts:
        return Check(
            "tls",
            Status.FAIL,
            f"certificate names {', '.join(info.hosts)}, not {delivery.public_host}",
            fix_tls,
        )
    validity = f"valid until {info.not_after:%Y-%m-%d}, {info.days_left} days left"
    if ctx.now > info.not_after:
        return Check("tls", Status.FAIL, f"certificate expired on {info.not_after:%Y-%m-%d}", fix_tls)
    if ctx.now < info.not_before:
        return Check(
            "tls", Status.FAIL, f"certificate not valid before {info.not_before:%Y-%m-%d}", "check the clock"
        )
    if info.days_left < RENEW_WARN_DAYS:
        return Check("tls", Status.WARN, validity, "renew the certificate: " + fix_tls)
    if info.local_ca:
        return Check(
            "tls", Status.WARN, f"local CA ({validity}): phones will show a certificate warning", fix_tls
        )
    return Check("tls", Status.OK, f"{delivery.public_host}, {validity}")


def _check_staff_console(ctx: _Context) -> Check:
    """The staff console's address for phones (provisioning.staffurl), and what stands in a phone's way."""
    if ctx.config is None:
        return Check("staff-console", Status.SKIP, "no valid config")
    from provisioning.staffurl import doctor_check  # noqa: PLC0415 - cryptography

    status, detail, fix = doctor_check(ctx.config, root=ctx.root, now=ctx.now)
    return Check("staff-console", Status(status), detail, fix)


def _check_tls_renewal(ctx: _Context) -> Check:
    """ACME renewal (``cert obtain``): settings, DNS hook, enabled timer, and whether renewal is overdue
    (the kiosk has not been online since it fell due, or the renewal fails)."""
    from provisioning.acme import SETTINGS_PATH, AcmeError, load_settings  # noqa: PLC0415 - cryptography
    from provisioning.render import CERT_RENEW_TIMER  # noqa: PLC0415

    if not ctx.path(str(SETTINGS_PATH)).is_file():
        return Check("tls-renewal", Status.SKIP, "no ACME certificate (an imported or local one)")
    fix_obtain = "python -m provisioning cert obtain --host ... --dns-hook ... (while online)"
    try:
        settings = load_settings(ctx.root)
    except AcmeError as exc:
        return Check("tls-renewal", Status.FAIL, str(exc), fix_obtain)
    hook = ctx.path(settings.dns_hook)
    if not hook.exists():
        # `cert obtain --root DIR` ran the hook where it is, on the machine that staged the root.
        hook = Path(settings.dns_hook)
    if not (hook.is_file() and os.access(hook, os.X_OK)):
        return Check(
            "tls-renewal",
            Status.FAIL,
            f"DNS hook {settings.dns_hook} is missing or not executable: renewal will fail",
            f"restore it (chmod 0700 {settings.dns_hook})",
        )
    timer = ctx.path(f"/etc/systemd/system/{CERT_RENEW_TIMER}")
    enabled = ctx.path(f"/etc/systemd/system/timers.target.wants/{CERT_RENEW_TIMER}")
    if not timer.is_file() or not enabled.is_symlink():
        return Check(
            "tls-renewal",
            Status.FAIL,
            f"{CERT_RENEW_TIMER} is not installed and enabled: the certificate will not be renewed",
            f"systemctl enable --now {CERT_RENEW_TIMER} (or run cert obtain again)",
        )
    if ctx.config is not None and ctx.config.delivery.public_host != settings.host:
        return Check(
            "tls-renewal",
            Status.WARN,
            f"renewal orders {settings.host}, but delivery.public_host is {ctx.config.delivery.public_host}",
            f"set delivery.public_host = {settings.host!r} or run cert obtain for the configured name",
        )
    cert = ctx.config.delivery.tls_cert_path if ctx.config is not None else None
    if cert is None:
        return Check("tls-renewal", Status.WARN, "no certificate configured for delivery", _APPLY)
    try:
        days = days_until_expiry(ctx.path(str(cert)), now=ctx.now)
    except (OSError, ValueError) as exc:
        return Check("tls-renewal", Status.FAIL, f"cannot read {cert}: {exc}", "run cert renew")
    detail = (
        f"{settings.host} via {settings.directory_url}: {days:.0f} days left, "
        f"renews below {settings.renew_days}"
    )
    if days < settings.renew_days - _RENEWAL_GRACE_DAYS:
        return Check(
            "tls-renewal",
            Status.WARN,
            detail + f" (overdue by {settings.renew_days - days:.0f} days: offline, or renewal failing)",
            f"bring the kiosk online and run `python -m provisioning cert renew`; "
            f"journalctl -u {CERT_RENEW_TIMER.replace('.timer', '.service')}",
        )
    return Check("tls-renewal", Status.OK, detail + f"; {CERT_RENEW_TIMER} enabled")


def _check_engine(ctx: _Context) -> Check:
    if ctx.config is None:
        return Check("tensorrt", Status.SKIP, "no valid config")
    engine = ctx.config.engine
    if engine.backend == "onnxruntime":
        return Check("tensorrt", Status.OK, "CPU backend configured (ONNX Runtime)")
    from engine.runtime import tensorrt_available  # noqa: PLC0415

    if not tensorrt_available():
        if engine.backend == "tensorrt":
            return Check(
                "tensorrt",
                Status.FAIL,
                "backend = tensorrt, but TensorRT is not installed",
                "use the JetPack venv (--system-site-packages) or backend = onnxruntime",
            )
        return Check(
            "tensorrt",
            Status.WARN,
            "TensorRT not installed: CPU fallback (ONNX Runtime)",
            "on a Jetson, use a --system-site-packages venv and run build-engines",
        )
    return _check_plans(ctx)


def _check_plans(ctx: _Context) -> Check:
    assert ctx.config is not None
    from engine.errors import EngineError  # noqa: PLC0415
    from engine.models import ALL_MODELS  # noqa: PLC0415
    from engine.plans import REBUILD_COMMAND, plan_path_for, plan_target, verify_plan  # noqa: PLC0415

    try:
        # Imported here first so that a broken install is reported with Python's own reason (a missing
        # libnvinfer, say), which plan_target would replace by "not installed".
        importlib.import_module("tensorrt")
        target = plan_target()  # queried once for every plan
    except (ImportError, EngineError) as exc:
        return Check(
            "tensorrt", Status.FAIL, f"TensorRT installed but unusable: {exc}", "check JetPack / CUDA"
        )
    engine = ctx.config.engine
    problems = []
    for spec in ALL_MODELS:
        plan = ctx.path(str(plan_path_for(engine.plans_dir, spec.name)))
        onnx = ctx.path(str(engine.models_dir / spec.filename))
        try:
            verify_plan(plan, onnx, target)
        except EngineError as exc:
            problems.append(f"{spec.name}: {exc}")
    status = Status.FAIL if engine.backend == "tensorrt" else Status.WARN
    if problems:
        return Check("tensorrt", status, "; ".join(problems), REBUILD_COMMAND)
    return Check(
        "tensorrt",
        Status.OK,
        f"{len(ALL_MODELS)} plans match TensorRT {target.tensorrt_version} on {target.gpu_name} "
        f"({target.multiprocessor_count} SMs)",
    )


def _check_camera(ctx: _Context) -> Check:
    if ctx.config is None:
        return Check("camera", Status.SKIP, "no valid config")
    camera = ctx.config.camera
    if isinstance(camera, DemoCameraConfig):
        return Check(
            "camera",
            Status.WARN,
            "demo camera configured (bundled portraits, no real camera)",
            f'set [camera] source = "v4l2" or "csi" in {CONFIG_PATH}',
        )
    if isinstance(camera, V4l2CameraConfig):
        node = ctx.path(camera.device)
        if not node.exists():
            return Check(
                "camera",
                Status.FAIL,
                f"{camera.device} not present",
                "plug the camera in (or fix [camera] device)",
            )
        if not ctx.live:
            return Check("camera", Status.OK, f"{camera.device} present (not opened: staged root)")
        if not stat.S_ISCHR(node.stat().st_mode):
            return Check(
                "camera", Status.FAIL, f"{camera.device} is not a device node", "fix [camera] device"
            )
        try:
            fd = os.open(node, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            return Check(
                "camera",
                Status.FAIL,
                f"{camera.device} cannot be opened: {exc.strerror}",
                "check the cable and that the video group may open it",
            )
        os.close(fd)
        return Check("camera", Status.OK, f"{camera.device} present and openable")
    if isinstance(camera, CsiCameraConfig):
        if not ctx.live:
            return Check("camera", Status.SKIP, "CSI camera: probed on the live device only")
        result = ctx.runner.query(
            ["gst-inspect-1.0", "--exists", "nvarguscamerasrc"], timeout=camera.probe_timeout_seconds
        )
        if result.returncode != 0:
            return Check(
                "camera",
                Status.FAIL,
                "GStreamer element nvarguscamerasrc missing",
                "install JetPack's GStreamer plugins (nvidia-l4t-gstreamer)",
            )
        return Check("camera", Status.OK, "nvarguscamerasrc available (CSI)")
    path = ctx.path(str(camera.path))
    if path.exists():
        return Check(
            "camera",
            Status.WARN,
            f"{camera.source} source configured (test input, not a camera)",
            f"set a real camera in {CONFIG_PATH}",
        )
    return Check(
        "camera",
        Status.FAIL,
        f"{camera.source} source {camera.path} not found",
        f"fix [camera] path in {CONFIG_PATH}",
    )


def _cups_directives(text: str) -> dict[str, list[str]]:
    """Top-level ``Directive value`` lines of a cupsd.conf-style file (``<Location>``/``<Policy>`` blocks
    skipped), each directive's values in order (cupsd uses the last)."""
    values: dict[str, list[str]] = {}
    depth = 0
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("</"):
            depth = max(0, depth - 1)
            continue
        if line.startswith("<"):
            depth += 1
            continue
        if depth == 0:
            name, _, value = line.partition(" ")
            values.setdefault(name, []).append(value.strip())
    return values


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _check_cups(ctx: _Context) -> Check:
    """CUPS as printing needs it (issue 17): RequestRoot, TempDir and CacheDir on cupsd's own RAM tmpfs,
    PreserveJobFiles/PreserveJobHistory No, few jobs, the local socket only, no web interface, logs without
    titles (warn level, no debug history, no page log) and not written to files on disk; with printing on,
    a running CUPS that has the kiosk's queue."""
    enabled = ctx.config is not None and ctx.config.print.enabled
    cupsd_text = ctx.read(str(CUPSD_CONF))
    files_text = ctx.read(str(CUPS_FILES_CONF))
    if cupsd_text is None and not enabled:
        return Check("cups", Status.SKIP, "printing off and CUPS not installed")
    if cupsd_text is None or files_text is None:
        return Check("cups", Status.FAIL, f"{CUPSD_CONF} or {CUPS_FILES_CONF} missing", _APPLY)
    parsed = {CUPSD_CONF: _cups_directives(cupsd_text), CUPS_FILES_CONF: _cups_directives(files_text)}
    problems = [
        f"{name} {want or '(empty)'}"
        for path, wanted in PRIVACY_DIRECTIVES.items()
        for name, want in wanted.items()
        if parsed[path].get(name, [None])[-1] != want
    ]
    cupsd, files = parsed[CUPSD_CONF], parsed[CUPS_FILES_CONF]
    listeners = cupsd.get("Listen", []) + cupsd.get("Port", []) + cupsd.get("SSLListen", [])
    if not listeners or any(not entry.startswith("/") for entry in listeners):
        problems.append("Listen on the local socket only (no TCP port)")
    dropin = _ini_values(ctx.read(str(CUPS_DROPIN)) or "", "Service")
    mounts = {entry.split(":", 1)[0]: entry for entry in dropin.get("TemporaryFileSystem", [])}
    spool = files.get("RequestRoot", ["/var/spool/cups"])[-1]
    if spool not in mounts or "size=" not in mounts[spool]:
        problems.append(f"RequestRoot {spool} on a size-capped tmpfs of cupsd's own ({CUPS_DROPIN})")
    # cupsd's defaults when unset: TempDir <RequestRoot>/tmp, CacheDir /var/cache/cups (disk).
    for name, default in (("TempDir", f"{spool}/tmp"), ("CacheDir", "/var/cache/cups")):  # noqa: S108
        value = files.get(name, [default])[-1]
        if not _under(value, spool):
            problems.append(f"{name} {value} is not on the spool's tmpfs")
    for name in ("ErrorLog", "AccessLog", "PageLog"):
        value = files.get(name, ["/var/log/cups"])[-1]
        if value not in ("syslog", "stderr") and not _under(value, "/run"):
            problems.append(f"{name} {value} writes to disk (use syslog: the volatile journal)")
    if problems:
        status = Status.FAIL if enabled else Status.WARN
        return Check("cups", status, "not private: " + "; ".join(problems), _APPLY)
    detail = "RAM spool, job files and history not kept, local socket only, logs without titles"
    if not enabled:
        return Check("cups", Status.OK, detail + " (printing off)")
    assert ctx.config is not None
    if not ctx.live:
        return Check("cups", Status.OK, detail + "; queue checked on the live device only")
    socket = str(ctx.config.print.cups_socket)
    result = ctx.runner.query(["lpstat", "-h", socket, "-p", ctx.config.print.queue])
    if result.returncode != 0:
        return Check(
            "cups",
            Status.FAIL,
            detail + f"; but no queue {ctx.config.print.queue} on {socket}",
            "connect the printer and run `python -m provisioning apply` (or set [print] device_uri)",
        )
    return Check("cups", Status.OK, detail + f"; queue {ctx.config.print.queue} present")


def _check_clock(ctx: _Context) -> Check:
    # First: can the clock be right at all? An offline Jetson without an RTC battery comes back from a
    # power cut in the past, where TOTP fails (staff then sign in with a recovery code) and TLS looks expired.
    evidence = [] if ctx.config is None else [ctx.path(p) for p in clock_evidence(ctx.config)]
    problem = clock_problem(now=ctx.now.timestamp(), evidence=evidence)
    if problem is not None:
        return Check("clock", Status.FAIL, problem, CLOCK_FIX_HINT)
    if not ctx.live:
        return Check("clock", Status.SKIP, "plausible; synchronisation is checked on the live device only")
    result = ctx.runner.query(["timedatectl", "show", "--property=NTPSynchronized", "--value"])
    answer = result.stdout.strip()
    if result.returncode == 0 and answer == "yes":
        return Check("clock", Status.OK, "synchronised (NTP)")
    reason = (result.stderr or answer).strip().splitlines() or ["no answer"]
    detail = "not synchronised" if answer == "no" else f"unknown ({reason[0][:80]})"
    return Check(
        "clock",
        Status.WARN,
        f"clock {detail}: TOTP codes and TLS validity depend on it",
        "enable time sync: `timedatectl set-ntp true`",
    )


def _check_ram(ctx: _Context) -> Check:
    if ctx.config is None:
        return Check("free-ram", Status.SKIP, "no valid config")
    text = ctx.read("/proc/meminfo") or ""
    match = re.search(r"^MemAvailable:\s+(\d+) kB", text, re.MULTILINE)
    if match is None:
        return Check("free-ram", Status.WARN, "cannot read MemAvailable", "check `free -m`")
    available_mib = int(match.group(1)) // 1024
    need = ctx.config.store.size_mib
    detail = f"{available_mib} MiB available for a {need} MiB store"
    if available_mib < need:
        return Check("free-ram", Status.FAIL, detail, "lower [store] size_mib or free memory")
    if available_mib < 2 * need:
        return Check("free-ram", Status.WARN, detail + " (less than twice the cap)", "lower [store] size_mib")
    return Check("free-ram", Status.OK, detail)


def _descendants(pid: int) -> list[int]:
    found = [pid]
    for current in found:
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                found.extend(int(child) for child in task.read_text(encoding="utf-8").split())
    return found


def _check_dumpable(ctx: _Context) -> Check:
    if not ctx.live:
        return Check("service-dumpable", Status.SKIP, "checked on the live device only")
    pid = _main_pid(ctx)
    if pid is None:
        return Check("service-dumpable", Status.SKIP, f"{KIOSK_UNIT} is not running")
    dumpable, unknown = [], []
    for process in _descendants(pid):
        try:
            state = dumpable_state(process)
        except Exception:  # noqa: S112 - the process exited between listing and checking
            continue
        if state is None:
            unknown.append(process)
        elif state:
            dumpable.append(process)
    if dumpable:
        return Check(
            "service-dumpable",
            Status.FAIL,
            f"dumpable processes in the service: {dumpable}",
            "every process must call appliance.hardening.harden_process(); report a bug",
        )
    if unknown:
        return Check(
            "service-dumpable",
            Status.WARN,
            f"cannot tell for root processes {unknown}",
            "run the service as its own user",
        )
    return Check("service-dumpable", Status.OK, "every process of the service has dumpable=0")


_CHECKS: tuple[Callable[[_Context], Check], ...] = (
    _check_versions,
    _check_config,
    _check_swap,
    _check_zram_generator,
    _check_nvzramconfig,
    _check_store,
    _check_secretmem,
    _check_core_pattern,
    _check_coredump_storage,
    _check_journald,
    _check_systemd,
    _check_unit,
    _check_exposure,
    _check_gpu_access,
    _check_opencv,
    _check_dumpable,
    _check_tls,
    _check_tls_renewal,
    _check_staff_console,
    _check_camera,
    _check_cups,
    _check_engine,
    _check_clock,
    _check_ram,
)


def _load(root: Path) -> KioskConfig | None:
    """The installed config; the built-in defaults when there is none (the config check FAILs then, and
    the other checks still say something useful); ``None`` when it is invalid."""
    path = host_path(root, str(CONFIG_PATH))
    if not path.is_file():
        return KioskConfig()
    try:
        return load_config(path)
    except ConfigError:
        return None


def run_doctor(
    root: Path,
    runner: Runner,
    *,
    kernel_release: str | None = None,
    now: dt.datetime | None = None,
) -> list[Check]:
    """Every check, in report order. ``kernel_release`` defaults to ``root/proc/sys/kernel/osrelease``
    (the running kernel on the device)."""
    osrelease = host_path(root, "/proc/sys/kernel/osrelease")
    if kernel_release is None:
        try:
            kernel_release = osrelease.read_text(encoding="utf-8").strip()
        except OSError:
            kernel_release = platform.release()
    ctx = _Context(
        root=root,
        live=is_live_root(root),
        runner=runner,
        kernel=kernel_release,
        config=_load(root),
        now=now or dt.datetime.now(dt.timezone.utc),
    )
    checks = []
    for check in _CHECKS:
        try:
            checks.append(check(ctx))
        except Exception as exc:  # one broken probe must not hide the rest of the report
            checks.append(
                Check(
                    check.__name__.removeprefix("_check_"),
                    Status.WARN,
                    f"check failed: {type(exc).__name__}: {exc}",
                    "report a bug",
                )
            )
    return checks


def exit_code(checks: Iterable[Check]) -> int:
    """1 if any check FAILed, else 0."""
    return 1 if any(c.status is Status.FAIL for c in checks) else 0


def format_text(checks: Iterable[Check]) -> str:
    """The human report: ``STATUS name  detail`` and, for WARN/FAIL, ``fix: ...`` under it."""
    lines = []
    for check in checks:
        lines.append(f"{check.status.value:<4} {check.name:<17} {check.detail}")
        if check.fix and check.status in (Status.WARN, Status.FAIL):
            lines.append(f"{'':<23}fix: {check.fix}")
    return "\n".join(lines) + "\n"


def format_json(checks: Iterable[Check]) -> str:
    """One JSON object: ``{"ok": bool, "counts": {...}, "checks": [{name, status, detail, fix}, ...]}``."""
    items = [{**asdict(c), "status": c.status.value} for c in checks]
    counts = {s.value: sum(1 for c in items if c["status"] == s.value) for s in Status}
    return json.dumps({"ok": counts["FAIL"] == 0, "counts": counts, "checks": items}, indent=2) + "\n"
