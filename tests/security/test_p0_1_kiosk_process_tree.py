"""P0-1 on the running system: every process of a kiosk (main, session worker, warm spare) is non-dumpable,
and a crashing session worker leaves no core file.

The kiosk runs as an unprivileged user here, as the service user does on the device: only then can the flag
be read from outside (the files in /proc/<pid>/ of a non-dumpable process belong to root, proc(5))."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from appliance.hardening import dumpable_state
from tests.appliance.test_kiosk import wait_dead
from tests.conftest import REPO

NOBODY = 65534


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:
            continue
        for child in map(int, children):
            out += [child, *descendants(child)]
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason="starting the kiosk as another user needs root")
def test_every_kiosk_process_is_non_dumpable_and_a_crash_leaves_no_core() -> None:
    if (os.stat(REPO).st_mode & 0o005) != 0o005:
        pytest.skip("the checkout is not world-readable, so an unprivileged kiosk cannot run from it")
    # The venv's interpreter may live where the unprivileged user cannot go (pyenv under /root): use the
    # system interpreter of the same minor version with the venv's packages on the path.
    system_python = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if not system_python.exists():
        pytest.skip(f"{system_python} is needed to run the kiosk as an unprivileged user")
    site = next(Path(sys.prefix).glob("lib/python*/site-packages"))
    # pytest's tmp_path lives under a 0700 directory of root's; the unprivileged kiosk needs its own.
    work = Path(tempfile.mkdtemp(prefix="p01-kiosk-"))
    os.chmod(work, 0o777)  # the kernel would write a core file here (core_pattern "core" is cwd-relative)
    proc = subprocess.Popen(
        [str(system_python), "-m", "tests.security.kiosk_child", str(work / "store")],
        cwd=work,
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        stdout=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{REPO}:{site}", "HOME": str(work)},
    )
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()
        assert line, "the unprivileged kiosk did not reach review"
        worker = int(json.loads(line)["worker"])
        tree = [proc.pid, *descendants(proc.pid)]
        assert worker in tree and len(tree) >= 2
        states = {pid: dumpable_state(pid) for pid in tree}
        assert all(state is False for state in states.values()), states

        os.kill(worker, signal.SIGSEGV)  # default action: terminate + core dump, if the kernel allowed it
        assert wait_dead(worker)
        time.sleep(0.5)
        leftovers = [p.name for p in work.iterdir() if p.name.startswith("core")]
        assert leftovers == [], f"core file written: {leftovers}"
        # With a pipe core_pattern (systemd-coredump, apport) no file appears in the cwd either way; then
        # the dumpable=0 states asserted above are the proof (the kernel never starts the handler).
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()
        shutil.rmtree(work, ignore_errors=True)
