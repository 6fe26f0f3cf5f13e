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
# How long a worker busy with a request (a capture burst, a render) gets after SIGTERM to drop what it is
# making, wipe its vault and exit by itself, before SIGKILL. The handler runs as soon as the interpreter is
# back from the C call in progress: between burst frames that is milliseconds, but a model run holds it for
# up to ~0.6 s on a 2-core CPU (Delete now was confirmed after 0.9 s with a 0.8 s grace). The guest's
# "deleted" must not wait for that: after the grace, SIGKILL, and the main process removes the session's
# files (ciphertext whose key died with the process) as on every other road to WIPE.
CANCEL_GRACE_SECONDS = 0.3
# Requests that take long enough (a burst, a model run, a camera opening) that a wipe cancels them at once
# rather than waiting to see whether they finish.
_CANCEL_AT_ONCE = frozenset({"capture", "render", "open_camera"})


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
    with ``MALLOC_MMAP_THRESHOLD_`` set, and sets ``PR_SET_DUMPABLE=0`` itself (exec resets it).

    Thread-safe: one request at a time is on the wire (``call`` takes the worker's own lock), and ``end``
    works from any thread at any moment — it asks an idle worker to wipe, and cancels a busy one (SIGTERM,
    then SIGKILL), so Delete now never waits behind a capture or a render."""

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
        self._call_lock = threading.Lock()
        self._ended = False  # set by end()/kill(): no request is sent any more
        self._in_flight: str | None = None  # the operation on the wire, for end()

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> dict[str, Any]:
        """Block until the worker has loaded the engine. Raises ``WorkerDied`` on failure."""
        reply = self._recv(timeout)
        if reply[0] != "ok":
            self.kill()
            raise WorkerDied(f"worker could not start: {reply[2] if len(reply) > 2 else reply}")
        self.info = dict(reply[1])
        return self.info

    @property
    def busy(self) -> bool:
        """A request is on the wire right now (a capture, a render, a frame...)."""
        return self._call_lock.locked()

    def call(self, op: str, timeout: float = REQUEST_TIMEOUT_SECONDS, **args: Any) -> Any:
        """Send one request and return its result; waits while another thread's request is on the wire.
        Raises ``WorkerRequestError``, or ``WorkerDied`` (also when the worker was ended meanwhile)."""
        with self._call_lock:
            try:
                return self._call_locked(op, timeout, args)
            except WorkerDied:
                if self._ended:  # end() cancelled this request; the connection is this thread's to close
                    self._conn.close()
                raise

    def call_if_idle(self, op: str, **args: Any) -> tuple[bool, Any]:
        """``(True, result)`` if no other request is on the wire right now, else ``(False, None)`` at once.
        For readers that must never wait behind a render (the state poll, the health view)."""
        if not self._call_lock.acquire(blocking=False):
            return False, None
        try:
            return True, self._call_locked(op, REQUEST_TIMEOUT_SECONDS, args)
        finally:
            self._call_lock.release()

    def _call_locked(self, op: str, timeout: float, args: dict[str, Any]) -> Any:
        if self._ended:
            raise WorkerDied("the worker has been ended")
        self._in_flight = op
        try:
            try:
                self._conn.send((op, args))
            except (OSError, EOFError) as exc:
                raise WorkerDied(f"worker connection lost ({exc.__class__.__name__})") from exc
            reply = self._recv(timeout)
        finally:
            self._in_flight = None
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
        with self._call_lock:
            return self._wipe_locked()

    def _wipe_locked(self) -> int:
        try:
            result = self._call_locked("wipe", WIPE_TIMEOUT_SECONDS, {})
            removed = int(result.get("removed", 0))
        except (WorkerDied, WorkerRequestError):
            self.kill()
            raise
        self._ended = True
        threading.Thread(target=self._reap, name="worker-reaper", daemon=True).start()
        return removed

    def end(self, *, wait_idle: float) -> bool:
        """WIPE this worker whatever it is doing; returns True if it wiped itself on request, False if it
        was busy and had to be cancelled. Never raises.

        An idle worker (or one that finishes a short request within ``wait_idle`` seconds, e.g. a preview
        frame) gets the ordinary ``wipe`` request. A busy one (a capture burst, a render, a camera opening:
        those are not waited for) gets SIGTERM: its handler abandons the request before anything more is
        stored, wipes the vault and exits; SIGKILL follows after ``CANCEL_GRACE_SECONDS``. Either way the
        process is gone when this returns, so the caller's backstop (removing the session's directory)
        cannot race a late write."""
        wait = 0.0 if self._in_flight in _CANCEL_AT_ONCE else wait_idle
        if self._call_lock.acquire(timeout=wait):
            try:
                self._wipe_locked()
                return True
            except (WorkerDied, WorkerRequestError):
                return False  # _wipe_locked killed it
            finally:
                self._call_lock.release()
        self._ended = True
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=CANCEL_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "worker %d did not stop within %.1f s of SIGTERM; killing it",
                    self.pid,
                    CANCEL_GRACE_SECONDS,
                )
        # The request in flight now ends with WorkerDied in its own thread, which still owns the
        # connection; it is closed when that thread lets go of it (or by the garbage collector).
        self._kill_process()
        return False

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
        self._ended = True
        self._kill_process()
        self._conn.close()

    def _kill_process(self) -> None:
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._proc.pid, signal.SIGKILL)
        try:
            self._proc.wait(timeout=WIPE_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
            logger.error("worker %d survived SIGKILL", self.pid)

    def exited(self) -> bool:
        return self._proc.poll() is not None
