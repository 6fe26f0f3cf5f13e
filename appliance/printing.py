"""Printing at the booth: the kiosk's CUPS queue, the printer's state, and the session worker's print thread.

The pixels of a print exist in the session worker until CUPS has them (DESIGN.md §10): the worker composes
the print (``appliance.print_layout``), POSTs it from memory to CUPS's local socket (``appliance.print_ipp``)
and follows the job to its end. No file is written by the kiosk; CUPS keeps the job in its spool, which
provisioning puts on a RAM tmpfs of its own with ``PreserveJobFiles No`` and ``PreserveJobHistory No``
(``provisioning.cups``), so a finished job leaves nothing behind. At WIPE the worker cancels and purges
every job of the visit that has not finished; the main process then purges whatever is still queued as a
backstop (a worker killed before it could), which is safe because a visit's WIPE always purges its jobs,
so every unfinished job on the queue belongs to the visit being wiped.

What CUPS sees of a guest: the print's pixels and nothing else. Every job has the same title
(``JOB_TITLE``) and belongs to the service's user (``requesting_user``): CUPS writes titles to its job
cache and, at debug level, to its log.

A printer problem never blocks the visit: ``PrintSpooler.submit`` only queues, and every CUPS failure
becomes a job ``failed`` with a reason code, never an exception for the facade.
"""

from __future__ import annotations

import logging
import os
import pwd
import queue
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from appliance.print_ipp import IppError, IppResponse, Op, Tag, call

__all__ = [
    "JOB_TITLE",
    "PRINT_USER",
    "CupsQueue",
    "JobUpdate",
    "PrintJobState",
    "PrintSpooler",
    "PrinterMonitor",
    "PrinterState",
    "PrinterStatus",
    "printer_state",
    "requesting_user",
]

logger = logging.getLogger(__name__)

PRINT_USER = "headshot-kiosk"  # the service's user: who every job belongs to on the device, never a guest
JOB_TITLE = "headshot"  # every job's title (job-name): CUPS caches titles on disk and logs them at debug
IPP_TIMEOUT_SECONDS = 5.0  # a call to the local CUPS takes milliseconds; a hung cupsd must not hang a visit
SUBSCRIPTION_LEASE_SECONDS = 3600  # the worker cancels it at WIPE; a killed worker's expires by itself


class PrintJobState(str, Enum):
    """A print job as the guest page shows it."""

    QUEUED = "queued"  # accepted by the kiosk, or waiting in CUPS
    PRINTING = "printing"  # CUPS is converting it or the printer has it
    COMPLETED = "completed"  # CUPS handed the whole job to the printer: collect the print
    FAILED = "failed"  # the printer or CUPS gave up (out of paper, offline, ...); the phone still works
    CANCELLED = "cancelled"  # cancelled by the kiosk (WIPE) or by staff

    @property
    def finished(self) -> bool:
        return self in (PrintJobState.COMPLETED, PrintJobState.FAILED, PrintJobState.CANCELLED)


class PrinterState(str, Enum):
    """The printer as the dashboard and ``headshot_kiosk_printer_state{state}`` show it (pinned names)."""

    READY = "ready"
    PRINTING = "printing"
    OUT_OF_MEDIA = "out_of_media"
    OFFLINE = "offline"
    DISABLED = "disabled"  # printing is off in the config


# IPP job-state values (RFC 8011 §5.3.7).
_JOB_STATES = {
    3: PrintJobState.QUEUED,  # pending
    4: PrintJobState.QUEUED,  # pending-held
    5: PrintJobState.PRINTING,  # processing
    6: PrintJobState.PRINTING,  # processing-stopped: see JobUpdate.stopped
    7: PrintJobState.CANCELLED,
    8: PrintJobState.FAILED,  # aborted
    9: PrintJobState.COMPLETED,
}
# printer-state-reasons (RFC 8011 §5.4.12, PWG 5100.9) that mean "refill me", without the -error/-warning/
# -report suffix. Gutenprint's dye-sub backends report media-empty when paper or ribbon runs out.
_OUT_OF_MEDIA = frozenset(
    {"media-empty", "media-needed", "marker-supply-empty", "toner-empty", "input-tray-missing"}
)
# Reasons that stop the printer without being about media.
_OFFLINE = frozenset(
    {
        "offline",
        "connecting-to-device",
        "paused",
        "shutdown",
        "timed-out",
        "door-open",
        "cover-open",
        "media-jam",
        "other",
        "stopped",
    }
)
_REMAINING = re.compile(r"(\d+)\s+(?:native\s+)?prints?\s+remaining", re.IGNORECASE)


@dataclass(frozen=True)
class PrinterStatus:
    """The printer now: its ``state``, CUPS's reason keywords (``media-empty-error``, ...), and the prints
    left on the loaded media when the printer reports it (Gutenprint's ``marker-message``), else None."""

    state: PrinterState
    reasons: tuple[str, ...] = ()
    media_remaining: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "reasons": list(self.reasons),
            "media_remaining": self.media_remaining,
        }


def _bare(reason: str) -> str:
    for suffix in ("-error", "-warning", "-report"):
        if reason.endswith(suffix):
            return reason[: -len(suffix)]
    return reason


def printer_state(printer_state_value: int, reasons: tuple[str, ...], accepting: bool) -> PrinterState:
    """One ``PrinterState`` from IPP's printer-state (3 idle, 4 processing, 5 stopped), its reasons and
    printer-is-accepting-jobs. Warnings (``media-low-warning``) do not change the state."""
    serious = [_bare(r) for r in reasons if not r.endswith("-warning") and r != "none"]
    if any(r in _OUT_OF_MEDIA for r in serious):
        return PrinterState.OUT_OF_MEDIA
    if printer_state_value == 5 or not accepting or any(r in _OFFLINE for r in serious):
        return PrinterState.OFFLINE
    if printer_state_value == 4:
        return PrinterState.PRINTING
    return PrinterState.READY


def _media_remaining(message: str | None) -> int | None:
    match = _REMAINING.search(message or "")
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class JobUpdate:
    """What CUPS said about one job: its state, the reasons (``job-completed-successfully``, ...), and
    whether CUPS stopped it (processing-stopped: a filter failed, or the printer stopped under it). A
    stopped job waits in the spool for someone to restart it; the kiosk ends it instead."""

    job_id: int
    state: PrintJobState
    reasons: tuple[str, ...] = ()
    stopped: bool = False


def requesting_user() -> str:
    """The requesting-user-name of the kiosk's IPP calls: the user this process runs as (``PRINT_USER`` on
    the device), as ``lp`` does. It must name a user that exists: cupsd 2.4 with the CVE-2026-27447 fix
    dereferences NULL when it checks ``@OWNER`` for an unknown user (OpenPrinting/cups#1555; Debian 12's
    2.4.2-3+deb12u10 crashed on our first Get-Notifications in the tests, which run as root)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return PRINT_USER


class CupsQueue:
    """One CUPS queue reached through the local socket ``socket_path``. Stateless: every method is one or
    two IPP calls on fresh connections. Raises ``IppError``."""

    def __init__(self, socket_path: str, queue_name: str, *, timeout_seconds: float = IPP_TIMEOUT_SECONDS):
        self.socket_path = socket_path
        self.queue_name = queue_name
        self.timeout_seconds = timeout_seconds
        self.printer_uri = f"ipp://localhost/printers/{queue_name}"
        self.user = requesting_user()

    def _operation(self, *extra: tuple[int, str, list[Any]]) -> tuple[int, list[tuple[int, str, list[Any]]]]:
        attrs: list[tuple[int, str, list[Any]]] = [
            (Tag.CHARSET, "attributes-charset", ["utf-8"]),
            (Tag.LANGUAGE, "attributes-natural-language", ["en"]),
            (Tag.URI, "printer-uri", [self.printer_uri]),
            (Tag.NAME, "requesting-user-name", [self.user]),
            *extra,
        ]
        return (Tag.OPERATION, attrs)

    def _call(
        self, resource: str, operation: int, *groups: Any, document: bytes | bytearray | None = None
    ) -> IppResponse:
        return call(
            self.socket_path, resource, operation, list(groups), document=document,
            timeout_seconds=self.timeout_seconds,
        )  # fmt: skip

    def submit(self, document: bytes | bytearray, document_format: str) -> int:
        """Print-Job with ``document`` sent straight from memory; returns CUPS's job id. The page size,
        finish and the rest come from the queue's defaults (set by provisioning's ``lpadmin``)."""
        reply = self._call(
            f"/printers/{self.queue_name}",
            Op.PRINT_JOB,
            self._operation(
                (Tag.NAME, "job-name", [JOB_TITLE]),
                (Tag.MIME_TYPE, "document-format", [document_format]),
            ),
            # Fill the page: the layout is made at the page's own aspect ratio.
            (Tag.JOB, [(Tag.KEYWORD, "print-scaling", ["fill"])]),
            document=document,
        )
        return int(reply.group(Tag.JOB)["job-id"][0])

    def job(self, job_id: int) -> JobUpdate | None:
        """The job's state now, or None once CUPS no longer knows it (``PreserveJobHistory No`` forgets
        a job as soon as it ends: how it ended comes from the subscription's events)."""
        try:
            reply = self._call(
                "/jobs",
                Op.GET_JOB_ATTRIBUTES,
                self._operation(
                    (Tag.INTEGER, "job-id", [job_id]),
                    (Tag.KEYWORD, "requested-attributes", ["job-state", "job-state-reasons"]),
                ),
            )
        except IppError as exc:
            if exc.not_found:
                return None
            raise
        attrs = reply.group(Tag.JOB)
        state = int(attrs.get("job-state", (3,))[0])
        return JobUpdate(
            job_id,
            _JOB_STATES.get(state, PrintJobState.QUEUED),
            tuple(str(r) for r in attrs.get("job-state-reasons", ()) if r),
            stopped=state == 6,
        )

    def cancel(self, job_id: int) -> bool:
        """Cancel-Job with CUPS's ``purge-job``: the job, its document and its history go at once. True if
        CUPS had the job; False if it was already gone."""
        try:
            self._call(
                "/jobs",
                Op.CANCEL_JOB,
                self._operation((Tag.INTEGER, "job-id", [job_id]), (Tag.BOOLEAN, "purge-job", [True])),
            )
        except IppError as exc:
            if exc.not_found:
                return False
            raise
        return True

    def unfinished(self) -> list[int]:
        """Ids of the queue's jobs that have not ended (Get-Jobs, which-jobs=not-completed)."""
        reply = self._call(
            f"/printers/{self.queue_name}",
            Op.GET_JOBS,
            self._operation(
                (Tag.KEYWORD, "which-jobs", ["not-completed"]),
                (Tag.KEYWORD, "requested-attributes", ["job-id"]),
            ),
        )
        return [int(group["job-id"][0]) for group in reply.all_groups(Tag.JOB) if group.get("job-id")]

    def purge_unfinished(self) -> int:
        """Cancel and purge every job on the queue that has not ended; returns how many were."""
        purged = 0
        for job_id in self.unfinished():
            if self.cancel(job_id):
                purged += 1
        return purged

    def status(self) -> PrinterStatus:
        """The printer's state (Get-Printer-Attributes); ``IppError`` if CUPS or the queue is missing."""
        reply = self._call(
            f"/printers/{self.queue_name}",
            Op.GET_PRINTER_ATTRIBUTES,
            self._operation(
                (
                    Tag.KEYWORD,
                    "requested-attributes",
                    ["printer-state", "printer-state-reasons", "printer-is-accepting-jobs", "marker-message"],
                )
            ),
        )
        attrs = reply.group(Tag.PRINTER)
        reasons = tuple(str(r) for r in attrs.get("printer-state-reasons", ()) if r and r != "none")
        state = printer_state(
            int(attrs.get("printer-state", (3,))[0]),
            reasons,
            bool(attrs.get("printer-is-accepting-jobs", (True,))[0]),
        )
        messages = [str(m) for m in attrs.get("marker-message", ()) if m]
        remaining = next((n for n in map(_media_remaining, messages) if n is not None), None)
        return PrinterStatus(state, reasons, remaining)

    def subscribe(self) -> int:
        """A pull (``ippget``) subscription to the queue's job events; returns its id. It is how the end of
        a job is learnt although CUPS forgets the job itself at once (``PreserveJobHistory No``)."""
        reply = self._call(
            "/",
            Op.CREATE_PRINTER_SUBSCRIPTIONS,
            self._operation(),
            (
                Tag.SUBSCRIPTION,
                [
                    (Tag.KEYWORD, "notify-pull-method", ["ippget"]),
                    (Tag.KEYWORD, "notify-events", ["job-state-changed", "job-completed"]),
                    (Tag.INTEGER, "notify-lease-duration", [SUBSCRIPTION_LEASE_SECONDS]),
                ],
            ),
        )
        return int(reply.group(Tag.SUBSCRIPTION)["notify-subscription-id"][0])

    def events(self, subscription_id: int, after: int) -> tuple[list[JobUpdate], int]:
        """Job events of the subscription with a sequence number above ``after``, in order, and the
        highest sequence number seen."""
        reply = self._call(
            "/",
            Op.GET_NOTIFICATIONS,
            self._operation(
                (Tag.INTEGER, "notify-subscription-ids", [subscription_id]),
                (Tag.INTEGER, "notify-sequence-numbers", [after + 1]),
            ),
        )
        updates: list[JobUpdate] = []
        last = after
        for event in reply.all_groups(Tag.EVENT_NOTIFICATION):
            sequence = int(event.get("notify-sequence-number", (0,))[0])
            if sequence <= after or "notify-job-id" not in event:
                continue
            last = max(last, sequence)
            state = _JOB_STATES.get(int(event.get("job-state", (3,))[0]), PrintJobState.QUEUED)
            reasons = tuple(str(r) for r in event.get("job-state-reasons", ()) if r)
            updates.append(JobUpdate(int(event["notify-job-id"][0]), state, reasons))
        return updates, last

    def unsubscribe(self, subscription_id: int) -> None:
        """Cancel-Subscription (a subscription already gone is fine)."""
        try:
            self._call(
                "/",
                Op.CANCEL_SUBSCRIPTION,
                self._operation((Tag.INTEGER, "notify-subscription-id", [subscription_id])),
            )
        except IppError as exc:
            if not exc.not_found:
                raise


class PrinterMonitor:
    """The printer's state for the dashboard and ``/metrics``, read at most every ``max_age_seconds``
    (a scrape or a dashboard refresh must not cost a CUPS call each). Thread-safe. CUPS unreachable or the
    queue missing reads as ``offline``; ``queue`` None (printing off) as ``disabled``."""

    def __init__(
        self,
        cups: CupsQueue | None,
        *,
        max_age_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.queue = cups
        self.max_age_seconds = max_age_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._status = PrinterStatus(PrinterState.DISABLED if cups is None else PrinterState.OFFLINE)
        self._read_at: float | None = None

    def status(self) -> PrinterStatus:
        if self.queue is None:
            return self._status
        with self._lock:
            now = self.clock()
            if self._read_at is not None and now - self._read_at < self.max_age_seconds:
                return self._status
            try:
                status = self.queue.status()
            except IppError as exc:
                if self._status.state is not PrinterState.OFFLINE or self._read_at is None:
                    logger.warning("printer unreachable: %s", exc)
                status = PrinterStatus(PrinterState.OFFLINE, ("cups-unreachable",))
            self._status, self._read_at = status, now
            return status


@dataclass
class _Job:
    """One print of the visit, as the print thread follows it."""

    local_id: str
    state: PrintJobState = PrintJobState.QUEUED
    reason: str | None = None
    cups_id: int | None = None
    submitted_at: float = 0.0
    # The composed document, until CUPS has it; zeroed and dropped right after the submission.
    document: bytearray | None = field(default=None, repr=False)
    document_format: str = "image/jpeg"
    size: int = 0  # bytes of the document

    def as_json(self) -> dict[str, Any]:
        return {
            "job": self.local_id,
            "status": self.state.value,
            "reason": self.reason,
            "cups_job": self.cups_id,
            "bytes": self.size,
        }


_STOP = object()


class PrintSpooler:
    """The session worker's one print thread: it submits each print to CUPS, follows it to its end, and
    at ``close`` (WIPE) cancels and purges what has not ended. Every CUPS call of the worker is made on this
    thread, in order, so a cancel always comes after the submission whose job id it needs.

    ``submit`` and ``jobs`` are called from the worker's request thread; ``close`` from whichever thread
    wipes. Reason codes of a failed job: ``cups_unreachable``, ``rejected``, ``aborted``, ``stopped`` (a
    filter failed), ``timed_out``, ``lost`` (cupsd restarted under it); of a cancelled one: ``wiped``."""

    def __init__(
        self,
        cups: CupsQueue,
        *,
        poll_seconds: float = 0.25,
        job_timeout_seconds: float = 180.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.queue = cups
        self.poll_seconds = poll_seconds
        self.job_timeout_seconds = job_timeout_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._jobs: list[_Job] = []
        self._work: queue.Queue[Any] = queue.Queue()
        self._closing = threading.Event()
        self._subscription: int | None = None
        self._sequence = 0
        self._thread = threading.Thread(target=self._run, name="print", daemon=True)
        self._thread.start()

    # -- called from the worker's request thread -----------------------------------------------------------

    def submit(self, document: bytearray, document_format: str) -> dict[str, Any]:
        """Queue one print; ``document`` becomes the spooler's (zeroed once CUPS has it or the visit ends).
        Returns the job as the guest page shows it (``queued``)."""
        job = _Job(secrets.token_hex(6), document=document, document_format=document_format)
        job.size = len(document)
        with self._lock:
            if self._closing.is_set():
                _zero(document)
                raise RuntimeError("the print spooler is closed")
            self._jobs.append(job)
            view = job.as_json()
        self._work.put(job)
        return view

    def jobs(self) -> list[dict[str, Any]]:
        """Every print of the visit, oldest first: ``{"job", "status", "reason", "cups_job", "bytes"}``."""
        with self._lock:
            return [job.as_json() for job in self._jobs]

    def close(self, timeout: float = 3.0) -> int:
        """WIPE: stop taking prints, cancel and purge every job that has not ended, drop the subscription,
        stop the thread. Returns how many CUPS jobs were cancelled. Never raises."""
        self._closing.set()
        self._work.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning("print thread still busy at wipe; the main process purges the queue")
        with self._lock:
            cancelled = sum(1 for job in self._jobs if job.state is PrintJobState.CANCELLED)
            for job in self._jobs:
                if job.document is not None:
                    _zero(job.document)
                    job.document = None
        return cancelled

    # -- the print thread -----------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                item = self._work.get(timeout=self.poll_seconds)
            except queue.Empty:
                item = None
            if item is _STOP or self._closing.is_set():
                self._cancel_all()
                return
            try:
                if isinstance(item, _Job):
                    self._send(item)
                self._follow()
            except Exception as exc:
                # A reply this client did not expect (a missing attribute, an out-of-band value) must not
                # end the one thread that follows the jobs and cancels them at WIPE (found in review).
                # The class only: an exception's text could quote what CUPS sent.
                logger.error("print thread: unexpected %s; going on", type(exc).__name__)

    def _set(self, job: _Job, state: PrintJobState, reason: str | None = None) -> None:
        with self._lock:
            if job.state.finished or (job.state, job.reason) == (state, reason):
                return
            job.state, job.reason = state, reason
        logger.info("print job %s (cups %s): %s", job.local_id, job.cups_id, state.value)

    def _send(self, job: _Job) -> None:
        document = job.document
        if document is None:
            return
        try:
            if self._subscription is None:
                try:
                    self._subscription = self.queue.subscribe()
                except IppError as exc:
                    # Without events a job's end is inferred from its disappearance (see _follow).
                    logger.warning("no CUPS job events: %s", exc)
            cups_id = self.queue.submit(document, job.document_format)
        except IppError as exc:
            code = "cups_unreachable" if exc.status == 0 else "rejected"
            logger.warning("print job %s not accepted: %s", job.local_id, exc)
            self._set(job, PrintJobState.FAILED, code)
            return
        finally:
            _zero(document)
            with self._lock:
                job.document = None
        with self._lock:
            job.cups_id = cups_id
            job.submitted_at = self.clock()
        logger.info("print job %s submitted as cups job %d", job.local_id, cups_id)

    def _open_jobs(self) -> list[_Job]:
        with self._lock:
            return [j for j in self._jobs if j.cups_id is not None and not j.state.finished]

    def _follow(self) -> None:
        """One poll: each open job's state, then the subscription's events (read after, so the end event of
        a job found gone is among them: CUPS posts it before it forgets the job).

        A job gone with an end event ended as the event says. Gone without one while the subscription
        works: it vanished without ending (cupsd restarted, ``lost``). Without a subscription at all (an
        old CUPS): CUPS ends a job it cannot print as aborted, which leaves no trace either, so a job that
        left the queue is taken as handed to the printer."""
        open_jobs = self._open_jobs()
        if not open_jobs:
            return
        gone: list[_Job] = []
        for job in open_jobs:
            assert job.cups_id is not None
            if self.clock() - job.submitted_at > self.job_timeout_seconds:
                self._cancel(job, PrintJobState.FAILED, "timed_out")
                continue
            try:
                now = self.queue.job(job.cups_id)
            except IppError:
                return  # CUPS (re)starting: ask again at the next poll
            if now is None:
                gone.append(job)
            elif now.stopped:
                # Nobody will restart it at a kiosk, and its document would wait in the spool: end it.
                self._cancel(job, PrintJobState.FAILED, "stopped")
            elif not now.state.finished:
                self._set(job, now.state)
        subscribed = self._subscription is not None
        ended: dict[int, JobUpdate] = {}
        if self._subscription is not None:
            try:
                updates, self._sequence = self.queue.events(self._subscription, self._sequence)
            except IppError as exc:
                if not exc.not_found:
                    logger.warning("CUPS job events unavailable: %s", exc)
                    return  # decide about the gone jobs at the next poll
                # cupsd restarted and forgot the subscription, and with it every job it had.
                logger.warning("CUPS restarted: its jobs and the job events are gone")
                self._subscription, self._sequence, updates = None, 0, []
            ended = {u.job_id: u for u in updates if u.state.finished}
        for job in gone:
            update = ended.get(job.cups_id or 0)
            if update is not None:
                reason = "aborted" if update.state is PrintJobState.FAILED else None
                self._set(job, update.state, reason)
            elif subscribed:
                self._set(job, PrintJobState.FAILED, "lost")
            else:
                self._set(job, PrintJobState.COMPLETED)

    def _cancel(self, job: _Job, state: PrintJobState, reason: str | None) -> None:
        assert job.cups_id is not None
        try:
            self.queue.cancel(job.cups_id)
        except IppError as exc:
            logger.warning("could not cancel print job %s: %s", job.local_id, exc)
        self._set(job, state, reason)

    def _cancel_all(self) -> None:
        for job in self._open_jobs():
            self._cancel(job, PrintJobState.CANCELLED, "wiped")
        with self._lock:
            waiting = [j for j in self._jobs if j.cups_id is None and not j.state.finished]
        for job in waiting:  # never sent: nothing of it reached CUPS
            self._set(job, PrintJobState.CANCELLED, "wiped")
        if self._subscription is not None:
            try:
                self.queue.unsubscribe(self._subscription)
            except IppError as exc:
                logger.warning("could not cancel the CUPS subscription: %s", exc)
            self._subscription = None


def _zero(buffer: bytearray) -> None:
    """Overwrite a document buffer in place (bytes cannot be; this is why documents are bytearrays)."""
    buffer[:] = bytes(len(buffer))
