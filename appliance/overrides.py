"""Event settings changed in the staff console, kept across restarts: the event overrides file.

``kiosk.toml`` stays as provisioning wrote it (the service cannot write /etc: ``ProtectSystem=strict``).
What staff change in the console — the event name, the offered languages, backgrounds and crop presets, the
delivery window — goes to ``event-overrides.json`` next to the staff accounts file (``[staff]
accounts_path``; on the device ``/var/lib/headshot-kiosk/staff/``, the service's own writable, owner-only
directory). ``python -m appliance run`` loads the config file and then this file over it; every value is
validated again by ``KioskConfig`` with the rest of the config, so the bounds of the config file (a delivery
window of at most 60 minutes...) hold for overrides too. The console can reset to the config file, which
removes the file. File format (JSON: the standard library writes it; only the keys that differ from the
config file)::

    {"format": "headshot-kiosk-event-overrides", "version": 1,
     "event": {"name": "Career Fair", "languages": ["en", "de"], "backgrounds": ["white"],
               "presets": ["square"]},
     "delivery": {"window_minutes": 25}}

Written atomically (``engine.fileio.write_atomic``: temp file, fsync, rename, fsync of the directory), mode
0600, keeping the owner of the accounts file's directory, so a power cut leaves the old file or the new
one, never half of one. No guest data, no secrets.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from appliance.config import ConfigError, KioskConfig, parse_config
from appliance.fileowner import keep_owner
from engine.fileio import write_atomic

__all__ = [
    "OVERRIDABLE",
    "OVERRIDES_NAME",
    "OverrideError",
    "apply_overrides",
    "differences",
    "load_with_overrides",
    "overrides_path",
    "read_overrides",
    "remove_overrides",
    "write_overrides",
]

logger = logging.getLogger(__name__)

OVERRIDES_NAME = "event-overrides.json"
# section -> the keys of it the console may change. Everything else is fixed while the kiosk runs.
OVERRIDABLE: Mapping[str, tuple[str, ...]] = {
    "event": ("name", "languages", "backgrounds", "presets"),
    "delivery": ("window_minutes",),
}
_FORMAT = "headshot-kiosk-event-overrides"
_VERSION = 1
_MAX_BYTES = 64 * 1024

Overrides = dict[str, dict[str, Any]]


class OverrideError(Exception):
    """The overrides file cannot be read, or does not hold overrides this software accepts."""


def overrides_path(accounts_path: Path) -> Path:
    """Where the overrides of a kiosk whose staff accounts live at ``accounts_path`` are kept."""
    return Path(accounts_path).parent / OVERRIDES_NAME


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def differences(base: KioskConfig, current: KioskConfig) -> Overrides:
    """The overridable values of ``current`` that differ from ``base``, by section (JSON-ready)."""
    found: Overrides = {}
    for section, keys in OVERRIDABLE.items():
        old, new = getattr(base, section), getattr(current, section)
        for key in keys:
            if getattr(old, key) != getattr(new, key):
                found.setdefault(section, {})[key] = _plain(getattr(new, key))
    return found


def _check_shape(data: Any, source: str) -> Overrides:
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise OverrideError(f"{source} is not a headshot-kiosk event overrides file")
    if data.get("version") != _VERSION:
        raise OverrideError(f"{source} has version {data.get('version')!r}; this software reads {_VERSION}")
    overrides: Overrides = {}
    for section, values in data.items():
        if section in ("format", "version"):
            continue
        allowed = OVERRIDABLE.get(section)
        if allowed is None or not isinstance(values, dict):
            raise OverrideError(f"{source}: [{section}] cannot be changed from the console")
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            names = ", ".join(f"{section}.{key}" for key in unknown)
            raise OverrideError(f"{source}: {names} cannot be overridden")
        overrides[section] = dict(values)
    return overrides


def read_overrides(path: Path) -> Overrides:
    """The overrides in ``path``, or {} if there is no such file. ``OverrideError`` for a file that is not
    ours, has keys the console cannot change, or that other users may write."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OverrideError(f"{path} is a symlink; refusing to follow it") from None
        raise OverrideError(f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OverrideError(f"{path} is not a regular file")
        if stat.S_IMODE(info.st_mode) & 0o022:
            raise OverrideError(f"{path} may be written by other users; fix it with: chmod 600 {path}")
        raw = handle.read(_MAX_BYTES + 1)
    if len(raw) > _MAX_BYTES:
        raise OverrideError(f"{path} is larger than {_MAX_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise OverrideError(f"{path} is not valid JSON") from None
    return _check_shape(data, str(path))


def apply_overrides(
    base: KioskConfig, overrides: Mapping[str, Mapping[str, Any]], *, source: str
) -> KioskConfig:
    """``base`` with ``overrides`` laid over it, validated by ``KioskConfig`` as a whole (``ConfigError``
    listing every problem by dotted key, e.g. ``delivery.window_minutes: ...``). Backgrounds and presets
    must also be among ``base``'s, as in the console."""
    data = base.model_dump()
    for section, values in overrides.items():
        allowed = OVERRIDABLE.get(section, ())
        if not allowed or set(values) - set(allowed):
            raise ConfigError(
                source, [f"{section}: only {', '.join(allowed) or 'nothing'} can be overridden"]
            )
        data[section] = {**data[section], **values}
    # Operators choose among the config file's backgrounds and presets (appliance.event_settings); a file
    # that offers others (the config was narrowed since) is stale.
    problems = [
        f"event.{key}: {', '.join(map(str, sorted(extra)))} not offered by the config file"
        for key in ("backgrounds", "presets")
        if (extra := set(data["event"][key]) - set(getattr(base.event, key)))
    ]
    if problems:
        raise ConfigError(source, problems)
    return parse_config(data, source=source)


def load_with_overrides(base: KioskConfig) -> tuple[KioskConfig, str | None]:
    """The config the kiosk runs with: ``base`` plus the overrides file next to its staff accounts.

    Returns (config, problem). A file that cannot be read or no longer fits the config file (an admin
    narrowed the backgrounds since...) is left in place and ignored: the kiosk starts with ``base``, and
    ``problem`` says why (for the log and the console), so a stale override never keeps the kiosk down.
    """
    path = overrides_path(base.staff.accounts_path)
    try:
        overrides = read_overrides(path)
        if not overrides:
            return base, None
        cfg = apply_overrides(base, overrides, source=str(path))
    except (OverrideError, ConfigError) as exc:
        problem = str(exc).replace("\n", " ")
        logger.warning("event overrides ignored, running with the config file's values: %s", problem)
        return base, problem
    logger.info("event overrides applied: %s", ", ".join(f"{s}.{k}" for s, v in overrides.items() for k in v))
    return cfg, None


def write_overrides(path: Path, overrides: Mapping[str, Mapping[str, Any]]) -> None:
    """Replace ``path`` atomically with ``overrides`` (mode 0600, the directory's owner); an empty mapping
    removes the file instead. Raises ``OSError`` if it cannot be written (nothing is changed then)."""
    if not any(overrides.values()):
        remove_overrides(path)
        return
    document: dict[str, Any] = {"format": _FORMAT, "version": _VERSION}
    document.update({section: dict(values) for section, values in overrides.items() if values})
    payload = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n"
    write_atomic(path, payload, mode=0o600, set_owner=lambda fd: keep_owner(fd, path))


def remove_overrides(path: Path) -> None:
    """Remove the overrides file (back to the config file's values at the next start); no file is fine."""
    try:
        path.unlink()
    except FileNotFoundError:
        return
    # fsync the directory so the removal survives a power cut, as write_atomic's rename does.
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
