"""Helpers shared by the provisioning tests: example devices, staged roots, golden files.

Regenerate the golden files after an intended change with::

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/provisioning

then review ``git diff tests/provisioning/golden``.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from provisioning.target import Target

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"

# Service account ids as systemd-sysusers would pick them on a device (from 999 downwards).
UID, GID = 995, 993

# What CUDA opens on an Orin (snapd's nvidia-tegra-drivers-support interface: nvmap, dri/renderD*,
# nvgpu/igpu*/{ctrl,power}, host1x-fence) plus the legacy nvhost nodes and a USB camera.
ORIN_DEVICES = (
    "/dev/dri/renderD128",
    "/dev/host1x-fence",
    "/dev/nvgpu/igpu0/ctrl",
    "/dev/nvgpu/igpu0/power",
    "/dev/nvhost-as-gpu",
    "/dev/nvhost-ctrl-gpu",
    "/dev/nvmap",
    "/dev/video0",
)
THOR_DEVICES = ("/dev/nvidia0", "/dev/nvidia-uvm", "/dev/nvidiactl")


BROWSER_UID, BROWSER_GID = 994, 992


def make_target(root: Path, kernel: str, devices: tuple[str, ...] = (), **kwargs: object) -> Target:
    """A device description with fixed ids, as rendering tests want it."""
    kwargs.setdefault("browser_uid", BROWSER_UID)
    kwargs.setdefault("browser_gid", BROWSER_GID)
    return Target(
        root=root,
        kernel_release=kernel,
        devices=tuple(sorted(devices)),
        service_uid=UID,
        service_gid=GID,
        prefix=PurePosixPath("/opt/headshot-kiosk"),
        **kwargs,  # type: ignore[arg-type]
    )


def seed_accounts(root: Path) -> None:
    """/etc/passwd and /etc/group of a device after systemd-sysusers created the accounts."""
    etc = root / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\n"
        f"headshot-kiosk:x:{UID}:{GID}:Headshot kiosk appliance:/var/lib/headshot-kiosk:/usr/sbin/nologin\n"
        f"headshot-kiosk-browser:x:{BROWSER_UID}:{BROWSER_GID}::/home/headshot-kiosk-browser:/usr/sbin/nologin\n",
        encoding="utf-8",
    )
    (etc / "group").write_text(
        f"root:x:0:\nvideo:x:44:headshot-kiosk\nrender:x:109:headshot-kiosk\nheadshot-kiosk:x:{GID}:\n"
        f"headshot-kiosk-browser:x:{BROWSER_GID}:\n",
        encoding="utf-8",
    )


def seed_devices(root: Path, devices: tuple[str, ...], mode: int = 0o666) -> None:
    """Empty files standing in for device nodes (discovery looks at names, doctor's gpu-access at the
    mode: 0666 opens them to everyone, so a test that wants a closed node chmods it)."""
    for device in devices:
        path = root / device.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        path.chmod(mode)


def check_golden(name: str, text: str) -> None:
    """Compare ``text`` with tests/provisioning/golden/<name>, or write it when UPDATE_GOLDEN=1."""
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.is_file(), f"no golden file {name}; run with UPDATE_GOLDEN=1 and review the diff"
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"{name} differs from its golden file; if intended, UPDATE_GOLDEN=1"


def seed_dpkg(root: Path, packages: dict[str, str]) -> None:
    """A dpkg database (``/var/lib/dpkg/status``) listing ``packages`` (name -> version) as installed."""
    status = root / "var/lib/dpkg/status"
    status.parent.mkdir(parents=True, exist_ok=True)
    status.write_text(
        "\n".join(
            f"Package: {name}\nStatus: install ok installed\nVersion: {version}\n"
            for name, version in packages.items()
        ),
        encoding="utf-8",
    )


# nvidia-l4t-init's unit, installed as a regular file in /etc/systemd/system (as on L4T r36).
NVZRAMCONFIG_UNIT = (
    "[Unit]\nDescription=ZRAM configuration\n\n[Service]\nType=oneshot\n"
    "ExecStart=/etc/systemd/nvzramconfig.sh\nRemainAfterExit=yes\n\n[Install]\nWantedBy=multi-user.target\n"
)


def seed_l4t(root: Path) -> None:
    """What an L4T r36 root adds: nvzramconfig.service (a regular file, enabled) and its release file."""
    system = root / "etc/systemd/system"
    (system / "multi-user.target.wants").mkdir(parents=True, exist_ok=True)
    (system / "nvzramconfig.service").write_text(NVZRAMCONFIG_UNIT, encoding="utf-8")
    (system / "multi-user.target.wants/nvzramconfig.service").symlink_to(
        "/etc/systemd/system/nvzramconfig.service"
    )
    (root / "etc/nv_tegra_release").write_text("# R36 (release), REVISION: 4.3\n", encoding="utf-8")
