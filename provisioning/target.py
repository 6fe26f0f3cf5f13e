"""What is being provisioned: the target root, its kernel, device nodes, service account and layout.

Everything the renderers need to know about the device is gathered here once, so rendering is a pure
function of a :class:`Target` (and a ``KioskConfig``) and tests can describe any device: a Jetson on kernel
5.15 with CSI camera and GPU nodes, or a laptop on 6.8 with one USB camera.
"""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from provisioning import ProvisioningError

__all__ = [
    "BROWSER_HOME",
    "BROWSER_USER",
    "DEFAULT_PREFIX",
    "GPU_DEVICE_PATTERNS",
    "PLACEHOLDER_ID",
    "SERVICE_GROUP",
    "SERVICE_USER",
    "SNAP_CHROMIUM",
    "SwapPolicy",
    "Target",
    "discover_devices",
    "fstab_swap_sources",
    "host_path",
    "installed_packages",
    "kernel_supports_noswap",
    "kernel_version",
    "lookup_id",
    "secretmem_default_on",
    "systemd_escape_path",
    "version_tuple",
    "zram_generator_version",
]

SERVICE_USER = "headshot-kiosk"
SERVICE_GROUP = "headshot-kiosk"
BROWSER_USER = "headshot-kiosk-browser"
# The browser's home is a tmpfs (a mount unit apply installs): snapd refuses a HOME outside /home
# ("cannot create user data directory"), and whatever Chromium writes there must stay in RAM.
BROWSER_HOME = PurePosixPath("/home") / BROWSER_USER
# Ubuntu 22.04 has no Chromium .deb: `chromium-browser` is a transitional package for the snap since 19.10
# (https://snapcraft.io/blog/chromium-in-ubuntu-deb-to-snap-transition), so JetPack 6 runs the snap.
SNAP_CHROMIUM = "/snap/bin/chromium"
# The command line's historic default; on Ubuntu it does not exist (see detect_target).
LEGACY_CHROMIUM = "/usr/bin/chromium"
DEFAULT_PREFIX = PurePosixPath("/opt/headshot-kiosk")
PLACEHOLDER_ID = 999
"""uid/gid written into a *staged* unit when the staging tree has no passwd entry for the service user
(``systemd-sysusers`` picks the real number on the device, where apply creates the user before rendering)."""

SwapPolicy = Literal["off", "zram"]

CAMERA_DEVICE_PATTERNS = ("video*",)
# Jetson iGPU nodes (L4T r35/r36): nvhost-* (host1x clients incl. nvhost-ctrl-gpu, nvhost-as-gpu), nvmap
# (buffer allocator) and nvgpu/igpu0/* (newer nvgpu interface). CUDA on Orin also opens the DRM render
# node and host1x-fence (syncpoint fences): snapd's Tegra interface grants exactly nvmap, dri/renderD*,
# nvgpu/igpu*/{ctrl,power} and host1x-fence (snapd interfaces/builtin/nvidia_tegra_drivers_support.go).
# JetPack 7 (Thor) uses the unified OpenRM driver with the desktop-style /dev/nvidia* nodes.
GPU_DEVICE_PATTERNS = ("nvhost-*", "nvmap", "nvgpu/**/*", "nvidia*", "dri/renderD*", "host1x-fence")
RENDER_DEVICE_PREFIX = "/dev/dri/renderD"

# tmpfs(5): "noswap (since Linux 6.4)". memfd_secret(2) exists since 5.14 but stayed behind the
# secretmem.enable=1 boot parameter until Linux 6.5 turned it on by default (mm/secretmem.c).
_NOSWAP_SINCE = (6, 4)
_SECRETMEM_DEFAULT_SINCE = (6, 5)


@dataclass(frozen=True)
class Target:
    """The device being provisioned.

    ``root`` is where its filesystem is (``/`` on the device, a staging directory in tests); every other
    path here is as seen *on the device*. ``devices`` are device node paths (``/dev/video0``,
    ``/dev/nvmap``) found under the root. ``service_uid``/``service_gid`` are the numeric ids of the
    service account (tmpfs ``uid=``/``gid=`` accept numbers only).
    """

    root: Path
    kernel_release: str
    devices: tuple[str, ...] = ()
    service_uid: int = PLACEHOLDER_ID
    service_gid: int = PLACEHOLDER_ID
    prefix: PurePosixPath = DEFAULT_PREFIX
    swap_policy: SwapPolicy = "off"
    fstab_swaps: tuple[str, ...] = ()
    browser: bool = True
    browser_binary: str = SNAP_CHROMIUM
    cage_binary: str = "/usr/bin/cage"
    browser_uid: int = PLACEHOLDER_ID - 1
    browser_gid: int = PLACEHOLDER_ID - 1
    zram_generator: str | None = None
    """Version of systemd-zram-generator on the device (``"0.3.2"``), or ``None`` when unknown."""

    @property
    def venv_python(self) -> PurePosixPath:
        """The interpreter the service runs (the ``--system-site-packages`` venv of the checkout)."""
        return self.prefix / ".venv" / "bin" / "python"

    @property
    def noswap(self) -> bool:
        """True when the target kernel accepts tmpfs ``noswap`` (mounting with it fails on older ones)."""
        return kernel_supports_noswap(self.kernel_release)

    @property
    def camera_devices(self) -> tuple[str, ...]:
        """Camera (V4L2) nodes among :attr:`devices`."""
        return tuple(d for d in self.devices if PurePosixPath(d).name.startswith("video"))

    @property
    def gpu_devices(self) -> tuple[str, ...]:
        """GPU nodes among :attr:`devices` (Jetson nvhost/nvmap/nvgpu/renderD/host1x-fence, or nvidia*)."""
        return tuple(d for d in self.devices if d not in self.camera_devices)

    @property
    def supplementary_groups(self) -> tuple[str, ...]:
        """Groups the service needs for :attr:`devices`: camera and Tegra GPU nodes are ``root:video``
        0660 on L4T; DRM render nodes are ``root:render`` 0660 (systemd's udev rules, 50-udev-default)."""
        groups = []
        if any(not d.startswith(RENDER_DEVICE_PREFIX) for d in self.devices):
            groups.append("video")
        if any(d.startswith(RENDER_DEVICE_PREFIX) for d in self.devices):
            groups.append("render")
        return tuple(groups)

    @property
    def browser_is_snap(self) -> bool:
        """True when the kiosk browser is a snap (Ubuntu's Chromium): its unit must let snap-confine work."""
        return self.browser_binary.startswith("/snap/")

    def with_ids(self, uid: int, gid: int) -> Target:
        """A copy with the service account's numeric ids."""
        return Target(**{**self.__dict__, "service_uid": uid, "service_gid": gid})

    def with_browser_ids(self, uid: int, gid: int) -> Target:
        """A copy with the browser account's numeric ids (its tmpfs home takes numbers only)."""
        return Target(**{**self.__dict__, "browser_uid": uid, "browser_gid": gid})


def host_path(root: Path, device_path: str | PurePosixPath) -> Path:
    """Where ``device_path`` (absolute, as on the device) lives under ``root``."""
    text = str(device_path)
    if not text.startswith("/"):
        raise ProvisioningError(f"expected an absolute path on the device, got {text!r}")
    return root / text.lstrip("/")


def kernel_version(release: str) -> tuple[int, int]:
    """``"5.15.148-tegra"`` -> ``(5, 15)``. Raises ProvisioningError for anything else."""
    match = re.match(r"^(\d+)\.(\d+)", release.strip())
    if match is None:
        raise ProvisioningError(f"cannot read a kernel version from {release!r}; expected e.g. 6.8.0-1017")
    return int(match.group(1)), int(match.group(2))


def kernel_supports_noswap(release: str) -> bool:
    """tmpfs ``noswap`` exists since Linux 6.4 (JetPack 6's 5.15 lacks it; JetPack 7's 6.8 has it)."""
    return kernel_version(release) >= _NOSWAP_SINCE


def secretmem_default_on(release: str) -> bool:
    """memfd_secret(2) works without ``secretmem.enable=1`` on the command line (Linux >= 6.5)."""
    return kernel_version(release) >= _SECRETMEM_DEFAULT_SINCE


def running_kernel() -> str:
    """The release of the kernel this process runs on (``uname -r``)."""
    return platform.release()


def discover_devices(
    root: Path, patterns: Iterable[str] = CAMERA_DEVICE_PATTERNS + GPU_DEVICE_PATTERNS
) -> tuple[str, ...]:
    """Device nodes under ``root/dev`` matching ``patterns``, as sorted device paths (``/dev/video0``).

    On the device these are character devices; a staging tree may describe them with empty files, so
    anything but a directory counts.
    """
    dev = root / "dev"
    found: set[str] = set()
    for pattern in patterns:
        for path in dev.glob(pattern):
            if not path.is_dir():
                found.add("/dev/" + path.relative_to(dev).as_posix())
    return tuple(sorted(found))


def lookup_id(root: Path, database: Literal["passwd", "group"], name: str) -> int | None:
    """Numeric id of ``name`` in ``root/etc/passwd`` or ``root/etc/group``; ``None`` if absent.

    Reads the files directly (not NSS) so a staging tree answers for itself; the service account is a
    local system account created by systemd-sysusers, which always lands in these files.
    """
    try:
        lines = host_path(root, f"/etc/{database}").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
            return int(fields[2])
    return None


def fstab_swap_sources(root: Path) -> tuple[str, ...]:
    """Swap sources (``/swap.img``, ``UUID=...``, ``/dev/sda2``) listed in ``root/etc/fstab``."""
    try:
        lines = host_path(root, "/etc/fstab").read_text(encoding="utf-8").splitlines()
    except OSError:
        return ()
    sources = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 3 and not fields[0].startswith("#") and fields[2] == "swap":
            sources.append(fields[0])
    return tuple(sources)


def fstab_source_path(source: str) -> str:
    """``UUID=abc`` -> ``/dev/disk/by-uuid/abc`` (what systemd-fstab-generator names the unit after)."""
    for tag, directory in (
        ("UUID=", "by-uuid"),
        ("LABEL=", "by-label"),
        ("PARTUUID=", "by-partuuid"),
        ("PARTLABEL=", "by-partlabel"),
    ):
        if source.startswith(tag):
            return f"/dev/disk/{directory}/{source[len(tag) :]}"
    return source


def systemd_escape_path(path: str) -> str:
    """The unit-name form of ``path`` (``systemd-escape --path``): ``/swap.img`` -> ``swap.img``,
    ``/dev/disk/by-uuid/a-b`` -> ``dev-disk-by\\x2duuid-a\\x2db`` (systemd.unit(5), "String Escaping")."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return "-"
    out = []
    for part in parts:
        chars = []
        for i, ch in enumerate(part):
            if (ch.isascii() and (ch.isalnum() or ch in ":_.")) and not (i == 0 and ch == "."):
                chars.append(ch)
            else:
                chars.extend(f"\\x{b:02x}" for b in ch.encode("utf-8"))
        out.append("".join(chars))
    return "-".join(out)


def version_tuple(version: str) -> tuple[int, ...]:
    """``"0.3.2-1"`` -> ``(0, 3, 2)``; ``"1:249.11-0ubuntu3"`` -> ``(249, 11)`` (Debian epoch and revision
    dropped); ``()`` when nothing numeric leads."""
    text = version.split(":", 1)[-1]
    match = re.match(r"^(\d+(?:\.\d+)*)", text)
    return tuple(int(p) for p in match.group(1).split(".")) if match else ()


def installed_packages(root: Path) -> dict[str, str] | None:
    """``{package: version}`` of the Debian packages installed under ``root`` (``/var/lib/dpkg/status``),
    or ``None`` when the root has no dpkg database (a staging tree, a non-Debian system)."""
    try:
        text = host_path(root, "/var/lib/dpkg/status").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    found: dict[str, str] = {}
    for stanza in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line.startswith(" ")
        )
        if fields.get("Status", "").endswith(" installed") and "Package" in fields:
            found[fields["Package"]] = fields.get("Version", "")
    return found


def zram_generator_version(root: Path, kernel_release: str) -> str | None:
    """Version of systemd-zram-generator the device has or will get.

    The installed package wins. Otherwise the release decides: Ubuntu 22.04 (JetPack 6) ships 0.3.2, 24.04
    (JetPack 7) 1.1.2 (packages.ubuntu.com). Without an os-release, a 5.15 kernel means JetPack 6.
    """
    packages = installed_packages(root) or {}
    if packages.get("systemd-zram-generator"):
        return packages["systemd-zram-generator"].split("-", 1)[0].split(":", 1)[-1]
    try:
        release = host_path(root, "/etc/os-release").read_text(encoding="utf-8")
    except OSError:
        release = ""
    match = re.search(r'^VERSION_ID="?([\d.]+)', release, re.MULTILINE)
    if match:
        return "0.3.2" if version_tuple(match.group(1)) < (24,) else "1.1.2"
    if kernel_version(kernel_release) == (5, 15):
        return "0.3.2"
    return None


def detect_target(
    root: Path,
    *,
    kernel_release: str | None = None,
    devices: Sequence[str] | None = None,
    prefix: PurePosixPath = DEFAULT_PREFIX,
    swap_policy: SwapPolicy = "off",
    browser: bool = True,
    browser_binary: str | None = None,
) -> Target:
    """Describe the device under ``root``: kernel (given, else the running one), device nodes (given,
    else found under ``root/dev``), fstab swaps, the zram generator's version and the service account's
    ids (placeholder if absent).

    ``browser_binary`` None (the command line's default) or ``/usr/bin/chromium``: Debian's Chromium where
    that file exists under ``root``, else the Chromium snap (Ubuntu 22.04 / JetPack 6 has no .deb).
    Refuses a ``prefix`` under /home or /root: the unit sets ``ProtectHome=yes``, which hides them.
    """
    if any(str(prefix) == p or str(prefix).startswith(p + "/") for p in ("/home", "/root", "/run/user")):
        raise ProvisioningError(
            f"install prefix {prefix} is under a home directory, which the hardened unit hides "
            "(ProtectHome=yes); clone the repository to /opt/headshot-kiosk and run make provision there"
        )
    release = kernel_release if kernel_release is not None else running_kernel()
    kernel_version(release)  # validate early
    found = tuple(sorted(devices)) if devices is not None else discover_devices(root)
    uid = lookup_id(root, "passwd", SERVICE_USER)
    gid = lookup_id(root, "group", SERVICE_GROUP)
    if browser_binary in (None, LEGACY_CHROMIUM):  # auto: Debian's .deb where the target has it
        browser_binary = LEGACY_CHROMIUM if host_path(root, LEGACY_CHROMIUM).exists() else SNAP_CHROMIUM
    browser_uid = lookup_id(root, "passwd", BROWSER_USER)
    browser_gid = lookup_id(root, "group", BROWSER_USER)
    return Target(
        root=root,
        kernel_release=release,
        devices=found,
        service_uid=uid if uid is not None else PLACEHOLDER_ID,
        service_gid=gid if gid is not None else PLACEHOLDER_ID,
        prefix=prefix,
        swap_policy=swap_policy,
        fstab_swaps=fstab_swap_sources(root),
        browser=browser,
        browser_binary=browser_binary,
        browser_uid=browser_uid if browser_uid is not None else PLACEHOLDER_ID - 1,
        browser_gid=browser_gid if browser_gid is not None else PLACEHOLDER_ID - 1,
        zram_generator=zram_generator_version(root, release),
    )


def is_live_root(root: Path) -> bool:
    """True when ``root`` is this machine's own ``/`` (commands run, live probes make sense)."""
    return os.path.realpath(root) == "/"
