"""Renderers: every file provisioning installs, as a pure function of a ``Target`` and a ``KioskConfig``.

Nothing here touches the filesystem; ``provisioning.apply`` decides what to write. Tests compare every
output with ``tests/provisioning/golden/``. Version notes refer to systemd.exec(5)/systemd.resource-control(5)
of the systemd releases on JetPack 6 (Ubuntu 22.04, systemd 249) and JetPack 7 (Ubuntu 24.04, systemd 255).
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath

from appliance.browser import device_flags
from appliance.config import CsiCameraConfig, KioskConfig, V4l2CameraConfig, is_loopback
from appliance.hardening import MALLOC_MMAP_THRESHOLD_BYTES
from provisioning.configfile import CONFIG_DIR, CONFIG_PATH, STATE_DIR
from provisioning.target import BROWSER_USER, SERVICE_GROUP, SERVICE_USER, Target

__all__ = [
    "BROWSER_UNIT",
    "KIOSK_UNIT",
    "memory_deny_write_execute",
    "render_browser_pam",
    "render_browser_unit",
    "render_chromium_policy",
    "render_coredump_conf",
    "render_journald_conf",
    "render_kiosk_unit",
    "render_sysctl",
    "render_sysusers",
    "render_zram_generator",
    "ui_url",
]

KIOSK_UNIT = "headshot-kiosk.service"
BROWSER_UNIT = "headshot-kiosk-browser.service"

# /tmp and /var/tmp of the service: private RAM, small (nothing of ours writes there; libraries may).
_TMP_SIZE_MIB = 64
_VAR_TMP_SIZE_MIB = 16
# Private networks a kiosk-owned or event Wi-Fi uses (RFC 1918, RFC 4193 ULA); phones reach the delivery
# listener only from these (invariant 6: "only on the kiosk's own network").
_PRIVATE_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
_HEADER = "# Rendered by `python -m provisioning apply`; local edits are replaced on the next apply.\n"


def memory_deny_write_execute(config: KioskConfig, target: Target) -> bool:
    """Whether the kiosk unit can set ``MemoryDenyWriteExecute=yes``.

    ONNX Runtime's CPU provider runs precompiled MLAS kernels, numpy has no JIT, and CPython 3.10-3.12 has
    none either, so the CPU backend runs with W^X enforced. The NVIDIA stack is different: the CUDA driver
    JIT-compiles PTX for kernels without SASS for the GPU and TensorRT generates code at build time, and
    the driver's user-space library is closed, so we cannot show it never maps writable+executable memory.
    With TensorRT possible (``backend = "tensorrt"``, or ``auto`` on a device with GPU nodes) it stays off.
    """
    if config.engine.backend == "onnxruntime":
        return True
    if config.engine.backend == "tensorrt":
        return False
    return not target.gpu_devices


def _device_allow(config: KioskConfig, target: Target) -> list[str]:
    nodes = list(target.devices)
    camera = config.camera
    if isinstance(camera, V4l2CameraConfig) and camera.device not in nodes:
        nodes.append(camera.device)  # the configured camera, even if unplugged while provisioning
    return [f"DeviceAllow={node} rw" for node in sorted(nodes)]


def _tmpfs(path: str, size_mib: int, target: Target) -> str:
    # tmpfs(5) options. uid/gid take numbers only: the kernel mounts it, not systemd, and names mean
    # nothing there. noswap is refused (EINVAL, the unit fails to start) before Linux 6.4, so it is only
    # written for a kernel that has it; older kernels rely on the swap policy (swap off / zram only).
    options = [
        f"size={size_mib}m",
        "mode=0700",
        f"uid={target.service_uid}",
        f"gid={target.service_gid}",
        "nosuid",
        "nodev",
        "noexec",
    ]
    if target.noswap:
        options.append("noswap")
    return f"TemporaryFileSystem={path}:{','.join(options)}"


def _listeners_loopback_only(config: KioskConfig) -> bool:
    return is_loopback(config.delivery.host) and is_loopback(config.staff.host)


def ui_url(config: KioskConfig) -> str:
    """The guest UI the kiosk browser shows."""
    host = config.ui.host if config.ui.host != "localhost" else "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.ui.port}/"


def _read_write_paths(config: KioskConfig) -> list[str]:
    paths = {str(config.audit.path), str(config.staff.accounts_path.parent)}
    return sorted(paths)


def render_kiosk_unit(config: KioskConfig, target: Target) -> str:
    """``headshot-kiosk.service``: the appliance, hardened (DESIGN.md §6, P1-8 gates its exposure score)."""
    store = str(config.store.path)
    mdwe = memory_deny_write_execute(config, target)
    lines = [
        _HEADER.rstrip("\n"),
        "[Unit]",
        "Description=Headshot kiosk appliance (camera, engine, session worker, UI listeners)",
        "Documentation=file://" + str(target.prefix / "docs" / "PROVISIONING.md"),
        "After=network-online.target nvargus-daemon.service time-sync.target",
        "Wants=network-online.target",
        # Restart limits live in [Unit] (systemd.unit(5)): 5 crashes in 5 minutes -> stay failed.
        "StartLimitIntervalSec=300",
        "StartLimitBurst=5",
        "",
        "[Service]",
        # READY=1 once the warm worker and the listeners are up; WATCHDOG=1 only while healthy (DESIGN.md §6).
        "Type=notify",
        # Only the main process may talk to systemd; session workers must not send READY or STATUS.
        "NotifyAccess=main",
        f"ExecStart={target.venv_python} -m appliance run --config {CONFIG_PATH}",
        "WatchdogSec=30s",
        "TimeoutStartSec=180s",
        "TimeoutStopSec=20s",
        "Restart=on-failure",
        "RestartSec=2s",
        # Stop kills every process of the cgroup, session workers included: a stop ends in WIPE (invariant 3).
        "KillMode=control-group",
        f"User={SERVICE_USER}",
        f"Group={SERVICE_GROUP}",
    ]
    if target.devices:
        # Camera and Jetson GPU nodes are root:video 0660 on L4T and Debian.
        lines.append("SupplementaryGroups=video")
    lines += [
        "UMask=0077",
        # glibc returns image-sized buffers (>= 128 KiB) to the kernel on free() (mallopt(3)).
        f"Environment=MALLOC_MMAP_THRESHOLD_={MALLOC_MMAP_THRESHOLD_BYTES}",
        "Environment=PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1",
        "",
        "# --- RAM only: no swap, no core dumps, private tmpfs (invariant 1; P0-1, P0-2)",
        # cgroup v2: the service's memory never goes to swap, whatever the system swap policy is.
        "MemorySwapMax=0",
        # Belt and braces with PR_SET_DUMPABLE=0, which every process sets itself (a piped core_pattern
        # ignores RLIMIT_CORE; core(5)).
        "LimitCORE=0",
        # Session keys sit in memfd_secret/mlock pages, both charged to RLIMIT_MEMLOCK.
        "LimitMEMLOCK=16M",
        # PrivateTmp= is not used: up to systemd 255 it is a directory on the host's /tmp, which is disk on
        # Debian/Ubuntu. TemporaryFileSystem= mounts a fresh tmpfs in the unit's namespace, gone at stop.
        _tmpfs(store, config.store.size_mib, target),
        _tmpfs("/tmp", _TMP_SIZE_MIB, target),  # noqa: S108 - a private tmpfs, not the shared /tmp
        _tmpfs("/var/tmp", _VAR_TMP_SIZE_MIB, target),  # noqa: S108 - likewise
    ]
    if isinstance(config.camera, CsiCameraConfig):
        # libargus talks to nvargus-daemon through /tmp/argus_socket; the private /tmp above would hide it.
        lines.append("BindPaths=-/tmp/argus_socket")
    lines += [
        "",
        "# --- filesystem",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        f"StateDirectory={STATE_DIR.name}",
        "StateDirectoryMode=0700",
        # Created root-owned if missing; systemd never chowns a ConfigurationDirectory= (systemd.exec(5)).
        f"ConfigurationDirectory={CONFIG_DIR.name}",
        "ConfigurationDirectoryMode=0750",
        *(f"ReadWritePaths={p}" for p in _read_write_paths(config)),
        "PrivateMounts=yes",
        "",
        "# --- privileges",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "NoNewPrivileges=yes",
        # Host users other than root and the service's own show up as nobody; access checks still use the
        # real (supplementary) groups, so the video group keeps working.
        "PrivateUsers=yes",
        "RestrictSUIDSGID=yes",
        "KeyringMode=private",
        "RemoveIPC=yes",
        "LockPersonality=yes",
        "RestrictRealtime=yes",
        "RestrictNamespaces=yes",
        "ProtectHostname=yes",
        "ProtectClock=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        # The main process supervises its workers through their pipes and Popen handles, not /proc, so other
        # processes' /proc entries can be hidden. (Non-dumpable processes are invisible even to the same uid.)
        "ProtectProc=invisible",
        # ProcSubset=pid is not set: it hides /proc/cpuinfo, /proc/meminfo and /proc/device-tree, which
        # ONNX Runtime's cpuinfo (aarch64) and the Tegra CUDA driver read.
        "",
        "# --- system calls",
        # @system-service lacks memfd_secret (session keys); it is added by name (known to systemd >= 249).
        "SystemCallFilter=@system-service memfd_secret",
        "SystemCallFilter=~@privileged",
        "SystemCallArchitectures=native",
        # EPERM instead of SIGSYS: the store's memfd_secret probe falls back to mlock on EPERM cleanly.
        "SystemCallErrorNumber=EPERM",
    ]
    if mdwe:
        lines.append("# CPU backend (ONNX Runtime, numpy): no JIT, so writable memory is never executable.")
        lines.append("MemoryDenyWriteExecute=yes")
    else:
        lines.append("# TensorRT/CUDA possible: the CUDA driver JIT-compiles PTX, so W^X cannot be enforced.")
        lines.append("MemoryDenyWriteExecute=no")
    lines += [
        "",
        "# --- devices: closed, except the camera and GPU nodes found on this device",
        "DevicePolicy=closed",
        *_device_allow(config, target),
        "",
        "# --- network",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "IPAddressDeny=any",
    ]
    if _listeners_loopback_only(config):
        lines.append("IPAddressAllow=localhost")
    else:
        lines.append("IPAddressAllow=localhost link-local " + " ".join(_PRIVATE_NETWORKS))
    lines += [
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


def render_browser_unit(config: KioskConfig, target: Target) -> str:
    """``headshot-kiosk-browser.service``: cage (Wayland kiosk compositor) running Chromium on tty1."""
    profile = f"/run/{BROWSER_USER}"
    flags = device_flags(profile)
    command = " ".join([target.cage_binary, "--", target.browser_binary, *flags, ui_url(config)])
    lines = [
        _HEADER.rstrip("\n"),
        "[Unit]",
        "Description=Headshot kiosk touch screen (cage + Chromium)",
        f"After={KIOSK_UNIT} systemd-user-sessions.service plymouth-quit-wait.service",
        f"Wants={KIOSK_UNIT}",
        # tty1 belongs to the kiosk: no login prompt behind the browser.
        "Conflicts=getty@tty1.service",
        "After=getty@tty1.service",
        "ConditionPathExists=/dev/tty1",
        "StartLimitIntervalSec=300",
        "StartLimitBurst=10",
        "",
        "[Service]",
        "Type=simple",
        f"ExecStart={command}",
        "Restart=always",
        "RestartSec=2s",
        f"User={BROWSER_USER}",
        # A logind session on tty1 gives cage the seat's DRM and input devices (pam_systemd).
        f"PAMName={BROWSER_USER}",
        "TTYPath=/dev/tty1",
        "TTYReset=yes",
        "TTYVHangup=yes",
        "TTYVTDisallocate=yes",
        "StandardInput=tty-fail",
        "UtmpIdentifier=tty1",
        "UtmpMode=user",
        # The profile lives in /run (RAM) and is removed at every stop: nothing the browser saw outlives it.
        f"RuntimeDirectory={BROWSER_USER}",
        "RuntimeDirectoryMode=0700",
        f"Environment=HOME={profile}",
        "UMask=0077",
        "LimitCORE=0",
        "MemorySwapMax=0",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "NoNewPrivileges=yes",
        "",
        "[Install]",
        "WantedBy=graphical.target",
    ]
    return "\n".join(lines) + "\n"


def render_browser_pam() -> str:
    """PAM stack for the browser unit's ``PAMName=`` (pam_systemd registers the logind seat session)."""
    return (
        _HEADER
        + "auth     required pam_unix.so nullok\n"
        + "account  required pam_unix.so\n"
        + "session  required pam_unix.so\n"
        + "session  required pam_systemd.so\n"
    )


def render_chromium_policy(config: KioskConfig) -> str:
    """Chromium managed policy: the kiosk browser can open the guest UI and nothing else, keeps nothing.

    Policy names from https://chromeenterprise.google/policies/ (Linux reads
    /etc/chromium/policies/managed/*.json).
    """
    origin = ui_url(config).rstrip("/")
    policy = {
        "URLBlocklist": ["*"],
        "URLAllowlist": [origin],
        "DeveloperToolsAvailability": 2,
        "DownloadRestrictions": 3,
        "PasswordManagerEnabled": False,
        "AutofillAddressEnabled": False,
        "AutofillCreditCardEnabled": False,
        "MetricsReportingEnabled": False,
        "SafeBrowsingProtectionLevel": 0,
        "SearchSuggestEnabled": False,
        "TranslateEnabled": False,
        "SpellCheckServiceEnabled": False,
        "BrowserSignin": 0,
        "SyncDisabled": True,
        "PrintingEnabled": False,
        "ScreenCaptureAllowed": False,
        "AudioCaptureAllowed": False,
        "VideoCaptureAllowed": False,
    }
    return json.dumps(policy, indent=2, sort_keys=True) + "\n"


def render_sysusers() -> str:
    """sysusers.d(5): the service and browser accounts (recreated at boot by systemd-sysusers if lost)."""
    return (
        _HEADER
        + f'u {SERVICE_USER} - "Headshot kiosk appliance" {STATE_DIR} /usr/sbin/nologin\n'
        + f"m {SERVICE_USER} video\n"
        + f'u {BROWSER_USER} - "Headshot kiosk browser" /run/{BROWSER_USER} /usr/sbin/nologin\n'
    )


def render_sysctl() -> str:
    """sysctl.d(5): no core dump handler at all, and none for set-uid programs either."""
    return (
        _HEADER
        + "# A core dump piped to /bin/false is discarded before anything is written (core(5)).\n"
        + "kernel.core_pattern = |/bin/false\n"
        + "fs.suid_dumpable = 0\n"
    )


def render_coredump_conf() -> str:
    """coredump.conf(5): if anything re-points core_pattern at systemd-coredump, it still stores nothing."""
    return _HEADER + "[Coredump]\nStorage=none\nProcessSizeMax=0\n"


def render_journald_conf() -> str:
    """journald.conf(5): logs in RAM only (/run/log/journal), size-capped, not forwarded to disk loggers."""
    return (
        _HEADER
        + "[Journal]\n"
        + "Storage=volatile\n"
        + "RuntimeMaxUse=64M\n"
        # rsyslog (Ubuntu) would write forwarded messages to /var/log/syslog on disk.
        + "ForwardToSyslog=no\n"
        + "ForwardToKMsg=no\n"
        + "ForwardToWall=no\n"
    )


def render_zram_generator() -> str:
    """zram-generator.conf(5): compressed swap in RAM only. No ``writeback-device``: a backing device would
    page zram contents out to disk (zram's CONFIG_ZRAM_WRITEBACK)."""
    return (
        _HEADER
        + "[zram0]\n"
        + "zram-size = min(ram / 2, 4096)\n"
        + "compression-algorithm = zstd\n"
        + "swap-priority = 100\n"
    )


def unit_path(name: str) -> PurePosixPath:
    """Where a unit we own is installed."""
    return PurePosixPath("/etc/systemd/system") / name
