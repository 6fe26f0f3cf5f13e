"""The main process's handle on a session worker process: spawn, request/reply, and a sure end."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from appliance.config import KioskConfig
from appliance.hardening import worker_environment

logger = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 120.0  # model load on a cold Jetson can take tens of seconds
REQUEST_TIMEOUT_SECONDS = 60.0
WIPE_TIMEOUT_SECONDS = 5.0


class WorkerDied(Exception):
    """The worker process is gone (crashed, killed) or stopped answering."""


class WorkerRequestError(Exception):
    """The worker refused a request; ``code`` is stable (``no_face``, ``camera``, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class WorkerProcess:
    """One ``python -m appliance.worker`` child.

    The child is exec'd (not forked): it inherits no memory of the main process, gets a cleaned environment
    with ``MALLOC_MMAP_THRESHOLD_`` set, and sets ``PR_SET_DUMPABLE=0`` itself (exec resets it). Not
    thread-safe: the facade serialises calls."""

    def __init__(self, cfg: KioskConfig, store_dir: str, *, log_level: str = "INFO") -> None:
        parent, child = socket.socketpair()
        env = worker_environment(os.environ)
        try:
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "appliance.worker",
                    "--fd",
                    str(child.fileno()),
                    "--store",
                    store_dir,
                    "--log-level",
                    log_level,
                ],
                pass_fds=[child.fileno()],
                env=env,
                stdin=subprocess.DEVNULL,
                close_fds=True,
            )
        finally:
            child.close()
        self._conn = Connection(parent.detach())
        self._conn.send(cfg.model_dump(mode="json"))
        self.pid = self._proc.pid
        self.info: dict[str, Any] = {}
        self.started = time.monotonic()

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> dict[str, Any]:
        """Block until the worker has loaded the engine. Raises ``WorkerDied`` on failure."""
        reply = self._recv(timeout)
        if reply[0] != "ok":
            self.kill()
            raise WorkerDied(f"worker could not start: {reply[2] if len(reply) > 2 else reply}")
        self.info = dict(reply[1])
        return self.info

    def call(self, op: str, timeout: float = REQUEST_TIMEOUT_SECONDS, **args: Any) -> Any:
        """Send one request and return its result. Raises ``WorkerRequestError`` or ``WorkerDied``."""
        try:
            self._conn.send((op, args))
        except (OSError, EOFError) as exc:
            raise WorkerDied(f"worker connection lost ({exc.__class__.__name__})") from exc
        reply = self._recv(timeout)
        if reply[0] == "ok":
            return reply[1]
        raise WorkerRequestError(str(reply[1]), str(reply[2]))

    def _recv(self, timeout: float) -> tuple[Any, ...]:
        try:
            if not self._conn.poll(timeout):
                raise WorkerDied(f"worker did not answer within {timeout:.0f} s")
            reply = self._conn.recv()
        except (OSError, EOFError) as exc:
            raise WorkerDied(f"worker connection lost ({exc.__class__.__name__})") from exc
        if not isinstance(reply, tuple) or not reply:
            raise WorkerDied("worker sent a malformed reply")
        return reply

    def alive(self) -> bool:
        return self._proc.poll() is None

    def wipe(self) -> int:
        """Ask the worker to wipe and exit; returns the number of files it removed. The process is reaped
        in the background (its exit is not on the guest's critical path); ``kill()`` is the fallback."""
        try:
            result = self.call("wipe", timeout=WIPE_TIMEOUT_SECONDS)
            removed = int(result.get("removed", 0))
        except (WorkerDied, WorkerRequestError):
            self.kill()
            raise
        threading.Thread(target=self._reap, name="worker-reaper", daemon=True).start()
        return removed

    def _reap(self) -> None:
        try:
            self._proc.wait(timeout=WIPE_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            logger.warning("worker %d did not exit after wipe; killing it", self.pid)
            self.kill()
        finally:
            self._conn.close()

    def kill(self) -> None:
        """SIGKILL and reap. Safe to call on a dead process."""
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._proc.pid, signal.SIGKILL)
        try:
            self._proc.wait(timeout=WIPE_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
            logger.error("worker %d survived SIGKILL", self.pid)
        self._conn.close()

    def exited(self) -> bool:
        return self._proc.poll() is not None
