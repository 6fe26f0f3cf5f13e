"""Thermal zones as an Orin reports them: power-gated zones read -256 °C and must not reach the dashboard
or ``/metrics`` (rbonghi/jetson_stats#350); unreadable zones are skipped as before."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

from kiosk_ui.metrics import PLAUSIBLE_CELSIUS, read_temperatures, temperature_family

# An AGX Orin at idle (L4T r36): GPU and CV0-CV2 power-gated, the rest real.
ORIN_ZONES = (
    ("cpu-thermal", "47406"),
    ("gpu-thermal", "-256000"),
    ("cv0-thermal", "-256000"),
    ("cv1-thermal", "-256000"),
    ("cv2-thermal", "-256000"),
    ("soc0-thermal", "45968"),
    ("tj-thermal", "47406"),
)


def _zones(root: Path, zones: tuple[tuple[str, str], ...]) -> Path:
    for index, (kind, millidegrees) in enumerate(zones):
        zone = root / f"thermal_zone{index}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n", encoding="utf-8")
        (zone / "temp").write_text(millidegrees + "\n", encoding="utf-8")
    return root


def test_power_gated_orin_zones_are_left_out(tmp_path: Path) -> None:
    temperatures = read_temperatures(_zones(tmp_path / "thermal", ORIN_ZONES))
    assert [(t.kind, t.celsius) for t in temperatures] == [
        ("cpu-thermal", 47.406),
        ("soc0-thermal", 45.968),
        ("tj-thermal", 47.406),
    ]
    assert [t.zone for t in temperatures] == ["thermal_zone0", "thermal_zone5", "thermal_zone6"]


@pytest.mark.parametrize(
    ("millidegrees", "kept"),
    [("-40000", True), ("-40001", False), ("150000", True), ("150001", False), ("0", True), ("x", False)],
)
def test_only_plausible_readings_are_kept(tmp_path: Path, millidegrees: str, kept: bool) -> None:
    assert PLAUSIBLE_CELSIUS == (-40.0, 150.0)
    assert bool(read_temperatures(_zones(tmp_path / "t", (("zone", millidegrees),)))) is kept


class _Temperatures(Collector):
    def __init__(self, root: Path) -> None:
        self.root = root

    def collect(self):  # type: ignore[no-untyped-def]
        yield temperature_family(self.root)


def test_metrics_export_no_impossible_temperature(tmp_path: Path) -> None:
    # The family KioskCollector yields for /metrics, exposed the way /metrics exposes it.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Temperatures(_zones(tmp_path / "thermal", ORIN_ZONES)))
    text = generate_latest(registry).decode()
    lines = [line for line in text.splitlines() if line.startswith("headshot_kiosk_temperature_celsius{")]
    assert len(lines) == 3
    assert all("-256" not in line for line in lines)
    assert 'type="gpu-thermal"' not in text and 'type="cpu-thermal"' in text
