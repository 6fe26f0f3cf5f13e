"""Load: 50 phones downloading over TLS at once (GET the page, POST Save) while a guest's visit runs."""

from __future__ import annotations

import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tests.audit.client import HeaderAudit, Phone, phone_ip
from tests.audit.sessions import Visits
from tests.audit.state import Audit, Delivery

MIN_TOKEN_LIFETIME_SECONDS = 60.0


def top_up(audit: Audit, wanted: int, deadline: float) -> list[Delivery]:
    """Pending links young enough to collect; runs extra deliver-and-end visits until there are ``wanted``."""
    window = 10 * 60 - MIN_TOKEN_LIFETIME_SECONDS
    visits = Visits(audit)

    def pool() -> list[Delivery]:
        now = time.time()
        return [d for d in audit.deliveries.values() if d.state == "pending" and now - d.created < window]

    while len(pool()) < wanted and time.monotonic() < deadline:
        visits.run_visit("deliver")
    return pool()


def run_load(audit: Audit, phones: int, deadline: float) -> None:
    """``phones`` concurrent phones, each collecting one pending link, while a visit runs on the kiosk.
    Every pending link the run knows is collected, so the store can be checked empty afterwards."""
    pending = top_up(audit, phones, deadline)
    if len(pending) < phones:
        audit.fail(f"load: only {len(pending)} pending links for {phones} phones (time bound)")
    headers = HeaderAudit()
    errors: list[str] = []
    lock = threading.Lock()
    done_visit = threading.Event()

    def background_visit() -> None:
        try:
            Visits(audit).run_visit("deliver+phone")
        finally:
            done_visit.set()

    def phone_job(n: int, d: Delivery) -> None:
        phone = Phone(audit.layout.delivery_port, audit.layout.cert, phone_ip(n), headers)
        t0 = time.perf_counter()
        try:
            page, saved = phone.download(d.token)
        except OSError as exc:
            with lock:
                errors.append(f"phone {n}: {type(exc).__name__}")
            return
        seconds = time.perf_counter() - t0
        with lock:
            audit.load_latencies.append(seconds)
            if page.status != 200 or saved.status != 200:
                errors.append(f"phone {n}: GET {page.status}, POST {saved.status}")
            elif hashlib.sha256(saved.body).hexdigest() != d.jpeg_sha:
                errors.append(f"phone {n}: received other bytes than the headshot")
            else:
                d.state = "collected"

    visitor = threading.Thread(target=background_visit, daemon=True)
    visitor.start()
    time.sleep(0.3)  # the visit is under way (consent, preview) when the phones arrive
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=phones) as pool:
        for n, d in enumerate(pending):
            pool.submit(phone_job, n, d)
    wall = time.monotonic() - t0
    visitor.join(120)
    if not done_visit.is_set():
        audit.fail("load: the visit running alongside the phones did not finish")
    audit.headers.responses += headers.responses
    audit.headers.server_errors.extend(headers.server_errors)
    audit.headers.missing_headers.extend(headers.missing_headers)
    for e in errors:
        audit.fail(f"load: {e}")
    audit.fuzz["load"] = (
        f"{len(pending)} pending links collected by {phones} concurrent phones: "
        f"{len(audit.load_latencies)} downloads in {wall:.1f} s, {len(errors)} errors"
    )


def collect_rest(audit: Audit) -> None:
    """Phones that come back late: every link still pending is collected (or must already be gone), so the
    RAM store can be checked empty at the end."""
    for n, d in enumerate(list(audit.deliveries.values())):
        if d.state != "pending":
            continue
        phone = Phone(audit.layout.delivery_port, audit.layout.cert, phone_ip(5000 + n), audit.headers)
        _page, saved = phone.download(d.token)
        if saved.status == 200 and hashlib.sha256(saved.body).hexdigest() == d.jpeg_sha:
            d.state = "collected"
        elif saved.status == 404 and time.time() - d.created > 600:
            d.state = "expired"
        else:
            audit.fail(f"a pending link answered {saved.status} to a late phone")
