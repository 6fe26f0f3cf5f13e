"""The hotspot's DNS, for real: dnsmasq runs the file ``hotspot`` installs (on loopback, a free port) and
answers the kiosk's host name and the phones' connectivity-check hosts with the kiosk's address, gives IPv6
and HTTPS-record queries for them a quick empty answer, and refuses everything else (no upstream)."""

from __future__ import annotations

import grp
import io
import os
import pwd
import re
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
from pebble_helpers import free_port

from provisioning.hotspot import CONNECTIVITY_CHECK_HOSTS, HotspotSettings, hotspot
from provisioning.runner import Runner

DNSMASQ = shutil.which("dnsmasq") or ("/usr/sbin/dnsmasq" if os.path.exists("/usr/sbin/dnsmasq") else None)
DIG = shutil.which("dig")
pytestmark = pytest.mark.skipif(
    DNSMASQ is None or DIG is None,
    reason="needs dnsmasq (Debian dnsmasq-base) and dig (bind9-dnsutils): `make system-deps` installs them",
)

HOST = "kiosk-7f3a.events.example.com"
SETTINGS = HotspotSettings(ssid="Headshot kiosk", host_name=HOST, country="DE", address="10.42.0.1/24")


def _dig(port: int, name: str, rtype: str = "A") -> tuple[str, list[str]]:
    """(rcode, answer data) for one query to 127.0.0.1:port."""
    assert DIG is not None
    done = subprocess.run(
        [DIG, "+time=2", "+tries=1", "-p", str(port), "@127.0.0.1", name, rtype],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    status = re.search(r"status: (\w+)", done.stdout)
    answers = re.findall(rf"^\S+\s+\d+\s+IN\s+{rtype}\s+(\S+)$", done.stdout, re.MULTILINE)
    return (status.group(1) if status else f"no answer ({done.stdout.strip()[-80:]})"), answers


@pytest.fixture(scope="module")
def dns_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """dnsmasq with the installed config, moved to loopback: only the interface and the lease file differ
    (the DHCP server moves to free high ports, so nothing privileged is bound)."""
    tmp_path = tmp_path_factory.mktemp("dnsmasq")
    root = tmp_path / "root"
    hotspot(root, SETTINGS, Runner(execute=False), io.StringIO())
    installed = (root / "etc/dnsmasq.d/headshot-kiosk.conf").read_text(encoding="utf-8")
    leases = tmp_path / "leases"
    local = installed.replace("interface=wlan0\n", "interface=lo\n").replace(
        "dhcp-leasefile=/run/dnsmasq-headshot-kiosk.leases\n", f"dhcp-leasefile={leases}\n"
    )
    changed = set(local.splitlines()) ^ set(installed.splitlines())
    assert len(changed) == 4, changed  # two lines out, two in: the rest is exactly what is installed
    conf = tmp_path / "dnsmasq.conf"
    conf.write_text(local, encoding="utf-8")
    port = free_port()
    assert DNSMASQ is not None
    errors = tmp_path / "dnsmasq.stderr"
    with errors.open("wb") as stderr:
        process = subprocess.Popen(
            [
                DNSMASQ,
                "--keep-in-foreground",
                f"--conf-file={conf}",
                f"--port={port}",
                f"--dhcp-alternate-port={free_port()},{free_port()}",
                "--pid-file=",
                f"--log-facility={tmp_path / 'dnsmasq.log'}",
                # Stay who we are (as root it would become nobody, who cannot write the lease file here).
                f"--user={pwd.getpwuid(os.getuid()).pw_name}",
                f"--group={grp.getgrgid(os.getgid()).gr_name}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 15
        while _dig(port, HOST)[0] != "NOERROR":
            if process.poll() is not None:
                pytest.fail(f"dnsmasq exited: {errors.read_text(encoding='utf-8', errors='replace')}")
            if time.monotonic() > deadline:
                pytest.fail("dnsmasq did not answer within 15 s")
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def test_the_kiosk_name_resolves_to_the_kiosk(dns_port: int) -> None:
    assert _dig(dns_port, HOST) == ("NOERROR", ["10.42.0.1"])
    # No IPv6 address and no HTTPS record, answered at once (not refused): phones go on over IPv4.
    assert _dig(dns_port, HOST, "AAAA") == ("NOERROR", [])
    assert _dig(dns_port, HOST, "HTTPS")[0] == "NOERROR"


@pytest.mark.parametrize("check_host", CONNECTIVITY_CHECK_HOSTS)
def test_connectivity_checks_resolve_to_the_kiosk(dns_port: int, check_host: str) -> None:
    assert _dig(dns_port, check_host) == ("NOERROR", ["10.42.0.1"])


def test_other_names_get_no_answer(dns_port: int) -> None:
    for name in ("example.org", "www.apple.com", "events.example.com"):
        assert _dig(dns_port, name) == ("REFUSED", []), name
