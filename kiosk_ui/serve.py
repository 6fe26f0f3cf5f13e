"""Production servers for the guest UI and the delivery listener: cheroot, threaded, in-process.

``listeners(kiosk, cfg)`` is the ``headshot_kiosk.listeners`` entry point that ``python -m appliance run``
discovers; it returns three ``Listener`` objects to ``start()`` and ``stop()``:

* the guest UI on ``[ui] host/port`` — plain HTTP, loopback only (the kiosk's own browser);
* the delivery listener on ``[delivery] host/port`` — TLS, with the certificate and key from the config or,
  for a loopback laptop demo without them, an ephemeral self-signed pair made in memory at start-up;
* the staff console on ``[staff] host/port`` — TLS with the configured certificate, or plain HTTP when bound
  to loopback without one (reached on the device or through an SSH tunnel); never plain HTTP off loopback.

Never Flask's development server, never debug mode (STYLE.md §8).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import logging
import os
import shutil
import ssl
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cheroot import server as cheroot_server
from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance.config import is_loopback
from appliance.logsafe import redact

if TYPE_CHECKING:
    from appliance.config import KioskConfig
    from appliance.kiosk import Kiosk

logger = logging.getLogger(__name__)

# Threads per listener. The guest UI holds one thread per open MJPEG stream (the page keeps one open) plus
# the page's API calls; the delivery listener serves a queue of phones.
UI_THREADS = 12
DELIVERY_THREADS = 24
SHUTDOWN_TIMEOUT_SECONDS = 2.0
EPHEMERAL_CERT_DAYS = 30

WsgiApp = Callable[..., Iterable[bytes]]


# Headers for the plain-text errors cheroot writes itself, before a request reaches Flask (a malformed
# request line, CONNECT, an unsupported HTTP version): found by the audit's listener fuzzing (P1-2).
SERVER_ERROR_HEADERS = (
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)


_clear_url_cache: Callable[[], None] = getattr(urllib.parse, "clear_cache", lambda: None)


class _KioskRequest(cheroot_server.HTTPRequest):  # type: ignore[misc]
    """cheroot's request handler, but its own error replies carry our security headers and close."""

    def simple_response(self, status: object, msg: str | bytes = "") -> None:
        body = msg.encode("ISO-8859-1") if isinstance(msg, str) else msg
        head = [
            f"{self.server.protocol} {status}",
            f"Content-Length: {len(body)}",
            "Content-Type: text/plain",
            *(f"{name}: {value}" for name, value in SERVER_ERROR_HEADERS),
            "Connection: close",
        ]
        # After an error the request stream cannot be trusted to be in sync: never reuse the connection.
        self.close_connection = True
        with contextlib.suppress(OSError):  # the client is gone; nothing to tell it
            self.conn.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("ISO-8859-1") + body)


class _KioskConnection(cheroot_server.HTTPConnection):  # type: ignore[misc]
    RequestHandlerClass = _KioskRequest

    def communicate(self) -> bool:
        """One request: read, parse, answer (cheroot's own), then forget the request line."""
        try:
            return bool(super().communicate())
        finally:
            # cheroot splits every request URI with urllib.parse.urlsplit, which keeps its recent inputs and
            # results in a process-wide cache (an LRU of 128 on 3.11+, a dict of 20 on 3.10), and werkzeug
            # splits URLs of its own while the app runs: the main process held the /d/<id>.<key> links of
            # the last visits long after they were collected (found by the audit's P1-6 memory scan). Drop
            # the cache after every request; it only saves microseconds. clear_cache() is undocumented but
            # present from 3.10 on; the P0-8 no-copy test fails if it stops working.
            _clear_url_cache()

    def close(self) -> None:
        super().close()
        # cheroot's worker thread keeps its last connection referenced until the next one arrives, and the
        # connection's reader still buffers the last bytes it read: the decrypted request, /d/<id>.<key>
        # included (found by the audit's P1-6 scan). Drop them; the reader is closed and never read again.
        reset = getattr(self.rfile, "_reset_read_buf", None)  # cheroot's reader is a _pyio.BufferedReader
        if reset is not None:
            reset()


class AccessLog:
    """WSGI middleware that logs one line per request with the path redacted (``/d/<redacted>``).

    cheroot itself writes no access log; this is the only one, so delivery tokens cannot reach it."""

    def __init__(self, app: WsgiApp, name: str) -> None:
        self.app = app
        self.log = logging.getLogger(f"{__name__}.access.{name}")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        status_holder: list[str] = []

        def _start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status_holder.append(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info)

        result = self.app(environ, _start)
        if self.log.isEnabledFor(logging.DEBUG):
            path = redact(str(environ.get("PATH_INFO", "")))
            self.log.debug(
                "%s %s -> %s in %.1f ms",
                environ.get("REQUEST_METHOD", "-"),
                path,
                status_holder[0] if status_holder else "-",
                (time.perf_counter() - started) * 1000,
            )
        return result


class Listener:
    """One cheroot server on its own thread. ``port`` is the bound port (useful with port 0)."""

    def __init__(
        self,
        name: str,
        app: WsgiApp,
        host: str,
        port: int,
        *,
        threads: int,
        ssl_adapter: BuiltinSSLAdapter | None = None,
        cert_pem: bytes | None = None,
    ) -> None:
        self.name = name
        self.host = host
        self.cert_pem = cert_pem  # the public certificate (tests and `make run` print how to trust it)
        self._server = wsgi.Server(
            (host, port),
            AccessLog(app, name),
            numthreads=threads,
            server_name=f"headshot-kiosk-{name}",
            shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
        )
        # cheroot's own error log goes to stderr raw; route it through logging with the token patterns
        # masked (a malformed request line could carry a /d/ path).
        self._server.error_log = self._error_log  # type: ignore[method-assign]
        self._server.ConnectionClass = _KioskConnection
        if ssl_adapter is not None:
            self._server.ssl_adapter = ssl_adapter
        self.tls = ssl_adapter is not None
        self._thread: threading.Thread | None = None

    def _error_log(self, msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
        # Handshake failures from phones that distrust a self-signed cert are routine: keep them quiet.
        logger.log(min(level, logging.INFO), "%s listener: %s", self.name, redact(str(msg)))

    @property
    def port(self) -> int:
        addr = self._server.bind_addr
        return int(addr[1]) if isinstance(addr, tuple) else 0

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    def start(self) -> None:
        """Bind (errors raise here, in the caller's thread) and serve on a daemon thread."""
        self._server.prepare()
        self._thread = threading.Thread(target=self._server.serve, name=f"listener-{self.name}", daemon=True)
        self._thread.start()
        logger.info("%s listener on %s", self.name, self.url)

    def stop(self) -> None:
        """Stop accepting, finish or drop open requests within the shutdown timeout. Idempotent."""
        self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout=SHUTDOWN_TIMEOUT_SECONDS + 3)
            self._thread = None


# -- TLS ------------------------------------------------------------------------------------------


def _san_entry(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def ephemeral_certificate(hosts: Iterable[str]) -> tuple[bytes, bytes]:
    """A self-signed P-256 certificate for ``hosts`` (DNS names or IPs): ``(cert_pem, key_pem)``."""
    names = list(dict.fromkeys(hosts))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=EPHEMERAL_CERT_DAYS))
        .add_extension(x509.SubjectAlternativeName([_san_entry(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _harden(adapter: BuiltinSSLAdapter) -> BuiltinSSLAdapter:
    adapter.context.minimum_version = ssl.TLSVersion.TLSv1_2
    return adapter


def ssl_adapter_from_pem(cert_pem: bytes, key_pem: bytes) -> BuiltinSSLAdapter:
    """An adapter for an in-memory pair. cheroot loads certificates from files, so the pair passes through a
    private directory on a tmpfs (/dev/shm) for the moment of loading and is unlinked right after."""
    shm = "/dev/shm"  # noqa: S108 - a private mkdtemp directory on the tmpfs, never a fixed name
    base = shm if os.path.isdir(shm) else None
    directory = Path(tempfile.mkdtemp(prefix="kiosk-tls-", dir=base))
    try:
        cert_path, key_path = directory / "cert.pem", directory / "key.pem"
        for path, data in ((cert_path, cert_pem), (key_path, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        return _harden(BuiltinSSLAdapter(str(cert_path), str(key_path)))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def delivery_tls(cfg: KioskConfig) -> tuple[BuiltinSSLAdapter, bytes]:
    """The delivery listener's TLS adapter and public certificate, from the config or ephemeral."""
    d = cfg.delivery
    if d.tls_cert_path is not None and d.tls_key_path is not None:
        adapter = _harden(BuiltinSSLAdapter(str(d.tls_cert_path), str(d.tls_key_path)))
        return adapter, d.tls_cert_path.read_bytes()
    if not is_loopback(d.host):
        # Config validation refuses this too; a listener must never serve links in clear text.
        raise ValueError("delivery.tls_cert_path and delivery.tls_key_path are required off loopback")
    cert_pem, key_pem = ephemeral_certificate([d.public_host, "localhost", "127.0.0.1", "::1"])
    logger.warning(
        "delivery listener: no TLS certificate configured; using an ephemeral self-signed one for %s "
        "(phones will warn; set delivery.tls_cert_path and delivery.tls_key_path for real use)",
        d.public_host,
    )
    return ssl_adapter_from_pem(cert_pem, key_pem), cert_pem


# -- the entry point --------------------------------------------------------------------------------


def ui_listener(kiosk: Kiosk, cfg: KioskConfig) -> Listener:
    """The guest UI on ``[ui] host/port``: plain HTTP, so loopback only."""
    from kiosk_ui import create_app  # noqa: PLC0415 - keep `import kiosk_ui.serve` light

    if not is_loopback(cfg.ui.host):
        raise ValueError(f"ui.host must be a loopback address; got {cfg.ui.host!r}")
    return Listener("ui", create_app(kiosk), cfg.ui.host, cfg.ui.port, threads=UI_THREADS)


def delivery_listener(kiosk: Kiosk, cfg: KioskConfig) -> Listener:
    """The phone-facing listener on ``[delivery] host/port``, always TLS."""
    from kiosk_ui.delivery import create_delivery_app  # noqa: PLC0415

    adapter, cert_pem = delivery_tls(cfg)
    return Listener(
        "delivery",
        create_delivery_app(kiosk),
        cfg.delivery.host,
        cfg.delivery.port,
        threads=DELIVERY_THREADS,
        ssl_adapter=adapter,
        cert_pem=cert_pem,
    )


def staff_tls(cfg: KioskConfig) -> tuple[BuiltinSSLAdapter, bytes] | None:
    """The staff console's TLS adapter and certificate from the config; None for a loopback console without
    one. Off loopback a certificate is required (config validation refuses it too: passwords and TOTP codes
    must never cross the network in clear text)."""
    s = cfg.staff
    if s.tls_cert_path is not None and s.tls_key_path is not None:
        return _harden(
            BuiltinSSLAdapter(str(s.tls_cert_path), str(s.tls_key_path))
        ), s.tls_cert_path.read_bytes()
    if not is_loopback(s.host):
        raise ValueError("staff.tls_cert_path and staff.tls_key_path are required off loopback")
    return None


def staff_listener(kiosk: Kiosk, cfg: KioskConfig) -> Listener:
    """The staff console on ``[staff] host/port`` with its accounts file and the audit trail."""
    from appliance.audit import AuditLog  # noqa: PLC0415 - keep `import kiosk_ui.serve` light
    from appliance.staff import StaffStore  # noqa: PLC0415
    from kiosk_ui.staff import STAFF_THREADS, create_staff_app  # noqa: PLC0415

    tls = staff_tls(cfg)
    app = create_staff_app(
        kiosk, cfg, store=StaffStore(cfg.staff.accounts_path), audit=AuditLog(cfg.audit.path)
    )
    return Listener(
        "staff",
        app,
        cfg.staff.host,
        cfg.staff.port,
        threads=STAFF_THREADS,
        ssl_adapter=tls[0] if tls is not None else None,
        cert_pem=tls[1] if tls is not None else None,
    )


def listeners(kiosk: Kiosk, cfg: KioskConfig) -> list[Listener]:
    """The guest UI, delivery and staff listeners, not yet started (``python -m appliance run`` calls
    ``start()`` on each)."""
    return [ui_listener(kiosk, cfg), delivery_listener(kiosk, cfg), staff_listener(kiosk, cfg)]
