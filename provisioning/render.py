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
from provisioning.target import (
    BROWSER_HOME,
    BROWSER_USER,
    SERVICE_GROUP,
    SERVICE_USER,
    Target,
    systemd_escape_path,
    version_tuple,
)

__all__ = [
    "ARGUS_SOCKET",
    "ARGUS_UNIT",
    "BROWSER_HOME_MOUNT",
    "BROWSER_UNIT",
    "CERT_RENEW_SERVICE",
    "CERT_RENEW_TIMER",
    "KIOSK_UNIT",
    "NVZRAM_UNIT",
    "kiosk_wanted_by",
    "memory_deny_write_execute",
    "render_browser_home_mount",
    "render_browser_pam",
    "render_browser_unit",
    "render_cert_renew_service",
    "render_cert_renew_timer",
    "render_chromium_policy",
    "render_coredump_conf",
    "render_journald_conf",
    "render_kiosk_unit",
    "render_nvzramconfig_dropin",
    "render_sysctl",
    "render_sysusers",
    "render_zram_generator",
    "ui_url",
    "zram_setup_unit",
    "zram_size_expressions",
]

KIOSK_UNIT = "headshot-kiosk.service"
BROWSER_UNIT = "headshot-kiosk-browser.service"
# `python -m provisioning cert renew`, started by its timer (installed by `cert obtain`, not by apply).
CERT_RENEW_SERVICE = "headshot-kiosk-cert-renew.service"
CERT_RENEW_TIMER = "headshot-kiosk-cert-renew.timer"
BROWSER_HOME_MOUNT = systemd_escape_path(str(BROWSER_HOME)) + ".mount"
# L4T's own zram swap (nvzramconfig.sh makes one zram device per CPU); its unit file is shipped in
# /etc/systemd/system by nvidia-l4t-init, so it is neutralised with a drop-in, never replaced.
NVZRAM_UNIT = "nvzramconfig.service"
# nvargus-daemon (nvidia-l4t-camera) serves libargus clients through this socket in the host's /tmp.
ARGUS_UNIT = "nvargus-daemon.service"
ARGUS_SOCKET = "/tmp/argus_socket"  # noqa: S108 - nvargus-daemon's fixed path, not a temp file of ours
_ARGUS_WAIT_SECONDS = 30
_BROWSER_HOME_MIB = 512

# /tmp and /var/tmp of the service: private RAM, small (nothing of ours writes there; libraries may).
_TMP_SIZE_MIB = 64
_VAR_TMP_SIZE_MIB = 16
# Private networks a kiosk-owned or event Wi-Fi uses (RFC 1918, RFC 4193 ULA); phones reach the delivery
# listener only from these (invariant 6: "only on the kiosk's own network").
_PRIVATE_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
_HEADER = "# Rendered by `python -m provisioning apply`; local edits are replaced on the next apply.\n"
_CERT_HEADER = (
    "# Rendered by `python -m provisioning cert obtain`; local edits are replaced on its next run.\n"
)


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
    csi = isinstance(config.camera, CsiCameraConfig)
    lines = [
        _HEADER.rstrip("\n"),
        "[Unit]",
        "Description=Headshot kiosk appliance (camera, engine, session worker, UI listeners)",
        "Documentation=file://" + str(target.prefix / "docs" / "PROVISIONING.md"),
        f"After=network-online.target {ARGUS_UNIT} time-sync.target",
        "Wants=network-online.target",
    ]
    if csi:
        lines += [
            # The Argus socket is bound into the sandbox at start, so a restarted nvargus-daemon (a new
            # socket) leaves the kiosk talking to the old one. BindsTo= stops the kiosk with the daemon,
            # and the daemon's .wants/ link (apply) starts it again with the daemon (systemd.unit(5)).
            f"BindsTo={ARGUS_UNIT}",
        ]
    lines += [
        # Restart limits live in [Unit] (systemd.unit(5)): 5 crashes in 5 minutes -> stay failed.
        "StartLimitIntervalSec=300",
        "StartLimitBurst=5",
        "",
        "[Service]",
        # READY=1 once the warm worker and the listeners are up; WATCHDOG=1 only while healthy (DESIGN.md §6).
        "Type=notify",
        # Only the main process may talk to systemd; session workers must not send READY or STATUS.
        "NotifyAccess=main",
    ]
    if csi:
        # nvargus-daemon is Type=simple: "started" comes before its socket exists (boot race). Wait for it
        # outside the sandbox ("+", no namespace), so the BindPaths= below finds the socket.
        lines.append(
            f"ExecStartPre=+/usr/bin/timeout {_ARGUS_WAIT_SECONDS} /bin/sh -c "
            f"'until [ -S {ARGUS_SOCKET} ]; do sleep 0.2; done'"
        )
    lines += [
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
    if target.supplementary_groups:
        # Camera and Jetson GPU nodes are root:video 0660 on L4T and Debian; the DRM render node CUDA opens
        # on Orin is root:render 0660 (systemd 50-udev-default.rules). Without these groups the closed
        # device policy is moot: the open() fails on permissions and backend = auto falls back to the CPU.
        lines.append("SupplementaryGroups=" + " ".join(target.supplementary_groups))
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
    if csi:
        # libargus talks to nvargus-daemon through /tmp/argus_socket; the private /tmp above would hide it.
        # No "-" prefix: a missing socket must fail the start (and be retried), not run without a camera.
        lines.append(f"BindPaths={ARGUS_SOCKET}")
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
        "WantedBy=" + " ".join(kiosk_wanted_by(config)),
    ]
    return "\n".join(lines) + "\n"


def kiosk_wanted_by(config: KioskConfig) -> tuple[str, ...]:
    """Units whose ``.wants/`` link starts the kiosk: the boot target, and nvargus-daemon for a CSI camera
    (so a restarted daemon brings the kiosk back, see ``BindsTo=`` in the unit)."""
    if isinstance(config.camera, CsiCameraConfig):
        return ("multi-user.target", ARGUS_UNIT)
    return ("multi-user.target",)


def render_browser_unit(config: KioskConfig, target: Target) -> str:
    """``headshot-kiosk-browser.service``: cage (Wayland kiosk compositor) running Chromium on tty1.

    On Ubuntu 22.04 (JetPack 6) Chromium exists only as a snap, and the snap's launcher sets rules for the
    unit: snap-confine is set-uid root and refuses to run under ``NoNewPrivileges=`` (which also follows
    from ``ProtectSystem=``/``ProtectHome=`` and friends, as they imply a private mount namespace that
    snap-confine cannot build its own from); snapd refuses a ``HOME`` outside /home. So the snap variant
    drops systemd's file-system sandbox and relies on the snap's AppArmor and seccomp confinement plus
    Chromium's own sandbox; its HOME is a size-capped tmpfs (``home-headshot\\x2dkiosk\\x2dbrowser.mount``),
    so the profile never touches the disk. A Debian .deb Chromium (``--browser-binary /usr/bin/chromium``
    where it exists) keeps the hardened variant with the profile in /run.
    """
    snap = target.browser_is_snap
    profile = f"{BROWSER_HOME}/snap/chromium/common/kiosk-profile" if snap else f"/run/{BROWSER_USER}"
    flags = device_flags(profile)
    command = " ".join([target.cage_binary, "--", target.browser_binary, *flags, ui_url(config)])
    lines = [
        _HEADER.rstrip("\n"),
        "[Unit]",
        "Description=Headshot kiosk touch screen (cage + Chromium)",
        f"After={KIOSK_UNIT} systemd-user-sessions.service plymouth-quit-wait.service",
        f"Wants={KIOSK_UNIT}",
        # tty1 belongs to the kiosk: no login prompt and no display manager (JetPack boots gdm3 on VT1).
        "Conflicts=getty@tty1.service display-manager.service",
        "After=getty@tty1.service display-manager.service",
        "ConditionPathExists=/dev/tty1",
    ]
    if snap:
        lines += [
            "After=snapd.seeded.service",
            "Wants=snapd.seeded.service",
            # Pulls in (and orders after) the tmpfs home's mount unit.
            f"RequiresMountsFor={BROWSER_HOME}",
        ]
    lines += [
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
    ]
    if snap:
        lines += [
            f"Environment=HOME={BROWSER_HOME}",
            "UMask=0077",
            "LimitCORE=0",
            "MemorySwapMax=0",
            "# Chromium snap: no NoNewPrivileges=, ProtectSystem= or ProtectHome= (snap-confine needs",
            "# the host's mount namespace and its set-uid bit); snapd's AppArmor and seccomp confine it.",
        ]
    else:
        lines += [
            # The profile lives in /run (RAM) and is removed at every stop: nothing seen outlives it.
            f"RuntimeDirectory={BROWSER_USER}",
            "RuntimeDirectoryMode=0700",
            f"Environment=HOME={profile}",
            "UMask=0077",
            "LimitCORE=0",
            "MemorySwapMax=0",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "NoNewPrivileges=yes",
        ]
    lines += [
        "",
        "[Install]",
        # apply makes multi-user.target the default, so gdm3 (graphical.target) never takes the screen.
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


def render_browser_home_mount(target: Target) -> str:
    """The browser's HOME as a tmpfs (systemd.mount(5)): everything the Chromium snap keeps under
    ``~/snap/chromium`` stays in RAM and is gone at reboot. ``uid=``/``gid=`` take numbers (tmpfs(5))."""
    options = [
        f"size={_BROWSER_HOME_MIB}m",
        "mode=0700",
        f"uid={target.browser_uid}",
        f"gid={target.browser_gid}",
        "nosuid",
        "nodev",
    ]
    if target.noswap:
        options.append("noswap")
    return (
        _HEADER
        + "[Unit]\n"
        + "Description=RAM home of the kiosk browser (its profile never reaches the disk)\n"
        + f"Before={BROWSER_UNIT}\n"
        + "\n[Mount]\n"
        + "What=tmpfs\n"
        + f"Where={BROWSER_HOME}\n"
        + "Type=tmpfs\n"
        + f"Options={','.join(options)}\n"
    )


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

    Policy names from https://chromeenterprise.google/policies/. Debian's Chromium reads
    /etc/chromium/policies/managed/*.json; Ubuntu's (the snap) reads /etc/chromium-browser/policies/managed/
    (https://chromium.googlesource.com/chromium/src/+/HEAD/docs/enterprise/policies.md and the snap's
    launcher); apply installs the same file in both places.
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


def render_sysusers(groups: tuple[str, ...] = ("video",)) -> str:
    """sysusers.d(5): the service and browser accounts (recreated at boot by systemd-sysusers if lost).

    ``groups`` are the service's device groups (``Target.supplementary_groups``): ``video`` for camera and
    Tegra GPU nodes, ``render`` for the DRM render node. The browser's home is under /home because snapd
    refuses any other (the directory itself is a tmpfs mounted by apply's mount unit).
    """
    return (
        _HEADER
        + f'u {SERVICE_USER} - "Headshot kiosk appliance" {STATE_DIR} /usr/sbin/nologin\n'
        + "".join(f"m {SERVICE_USER} {group}\n" for group in groups)
        + f'u {BROWSER_USER} - "Headshot kiosk browser" {BROWSER_HOME} /usr/sbin/nologin\n'
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


def zram_size_expressions(version: str | None) -> bool:
    """True when the generator understands ``zram-size = <expression>`` (zram-generator >= 1.1.0; older ones
    ignore the key as unknown and fall back to their defaults)."""
    return version is None or version_tuple(version) >= (1, 1)


def zram_setup_unit(version: str | None) -> str:
    """The generator's per-device setup service for zram0: ``systemd-zram-setup@zram0.service`` since
    0.3.0, ``swap-create@zram0.service`` before (upstream tags v0.2.0 and v0.3.0, units/ and Makefile)."""
    if version is not None and version_tuple(version) < (0, 3):
        return "swap-create@zram0.service"
    return "systemd-zram-setup@zram0.service"


def render_zram_generator(version: str | None = None) -> str:
    """zram-generator.conf(5) for the generator ``version`` on the device: compressed swap in RAM only.

    No ``writeback-device``: a backing device would page zram contents out to disk (zram's
    CONFIG_ZRAM_WRITEBACK). Before 1.1.0 (Ubuntu 22.04 has 0.3.2) the size is ``zram-fraction`` plus
    ``max-zram-size`` (MiB); from 1.1.0 the ``zram-size`` expression replaces both.
    """
    if zram_size_expressions(version):
        size = "zram-size = min(ram / 2, 4096)\n"
    else:
        size = "zram-fraction = 0.5\nmax-zram-size = 4096\n"
    return _HEADER + "[zram0]\n" + size + "compression-algorithm = zstd\n" + "swap-priority = 100\n"


def render_nvzramconfig_dropin() -> str:
    """A drop-in that keeps L4T's nvzramconfig.service from creating zram swap, without touching NVIDIA's
    unit file (``systemctl mask`` refuses to replace a unit file in /etc/systemd/system; a /dev/null
    symlink written over it would destroy a package-owned file). The condition names the drop-in itself:
    the unit is skipped for as long as this file exists (systemd.unit(5), ConditionPathExists=!)."""
    path = f"/etc/systemd/system/{NVZRAM_UNIT}.d/60-headshot-kiosk.conf"
    return (
        _HEADER
        + "# The kiosk's swap policy (swap off, or zram-generator without a backing device) decides.\n"
        + "[Unit]\n"
        + f"ConditionPathExists=!{path}\n"
    )


def unit_path(name: str) -> PurePosixPath:
    """Where a unit we own is installed."""
    return PurePosixPath("/etc/systemd/system") / name


def render_cert_renew_service(python: PurePosixPath) -> str:
    """``headshot-kiosk-cert-renew.service``: one ``cert renew`` run (systemd.service(5), Type=oneshot).

    Runs as root because it replaces ``/etc/headshot-kiosk/tls`` and hands the key to the service user
    (``CAP_CHOWN`` only); everything else of the file system is read-only. It reaches the network (the ACME
    server and the operator's DNS API through the DNS hook), so no ``IPAddressDeny=``. Not due (more than
    ``renew_days`` left) means no network at all, so the hourly timer costs nothing while offline.
    ``python`` is the checkout's venv interpreter (``Target.venv_python``).
    """
    tls_dir = CONFIG_DIR / "tls"
    acme_dir = CONFIG_DIR / "acme"
    return "\n".join(
        [
            _CERT_HEADER.rstrip("\n"),
            "[Unit]",
            "Description=Renew the kiosk's TLS certificate (ACME DNS-01) when due and online",
            "Wants=network-online.target",
            "After=network-online.target",
            # The hook and the account live here; without them there is nothing to renew.
            f"ConditionPathExists={acme_dir}/acme.json",
            "",
            "[Service]",
            "Type=oneshot",
            f"ExecStart={python} -m provisioning cert renew",
            # A hung ACME server or DNS hook must not hold the unit for ever (the timer retries).
            "TimeoutStartSec=15min",
            "UMask=0077",
            "LimitCORE=0",
            "NoNewPrivileges=yes",
            "CapabilityBoundingSet=CAP_CHOWN",
            "ProtectSystem=strict",
            f"ReadWritePaths={tls_dir} {acme_dir}",
            "ProtectHome=yes",
            # A DNS hook may want a scratch file: a private RAM /tmp (PrivateTmp= is disk up to systemd 255).
            "TemporaryFileSystem=/tmp:size=16m,mode=1777",
            "PrivateDevices=yes",
            "ProtectKernelTunables=yes",
            "ProtectKernelModules=yes",
            "ProtectKernelLogs=yes",
            "ProtectControlGroups=yes",
            "ProtectClock=yes",
            "ProtectHostname=yes",
            "RestrictNamespaces=yes",
            "RestrictRealtime=yes",
            "RestrictSUIDSGID=yes",
            "LockPersonality=yes",
            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
            "SystemCallArchitectures=native",
            "",
        ]
    )


def render_cert_renew_timer() -> str:
    """``headshot-kiosk-cert-renew.timer``: a check minutes after boot, then hourly (systemd.timer(5)).

    Hourly, not daily: an event kiosk is online rarely and briefly (at the office, on a venue's Ethernet),
    and a renewal that is due must happen in such a window. A run that is not due reads one file and exits.
    """
    return (
        _CERT_HEADER
        + "[Unit]\n"
        + "Description=Renew the kiosk's TLS certificate whenever the kiosk is online\n"
        + "\n[Timer]\n"
        + "OnBootSec=5min\n"
        + "OnUnitInactiveSec=1h\n"
        # Kiosks of one operator renewing against the same CA should not do so in the same second.
        + "RandomizedDelaySec=10min\n"
        + f"Unit={CERT_RENEW_SERVICE}\n"
        + "\n[Install]\n"
        + "WantedBy=timers.target\n"
    )
