"""``plan`` and ``apply``: the device's desired state, the difference from what is there, and making it so.

The desired state is a list of files, directories and symlinks (units are *enabled* by their
``*.wants/`` symlinks, swap units are *masked* by symlinks to /dev/null, exactly what ``systemctl
enable/mask`` would create). Shell steps are handlers triggered by changes (``systemctl daemon-reload``
only when a unit changed, ``sysctl --system`` only when the sysctl file did), run through one
:class:`~provisioning.runner.Runner` in a fixed order. So a second ``apply`` finds nothing to do, writes
nothing (mtimes stay) and runs nothing.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TextIO

from appliance.config import ConfigError, KioskConfig, load_config, summarize
from engine.fileio import write_atomic
from provisioning import ProvisioningError
from provisioning.configfile import (
    AUDIT_DIR,
    CONFIG_DIR,
    CONFIG_PATH,
    PLANS_DIR,
    STAFF_DIR,
    STATE_DIR,
    TLS_CERT,
    TLS_DIR,
    TLS_KEY,
    device_config,
    render_config_toml,
)
from provisioning.cups import (
    CUPS_DROPIN,
    CUPS_FILES_CONF,
    CUPS_PACKAGES,
    CUPS_SERVICE,
    CUPSD_CONF,
    queue_command,
    render_cups_dropin,
    render_cups_files_conf,
    render_cupsd_conf,
)
from provisioning.render import (
    BROWSER_HOME_MOUNT,
    BROWSER_UNIT,
    KIOSK_UNIT,
    NVZRAM_UNIT,
    kiosk_wanted_by,
    render_browser_home_mount,
    render_browser_pam,
    render_browser_unit,
    render_chromium_policy,
    render_coredump_conf,
    render_journald_conf,
    render_kiosk_unit,
    render_nvzramconfig_dropin,
    render_sysctl,
    render_sysusers,
    render_zram_generator,
    unit_path,
    zram_setup_unit,
)
from provisioning.runner import Runner
from provisioning.target import (
    BROWSER_USER,
    SERVICE_GROUP,
    SERVICE_USER,
    Target,
    fstab_source_path,
    host_path,
    installed_packages,
    is_live_root,
    lookup_id,
    systemd_escape_path,
)

__all__ = [
    "Change",
    "DirSpec",
    "FileSpec",
    "LinkSpec",
    "Outcome",
    "apply",
    "chown_commands",
    "desired_state",
    "diff",
    "package_commands",
    "plan",
    "resolve_config",
    "unit_file_present",
    "wanted_packages",
    "write_specs",
]

SYSUSERS_PATH = PurePosixPath("/etc/sysusers.d/headshot-kiosk.conf")
SYSCTL_PATH = PurePosixPath("/etc/sysctl.d/60-headshot-kiosk.conf")
COREDUMP_PATH = PurePosixPath("/etc/systemd/coredump.conf.d/60-headshot-kiosk.conf")
JOURNALD_PATH = PurePosixPath("/etc/systemd/journald.conf.d/60-headshot-kiosk.conf")
ZRAM_PATH = PurePosixPath("/etc/systemd/zram-generator.conf")
PAM_PATH = PurePosixPath(f"/etc/pam.d/{BROWSER_USER}")
# Debian's Chromium reads the first, Ubuntu's (the snap) the second: the same policy goes to both.
CHROMIUM_POLICY_PATHS = (
    PurePosixPath("/etc/chromium/policies/managed/headshot-kiosk.json"),
    PurePosixPath("/etc/chromium-browser/policies/managed/headshot-kiosk.json"),
)
CHROMIUM_POLICY_PATH = CHROMIUM_POLICY_PATHS[0]
NVZRAM_DROPIN_PATH = PurePosixPath(f"/etc/systemd/system/{NVZRAM_UNIT}.d/60-headshot-kiosk.conf")
# Masked on the "off" policy: swap.target pulls in every fstab swap unit.
_SWAP_MASKS_OFF = ("swap.target",)
# Where a unit file can live (systemd.unit(5) search path, system manager), /etc first.
_UNIT_DIRS = ("/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")
# Packages apply installs when the device lacks them (jammy/noble names). cage: the kiosk compositor
# (universe); systemd-zram-generator: the zram swap policy (universe). Chromium is a snap on Ubuntu.
BROWSER_PACKAGES = ("cage",)
ZRAM_PACKAGES = ("systemd-zram-generator",)

# Handlers, in the order they run. Each is triggered by changes to the specs that name it.
_PACKAGES = "packages"
_SYSUSERS = "sysusers"
_DAEMON_RELOAD = "daemon-reload"
_NVZRAM = "nvzram"
_SYSCTL = "sysctl"
_JOURNALD = "journald"
_SWAPOFF = "swapoff"
_ZRAM = "zram"
_RESTART_KIOSK = "restart-kiosk"
_RESTART_BROWSER = "restart-browser"
_RESTART_CUPS = "restart-cups"
_HANDLER_ORDER = (
    _SYSUSERS,
    _DAEMON_RELOAD,
    _SYSCTL,
    _JOURNALD,
    _NVZRAM,
    _SWAPOFF,
    _ZRAM,
    _RESTART_CUPS,
    _RESTART_KIOSK,
    _RESTART_BROWSER,
)
# The CUPS queue (``[print] enabled``): made by lpadmin once cupsd runs the rendered configuration.
_CUPS_QUEUE = "cups-queue"
# Gutenprint's USB backend, as `lpinfo -v` names the printers it finds: gutenprint53+usb://<model>/<serial>.
_GUTENPRINT_USB = "gutenprint53+usb"


@dataclass(frozen=True)
class FileSpec:
    """A regular file: exact bytes, mode and owner. ``triggers`` name handlers to run when it changes."""

    path: PurePosixPath
    content: bytes
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"
    triggers: tuple[str, ...] = ()


@dataclass(frozen=True)
class DirSpec:
    """A directory with mode and owner (contents are not managed)."""

    path: PurePosixPath
    mode: int
    owner: str = "root"
    group: str = "root"


@dataclass(frozen=True)
class LinkSpec:
    """A symlink ``path -> target`` (both as on the device)."""

    path: PurePosixPath
    target: str
    triggers: tuple[str, ...] = ()


Spec = FileSpec | DirSpec | LinkSpec


@dataclass(frozen=True)
class Change:
    """One difference between the device and the desired state. ``action`` is one of ``create``,
    ``update``, ``mode``, ``owner``, ``mkdir``, ``link``."""

    action: str
    spec: Spec
    detail: str = ""

    def describe(self) -> str:
        """One line for the plan."""
        text = f"  {self.action:<7} {self.spec.path}"
        return f"{text} ({self.detail})" if self.detail else text


@dataclass
class Outcome:
    """What ``plan``/``apply`` found (and did). ``commands`` are the handler commands, in order."""

    changes: list[Change] = field(default_factory=list)
    commands: list[tuple[str, ...]] = field(default_factory=list)
    config_origin: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """True when anything differed (files) or had to run (commands)."""
        return bool(self.changes or self.commands)


# ------------------------------------------------------------------------------------------ desired state


def _tls_host(target: Target) -> str | None:
    """The first DNS name of an installed TLS certificate, if ``provisioning tls`` installed one."""
    cert, key = host_path(target.root, TLS_CERT), host_path(target.root, TLS_KEY)
    if not (cert.is_file() and key.is_file()):
        return None
    from provisioning.tls import certificate_hosts  # noqa: PLC0415 - cryptography only when TLS exists

    hosts = certificate_hosts(cert.read_bytes())
    return hosts[0] if hosts else None


def resolve_config(target: Target, config_path: Path | None) -> tuple[str, KioskConfig, str]:
    """(TOML text to install, the validated config, where it came from).

    ``--config PATH`` installs that file byte for byte. Without it, an existing device config is kept
    (an operator's edits survive re-provisioning); on a fresh device the device defaults are rendered,
    serving delivery over TLS when ``provisioning tls`` already installed a certificate.
    Raises ConfigError (every problem listed) for an invalid file.
    """
    if config_path is not None:
        config = load_config(config_path)
        return config_path.read_text(encoding="utf-8"), config, f"from {config_path}"
    installed = host_path(target.root, CONFIG_PATH)
    if installed.is_file():
        return installed.read_text(encoding="utf-8"), load_config(installed), "kept the installed file"
    host = _tls_host(target)
    config = device_config(target, public_host=host, tls=host is not None)
    origin = "device defaults" + (f", delivery over TLS as {host}" if host else "")
    return render_config_toml(config), config, origin


def unit_file_present(root: Path, name: str) -> PurePosixPath | None:
    """Where the unit file ``name`` lives under ``root`` (a regular file, not a symlink), if anywhere."""
    for directory in _UNIT_DIRS:
        path = host_path(root, f"{directory}/{name}")
        if path.is_file() and not path.is_symlink():
            return PurePosixPath(directory) / name
    return None


def _neutralise_nvzramconfig(root: Path, name: str = NVZRAM_UNIT) -> list[Spec]:
    """Keep L4T's zram unit ``name`` from running. A /dev/null symlink in /etc/systemd/system masks it,
    unless a real unit file sits at that very path (L4T ships nvzramconfig.service there): the link would
    destroy a package-owned file, so such a unit gets a drop-in instead (and is disabled)."""
    if unit_file_present(root, name) == unit_path(name):
        dropin = render_nvzramconfig_dropin().encode()
        return [FileSpec(NVZRAM_DROPIN_PATH, dropin, triggers=(_DAEMON_RELOAD, _NVZRAM))]
    return [LinkSpec(unit_path(name), "/dev/null", triggers=(_DAEMON_RELOAD, _SWAPOFF))]


def _swap_specs(target: Target) -> list[Spec]:
    specs: list[Spec] = []
    masks: list[str] = []
    if target.swap_policy == "off":
        masks.extend(_SWAP_MASKS_OFF)
    else:
        specs.append(
            FileSpec(
                ZRAM_PATH,
                render_zram_generator(target.zram_generator).encode(),
                triggers=(_DAEMON_RELOAD, _ZRAM),
            )
        )
    # Disk swap from fstab is masked under both policies: zram is the only swap a kiosk may have.
    masks.extend(systemd_escape_path(fstab_source_path(src)) + ".swap" for src in target.fstab_swaps)
    specs.extend(LinkSpec(unit_path(m), "/dev/null", triggers=(_DAEMON_RELOAD, _SWAPOFF)) for m in masks)
    # L4T's own zram swap runs under both policies unless stopped: with "zram" it would add its per-CPU
    # devices next to the generator's.
    specs.extend(_neutralise_nvzramconfig(target.root))
    return specs


def wanted_packages(target: Target, config: KioskConfig | None = None) -> tuple[str, ...]:
    """Debian packages what apply renders depends on (installed by apply where missing)."""
    wanted: list[str] = []
    if target.browser:
        wanted.extend(BROWSER_PACKAGES)
    if target.swap_policy == "zram":
        wanted.extend(ZRAM_PACKAGES)
    if config is not None and config.print.enabled:
        wanted.extend(CUPS_PACKAGES)
    return tuple(wanted)


# Passed to every apt-get install (see package_commands).
DPKG_KEEP_CONFFILES = ("-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold")


def package_commands(
    root: Path, wanted: Sequence[str], *, snaps: Sequence[str] = ()
) -> list[tuple[str, ...]]:
    """Commands that install what is missing of ``wanted`` (apt) and ``snaps``.

    Only where the root has a dpkg database (the device, or a real image): a staging tree cannot say what
    is installed, so nothing is planned there (the plan's notes list the packages instead). A snap is
    installed when ``/snap/bin/<name>`` is absent, then held so it never refreshes during an event.
    """
    installed = installed_packages(root)
    if installed is None:
        return []
    commands: list[tuple[str, ...]] = []
    missing = [p for p in wanted if p not in installed]
    if missing:
        # --force-confold: apply may already have written a package's conffile (cups-files.conf is
        # cups-daemon's, rendered whether or not the event prints); without it dpkg stops at a question no
        # one answers (an Ansible run, a timer) — found in review. apply re-renders the file anyway.
        install = ("apt-get", "install", "--yes", "--no-install-recommends", *DPKG_KEEP_CONFFILES)
        commands.append((*install, *missing))
    for snap in snaps:
        if not host_path(root, f"/snap/bin/{snap}").exists():
            if "snapd" not in installed:
                commands.append(("apt-get", "install", "--yes", "--no-install-recommends", "snapd"))
            commands.append(("snap", "install", snap))
            # snapd >= 2.58: hold indefinitely; the operator refreshes between events.
            commands.append(("snap", "refresh", "--hold=forever", snap))
    return commands


def _wanted_snaps(target: Target) -> tuple[str, ...]:
    if target.browser and target.browser_is_snap:
        return (PurePosixPath(target.browser_binary).name,)
    return ()


def desired_state(config_text: str, config: KioskConfig, target: Target) -> list[Spec]:
    """Everything ``apply`` installs, in the order it is written (users and config first)."""
    hk = {"owner": SERVICE_USER, "group": SERVICE_GROUP}
    kiosk_unit = unit_path(KIOSK_UNIT)
    specs: list[Spec] = [
        FileSpec(SYSUSERS_PATH, render_sysusers(target.supplementary_groups).encode(), triggers=(_SYSUSERS,)),
        DirSpec(CONFIG_DIR, 0o750, group=SERVICE_GROUP),
        DirSpec(TLS_DIR, 0o750, group=SERVICE_GROUP),
        # Readable by the service, writable by root only: the service cannot change its own config.
        FileSpec(CONFIG_PATH, config_text.encode(), 0o640, group=SERVICE_GROUP, triggers=(_RESTART_KIOSK,)),
        # Created owned by the service user, so StateDirectory= has no recursive chown to do at start.
        DirSpec(STATE_DIR, 0o700, **hk),
        # Plans are built by root (build-engines) and only read by the service.
        DirSpec(PLANS_DIR, 0o755),
        DirSpec(STAFF_DIR, 0o700, **hk),
        DirSpec(AUDIT_DIR, 0o700, **hk),
    ]
    for extra in sorted(
        {PurePosixPath(str(config.audit.path)), PurePosixPath(str(config.staff.accounts_path.parent))}
    ):
        # The config directories keep their own specs above: an accounts file left at the model's default
        # under /etc must not hand /etc/headshot-kiosk to the service (two specs for one directory made
        # every apply flip its mode and owner; found by the fleet tests).
        if extra not in (AUDIT_DIR, STAFF_DIR, CONFIG_DIR, TLS_DIR):
            specs.append(DirSpec(extra, 0o700, **hk))
    specs += [
        FileSpec(
            kiosk_unit, render_kiosk_unit(config, target).encode(), triggers=(_DAEMON_RELOAD, _RESTART_KIOSK)
        ),
        FileSpec(SYSCTL_PATH, render_sysctl().encode(), triggers=(_SYSCTL,)),
        FileSpec(COREDUMP_PATH, render_coredump_conf().encode()),  # read by each systemd-coredump run
        FileSpec(JOURNALD_PATH, render_journald_conf().encode(), triggers=(_JOURNALD,)),
        *_swap_specs(target),
        *(
            LinkSpec(
                PurePosixPath(f"/etc/systemd/system/{wanted_by}.wants") / KIOSK_UNIT,
                str(kiosk_unit),
                triggers=(_DAEMON_RELOAD,),
            )
            for wanted_by in kiosk_wanted_by(config)
        ),
    ]
    specs += _cups_specs(config, target)
    if target.browser:
        browser_unit = unit_path(BROWSER_UNIT)
        specs += [
            FileSpec(
                browser_unit,
                render_browser_unit(config, target).encode(),
                triggers=(_DAEMON_RELOAD, _RESTART_BROWSER),
            ),
            FileSpec(PAM_PATH, render_browser_pam().encode()),
            *(
                FileSpec(path, render_chromium_policy(config).encode(), triggers=(_RESTART_BROWSER,))
                for path in CHROMIUM_POLICY_PATHS
            ),
            LinkSpec(
                PurePosixPath("/etc/systemd/system/multi-user.target.wants") / BROWSER_UNIT,
                str(browser_unit),
                triggers=(_DAEMON_RELOAD,),
            ),
            # The kiosk boots to multi-user.target: JetPack's gdm3 (graphical.target) would take VT1.
            LinkSpec(
                PurePosixPath("/etc/systemd/system/default.target"),
                "/lib/systemd/system/multi-user.target",
                triggers=(_DAEMON_RELOAD,),
            ),
        ]
        if target.browser_is_snap:
            specs.append(
                FileSpec(
                    unit_path(BROWSER_HOME_MOUNT),
                    render_browser_home_mount(target).encode(),
                    triggers=(_DAEMON_RELOAD, _RESTART_BROWSER),
                )
            )
    return specs


def _cups_specs(config: KioskConfig, target: Target) -> list[Spec]:
    """CUPS configured for privacy (``provisioning.cups``). Rendered whether or not the event prints, so a
    CUPS on the device is private from its first start; the queue, the packages and the restarts follow
    ``[print] enabled``."""
    queue = (_CUPS_QUEUE,) if config.print.enabled else ()
    restart = (_RESTART_CUPS, *queue) if config.print.enabled else ()
    lp_gid = lookup_id(target.root, "group", "lp")
    return [
        FileSpec(CUPSD_CONF, render_cupsd_conf().encode(), 0o644, triggers=restart),
        # Debian ships cups-files.conf root:lp 0640: cupsd reads it as root, nobody else needs to.
        FileSpec(CUPS_FILES_CONF, render_cups_files_conf().encode(), 0o640, group="lp", triggers=restart),
        FileSpec(
            CUPS_DROPIN,
            render_cups_dropin(lp_gid, noswap=target.noswap).encode(),
            triggers=(_DAEMON_RELOAD, *restart),
        ),
    ]


def _printer_uri(config: KioskConfig, runner: Runner) -> str | None:
    """The queue's device: ``[print] device_uri``, else the first printer of the model Gutenprint's USB
    backend finds (``lpinfo -v``, live device only); None when there is none."""
    if config.print.device_uri is not None:
        return config.print.device_uri
    result = runner.query(
        ["lpinfo", "-h", str(config.print.cups_socket), "--include-schemes", _GUTENPRINT_USB, "-v"]
    )
    prefix = f"{_GUTENPRINT_USB}://{config.print.model}/"
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[1].startswith(prefix):
            return fields[1]
    return None


def _queue_missing(config: KioskConfig, runner: Runner) -> bool:
    """On the live device: the kiosk's queue does not exist (yet), so it must be made even if no file
    changed (a printer plugged in after the last apply)."""
    result = runner.query(["lpstat", "-h", str(config.print.cups_socket), "-p", config.print.queue])
    return result.returncode != 0


def _cups_queue(config: KioskConfig, runner: Runner, out: TextIO) -> tuple[list[tuple[str, ...]], list[str]]:
    """Make the kiosk's queue with lpadmin: (commands run or recorded, notes)."""
    uri = config.print.device_uri
    if runner.execute:
        uri = _printer_uri(config, runner)
    if uri is None:
        note = (
            f"no {config.print.model} printer found (lpinfo -v): connect and switch it on, then run apply "
            "again, or set [print] device_uri"
        )
        print(f"  note    {note}", file=out)
        return [], [note]
    command = queue_command(config, uri)
    runner.run(command)
    return [command], []


# ------------------------------------------------------------------------------------------------ diff


def _ids(root: Path, owner: str, group: str) -> tuple[int | None, int | None]:
    uid = 0 if owner == "root" else lookup_id(root, "passwd", owner)
    gid = 0 if group == "root" else lookup_id(root, "group", group)
    return uid, gid


def _owner_differs(root: Path, spec: FileSpec | DirSpec, st: os.stat_result) -> bool:
    uid, gid = _ids(root, spec.owner, spec.group)
    return (uid is not None and st.st_uid != uid) or (gid is not None and st.st_gid != gid)


def diff(root: Path, specs: Iterable[Spec], *, compare_owner: bool) -> list[Change]:
    """What differs under ``root``. Owners are compared only when ``compare_owner`` (on the device):
    in a staging tree the ``chown`` steps are recorded, not run, so owners there say nothing."""
    changes: list[Change] = []
    for spec in specs:
        path = host_path(root, spec.path)
        if isinstance(spec, LinkSpec):
            try:
                current = os.readlink(path)
            except FileNotFoundError:
                changes.append(Change("link", spec, f"-> {spec.target}"))
                continue
            except OSError:  # exists but is not a symlink
                current = None
                if spec.target == "/dev/null":
                    # `systemctl mask` refuses this too: the file belongs to a package, not to us.
                    raise ProvisioningError(
                        f"{spec.path} is a unit file; apply masks units only with a /dev/null link where "
                        "none exists (disable it by hand)"
                    ) from None
            if current != spec.target:
                changes.append(Change("link", spec, f"-> {spec.target}, was {current or 'a file'}"))
            continue
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            action = "mkdir" if isinstance(spec, DirSpec) else "create"
            changes.append(Change(action, spec, f"{spec.mode:04o} {spec.owner}:{spec.group}"))
            continue
        if isinstance(spec, FileSpec):
            if not stat.S_ISREG(st.st_mode) or path.read_bytes() != spec.content:
                changes.append(Change("update", spec, "content differs"))
                continue
        elif not stat.S_ISDIR(st.st_mode):
            raise ProvisioningError(f"{path} should be a directory but is not; move it away and re-run")
        if stat.S_IMODE(st.st_mode) != spec.mode:
            changes.append(Change("mode", spec, f"{stat.S_IMODE(st.st_mode):04o} -> {spec.mode:04o}"))
        if compare_owner and _owner_differs(root, spec, st):
            changes.append(Change("owner", spec, f"-> {spec.owner}:{spec.group}"))
    return changes


# ------------------------------------------------------------------------------------------ writing


def _write_link(path: Path, target: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-link")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, path)


def _make(root: Path, change: Change) -> None:
    spec = change.spec
    path = host_path(root, spec.path)
    if isinstance(spec, LinkSpec):
        _write_link(path, spec.target)
    elif isinstance(spec, DirSpec):
        if change.action == "mkdir":
            path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, spec.mode)  # mkdir's mode would be filtered by the umask
    elif change.action in ("create", "update"):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, spec.content, mode=spec.mode)  # owner: chown_commands, after sysusers
    elif change.action == "mode":
        os.chmod(path, spec.mode)


def write_specs(root: Path, specs: Sequence[Spec], *, compare_owner: bool, out: TextIO) -> list[Change]:
    """Make ``specs`` true under ``root`` (writing only what differs); returns the changes made."""
    changes = diff(root, specs, compare_owner=compare_owner)
    for change in changes:
        print(change.describe(), file=out)
        _make(root, change)
    return changes


def chown_commands(root: Path, changes: Iterable[Change]) -> list[tuple[str, ...]]:
    """``chown`` commands for changed items that are not owned by root:root (or whose owner differed)."""
    return [
        ("chown", f"{c.spec.owner}:{c.spec.group}", str(host_path(root, c.spec.path)))
        for c in changes
        if not isinstance(c.spec, LinkSpec) and _needs_chown(c)
    ]


def _needs_chown(change: Change) -> bool:
    spec = change.spec
    if isinstance(spec, LinkSpec) or change.action == "mode":
        return False
    return (spec.owner, spec.group) != ("root", "root") or change.action == "owner"


# --------------------------------------------------------------------------------------------- commands


def _handler_commands(name: str, target: Target) -> list[tuple[str, ...]]:
    if name == _SYSUSERS:
        return [("systemd-sysusers", str(SYSUSERS_PATH))]
    if name == _DAEMON_RELOAD:
        return [("systemctl", "daemon-reload")]
    if name == _SYSCTL:
        return [("sysctl", "--system")]
    if name == _JOURNALD:
        return [("systemctl", "restart", "systemd-journald.service")]
    if name == _NVZRAM:
        # Disabled (its enable link goes) and stopped now; the drop-in keeps it from ever starting again.
        return [("systemctl", "disable", NVZRAM_UNIT), ("systemctl", "stop", NVZRAM_UNIT)]
    if name == _SWAPOFF:
        if target.swap_policy == "off":
            return [("swapoff", "--all")]
        return [("swapoff", fstab_source_path(src)) for src in target.fstab_swaps]
    if name == _ZRAM:
        # After daemon-reload the generator has written dev-zram0.swap (its name in 0.3 and 1.x alike);
        # the setup service's name depends on the generator's version.
        return [
            ("systemctl", "stop", "dev-zram0.swap"),
            ("systemctl", "restart", zram_setup_unit(target.zram_generator)),
            ("systemctl", "start", "dev-zram0.swap"),
        ]
    if name == _RESTART_KIOSK:
        # try-restart: a running kiosk picks up the change (a restart ends every session in WIPE); a stopped
        # one stays stopped until the operator starts it or the device reboots.
        return [("systemctl", "try-restart", KIOSK_UNIT)]
    if name == _RESTART_BROWSER:
        return [("systemctl", "try-restart", BROWSER_UNIT)]
    if name == _RESTART_CUPS:
        # restart, not try-restart: the queue is made next, and lpadmin needs a cupsd on the new files.
        return [("systemctl", "restart", CUPS_SERVICE)]
    if name == _CUPS_QUEUE:
        return []  # needs the config and a probe: apply runs it itself (_cups_queue)
    raise ProvisioningError(f"unknown handler {name!r}")


def _live_triggers(target: Target) -> set[str]:
    """Handlers the live system needs although no file changed (self-healing on the device only)."""
    triggers: set[str] = set()
    if lookup_id(target.root, "passwd", SERVICE_USER) is None:
        triggers.add(_SYSUSERS)
    if target.swap_policy == "off":
        try:
            active = Path("/proc/swaps").read_text(encoding="utf-8").splitlines()[1:]
        except OSError:
            active = []
        if any(line.strip() for line in active):
            triggers.add(_SWAPOFF)
    return triggers


def _commands_for(changes: Sequence[Change], target: Target, extra: set[str]) -> list[tuple[str, ...]]:
    triggered = set(extra)
    for change in changes:
        spec = change.spec
        if not isinstance(spec, DirSpec) and change.action not in ("mode", "owner"):
            triggered.update(spec.triggers)
    commands: list[tuple[str, ...]] = []
    for name in _HANDLER_ORDER:
        if name in triggered:
            commands.extend(_handler_commands(name, target))
    return commands


# ------------------------------------------------------------------------------------------ plan / apply


def plan(target: Target, config_path: Path | None) -> Outcome:
    """What ``apply`` would change and run, without changing anything."""
    text, config, origin = resolve_config(target, config_path)
    specs = desired_state(text, config, target)
    live = is_live_root(target.root)
    changes = diff(target.root, specs, compare_owner=live)
    extra = _live_triggers(target) if live else set()
    commands = _package_commands(target, config) + _ordered(changes, target, extra)
    outcome = Outcome(changes=changes, commands=commands, config_origin=origin)
    outcome.notes.extend(_package_notes(target, config))
    probe = Runner(execute=False)  # queries only
    if config.print.enabled and (_queue_triggered(changes) or (live and _queue_missing(config, probe))):
        outcome.notes.append(f"the CUPS queue {config.print.queue} will be made with lpadmin")
    return outcome


def _queue_triggered(changes: Sequence[Change]) -> bool:
    return any(
        _CUPS_QUEUE in c.spec.triggers or c.spec.path == CONFIG_PATH
        for c in changes
        if not isinstance(c.spec, DirSpec) and c.action not in ("mode", "owner")
    )


def _package_commands(target: Target, config: KioskConfig) -> list[tuple[str, ...]]:
    return package_commands(target.root, wanted_packages(target, config), snaps=_wanted_snaps(target))


def _package_notes(target: Target, config: KioskConfig) -> list[str]:
    if installed_packages(target.root) is not None:
        return []
    needed = [*wanted_packages(target, config), *(f"{s} (snap)" for s in _wanted_snaps(target))]
    if not needed:
        return []
    return [
        f"{target.root} has no dpkg database, packages not checked; the device needs: {', '.join(needed)}"
    ]


def _ordered(changes: Sequence[Change], target: Target, extra: set[str]) -> list[tuple[str, ...]]:
    """All commands in run order: user creation, ownership, then the other handlers."""
    handlers = _commands_for(changes, target, extra)
    first = [c for c in handlers if c[0] == "systemd-sysusers"]
    rest = [c for c in handlers if c[0] != "systemd-sysusers"]
    return first + chown_commands(target.root, changes) + rest


def _validate_installed_config(root: Path) -> str:
    """The check ``python -m appliance check-config`` runs, on the installed file; returns its OK line."""
    try:
        config = load_config(host_path(root, CONFIG_PATH))
    except ConfigError as exc:
        # str(exc) is check-config's report: a heading and one indented line per entry of exc.problems.
        raise ProvisioningError(
            f"the installed kiosk.toml does not pass check-config; units were not enabled:\n{exc}"
        ) from None
    return f"config OK: {summarize(config)}"


def apply(target: Target, config_path: Path | None, runner: Runner, out: TextIO) -> Outcome:
    """Make the device match the desired state; idempotent.

    Order: the service account (systemd-sysusers, so tmpfs ``uid=`` can name its real number), the config
    directory and file, ``check-config`` on the installed file (nothing is enabled if it fails), then
    units, policy files, masks and enable links, then ``chown`` and the triggered handlers. Raises
    ConfigError / ProvisioningError / CommandFailed with what to do.
    """
    text, config, origin = resolve_config(target, config_path)
    live = runner.execute and is_live_root(target.root)
    extra = _live_triggers(target) if live else set()

    # Phase 0: packages what the rendered files depend on (cage, the Chromium snap, zram-generator).
    commands: list[tuple[str, ...]] = []
    for command in _package_commands(target, config):
        runner.run(command)
        commands.append(command)

    # Phase 1: the service account, so its uid/gid are known before the unit is rendered.
    sysusers = FileSpec(
        SYSUSERS_PATH, render_sysusers(target.supplementary_groups).encode(), triggers=(_SYSUSERS,)
    )
    user_changes = diff(target.root, [sysusers], compare_owner=live)
    done: list[Change] = []
    for change in user_changes:
        print(change.describe(), file=out)
        _make(target.root, change)
        done.append(change)
    if user_changes or _SYSUSERS in extra:
        for command in _handler_commands(_SYSUSERS, target):
            runner.run(command)
            commands.append(command)
        extra.discard(_SYSUSERS)
    uid = lookup_id(target.root, "passwd", SERVICE_USER)
    gid = lookup_id(target.root, "group", SERVICE_GROUP)
    notes: list[str] = _package_notes(target, config)
    browser_uid = lookup_id(target.root, "passwd", BROWSER_USER)
    browser_gid = lookup_id(target.root, "group", BROWSER_USER)
    if browser_uid is not None and browser_gid is not None:
        target = target.with_browser_ids(browser_uid, browser_gid)
    if uid is not None and gid is not None:
        target = target.with_ids(uid, gid)
    elif live:
        raise ProvisioningError(f"user {SERVICE_USER} still missing after systemd-sysusers; check its output")
    else:
        notes.append(
            f"{SERVICE_USER} is not in {target.root}/etc/passwd: tmpfs uid/gid use the placeholder "
            f"{target.service_uid}/{target.service_gid} (the device gets the real ids)"
        )

    # Phase 2: everything else.
    specs = [s for s in desired_state(text, config, target) if s.path != SYSUSERS_PATH]
    changes = diff(target.root, specs, compare_owner=live)
    config_specs = [c for c in changes if c.spec.path in (CONFIG_DIR, TLS_DIR, CONFIG_PATH)]
    for change in config_specs:
        print(change.describe(), file=out)
        _make(target.root, change)
    checked = _validate_installed_config(target.root)
    for change in changes:
        if change in config_specs:
            continue
        print(change.describe(), file=out)
        _make(target.root, change)
    done.extend(changes)

    for command in _ordered(done, target, extra):
        if command[0] == "systemd-sysusers":
            continue  # ran in phase 1
        runner.run(command)
        commands.append(command)
    if config.print.enabled and (_queue_triggered(done) or (live and _queue_missing(config, runner))):
        queue_commands, queue_notes = _cups_queue(config, runner, out)
        commands.extend(queue_commands)
        notes.extend(queue_notes)
    outcome = Outcome(changes=done, commands=commands, config_origin=origin, notes=notes)
    outcome.notes.append(f"check-config: {checked}")
    if any(isinstance(c.spec, LinkSpec) and c.spec.target == str(unit_path(KIOSK_UNIT)) for c in done):
        outcome.notes.append(f"enabled {KIOSK_UNIT}: start it with `systemctl start {KIOSK_UNIT}` or reboot")
    if not target.noswap:
        outcome.notes.append(
            f"kernel {target.kernel_release} has no tmpfs noswap (Linux >= 6.4): the RAM store relies on "
            "MemorySwapMax=0 and the swap policy"
        )
    return outcome
