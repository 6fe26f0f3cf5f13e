"""``cert``: a publicly trusted certificate for the kiosk's own host name, obtained by ACME DNS-01 while the
kiosk is online and renewed whenever it is online again.

Phones trust the delivery page only with a certificate that chains to a public root, and at an event the
kiosk has no internet. DNS-01 needs neither: the CA checks a TXT record at ``_acme-challenge.<host>`` in the
operator's public DNS (the host itself never needs a public address), and the kiosk's own dnsmasq answers
``<host>`` with its LAN address (``provisioning.hotspot``). This is how Plex and Datto serve LAN appliances.

The ACME protocol is certbot's ``acme`` library (RFC 8555: account, order, challenge, finalize, download);
this module only chooses the key, runs the operator's DNS hook and installs the result through
``provisioning.tls`` (the same checks and file modes as ``tls --import``).

The DNS hook is any executable: ``HOOK present FQDN VALUE`` creates the TXT record ``FQDN`` (with a trailing
dot) holding ``VALUE`` and returns once it is published; ``HOOK cleanup FQDN VALUE`` removes it (lego's
``exec`` provider uses the same contract). It holds or reads the DNS credentials itself.

Files (``/etc/headshot-kiosk/acme``, 0700 root): ``acme.json`` (settings: host, CA directory, hook, renewal
threshold), ``account.key`` (the ACME account's private key, ECDSA P-256) and ``account.json`` (its URL at
the CA), each 0600 root. The certificate and its key go to ``/etc/headshot-kiosk/tls`` like any other.
A fresh key is made for every certificate; the old one is replaced, never kept.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, TextIO

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from appliance.tlscert import days_until_expiry
from engine.fileio import write_atomic
from provisioning import ProvisioningError
from provisioning.apply import FileSpec, LinkSpec, chown_commands, write_specs
from provisioning.configfile import CONFIG_DIR, TLS_CERT
from provisioning.render import (
    CERT_RENEW_SERVICE,
    CERT_RENEW_TIMER,
    render_cert_renew_service,
    render_cert_renew_timer,
    unit_path,
)
from provisioning.runner import Runner
from provisioning.target import DEFAULT_PREFIX, host_path, is_live_root
from provisioning.tls import (
    TlsBundle,
    TlsError,
    certificate_hosts,
    import_certificate,
    install,
    print_summary,
)

if TYPE_CHECKING:  # the ACME stack is imported when a certificate is ordered, not when doctor reads settings
    from acme import client
    from josepy.jwk import JWKEC

__all__ = [
    "ACME_DIR",
    "DEFAULT_RENEW_DAYS",
    "LETS_ENCRYPT",
    "LETS_ENCRYPT_STAGING",
    "AcmeError",
    "AcmeSettings",
    "HookPublisher",
    "generate_host",
    "load_settings",
    "main",
    "obtain",
    "renew",
    "renewal_due",
    "renewal_specs",
    "save_settings",
]

ACME_DIR = CONFIG_DIR / "acme"
SETTINGS_PATH = ACME_DIR / "acme.json"
ACCOUNT_KEY_PATH = ACME_DIR / "account.key"
ACCOUNT_PATH = ACME_DIR / "account.json"
LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LETS_ENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
# Let's Encrypt's own advice: renew when a third of a 90-day certificate is left. doctor warns below 14.
DEFAULT_RENEW_DAYS = 30
# certbot's DNS plugins wait 10-120 s for a record to reach every authoritative server; 30 s suits most APIs.
DEFAULT_PROPAGATION_SECONDS = 30.0
_HOOK_TIMEOUT_SECONDS = 300.0
_ORDER_TIMEOUT_SECONDS = 180.0
_USER_AGENT = "headshot-kiosk-provisioning (acme-python)"
_HOST_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")

EXIT_ERROR = 2


class AcmeError(ProvisioningError):
    """Obtaining or renewing the certificate failed; the message says at which step and what to do."""


@dataclass(frozen=True)
class AcmeSettings:
    """What ``cert renew`` needs to repeat ``cert obtain`` unattended (stored in ``acme.json``).

    ``dns_hook`` and ``ca_bundle`` are paths on the machine that runs the command (the kiosk).
    ``ca_bundle`` replaces the public roots for the connection to the ACME server (a private or test CA);
    ``None`` trusts the usual public roots (certifi).
    """

    host: str
    dns_hook: str
    directory_url: str = LETS_ENCRYPT
    email: str | None = None
    ca_bundle: str | None = None
    propagation_seconds: float = DEFAULT_PROPAGATION_SECONDS
    renew_days: int = DEFAULT_RENEW_DAYS

    def __post_init__(self) -> None:
        labels = self.host.split(".")
        if len(self.host) > 253 or len(labels) < 3 or not all(_HOST_LABEL.fullmatch(x) for x in labels):
            raise AcmeError(
                f"host must be a lower-case DNS name under a domain you control, with at least three labels "
                f"(kiosk-7f3a.events.example.com), got {self.host!r}"
            )
        if not os.path.isabs(self.dns_hook):
            raise AcmeError(f"the DNS hook must be an absolute path, got {self.dns_hook!r}")
        if not self.directory_url.startswith("https://"):
            raise AcmeError(f"the ACME directory must be an https:// URL, got {self.directory_url!r}")
        if not 1 <= self.renew_days <= 365:
            raise AcmeError(f"renew_days must be 1..365, got {self.renew_days}")
        if not 0 <= self.propagation_seconds <= 3600:
            raise AcmeError(f"propagation_seconds must be 0..3600, got {self.propagation_seconds}")


def generate_host(domain: str) -> str:
    """A per-kiosk host name under ``domain``: ``kiosk-<8 random hex>.<domain>``.

    Random, not a serial number or a place: every issued name is public in Certificate Transparency logs.
    """
    return f"kiosk-{secrets.token_hex(4)}.{domain.strip('.').lower()}"


def save_settings(root: Path, settings: AcmeSettings) -> None:
    """Write ``acme.json`` (0600) in the root-only ACME directory."""
    _acme_dir(root)
    text = json.dumps(asdict(settings), indent=2, sort_keys=True) + "\n"
    write_atomic(host_path(root, SETTINGS_PATH), text.encode(), mode=0o600)


def load_settings(root: Path) -> AcmeSettings:
    """The settings ``cert obtain`` stored; AcmeError when there are none (or they are damaged)."""
    path = host_path(root, SETTINGS_PATH)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AcmeError(
            f"no {SETTINGS_PATH}: run `python -m provisioning cert obtain --host ... --dns-hook ...` first"
        ) from None
    except (OSError, ValueError) as exc:
        raise AcmeError(f"cannot read {SETTINGS_PATH}: {exc}; run `cert obtain` again") from None
    try:
        return AcmeSettings(**data)
    except TypeError as exc:
        raise AcmeError(
            f"{SETTINGS_PATH} does not hold valid settings ({exc}); run `cert obtain` again"
        ) from None


def _acme_dir(root: Path) -> Path:
    directory = host_path(root, ACME_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    # The account key can order certificates for the operator's domain: root only, whatever the umask was.
    os.chmod(directory, 0o700)
    return directory


# ----------------------------------------------------------------------------------------------- DNS


class HookPublisher:
    """Publishes DNS-01 TXT records through the operator's executable (see the module docstring)."""

    def __init__(self, hook: str, *, timeout: float = _HOOK_TIMEOUT_SECONDS) -> None:
        self.hook = hook
        self.timeout = timeout

    def present(self, fqdn: str, value: str) -> None:
        """Create the TXT record; AcmeError if the hook fails."""
        self._call("present", fqdn, value)

    def cleanup(self, fqdn: str, value: str) -> None:
        """Remove the TXT record; AcmeError if the hook fails."""
        self._call("cleanup", fqdn, value)

    def _call(self, action: str, fqdn: str, value: str) -> None:
        argv = [self.hook, action, fqdn, value]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout, check=False)
        except FileNotFoundError:
            raise AcmeError(f"DNS hook {self.hook} not found") from None
        except PermissionError:
            raise AcmeError(f"DNS hook {self.hook} is not executable (chmod 0700 it)") from None
        except subprocess.TimeoutExpired:
            raise AcmeError(f"DNS hook {self.hook} {action} did not finish in {self.timeout:g} s") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()
            raise AcmeError(
                f"DNS hook {self.hook} {action} {fqdn} failed with exit code {done.returncode}: "
                f"{tail[-1] if tail else 'no output'}"
            )


# ---------------------------------------------------------------------------------------------- ACME


def _account_jwk(root: Path) -> tuple[JWKEC, bool]:
    """The account key as a josepy JWK, created (0600) on first use; the flag says it is new."""
    from josepy.jwk import JWKEC  # noqa: PLC0415 - only ordering a certificate needs the ACME stack

    path = host_path(root, ACCOUNT_KEY_PATH)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        new = False
    except FileNotFoundError:
        key = ec.generate_private_key(ec.SECP256R1())
        _acme_dir(root)
        write_atomic(path, _pem(key), mode=0o600)
        new = True
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise AcmeError(f"{ACCOUNT_KEY_PATH} is not an ECDSA key; remove it and run `cert obtain` again")
    return JWKEC(key=key), new


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    # Unencrypted on purpose: renewal runs unattended. The file and its directory are root-only.
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@contextmanager
def _acme_errors(step: str, settings: AcmeSettings) -> Iterator[None]:
    """Turn the library's and the network's errors into one AcmeError naming the step and the fix."""
    import requests  # noqa: PLC0415
    from acme import errors, messages  # noqa: PLC0415

    try:
        yield
    except requests.exceptions.SSLError as exc:
        raise AcmeError(
            f"{step}: the ACME server {settings.directory_url} is not trusted ({exc.__class__.__name__}); "
            "check --ca-bundle"
        ) from None
    except requests.exceptions.RequestException as exc:
        raise AcmeError(
            f"{step}: cannot reach the ACME server {settings.directory_url} ({exc.__class__.__name__}); "
            "the kiosk must be online (the renewal timer retries hourly)"
        ) from None
    except messages.Error as exc:
        raise AcmeError(f"{step}: the CA refused: {exc.typ}: {exc.detail}") from None
    except errors.TimeoutError:
        raise AcmeError(
            f"{step}: the CA did not validate the DNS record in time; check that the hook publishes "
            f"_acme-challenge.{settings.host} in your public DNS, or raise --propagation-seconds"
        ) from None
    except errors.ValidationError as exc:
        problems = [
            f"{authz.body.identifier.value}: {chall.error}"
            for authz in exc.failed_authzrs
            for chall in authz.body.challenges
            if chall.error is not None
        ]
        raise AcmeError(
            f"{step}: DNS-01 validation failed ({'; '.join(problems) or 'no detail'}); check the DNS hook"
        ) from None
    except errors.Error as exc:
        raise AcmeError(f"{step}: {exc.__class__.__name__}: {exc}") from None


def _client(
    root: Path, settings: AcmeSettings, *, agree_tos: bool, out: TextIO
) -> tuple[client.ClientV2, JWKEC]:
    """A ClientV2 logged in to the CA's account (registered on first use); returns (client, jwk)."""
    from acme import client, errors, messages  # noqa: PLC0415
    from josepy.jwa import ES256  # noqa: PLC0415

    jwk, new_key = _account_jwk(root)
    net = client.ClientNetwork(jwk, alg=ES256, user_agent=_USER_AGENT)
    if settings.ca_bundle is not None:
        # requests takes a CA bundle path where ClientNetwork's signature says bool (verify=).
        net.verify_ssl = settings.ca_bundle  # type: ignore[assignment]
    with _acme_errors("reading the CA's directory", settings):
        directory = client.ClientV2.get_directory(settings.directory_url, net)
    acme = client.ClientV2(directory, net)
    account_path = host_path(root, ACCOUNT_PATH)
    stored = None
    if not new_key and account_path.is_file():
        stored = json.loads(account_path.read_text(encoding="utf-8"))
    if stored is not None and stored.get("directory_url") == settings.directory_url:
        net.account = messages.RegistrationResource.json_loads(json.dumps(stored["registration"]))
        return acme, jwk
    terms = directory.meta.terms_of_service
    if terms and not agree_tos:
        raise AcmeError(
            f"creating an account at {settings.directory_url} means agreeing to its terms of service "
            f"({terms}); read them and run again with --agree-tos"
        )
    registration = messages.NewRegistration.from_data(
        email=settings.email, terms_of_service_agreed=bool(terms)
    )
    with _acme_errors("registering the ACME account", settings):
        try:
            regr = acme.new_account(registration)
        except errors.ConflictError as exc:
            # The key already has an account there (account.json was lost): look it up.
            regr = acme.query_registration(messages.RegistrationResource(uri=str(exc), body=registration))
    _acme_dir(root)
    record = {"directory_url": settings.directory_url, "registration": json.loads(regr.json_dumps())}
    write_atomic(account_path, (json.dumps(record, indent=2) + "\n").encode(), mode=0o600)
    print(f"ACME account registered at {settings.directory_url}", file=out)
    return acme, jwk


def request_certificate(
    root: Path,
    settings: AcmeSettings,
    out: TextIO,
    *,
    agree_tos: bool = False,
    publisher: HookPublisher | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[bytes, bytes]:
    """Run one ACME order for ``settings.host`` with DNS-01; returns ``(fullchain_pem, key_pem)``.

    A fresh ECDSA P-256 key is made for the certificate. Every TXT record presented is cleaned up again,
    also when the order fails. Raises AcmeError naming the step that failed.
    """
    from acme import challenges, crypto_util, messages  # noqa: PLC0415

    publisher = publisher or HookPublisher(settings.dns_hook)
    acme, jwk = _client(root, settings, agree_tos=agree_tos, out=out)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    key_pem = _pem(leaf_key)
    csr_pem = crypto_util.make_csr(key_pem, [settings.host])
    presented: list[tuple[str, str]] = []
    try:
        with _acme_errors("ordering the certificate", settings):
            order = acme.new_order(csr_pem)
            answers = []
            for authz in order.authorizations:
                if authz.body.status == messages.STATUS_VALID:
                    continue  # the CA still remembers a recent validation of this name
                challenge = next(
                    (c for c in authz.body.challenges if isinstance(c.chall, challenges.DNS01)), None
                )
                if challenge is None:
                    raise AcmeError(f"the CA offers no DNS-01 challenge for {authz.body.identifier.value}")
                name = challenge.chall.validation_domain_name(authz.body.identifier.value) + "."
                value = challenge.chall.validation(jwk)
                publisher.present(name, value)
                presented.append((name, value))
                answers.append((challenge, challenge.chall.response(jwk)))
            if presented:
                print(
                    f"published {len(presented)} DNS-01 record(s); waiting "
                    f"{settings.propagation_seconds:g} s for them to reach the public DNS",
                    file=out,
                )
                sleep(settings.propagation_seconds)
            for challenge, response in answers:
                acme.answer_challenge(challenge, response)
            deadline = dt.datetime.now() + dt.timedelta(seconds=_ORDER_TIMEOUT_SECONDS)
            order = acme.poll_and_finalize(order, deadline)
    finally:
        for name, value in presented:
            try:
                publisher.cleanup(name, value)
            except AcmeError as exc:
                # A stale TXT record is harmless (it proves nothing without the account key); say so.
                print(f"warning: {exc}; remove the record by hand", file=out)
    fullchain = order.fullchain_pem
    if not fullchain:
        raise AcmeError("the CA finalized the order but returned no certificate; run again")
    return fullchain.encode(), key_pem


def obtain(
    root: Path,
    settings: AcmeSettings,
    runner: Runner,
    out: TextIO,
    *,
    agree_tos: bool = False,
    publisher: HookPublisher | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> TlsBundle:
    """Order a certificate for ``settings.host`` and install it for the delivery listener.

    The chain goes through ``provisioning.tls.import_certificate`` (key match, validity, serverAuth, chain
    order) and ``install`` (key 0600, owned by the service user via ``runner``), as ``tls --import`` does.
    """
    fullchain, key_pem = request_certificate(
        root, settings, out, agree_tos=agree_tos, publisher=publisher, sleep=sleep
    )
    try:
        bundle = import_certificate(fullchain, key_pem)
    except TlsError as exc:
        raise AcmeError(f"the CA's certificate cannot be used: {exc}") from None
    written = install(root, bundle, runner)
    print_summary(bundle, written, out)
    return bundle


def renewal_due(root: Path, settings: AcmeSettings, *, now: dt.datetime | None = None) -> str | None:
    """Why the installed certificate must be renewed now, or ``None`` when it is good for more than
    ``settings.renew_days`` days and names ``settings.host``."""
    path = host_path(root, TLS_CERT)
    try:
        days = days_until_expiry(path, now=now)
        hosts = certificate_hosts(path.read_bytes())
    except FileNotFoundError:
        return f"no certificate at {TLS_CERT}"
    except (OSError, ValueError, TlsError) as exc:
        return f"the installed certificate cannot be read ({exc.__class__.__name__})"
    if settings.host not in hosts:
        return f"the installed certificate names {', '.join(hosts) or 'nothing'}, not {settings.host}"
    if days < settings.renew_days:
        return f"{days:.1f} days left, fewer than {settings.renew_days}"
    return None


def renew(
    root: Path,
    runner: Runner,
    out: TextIO,
    *,
    days: int | None = None,
    force: bool = False,
    now: dt.datetime | None = None,
    publisher: HookPublisher | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> TlsBundle | None:
    """Renew when due (``days`` overrides the stored threshold; ``force`` renews anyway); returns the new
    bundle, or ``None`` when not due. Not due touches no network.

    The running kiosk keeps serving the certificate it loaded at start; the new one is served from its next
    start (the old one stays valid for ``renew_days`` more days, and a restart would end a visit).
    """
    settings = load_settings(root)
    if days is not None:
        settings = AcmeSettings(**{**asdict(settings), "renew_days": days})
    reason = "forced" if force else renewal_due(root, settings, now=now)
    if reason is None:
        left = days_until_expiry(host_path(root, TLS_CERT), now=now)
        print(
            f"certificate for {settings.host} is good for {left:.0f} more days; "
            f"renewal is due below {settings.renew_days}",
            file=out,
        )
        return None
    print(f"renewing the certificate for {settings.host}: {reason}", file=out)
    bundle = obtain(root, settings, runner, out, publisher=publisher, sleep=sleep)
    print(
        "the kiosk serves the new certificate from its next start "
        "(between events: systemctl restart headshot-kiosk)",
        file=out,
    )
    return bundle


# ------------------------------------------------------------------------------------------- renewal


def renewal_specs(prefix: PurePosixPath = DEFAULT_PREFIX) -> list[FileSpec | LinkSpec]:
    """The renewal service and timer, and the link that enables the timer (as ``systemctl enable``).
    ``prefix`` is the checkout whose venv runs ``cert renew``."""
    timer = unit_path(CERT_RENEW_TIMER)
    service = render_cert_renew_service(prefix / ".venv" / "bin" / "python")
    return [
        FileSpec(unit_path(CERT_RENEW_SERVICE), service.encode(), triggers=("reload",)),
        FileSpec(timer, render_cert_renew_timer().encode(), triggers=("reload",)),
        LinkSpec(
            PurePosixPath("/etc/systemd/system/timers.target.wants") / CERT_RENEW_TIMER,
            str(timer),
            triggers=("reload",),
        ),
    ]


def install_renewal(root: Path, prefix: PurePosixPath, runner: Runner, out: TextIO) -> bool:
    """Install the renewal units under ``root``; reload systemd and start the timer when they changed."""
    changes = write_specs(root, renewal_specs(prefix), compare_owner=False, out=out)
    for command in chown_commands(root, changes):
        runner.run(command)
    if changes:
        runner.run(["systemctl", "daemon-reload"])
        runner.run(["systemctl", "start", CERT_RENEW_TIMER])
    return bool(changes)


# ----------------------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m provisioning cert",
        description="A publicly trusted certificate for the kiosk's host name by ACME DNS-01 (see "
        "docs/PROVISIONING.md, 'A trusted certificate for an event').",
    )
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``obtain`` and ``renew`` subcommands (shared with ``python -m provisioning cert``)."""
    sub = parser.add_subparsers(dest="cert_command", required=True)
    for name, text in (
        ("obtain", "order a certificate now, install it and the renewal timer (run while online)"),
        ("renew", "renew the installed certificate if it is due (the timer runs this hourly)"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument(
            "--root",
            type=Path,
            default=Path("/"),
            help="filesystem root to install into (default /); commands are only printed on another root",
        )
        if name == "obtain":
            which = p.add_mutually_exclusive_group(required=True)
            which.add_argument("--host", help="the kiosk's host name, e.g. kiosk-7f3a.events.example.com")
            which.add_argument(
                "--domain", help="a domain you control: the host becomes kiosk-<random>.<domain>"
            )
            p.add_argument(
                "--dns-hook",
                required=True,
                help="executable called as HOOK present|cleanup FQDN VALUE to publish the TXT record",
            )
            p.add_argument("--email", default=None, help="contact address for the CA (expiry notices)")
            p.add_argument(
                "--directory",
                default=LETS_ENCRYPT,
                help=f"ACME directory URL (default Let's Encrypt; staging: {LETS_ENCRYPT_STAGING})",
            )
            p.add_argument(
                "--ca-bundle", default=None, help="PEM roots to trust for the ACME server (private/test CA)"
            )
            p.add_argument(
                "--propagation-seconds",
                type=float,
                default=DEFAULT_PROPAGATION_SECONDS,
                help="wait after publishing the record before the CA checks it (default %(default)g)",
            )
            p.add_argument(
                "--renew-days",
                type=int,
                default=DEFAULT_RENEW_DAYS,
                help="renew when fewer days are left (default %(default)d)",
            )
            p.add_argument("--agree-tos", action="store_true", help="agree to the CA's terms of service")
            p.add_argument(
                "--prefix",
                default=str(DEFAULT_PREFIX),
                help="checkout holding .venv (for the renewal unit; default %(default)s)",
            )
        else:
            p.add_argument("--days", type=int, default=None, help="renew when fewer days are left")
            p.add_argument("--force", action="store_true", help="renew even if not due")


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Carry out parsed ``cert`` arguments; returns the exit status (0 done or not due). Raises
    ProvisioningError (AcmeError) with what to do."""
    root: Path = args.root
    if is_live_root(root) and os.geteuid() != 0:
        raise ProvisioningError("cert changes /etc/headshot-kiosk and must run as root")
    runner = Runner(execute=is_live_root(root), echo=out)
    if args.cert_command == "renew":
        renew(root, runner, out, days=args.days, force=args.force)
        return 0
    settings = AcmeSettings(
        host=args.host or generate_host(args.domain),
        dns_hook=str(Path(args.dns_hook).absolute()),
        directory_url=args.directory,
        email=args.email,
        ca_bundle=str(Path(args.ca_bundle).absolute()) if args.ca_bundle else None,
        propagation_seconds=args.propagation_seconds,
        renew_days=args.renew_days,
    )
    obtain(root, settings, runner, out, agree_tos=args.agree_tos)
    # Stored only after a success: a renewal repeats what is known to work.
    save_settings(root, settings)
    install_renewal(root, PurePosixPath(args.prefix), runner, out)
    print(
        f"renewal: {CERT_RENEW_TIMER} checks hourly and renews below {settings.renew_days} days left, "
        "whenever the kiosk is online",
        file=out,
    )
    return 0


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """``python -m provisioning.acme obtain|renew ...``; returns the exit status (2 on any error)."""
    stream = out if out is not None else sys.stdout
    try:
        args = _parser().parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:
        return 0 if exc.code == 0 else EXIT_ERROR
    try:
        return run(args, stream)
    except ProvisioningError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
