"""P0-1: core dumps are impossible for a hardened process (dumpable=0), whatever RLIMIT_CORE was asked for.

What this proves depends on ``/proc/sys/kernel/core_pattern``:

* a plain file name such as ``core`` (this development machine, kernel default): the kernel would write the
  dump into the crashing process's cwd. The control test shows an unhardened process really leaves a core file
  there under the same conditions, so "no file" after hardening is a real result, not a silent no-op.
* a pipe (``|/usr/lib/systemd/systemd-coredump ...``, apport): no file appears in the cwd either way; the
  proof is then the dumpable flag itself, because fs/coredump.c (``do_coredump``) stops for a non-dumpable
  process before it looks at the pattern, so the handler is never started. ``RLIMIT_CORE=0`` alone would not
  stop a pipe handler (core(5)). Changing the system-wide pattern to watch a handler is out of bounds here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from appliance.hardening import is_dumpable, read_core_pattern

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534

CRASHES = {
    # A real invalid memory access, not a signal sent by hand.
    "sigsegv": ("ctypes.memset(0, 0, 1)", signal.SIGSEGV),
    "sigabrt": ("os.abort()", signal.SIGABRT),
}


def _core_file_prefix() -> str | None:
    """The file-name prefix the kernel would use in the cwd, or None if cores do not go to the cwd."""
    pattern = read_core_pattern()
    if not pattern or pattern.startswith("|") or "/" in pattern:
        return None
    return pattern.split("%", 1)[0] or None


def _crash(cwd: Path, crash: str, *, harden: bool) -> tuple[int, dict[str, Any]]:
    action, _ = CRASHES[crash]
    script = textwrap.dedent(
        f"""
        import ctypes, json, os, resource
        from appliance.hardening import harden_process, is_dumpable
        # What `ulimit -c unlimited` would request (the hard limit binds a non-root process).
        soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
        try:
            resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))
        requested = resource.getrlimit(resource.RLIMIT_CORE)
        if {harden}:
            harden_process()
        print(json.dumps({{"requested": requested, "dumpable": is_dumpable(),
                           "limit": resource.getrlimit(resource.RLIMIT_CORE)}}), flush=True)
        {action}
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONFAULTHANDLER"}
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    report = json.loads(result.stdout.splitlines()[0])
    return result.returncode, report


def _core_files(cwd: Path) -> list[str]:
    prefix = _core_file_prefix() or "core"
    return sorted(name for name in os.listdir(cwd) if name.startswith(prefix))


@pytest.mark.parametrize("crash", sorted(CRASHES))
def test_p0_1_hardened_process_leaves_no_core_file(tmp_path: Path, crash: str) -> None:
    returncode, report = _crash(tmp_path, crash, harden=True)
    assert returncode == -CRASHES[crash][1]  # it really died of the signal
    assert report["dumpable"] is False
    assert report["limit"] == [0, 0]
    assert _core_files(tmp_path) == []


def test_p0_1_control_unhardened_process_does_dump_here(tmp_path: Path) -> None:
    """Shows the test above can fail: the same crash without hardening leaves a core file in the cwd."""
    if _core_file_prefix() is None:
        pytest.skip(
            f"core_pattern {read_core_pattern()!r} does not write into the cwd; dumpable=0 is the proof"
        )
    returncode, report = _crash(tmp_path, "sigabrt", harden=False)
    assert returncode == -signal.SIGABRT
    assert report["dumpable"] is True
    if report["requested"][0] == 0:
        pytest.skip("RLIMIT_CORE hard limit is 0 here, so no process can dump; nothing to contrast")
    cores = _core_files(tmp_path)
    assert cores, "an unhardened process should have dumped core into its cwd"
    for name in cores:
        (tmp_path / name).unlink()


def test_p0_1_dumpable_zero_is_visible_from_outside() -> None:
    """The service user is not root, so a supervisor (or `doctor`) can check each process from /proc.
    As root the child switches to nobody first, as the kiosk's service user would be."""
    script = textwrap.dedent(
        f"""
        import ctypes, os, sys
        from appliance.hardening import harden_process
        if os.geteuid() == 0:
            try:
                os.setgroups([])
                os.setresgid({NOBODY}, {NOBODY}, {NOBODY})
                os.setresuid({NOBODY}, {NOBODY}, {NOBODY})
            except OSError:  # root inside a user namespace without nobody mapped
                print("cannot-drop", flush=True)
                sys.exit(0)
            ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # undo the kernel's reset on uid change: start dumpable
        print("start", flush=True)
        sys.stdin.readline()
        harden_process()
        print("hardened", flush=True)
        sys.stdin.readline()
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        first = child.stdout.readline().strip()
        if first == "cannot-drop":
            pytest.skip(
                "running as root in a user namespace where the child cannot switch to an unmapped uid"
            )
        assert first == "start"
        assert is_dumpable(child.pid) is True
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "hardened"
        assert is_dumpable(child.pid) is False
    finally:
        child.stdin.close()
        child.wait(timeout=30)
        child.stdout.close()
