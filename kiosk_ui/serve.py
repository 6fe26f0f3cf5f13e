"""Production servers for the guest UI, the delivery listener and the staff console: cheroot, in-process.

``listeners(kiosk, cfg)`` is the ``headshot_kiosk.listeners`` entry point that ``python -m appliance run``
discovers; it returns three ``Listener`` objects to ``start()`` and ``stop()``:

* the guest UI on ``[ui] host/port`` — plain HTTP, loopback only (the kiosk's own browser);
* the delivery listener on ``[delivery] host/port`` — TLS, with the certificate and key from the config or,
  for a loopback laptop demo without them, an ephemeral self-signed pair made in memory at start-up;
* the staff console on ``[staff] host/port`` — TLS with the configured certificate, or plain HTTP when bound
  to loopback without one (reached on the device or through an SSH tunnel); never plain HTTP off loopback.

The delivery and staff listeners face the network (the event Wi-Fi's password is on the screen): their
sockets belong to an event-driven front (``kiosk_ui.front``) that completes the TLS handshake and reads the
whole request under deadlines, with a cap per client address, before cheroot's workers see it on a private
Unix socket, so a slow or silent client holds no worker (issue 15). TLS follows Mozilla's "intermediate"
profile on both. The guest UI, loopback only, is served by cheroot directly (its MJPEG preview streams).

Never Flask's development server, never debug mode (STYLE.md §8).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
import shutil
import ssl
import string
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cheroot import errors as cheroot_errors
from cheroot import server as cheroot_server
from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from appliance.config import is_loopback
from appliance.logsafe import redact
from appliance.tlscert import server_leaf
from kiosk_ui.front import BACKEND_BACKLOG, HEAD_OVERHEAD_BYTES, TICKET_ENVIRON, Front, FrontLimits

if TYPE_CHECKING:
    from appliance.config import KioskConfig
    from appliance.kiosk import Kiosk

logger = logging.getLogger(__name__)

# Threads per listener. The guest UI holds one thread per open MJPEG stream (the page keeps one open) plus
# the page's API calls; the delivery listener serves a queue of phones.
UI_THREADS = 12
DELIVERY_THREADS = 24
PROBE_THREADS = 2  # the connectivity-check answers are a few bytes, made without a lock or I/O
SHUTDOWN_TIMEOUT_SECONDS = 2.0
EPHEMERAL_CERT_DAYS = 30
# How often a listener looks at its certificate files: a renewal (`provisioning cert renew`, a timer) is
# served from the next check on, without a restart that would end a visit.
CERT_WATCH_SECONDS = 60.0

# Request size limits, enforced by cheroot while it reads, before the app (and the delivery listener's rate
# limiter) runs. cheroot's default is 0 = unlimited: a 200 MB header to the delivery listener grew the
# process from 98 to 336 MB before its 404 (issue 20). The head is the request line plus the headers;
# browsers send well under 2 KiB and the longest legitimate path, /d/<id>.<key>, is 79 bytes.
MAX_REQUEST_HEAD_BYTES = 8 * 1024
# Bodies as each listener's routes need them. The guest API takes small JSON documents: the largest, a
# consent with at most 16 choice names of at most 64 characters, is 1.2 KiB (4.3 KiB if every character
# took four UTF-8 bytes). The staff forms are a few fields, the longest a password of at most 1024
# characters: 12 KiB at the very most, four-byte characters percent-encoded. The delivery listener's only
# body is the empty "Save photo" form. The apps' own MAX_CONTENT_LENGTH (16, 64 and 1 KiB) stays behind.
UI_MAX_BODY_BYTES = 8 * 1024
STAFF_MAX_BODY_BYTES = 16 * 1024
DELIVERY_MAX_BODY_BYTES = 1024
PROBE_MAX_BODY_BYTES = 1  # GET/HEAD only: any body at all is refused before it is read
FALLBACK_MAX_BODY_BYTES = 16 * 1024  # a Listener around an app that declares no MAX_CONTENT_LENGTH
# After refusing an oversized request, read and discard what the client already sent, within these bounds,
# before closing: closing with unread data makes the kernel answer with a TCP reset, which can destroy the
# 413/431 reply before the client reads it. A client still streaming after that gets the reset.
LINGER_MAX_BYTES = 256 * 1024
LINGER_SECONDS = 1.0
LINGER_IDLE_SECONDS = 0.1
# Replies that may leave part of the request unread on the socket.
_OVERSIZE_STATUSES = frozenset({"411", "413", "414", "431"})

# Mozilla's "intermediate" server profile (ssl-config.mozilla.org, version 5.7): TLS 1.3 with its own AEAD
# suites, TLS 1.2 with forward-secret ECDHE and AEAD ciphers only (AES-GCM, ChaCha20-Poly1305): no CBC, no
# RSA key transport, no SHA-1 MACs. The profile's three DHE suites are left out: every client that
# negotiates them also offers ECDHE, and finite-field DH needs parameters we would have to ship.
TLS12_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)

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
    """cheroot's request handler, but its own error replies carry our security headers and close, an
    oversized head is answered 431 (cheroot says 413) and a chunked body 411."""

    def read_request_headers(self) -> bool:
        """cheroot's header parsing, with the size limit's answer corrected and chunked bodies refused."""
        try:
            ok = bool(super().read_request_headers())
        except cheroot_errors.MaxSizeExceeded:
            # parse_request would answer "413 Request Entity Too Large"; RFC 6585 has the precise status.
            self.simple_response(
                "431 Request Header Fields Too Large",
                "The request line and headers exceed the allowed size.",
            )
            return False
        if ok and self.chunked_read:
            # cheroot enforces the body limit on a chunked body only while the app reads it, by raising
            # inside the app (a 500). Browsers and our clients always send a Content-Length, so the length
            # is required up front (RFC 9112 6.3) and checked before a byte of body is read.
            self.simple_response("411 Length Required", "Send the request body with a Content-Length.")
            return False
        return ok

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
        if str(status)[:3] in _OVERSIZE_STATUSES:
            self._drain()

    def _drain(self) -> None:
        """Discard what the client already sent, bounded by LINGER_MAX_BYTES and LINGER_SECONDS, so the
        close that follows is a FIN the client reads the reply before, not a reset that may destroy it."""
        sock = self.conn.socket
        deadline = time.monotonic() + LINGER_SECONDS
        drained = 0
        # OSError covers a timeout, a reset and TLS errors (ssl.SSLError), ValueError a socket already
        # closed; the connection closes next anyway.
        with contextlib.suppress(OSError, ValueError):
            sock.settimeout(LINGER_IDLE_SECONDS)
            while drained < LINGER_MAX_BYTES and time.monotonic() < deadline:
                chunk = sock.recv(16384)
                if not chunk:
                    break
                drained += len(chunk)


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


# Characters a logged path keeps as they are: RFC 3986's unreserved and reserved ones except the quote.
# Everything else, '%' included, is written percent-encoded, so the log shows the path as it was sent.
_PATH_KEEP = frozenset(string.ascii_letters + string.digits + "-._~:/?#[]@!$&()*+,;=")


def loggable_path(path: str) -> str:
    """``path`` (WSGI's PATH_INFO: bytes decoded as latin-1) with every byte outside ``_PATH_KEEP``
    percent-encoded: a client's ``%0A`` cannot start a forged log line, ``%1B`` cannot drive a terminal,
    and quotes and spaces cannot end the ``/d/`` redaction early. Redact the result (appliance.logsafe)."""
    out = []
    for char in path:
        if char in _PATH_KEEP:
            out.append(char)
        else:
            # PATH_INFO holds one byte per character; anything wider did not come from a WSGI server but
            # is never logged raw either.
            raw = char.encode("latin-1") if ord(char) < 0x100 else char.encode("utf-8")
            out.extend(f"%{byte:02X}" for byte in raw)
    return "".join(out)


def loggable_text(text: str) -> str:
    """``text`` with every character that is not printable ASCII (a space is) written as a Python escape
    (``\\n``, ``\\x1b``, ``\\u2028``) and the backslash doubled: one log line stays one line, whatever a
    client put into it."""
    return "".join(
        char if " " <= char <= "~" and char != "\\" else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


class AccessLog:
    """WSGI middleware that logs one line per request with the path redacted (``/d/<redacted>``).

    cheroot itself writes no access log; this is the only one, so delivery tokens cannot reach it. The
    method and path come from the client: they are escaped before they are logged, so a request cannot
    write a line of its own into the journal."""

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
            path = redact(loggable_path(str(environ.get("PATH_INFO", ""))))
            self.log.debug(
                "%s %s -> %s in %.1f ms",
                loggable_text(str(environ.get("REQUEST_METHOD", "-"))),
                path,
                status_holder[0] if status_holder else "-",
                (time.perf_counter() - started) * 1000,
            )
        return result


class FrontGate:
    """WSGI middleware behind a ``Front``: a request is served only with the ticket the front added to it,
    and takes the client's address, the scheme and ``kiosk.on_sent`` (``Exchange.on_sent``) from it. A
    request that reached the private socket some other way is refused: it could claim any address."""

    def __init__(self, app: WsgiApp, front: Front) -> None:
        self.app = app
        self.front = front

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        exchange = self.front.take(str(environ.pop(TICKET_ENVIRON, "")))
        if exchange is None:
            start_response("403 Forbidden", [("Content-Type", "text/plain"), ("Content-Length", "10")])
            return [b"Forbidden\n"]
        environ["REMOTE_ADDR"] = exchange.peer
        environ["REMOTE_PORT"] = str(exchange.port)
        environ["SERVER_PORT"] = str(self.front.port)
        if exchange.tls:
            environ["wsgi.url_scheme"] = "https"
            environ["HTTPS"] = "on"
        environ["kiosk.on_sent"] = exchange.on_sent
        return self.app(environ, start_response)


class Listener:
    """One cheroot server on its own thread, behind a ``Front`` when it faces the network. ``port`` is the
    bound port (useful with port 0).

    ``max_head_bytes`` bounds the request line and headers (431 beyond, 414 for the request line alone),
    ``max_body_bytes`` the declared Content-Length (413 beyond, before the body is read); ``None`` takes the
    app's own ``MAX_CONTENT_LENGTH`` (a Flask app's config), else ``FALLBACK_MAX_BODY_BYTES``.

    ``front`` (default: whenever there is TLS) puts a ``Front`` on the network socket and cheroot on a
    private Unix socket behind it; the front then does the TLS, with ``ssl_adapter``'s context.
    ``front_limits`` overrides its deadlines and caps (tests); the size limits are always the ones above."""

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
        max_head_bytes: int = MAX_REQUEST_HEAD_BYTES,
        max_body_bytes: int | None = None,
        front: bool | None = None,
        front_limits: FrontLimits | None = None,
        tls_paths: tuple[Path, Path] | None = None,
    ) -> None:
        self.name = name
        self.host = host
        self.cert_pem = cert_pem  # the public certificate (tests and `make run` print how to trust it)
        if max_body_bytes is None:
            declared = getattr(app, "config", {}).get("MAX_CONTENT_LENGTH")
            max_body_bytes = int(declared) if declared else FALLBACK_MAX_BODY_BYTES
        if max_head_bytes <= 0 or max_body_bytes <= 0:
            raise ValueError("request size limits must be positive (cheroot reads 0 as unlimited)")
        self.tls = ssl_adapter is not None
        # (certificate chain, key) files the adapter was loaded from; watched for renewals (front only).
        self.tls_paths = tls_paths
        self.cert_watch_seconds = CERT_WATCH_SECONDS
        self._tls_stamp = _stamp(tls_paths)
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._front: Front | None = None
        self._socket_dir: Path | None = None
        wsgi_app: WsgiApp = AccessLog(app, name)
        if ssl_adapter is not None if front is None else front:
            limits = front_limits or FrontLimits(max_head_bytes=max_head_bytes, max_body_bytes=max_body_bytes)
            limits = dataclasses.replace(limits, max_head_bytes=max_head_bytes, max_body_bytes=max_body_bytes)
            # The backend's socket path is only known at start(); cheroot takes it then.
            self._front = Front(
                name,
                host,
                port,
                backend="",
                limits=limits,
                ssl_context=ssl_adapter.context if ssl_adapter is not None else None,
            )
            wsgi_app = FrontGate(wsgi_app, self._front)
        self._server = wsgi.Server(
            (host, port),
            wsgi_app,
            numthreads=threads,
            server_name=f"headshot-kiosk-{name}",
            shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
            request_queue_size=BACKEND_BACKLOG if self._front is not None else 5,
        )
        # Behind the front, each head carries its ticket and "Connection: close" on top of the client's.
        overhead = HEAD_OVERHEAD_BYTES if self._front is not None else 0
        self._server.max_request_header_size = max_head_bytes + overhead
        self._server.max_request_body_size = max_body_bytes
        # cheroot's own error log goes to stderr raw; route it through logging with the token patterns
        # masked (a malformed request line could carry a /d/ path).
        self._server.error_log = self._error_log  # type: ignore[method-assign]
        self._server.ConnectionClass = _KioskConnection
        if ssl_adapter is not None and self._front is None:
            self._server.ssl_adapter = ssl_adapter
        self._thread: threading.Thread | None = None

    def _error_log(self, msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
        # Handshake failures from phones that distrust a self-signed cert are routine: keep them quiet. The
        # message can quote what a client sent (a request line, a header): escaped, then tokens masked.
        logger.log(min(level, logging.INFO), "%s listener: %s", self.name, redact(loggable_text(str(msg))))

    @property
    def front(self) -> Front | None:
        """The event-driven front on the network socket, if this listener has one."""
        return self._front

    @property
    def port(self) -> int:
        if self._front is not None:
            return self._front.port
        addr = self._server.bind_addr
        return int(addr[1]) if isinstance(addr, tuple) else 0

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    def start(self) -> None:
        """Bind (errors raise here, in the caller's thread) and serve on daemon threads."""
        if self._front is not None:
            # cheroot makes its Unix socket world-writable; the private directory (mode 0700, on the tmpfs
            # where there is one) is what keeps other users out. Nothing is stored in it.
            shm = "/dev/shm"  # noqa: S108 - a private mkdtemp directory on the tmpfs, never a fixed name
            self._socket_dir = Path(
                tempfile.mkdtemp(prefix="kiosk-front-", dir=shm if os.path.isdir(shm) else None)
            )
            backend = str(self._socket_dir / f"{self.name}.sock")
            self._server.bind_addr = backend
            self._front.backend = backend
        try:
            self._server.prepare()
            self._thread = threading.Thread(
                target=self._server.serve, name=f"listener-{self.name}", daemon=True
            )
            self._thread.start()
            if self._front is not None:
                self._front.start()
                if self.tls_paths is not None:
                    self._watch_stop.clear()
                    self._watcher = threading.Thread(
                        target=self._watch_certificate, name=f"cert-watch-{self.name}", daemon=True
                    )
                    self._watcher.start()
        except BaseException:
            self.stop()
            raise
        logger.info("%s listener on %s", self.name, self.url)

    def _watch_certificate(self) -> None:
        while not self._watch_stop.wait(self.cert_watch_seconds):
            self.reload_certificate_if_changed()

    def reload_certificate_if_changed(self) -> bool:
        """Serve the certificate files anew if they changed since they were loaded: new handshakes get the
        new chain, connections already open keep theirs. A pair that does not load (a renewal caught half
        written, a key that does not match) is logged and the old one kept; the next check tries again.
        Returns True when the new pair is in use."""
        if self.tls_paths is None or self._front is None or self._front.ssl_context is None:
            return False
        stamp = _stamp(self.tls_paths)
        if stamp == self._tls_stamp:
            return False
        cert_path, key_path = self.tls_paths
        try:
            context = server_context(cert_path, key_path)
            cert_pem = cert_path.read_bytes()
        except (OSError, ssl.SSLError, ValueError) as exc:
            logger.warning(
                "%s listener: renewed certificate not loaded (%s); keeping the current one",
                self.name,
                type(exc).__name__,
            )
            return False
        self._front.ssl_context = context  # read once per accepted connection by the front's loop
        self.cert_pem = cert_pem
        self._tls_stamp = stamp
        logger.info("%s listener: certificate reloaded", self.name)
        return True

    def stop(self) -> None:
        """Stop accepting, finish or drop open requests within the shutdown timeout. Idempotent."""
        self._watch_stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=2)
            self._watcher = None
        if self._front is not None:
            self._front.stop()
        self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout=SHUTDOWN_TIMEOUT_SECONDS + 3)
            self._thread = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None


# -- TLS ------------------------------------------------------------------------------------------


def ephemeral_certificate(hosts: Iterable[str]) -> tuple[bytes, bytes]:
    """A self-signed P-256 *leaf* certificate for ``hosts`` (DNS names or IPs): ``(cert_pem, key_pem)``.

    It is trusted, where anyone trusts it, by pinning this one certificate (``cadata=cert_pem`` in tests,
    a browser's exception). It is never a CA: the probe in issue 20 found ``CA:TRUE`` here, so a laptop that
    trusted it would have trusted anything its key signed. BasicConstraints CA:FALSE (critical), KeyUsage
    digitalSignature only (an ECDSA key signs the handshake; keyEncipherment is for RSA key transport),
    ExtendedKeyUsage serverAuth."""
    names = list(dict.fromkeys(hosts))
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = server_leaf(
        hosts=names,
        public_key=key.public_key(),
        issuer=None,
        sign_key=key,
        not_before=now - datetime.timedelta(minutes=5),
        not_after=now + datetime.timedelta(days=EPHEMERAL_CERT_DAYS),
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _stamp(paths: tuple[Path, Path] | None) -> tuple[tuple[int, int, int], ...] | None:
    """(mtime_ns, size, inode) of each file: a renewal that replaces the files (certbot's rename) or
    rewrites them in place changes at least one. None where a file cannot be read."""
    if paths is None:
        return None
    try:
        return tuple((st.st_mtime_ns, st.st_size, st.st_ino) for st in (p.stat() for p in paths))
    except OSError:
        return None


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """A hardened server context for a PEM chain and key, as cheroot's BuiltinSSLAdapter builds it."""
    context = ssl.create_default_context(purpose=ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert_path), str(key_path))
    return harden_tls(context)


def harden_tls(context: ssl.SSLContext) -> ssl.SSLContext:
    """Mozilla "intermediate" on ``context``: TLS 1.2 and 1.3, ``TLS12_CIPHERS`` only (TLS 1.3's suites are
    all AEAD), no renegotiation, no compression; the client's cipher preference (every suite is strong)."""
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    return context


def _harden(adapter: BuiltinSSLAdapter) -> BuiltinSSLAdapter:
    harden_tls(adapter.context)
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
    return Listener(
        "ui",
        create_app(kiosk),
        cfg.ui.host,
        cfg.ui.port,
        threads=UI_THREADS,
        max_body_bytes=UI_MAX_BODY_BYTES,
    )


def delivery_listener(kiosk: Kiosk, cfg: KioskConfig) -> Listener:
    """The phone-facing listener on ``[delivery] host/port``, always TLS."""
    from kiosk_ui.delivery import create_delivery_app  # noqa: PLC0415

    adapter, cert_pem = delivery_tls(cfg)
    d = cfg.delivery
    return Listener(
        "delivery",
        create_delivery_app(kiosk),
        d.host,
        d.port,
        threads=DELIVERY_THREADS,
        ssl_adapter=adapter,
        cert_pem=cert_pem,
        max_body_bytes=DELIVERY_MAX_BODY_BYTES,
        tls_paths=_tls_paths(d),
    )


def _tls_paths(section: Any) -> tuple[Path, Path] | None:
    """A listener section's configured (certificate, key) pair, or None (ephemeral or no TLS)."""
    cert, key = section.tls_cert_path, section.tls_key_path
    return (cert, key) if cert is not None and key is not None else None


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
    from appliance.accounts import StaffStore  # noqa: PLC0415 - keep `import kiosk_ui.serve` light
    from appliance.audit import AuditLog  # noqa: PLC0415
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
        max_body_bytes=STAFF_MAX_BODY_BYTES,
        tls_paths=_tls_paths(cfg.staff) if tls is not None else None,
        front=True,  # staff work from a phone on the same open Wi-Fi: the same protection, TLS or not
    )


def connectivity_check_listener_for(host: str, port: int) -> Listener:
    """Plain HTTP on ``host:port`` (port 80 on the hotspot) answering the phones' connectivity checks
    (:mod:`kiosk_ui.probes`) and nothing else. Behind a front like the others: it faces the same open
    Wi-Fi, and a client that holds a connection must not hold one of its two threads."""
    from kiosk_ui.probes import connectivity_app  # noqa: PLC0415

    return Listener(
        "probes",
        connectivity_app,
        host,
        port,
        threads=PROBE_THREADS,
        max_body_bytes=PROBE_MAX_BODY_BYTES,
        front=True,
    )


def connectivity_check_listener(kiosk: Kiosk, cfg: KioskConfig) -> Listener | None:
    """The connectivity-check answers on ``[delivery] host``/``connectivity_check_port``; None when off."""
    port = cfg.delivery.connectivity_check_port
    return connectivity_check_listener_for(cfg.delivery.host, port) if port else None


def listeners(kiosk: Kiosk, cfg: KioskConfig) -> list[Listener]:
    """The guest UI, delivery and staff listeners, and the connectivity-check answers when configured, not
    yet started (``python -m appliance run`` calls ``start()`` on each)."""
    found = [ui_listener(kiosk, cfg), delivery_listener(kiosk, cfg), staff_listener(kiosk, cfg)]
    probes = connectivity_check_listener(kiosk, cfg)
    return found if probes is None else [*found, probes]
