"""sd_notify against real AF_UNIX datagram sockets (a path in a temp dir and an abstract name)."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import sys
import tempfile
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.systemd import Notifier


class Listener:
    """A bound SOCK_DGRAM socket standing in for systemd's notification socket."""

    def __init__(self, sock: socket.socket, notify_socket: str) -> None:
        self.sock = sock
        self.notify_socket = notify_socket

    def receive(self) -> str:
        return self.sock.recv(4096).decode("utf-8")


@pytest.fixture
def path_listener() -> Iterator[Listener]:
    # sockaddr_un paths are limited to 108 bytes; pytest's tmp_path can be longer, so use a short temp dir.
    with tempfile.TemporaryDirectory(prefix="notify-") as directory:
        path = os.path.join(directory, "n.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(path)
            sock.settimeout(5)
            yield Listener(sock, path)


@pytest.fixture
def abstract_listener() -> Iterator[Listener]:
    name = f"headshot-kiosk-test-{secrets.token_hex(6)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(5)
        yield Listener(sock, "@" + name)


def test_notify_is_noop_outside_systemd() -> None:
    notifier = Notifier(None)
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.status("idle") is False
    assert notifier.watchdog() is False
    assert notifier.stopping() is False
    assert Notifier.from_environ({}).enabled is False
    assert Notifier.from_environ({"NOTIFY_SOCKET": ""}).enabled is False


def test_messages_reach_a_path_socket(path_listener: Listener) -> None:
    notifier = Notifier(path_listener.notify_socket)
    assert notifier.enabled
    assert notifier.ready()
    assert path_listener.receive() == "READY=1"
    assert notifier.status("phase=idle sessions=0")
    assert path_listener.receive() == "STATUS=phase=idle sessions=0"
    assert notifier.watchdog()
    assert path_listener.receive() == "WATCHDOG=1"
    assert notifier.stopping()
    assert path_listener.receive() == "STOPPING=1"


def test_messages_reach_an_abstract_socket(abstract_listener: Listener) -> None:
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": abstract_listener.notify_socket})
    assert notifier.ready("warm worker up")
    assert abstract_listener.receive() == "READY=1\nSTATUS=warm worker up"


def test_status_cannot_inject_other_assignments(path_listener: Listener) -> None:
    Notifier(path_listener.notify_socket).status("ok\nREADY=1")
    assert path_listener.receive() == "STATUS=ok READY=1"


def test_unreachable_socket_returns_false_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="appliance.systemd")
    notifier = Notifier(str(tmp_path / "gone.sock"))
    assert notifier.watchdog() is False
    assert notifier.watchdog() is False
    assert len([r for r in caplog.records if "sd_notify failed" in r.getMessage()]) == 1


def test_relative_notify_socket_is_rejected(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ValueError, match="absolute path"):
        Notifier("relative.sock")
    caplog.set_level(logging.WARNING, logger="appliance.systemd")
    assert Notifier.from_environ({"NOTIFY_SOCKET": "vsock:2:1234"}).enabled is False
    assert any("disabled" in r.getMessage() for r in caplog.records)


def test_watchdog_interval_is_half_the_timeout() -> None:
    notifier = Notifier.from_environ({"WATCHDOG_USEC": "30000000"})
    assert notifier.watchdog_timeout_seconds() == 30.0
    assert notifier.watchdog_interval_seconds() == 15.0


def test_watchdog_applies_only_to_the_named_pid() -> None:
    env = {"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "4242"}
    assert Notifier.from_environ(env, pid=4242).watchdog_interval_seconds() == 5.0
    assert Notifier.from_environ(env, pid=4243).watchdog_interval_seconds() is None
    assert Notifier.from_environ({**env, "WATCHDOG_PID": str(os.getpid())}).watchdog_timeout_seconds() == 10.0


@pytest.mark.parametrize("value", ["", "0", "abc", "-5"])
def test_watchdog_disabled_for_missing_or_bad_values(value: str) -> None:
    assert Notifier.from_environ({"WATCHDOG_USEC": value}).watchdog_interval_seconds() is None


def test_environment_is_read_once_at_construction(
    path_listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", path_listener.notify_socket)
    notifier = Notifier.from_environ()
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert notifier.ready()
    assert path_listener.receive() == "READY=1"


def test_libsystemd_is_used_when_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seam check only: with systemd-python importable, from_environ() sends via systemd.daemon.notify."""
    sent: list[str] = []
    package = types.ModuleType("systemd")
    daemon = types.ModuleType("systemd.daemon")

    def notify(status: str) -> bool:
        sent.append(status)
        return True

    daemon.notify = notify  # type: ignore[attr-defined]
    package.daemon = daemon  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "systemd", package)
    monkeypatch.setitem(sys.modules, "systemd.daemon", daemon)
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    notifier = Notifier.from_environ()
    assert notifier.ready()
    assert notifier.watchdog()
    assert sent == ["READY=1", "WATCHDOG=1"]
    # An explicit environment mapping (not the process's) always uses the stdlib sender.
    assert Notifier.from_environ({"NOTIFY_SOCKET": "/nonexistent/notify"}).ready() is False
