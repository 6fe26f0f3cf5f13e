"""`python -m appliance`: run the kiosk, check a config, manage staff, verify the audit trail."""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from appliance.cli.check_config import check_config_main
from appliance.config import ConfigError, KioskConfig, load_config
from appliance.hardening import MALLOC_MMAP_THRESHOLD_BYTES, harden_process
from appliance.logsafe import configure_logging

logger = logging.getLogger("appliance")

LISTENER_GROUP = "headshot_kiosk.listeners"
TICK_SECONDS = 0.5
USAGE = """usage: python -m appliance COMMAND [ARGS]

commands:
  run [--config PATH] [--log-level LEVEL]   start the kiosk (RAM store, warm worker, listeners)
  check-config [PATH]                       validate a kiosk.toml; exit 0, or list every problem and exit 2
  staff add|list|remove|reset-totp|recovery-codes ...   manage staff accounts (see: staff --help)
  audit verify|export [--config PATH]       check or export the anonymous audit trail
  compliance generate [--config PATH] [-o DIR]   write GDPR/CCPA/PIPEDA documents from the config
"""


class Listener(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


def discover_listeners() -> list[Callable[..., list[Listener]]]:
    """Listener factories registered by packages above us (the UI) under the entry-point group
    ``headshot_kiosk.listeners``. This is how ``run`` starts the web servers without ``appliance``
    importing ``kiosk_ui`` (imports point down only, DESIGN.md §3)."""
    return [ep.load() for ep in entry_points(group=LISTENER_GROUP)]


# The main process relays images and delivery links through Python buffers that it frees but cannot
# overwrite. glibc scrubs freed memory when MALLOC_PERTURB_ is set, and PYTHONMALLOC=malloc routes Python's
# own small-object allocations through glibc so they are scrubbed too. All of these are read once at process
# start, hence the re-exec (same pid, so systemd's Type=notify is unaffected). Found by the P1-6 memory scan
# of tests/audit: without them, freed render bytes stayed readable in the main process.
# glibc's per-thread cache (tcache) takes small chunks back *before* the perturb step, so a freed 80-byte
# string holding a delivery token would survive untouched: turn the cache off in this one process.
# A fixed mmap threshold (as in the workers, see hardening.worker_environment) hands every buffer of 128 KiB
# or more (renders, preview frames) back to the kernel on free. Two arenas instead of glibc's default of
# eight per core: each of the ~50 listener threads otherwise grows an arena of its own to the size of the
# largest photo it relayed. Measured over 300 API visits with phone downloads (tests/audit machinery): RSS
# 81,720 -> 85,904 KiB (+5.1 %, still climbing) without these two; 75,456 -> 77,372 KiB (+2.5 %, flat
# from visit 175 on) with them; the full audit's soak (`make audit`, ~650 visits) went from +10.1 % to +2.3 %.
SCRUB_ENV = {
    "PYTHONMALLOC": "malloc",
    "MALLOC_PERTURB_": "165",
    "GLIBC_TUNABLES": "glibc.malloc.tcache_count=0",
    "MALLOC_MMAP_THRESHOLD_": str(MALLOC_MMAP_THRESHOLD_BYTES),
    "MALLOC_ARENA_MAX": "2",
}


def _reexec_with_scrubbing(argv: Sequence[str]) -> None:
    if all(os.environ.get(k) == v for k, v in SCRUB_ENV.items()):
        return
    env = {**os.environ, **SCRUB_ENV}
    os.execve(sys.executable, [sys.executable, "-m", "appliance", "run", *argv], env)  # noqa: S606 - our own argv


def run_main(argv: Sequence[str]) -> int:
    _reexec_with_scrubbing(argv)
    parser = argparse.ArgumentParser(prog="python -m appliance run")
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--no-listeners", action="store_true", help="run the core without the web listeners")
    args = parser.parse_args(argv)
    harden_process()  # before any guest data can exist in this process
    configure_logging(args.log_level)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    return run(cfg, log_level=args.log_level, with_listeners=not args.no_listeners)


def _receipt_sink(cfg: KioskConfig) -> Callable[[Any], None] | None:
    """Consent receipts go to the anonymous audit trail when that module is installed."""
    try:
        audit = importlib.import_module("appliance.audit")
    except ImportError:
        return None
    return audit.receipt_recorder(cfg)  # type: ignore[no-any-return]


def run(cfg: KioskConfig, *, log_level: str = "INFO", with_listeners: bool = True) -> int:
    """Start everything, tick until SIGTERM/SIGINT, then wipe and stop. Returns the exit status.

    ``cfg`` is the config file; the event settings staff changed in the console (``appliance.overrides``)
    are laid over it for the kiosk, while the listeners get ``cfg`` itself: the staff console bounds its
    choices by the file's values and resets to them."""
    from appliance.kiosk import Kiosk  # noqa: PLC0415 - keeps check-config free of the store code
    from appliance.overrides import load_with_overrides  # noqa: PLC0415
    from appliance.systemd import Notifier  # noqa: PLC0415

    notifier = Notifier.from_environ()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    effective, _ignored = load_with_overrides(cfg)  # a stale file is logged and ignored, never fatal
    kiosk = Kiosk(effective, notifier=notifier, on_receipt=_receipt_sink(effective), log_level=log_level)
    listeners: list[Listener] = []
    try:
        kiosk.start(wait_for_worker=True)
        if with_listeners:
            for factory in discover_listeners():
                listeners.extend(factory(kiosk, cfg))
        # Everything alive now is the kiosk's own (modules, apps, the facade): take it out of the collector's
        # sight, so the collection on every tick walks only what requests and visits made since. Before the
        # listeners start: a frozen object is never freed, so no request may be in flight yet.
        gc.collect()
        gc.freeze()
        for listener in listeners:
            listener.start()
        notifier.ready(kiosk.status_line())
        logger.info("kiosk ready: %d listener(s)", len(listeners))
        while not stop.is_set():
            tick(kiosk)
            stop.wait(TICK_SECONDS)
    except Exception:
        logger.exception("kiosk stopped by an error")
        return 1
    finally:
        for listener in reversed(listeners):
            try:
                listener.stop()
            except Exception:
                logger.exception("listener did not stop cleanly")
        kiosk.close()
    logger.info("kiosk stopped")
    return 0


class _Ticks(Protocol):
    def tick(self) -> Any: ...


def tick(kiosk: _Ticks) -> None:
    """One turn of the run loop: the facade's timers, then the cyclic garbage of the last half second.

    Requests leave reference cycles behind (werkzeug's routing, exceptions and their frames) that hold the
    request path, i.e. a delivery link with its key, until the collector's next full pass, which can be
    minutes away on a quiet kiosk; freed, glibc scrubs them (see SCRUB_ENV). Found by the audit's P1-6 scan
    after fuzzing the delivery listener."""
    kiosk.tick()
    gc.collect()


def _delegate(command: str, module: str, function: str, argv: Sequence[str]) -> int:
    """Run ``module.function(argv)``, imported only now: some commands need optional packages."""
    try:
        mod = importlib.import_module(module)
    except ImportError:
        print(f"this installation has no {command} support", file=sys.stderr)
        return 2
    return int(getattr(mod, function)(list(argv)))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "run":
        return run_main(rest)
    if command == "check-config":
        return check_config_main(rest)
    if command == "staff":
        return _delegate("staff", "appliance.cli.accounts", "staff_main", rest)
    if command == "audit":
        return _delegate("audit", "appliance.cli.audit", "audit_main", rest)
    if command == "compliance":
        return _delegate("compliance", "appliance.cli.compliance", "compliance_main", rest)
    print(f"unknown command {command!r}\n\n{USAGE}", file=sys.stderr, end="")
    return 2


if __name__ == "__main__":
    sys.exit(main())
