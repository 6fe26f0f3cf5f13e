"""Issue 15.6: slow and hostile clients cannot starve the phones.

Measured before (cheroot's fixed pool, which also handshook in its accept thread): 50 TLS connections that
sent their headers slowly made a phone wait 17.9 s for its page, 200 made every phone time out, 7 TCP
connections that never started TLS were already refused. Now, on loopback: with 200 slow-header TLS
connections and 200 silent TCP connections held open (reopened as the listener drops them), phones open
and collect their links with a p99 within ``P99_BOUND_SECONDS`` (target 1 s; the bound allows for a shared
CI machine); the same for the staff console. The deadlines are deadlines for the whole handshake and the
whole head, not per read, and a cap per client address drops the oldest connection of that address that
still has not sent its request.

Set ``KIOSK_P15_REPORT=1`` to print the measured figures (they go to BENCHMARKS.md).
"""

from __future__ import annotations

import http.client
import os
import select
import socket
import ssl
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from appliance.config import KioskConfig
from appliance.kiosk import Kiosk
from kiosk_ui.delivery import create_delivery_app
from kiosk_ui.front import FrontLimits
from kiosk_ui.serve import DELIVERY_THREADS, Listener, delivery_tls, staff_listener
from tests.support import free_port, tls_delivery_listener

SLOW = 200
IDLE = 200
PER_SOURCE = 40  # hostile connections per loopback source address (the per-address cap is 64)
PHONES = 4  # phones at once
VISITS = 15  # visits per phone: open the page, collect the photo
P99_TARGET_SECONDS = 1.0
P99_BOUND_SECONDS = float(os.environ.get("KIOSK_P15_P99_BOUND", "2.0"))
JPEG = b"\xff\xd8\xff\xe0" + os.urandom(300 * 1024) + b"\xff\xd9"
REPORT = os.environ.get("KIOSK_P15_REPORT") == "1"


def _raise_fd_limit() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


class Hostile:
    """Holds ``slow`` connections that finished TLS (when ``tls``) and send a request head one byte at a
    time, and ``idle`` TCP connections that send nothing, from loopback addresses 127.0.0.2 and up (the
    phones use 127.0.0.1); whatever the listener closes is opened again at once."""

    def __init__(self, port: int, context: ssl.SSLContext | None, *, slow: int, idle: int) -> None:
        self.port = port
        self.context = context
        self.wanted = {"slow": slow, "idle": idle}
        self.open: dict[str, list[socket.socket]] = {"slow": [], "idle": []}
        self.reopened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hostile", daemon=True)
        self._sources: dict[str, int] = {}

    def _source(self, kind: str, index: int) -> str:
        base = 2 if kind == "slow" else 2 + (self.wanted["slow"] + PER_SOURCE - 1) // PER_SOURCE
        return f"127.0.0.{base + index // PER_SOURCE}"

    def _connect(self, kind: str, index: int) -> socket.socket | None:
        try:
            raw = socket.create_connection(
                ("127.0.0.1", self.port), timeout=5, source_address=(self._source(kind, index), 0)
            )
            if kind == "idle":
                return raw
            sock = self.context.wrap_socket(raw, server_hostname="localhost") if self.context else raw
            sock.sendall(b"GET /d/" + b"0" * 32 + b"." + b"A" * 43 + b" HTTP/1.1\r\nHost: localhost\r\nX-")
            return sock
        except OSError:
            return None

    def fill(self) -> None:
        for kind, count in self.wanted.items():
            held = self.open[kind]
            while len(held) < count:
                sock = self._connect(kind, len(held))
                if sock is not None:
                    held.append(sock)

    def start(self) -> None:
        self.fill()
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for kind in ("slow", "idle"):
                held = self.open[kind]
                for i, sock in enumerate(held):
                    try:
                        if kind == "slow":
                            sock.send(b"a")  # one byte per half second: a head that never ends
                        elif select.select([sock], [], [], 0)[0] and not sock.recv(1):
                            raise ConnectionError  # the listener closed it
                    except (OSError, ValueError):
                        sock.close()
                        replacement = self._connect(kind, i)
                        if replacement is not None:
                            held[i] = replacement
                            self.reopened += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for held in self.open.values():
            for sock in held:
                sock.close()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _phones(visit: Callable[[str], list[float]]) -> list[float]:
    """Run ``PHONES`` phones, each from its own address (127.0.1.n), doing ``VISITS`` visits each; returns
    every request's latency in seconds."""
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def phone(address: str) -> None:
        for _ in range(VISITS):
            try:
                times = visit(address)
            except (OSError, AssertionError, http.client.HTTPException) as exc:
                with lock:
                    errors.append(exc)
                continue
            with lock:
                latencies.extend(times)

    threads = [threading.Thread(target=phone, args=(f"127.0.1.{n + 1}",)) for n in range(PHONES)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, f"{len(errors)} phone requests failed, e.g. {errors[:3]!r}"
    return latencies


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    _raise_fd_limit()
    base: Path = tmp_path_factory.mktemp("p15-slow")
    cfg = KioskConfig.model_validate(
        {
            "store": {"path": str(base / "store")},
            "audit": {"path": str(base / "audit")},
            "staff": {"port": free_port(), "accounts_path": str(base / "staff.json")},
        }
    )
    k = Kiosk(cfg)
    k.start(wait_for_worker=False)  # links are made straight in the store: no visit needed
    yield k
    k.close()


def _delivery_visit(
    kiosk: Kiosk, listener: Listener, context: ssl.SSLContext
) -> Callable[[str], list[float]]:
    def visit(address: str) -> list[float]:
        assert kiosk.deliveries is not None
        path = "/d/" + kiosk.deliveries.create(JPEG).token
        times = []
        for method in ("GET", "POST"):  # a phone opens the page, then collects on a new connection
            started = time.perf_counter()
            conn = http.client.HTTPSConnection(
                "127.0.0.1", listener.port, context=context, timeout=20, source_address=(address, 0)
            )
            try:
                conn.request(method, path)
                response = conn.getresponse()
                body = response.read()
            finally:
                conn.close()
            times.append(time.perf_counter() - started)
            assert response.status == 200, (method, response.status)
            assert method == "GET" or body == JPEG
        return times

    return visit


def _report(name: str, **figures: object) -> None:
    if REPORT:
        print(f"\n[p15] {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def test_phones_collect_within_a_second_while_400_hostile_connections_are_held(kiosk: Kiosk) -> None:
    with tls_delivery_listener(kiosk, threads=DELIVERY_THREADS) as (listener, context):
        front = listener.front
        assert front is not None
        visit = _delivery_visit(kiosk, listener, context)
        quiet = _phones(visit)
        hostile = Hostile(listener.port, context, slow=SLOW, idle=IDLE)
        hostile.start()
        try:
            time.sleep(0.5)
            held = front.connections()
            loaded = _phones(visit)
            held = min(held, front.connections())
        finally:
            hostile.stop()
    p99_quiet, p99_loaded = _percentile(quiet, 0.99), _percentile(loaded, 0.99)
    _report(
        "delivery",
        requests=len(loaded),
        p50_quiet_ms=round(statistics.median(quiet) * 1000, 1),
        p99_quiet_ms=round(p99_quiet * 1000, 1),
        p50_loaded_ms=round(statistics.median(loaded) * 1000, 1),
        p99_loaded_ms=round(p99_loaded * 1000, 1),
        max_loaded_ms=round(max(loaded) * 1000, 1),
        hostile_held=held,
        reopened=hostile.reopened,
    )
    # The load was really there: the listener held (nearly) all of it while the phones were served.
    assert held >= 0.9 * (SLOW + IDLE), held
    assert len(loaded) == 2 * PHONES * VISITS
    assert p99_loaded <= P99_BOUND_SECONDS, f"p99 {p99_loaded:.3f} s with the hostile load (target 1 s)"


def test_the_staff_console_is_protected_the_same_way(kiosk: Kiosk) -> None:
    listener = staff_listener(kiosk, kiosk.cfg)  # plain HTTP on loopback, behind the same front
    listener.start()
    try:
        assert listener.front is not None

        def visit(address: str) -> list[float]:
            started = time.perf_counter()
            conn = http.client.HTTPConnection(
                "127.0.0.1", listener.port, timeout=20, source_address=(address, 0)
            )
            try:
                conn.request("GET", "/staff/login")
                response = conn.getresponse()
                response.read()
            finally:
                conn.close()
            assert response.status == 200, response.status
            return [time.perf_counter() - started]

        hostile = Hostile(listener.port, None, slow=SLOW, idle=IDLE)
        hostile.start()
        try:
            time.sleep(0.5)
            held = listener.front.connections()
            loaded = _phones(visit)
        finally:
            hostile.stop()
    finally:
        listener.stop()
    p99 = _percentile(loaded, 0.99)
    _report("staff", requests=len(loaded), p99_loaded_ms=round(p99 * 1000, 1), hostile_held=held)
    assert held >= 0.9 * (SLOW + IDLE), held
    assert p99 <= P99_BOUND_SECONDS, f"p99 {p99:.3f} s with the hostile load (target 1 s)"


# -- the deadlines and the cap, with short limits -----------------------------------------------------------

SHORT = FrontLimits(
    max_head_bytes=8192, max_body_bytes=1024, handshake_seconds=0.5, head_seconds=1.0, per_address=8
)


@pytest.fixture
def short(kiosk: Kiosk) -> Iterator[tuple[Listener, ssl.SSLContext]]:
    adapter, cert_pem = delivery_tls(kiosk.cfg)
    listener = Listener(
        "delivery",
        create_delivery_app(kiosk, rate_limit=10_000),
        "127.0.0.1",
        0,
        threads=2,
        ssl_adapter=adapter,
        cert_pem=cert_pem,
        front_limits=SHORT,
    )
    listener.start()
    try:
        yield listener, ssl.create_default_context(cadata=cert_pem.decode())
    finally:
        listener.stop()


def _closed_after(sock: socket.socket, limit: float) -> float:
    """Seconds until the server closes ``sock`` (reading and discarding), at most ``limit``."""
    started = time.monotonic()
    sock.settimeout(limit)
    try:
        while sock.recv(4096):
            pass
    except (TimeoutError, ConnectionError, ssl.SSLError):
        pass
    return time.monotonic() - started


def test_a_connection_that_never_starts_tls_is_closed_at_the_handshake_deadline(
    short: tuple[Listener, ssl.SSLContext],
) -> None:
    listener, _ = short
    with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as raw:
        assert _closed_after(raw, 5) < SHORT.handshake_seconds + 0.5


def test_the_head_deadline_is_for_the_whole_head_not_per_read(short: tuple[Listener, ssl.SSLContext]) -> None:
    """A byte every 0.1 s would never meet a per-read timeout; the head's deadline ends it anyway."""
    listener, context = short
    with (
        socket.create_connection(("127.0.0.1", listener.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        started = time.monotonic()
        tls.sendall(b"GET /d/x HTTP/1.1\r\nHost: localhost\r\n")
        tls.settimeout(0.1)
        closed = False
        while time.monotonic() - started < 5 and not closed:
            try:
                tls.sendall(b"X")
                closed = tls.recv(1) == b""
            except TimeoutError:
                continue
            except (ConnectionError, ssl.SSLError):
                closed = True
        elapsed = time.monotonic() - started
    assert closed and elapsed < SHORT.head_seconds + 0.5, elapsed


def test_the_cap_per_address_drops_that_address_oldest_waiting_connection(
    kiosk: Kiosk, short: tuple[Listener, ssl.SSLContext]
) -> None:
    listener, context = short
    front = listener.front
    assert front is not None
    source = ("127.0.0.9", 0)
    held = [
        socket.create_connection(("127.0.0.1", listener.port), timeout=5, source_address=source)
        for _ in range(SHORT.per_address + 4)
    ]
    try:
        time.sleep(0.2)
        assert front.connections() <= SHORT.per_address
        assert front.evicted >= 4
        # A real request from the same address still gets through: it evicts the oldest silent one.
        assert kiosk.deliveries is not None
        path = "/d/" + kiosk.deliveries.create(JPEG).token
        raw = socket.create_connection(("127.0.0.1", listener.port), timeout=5, source_address=source)
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
            assert tls.recv(12) == b"HTTP/1.1 200"
    finally:
        for sock in held:
            sock.close()
