"""The event-driven front of the network listeners: TLS handshake, request head and body under deadlines.

cheroot handshakes in its accept thread and reads a request head with blocking reads in a worker thread: on
the kiosk's open event Wi-Fi, 50 TLS connections sending their headers slowly made a phone wait 17.9 s for
its page, 200 made every phone time out, and 7 TCP connections that never started TLS blocked the accept
loop (issue 15). Here one event loop thread holds every connection until its request is complete:

* **accept**, with a cap per client address and a cap on all connections; when full, the connection that
  has waited longest for its request is dropped, never one whose request is being answered;
* **handshake** (TLS listeners) within ``handshake_seconds``, and the **whole request** — line, headers and
  a body of at most ``max_body_bytes`` — within ``head_seconds`` of it: deadlines, not per-read timeouts;
* the complete request is passed to cheroot's WSGI workers over a private Unix socket (``backend``) and the
  whole reply read back at once, so a worker never waits for a client in either direction;
* the reply is written to the client at the client's pace; then the front closes its side and reads what
  the client still sends (bounded), so a refusal is read before the close, not destroyed by a reset.

What is not complete within the limits (a head over ``max_head_bytes``, a body over ``max_body_bytes``, a
chunked body) goes to cheroot as far as it was read: cheroot answers 431, 413 or 411 exactly as before. The
front adds two header lines (its ticket and ``Connection: close``); the client's own copies are dropped.

A request's ``Exchange`` reaches the WSGI side through the ticket (``Front.take``): the client's address
and ``on_sent``, through which the delivery app learns whether its reply reached the phone — every byte
written and acknowledged by the phone's TCP, and the connection not reset by the phone before it had read
them (a page closed mid-download) — to spend a link only then (issue 15).

Nothing of a request is logged: not its line, not its headers, not the client's address.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import secrets
import socket
import ssl
import struct
import termios
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

TICKET_HEADER = "X-Kiosk-Front"
TICKET_ENVIRON = "HTTP_X_KIOSK_FRONT"
# What the front adds to a request head: the ticket line (32 hex digits) and "Connection: close". The
# backend's head limit is the client's plus this, so the client's limit stays exactly max_head_bytes.
HEAD_OVERHEAD_BYTES = len(f"{TICKET_HEADER}: {'0' * 32}\r\n") + len("Connection: close\r\n")
_DROPPED_HEADERS = frozenset({b"connection", b"x-kiosk-front"})
# Linux: bytes written but not yet acknowledged by the peer (SIOCOUTQ, which equals TIOCOUTQ).
_OUTQ = getattr(termios, "TIOCOUTQ", None)
_ACK_POLL_SECONDS = 0.01
_TCP_INFO = getattr(socket, "TCP_INFO", None)
_TCP_CLOSE = 7  # include/net/tcp_states.h
_RECV_BYTES = 65536
_BACKEND_RECV_BYTES = 256 * 1024
_BACKEND_RETRY_SECONDS = 0.005
# cheroot's listen backlog on the private socket: every request the front has complete may wait there for
# a worker (cheroot's default, 5, refused the sixth of 32 concurrent POSTs).
BACKEND_BACKLOG = 1024


def _tcp_state(sock: socket.socket) -> int | None:
    """The kernel's TCP state of ``sock`` (the first byte of Linux's ``struct tcp_info``), if known."""
    if _TCP_INFO is None:
        return None
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 8)[0]
    except OSError:
        return None


@dataclass(frozen=True)
class FrontLimits:
    """How long and how much the front waits for a client. Seconds and bytes."""

    max_head_bytes: int
    max_body_bytes: int
    handshake_seconds: float = 5.0
    # From the end of the handshake (or the accept, without TLS) to the last byte of the body. A phone sends
    # its few hundred bytes in one segment; 10 s covers a very bad Wi-Fi link.
    head_seconds: float = 10.0
    # Open connections per client address, any phase. A phone's browser opens up to 6 per host and every
    # phone on the kiosk's own access point has its own address; the P0-8 test opens 32 at once from one.
    per_address: int = 64
    max_connections: int = 512
    backend_seconds: float = 60.0
    # Writing a reply and, for a reply whose outcome is wanted, waiting for its acknowledgement.
    send_seconds: float = 60.0
    # After the reply: how long and how much of what the client still sends is read before the close.
    linger_seconds: float = 1.0
    linger_bytes: int = 256 * 1024
    # After a reply whose outcome is wanted was acknowledged: how long to wait for the client's close (a
    # FIN: it read everything; a reset: it closed with our bytes unread).
    settle_seconds: float = 2.0
    max_reply_bytes: int = 64 * 2**20


class Exchange:
    """One request passed from the front to the WSGI workers. ``peer``/``port``: the client's address.

    ``on_sent(callback)`` asks for the reply's outcome: the front calls ``callback(True)`` once every byte
    of the reply was acknowledged by the client and the client did not reset the connection before reading
    them, else ``callback(False)`` (cut, reset, timed out, not sent at all). Exactly once, from the front's
    thread; a callback must be quick and must not raise."""

    def __init__(self, peer: str, port: int, tls: bool) -> None:
        self.peer = peer
        self.port = port
        self.tls = tls
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[bool], None]] = []
        self._outcome: bool | None = None

    def on_sent(self, callback: Callable[[bool], None]) -> None:
        with self._lock:
            if self._outcome is None:
                self._callbacks.append(callback)
                return
            outcome = self._outcome
        callback(outcome)

    @property
    def wants_outcome(self) -> bool:
        with self._lock:
            return bool(self._callbacks)

    def settle(self, sent: bool) -> None:
        """Report the outcome to every callback, once; later calls do nothing."""
        with self._lock:
            if self._outcome is not None:
                return
            self._outcome = sent
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback(sent)
            except Exception as exc:  # a callback's failure must not take the front's loop down
                logger.warning("front: an outcome callback failed with %s", type(exc).__name__)


class _Closed(Exception):
    """The client closed or reset the connection before its request was complete."""


class _Connection:
    """Book-keeping for one accepted connection."""

    __slots__ = ("peer", "port", "task", "waiting")

    def __init__(self, peer: str, port: int) -> None:
        self.peer = peer
        self.port = port
        self.waiting = True  # still in the handshake or the request: may be dropped when the front is full
        self.task: asyncio.Task[None] | None = None


def _header_name(line: bytes) -> bytes:
    return line.split(b":", 1)[0].strip().lower().replace(b"_", b"-")


def _head_end(buf: bytearray) -> int:
    """The length of the head in ``buf`` (up to and including the empty line), or -1."""
    crlf = buf.find(b"\r\n\r\n")
    lf = buf.find(b"\n\n")
    ends = [i + 4 for i in (crlf,) if i >= 0] + [i + 2 for i in (lf,) if i >= 0]
    return min(ends) if ends else -1


def _declared_body(head: bytes, max_body_bytes: int) -> int:
    """How many body bytes to read and pass on: the one valid Content-Length within the limit, else 0 (the
    head alone goes on, and cheroot answers it: 413 over the limit, 411 for a chunked body, 400)."""
    lengths = []
    for line in head.split(b"\n")[1:]:
        name = _header_name(line)
        if name == b"transfer-encoding":
            return 0
        if name == b"content-length":
            lengths.append(line.split(b":", 1)[1].strip() if b":" in line else b"")
    if len(lengths) != 1 or not lengths[0].isdigit() or len(lengths[0]) > 12:
        return 0
    length = int(lengths[0])
    return length if length <= max_body_bytes else 0


def _for_backend(head: bytes, ticket: str) -> bytes:
    """``head`` with the ticket and ``Connection: close`` after the request line and the client's own
    ``Connection`` and ticket headers dropped. A head without a line break (an over-long request line) goes
    as it is: cheroot answers it with 414 before any header matters."""
    first, sep, rest = head.partition(b"\n")
    if not sep:
        return head
    kept = [line for line in rest.split(b"\n") if _header_name(line) not in _DROPPED_HEADERS]
    added = f"{TICKET_HEADER}: {ticket}\r\nConnection: close\r\n".encode("ascii")
    return first + sep + added + b"\n".join(kept)


class Front:
    """The network side of one listener: binds ``host:port`` and passes complete requests to the cheroot
    server listening on the Unix socket ``backend``. ``ssl_context`` makes it a TLS listener.

    ``start()`` binds in the caller's thread (errors raise there) and serves on a daemon thread; ``stop()``
    closes everything. ``take(ticket)`` is called by the WSGI side (any thread) once per request."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        *,
        backend: str,
        limits: FrontLimits,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.name = name
        self.host = host
        self.backend = backend
        self.limits = limits
        self.ssl_context = ssl_context
        self._requested_port = port
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._lock = threading.Lock()
        self._tickets: dict[str, Exchange] = {}
        self._connections: OrderedDict[int, _Connection] = OrderedDict()
        self._per_address: dict[str, int] = {}
        self.refused = 0  # connections closed at once by a cap (for tests and the curious)
        self.evicted = 0  # connections waiting for their request dropped to make room under a cap

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1]) if self._sock is not None else 0

    def take(self, ticket: str) -> Exchange | None:
        """The exchange a ticket names, once; None for anything else (a request that did not come through
        this front cannot be served: it could claim any client address)."""
        with self._lock:
            return self._tickets.pop(ticket, None)

    def connections(self) -> int:
        """Open client connections right now."""
        return len(self._connections)

    # -- life cycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.create_server((self.host, self._requested_port), family=family, backlog=1024)
        sock.setblocking(False)
        self._sock = sock
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name=f"front-{self.name}", daemon=True
        )
        self._thread.start()
        ready.wait(5)

    def stop(self) -> None:
        """Stop accepting and drop every connection. Idempotent."""
        loop, stopped, thread = self._loop, self._stopped, self._thread
        if loop is not None and stopped is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop has just finished
                loop.call_soon_threadsafe(stopped.set)
        if thread is not None:
            thread.join(timeout=10)
        self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(self._loop_error)
        self._loop = loop
        try:
            self._stopped = asyncio.Event()
            ready.set()
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # asyncio's own report could quote a request; the class name is enough.
        exc = context.get("exception")
        logger.warning("%s front: %s", self.name, type(exc).__name__ if exc else "event loop error")

    async def _serve(self) -> None:
        assert self._stopped is not None  # set by _run before this coroutine starts
        accepting = asyncio.ensure_future(self._accept_loop())
        await self._stopped.wait()
        accepting.cancel()
        tasks = [c.task for c in self._connections.values() if c.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(accepting, *tasks, return_exceptions=True)

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._sock is not None  # bound by start()
        while True:
            try:
                conn, addr = await loop.sock_accept(self._sock)
            except OSError as exc:  # EMFILE and the like: wait a moment rather than spin
                logger.warning("%s front: accept failed with %s", self.name, type(exc).__name__)
                await asyncio.sleep(0.1)
                continue
            self._admit(conn, str(addr[0]), int(addr[1]))

    def _admit(self, conn: socket.socket, peer: str, port: int) -> None:
        # At a cap, the connection that has waited longest for its request is dropped to make room
        # (legitimate clients send theirs at once; one that holds a connection open without a request
        # only evicts itself), never one whose request is being answered; without one, the new one goes.
        limits = self.limits
        if self._per_address.get(peer, 0) >= limits.per_address and not self._evict(peer):
            self.refused += 1
            conn.close()
            return
        if len(self._connections) >= limits.max_connections and not self._evict(None):
            self.refused += 1
            conn.close()
            return
        conn.setblocking(False)
        state = _Connection(peer, port)
        key = id(state)
        self._connections[key] = state
        self._per_address[peer] = self._per_address.get(peer, 0) + 1
        state.task = asyncio.get_running_loop().create_task(self._handle(conn, state))
        # The socket is closed here too: a task cancelled before its first step never runs its finally.
        state.task.add_done_callback(lambda _task: self._forget(key, peer, conn))

    def _evict(self, peer: str | None) -> bool:
        """Drop the oldest connection (of ``peer``, or of anyone) still waiting for its request."""
        for victim in self._connections.values():
            if victim.waiting and victim.task is not None and peer in (None, victim.peer):
                victim.waiting = False
                victim.task.cancel()
                self.evicted += 1
                return True
        return False

    def _forget(self, key: int, peer: str, conn: socket.socket) -> None:
        conn.close()
        self._connections.pop(key, None)
        left = self._per_address.get(peer, 1) - 1
        if left > 0:
            self._per_address[peer] = left
        else:
            self._per_address.pop(peer, None)

    # -- one connection --------------------------------------------------------------------------------

    async def _handle(self, conn: socket.socket, state: _Connection) -> None:
        limits = self.limits
        sock: socket.socket = conn
        exchange: Exchange | None = None
        sent = False
        try:
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
                await asyncio.wait_for(self._handshake(sock), limits.handshake_seconds)
            head, body = await asyncio.wait_for(self._read_request(sock), limits.head_seconds)
            state.waiting = False
            exchange = Exchange(state.peer, state.port, self.ssl_context is not None)
            ticket = secrets.token_hex(16)
            with self._lock:
                self._tickets[ticket] = exchange
            try:
                reply = await asyncio.wait_for(
                    self._forward(_for_backend(head, ticket) + body), limits.backend_seconds
                )
            finally:
                with self._lock:
                    self._tickets.pop(ticket, None)
            del head, body
            wants_outcome = exchange.wants_outcome
            await asyncio.wait_for(self._send(sock, reply), limits.send_seconds)
            del reply
            sent = await self._finish(sock, wants_outcome)
        except (asyncio.TimeoutError, OSError, _Closed) as exc:
            # Slow, silent, plain HTTP on a TLS port, gone: routine on an open network. Class names only.
            logger.debug("%s front: connection ended (%s)", self.name, type(exc).__name__)
        finally:
            if exchange is not None:
                exchange.settle(sent)
            sock.close()
            conn.close()

    async def _wait(self, sock: socket.socket, *, write: bool) -> None:
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        fd = sock.fileno()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        if write:
            loop.add_writer(fd, wake)
        else:
            loop.add_reader(fd, wake)
        try:
            await ready
        finally:
            if write:
                loop.remove_writer(fd)
            else:
                loop.remove_reader(fd)

    async def _handshake(self, sock: socket.socket) -> None:
        assert isinstance(sock, ssl.SSLSocket)  # only called for TLS listeners
        while True:
            try:
                sock.do_handshake()
                return
            except ssl.SSLWantReadError:
                await self._wait(sock, write=False)
            except ssl.SSLWantWriteError:
                await self._wait(sock, write=True)

    async def _recv(self, sock: socket.socket, size: int) -> bytes:
        # Always try the read first: TLS may hold decrypted bytes the selector cannot see.
        while True:
            try:
                return sock.recv(size)
            except (ssl.SSLWantReadError, BlockingIOError):
                await self._wait(sock, write=False)
            except ssl.SSLWantWriteError:
                await self._wait(sock, write=True)

    async def _raw_recv(self, sock: socket.socket, size: int) -> bytes:
        """Bytes from the socket itself, under any TLS: what comes after the reply is only counted."""
        while True:
            try:
                return socket.socket.recv(sock, size)
            except BlockingIOError:
                await self._wait(sock, write=False)

    async def _send(self, sock: socket.socket, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                try:
                    written = sock.send(view[:_BACKEND_RECV_BYTES])
                except (ssl.SSLWantWriteError, BlockingIOError):
                    await self._wait(sock, write=True)
                    continue
                except ssl.SSLWantReadError:
                    await self._wait(sock, write=False)
                    continue
                view = view[written:]
        finally:
            view.release()

    async def _read_request(self, sock: socket.socket) -> tuple[bytes, bytes]:
        """The head and the body to pass on. A head with no end within the limit is passed on as far as it
        was read (a little more than the limit, so cheroot sees it over and answers 431 or 414)."""
        limits = self.limits
        ceiling = limits.max_head_bytes + 1024
        buf = bytearray()
        while (end := _head_end(buf)) < 0:
            if len(buf) >= ceiling:
                return bytes(buf), b""
            chunk = await self._recv(sock, min(_RECV_BYTES, ceiling - len(buf)))
            if not chunk:
                raise _Closed
            buf += chunk
        head = bytes(buf[:end])
        wanted = _declared_body(head, limits.max_body_bytes)
        while len(buf) - end < wanted:
            chunk = await self._recv(sock, min(_RECV_BYTES, wanted - (len(buf) - end)))
            if not chunk:
                raise _Closed
            buf += chunk
        body = bytes(buf[end : end + wanted])
        buf.clear()
        return head, body

    async def _forward(self, request: bytes) -> bytes:
        """Send ``request`` to cheroot and return its whole reply (cheroot closes after it)."""
        loop = asyncio.get_running_loop()
        backend = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        backend.setblocking(False)
        try:
            while True:
                try:
                    # A Unix socket connects at once or, with its backlog full, fails with EAGAIN (it
                    # never answers EINPROGRESS as TCP does): try again in a moment, within the deadline.
                    backend.connect(self.backend)
                    break
                except BlockingIOError:
                    await asyncio.sleep(_BACKEND_RETRY_SECONDS)
            await loop.sock_sendall(backend, request)
            backend.shutdown(socket.SHUT_WR)
            chunks = []
            total = 0
            while chunk := await loop.sock_recv(backend, _BACKEND_RECV_BYTES):
                total += len(chunk)
                if total > self.limits.max_reply_bytes:
                    raise _Closed
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            backend.close()

    async def _finish(self, sock: socket.socket, wants_outcome: bool) -> bool:
        """Close our side after the reply and read what the client still sends, bounded. Returns whether
        the reply reached the client: acknowledged (only checked when ``wants_outcome``) and not reset."""
        limits = self.limits
        acknowledged = True
        if wants_outcome:
            acknowledged = await asyncio.wait_for(self._acknowledged(sock), limits.send_seconds)
        # The socket's own shutdown, under any TLS: a FIN, no close_notify record. A client that read the
        # whole reply then has nothing unread and closes with a FIN; one that closed earlier answered with
        # a reset, which the read below sees.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_WR)
        seconds = limits.settle_seconds if wants_outcome else limits.linger_seconds
        closed = await self._linger(sock, seconds)
        # A client that closed while our last bytes were still on their way sent a FIN, then a reset for
        # the bytes that arrived after: Linux then reports the FIN to recv() and keeps the reset in
        # SO_ERROR (EPIPE or ECONNRESET).
        reset = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0
        return acknowledged and closed is not False and not reset

    async def _acknowledged(self, sock: socket.socket) -> bool:
        """Wait until the client's TCP acknowledged every byte written (Linux's SIOCOUTQ reaches 0);
        False as soon as the connection is reset or closed with bytes unacknowledged."""
        if _OUTQ is None:
            return True  # not Linux: what was written is all we know
        fd = sock.fileno()
        while True:
            try:
                queued = struct.unpack("i", fcntl.ioctl(fd, _OUTQ, b"\0\0\0\0"))[0]
            except OSError:
                return True
            if queued == 0:
                return True
            # A reset empties the send queue but not the counters SIOCOUTQ reads: it would never reach 0.
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) or _tcp_state(sock) == _TCP_CLOSE:
                return False
            await asyncio.sleep(_ACK_POLL_SECONDS)

    async def _linger(self, sock: socket.socket, seconds: float) -> bool | None:
        """Read until the client closes: True for a FIN, False for a reset, None when the time or byte
        bound comes first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        received = 0
        while received < self.limits.linger_bytes:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                chunk = await asyncio.wait_for(self._raw_recv(sock, _RECV_BYTES), remaining)
            except asyncio.TimeoutError:
                return None
            except OSError:
                return False
            if not chunk:
                return True
            received += len(chunk)
        return None
