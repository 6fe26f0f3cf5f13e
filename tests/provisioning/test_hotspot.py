"""hotspot: WPA2/WPA3 transition, generated passphrase kept across runs, 0600 secrets, QR text."""

from __future__ import annotations

import io
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from provisioning import ProvisioningError
from provisioning.cli import main
from provisioning.hotspot import HotspotSettings, generate_passphrase, hotspot, wifi_qr_payload
from provisioning.runner import Runner

SETTINGS = HotspotSettings(ssid="Headshot kiosk", host_name="kiosk.lan", country="DE")


def test_passphrase_is_generated_once_and_kept(tmp_path: Path) -> None:
    runner = Runner(execute=False)
    assert hotspot(tmp_path, SETTINGS, runner, io.StringIO())
    secret = tmp_path / "etc/headshot-kiosk/wifi-passphrase"
    passphrase = secret.read_text(encoding="utf-8").strip()
    assert len(passphrase) == 20
    for name in (
        "etc/headshot-kiosk/wifi-passphrase",
        "etc/headshot-kiosk/wifi.qr",
        "etc/hostapd/headshot-kiosk.conf",
    ):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    hostapd = (tmp_path / "etc/hostapd/headshot-kiosk.conf").read_text(encoding="utf-8")
    assert "wpa_key_mgmt=WPA-PSK SAE" in hostapd and f"wpa_passphrase={passphrase}" in hostapd
    assert ("systemctl", "restart", "hostapd@headshot-kiosk.service") in runner.commands
    again = Runner(execute=False)
    out = io.StringIO()
    assert not hotspot(tmp_path, SETTINGS, again, out)
    assert again.commands == [] and secret.read_text(encoding="utf-8").strip() == passphrase
    assert passphrase not in out.getvalue()


def test_rotate_makes_a_new_passphrase(tmp_path: Path) -> None:
    hotspot(tmp_path, SETTINGS, Runner(execute=False), io.StringIO())
    secret = tmp_path / "etc/headshot-kiosk/wifi-passphrase"
    first = secret.read_text(encoding="utf-8")
    hotspot(tmp_path, SETTINGS, Runner(execute=False), io.StringIO(), rotate=True)
    assert secret.read_text(encoding="utf-8") != first


def test_dns_answers_the_kiosk_name_with_its_address(tmp_path: Path) -> None:
    hotspot(tmp_path, SETTINGS, Runner(execute=False), io.StringIO())
    dnsmasq = (tmp_path / "etc/dnsmasq.d/headshot-kiosk.conf").read_text(encoding="utf-8")
    assert "address=/kiosk.lan/10.42.0.1" in dnsmasq and "no-resolv" in dnsmasq
    assert "log-queries" not in dnsmasq


def test_wifi_qr_payload_escapes_special_characters() -> None:
    assert wifi_qr_payload('a;b,c:"d\\', "pass") == 'WIFI:T:WPA;S:a\\;b\\,c\\:\\"d\\\\;P:pass;;'
    assert set(generate_passphrase()) <= set("23456789abcdefghjkmnpqrstuvwxyz")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ssid": ""},
        {"ssid": "x" * 33},
        {"country": "germany"},
        {"address": "8.8.8.1/24"},
        {"host_name": "a b"},
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, str]) -> None:
    values = {"ssid": "ok", "host_name": "kiosk.lan", **kwargs}
    with pytest.raises(ProvisioningError):
        HotspotSettings(**values)  # type: ignore[arg-type]


def test_cli_hotspot_into_a_staging_root(tmp_path: Path) -> None:
    out = io.StringIO()
    assert main(["hotspot", "--root", str(tmp_path), "--ssid", "Kiosk", "--host", "kiosk.lan"], out=out) == 0
    assert "would run: systemctl enable hostapd@headshot-kiosk.service" in out.getvalue()


def test_connectivity_checks_reach_the_kiosks_answering_port(tmp_path: Path) -> None:
    runner = Runner(execute=False)
    hotspot(tmp_path, SETTINGS, runner, io.StringIO())
    rules = (tmp_path / "etc/headshot-kiosk/connectivity-checks.nft").read_text(encoding="utf-8")
    # Port 80 to the kiosk's own address on the access point only; nothing else is touched.
    assert 'iifname "wlan0" ip daddr 10.42.0.1 tcp dport 80 redirect to :8080' in rules
    assert rules.count("redirect") == 1 and "table ip headshot_kiosk_checks" in rules
    unit = (tmp_path / "etc/systemd/system/headshot-kiosk-connectivity-checks.service").read_text()
    assert "ExecStart=/usr/sbin/nft -f /etc/headshot-kiosk/connectivity-checks.nft" in unit
    assert ("systemctl", "enable", "headshot-kiosk-connectivity-checks.service") in runner.commands
    nft = shutil.which("nft") or ("/usr/sbin/nft" if Path("/usr/sbin/nft").exists() else None)
    if nft is None:
        pytest.skip("nft is not installed (apt-get install nftables): the rules' syntax was not checked")
    # -c: parsed and checked by the kernel's nf_tables in a transaction that is then dropped.
    checked = subprocess.run(
        [nft, "-c", "-f", str(tmp_path / "etc/headshot-kiosk/connectivity-checks.nft")],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    if checked.returncode != 0 and "Operation not permitted" in checked.stderr:
        pytest.skip("nft -c needs CAP_NET_ADMIN")
    assert checked.returncode == 0, checked.stderr
