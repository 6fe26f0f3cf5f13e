"""Debian's pebble (a miniature ACME CA) and pebble-challtestsrv (its DNS server for DNS-01) on free loopback
ports, for a real ACME flow without the internet.

Debian's package ships no test certificates (``+ds1``), so each run makes a throw-away CA and a
certificate for 127.0.0.1 for pebble's own HTTPS listener: that CA is the ``--ca-bundle`` the ACME client
trusts. The CA that *issues* the kiosk's certificate is pebble's own, regenerated at every start; its root
comes from pebble's management API (``/roots/0``), which is what a phone would trust.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance.tlscert import server_leaf

PEBBLE = shutil.which("pebble")
CHALLTESTSRV = shutil.which("pebble-challtestsrv")
MISSING = (
    None
    if PEBBLE and CHALLTESTSRV
    else "needs Debian's pebble (pebble, pebble-challtestsrv): `make system-deps` installs it as root"
)
START_TIMEOUT_SECONDS = 20.0


def free_port() -> int:
    """A TCP (and, for the DNS server, UDP) port free on 127.0.0.1 right now."""
    while True:
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


@dataclass(frozen=True)
class Pebble:
    """A running pebble + challtestsrv pair."""

    directory_url: str
    management_url: str
    ca_bundle: Path  # trust for pebble's HTTPS listeners (the ACME connection)
    dns_port: int
    challtestsrv_url: str
    hook_log: Path

    def issuing_root(self) -> bytes:
        """The root of the CA that issues certificates (what a phone would trust), from the management API."""
        context = ssl.create_default_context(cafile=str(self.ca_bundle))
        with urllib.request.urlopen(f"{self.management_url}/roots/0", context=context, timeout=10) as answer:
            return bytes(answer.read())

    def hook_calls(self) -> list[list[str]]:
        """Every call the DNS hook got: ``[action, fqdn, value]``."""
        if not self.hook_log.exists():
            return []
        return [json.loads(line) for line in self.hook_log.read_text(encoding="utf-8").splitlines()]


def _https_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate for 127.0.0.1/localhost signed by it: (ca.pem, server.pem, server.key)."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pebble test HTTPS CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = server_leaf(
        hosts=["127.0.0.1", "localhost"],
        public_key=key.public_key(),
        issuer=name,
        sign_key=ca_key,
        not_before=now - dt.timedelta(minutes=5),
        not_after=now + dt.timedelta(days=1),
        issuer_key_id=x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
    )
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


def write_hook(path: Path, challtestsrv_url: str, log: Path) -> Path:
    """An executable DNS hook (the contract of ``provisioning.acme``) that sets the TXT record in
    challtestsrv through its management API, and logs each call."""
    path.write_text(
        f"#!{sys.executable}\n"
        "import json, sys, urllib.request\n"
        "action, fqdn, value = sys.argv[1:4]\n"
        f"with open({str(log)!r}, 'a') as log:\n"
        "    log.write(json.dumps([action, fqdn, value]) + '\\n')\n"
        "if action == 'present':\n"
        "    path, body = '/set-txt', {'host': fqdn, 'value': value}\n"
        "elif action == 'cleanup':\n"
        "    path, body = '/clear-txt', {'host': fqdn}\n"
        "else:\n"
        "    sys.exit('unknown action ' + action)\n"
        f"request = urllib.request.Request({challtestsrv_url!r} + path, data=json.dumps(body).encode(), "
        "method='POST')\n"
        "urllib.request.urlopen(request, timeout=10).close()\n",
        encoding="utf-8",
    )
    path.chmod(0o700)
    return path


def _wait_until(probe: str, context: ssl.SSLContext | None, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(probe, context=context, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{probe} did not answer within {START_TIMEOUT_SECONDS:g} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


@contextmanager
def running_pebble(directory: Path) -> Iterator[Pebble]:
    """Start challtestsrv (DNS on a free port) and pebble (resolving through it), wait until both answer,
    and stop both (their process groups) afterwards."""
    assert PEBBLE and CHALLTESTSRV, MISSING
    ca, cert, key = _https_ca(directory)
    acme_port, management_port, dns_port, challtest_port = (free_port() for _ in range(4))
    config = directory / "pebble-config.json"
    config.write_text(
        json.dumps(
            {
                "pebble": {
                    "listenAddress": f"127.0.0.1:{acme_port}",
                    "managementListenAddress": f"127.0.0.1:{management_port}",
                    "certificate": str(cert),
                    "privateKey": str(key),
                    # HTTP-01 and TLS-ALPN-01 are not used; these ports are only ever dialled for them.
                    "httpPort": free_port(),
                    "tlsPort": free_port(),
                    "ocspResponderURL": "",
                    "externalAccountBindingRequired": False,
                }
            }
        ),
        encoding="utf-8",
    )
    # No artificial validation delay; no deliberately rejected nonces (the client retries a bad nonce once;
    # two in a row would make the test flaky, not the code wrong); no reuse of a valid authorization (by
    # default pebble reuses half of them at random, so a renewal would validate or not by chance; Let's
    # Encrypt keeps them 30 days, and a renewal comes 60 days after the order).
    env = {
        **os.environ,
        "PEBBLE_VA_NOSLEEP": "1",
        "PEBBLE_WFE_NONCEREJECT": "0",
        "PEBBLE_AUTHZREUSE": "0",
    }
    challtestsrv = subprocess.Popen(
        [
            CHALLTESTSRV,
            "-dns01",
            f"127.0.0.1:{dns_port}",
            "-management",
            f"127.0.0.1:{challtest_port}",
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    pebble: subprocess.Popen[bytes] | None = None
    try:
        # The management API answers any GET path with 404 once it listens: enough to know it is up.
        _wait_for_port(challtest_port, challtestsrv)
        pebble = subprocess.Popen(
            [PEBBLE, "-config", str(config), "-dnsserver", f"127.0.0.1:{dns_port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=directory,
            start_new_session=True,
        )
        directory_url = f"https://127.0.0.1:{acme_port}/dir"
        _wait_until(directory_url, ssl.create_default_context(cafile=str(ca)), pebble)
        yield Pebble(
            directory_url=directory_url,
            management_url=f"https://127.0.0.1:{management_port}",
            ca_bundle=ca,
            dns_port=dns_port,
            challtestsrv_url=f"http://127.0.0.1:{challtest_port}",
            hook_log=directory / "hook.log",
        )
    finally:
        if pebble is not None:
            _stop(pebble)
        _stop(challtestsrv)


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open within {START_TIMEOUT_SECONDS:g} s")
