"""A renewed certificate is served without a restart (kiosk_ui.serve.Listener watches its TLS files):
`provisioning cert renew` replaces the files while a visit may be running, and a restart would end it."""

from __future__ import annotations

import os
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cheroot.ssl.builtin import BuiltinSSLAdapter

from kiosk_ui.serve import Listener, ephemeral_certificate, harden_tls
from tests.support import free_port


def _hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def _install(directory: Path, pair: tuple[bytes, bytes]) -> None:
    """Write the pair the way certbot does: new files, then a rename over the old names."""
    for name, data in (("cert.pem", pair[0]), ("key.pem", pair[1])):
        tmp = directory / f".{name}.new"
        tmp.write_bytes(data)
        os.replace(tmp, directory / name)


def _served_certificate(port: int) -> bytes:
    client = ssl.create_default_context()
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        client.wrap_socket(raw, server_hostname="kiosk.test") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return ssl.DER_cert_to_PEM_cert(der).encode()


def _same(a_pem: bytes, b_pem: bytes) -> bool:
    return ssl.PEM_cert_to_DER_cert(a_pem.decode()) == ssl.PEM_cert_to_DER_cert(b_pem.decode())


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Listener, Path, bytes]]:
    first = ephemeral_certificate(["kiosk.test"])
    _install(tmp_path, first)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    adapter = BuiltinSSLAdapter(str(cert), str(key))
    harden_tls(adapter.context)
    listener = Listener(
        "delivery", _hello, "127.0.0.1", free_port(), threads=2, ssl_adapter=adapter, tls_paths=(cert, key)
    )
    listener.cert_watch_seconds = 0.1
    listener.start()
    try:
        yield listener, tmp_path, first[0]
    finally:
        listener.stop()


def test_a_renewal_is_served_from_the_next_check(served: tuple[Listener, Path, bytes]) -> None:
    listener, directory, first = served
    assert _same(_served_certificate(listener.port), first)
    renewed = ephemeral_certificate(["kiosk.test"])
    _install(directory, renewed)
    deadline = time.monotonic() + 5
    while not _same(_served_certificate(listener.port), renewed[0]):
        assert time.monotonic() < deadline, "the renewed certificate was not served within 5 s"
        time.sleep(0.1)
    assert _same(listener.cert_pem or b"", renewed[0])


def test_a_broken_renewal_keeps_the_working_certificate(served: tuple[Listener, Path, bytes]) -> None:
    listener, directory, first = served
    listener.cert_watch_seconds = 3600  # checks by hand below (the watcher is already waiting; harmless)
    other = ephemeral_certificate(["kiosk.test"])
    _install(directory, (other[0], ephemeral_certificate(["kiosk.test"])[1]))  # key of another pair
    assert listener.reload_certificate_if_changed() is False
    assert _same(_served_certificate(listener.port), first)
    (directory / "cert.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\ntruncat")  # caught half written
    assert listener.reload_certificate_if_changed() is False
    assert _same(_served_certificate(listener.port), first)
    _install(directory, other)
    assert listener.reload_certificate_if_changed() is True
    assert _same(_served_certificate(listener.port), other[0])
    assert listener.reload_certificate_if_changed() is False  # unchanged files: nothing to do
