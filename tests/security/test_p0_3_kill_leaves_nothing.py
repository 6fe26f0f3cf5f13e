"""P0-3: kill -9 of the worker or of the main process mid-session leaves nothing recoverable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.config import KioskConfig
from appliance.kiosk import Kiosk
from tests.appliance.test_kiosk import entropy, wait_dead
from tests.conftest import REPO


@pytest.fixture(autouse=True)
def unmount_leftovers(tmp_path: Path) -> Iterator[None]:
    """A killed kiosk cannot unmount the tmpfs it mounted (on the device systemd's namespace goes with the
    service); unmount what these tests leave so pytest can clean its temporary directories."""
    yield
    for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
        mount_point = line.split()[4]
        if mount_point.startswith(str(tmp_path)):
            subprocess.run(["umount", "-l", mount_point], check=False)


def start_child(store: Path) -> tuple[subprocess.Popen[str], dict[str, object]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.security.kiosk_child", str(store)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, "the kiosk child did not reach review"
    return proc, json.loads(line)


def kill_main(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.stdout is not None
    proc.stdout.close()


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()]


def restart_and_check_empty(store: Path) -> None:
    kiosk = Kiosk(KioskConfig.model_validate({"store": {"path": str(store)}}))
    kiosk.store.open()  # what start() does first: mount or reuse, then the start-up sweep
    try:
        leftovers = [p for p in files_under(kiosk.store.path) if "deliveries" not in p.parts]
        assert leftovers == [] and kiosk.session_dirs() == []
    finally:
        kiosk.close()


def test_kill_9_of_the_main_process_the_orphaned_worker_wipes_itself(tmp_path: Path) -> None:
    store = tmp_path / "store"
    proc, info = start_child(store)
    session_dir = Path(str(info["store"])) / str(info["session"])
    assert len(files_under(session_dir)) == 2  # capture + first headshot, as ciphertext
    kill_main(proc)
    # The worker sees its connection close and wipes (files unlinked, key destroyed), then exits.
    assert wait_dead(int(str(info["worker"])), timeout=15)
    assert not session_dir.exists()
    restart_and_check_empty(store)


def test_kill_9_of_both_leaves_only_ciphertext_until_the_restart_sweep(tmp_path: Path) -> None:
    store = tmp_path / "store"
    proc, info = start_child(store)
    worker = int(str(info["worker"]))
    session_dir = Path(str(info["store"])) / str(info["session"])
    os.kill(worker, signal.SIGKILL)  # the worker first: it cannot clean up
    kill_main(proc)
    assert wait_dead(worker)
    left = files_under(session_dir)
    assert left, "with both killed the files are still there (ciphertext) until the restart"
    for f in left:
        data = f.read_bytes()
        assert b"\xff\xd8\xff\xe0\x00\x10JFIF" not in data and entropy(data) > 7.9
    # The key died with the worker (memfd_secret / mlock pages are not in any file or dump).
    restart_and_check_empty(store)


def test_kill_9_of_the_worker_is_noticed_and_wiped_by_the_main_process(tmp_path: Path) -> None:
    kiosk = Kiosk(KioskConfig.model_validate({"store": {"path": str(tmp_path / "store")}}))
    kiosk.start()
    try:
        kiosk.start_session()
        kiosk.consent(True)
        kiosk.capture()
        s = kiosk._visit
        assert s is not None and s.worker is not None
        pid = s.worker.pid
        os.kill(pid, signal.SIGKILL)
        assert wait_dead(pid)
        deadline = time.monotonic() + 5
        while kiosk.state().phase != "idle" and time.monotonic() < deadline:
            kiosk.tick()  # what the run loop does every 0.5 s
            time.sleep(0.1)
        assert kiosk.state().phase == "idle" and kiosk.session_dirs() == []
    finally:
        kiosk.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs for the store needs root")
def test_restart_reuses_the_tmpfs_left_by_a_crash(tmp_path: Path) -> None:
    store = tmp_path / "store"
    proc, info = start_child(store)
    os.kill(int(str(info["worker"])), signal.SIGKILL)
    kill_main(proc)
    mounts = Path("/proc/self/mountinfo").read_text()
    assert f" {store} " in mounts, "the crashed kiosk's tmpfs is still mounted"
    restart_and_check_empty(store)


def test_main_process_gone_mid_render_the_worker_wipes_when_its_reply_bounces(tmp_path: Path) -> None:
    """Found by the audit (kill -9 of the main process while a render runs): the worker finished the render,
    its reply hit a closed socket, and it exited on the BrokenPipeError without wiping. The main process's
    death is simulated by closing its end of the socket right after sending the request."""
    kiosk = Kiosk(KioskConfig.model_validate({"store": {"path": str(tmp_path / "store")}}))
    kiosk.start()
    try:
        kiosk.start_session()
        kiosk.consent(True)
        take = kiosk.capture().take
        s = kiosk._visit
        assert s is not None and s.worker is not None
        worker, session_dir = s.worker.process, kiosk.store.path / s.id
        assert files_under(session_dir)
        # A preset not rendered yet: the worker is busy for a model run when the socket closes.
        worker._conn.send(("render", {"take_id": take, "background": "blur", "preset": "badge"}))
        worker._conn.close()
        assert wait_dead(worker.pid, timeout=30)
        assert not session_dir.exists() or files_under(session_dir) == []
    finally:
        kiosk.close()
