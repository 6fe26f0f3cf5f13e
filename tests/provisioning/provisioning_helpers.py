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

ORIN_DEVICES = (
    "/dev/nvgpu/igpu0/ctrl",
    "/dev/nvhost-as-gpu",
    "/dev/nvhost-ctrl-gpu",
    "/dev/nvmap",
    "/dev/video0",
)
THOR_DEVICES = ("/dev/nvidia0", "/dev/nvidia-uvm", "/dev/nvidiactl")


def make_target(root: Path, kernel: str, devices: tuple[str, ...] = (), **kwargs: object) -> Target:
    """A device description with fixed ids, as rendering tests want it."""
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
        "headshot-kiosk-browser:x:994:992::/run/headshot-kiosk-browser:/usr/sbin/nologin\n",
        encoding="utf-8",
    )
    (etc / "group").write_text(
        f"root:x:0:\nvideo:x:44:headshot-kiosk\nheadshot-kiosk:x:{GID}:\nheadshot-kiosk-browser:x:992:\n",
        encoding="utf-8",
    )


def seed_devices(root: Path, devices: tuple[str, ...]) -> None:
    """Empty files standing in for device nodes (discovery only looks at names)."""
    for device in devices:
        path = root / device.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


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
