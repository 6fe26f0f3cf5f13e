"""The Debian package's provisioning step: record what ``provisioning apply`` changes, then apply it.

Installed as ``/usr/lib/headshot-kiosk/package_provision.py``; the postinst runs it with the kiosk's venv:
``/opt/headshot-kiosk/.venv/bin/python /usr/lib/headshot-kiosk/package_provision.py configure``.

1. **Record.** Before anything changes, ``provisioning.apply.plan`` lists every file, directory and link
   apply will create or change. Each is written to the manifest (``/var/lib/headshot-kiosk-package/manifest``,
   root only) as *created* (absent before; missing parent directories too) or *replaced* (a copy of the old
   one goes to ``backup/``), and so are the service accounts that did not exist. Files other commands of
   ``python -m provisioning`` may write later under the package's own names (``cert obtain``'s renewal
   units, ``hotspot``'s configs) are recorded as *named*. The postrm undoes the manifest in reverse order
   with plain shell, because it runs after the venv is gone: *system* entries at ``remove``, *data* entries
   (the config directory's contents, ``/var/lib/headshot-kiosk``, the accounts) at ``purge``.
2. **Apply.** ``provisioning.apply.apply`` with a runner that decides what may run here:

   * booted with systemd (sd_booted(3): ``/run/systemd/system`` exists): everything, as
     ``python -m provisioning apply`` on the device, except package installs (``apt-get`` cannot run
     inside dpkg, ``snap install`` needs the network): those are reported, not run;
   * otherwise (an image built in a chroot, a container, CI): only ``systemd-sysusers`` and ``chown``, so
     the units carry the real account ids and the state directories the right owner. ``systemctl``,
     ``sysctl --system``, ``swapoff`` and restarts are reported and left to the next boot, which reads
     the installed files anyway: nothing is started, mounted or changed in the running kernel.

``HEADSHOT_KIOSK_PROVISION=offline`` forces the second mode, ``none`` skips provisioning (an image
builder that runs ``provisioning apply`` itself). ``HEADSHOT_KIOSK_BROWSER=yes|no|auto`` (default auto:
the kiosk browser unit is installed when cage and Chromium are both present).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from appliance.config import ConfigError
from provisioning import ProvisioningError
from provisioning.acme import ACME_DIR, renewal_specs
from provisioning.apply import Change, LinkSpec, apply, plan
from provisioning.configfile import CONFIG_DIR, STATE_DIR
from provisioning.hotspot import (
    CHECKS_NFT_PATH,
    CHECKS_UNIT_PATH,
    DNSMASQ_PATH,
    HOSTAPD_PATH,
    NETWORKD_PATH,
    NM_PATH,
    PASSPHRASE_PATH,
    QR_PATH,
)
from provisioning.runner import CommandResult, Runner
from provisioning.target import (
    BROWSER_USER,
    SERVICE_GROUP,
    SERVICE_USER,
    detect_target,
    host_path,
    is_live_root,
    lookup_id,
)

MANIFEST_DIR = PurePosixPath("/var/lib/headshot-kiosk-package")
MANIFEST_NAME = "manifest"
BACKUP_NAME = "backup"
DEFAULT_PREFIX = PurePosixPath("/opt/headshot-kiosk")
SYSUSERS_FILE = PurePosixPath("/etc/sysusers.d/headshot-kiosk.conf")
# Commands that only write files (account databases, ownership): safe without a running systemd.
_OFFLINE_COMMANDS = frozenset({"systemd-sysusers", "chown"})
# Never from inside dpkg: apt/dpkg hold the lock we run under, snap needs the network.
_PACKAGE_COMMANDS = frozenset({"apt-get", "apt", "snap"})
_CHROMIUM = ("/usr/bin/chromium", "/snap/bin/chromium")


@dataclass(frozen=True)
class Entry:
    """One manifest line: ``kind`` created|replaced|named|user|group, ``scope`` system|data."""

    kind: str
    scope: str
    path: str
    backup: str = ""

    def line(self) -> str:
        """The tab-separated manifest line (paths never contain tabs or newlines: they are ours)."""
        return "\t".join(p for p in (self.kind, self.scope, self.path, self.backup) if p) + "\n"


def scope_of(path: str) -> str:
    """``data`` for what an operator's kiosk holds (config, certificates, accounts, audit, plans),
    ``system`` for what makes this machine a kiosk (units, policy files, links)."""
    data_roots = (str(CONFIG_DIR), str(STATE_DIR))
    if path == str(SYSUSERS_FILE) or any(path == r or path.startswith(r + "/") for r in data_roots):
        return "data"
    return "system"


def read_manifest(path: Path) -> list[Entry]:
    """Entries of the manifest at ``path`` ([] when there is none)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    entries = []
    for line in lines:
        parts = line.split("\t")
        if len(parts) >= 3:
            entries.append(Entry(parts[0], parts[1], parts[2], parts[3] if len(parts) > 3 else ""))
    return entries


def _missing_parents(root: Path, device_path: PurePosixPath) -> list[str]:
    """Ancestors of ``device_path`` that do not exist under ``root``, outermost first."""
    missing = []
    for parent in reversed(device_path.parents):
        if str(parent) != "/" and not os.path.lexists(host_path(root, parent)):
            missing.append(str(parent))
    return missing


def entries_for(root: Path, changes: Iterable[Change], backups: Path, known: set[str]) -> list[Entry]:
    """Manifest entries for ``changes`` (from ``plan``) not yet in ``known``; copies replaced files."""
    out: list[Entry] = []
    for change in changes:
        spec_path = PurePosixPath(str(change.spec.path))
        path = str(spec_path)
        if path in known or change.action in ("mode", "owner"):
            continue
        host = host_path(root, spec_path)
        if not os.path.lexists(host):
            for parent in _missing_parents(root, spec_path):
                if parent not in known:
                    out.append(Entry("created", scope_of(parent), parent))
                    known.add(parent)
            out.append(Entry("created", scope_of(path), path))
        else:
            # Content or link target differs: keep the old one to put back at remove.
            backups.mkdir(parents=True, exist_ok=True)
            saved = backups / f"{len(list(backups.iterdir())):04d}"
            if os.path.islink(host) or isinstance(change.spec, LinkSpec):
                os.symlink(os.readlink(host), saved)
            else:
                shutil.copy2(host, saved, follow_symlinks=False)
            out.append(
                Entry("replaced", scope_of(path), path, str(PurePosixPath("/") / saved.relative_to(root)))
            )
        known.add(path)
    return out


def named_paths(prefix: PurePosixPath) -> list[str]:
    """Files that ``provisioning cert obtain`` and ``provisioning hotspot`` may write after installation,
    all under the package's own names, so removing them never touches anything else."""
    # The timer's enable link is left out: deb-systemd-helper owns it too (the package ships the timer) and
    # removes it at purge; deleting it at remove would read as "disabled by the admin" on a reinstall.
    renewal = [str(s.path) for s in renewal_specs(prefix) if not isinstance(s, LinkSpec)]
    hotspot = [HOSTAPD_PATH, DNSMASQ_PATH, NETWORKD_PATH, NM_PATH, CHECKS_UNIT_PATH]
    data = [ACME_DIR, PASSPHRASE_PATH, QR_PATH, CHECKS_NFT_PATH]
    return [*renewal, *(str(p) for p in hotspot), *(str(p) for p in data)]


def account_entries(root: Path, known: set[str]) -> list[Entry]:
    """Accounts apply's sysusers file will create (absent now): groups first, so that the postrm, which
    undoes newest first, deletes each user before its group."""
    out = []
    groups = [g for g in (SERVICE_GROUP, BROWSER_USER) if lookup_id(root, "group", g) is None]
    users = [u for u in (SERVICE_USER, BROWSER_USER) if lookup_id(root, "passwd", u) is None]
    for kind, names in (("group", groups), ("user", users)):
        for name in names:
            if f"{kind}:{name}" not in known:
                out.append(Entry(kind, "data", name))
                known.add(f"{kind}:{name}")
    return out


@dataclass
class PackageRunner(Runner):
    """A runner for the maintainer script: runs what this situation allows (see the module docstring),
    reports the rest in ``deferred``."""

    booted: bool = False
    deferred: list[tuple[str, ...]] = field(default_factory=list)

    def run(self, argv: Sequence[str], *, check: bool = True) -> CommandResult:
        """Run ``argv`` when allowed here, else record it as deferred (returncode 0, not executed)."""
        args = tuple(argv)
        allowed = args[0] not in _PACKAGE_COMMANDS and (self.booted or args[0] in _OFFLINE_COMMANDS)
        if allowed:
            return super().run(args, check=check)
        self.commands.append(args)
        self.deferred.append(args)
        self._say(f"deferred: {shlex.join(args)}")
        return CommandResult(args, 0, "", "", executed=False)


def booted_with_systemd() -> bool:
    """sd_booted(3): systemd is PID 1 when /run/systemd/system is a directory."""
    return os.path.isdir("/run/systemd/system")


def browser_wanted(setting: str) -> bool:
    """``yes``/``no``, or ``auto``: cage and a Chromium (Debian's or the snap) are both installed."""
    if setting in ("yes", "no"):
        return setting == "yes"
    has_cage = shutil.which("cage") is not None or os.path.exists("/usr/bin/cage")
    return has_cage and any(os.path.exists(p) for p in _CHROMIUM)


def write_manifest(path: Path, entries: Sequence[Entry]) -> None:
    """Replace the manifest (root only, 0600) with ``entries``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(e.line() for e in entries), encoding="utf-8")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def configure(root: Path, prefix: PurePosixPath, *, mode: str, browser: str) -> int:
    """Record, then apply. Returns the exit status for the postinst (0 done, 2 failed)."""
    if mode == "none":
        print("headshot-kiosk: HEADSHOT_KIOSK_PROVISION=none, provisioning skipped")
        return 0
    booted = mode == "auto" and booted_with_systemd()
    wants_browser = browser_wanted(browser)
    target = detect_target(root, prefix=prefix, browser=wants_browser)
    manifest = host_path(root, MANIFEST_DIR) / MANIFEST_NAME
    entries = read_manifest(manifest)
    known = {e.path if e.kind not in ("user", "group") else f"{e.kind}:{e.path}" for e in entries}
    outcome = plan(target, None)
    entries += entries_for(root, outcome.changes, manifest.parent / BACKUP_NAME, known)
    entries += account_entries(root, known)
    for path in named_paths(prefix):
        if path not in known:
            entries.append(Entry("named", scope_of(path), path))
            known.add(path)
    # Written before apply runs: a failure half-way still leaves a complete record for the postrm.
    write_manifest(manifest, entries)

    # A staging root only records commands: they would act on this machine, not on the tree.
    runner = PackageRunner(execute=is_live_root(root), echo=sys.stdout, booted=booted)
    how = "booted with systemd" if booted else "not booted with systemd: files only, nothing started"
    print(f"headshot-kiosk: provisioning apply ({how}; browser {'on' if wants_browser else 'off'})")
    result = apply(target, None, runner, sys.stdout)
    for note in result.notes:
        print(f"note: {note}")
    if not wants_browser:
        print(
            "note: the kiosk browser unit was not installed (needs cage and Chromium); install them, then "
            f"run: {prefix}/.venv/bin/python -m provisioning apply --prefix {prefix}"
        )
    if runner.deferred:
        when = "run them yourself" if booted else "the next boot applies the installed files"
        print(f"note: {len(runner.deferred)} commands not run here ({when})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``configure [--prefix P] [--root R]``; exit 2 with the reason on a provisioning or config error."""
    parser = argparse.ArgumentParser(prog="package_provision.py")
    parser.add_argument("command", choices=("configure",))
    parser.add_argument("--prefix", default=str(DEFAULT_PREFIX))
    parser.add_argument(
        "--root", type=Path, default=Path("/"), help="filesystem root (tests: a staging tree)"
    )
    args = parser.parse_args(argv)
    mode = os.environ.get("HEADSHOT_KIOSK_PROVISION", "auto")
    browser = os.environ.get("HEADSHOT_KIOSK_BROWSER", "auto")
    if mode not in ("auto", "offline", "none") or browser not in ("auto", "yes", "no"):
        print("error: HEADSHOT_KIOSK_PROVISION is auto|offline|none, HEADSHOT_KIOSK_BROWSER auto|yes|no")
        return 2
    if str(args.root) != "/" and mode == "auto":
        mode = "offline"  # a staging tree is never the running system
    try:
        return configure(args.root, PurePosixPath(args.prefix), mode=mode, browser=browser)
    except (ProvisioningError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
