"""``python -m appliance run``: it re-execs itself once with the allocator settings that keep freed guest
data out of the main process, and its loop frees cyclic garbage every tick (the audit's P1-6 memory scan and
soak found what happens without them)."""

from __future__ import annotations

import gc
import sys
import weakref

import pytest

import appliance.__main__ as main_module
from appliance.__main__ import SCRUB_ENV


class _Exec(Exception):
    pass


def test_run_re_execs_once_with_the_scrubbing_allocator(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SCRUB_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.tcache_count=7")  # a conflicting value is replaced
    calls: list[tuple[str, list[str], dict[str, str]]] = []

    def fake_execve(path: str, argv: list[str], env: dict[str, str]) -> None:
        calls.append((path, argv, env))
        raise _Exec

    monkeypatch.setattr(main_module.os, "execve", fake_execve)
    with pytest.raises(_Exec):
        main_module.run_main(["--config", "/etc/kiosk.toml"])
    path, argv, env = calls[0]
    assert path == sys.executable
    assert argv == [sys.executable, "-m", "appliance", "run", "--config", "/etc/kiosk.toml"]
    for name, value in SCRUB_ENV.items():
        assert env[name] == value
    assert int(env["MALLOC_PERTURB_"]) not in (0, 255)  # a visible, non-zero scrub byte
    assert env["MALLOC_ARENA_MAX"] == "2" and int(env["MALLOC_MMAP_THRESHOLD_"]) <= 256 * 1024


def test_no_second_re_exec_once_the_environment_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SCRUB_ENV.items():
        monkeypatch.setenv(name, value)

    def fail(*_args: object) -> None:
        raise AssertionError("re-exec'd although the allocator environment was already in place")

    monkeypatch.setattr(main_module.os, "execve", fail)
    main_module._reexec_with_scrubbing(["--config", "/etc/kiosk.toml"])  # returns: nothing to do


class _Facade:
    ticks = 0

    def tick(self) -> None:
        self.ticks += 1


class _Node:
    """Stands for the objects a request leaves in a reference cycle (werkzeug's request and routing state,
    exceptions and their frames) with the request path, i.e. a delivery link, inside."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.me = self


def test_each_tick_frees_the_reference_cycles_requests_left(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by the audit's P1-6 scan after fuzzing: cyclic garbage held links until a full collection,
    which can be minutes away. With automatic collection off, only the tick can free the cycle."""
    facade = _Facade()
    node = _Node("/d/" + "0" * 32 + "." + "A" * 43)
    ref = weakref.ref(node)
    del node
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        assert ref() is not None  # nothing else frees it
        main_module.tick(facade)
        assert ref() is None and facade.ticks == 1
    finally:
        if was_enabled:
            gc.enable()
