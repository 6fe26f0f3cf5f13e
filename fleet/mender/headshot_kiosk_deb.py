#!/usr/bin/python3
"""Mender Update Module ``headshot-kiosk-deb`` (Update Module protocol v3): installs the kiosk's ``.deb``.

Installed as ``/usr/share/mender/modules/v3/headshot-kiosk-deb`` (Mender 3.4 looks for modules in that fixed
directory; the file name is the artifact's payload type, ``mender-artifact write module-image -T
headshot-kiosk-deb``). The Mender client runs it as root, once per state, as ``MODULE STATE TREE``; the
artifact's signature and checksums are verified by the client before ``ArtifactInstall``. Python standard
library only: it replaces the kiosk's own venv, so it must not run from it.

What it does, state by state:

- ``ArtifactInstall``: settle anything an earlier run left half done (power loss, kill), check the payload is
  one ``.deb`` of the configured package, secure a copy of the installed version to roll back to, then ask the
  kiosk to pause (create the pause file) and wait, bounded, until it reports itself idle — a visit in progress
  is never interrupted. Then ``dpkg -i``, then the health check (the kiosk unit active where systemd runs,
  ``/metrics`` answering on loopback, and ``provisioning doctor`` with no FAIL the old version did not have,
  or a configured command). Healthy: the pause is lifted and the new version waits for ``ArtifactCommit``.
  Unhealthy: the state fails and the client calls ``ArtifactRollback``.
- ``ArtifactRollback``: reinstall the previous package (or purge, if there was none) and lift the pause.
- ``ArtifactCommit``: keep the installed ``.deb`` as the rollback copy for the next update.
- ``ArtifactFailure``: lift the pause (also when a rollback failed: the journal stays for ``recover``).
- ``recover`` (not a Mender state; run at boot by ``headshot-kiosk-ota-recover.service``): an install cut
  short before its health check passed is rolled back.

Every step that changes the package is written first to a journal (``<state dir>/journal.json``, written
atomically and fsynced), so a power cut at any moment leaves a record of what to undo. Mender's own standalone
mode records nothing until ``ArtifactInstall`` returns, so after a power cut during it ``mender rollback`` has
nothing to act on: that case is this journal's job.

Settings come from ``/etc/headshot-kiosk/ota.conf`` (``KEY=VALUE`` lines; ``HK_OTA_CONFIG`` names another
file) and the environment, which wins (the tests use it). See :class:`Settings` for each key. Logs go to
stderr (the Mender client keeps them in its deployment log): package names, versions and states only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODULE = "headshot-kiosk-deb"
CONFIG_PATH = Path("/etc/headshot-kiosk/ota.conf")
# The kiosk's answer to a pause request (appliance.maintenance): 1 once paused with no visit left.
READY_METRIC = "headshot_kiosk_update_ready"
_PHASES = ("pausing", "installing", "installed")
_APT_ARCHIVES = Path("/var/cache/apt/archives")


class ModuleError(Exception):
    """A state failed; the message says why in words an operator can act on (no personal data)."""


def log(message: str) -> None:
    """One line on stderr, which the Mender client records in the deployment log."""
    print(f"{MODULE}: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """Where things are and how long to wait. Durations are seconds.

    ``package``: the only package this module installs (``HK_OTA_PACKAGE``, default ``headshot-kiosk``).
    ``state_dir``: journal and kept ``.deb`` files, on persistent storage (``HK_OTA_STATE_DIR``).
    ``pause_file``: created to ask the kiosk to pause, removed to resume (``HK_OTA_PAUSE_FILE``).
    ``ready_file``: optional; its existence also counts as "kiosk idle" (``HK_OTA_READY_FILE``).
    ``metrics_url``: the kiosk's ``/metrics`` on loopback (``HK_OTA_METRICS_URL``); read for
    ``headshot_kiosk_update_ready`` and as the liveness part of the health check.
    ``ready_timeout``: how long to wait for the kiosk to become idle (``HK_OTA_READY_TIMEOUT``, 900: longer
    than any visit, whose idle timeouts are at most 10 minutes).
    ``health_command``: a shell command whose exit 0 means healthy; replaces the ``doctor`` check when set
    (``HK_OTA_HEALTH_COMMAND``).
    ``health_timeout``: how long the new version has to become healthy (``HK_OTA_HEALTH_TIMEOUT``, 180).
    ``kiosk_unit``: checked with ``systemctl is-active`` where systemd runs (``HK_OTA_KIOSK_UNIT``).
    ``python``: the kiosk's interpreter, for ``-m provisioning doctor`` (``HK_OTA_PYTHON``).
    ``dpkg_lock_timeout``: how long to wait while apt or dpkg holds its lock (``HK_OTA_DPKG_LOCK_TIMEOUT``).
    ``poll``: the interval of every wait loop (``HK_OTA_POLL_SECONDS``, 1.0).
    """

    package: str = "headshot-kiosk"
    state_dir: Path = Path("/var/lib/headshot-kiosk-ota")
    pause_file: Path = Path("/run/headshot-kiosk-update/pause")
    ready_file: Path | None = None
    metrics_url: str = "http://127.0.0.1:8090/metrics"
    ready_timeout: float = 900.0
    health_command: str = ""
    health_timeout: float = 180.0
    kiosk_unit: str = "headshot-kiosk.service"
    python: str = "/opt/headshot-kiosk/.venv/bin/python"
    dpkg_lock_timeout: float = 300.0
    poll: float = 1.0

    @classmethod
    def load(cls, environ: Mapping[str, str]) -> Settings:
        """The config file's values overlaid with ``environ``'s ``HK_OTA_*`` entries."""
        values = _read_config(Path(environ.get("HK_OTA_CONFIG", str(CONFIG_PATH))))
        values.update({k: v for k, v in environ.items() if k.startswith("HK_OTA_")})

        def seconds(key: str, default: float) -> float:
            try:
                return float(values.get(key, default))
            except ValueError:
                raise ModuleError(f"{key} must be a number of seconds, got {values[key]!r}") from None

        ready = values.get("HK_OTA_READY_FILE", "")
        package = values.get("HK_OTA_PACKAGE", cls.package)
        if not re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", package):
            raise ModuleError(f"HK_OTA_PACKAGE is not a Debian package name: {package!r}")
        return cls(
            package=package,
            state_dir=Path(values.get("HK_OTA_STATE_DIR", str(cls.state_dir))),
            pause_file=Path(values.get("HK_OTA_PAUSE_FILE", str(cls.pause_file))),
            ready_file=Path(ready) if ready else None,
            metrics_url=values.get("HK_OTA_METRICS_URL", cls.metrics_url),
            ready_timeout=seconds("HK_OTA_READY_TIMEOUT", cls.ready_timeout),
            health_command=values.get("HK_OTA_HEALTH_COMMAND", ""),
            health_timeout=seconds("HK_OTA_HEALTH_TIMEOUT", cls.health_timeout),
            kiosk_unit=values.get("HK_OTA_KIOSK_UNIT", cls.kiosk_unit),
            python=values.get("HK_OTA_PYTHON", cls.python),
            dpkg_lock_timeout=seconds("HK_OTA_DPKG_LOCK_TIMEOUT", cls.dpkg_lock_timeout),
            poll=seconds("HK_OTA_POLL_SECONDS", cls.poll),
        )

    @property
    def journal(self) -> Path:
        return self.state_dir / "journal.json"

    @property
    def kept(self) -> Path:
        """The ``.deb`` of the committed version: what the next update rolls back to."""
        return self.state_dir / "kept"

    @property
    def incoming(self) -> Path:
        """The ``.deb`` being installed, until it is committed or rolled back."""
        return self.state_dir / "incoming"


def _read_config(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (systemd ``EnvironmentFile`` syntax without quoting rules beyond one pair of
    quotes); ``#`` comments; a missing file is no settings."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    values = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"HK_OTA_[A-Z_]+", key.strip()):
            raise ModuleError(f"{path}:{number}: expected HK_OTA_NAME=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


# ---------------------------------------------------------------------------------------------- journal


def _write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` so that a power cut leaves either the old or the new content (fsync file and dir)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def read_journal(s: Settings) -> dict[str, Any] | None:
    """The update in progress, or None. An unreadable journal is an error, never "nothing to undo"."""
    try:
        data = json.loads(s.journal.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ModuleError(
            f"journal {s.journal} unreadable ({type(exc).__name__}); inspect it by hand"
        ) from None
    if not isinstance(data, dict) or data.get("phase") not in _PHASES:
        raise ModuleError(f"journal {s.journal} has no known phase; inspect it by hand")
    return data


def write_journal(s: Settings, entry: dict[str, Any], phase: str) -> dict[str, Any]:
    """Record ``entry`` in ``phase`` durably before the step it announces; returns the new entry."""
    updated = {**entry, "phase": phase, "updated": round(time.time())}
    _write_atomic(s.journal, json.dumps(updated, indent=2, sort_keys=True).encode() + b"\n")
    return updated


def clear_journal(s: Settings) -> None:
    with contextlib.suppress(FileNotFoundError):
        s.journal.unlink()
        _fsync_dir(s.state_dir)


@contextlib.contextmanager
def state_lock(s: Settings, *, wait: bool = True) -> Iterator[bool]:
    """An exclusive ``flock`` on ``<state dir>/.lock``: the boot-time ``recover`` and a Mender state never
    act at once. Yields False (and holds nothing) when ``wait`` is False and another process holds it."""
    s.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(s.state_dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------- dpkg


def _run(argv: list[str], *, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, check=False)


def deb_fields(deb: Path) -> dict[str, str]:
    """Package, Version and Architecture of a ``.deb`` file (``dpkg-deb --field``)."""
    result = _run(["dpkg-deb", "--field", str(deb), "Package", "Version", "Architecture"])
    if result.returncode != 0:
        raise ModuleError(f"{deb.name} is not a readable Debian package: {result.stderr.strip()[-300:]}")
    fields = {}
    for line in result.stdout.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    if not all(fields.get(k) for k in ("Package", "Version", "Architecture")):
        raise ModuleError(f"{deb.name} lacks a Package, Version or Architecture field")
    return fields


def installed(package: str) -> tuple[str, str] | None:
    """``(status, version)`` of ``package`` in dpkg's database, or None when it is not installed.

    ``status`` is dpkg's two-letter abbreviation without the want flag's meaning: its second letter is
    ``i`` for installed, ``F``/``U``/``H`` for a run that did not finish (half-configured, unpacked,
    half-installed), ``n``/``c`` for not installed (``c``: only its conffiles remain)."""
    result = _run(["dpkg-query", "--show", "--showformat=${db:Status-Abbrev}|${Version}", package])
    if result.returncode != 0:
        return None
    abbrev, _, version = result.stdout.partition("|")
    status = abbrev.strip()
    if len(status) < 2 or status[1] in "nc":
        return None
    return status, version.strip()


def _healthy_status(status: str) -> bool:
    # Installed, possibly with triggers still pending or awaited (they run at the end of dpkg's run).
    return status[1] in "iWt"


def dpkg(s: Settings, *args: str) -> None:
    """Run ``dpkg ARGS``, waiting (up to ``dpkg_lock_timeout``) while apt or dpkg holds its lock."""
    deadline = time.monotonic() + s.dpkg_lock_timeout
    while True:
        result = _run(["dpkg", "--force-confdef", "--force-confold", *args])
        if result.returncode == 0:
            return
        locked = "lock" in result.stderr and ("locked" in result.stderr or "held" in result.stderr)
        if locked and time.monotonic() < deadline:
            time.sleep(max(s.poll, 1.0))
            continue
        tail = (result.stderr or result.stdout).strip()[-600:]
        raise ModuleError(f"dpkg {' '.join(args[:1])} failed (exit {result.returncode}): {tail}")


def _archive_name(package: str, version: str, arch: str) -> str:
    # apt's file names quote the epoch colon as %3a.
    return f"{package}_{version.replace(':', '%3a')}_{arch}.deb"


def rollback_copy(s: Settings, version: str) -> Path:
    """A ``.deb`` of the installed ``version`` of the package: the one kept at the last commit (or installed
    and never committed), apt's cache, or one rebuilt from the installed files by ``dpkg-repack``.
    ``ModuleError`` if none can be had."""
    # incoming/: a healthy install that was never committed (standalone mode) is the installed version.
    candidates = [*sorted(s.kept.glob("*.deb")), *sorted(s.incoming.glob("*.deb"))]
    candidates += sorted(_APT_ARCHIVES.glob(f"{s.package}_*.deb"))
    for candidate in candidates:
        with contextlib.suppress(ModuleError):
            fields = deb_fields(candidate)
            if fields["Package"] == s.package and fields["Version"] == version:
                return candidate
    if shutil.which("dpkg-repack"):
        s.kept.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=s.state_dir) as work:
            result = subprocess.run(
                ["dpkg-repack", s.package], cwd=work, capture_output=True, text=True, check=False
            )
            made = sorted(Path(work).glob("*.deb"))
            if result.returncode == 0 and made:
                target = s.kept / made[0].name
                shutil.move(str(made[0]), target)
                log(f"rebuilt a rollback copy of {s.package} {version} with dpkg-repack")
                return target
    raise ModuleError(
        f"no copy of the installed {s.package} {version} to roll back to: put its .deb in {s.kept} or "
        "install dpkg-repack; nothing was changed"
    )


# ---------------------------------------------------------------------------------------------- the kiosk


def systemd_running() -> bool:
    """True when systemd is PID 1 (sd_booted's test)."""
    return Path("/run/systemd/system").is_dir()


def unit_state(unit: str) -> str:
    """``systemctl is-active`` of ``unit`` ("active", "activating", "failed", ...)."""
    result = _run(["systemctl", "is-active", unit], timeout=30)
    return result.stdout.strip() or "unknown"


def pause(s: Settings) -> None:
    """Ask the kiosk to pause: the file's existence is the whole request (it carries no data)."""
    s.pause_file.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    s.pause_file.touch(mode=0o644, exist_ok=True)


def unpause(s: Settings) -> None:
    with contextlib.suppress(FileNotFoundError):
        s.pause_file.unlink()


def _fetch_metrics(url: str, timeout: float = 5.0) -> str:
    """GET ``url``. The kiosk's console may speak TLS with a certificate for its public name; on loopback
    the address is the authentication, so the certificate is not checked."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(url, timeout=timeout, context=context) as response:  # noqa: S310 - loopback URL from root's config
        return str(response.read(4 * 1024 * 1024).decode("utf-8", "replace"))


def _metric_value(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in (" ", "{"):
            try:
                return float(line.rsplit(None, 1)[-1])
            except ValueError:
                return None
    return None


def kiosk_state(s: Settings) -> str:
    """The kiosk as seen from here: "ready" (paused, no visit), "busy" (a visit in progress, or not paused
    yet), "down" (nothing listens and the unit is not running: no visit can be in progress) or "unknown"
    (keep waiting)."""
    if s.ready_file is not None and s.ready_file.exists():
        return "ready"
    try:
        text = _fetch_metrics(s.metrics_url)
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionRefusedError):
            if systemd_running() and s.kiosk_unit and unit_state(s.kiosk_unit) in ("active", "activating"):
                return "unknown"  # starting up: it will read the pause request on its first tick
            return "down"
        return "unknown"
    except (OSError, ValueError):
        return "unknown"
    return "ready" if _metric_value(text, READY_METRIC) == 1.0 else "busy"


def wait_for_idle(s: Settings) -> str:
    """Wait until the kiosk is ready for the update or down; the state it was in. ``ModuleError`` after
    ``ready_timeout`` seconds."""
    deadline = time.monotonic() + s.ready_timeout
    while True:
        state = kiosk_state(s)
        if state in ("ready", "down"):
            log(f"kiosk {state}: proceeding")
            return state
        if time.monotonic() >= deadline:
            raise ModuleError(
                f"the kiosk did not become idle within {s.ready_timeout:g} s (last seen: {state}); "
                "a visit is never interrupted"
            )
        time.sleep(s.poll)


def doctor_failures(s: Settings) -> set[str] | None:
    """Names of the checks ``provisioning doctor`` FAILs, or None when doctor cannot run or report."""
    try:
        result = _run([s.python, "-m", "provisioning", "doctor", "--json"], timeout=300)
        report = json.loads(result.stdout)
        return {c["name"] for c in report["checks"] if c["status"] == "FAIL"}
    except (OSError, ValueError, KeyError, TypeError, subprocess.TimeoutExpired):
        return None


def health_problems(s: Settings, baseline: set[str]) -> list[str]:
    """What is wrong with the freshly installed version ([] = healthy), waiting up to ``health_timeout``
    for the service to come up. ``baseline``: doctor FAILs the previous version already had."""
    deadline = time.monotonic() + s.health_timeout
    problems: list[str] = []
    if systemd_running() and s.kiosk_unit:
        while (state := unit_state(s.kiosk_unit)) != "active":
            if state == "failed" or time.monotonic() >= deadline:
                problems.append(f"{s.kiosk_unit} is {state}")
                break
            time.sleep(s.poll)
    if s.metrics_url:
        while True:
            try:
                if "headshot_kiosk_" in _fetch_metrics(s.metrics_url):
                    break
                reason = "no headshot_kiosk_ metrics"
            except urllib.error.HTTPError as exc:
                reason = f"HTTP {exc.code}"
            except (OSError, ValueError) as exc:
                reason = type(exc).__name__
            if time.monotonic() >= deadline:
                problems.append(f"{s.metrics_url} does not answer ({reason})")
                break
            time.sleep(s.poll)
    if s.health_command:
        remaining = max(5.0, deadline - time.monotonic())
        try:
            result = subprocess.run(
                ["/bin/sh", "-c", s.health_command], capture_output=True, timeout=remaining, check=False
            )
            if result.returncode != 0:
                problems.append(f"health command exited {result.returncode}")
        except subprocess.TimeoutExpired:
            problems.append("health command timed out")
    else:
        fails = doctor_failures(s)
        if fails is None:
            problems.append("provisioning doctor did not run")
        elif fails - baseline:
            problems.append(f"provisioning doctor FAILs: {', '.join(sorted(fails - baseline))}")
    return problems


# ---------------------------------------------------------------------------------------------- states


def _payload(tree: Path) -> Path:
    files = sorted((tree / "files").iterdir()) if (tree / "files").is_dir() else []
    if len(files) != 1 or files[0].suffix != ".deb" or not files[0].is_file():
        raise ModuleError("the artifact must carry exactly one .deb file and nothing else")
    return files[0]


def artifact_install(s: Settings, tree: Path) -> None:
    """Pause at idle, install, health-check. Raises ``ModuleError`` to make the client roll back."""
    settle(s)  # anything a cut-short run left behind is undone before a new one starts
    deb = _payload(tree)
    fields = deb_fields(deb)
    if fields["Package"] != s.package:
        raise ModuleError(f"the artifact carries {fields['Package']}, this module installs only {s.package}")
    native = _run(["dpkg", "--print-architecture"]).stdout.strip()
    if fields["Architecture"] not in (native, "all"):
        raise ModuleError(f"the package is for {fields['Architecture']}, this device is {native}")
    current = installed(s.package)
    previous: dict[str, str] | None = None
    if current is not None:
        status, version = current
        if not _healthy_status(status):
            raise ModuleError(f"dpkg reports {s.package} {version} as {status!r}: run `dpkg --configure -a`")
        previous = {"version": version, "deb": str(rollback_copy(s, version))}
    s.incoming.mkdir(mode=0o700, parents=True, exist_ok=True)
    incoming = s.incoming / deb.name
    shutil.copyfile(deb, incoming)
    baseline = set() if s.health_command else (doctor_failures(s) or set())
    entry = {
        "artifact": (tree / "header" / "artifact_name").read_text().strip()
        if (tree / "header" / "artifact_name").is_file()
        else "",
        "package": s.package,
        "new": {"version": fields["Version"], "deb": str(incoming)},
        "previous": previous,
    }
    entry = write_journal(s, entry, "pausing")
    pause(s)
    log(f"asked the kiosk to pause for {s.package} {fields['Version']}; waiting for it to be idle")
    try:
        wait_for_idle(s)
    except ModuleError:
        unpause(s)
        clear_journal(s)
        raise
    entry = write_journal(s, entry, "installing")
    was = previous["version"] if previous else "nothing"
    log(f"installing {s.package} {fields['Version']} (was {was})")
    dpkg(s, "--install", str(incoming))
    problems = health_problems(s, baseline)
    if problems:
        raise ModuleError("health check failed: " + "; ".join(problems))
    write_journal(s, entry, "installed")
    unpause(s)
    log(f"{s.package} {fields['Version']} installed and healthy; the kiosk resumes")


def artifact_commit(s: Settings) -> None:
    """Keep the committed ``.deb`` as the rollback copy of the next update; forget older ones."""
    entry = read_journal(s)
    if entry is None:
        return
    if entry["phase"] != "installed":
        raise ModuleError(f"cannot commit an update in phase {entry['phase']}")
    new = Path(entry["new"]["deb"])
    s.kept.mkdir(mode=0o700, parents=True, exist_ok=True)
    keep = s.kept / new.name
    if new.exists():
        os.replace(new, keep)
    for old in s.kept.glob("*.deb"):
        if old != keep:
            old.unlink()
    _fsync_dir(s.kept)
    clear_journal(s)
    log(f"{entry['package']} {entry['new']['version']} committed")


def restore(s: Settings, entry: dict[str, Any]) -> None:
    """Put the previous version back (``ArtifactRollback`` and ``recover``); lifts the pause at the end."""
    if entry["phase"] == "pausing":  # nothing was installed
        unpause(s)
        clear_journal(s)
        return
    # A pause file still there has been in force since before dpkg ran (a reboot empties /run): no visit
    # can have started, and a new version that failed its health check may not be able to say so. Else
    # (after a power cut, or an operator's rollback hours later) ask again and wait, like an install.
    held = s.pause_file.exists()
    pause(s)
    try:
        if not held:
            try:
                wait_for_idle(s)
            except ModuleError:
                if entry["phase"] == "installed":
                    raise  # a healthy version: roll it back when the kiosk is idle, like an install
                # The new version never passed its health check and cannot report itself idle.
                log("the new version does not report itself idle; rolling it back anyway")
        # Finish or unwind whatever dpkg run a power cut interrupted, so its database is consistent.
        configure = _run(["dpkg", "--force-confdef", "--force-confold", "--configure", "--pending"])
        if configure.returncode != 0:
            log("dpkg --configure --pending failed; reinstalling over it")
        previous = entry.get("previous")
        if previous:
            log(f"rolling back {entry['package']} to {previous['version']}")
            dpkg(s, "--install", previous["deb"])
            now = installed(entry["package"])
            if now is None or now[1] != previous["version"] or not _healthy_status(now[0]):
                raise ModuleError(f"rollback left {entry['package']} at {now}")
        else:
            log(f"rolling back: removing {entry['package']} (it was not installed before)")
            dpkg(s, "--purge", entry["package"])
        with contextlib.suppress(FileNotFoundError):
            Path(entry["new"]["deb"]).unlink()
        # Resume before forgetting: a cut between the two re-runs this rollback (harmless) rather than
        # leave a kiosk paused with no journal to say why.
        unpause(s)
        clear_journal(s)
        log("rollback done")
    finally:
        unpause(s)


def artifact_rollback(s: Settings) -> None:
    entry = read_journal(s)
    if entry is not None:
        restore(s, entry)


def settle(s: Settings) -> None:
    """Undo an install that was cut short (the caller holds the state lock).

    ``installing``: the new version never passed its health check: roll back. ``installed``: a healthy
    version awaiting commit is Mender's to commit or roll back; only the pause is lifted. ``pausing``: the
    pause is lifted."""
    entry = read_journal(s)
    if entry is None:
        return
    log(f"found an unfinished update (phase {entry['phase']})")
    if entry["phase"] == "installed":
        unpause(s)
    else:
        restore(s, entry)


def cleanup(s: Settings) -> None:
    if read_journal(s) is None and s.incoming.is_dir():
        for leftover in s.incoming.iterdir():
            leftover.unlink()


def main(argv: list[str]) -> int:
    """Dispatch one Mender state (or ``recover``); 0 on success, 1 on failure."""
    state = argv[1] if len(argv) > 1 else ""
    if state == "SupportsRollback":
        print("Yes")
        return 0
    if state == "NeedsArtifactReboot":
        print("No")
        return 0
    try:
        s = Settings.load(os.environ)
        if state == "recover":
            with state_lock(s, wait=False) as held:
                if held:
                    settle(s)
                else:
                    log("another update step is running; nothing to recover now")
            return 0
        actions = {
            "ArtifactInstall": lambda: artifact_install(s, Path(argv[2])),
            "ArtifactCommit": lambda: artifact_commit(s),
            "ArtifactRollback": lambda: artifact_rollback(s),
            "ArtifactFailure": lambda: unpause(s),
            "Cleanup": lambda: cleanup(s),
        }
        action = actions.get(state)
        if action is None:
            return 0  # Download (the client stores the files) and states this version does not know
        with state_lock(s):
            action()
        return 0
    except ModuleError as exc:
        log(f"{state}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
