"""TLS for the phone-facing delivery listener: import a publicly trusted certificate, or make a local CA.

Phones trust a certificate only if it chains to a public root, so the recommended way is ``tls --import``
with a certificate for the kiosk's own host name (DESIGN.md §3: how Plex and Datto serve LAN appliances).
``tls --self-signed HOST`` is the fallback: a one-off CA signs one leaf and its private key is never written,
and the CA carries a name constraint for HOST only, so even if a staff device trusts it, it can vouch for
nothing else. Phones of guests will show a certificate warning for it.

Installed files (``/etc/headshot-kiosk/tls``): ``kiosk.pem`` (leaf then chain, 0644), ``kiosk.key``
(PKCS#8, 0600, owned by the service user) and, for the local CA, ``kiosk-ca.pem``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.config import ConfigError, parse_config
from appliance.tlscert import leaf_hosts, server_leaf
from engine.fileio import write_atomic
from provisioning import ProvisioningError
from provisioning.configfile import TLS_CA, TLS_CERT, TLS_KEY
from provisioning.runner import Runner
from provisioning.target import SERVICE_GROUP, SERVICE_USER, host_path

__all__ = [
    "LEAF_VALIDITY_DAYS",
    "CertificateInfo",
    "TlsBundle",
    "TlsError",
    "certificate_hosts",
    "import_certificate",
    "inspect_certificate",
    "install",
    "self_signed",
]

# Apple platforms reject TLS server certificates valid for more than 825 days, and browsers cap public ones
# at 398 (https://support.apple.com/en-us/102028, CA/Browser Forum BR 6.3.2); 397 stays under both.
LEAF_VALIDITY_DAYS = 397
_CLOCK_SKEW = dt.timedelta(minutes=5)
_MIN_RSA_BITS = 2048
LOCAL_CA_NAME = "Headshot kiosk local CA"

SELF_SIGNED_WARNING = """\
WARNING: this certificate comes from a local CA that no phone trusts.
Guests' phones will show a full-page certificate warning ("Your connection is not private") before the
download page, and many guests will not tap through it. For events, use
  python -m provisioning tls --import CERT KEY
with a publicly trusted certificate for a host name you control (e.g. issued through an ACME DNS-01
challenge) and resolve that name to the kiosk on the local network.
The CA's private key was not kept: it signed this one certificate and can sign nothing else.
Install kiosk-ca.pem only on staff devices, never ask guests to install it."""


class TlsError(ProvisioningError):
    """A certificate or key is unusable; the message says why and what to do."""


@dataclass(frozen=True)
class TlsBundle:
    """PEM bytes to install. ``chain_pem`` is the leaf followed by its issuers; ``ca_pem`` only for the
    local CA."""

    chain_pem: bytes
    key_pem: bytes
    hosts: tuple[str, ...]
    not_after: dt.datetime
    ca_pem: bytes | None = None


@dataclass(frozen=True)
class CertificateInfo:
    """What ``doctor`` reports about the leaf certificate. Times are UTC."""

    hosts: tuple[str, ...]
    not_before: dt.datetime
    not_after: dt.datetime
    days_left: int
    issuer: str
    local_ca: bool


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _check_host(host: str) -> str:
    # The same rule the config applies to delivery.public_host: a DNS name or an IP, nothing else.
    try:
        parse_config({"delivery": {"public_host": host}}, source="<tls host>")
    except ConfigError as exc:
        raise TlsError(f"bad host name {host!r}: {exc.problems[0]}") from None
    return host


def _permitted_subtree(host: str) -> x509.GeneralName:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return x509.DNSName(host)
    return x509.IPAddress(ipaddress.ip_network(f"{address}/{address.max_prefixlen}"))


def self_signed(host: str, *, now: dt.datetime | None = None, days: int = LEAF_VALIDITY_DAYS) -> TlsBundle:
    """A one-off local CA (name-constrained to ``host``) and a leaf for ``host``, both ECDSA P-256.

    The CA key exists only inside this call. ``now`` is injectable for tests. Raises TlsError for a bad host.
    """
    _check_host(host)
    if not 1 <= days <= LEAF_VALIDITY_DAYS:
        raise TlsError(f"validity must be 1..{LEAF_VALIDITY_DAYS} days (phones refuse longer), got {days}")
    start = (now or _now()) - _CLOCK_SKEW
    end = start + _CLOCK_SKEW + dt.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{LOCAL_CA_NAME} for {host}"[:64]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Headshot kiosk"),
        ]
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        # RFC 5280 4.2.1.10: the CA may only vouch for this host.
        .add_extension(
            x509.NameConstraints(permitted_subtrees=[_permitted_subtree(host)], excluded_subtrees=None),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = server_leaf(
        hosts=[host],
        public_key=leaf_key.public_key(),
        issuer=ca_name,
        sign_key=ca_key,
        not_before=start,
        not_after=end,
        issuer_key_id=ca_ski,
    )
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    return TlsBundle(
        chain_pem=leaf.public_bytes(serialization.Encoding.PEM) + ca_pem,
        key_pem=_key_pem(leaf_key),
        hosts=(host,),
        not_after=end,
        ca_pem=ca_pem,
    )


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    # Unencrypted on purpose: the service reads it unattended at boot. File mode 0600 protects it.
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def certificate_hosts(chain_pem: bytes) -> tuple[str, ...]:
    """Host names (SAN DNS names, then IPs) of the first certificate in ``chain_pem``."""
    return leaf_hosts(_load_chain(chain_pem)[0])


def _load_chain(chain_pem: bytes) -> list[x509.Certificate]:
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
    except ValueError:
        raise TlsError(
            "the certificate file holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        ) from None
    return chain


def _spki(key: object) -> bytes:
    public = key.public_key()  # type: ignore[attr-defined]
    return bytes(
        public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def import_certificate(chain_pem: bytes, key_pem: bytes, *, now: dt.datetime | None = None) -> TlsBundle:
    """Check a certificate chain and its key before installing them.

    Refuses (TlsError, naming the fix): no certificate or key in the files, an encrypted key, an
    unsupported or weak key, a key that belongs to another certificate, a leaf not valid now (expired or
    not yet valid), no subjectAltName, no serverAuth usage, a chain out of order.
    """
    chain = _load_chain(chain_pem)
    leaf = chain[0]
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise TlsError(
            "the private key is encrypted; the kiosk must read it unattended, so decrypt it first "
            "(openssl pkey -in KEY -out KEY.plain) and keep that file mode 0600"
        ) from None
    except ValueError:
        raise TlsError("the key file holds no PEM private key (-----BEGIN PRIVATE KEY-----)") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < _MIN_RSA_BITS:
            raise TlsError(f"RSA key of {key.key_size} bits is too weak; phones need >= {_MIN_RSA_BITS}")
    elif not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TlsError(f"unsupported key type {type(key).__name__}; use an ECDSA P-256 or RSA >= 2048 key")
    if _spki(key) != _spki(leaf):
        raise TlsError(
            "the private key does not match the certificate (their public keys differ); "
            "pass the key that was used for this certificate's signing request"
        )
    moment = now or _now()
    if moment > leaf.not_valid_after_utc:
        raise TlsError(f"the certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; renew it")
    if moment < leaf.not_valid_before_utc:
        raise TlsError(
            f"the certificate is not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC; "
            "check the kiosk's clock (doctor: clock check) or wait"
        )
    hosts = leaf_hosts(leaf)
    if not hosts:
        raise TlsError(
            "the certificate has no subjectAltName; browsers ignore the CN, so phones would refuse it"
        )
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    if eku is not None and ExtendedKeyUsageOID.SERVER_AUTH not in eku:
        raise TlsError("the certificate is not for TLS servers (no serverAuth extended key usage)")
    for child, parent in itertools.pairwise(chain):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature):
            raise TlsError(
                "the certificate file's chain is out of order or incomplete: each certificate must be "
                "followed by the one that issued it (leaf first)"
            ) from None
    # Re-serialise: whatever text surrounded the PEM blocks in the input is not installed.
    clean = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    return TlsBundle(chain_pem=clean, key_pem=key_pem, hosts=hosts, not_after=leaf.not_valid_after_utc)


def inspect_certificate(chain_pem: bytes, *, now: dt.datetime | None = None) -> CertificateInfo:
    """Validity and names of the installed leaf (for ``doctor``)."""
    leaf = _load_chain(chain_pem)[0]
    moment = now or _now()
    issuer_cn = leaf.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    issuer = str(issuer_cn[0].value) if issuer_cn else leaf.issuer.rfc4514_string()
    return CertificateInfo(
        hosts=leaf_hosts(leaf),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        days_left=(leaf.not_valid_after_utc - moment).days,
        issuer=issuer,
        local_ca=issuer.startswith(LOCAL_CA_NAME),
    )


def key_matches(chain_pem: bytes, key_pem: bytes) -> bool:
    """True when ``key_pem`` is the private key of the first certificate in ``chain_pem``."""
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (TypeError, ValueError):
        return False
    return _spki(key) == _spki(_load_chain(chain_pem)[0])


def install(root: Path, bundle: TlsBundle, runner: Runner) -> list[Path]:
    """Write the bundle under ``root``; the key 0600 owned by the service user (``chown`` via the runner).

    Returns the written paths (as under ``root``). An existing local CA file is removed when an imported
    certificate replaces it, so ``doctor`` does not report a CA that no longer applies.
    """
    cert_path, key_path, ca_path = (host_path(root, p) for p in (TLS_CERT, TLS_KEY, TLS_CA))
    key_path.parent.mkdir(parents=True, exist_ok=True)  # all three live in TLS_DIR
    # Key first and owner-only from the first byte (write_atomic sets the mode before writing).
    write_atomic(key_path, bundle.key_pem, mode=0o600)
    write_atomic(cert_path, bundle.chain_pem, mode=0o644)
    written = [key_path, cert_path]
    if bundle.ca_pem is not None:
        write_atomic(ca_path, bundle.ca_pem, mode=0o644)
        written.append(ca_path)
    elif ca_path.exists():
        ca_path.unlink()
    runner.run(["chown", f"{SERVICE_USER}:{SERVICE_GROUP}", str(key_path)])
    return written


def print_summary(bundle: TlsBundle, written: Sequence[Path], out: TextIO) -> None:
    """What was installed and how the config uses it (no key material is printed)."""
    for path in written:
        print(f"  wrote {path}", file=out)
    print(f"certificate for {', '.join(bundle.hosts)}, valid until {bundle.not_after:%Y-%m-%d} UTC", file=out)
    print(
        "The delivery listener uses it with these lines in /etc/headshot-kiosk/kiosk.toml "
        "(a fresh `apply` writes them itself):\n"
        f'  [delivery]\n  host = "0.0.0.0"\n  public_host = "{bundle.hosts[0]}"\n'
        f'  tls_cert_path = "{TLS_CERT}"\n  tls_key_path = "{TLS_KEY}"\n'
        "and the staff console, for staff phones on the same network (TLS only):\n"
        f'  [staff]\n  host = "0.0.0.0"\n  tls_cert_path = "{TLS_CERT}"\n  tls_key_path = "{TLS_KEY}"',
        file=out,
    )
