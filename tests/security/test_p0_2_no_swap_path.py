"""P0-2 no swap path: the rendered posture gives session data no way to reach swap, and this machine's
swap state is reported.

Layers: the unit's ``MemorySwapMax=0`` (cgroup v2: the service is never swapped), the RAM store and /tmp on
tmpfs with ``noswap`` where the kernel has it (>= 6.4), and the system swap policy: swap off (swap.target
and L4T's nvzramconfig masked, ``swapoff``) or zram without a backing device.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from provisioning.apply import apply
from provisioning.configfile import device_config
from provisioning.render import render_kiosk_unit
from provisioning.runner import Runner
from provisioning.target import detect_target


@pytest.mark.parametrize(("kernel", "noswap"), [("6.8.12-tegra", True), ("5.15.148-tegra", False)])
def test_rendered_posture_has_no_swap_path(tmp_path: Path, kernel: str, noswap: bool) -> None:
    root = tmp_path / "root"
    runner = Runner(execute=False)
    target = detect_target(root, kernel_release=kernel)
    apply(target, None, runner, io.StringIO())
    unit = (root / "etc/systemd/system/headshot-kiosk.service").read_text(encoding="utf-8")
    assert "MemorySwapMax=0" in unit.splitlines()
    store = str(device_config(target).store.path)
    tmpfs = [line for line in unit.splitlines() if line.startswith("TemporaryFileSystem=")]
    assert any(line.startswith(f"TemporaryFileSystem={store}:") for line in tmpfs)
    assert all(line.endswith(",noswap") == noswap for line in tmpfs), tmpfs
    # Swap policy "off": every swap unit masked and swap turned off.
    system = root / "etc/systemd/system"
    assert os.readlink(system / "swap.target") == "/dev/null"
    assert os.readlink(system / "nvzramconfig.service") == "/dev/null"
    assert ("swapoff", "--all") in runner.commands


def test_zram_policy_has_no_backing_device(tmp_path: Path) -> None:
    root = tmp_path / "root"
    apply(
        detect_target(root, kernel_release="6.8.0", swap_policy="zram"),
        None,
        Runner(execute=False),
        io.StringIO(),
    )
    conf = (root / "etc/systemd/zram-generator.conf").read_text(encoding="utf-8")
    assert "[zram0]" in conf and "writeback-device" not in conf


def test_browser_unit_cannot_swap_either() -> None:
    from provisioning.render import render_browser_unit

    target = detect_target(Path("/nonexistent"), kernel_release="6.8.0", devices=())
    assert "MemorySwapMax=0" in render_browser_unit(device_config(target), target)
    assert "MemorySwapMax=0" in render_kiosk_unit(device_config(target), target)


def test_report_swap_on_this_machine(record_property: pytest.RecordProperty) -> None:
    try:
        lines = Path("/proc/swaps").read_text(encoding="utf-8").splitlines()[1:]
    except OSError:
        pytest.skip("/proc/swaps is not readable here")
    active = [line.split()[0] for line in lines if line.strip()]
    record_property("swap_devices", ",".join(active) or "none")
    print(f"swap on this machine: {', '.join(active) if active else 'none active'}")
    # Reported, not asserted: a developer laptop may swap; the device posture is asserted above.
