"""``python -m appliance run`` re-execs itself once with the allocator settings that keep freed guest data
out of the main process (the audit's P1-6 memory scan and soak found what happens without them)."""

from __future__ import annotations

import sys

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
