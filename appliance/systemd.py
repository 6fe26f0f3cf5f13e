"""systemd service notification (sd_notify protocol): READY, STATUS, WATCHDOG and STOPPING.

The protocol (sd_notify(3)): send newline-separated ``KEY=VALUE`` assignments in one datagram to the
AF_UNIX socket named by ``$NOTIFY_SOCKET``. A name starting with ``@`` is a Linux abstract socket (the ``@``
stands for a leading NUL byte). Outside systemd the variable is unset and notification is a no-op.

STATUS texts are shown by ``systemctl status`` and land in the journal: pass phases and counts only, never
personal data.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
from collections.abc import Callable, Mapping

logger = logging.getLogger(__name__)

_NotifyFn = Callable[[str], bool]


class Notifier:
    """Sends sd_notify messages to one notification socket, fixed at construction.

    ``notify_socket`` is the value of ``$NOTIFY_SOCKET`` (an absolute path, or ``@name`` for an abstract
    socket); ``None`` or empty makes every call a no-op returning False. ``watchdog_usec`` is
    ``$WATCHDOG_USEC`` already checked against ``$WATCHDOG_PID`` (use :meth:`from_environ`). ``send``
    replaces the transport, e.g. with ``systemd.daemon.notify``; the default is the stdlib sender below.
    """

    def __init__(
        self, notify_socket: str | None, *, watchdog_usec: int | None = None, send: _NotifyFn | None = None
    ) -> None:
        self._enabled = bool(notify_socket)
        # Parsed only for the stdlib sender; libsystemd understands more forms (vsock:) and parses its own.
        self._address: str | bytes | None = None
        if notify_socket and send is None:
            self._address = _socket_address(notify_socket)
        self._watchdog_usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 else None
        self._send: _NotifyFn = send if send is not None else self._send_datagram
        self._warned = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None, *, pid: int | None = None) -> Notifier:
        """Build a notifier from ``environ`` (default ``os.environ``), read once, here.

        Uses ``systemd.daemon.notify`` (systemd-python, installed on the device) when it can be imported and
        ``environ`` is the process environment (libsystemd reads ``$NOTIFY_SOCKET`` itself), else the stdlib
        sender. The watchdog applies only if ``$WATCHDOG_PID`` is unset or equals ``pid`` (default: this
        process), as in sd_watchdog_enabled(3).
        """
        env: Mapping[str, str] = os.environ if environ is None else environ
        notify_socket = env.get("NOTIFY_SOCKET") or None
        own_pid = os.getpid() if pid is None else pid
        watchdog_usec: int | None = None
        usec_text = env.get("WATCHDOG_USEC", "")
        pid_text = env.get("WATCHDOG_PID", "")
        if usec_text.isdigit() and (not pid_text or (pid_text.isdigit() and int(pid_text) == own_pid)):
            watchdog_usec = int(usec_text)
        send = _libsystemd_sender() if environ is None and notify_socket else None
        try:
            return cls(notify_socket, watchdog_usec=watchdog_usec, send=send)
        except ValueError as exc:
            logger.warning("systemd notification disabled: %s", exc)
            return cls(None, watchdog_usec=watchdog_usec)

    @property
    def enabled(self) -> bool:
        """True when running under systemd with a notification socket."""
        return self._enabled

    def notify(self, state: str) -> bool:
        """Send ``state`` (one or more ``KEY=VALUE`` lines). Returns True if it was sent; False outside
        systemd or if the socket refused it (logged once at WARNING; notifying must never stop the kiosk)."""
        if not self._enabled:
            return False
        return self._send(state)

    def ready(self, status: str | None = None) -> bool:
        """Tell systemd start-up is complete (``READY=1``), optionally with a status line."""
        return self.notify("READY=1" if status is None else f"READY=1\nSTATUS={_one_line(status)}")

    def status(self, text: str) -> bool:
        """Set the status line shown by ``systemctl status`` (phase and counts only; no personal data)."""
        return self.notify(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        """Ping the watchdog (``WATCHDOG=1``). Call only while healthy."""
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        """Tell systemd shutdown has begun (``STOPPING=1``)."""
        return self.notify("STOPPING=1")

    def watchdog_timeout_seconds(self) -> float | None:
        """The unit's ``WatchdogSec=`` in seconds, or ``None`` when no watchdog applies to this process."""
        return None if self._watchdog_usec is None else self._watchdog_usec / 1_000_000

    def watchdog_interval_seconds(self) -> float | None:
        """How often to ping, in seconds: half the timeout, as sd_watchdog_enabled(3) recommends; ``None``
        when no watchdog applies."""
        timeout = self.watchdog_timeout_seconds()
        return None if timeout is None else timeout / 2

    def _send_datagram(self, state: str) -> bool:
        address = self._address
        if address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(state.encode("utf-8"), address)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                logger.warning("sd_notify failed: %s", exc.strerror or type(exc).__name__)
            return False
        return True


def _socket_address(notify_socket: str) -> str | bytes:
    """Translate ``$NOTIFY_SOCKET`` into a ``sendto`` address. Raises ValueError for unsupported forms."""
    if notify_socket.startswith("@"):
        return b"\0" + notify_socket[1:].encode("utf-8")
    if notify_socket.startswith("/"):
        return notify_socket
    # systemd >= 253 also allows vsock:CID:PORT (for VMs); a kiosk never runs like that.
    raise ValueError(f"NOTIFY_SOCKET must be an absolute path or @abstract name, got {notify_socket!r}")


def _one_line(text: str) -> str:
    # A newline would start a new assignment in the datagram.
    return " ".join(text.splitlines())


def _libsystemd_sender() -> _NotifyFn | None:
    try:
        daemon = importlib.import_module("systemd.daemon")
    except ImportError:
        return None
    notify = daemon.notify

    def send(state: str) -> bool:
        return bool(notify(state))

    return send
