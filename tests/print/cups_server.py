"""A real cupsd for the print tests, started the way the device starts it.

The configuration is provisioning's own (``provisioning.cups``), only under a temporary directory, with
``FileDevice Yes`` so the printer can be a file. As on the device, the spool is a size-capped tmpfs in
cupsd's own mount namespace (``unshare --mount`` plays systemd's ``TemporaryFileSystem=``): it is gone when
every process of cupsd is gone, and the test sees it only through ``/proc/<cupsd>/root``.

The printer is Gutenprint's DNP DS620 driver with the whole filter chain; its device is a FIFO in the RAM
spool that this helper reads (``drain``) or leaves unread, so a job can be held in the middle of printing
for as long as a test needs (the filter blocks on a full pipe).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from appliance.config import KioskConfig
from provisioning.cups import (
    CupsPaths,
    queue_command,
    render_cups_files_conf,
    render_cupsd_conf,
    spool_mount_options,
    temp_dir_command,
)

QUEUE = "dnp"
MODEL = "dnp-ds620"
DNP_HEADER = b"\x1bPCNTRL"  # every DNP job starts with this control block (Gutenprint's dnpds40 driver)
_JOB_FILE = re.compile(r"^[cd]\d{5}")


def missing() -> str | None:
    """Why a real cupsd cannot run here, or None."""
    if os.geteuid() != 0:
        return "the CUPS tests start cupsd and mount its tmpfs: they need root"
    for tool in ("cupsd", "lpadmin", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian packages cups, cups-client, cups-filters, util-linux)"
    if not Path("/usr/lib/cups/driver/gutenprint.5.3").exists():
        return "Gutenprint's CUPS driver is missing (Debian package printer-driver-gutenprint)"
    if not Path("/usr/lib/cups/filter/imagetoraster").exists():
        return "cups-filters' imagetoraster is missing (Debian package cups-filters)"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        return f"cannot make a mount namespace here: {probe.stderr.decode(errors='replace').strip()}"
    return None


class CupsServer:
    """cupsd in its own mount namespace with the spool on a tmpfs; ``start``, ``kill9``, ``stop``.

    Its files live in a fresh directory of its own under /tmp, mode 0711: cupsd runs its filters as ``lp``,
    which must be able to reach the PPD and the spool (pytest's own temporary directories are 0700)."""

    def __init__(self) -> None:
        base = Path(tempfile.mkdtemp(prefix="hk-print-cups-"))
        base.chmod(0o711)
        self.base = base
        self.paths = CupsPaths.under(str(base))
        self.fifo = f"{self.paths.spool}/printer/out"
        self.process: subprocess.Popen[bytes] | None = None
        self.output = bytearray()
        self._draining = threading.Event()
        self._stop_reading = threading.Event()
        self._reader: threading.Thread | None = None
        self._fd: int | None = None
        for sub in ("etc", "spool", "run", "log"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        (base / "etc" / "cupsd.conf").write_text(render_cupsd_conf(self.paths), encoding="utf-8")
        (base / "etc" / "cups-files.conf").write_text(render_cups_files_conf(self.paths), encoding="utf-8")

    @property
    def socket(self) -> str:
        return self.paths.socket

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def view(self, path: str) -> Path:
        """``path`` as cupsd sees it (its spool is mounted in its own namespace only)."""
        return Path(f"/proc/{self.pid}/root{path}")

    @property
    def spool(self) -> Path:
        return self.view(self.paths.spool)

    def start(self) -> None:
        """Mount a fresh tmpfs on the spool in a new mount namespace, make TempDir and the printer's FIFO
        there, exec cupsd; then create the queue from Gutenprint's driver and start reading the FIFO."""
        p = self.paths
        script = " && ".join(
            [
                f"mount -t tmpfs -o {spool_mount_options(None, noswap=False)} tmpfs {p.spool}",
                " ".join(temp_dir_command(p)),
                f"mkdir -m 0700 {p.spool}/printer",
                f"mkfifo -m 0600 {self.fifo}",
                f"exec cupsd -f -c {self.base}/etc/cupsd.conf -s {self.base}/etc/cups-files.conf",
            ]
        )
        self.process = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while not os.path.exists(p.socket) or not self._comm_is_cupsd():
            if self.process.poll() is not None:
                raise RuntimeError(f"cupsd exited with {self.process.returncode}; see {p.error_log}")
            if time.monotonic() > deadline:
                raise RuntimeError("cupsd did not start within 20 s")
            time.sleep(0.05)
        self._open_fifo()
        # The queue exactly as provisioning makes it, only on the FIFO instead of the USB printer.
        settings = KioskConfig.model_validate({"print": {"queue": QUEUE, "model": MODEL}})
        command = queue_command(settings, f"file://{self.fifo}", socket=p.socket)
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def _comm_is_cupsd(self) -> bool:
        try:
            return Path(f"/proc/{self.pid}/comm").read_text(encoding="ascii").strip() == "cupsd"
        except OSError:
            return False

    # -- the printer: a FIFO read into memory while draining -------------------------------------------------

    def _open_fifo(self) -> None:
        self._fd = os.open(self.view(self.fifo), os.O_RDONLY | os.O_NONBLOCK)
        self._stop_reading.clear()
        self._reader = threading.Thread(target=self._read, args=(self._fd,), daemon=True)
        self._reader.start()

    def _read(self, fd: int) -> None:
        while not self._stop_reading.is_set():
            if not self._draining.wait(0.05):
                continue
            ready, _, _ = select.select([fd], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(fd, 1 << 16)
            except OSError as exc:
                if exc.errno == errno.EAGAIN:
                    continue
                return
            if data:
                self.output += data
            else:
                time.sleep(0.02)  # no writer at the moment (between jobs)

    def drain(self, on: bool = True) -> None:
        """Read the printer's data (``on``) or leave it unread, so the job stalls mid-print."""
        if on:
            self._draining.set()
        else:
            self._draining.clear()

    def _close_fifo(self) -> None:
        self._stop_reading.set()
        if self._reader is not None:
            self._reader.join(5)
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None

    # -- what is in the spool --------------------------------------------------------------------------------

    def job_files(self) -> list[str]:
        """Job control and document files (``c00001``, ``d00001-001``) in RequestRoot right now."""
        return sorted(f.name for f in self.spool.iterdir() if _JOB_FILE.match(f.name))

    def temp_files(self) -> list[str]:
        return sorted(f.name for f in (self.spool / "tmp").iterdir())

    # -- ending it -------------------------------------------------------------------------------------------

    def _namespace_pids(self) -> list[int]:
        """Every process in cupsd's mount namespace (cupsd, its filters and backends)."""
        try:
            ns = os.readlink(f"/proc/{self.pid}/ns/mnt")
        except OSError:
            return []
        pids = []
        for entry in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError):
                if os.readlink(entry / "ns" / "mnt") == ns:
                    pids.append(int(entry.name))
        return pids

    def kill9(self) -> None:
        """SIGKILL cupsd and everything in its namespace at once, as systemd kills a unit's cgroup when its
        main process dies; the namespace and its tmpfs go with the last of them."""
        self._close_fifo()
        pids = self._namespace_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert self.process is not None
        self.process.wait(10)
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() for pid in pids if pid != self.pid):
            if time.monotonic() > deadline:
                raise RuntimeError("processes of cupsd's namespace survived SIGKILL")
            time.sleep(0.05)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.paths.socket)

    def stop(self) -> None:
        """SIGTERM cupsd (it ends its jobs' filters), then make sure nothing of it is left."""
        if self.process is None or self.process.poll() is not None:
            return
        self._close_fifo()
        pids = self._namespace_pids()
        self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)

    def remove(self) -> None:
        """Stop and delete every file of this cupsd (configuration, PPD, logs, the spool's mount point)."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
