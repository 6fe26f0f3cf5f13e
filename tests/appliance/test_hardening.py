"""Process hardening: dumpable flag, core limit, dumpable checks from outside, worker env, zeroed arrays."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from appliance.hardening import (
    MALLOC_MMAP_THRESHOLD_BYTES,
    HardeningError,
    dumpable_state,
    is_dumpable,
    worker_environment,
    zero_array,
)

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534


def _run(script: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def test_harden_process_makes_the_process_non_dumpable_with_zero_core_limit() -> None:
    out = _run(
        """
        import dataclasses, json
        from appliance.hardening import harden_process, is_dumpable
        before = is_dumpable()
        report = harden_process()
        print(json.dumps({"before": before, "after": is_dumpable(), **dataclasses.asdict(report)}))
        """
    )
    report = json.loads(out)
    assert report["before"] is True  # a freshly exec'd process is dumpable; exec resets the flag
    assert report["after"] is False
    assert report["dumpable"] is False
    assert (report["core_soft_limit"], report["core_hard_limit"]) == (0, 0)
    assert report["core_pattern_is_pipe"] == str(report["core_pattern"]).startswith("|")


def test_harden_process_is_repeatable() -> None:
    out = _run(
        """
        from appliance.hardening import harden_process
        harden_process()
        print(harden_process().dumpable)
        """
    )
    assert out.strip() == "False"


def test_dumpable_of_this_process_reads_prctl() -> None:
    # pytest itself is not hardened, so it is dumpable.
    assert is_dumpable() is True
    assert dumpable_state(os.getpid()) is True


@pytest.fixture
def staged_child() -> Iterator[subprocess.Popen[str]]:
    """A child that (as root) drops to nobody, re-enables dumping, reports "dumpable", then on a line from
    stdin calls harden_process() and reports "hardened"."""
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
            # A uid change sets dumpable to fs.suid_dumpable (often 0); turn it back on for the control step.
            ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)
        print("dumpable", flush=True)
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
        yield child
    finally:
        child.stdin.close()
        child.wait(timeout=30)
        child.stdout.close()


def test_dumpable_state_of_a_non_root_process_is_read_from_proc_ownership(
    staged_child: subprocess.Popen[str],
) -> None:
    assert staged_child.stdin is not None and staged_child.stdout is not None
    first = staged_child.stdout.readline().strip()
    if first == "cannot-drop":
        pytest.skip("running as root in a user namespace where the child cannot switch to an unmapped uid")
    assert first == "dumpable"
    assert is_dumpable(staged_child.pid) is True
    staged_child.stdin.write("\n")
    staged_child.stdin.flush()
    assert staged_child.stdout.readline().strip() == "hardened"
    assert is_dumpable(staged_child.pid) is False
    assert Path(f"/proc/{staged_child.pid}/status").stat().st_uid == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a process running as root to observe")
def test_dumpable_state_of_a_root_process_is_unknown_from_outside() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert dumpable_state(child.pid) is None
        with pytest.raises(HardeningError, match="ask the process"):
            is_dumpable(child.pid)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)


def test_dumpable_state_of_a_missing_process_raises() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    with pytest.raises(HardeningError, match="no process"):
        dumpable_state(child.pid)


def test_core_limit_survives_in_children_but_dumpable_does_not() -> None:
    """Why every process hardens itself: RLIMIT_CORE is inherited across exec, the dumpable flag is not."""
    out = _run(
        """
        import subprocess, sys
        from appliance.hardening import harden_process
        harden_process()
        print(subprocess.run([sys.executable, "-c",
            "import resource; from appliance.hardening import is_dumpable; "
            "print(resource.getrlimit(resource.RLIMIT_CORE), is_dumpable())"],
            capture_output=True, text=True, check=True).stdout.strip())
        """
    )
    assert out.strip() == "(0, 0) True"


# -- worker environment ------------------------------------------------------------------------------------


def test_worker_environment_sets_the_mmap_threshold() -> None:
    env = worker_environment({"PATH": "/usr/bin", "LANG": "C.UTF-8"})
    assert env == {"PATH": "/usr/bin", "LANG": "C.UTF-8", "MALLOC_MMAP_THRESHOLD_": "131072"}
    assert MALLOC_MMAP_THRESHOLD_BYTES == 128 * 1024


@pytest.mark.parametrize(
    "name",
    [
        "LD_PRELOAD",
        "LD_AUDIT",
        "LD_DEBUG",
        "GLIBC_TUNABLES",
        "MALLOC_MMAP_THRESHOLD_",
        "MALLOC_PERTURB_",
        "PYTHONSTARTUP",
        "PYTHONINSPECT",
        "PYTHONBREAKPOINT",
        "PYTHONMALLOC",
        "PYTHONTRACEMALLOC",
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "LISTEN_FDS",
    ],
)
def test_worker_environment_drops_dangerous_variables(name: str) -> None:
    env = worker_environment({name: "x", "PATH": "/usr/bin"})
    assert env.get(name) in (None, "131072")
    assert env["PATH"] == "/usr/bin"


def test_worker_environment_keeps_library_path_for_cuda() -> None:
    env = worker_environment({"LD_LIBRARY_PATH": "/usr/local/cuda/lib64"})
    assert env["LD_LIBRARY_PATH"] == "/usr/local/cuda/lib64"


def test_worker_environment_does_not_modify_its_input() -> None:
    base = {"LD_PRELOAD": "evil.so"}
    worker_environment(base)
    assert base == {"LD_PRELOAD": "evil.so"}


@pytest.mark.parametrize(("use_worker_env", "expected"), [(True, "mmap"), (False, "heap")])
def test_worker_environment_reaches_glibc(use_worker_env: bool, expected: str) -> None:
    """glibc reads the variable at start-up: a 200 KiB buffer is then served by mmap (unmapped on free), where
    without it glibc's dynamic threshold has risen and the buffer lands in the heap."""
    script = textwrap.dedent(
        """
        import ctypes
        libc = ctypes.CDLL(None)
        libc.malloc.restype = ctypes.c_void_p
        libc.malloc.argtypes = [ctypes.c_size_t]
        libc.free.argtypes = [ctypes.c_void_p]
        # Free a large chunk first: without the variable glibc raises its dynamic threshold here.
        libc.free(libc.malloc(4 * 1024 * 1024))
        address = libc.malloc(200 * 1024)
        maps = open("/proc/self/maps").read().splitlines()
        heap = [l for l in maps if l.endswith("[heap]")]
        start, end = (int(x, 16) for x in heap[0].split()[0].split("-")) if heap else (0, 0)
        print("heap" if start <= address < end else "mmap")
        """
    )
    base = {"PATH": os.environ.get("PATH", "/usr/bin")}
    env = worker_environment(base) if use_worker_env else base
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == expected


# -- zeroing arrays ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64, np.int16, np.bool_])
def test_zero_array_zeroes_every_byte(dtype: type[np.generic]) -> None:
    rng = np.random.default_rng(0)
    a = (rng.random((64, 48, 3)) * 200 - 50).astype(dtype)
    if dtype is np.float32:
        a[0, 0, 0] = -0.0
    zero_array(a)
    assert not a.view(np.uint8).any()


def test_zero_array_zeroes_a_view_in_its_base() -> None:
    base = np.full((10, 10), 7, dtype=np.uint8)
    zero_array(base[2:5, ::2])
    assert not base[2:5, ::2].any()
    assert base.sum() == 7 * (100 - 15)


def test_zero_array_handles_structured_dtypes() -> None:
    a = np.ones(4, dtype=[("x", np.float32), ("n", np.int64)])
    zero_array(a)
    assert not a.view(np.uint8).any()


def test_zero_array_refuses_read_only_and_object_arrays() -> None:
    ro = np.ones(4, dtype=np.uint8)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        zero_array(ro)
    with pytest.raises(ValueError, match="object"):
        zero_array(np.array([object()], dtype=object))
