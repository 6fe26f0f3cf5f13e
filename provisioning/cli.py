"""``python -m provisioning``: plan, apply, tls, cert, doctor, build-engines, staff-bootstrap, hotspot,
setup-sheet.

Exit codes: 0 done (doctor: no FAIL), 1 doctor found a FAIL, 2 usage, config or provisioning error,
3 ``build-engines`` on a machine without TensorRT (nothing changed). Nothing here calls ``sys.exit``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import TextIO

from appliance.config import ConfigError, KioskConfig, load_config
from provisioning import ProvisioningError
from provisioning.configfile import CONFIG_PATH, CONNECTIVITY_CHECK_PORT
from provisioning.target import (
    DEFAULT_PREFIX,
    SERVICE_GROUP,
    SERVICE_USER,
    detect_target,
    host_path,
    is_live_root,
    lookup_id,
)

__all__ = ["EXIT_DOCTOR_FAIL", "EXIT_ERROR", "EXIT_NO_TENSORRT", "main"]

EXIT_DOCTOR_FAIL = 1
EXIT_ERROR = 2
EXIT_NO_TENSORRT = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m provisioning",
        description="Turn a Jetson (or any systemd Linux) into a locked-down headshot kiosk, and audit it.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def root_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--root",
            type=Path,
            default=Path("/"),
            help="filesystem root to provision (default /); any other root is a staging tree: files are "
            "written there and commands are printed, not run",
        )

    for name, text in (
        ("plan", "show what apply would change"),
        ("apply", "make the device match (idempotent)"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        root_option(p)
        p.add_argument(
            "--config",
            type=Path,
            default=None,
            help="kiosk.toml to install (default: keep the installed one, or render device defaults)",
        )
        p.add_argument(
            "--kernel",
            default=None,
            help="target kernel release, e.g. 5.15.148-tegra "
            "(default: the running kernel); decides tmpfs noswap",
        )
        p.add_argument(
            "--swap",
            choices=("off", "zram"),
            default="off",
            help="swap policy: off (default) or zram without a backing device",
        )
        p.add_argument(
            "--prefix",
            default=str(DEFAULT_PREFIX),
            help="checkout holding .venv and models (default %(default)s)",
        )
        p.add_argument("--no-browser", action="store_true", help="do not install the kiosk browser unit")
        p.add_argument(
            "--browser-binary",
            default=None,
            help="Chromium executable (default: /usr/bin/chromium if the target has it, else the snap)",
        )

    p = sub.add_parser("tls", help="install the delivery listener's TLS certificate")
    root_option(p)
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--import",
        dest="import_files",
        nargs=2,
        metavar=("CERT", "KEY"),
        type=Path,
        help="a publicly trusted certificate chain (PEM, leaf first) and its key",
    )
    how.add_argument("--self-signed", metavar="HOST", help="make a local CA and a certificate for HOST")

    from provisioning.acme import add_arguments as cert_arguments  # noqa: PLC0415 - no ACME stack imported

    p = sub.add_parser(
        "cert", help="a publicly trusted certificate by ACME DNS-01 (obtain while online; renew by timer)"
    )
    cert_arguments(p)

    p = sub.add_parser("doctor", help="audit the privacy posture (exit 1 on any FAIL)")
    root_option(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--kernel", default=None, help="kernel release to judge (default: the root's)")

    # The command keeps its pinned name; what it makes is a *plan* (a serialized TensorRT engine, tied to
    # this TensorRT version and GPU), so the help says plans.
    p = sub.add_parser(
        "build-engines",
        help="build a TensorRT plan for every model, on the Jetson that will run it",
        description="Build TensorRT plans (serialized engines, <model>.plan plus a <model>.plan.json "
        "sidecar) for every model, on this device: a plan runs only on the TensorRT version and GPU that "
        "built it. Plans whose sidecar already matches are skipped unless --force.",
    )
    p.add_argument("--config", type=Path, default=None, help=f"kiosk.toml (default {CONFIG_PATH} if present)")
    p.add_argument("--models-dir", type=Path, default=None, help="override [engine] models_dir")
    p.add_argument("--plans-dir", type=Path, default=None, help="override [engine] plans_dir")
    p.add_argument("--force", action="store_true", help="rebuild plans whose sidecar already matches")

    p = sub.add_parser("staff-bootstrap", help="create the first admin and print the TOTP enrolment QR")
    p.add_argument("--config", type=Path, default=None, help=f"kiosk.toml (default {CONFIG_PATH} if present)")
    p.add_argument("--name", default="admin1", help="account name of the first admin (default %(default)s)")
    p.add_argument("--password-stdin", action="store_true", help="read the password as one line from stdin")

    p = sub.add_parser("hotspot", help="configure a kiosk-owned Wi-Fi access point (hostapd + dnsmasq)")
    root_option(p)
    p.add_argument("--ssid", required=True, help="network name shown to guests")
    p.add_argument(
        "--host", default=None, help="kiosk host name on the network (default: [delivery] public_host)"
    )
    p.add_argument("--interface", default="wlan0")
    p.add_argument("--country", default="US", help="regulatory domain, ISO 3166-1 alpha-2")
    p.add_argument("--channel", type=int, default=6)
    p.add_argument("--address", default="10.42.0.1/24", help="kiosk address and prefix on the access point")
    p.add_argument("--rotate", action="store_true", help="generate a new passphrase")

    p = sub.add_parser(
        "setup-sheet",
        help="write a printable page for staff: the console's address and QR, the Wi-Fi QR, the checklist",
        description="Write a printable HTML page for the event's staff: the staff console's address for "
        "phones and its QR code, the kiosk hotspot's join code, the certificate's end date and the checklist "
        "for the day. It holds no password, code or key; hand it to staff, never show it to guests.",
    )
    root_option(p)
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"kiosk.toml (default: {CONFIG_PATH} under --root, if present)",
    )
    p.add_argument(
        "-o", "--output", type=Path, default=Path("setup-sheet.html"), help="where to write it (%(default)s)"
    )
    return parser


def _require_root_user(root: Path, what: str) -> None:
    if is_live_root(root) and os.geteuid() != 0:
        raise ProvisioningError(f"{what} changes the system and must run as root (sudo make provision)")


def _cmd_plan_apply(args: argparse.Namespace, out: TextIO) -> int:
    from provisioning.apply import apply, plan  # noqa: PLC0415
    from provisioning.runner import Runner  # noqa: PLC0415

    root: Path = args.root
    target = detect_target(
        root,
        kernel_release=args.kernel,
        prefix=PurePosixPath(args.prefix),
        swap_policy=args.swap,
        browser=not args.no_browser,
        browser_binary=args.browser_binary,
    )
    print(
        f"target {root}: kernel {target.kernel_release} (tmpfs noswap: {'yes' if target.noswap else 'no'}), "
        f"swap policy {target.swap_policy}, devices: {', '.join(target.devices) or 'none'}",
        file=out,
    )
    if args.command == "plan":
        outcome = plan(target, args.config)
        print(f"config: {outcome.config_origin}", file=out)
        for change in outcome.changes:
            print(change.describe(), file=out)
        for command in outcome.commands:
            print(f"  then run: {' '.join(command)}", file=out)
        print("nothing to change" if not outcome.changed else f"{len(outcome.changes)} changes", file=out)
        return 0
    _require_root_user(root, "apply")
    runner = Runner(execute=is_live_root(root), echo=out)
    outcome = apply(target, args.config, runner, out)
    print(f"config: {outcome.config_origin}", file=out)
    for note in outcome.notes:
        print(f"note: {note}", file=out)
    if outcome.changed:
        verb = "ran" if runner.execute else "recorded (staging root, not run)"
        print(f"applied {len(outcome.changes)} changes; {verb} {len(outcome.commands)} commands", file=out)
    else:
        print("nothing changed: the device already matches", file=out)
    return 0


def _cmd_tls(args: argparse.Namespace, out: TextIO) -> int:
    from provisioning.runner import Runner  # noqa: PLC0415
    from provisioning.tls import SELF_SIGNED_WARNING, import_certificate, install, print_summary, self_signed  # noqa: PLC0415

    root: Path = args.root
    _require_root_user(root, "tls")
    if args.import_files is not None:
        cert, key = args.import_files
        try:
            chain_pem, key_pem = cert.read_bytes(), key.read_bytes()
        except OSError as exc:
            raise ProvisioningError(f"cannot read {exc.filename}: {exc.strerror}") from None
        bundle = import_certificate(chain_pem, key_pem)
    else:
        bundle = self_signed(args.self_signed)
    written = install(root, bundle, Runner(execute=is_live_root(root), echo=out))
    print_summary(bundle, written, out)
    if bundle.ca_pem is not None:
        print(SELF_SIGNED_WARNING, file=sys.stderr)
    return 0


def _cmd_cert(args: argparse.Namespace, out: TextIO) -> int:
    from provisioning.acme import run  # noqa: PLC0415 - the ACME stack only for this command

    return run(args, out)


def _cmd_doctor(args: argparse.Namespace, out: TextIO) -> int:
    from provisioning.doctor import exit_code, format_json, format_text, run_doctor  # noqa: PLC0415
    from provisioning.runner import Runner  # noqa: PLC0415

    # Doctor only reads: its probes are queries, so the runner never executes a mutating command.
    checks = run_doctor(args.root, Runner(execute=False), kernel_release=args.kernel)
    print(format_json(checks) if args.json else format_text(checks), end="", file=out)
    return EXIT_DOCTOR_FAIL if exit_code(checks) else 0


def _device_config(path: Path | None) -> KioskConfig:
    if path is not None:
        return load_config(path)
    installed = Path(str(CONFIG_PATH))
    return load_config(installed if installed.is_file() else None)


def _cmd_build_engines(args: argparse.Namespace, out: TextIO) -> int:
    from engine.runtime import tensorrt_available  # noqa: PLC0415
    from provisioning.engines import NO_TENSORRT_MESSAGE, build_engines  # noqa: PLC0415

    # Checked first, before the config or any file: without TensorRT nothing may change.
    if not tensorrt_available():
        print(f"error: {NO_TENSORRT_MESSAGE}", file=sys.stderr)
        return EXIT_NO_TENSORRT
    cfg = _device_config(args.config)
    models_dir = args.models_dir or cfg.engine.models_dir
    plans_dir = args.plans_dir or cfg.engine.plans_dir
    results = build_engines(models_dir, plans_dir, out, force=args.force)
    failed = [r for r in results if r.status == "failed"]
    return EXIT_ERROR if failed else 0


def _cmd_staff_bootstrap(args: argparse.Namespace, out: TextIO) -> int:
    """Delegate to ``appliance.accounts`` and its command (another team's modules); only glue lives here."""
    try:
        staff = importlib.import_module("appliance.accounts")
        command = importlib.import_module("appliance.cli.accounts")
    except ModuleNotFoundError as exc:
        if exc.name in ("appliance.accounts", "appliance.cli", "appliance.cli.accounts"):
            print(
                f"error: staff accounts are not part of this build ({exc.name} is missing); "
                "update the checkout",
                file=sys.stderr,
            )
        else:
            print(
                f"error: appliance.accounts needs the package {exc.name!r}; run `make venv`", file=sys.stderr
            )
        return EXIT_ERROR
    config_path = (
        args.config
        if args.config is not None
        else (Path(str(CONFIG_PATH)) if Path(str(CONFIG_PATH)).is_file() else None)
    )
    cfg = load_config(config_path)
    accounts = cfg.staff.accounts_path
    store = staff.StaffStore(accounts)
    if any(summary.role == staff.Role.ADMIN for summary in store.list()):
        print(f"error: {accounts} already has an admin; use `python -m appliance staff add`", file=sys.stderr)
        return EXIT_ERROR
    argv = [*(["--config", str(config_path)] if config_path else []), "add", args.name, "--role", "admin"]
    if args.password_stdin:
        argv.append("--password-stdin")
    code = int(command.staff_main(argv))
    if code == 0:
        _hand_over(cfg, out)
    return code


def _hand_over(cfg: KioskConfig, out: TextIO) -> None:
    """Files made by root for the service (accounts, audit) must belong to the service user."""
    from provisioning.runner import Runner  # noqa: PLC0415

    root = Path("/")
    if os.geteuid() != 0 or lookup_id(root, "passwd", SERVICE_USER) is None:
        return
    runner = Runner(execute=True, echo=out)
    owner = f"{SERVICE_USER}:{SERVICE_GROUP}"
    accounts = cfg.staff.accounts_path
    for path in (accounts, accounts.with_name(accounts.name + ".lock")):
        if path.exists():
            runner.run(["chown", owner, str(path)])
    if cfg.audit.path.is_dir():
        runner.run(["chown", "-R", owner, str(cfg.audit.path)])


def _cmd_hotspot(args: argparse.Namespace, out: TextIO) -> int:
    from provisioning.hotspot import HotspotSettings, hotspot  # noqa: PLC0415
    from provisioning.runner import Runner  # noqa: PLC0415

    root: Path = args.root
    _require_root_user(root, "hotspot")
    installed = host_path(root, CONFIG_PATH)
    delivery = load_config(installed if installed.is_file() else None).delivery
    host = args.host if args.host is not None else delivery.public_host
    settings = HotspotSettings(
        ssid=args.ssid,
        host_name=host,
        interface=args.interface,
        country=args.country,
        channel=args.channel,
        address=args.address,
        # Port 80 goes where the kiosk answers; with the answers off (0), where `apply` puts them.
        checks_port=delivery.connectivity_check_port or CONNECTIVITY_CHECK_PORT,
    )
    if not delivery.connectivity_check_port:
        print(
            "note: [delivery] connectivity_check_port is 0: phones' connectivity checks get no answer and "
            f"phones may leave this Wi-Fi; set it to {CONNECTIVITY_CHECK_PORT} (apply with TLS does)",
            file=out,
        )
    changed = hotspot(root, settings, Runner(execute=is_live_root(root), echo=out), out, rotate=args.rotate)
    print("hotspot configured" if changed else "nothing changed: the hotspot already matches", file=out)
    return 0


def _cmd_setup_sheet(args: argparse.Namespace, out: TextIO) -> int:
    from provisioning.setup_sheet import write_setup_sheet  # noqa: PLC0415 - segno only for this command

    root: Path = args.root
    if args.config is not None:
        cfg = load_config(args.config)
    else:
        installed = host_path(root, CONFIG_PATH)
        cfg = load_config(installed if installed.is_file() else None)
    try:
        sheet = write_setup_sheet(cfg, args.output, root=root)
    except OSError as exc:
        raise ProvisioningError(f"cannot write {args.output}: {exc.strerror}") from None
    print(f"wrote {args.output}", file=out)
    print(f"staff console: {sheet.console.url}", file=out)
    for problem in sheet.console.problems:
        print(f"warning: {problem}", file=out)
    if sheet.console.fix:
        print(f"fix: {sheet.console.fix}", file=out)
    return 0


_COMMANDS = {
    "plan": _cmd_plan_apply,
    "apply": _cmd_plan_apply,
    "tls": _cmd_tls,
    "cert": _cmd_cert,
    "doctor": _cmd_doctor,
    "build-engines": _cmd_build_engines,
    "staff-bootstrap": _cmd_staff_bootstrap,
    "hotspot": _cmd_hotspot,
    "setup-sheet": _cmd_setup_sheet,
}


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run one command; returns the exit status (see the module docstring)."""
    stream = out if out is not None else sys.stdout
    try:
        args = _parser().parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # argparse printed usage or help
        return 0 if exc.code == 0 else EXIT_ERROR
    try:
        return _COMMANDS[args.command](args, stream)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except ProvisioningError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
    return EXIT_ERROR
