"""The one way a server certificate for the kiosk is built (a leaf for its host names, never a CA), and the
one way its expiry is read.

Used by the delivery listener's self-signed fallback (``kiosk_ui.serve.ephemeral_certificate``), by
provisioning's local CA and ACME renewal (``provisioning.tls``, ``provisioning.acme``), by ``doctor`` and by
``/metrics`` (``kiosk_ui.metrics``), which all sit above ``appliance``.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Below this many days to a certificate's end, doctor, the staff dashboard and the setup checks warn (and
# the fleet's alert rule fires): renew while the kiosk is online.
RENEW_WARN_DAYS = 14


def san_entry(name: str) -> x509.GeneralName:
    """A subjectAltName entry: an IP address if ``name`` parses as one, else a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def server_leaf(
    *,
    hosts: Sequence[str],
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Name | None,
    sign_key: ec.EllipticCurvePrivateKey,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    issuer_key_id: x509.SubjectKeyIdentifier | None = None,
) -> x509.Certificate:
    """A TLS server certificate for ``hosts`` (the first is the CN, cut to 64 characters). Self-signed when
    ``issuer`` is None. BasicConstraints CA:FALSE (critical): whoever trusts it trusts nothing it signs
    (issue 20 found the fallback certificate was a CA). KeyUsage digitalSignature only (an ECDSA key signs the
    handshake; keyEncipherment is RSA key transport), ExtendedKeyUsage serverAuth. Browsers match the host
    against the SAN only (RFC 6125; Chrome ignores the CN)."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0][:64])])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if issuer is None else issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([san_entry(h) for h in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if issuer_key_id is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_key_id), critical=False
        )
    return builder.sign(sign_key, hashes.SHA256())


def leaf_hosts(leaf: x509.Certificate) -> tuple[str, ...]:
    """The subjectAltName host names of ``leaf``: DNS names as written, then IP addresses; empty when it
    has none. The one reader of a certificate's names (provisioning's checks, doctor, the staff console's
    Host allow-list)."""
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
    names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return tuple(names)


def certificate_dns_names(path: Path) -> frozenset[str]:
    """DNS names (lower case, no trailing dot) of the first certificate in the PEM file ``path``; empty
    when it cannot be read or holds none (a listener given such a file fails to start anyway)."""
    try:
        leaf = x509.load_pem_x509_certificates(path.read_bytes())[0]
    except (OSError, ValueError, IndexError):
        return frozenset()
    names = (name.lower().rstrip(".") for name in leaf_hosts(leaf))
    return frozenset(name for name in names if not is_ip_address(name))


def is_ip_address(name: str) -> bool:
    """True when ``name`` is an IPv4 or IPv6 address literal (not a host name)."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def certificate_not_after(chain_pem: bytes) -> datetime.datetime:
    """notAfter (UTC) of the first certificate in ``chain_pem``: the leaf, in the order the delivery
    listener's file holds it. Raises ValueError when there is no PEM certificate."""
    return x509.load_pem_x509_certificates(chain_pem)[0].not_valid_after_utc


def days_until_expiry(path: Path, *, now: datetime.datetime | None = None) -> float:
    """Days (fractional, negative once expired) until the leaf certificate in the PEM file ``path`` expires.

    Raises OSError when the file cannot be read and ValueError when it holds no PEM certificate.
    """
    not_after = certificate_not_after(path.read_bytes())
    moment = now if now is not None else datetime.datetime.now(datetime.timezone.utc)
    return (not_after - moment).total_seconds() / 86400.0
