"""Where staff open the console on their phones: the URL, and whether a phone on the kiosk's network can
use it.

Staff reach the console over TLS on the kiosk's network (its hotspot, or the venue's), with the certificate
the delivery listener uses: ``[staff] host = "0.0.0.0"`` and ``tls_cert_path``/``tls_key_path`` pointing at
``/etc/headshot-kiosk/tls/kiosk.pem``/``kiosk.key``. The URL names the kiosk the way phones resolve it —
``[delivery] public_host``, which the hotspot's DNS answers with the kiosk's address — when the certificate
names it, else the certificate's first name. The address reaches staff through ``provisioning doctor``
(``doctor_check``) and the printed setup sheet (``provisioning.setup_sheet``); it is never shown on the
guest screen.

Nothing here changes the device; the certificate is read from under ``root`` (a staged tree or ``/``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from appliance.config import KioskConfig, is_loopback
from appliance.tlscert import RENEW_WARN_DAYS, is_ip_address
from provisioning import ProvisioningError
from provisioning.configfile import TLS_CERT, TLS_KEY
from provisioning.target import host_path

__all__ = ["StaffConsoleAddress", "doctor_check", "staff_console_address"]

# The same margin doctor's TLS check warns at: a certificate this close to its end needs a renewal.
ON_NETWORK_FIX = (
    f'in kiosk.toml set [staff] host = "0.0.0.0", tls_cert_path = "{TLS_CERT}" and tls_key_path = '
    f'"{TLS_KEY}" (the delivery certificate), then restart the kiosk'
)


@dataclass(frozen=True)
class StaffConsoleAddress:
    """The console's URL for staff and what stands between a phone and it.

    ``on_network``: the console listens beyond this machine (over TLS: the config requires it).
    ``problems`` are sentences for people; ``status`` is doctor's word for them: OK (phones can use the
    URL, or neither the console nor delivery is on the network: a laptop demo), WARN (phones will warn or
    cannot reach it), FAIL (the certificate is unusable: the console cannot serve).
    """

    url: str
    host: str
    on_network: bool
    status: str
    problems: tuple[str, ...] = ()
    fix: str = ""
    certificate_hosts: tuple[str, ...] = ()
    valid_until: dt.datetime | None = None
    issuer: str = ""
    local_ca: bool = False

    @property
    def phone_ready(self) -> bool:
        """A phone on the kiosk's network can open ``url`` without a warning."""
        return self.on_network and self.status == "OK"


def _url(scheme: str, host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{shown}{'' if port == default else f':{port}'}/staff/"


def _names_host(names: tuple[str, ...], host: str) -> bool:
    """True if a certificate naming ``names`` is valid for ``host`` (one-label ``*.`` wildcards)."""
    wanted = host.lower().rstrip(".")
    parent = wanted.split(".", 1)[1] if "." in wanted else ""
    return any(name.lower() in (wanted, f"*.{parent}") for name in names)


def _pick_host(names: tuple[str, ...], public_host: str) -> str:
    if _names_host(names, public_host):
        return public_host
    dns = [name for name in names if not is_ip_address(name) and not name.startswith("*.")]
    return (dns or list(names) or [public_host])[0]


def staff_console_address(
    cfg: KioskConfig, *, root: Path = Path("/"), now: dt.datetime | None = None
) -> StaffConsoleAddress:
    """The console's address for ``cfg`` on the device under ``root`` (its certificate is read there)."""
    staff = cfg.staff
    moment = now or dt.datetime.now(dt.timezone.utc)
    scheme = "https" if staff.tls_cert_path is not None else "http"
    if is_loopback(staff.host):
        url = _url(scheme, "127.0.0.1" if staff.host == "localhost" else staff.host, staff.port)
        if is_loopback(cfg.delivery.host):
            return StaffConsoleAddress(url, staff.host, on_network=False, status="OK")
        # Guests' phones are served on the network but staff's are not: the console only on the device.
        return StaffConsoleAddress(
            url,
            staff.host,
            on_network=False,
            status="WARN",
            problems=("staff cannot open it from their phones",),
            fix=ON_NETWORK_FIX,
        )
    from provisioning.tls import TlsError, inspect_certificate  # noqa: PLC0415 - cryptography

    assert staff.tls_cert_path is not None  # the config refuses a network console without TLS
    try:
        info = inspect_certificate(host_path(root, str(staff.tls_cert_path)).read_bytes(), now=moment)
    except (OSError, TlsError, ProvisioningError) as exc:
        return StaffConsoleAddress(
            _url("https", cfg.delivery.public_host, staff.port),
            cfg.delivery.public_host,
            on_network=True,
            status="FAIL",
            problems=(f"the staff certificate {staff.tls_cert_path} cannot be used: {exc}",),
            fix="python -m provisioning tls --import CERT KEY (or cert obtain), then restart the kiosk",
        )
    host = _pick_host(info.hosts, cfg.delivery.public_host)
    problems: list[str] = []
    fixes: list[str] = []
    status = "OK"
    if moment > info.not_after or moment < info.not_before:
        status = "FAIL"
        problems.append(
            f"the staff certificate is valid {info.not_before:%Y-%m-%d} to {info.not_after:%Y-%m-%d} only"
        )
        fixes.append("check the clock (doctor: clock), then renew: python -m provisioning cert renew")
    else:
        if info.days_left < RENEW_WARN_DAYS:
            status = "WARN"
            problems.append(f"the staff certificate ends in {info.days_left} days")
            fixes.append("python -m provisioning cert renew (while the kiosk is online)")
        if info.local_ca:
            status = "WARN"
            problems.append(
                "the certificate comes from a local CA: staff phones warn unless kiosk-ca.pem is on them"
            )
            fixes.append("use a publicly trusted certificate: python -m provisioning cert obtain ...")
        if not _names_host(info.hosts, cfg.delivery.public_host):
            status = "WARN"
            problems.append(
                f"the staff certificate does not name {cfg.delivery.public_host}, the name the kiosk's "
                f"network resolves; phones must reach {host} some other way"
            )
            fixes.append(f"use the delivery certificate: {ON_NETWORK_FIX}")
    return StaffConsoleAddress(
        _url("https", host, staff.port),
        host,
        on_network=True,
        status=status,
        problems=tuple(problems),
        fix="; ".join(fixes),
        certificate_hosts=info.hosts,
        valid_until=info.not_after,
        issuer=info.issuer,
        local_ca=info.local_ca,
    )


def doctor_check(
    cfg: KioskConfig, *, root: Path = Path("/"), now: dt.datetime | None = None
) -> tuple[str, str, str]:
    """``(status, detail, fix)`` for doctor's ``staff-console`` line: the URL first, so staff find it in the
    report; the status is ``StaffConsoleAddress.status`` (OK, WARN, FAIL)."""
    address = staff_console_address(cfg, root=root, now=now)
    where = "for phones on the kiosk's network" if address.on_network else "on this machine only"
    detail = f"{address.url} ({where})"
    if address.problems:
        detail += ": " + "; ".join(address.problems)
    return address.status, detail, address.fix
