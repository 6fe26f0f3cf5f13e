"""Helpers for tests that drive real servers and a real browser: free loopback ports, the TLS delivery
listener on one, and Debian's Chromium under Playwright (which drives the system browser through
``executable_path`` and never downloads one)."""

from __future__ import annotations

import shutil
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from appliance.bench import free_port  # noqa: F401 - re-exported: the tests' free port is the bench's
from appliance.browser import headless_flags
from appliance.config import KioskConfig
from appliance.kiosk import Kiosk
from engine.detect import Face
from kiosk_ui.delivery import create_delivery_app
from kiosk_ui.serve import Listener, delivery_tls

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The kiosk browser's own flags (appliance.browser), headless: tests see what the kiosk sees.
LAUNCH_ARGS = headless_flags()
TIMEOUT_MS = 60_000


def wait_visible(page: Any, screen: str) -> None:
    """Wait until the kiosk page shows ``#screen-<screen>``."""
    page.wait_for_selector(f"#screen-{screen}", state="visible", timeout=TIMEOUT_MS)


def wait_image_loaded(page: Any, selector: str) -> None:
    """Wait until the ``<img>`` at ``selector`` has decoded pixels."""
    page.wait_for_function(
        "sel => { const i = document.querySelector(sel); return i && i.complete && i.naturalWidth > 0; }",
        arg=selector,
        timeout=TIMEOUT_MS,
    )


@contextmanager
def workerless_kiosk(base: Path) -> Iterator[Kiosk]:
    """A started ``Kiosk`` with its RAM store and audit under ``base`` and no warm worker yet: enough for
    the delivery store and the listeners, which answer before any visit exists."""
    cfg = KioskConfig.model_validate(
        {"store": {"path": str(base / "store")}, "audit": {"path": str(base / "audit")}}
    )
    kiosk = Kiosk(cfg)
    kiosk.start(wait_for_worker=False)
    try:
        yield kiosk
    finally:
        kiosk.close()


@contextmanager
def served_kiosk(kiosk: Kiosk) -> Iterator[str]:
    """Start ``kiosk`` behind all its real listeners (as ``python -m appliance run`` does) with the run
    loop's tick every 0.5 s; yields the guest UI's URL; stops and closes everything afterwards."""
    from kiosk_ui.serve import listeners

    kiosk.start()
    started: list[Listener] = []
    stop = threading.Event()
    ticker: threading.Thread | None = None

    def tick() -> None:
        while not stop.wait(0.5):
            kiosk.tick()

    # Everything from here on is undone in the finally, also when a listener fails to bind (a port clash):
    # else the kiosk's RAM-store mount and its warm worker outlive the failed test.
    try:
        for s in listeners(kiosk, kiosk.cfg):
            s.start()
            started.append(s)
        ticker = threading.Thread(target=tick, name="test-tick", daemon=True)
        ticker.start()
        yield started[0].url
    finally:
        stop.set()
        if ticker is not None:
            ticker.join(5)
        for s in started:
            s.stop()
        kiosk.close()


@contextmanager
def tls_delivery_listener(kiosk: Kiosk, *, threads: int = 4) -> Iterator[tuple[Listener, ssl.SSLContext]]:
    """The real delivery listener of ``kiosk`` on a free loopback port, over TLS with the certificate the
    kiosk makes when none is configured, and a client context that trusts exactly that certificate."""
    adapter, cert_pem = delivery_tls(kiosk.cfg)
    listener = Listener(
        "delivery",
        create_delivery_app(kiosk),
        "127.0.0.1",
        0,
        threads=threads,
        ssl_adapter=adapter,
        cert_pem=cert_pem,
    )
    listener.start()
    try:
        yield listener, ssl.create_default_context(cadata=cert_pem.decode())
    finally:
        listener.stop()


def box_face(x0: float, y0: float, x1: float, y1: float) -> Face:
    """A frontal face with box (x0, y0, x1, y1) in pixels and its six landmarks where a detector puts them."""
    w, h = x1 - x0, y1 - y0
    kp = {
        "right_eye": (x0 + 0.3 * w, y0 + 0.35 * h),
        "left_eye": (x0 + 0.7 * w, y0 + 0.35 * h),
        "nose_tip": (x0 + 0.5 * w, y0 + 0.55 * h),
        "mouth_center": (x0 + 0.5 * w, y0 + 0.75 * h),
        "right_ear_tragion": (x0, y0 + 0.4 * h),
        "left_ear_tragion": (x1, y0 + 0.4 * h),
    }
    return Face((x0, y0, x1, y1), kp, 0.9)
