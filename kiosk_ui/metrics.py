"""What the staff console shows and ``/metrics`` exports: counts, durations and states, never contents.

Everything is read at request (or scrape) time from ``Kiosk.health()``, the audit trail's receipt outcomes
(``appliance.audit_tail``), the runtime and model versions (``appliance.versions``) and
``/sys/class/thermal``. Nothing here can reach a pixel, a session id, a render id, a receipt code or a
delivery token: ``health()`` carries none, and the audit trail is read for outcome and date only.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from appliance.audit_tail import receipt_outcomes_on
from appliance.printing import PrinterState, PrinterStatus
from appliance.tlscert import RENEW_WARN_DAYS, days_until_expiry
from appliance.versions import model_versions, runtime_versions

if TYPE_CHECKING:
    from appliance.audit import AuditLog
    from appliance.config import KioskConfig
    from appliance.kiosk import Kiosk

__all__ = [
    "PLAUSIBLE_CELSIUS",
    "THERMAL_ROOT",
    "KioskCollector",
    "Temperature",
    "certificate_expiry_family",
    "dashboard",
    "metrics_text",
    "percentile",
    "printer_families",
    "read_temperatures",
    "temperature_family",
]

logger = logging.getLogger(__name__)

THERMAL_ROOT = Path("/sys/class/thermal")
# Readings outside this range are not temperatures. Orin reports a power-gated zone (GPU, CV0-CV2 while
# idle) as -256 °C (-256000 m°C; tegrastats shows the same, rbonghi/jetson_stats#350); no sensor on a
# running board reads below -40 °C (the industrial modules' limit) or above 150 °C (thermal shutdown trips
# near 105 °C on Orin). Such zones are left out, as if they could not be read.
PLAUSIBLE_CELSIUS = (-40.0, 150.0)
# The counters of Kiosk.health() that /metrics exports, and the outcome label each session counter gets.
_OUTCOME_COUNTERS = {
    "completed": "completed",
    "declined": "declined",
    "timed_out": "timed_out",
    "deleted_by_guest": "deleted_by_guest",
    "revoked": "revoked",
    "staff_aborts": "staff_aborted",
}


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100, nearest rank) of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[rank - 1])


@dataclass(frozen=True)
class Temperature:
    """One thermal zone: its directory name (``thermal_zone0``), its kernel type (``cpu-thermal``,
    ``GPU-therm``...; several zones may share one) and degrees Celsius."""

    zone: str
    kind: str
    celsius: float


def read_temperatures(root: Path = THERMAL_ROOT) -> list[Temperature]:
    """Every readable ``thermal_zone*/temp`` under ``root`` (millidegrees in the kernel ABI); [] if none.

    Containers, VMs and some laptops expose no zones, or zones whose ``temp`` read fails (EINVAL, ENODATA):
    those are skipped, and the dashboard says "n/a". So are impossible readings (outside
    :data:`PLAUSIBLE_CELSIUS`), such as the -256 °C of a power-gated Orin zone.
    """
    found = []
    low, high = PLAUSIBLE_CELSIUS
    for zone in sorted(root.glob("thermal_zone*")):
        try:
            millidegrees = int((zone / "temp").read_text().strip())
        except (OSError, ValueError):
            continue
        if not low <= millidegrees / 1000.0 <= high:
            continue
        try:
            kind = (zone / "type").read_text().strip() or "unknown"
        except OSError:
            kind = "unknown"
        found.append(Temperature(zone.name, kind, millidegrees / 1000.0))
    return found


def dashboard(
    kiosk: Kiosk, audit: AuditLog, *, now: float, thermal_root: Path = THERMAL_ROOT
) -> dict[str, Any]:
    """Everything the dashboard shows, JSON-ready. ``now`` is epoch seconds (for "today", UTC)."""
    health = kiosk.health().as_json()
    today = datetime.fromtimestamp(now, tz=timezone.utc).strftime("%Y-%m-%d")
    outcomes = receipt_outcomes_on(audit, today)
    render_ms = [float(v) for v in health["render_ms"]]
    wipe_ms = [float(v) for v in health["wipe_ms"]]
    return {
        "phase": health["phase"],
        "paused": health["paused"],
        "camera": health["camera"],
        "worker": health["worker"],
        "engine": {
            "backend": kiosk.cfg.engine.backend,
            "in_use": health["worker"]["engine_backend"],
            "runtimes": runtime_versions(),
            "models": model_versions(kiosk.cfg.engine.models_dir),
        },
        "render_ms": {
            "p50": percentile(render_ms, 50),
            "p95": percentile(render_ms, 95),
            "samples": len(render_ms),
        },
        "wipe_ms": {"p50": percentile(wipe_ms, 50), "p95": percentile(wipe_ms, 95), "samples": len(wipe_ms)},
        "today": {
            "date": today,
            "visits": sum(outcomes.values()),
            "completed": outcomes["delivered"],
            "declined": outcomes["declined"],
            "timed_out": outcomes["timed_out"],
            "deleted_by_guest": outcomes["deleted"] + outcomes["revoked"],
            "aborted_by_staff": outcomes["aborted"],
            "errors": outcomes["error"],
        },
        "since_start": health["counters"],
        "store": health["store"],
        "deliveries_pending": health["deliveries_pending"],
        "uptime_seconds": health["uptime_seconds"],
        # state (ready, printing, out_of_media, offline, disabled), CUPS's reasons, prints left on the
        # media when the printer reports it, and the prints since start (counters: nothing of a guest).
        "printer": {
            **health["printer"],
            "submitted": health["counters"].get("prints_submitted", 0),
            "completed": health["counters"].get("prints_completed", 0),
            "failed": health["counters"].get("prints_failed", 0),
        },
        "temperatures": [(t.kind, t.celsius) for t in read_temperatures(thermal_root)],
        # Days until each configured certificate file expires (the same reading as doctor and /metrics);
        # "warn" below appliance.tlscert.RENEW_WARN_DAYS: renew while the kiosk is online.
        "certificates": certificate_expiry(kiosk.cfg),
    }


def certificate_days(cfg: KioskConfig, *, now: datetime | None = None) -> Iterator[tuple[str, float | None]]:
    """``(listener, days)`` for each listener with a configured certificate file: days (fractional,
    negative once expired) until its leaf expires, read from the file now; None for an unreadable file."""
    for listener, path in (("delivery", cfg.delivery.tls_cert_path), ("staff", cfg.staff.tls_cert_path)):
        if path is None:
            continue
        try:
            yield listener, days_until_expiry(path, now=now)
        except (OSError, ValueError) as exc:
            logger.debug("%s certificate unreadable: %s", listener, type(exc).__name__)
            yield listener, None


def certificate_expiry(cfg: KioskConfig, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """``[{"listener", "days", "warn"}]`` for the dashboard: whole days, and "warn" below
    ``RENEW_WARN_DAYS`` or for an unreadable file."""
    return [
        {
            "listener": listener,
            "days": None if days is None else int(days),
            "warn": days is None or days < RENEW_WARN_DAYS,
        }
        for listener, days in certificate_days(cfg, now=now)
    ]


class KioskCollector(Collector):
    """A Prometheus collector that reads ``kiosk.health()`` at scrape time (no state of its own)."""

    def __init__(self, kiosk: Kiosk, *, thermal_root: Path = THERMAL_ROOT) -> None:
        self.kiosk = kiosk
        self.thermal_root = thermal_root

    def collect(self) -> Iterable[Metric]:
        health = self.kiosk.health()
        counters = health.counters
        prefix = "headshot_kiosk"

        started = CounterMetricFamily(
            f"{prefix}_sessions_started", "Guest visits started (attract -> consent)."
        )
        started.add_metric([], counters["started"])
        yield started
        ended = CounterMetricFamily(
            f"{prefix}_sessions_ended", "Guest visits ended, by outcome.", labels=["outcome"]
        )
        for key, outcome in _OUTCOME_COUNTERS.items():
            ended.add_metric([outcome], counters[key])
        yield ended
        for key, doc in (
            ("wipes", "Session wipes (every visit ends in one)."),
            ("errors", "Visits ended by a camera, engine or worker error."),
            ("worker_deaths", "Session worker processes that died during a visit."),
        ):
            counter = CounterMetricFamily(f"{prefix}_{key}", doc)
            counter.add_metric([], counters[key])
            yield counter

        for name, values, doc in (
            ("render_duration_seconds", health.render_ms, "Headshot render time over the last renders."),
            ("wipe_duration_seconds", health.wipe_ms, "Wipe time over the last wipes."),
        ):
            # "percentile", not "quantile": Prometheus reserves quantile for summaries, and promtool's
            # check rejects it on a gauge (found by the fleet tests).
            family = GaugeMetricFamily(f"{prefix}_{name}", doc, labels=["percentile"])
            for q in (50, 95):
                value = percentile(values, q)
                family.add_metric([str(q)], math.nan if value is None else value / 1000.0)
            yield family

        store = health.store
        for key, name, doc in (
            ("bytes_used", "store_used_bytes", "Ciphertext bytes in the RAM store."),
            ("capacity_bytes", "store_capacity_bytes", "Size cap of the RAM store."),
            ("objects", "store_objects", "Encrypted objects in the RAM store."),
        ):
            family = GaugeMetricFamily(f"{prefix}_{name}", doc)
            family.add_metric([], getattr(store, key))
            yield family

        worker = health.worker
        camera_state = health.camera.state
        for name, value, doc in (
            ("paused", health.paused, "1 while staff have paused the kiosk."),
            ("session_active", health.phase != "idle", "1 while a guest visit is in progress."),
            ("worker_spare_ready", worker.spare_ready, "1 while a warm spare worker is ready."),
            ("worker_session_alive", worker.session_worker, "1 while a visit's worker process runs."),
            ("camera_open", camera_state not in ("closed", "unknown"), "1 while the camera is open."),
            (
                "camera_present",
                health.camera_present,
                "1 while the configured camera's device or file is there (checked without opening it).",
            ),
            ("update_ready", health.update_ready, "1 while an update's pause holds and no visit is left."),
            ("deliveries_pending", health.deliveries_pending, "Download links not yet used or expired."),
            ("uptime_seconds", health.uptime_seconds, "Seconds since the kiosk started."),
        ):
            family = GaugeMetricFamily(f"{prefix}_{name}", doc)
            family.add_metric([], float(value))
            yield family

        yield from printer_families(health.printer, counters)

        in_use = GaugeMetricFamily(
            f"{prefix}_engine_backend_info",
            "1 for the inference runtime the last worker loaded (with backend = auto, the one it chose).",
            labels=["configured", "in_use"],
        )
        in_use.add_metric([str(self.kiosk.cfg.engine.backend), str(worker.engine_backend or "none")], 1.0)
        yield in_use

        yield temperature_family(self.thermal_root)
        yield certificate_expiry_family(self.kiosk.cfg)


def printer_families(printer: PrinterStatus, counters: Mapping[str, int]) -> Iterator[Metric]:
    """The printer (names pinned for the fleet's alert rules): ``headshot_kiosk_printer_state{state}``,
    1 for the current state and 0 for the others; ``headshot_kiosk_prints_total`` (jobs completed) and
    ``headshot_kiosk_print_failures_total``; ``headshot_kiosk_printer_media_remaining`` (prints left) only
    when the printer reports it."""
    state = GaugeMetricFamily(
        "headshot_kiosk_printer_state",
        "1 for the printer's current state (ready, printing, out_of_media, offline, disabled), else 0.",
        labels=["state"],
    )
    for value in PrinterState:
        state.add_metric([value.value], 1.0 if printer.state is value else 0.0)
    yield state
    completed = CounterMetricFamily("headshot_kiosk_prints", "Print jobs completed (handed to the printer).")
    completed.add_metric([], counters.get("prints_completed", 0))
    yield completed
    failed = CounterMetricFamily("headshot_kiosk_print_failures", "Print jobs the printer or CUPS gave up.")
    failed.add_metric([], counters.get("prints_failed", 0))
    yield failed
    if printer.media_remaining is not None:
        media = GaugeMetricFamily(
            "headshot_kiosk_printer_media_remaining", "Prints left on the loaded paper and ribbon."
        )
        media.add_metric([], float(printer.media_remaining))
        yield media


def certificate_expiry_family(cfg: KioskConfig, *, now: datetime | None = None) -> GaugeMetricFamily:
    """``headshot_kiosk_tls_certificate_expiry_days{listener}``: days (fractional, negative once expired)
    until the leaf of each configured certificate file expires, read from the file at scrape time (what
    ``doctor`` reads too; after a renewal, the file a restart will serve). A listener without a configured
    file (the self-signed one made at start) or with an unreadable one has no sample."""
    family = GaugeMetricFamily(
        "headshot_kiosk_tls_certificate_expiry_days",
        f"Days until each listener's configured TLS certificate expires (alert below {RENEW_WARN_DAYS}).",
        labels=["listener"],
    )
    for listener, days in certificate_days(cfg, now=now):
        if days is not None:  # a listener without its file did not start anyway: no sample
            family.add_metric([listener], days)
    return family


def temperature_family(thermal_root: Path = THERMAL_ROOT) -> GaugeMetricFamily:
    """``headshot_kiosk_temperature_celsius{zone, type}`` for every plausible zone under ``thermal_root``."""
    temperatures = GaugeMetricFamily(
        "headshot_kiosk_temperature_celsius", "Thermal zone temperatures.", labels=["zone", "type"]
    )
    for temperature in read_temperatures(thermal_root):
        temperatures.add_metric([temperature.zone, temperature.kind], temperature.celsius)
    return temperatures


def metrics_text(kiosk: Kiosk, *, thermal_root: Path = THERMAL_ROOT) -> bytes:
    """The Prometheus text exposition of ``kiosk`` right now.

    A private registry per call: the global one would also export whatever else registered itself in the
    process, and a fresh registry holds nothing between scrapes.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(KioskCollector(kiosk, thermal_root=thermal_root))
    return generate_latest(registry)
