"""``hotspot``: a kiosk-owned Wi-Fi network (hostapd + dnsmasq) so phones reach the kiosk without the venue's
network, and resolve the kiosk's host name locally.

WPA2/WPA3 transition mode (``wpa_key_mgmt=WPA-PSK SAE``): WPA3 phones use SAE, older ones WPA2-PSK, with the
same generated passphrase. Clients are isolated from each other (``ap_isolate``), DNS answers only the
kiosk's name, and dnsmasq logs no queries or leases (phone names and MAC addresses are personal data). The
passphrase is generated once and kept (``--rotate`` makes a new one); the UI reads ``wifi.qr`` to show a
``WIFI:`` QR code before the delivery QR.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TextIO

from provisioning import ProvisioningError
from provisioning.apply import FileSpec, chown_commands, package_commands, write_specs
from provisioning.configfile import CONFIG_DIR, CONNECTIVITY_CHECK_PORT
from provisioning.runner import Runner
from provisioning.target import SERVICE_GROUP, SERVICE_USER, host_path, is_live_root

__all__ = [
    "CONNECTIVITY_CHECK_HOSTS",
    "HotspotSettings",
    "generate_passphrase",
    "hotspot",
    "hotspot_specs",
    "render_checks_nft",
    "render_checks_unit",
    "render_dnsmasq",
    "render_hostapd",
    "wifi_qr_payload",
]

HOSTAPD_PATH = PurePosixPath("/etc/hostapd/headshot-kiosk.conf")
DNSMASQ_PATH = PurePosixPath("/etc/dnsmasq.d/headshot-kiosk.conf")
NETWORKD_PATH = PurePosixPath("/etc/systemd/network/50-headshot-kiosk-ap.network")
NM_PATH = PurePosixPath("/etc/NetworkManager/conf.d/50-headshot-kiosk-ap.conf")
CHECKS_NFT_PATH = CONFIG_DIR / "connectivity-checks.nft"
CHECKS_UNIT = "headshot-kiosk-connectivity-checks.service"
CHECKS_UNIT_PATH = PurePosixPath("/etc/systemd/system") / CHECKS_UNIT

PASSPHRASE_PATH = CONFIG_DIR / "wifi-passphrase"
QR_PATH = CONFIG_DIR / "wifi.qr"
# Debian/Ubuntu hostapd ships hostapd@.service, which reads /etc/hostapd/%i.conf.
HOSTAPD_UNIT = "hostapd@headshot-kiosk.service"
# JetPack 6 has only dnsmasq-base (NetworkManager's private copy, no dnsmasq.service) and no hostapd.
HOTSPOT_PACKAGES = ("hostapd", "dnsmasq", "nftables")

# Host names phones fetch right after joining a Wi-Fi to decide whether it "has internet"; a network that
# fails the check is left again or flagged (Android), or shown as a captive portal (iOS, Windows), and the
# delivery link then fails. dnsmasq answers them with the kiosk's address, and the kiosk answers the
# checks itself over HTTP. Android: AOSP NetworkMonitor's HTTP probe and its fallbacks (gstatic, google,
# googleapis; clients3 and connectivitycheck.android.com on older releases); Apple: captive.apple.com
# (hotspot-detect.html); Windows NCSI: msftconnecttest.com (msftncsi.com before Windows 10); Firefox.
CONNECTIVITY_CHECK_HOSTS = (
    "connectivitycheck.gstatic.com",
    "www.google.com",
    "play.googleapis.com",
    "clients3.google.com",
    "connectivitycheck.android.com",
    "captive.apple.com",
    "www.msftconnecttest.com",
    "www.msftncsi.com",
    "detectportal.firefox.com",
)

# No 0/o, 1/l/i: the passphrase is read off a screen and typed on phones that cannot scan.
_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
_PASSPHRASE_CHARS = 20  # 20 * log2(31) = 99 bits
_HEADER = "# Rendered by `python -m provisioning hotspot`; local edits are replaced on the next run.\n"


@dataclass(frozen=True)
class HotspotSettings:
    """The access point. ``address`` is the kiosk's address on it (``10.42.0.1/24``); ``host_name`` the
    name phones resolve to it (the kiosk's ``delivery.public_host``)."""

    ssid: str
    host_name: str
    interface: str = "wlan0"
    country: str = "US"
    channel: int = 6
    address: str = "10.42.0.1/24"
    # The kiosk's `[delivery] connectivity_check_port`, where the access point's port 80 goes.
    checks_port: int = CONNECTIVITY_CHECK_PORT

    def __post_init__(self) -> None:
        raw = self.ssid.encode("utf-8")
        if not 1 <= len(raw) <= 32 or any(c in self.ssid for c in "\n\r\0"):
            raise ProvisioningError(
                f"SSID must be 1-32 bytes of UTF-8 without line breaks, got {self.ssid!r}"
            )
        if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,15}", self.interface):
            raise ProvisioningError(f"bad network interface name {self.interface!r}")
        if not re.fullmatch(r"[A-Z]{2}", self.country):
            raise ProvisioningError(
                f"country must be an ISO 3166-1 alpha-2 code such as DE, got {self.country!r}"
            )
        if not 1 <= self.checks_port <= 65535:
            raise ProvisioningError(f"connectivity-check port must be 1..65535, got {self.checks_port}")
        if not 1 <= self.channel <= 13:
            raise ProvisioningError(f"2.4 GHz channel must be 1..13, got {self.channel}")
        if not re.fullmatch(
            r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+", self.host_name
        ):
            raise ProvisioningError(f"host name must be a DNS name such as kiosk.lan, got {self.host_name!r}")
        interface = ipaddress.ip_interface(self.address)
        if interface.version != 4 or not interface.network.is_private or interface.network.prefixlen > 28:
            raise ProvisioningError(
                f"address must be a private IPv4 /8../28 such as 10.42.0.1/24, got {self.address}"
            )

    @property
    def ip(self) -> str:
        """The kiosk's address on the access point network."""
        return str(ipaddress.ip_interface(self.address).ip)


def generate_passphrase() -> str:
    """A random WPA passphrase (20 characters, ~99 bits, unambiguous letters and digits)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(_PASSPHRASE_CHARS))


def _qr_escape(text: str) -> str:
    # The WIFI: URI scheme (ZXing, adopted by Android and iOS cameras) escapes \ ; , : and " with a backslash.
    return re.sub(r'([\\;,:"])', r"\\\1", text)


def wifi_qr_payload(ssid: str, passphrase: str) -> str:
    """The ``WIFI:`` text a phone camera turns into "join this network"."""
    return f"WIFI:T:WPA;S:{_qr_escape(ssid)};P:{_qr_escape(passphrase)};;"


def render_hostapd(settings: HotspotSettings, passphrase: str) -> str:
    """hostapd.conf for a WPA2/WPA3-SAE transition-mode access point."""
    if not 8 <= len(passphrase) <= 63 or not passphrase.isascii():
        raise ProvisioningError("a WPA passphrase is 8-63 ASCII characters")
    return (
        _HEADER
        + f"interface={settings.interface}\n"
        + "driver=nl80211\n"
        + f'ssid2=P"{_printf_escape(settings.ssid)}"\n'
        + "utf8_ssid=1\n"
        + f"country_code={settings.country}\n"
        + "ieee80211d=1\n"
        + "hw_mode=g\n"
        + f"channel={settings.channel}\n"
        + "ieee80211n=1\n"
        + "wmm_enabled=1\n"
        + "auth_algs=1\n"
        + "wpa=2\n"
        # Transition mode: WPA3 (SAE) for phones that have it, WPA2-PSK for the rest, one passphrase.
        + "wpa_key_mgmt=WPA-PSK SAE\n"
        + "rsn_pairwise=CCMP\n"
        + f"wpa_passphrase={passphrase}\n"
        # SAE needs protected management frames; optional (1) keeps WPA2-only phones working.
        + "ieee80211w=1\n"
        + "sae_require_mfp=1\n"
        # Hunting-and-pecking and hash-to-element both allowed (WPA3 R3 phones prefer H2E).
        + "sae_pwe=2\n"
        # Guests' phones cannot reach each other, only the kiosk.
        + "ap_isolate=1\n"
        + "max_num_sta=32\n"
    )


def _printf_escape(text: str) -> str:
    # hostapd's ssid2=P"..." takes printf-style escapes, so any UTF-8 SSID is written safely.
    return text.replace("\\", "\\\\").replace('"', '\\"')


def render_dnsmasq(settings: HotspotSettings) -> str:
    """dnsmasq: DHCP on the access point and DNS that answers the kiosk's name and the phones' connectivity
    checks (:data:`CONNECTIVITY_CHECK_HOSTS`) with the kiosk's address, and nothing else.

    The kiosk's name is public (its certificate is publicly trusted), but it is answered here only: at an
    event the kiosk's DNS is the only DNS, and the name needs no public address record at all.
    """
    network = ipaddress.ip_interface(settings.address).network
    hosts = list(network.hosts())
    first, last = hosts[min(9, len(hosts) - 2)], hosts[-1]
    return (
        _HEADER
        + f"interface={settings.interface}\n"
        # bind-dynamic, not bind-interfaces: with bind-interfaces dnsmasq exits at start when the interface
        # has no address yet (hostapd/networkd still bringing it up); bind-dynamic binds when the address
        # appears and still answers on this interface only (dnsmasq(8)).
        + "bind-dynamic\n"
        # No upstream: the kiosk's network leads nowhere but the kiosk.
        + "no-resolv\n"
        + "no-hosts\n"
        + "domain-needed\n"
        + "bogus-priv\n"
        + "".join(_answer(host, settings.ip) for host in (settings.host_name, *CONNECTIVITY_CHECK_HOSTS))
        + f"dhcp-range={first},{last},{network.netmask},2h\n"
        + f"dhcp-option=option:router,{settings.ip}\n"
        + f"dhcp-option=option:dns-server,{settings.ip}\n"
        + "dhcp-authoritative\n"
        # Leases and queries carry phone names and MAC addresses: keep them out of the journal.
        + "quiet-dhcp\n"
        + "quiet-dhcp6\n"
        + "quiet-ra\n"
        + "dhcp-leasefile=/run/dnsmasq-headshot-kiosk.leases\n"
    )


def _answer(host: str, ip: str) -> str:
    # address= answers A queries (for the name and its subdomains). Without an upstream, dnsmasq REFUSES
    # every other type for it (AAAA, HTTPS), and a phone may then retry or give up on the name; local=
    # makes the kiosk authoritative, so they get a quick empty NOERROR and the phone connects over IPv4.
    return f"address=/{host}/{ip}\nlocal=/{host}/\n"


def render_networkd(settings: HotspotSettings) -> str:
    """systemd.network(5): the access point interface's static address."""
    return (
        _HEADER
        + f"[Match]\nName={settings.interface}\n\n"
        # The access point has no uplink: with the default RequiredForOnline=yes,
        # systemd-networkd-wait-online would hold network-online.target (which the kiosk wants) for its
        # 120 s timeout (systemd.network(5), [Link] RequiredForOnline=).
        + "[Link]\nRequiredForOnline=no\n\n"
        + f"[Network]\nAddress={settings.address}\nConfigureWithoutCarrier=yes\n"
        + "LinkLocalAddressing=no\nIPv6AcceptRA=no\n"
    )


def render_networkmanager(settings: HotspotSettings) -> str:
    """NetworkManager.conf(5): leave the access point interface to hostapd (JetPack runs NetworkManager)."""
    return _HEADER + f"[keyfile]\nunmanaged-devices=interface-name:{settings.interface}\n"


def render_checks_nft(settings: HotspotSettings) -> str:
    """nft(8): phones' plain-HTTP connectivity checks arriving on the access point (port 80, sent to the
    kiosk's address by dnsmasq) go to the kiosk's answering port. Only on the access point interface, only
    to the kiosk's own address: nothing else is redirected, and the table is the kiosk's own."""
    rule = f"ip daddr {settings.ip} tcp dport 80 redirect to :{settings.checks_port}"
    return (
        _HEADER
        + "table ip headshot_kiosk_checks\n"
        + "delete table ip headshot_kiosk_checks\n"
        + "table ip headshot_kiosk_checks {\n"
        + "\tchain prerouting {\n"
        + "\t\ttype nat hook prerouting priority dstnat; policy accept;\n"
        + f'\t\tiifname "{settings.interface}" {rule}\n'
        + "\t}\n"
        + "}\n"
    )


def render_checks_unit() -> str:
    """The oneshot unit that loads :func:`render_checks_nft` at boot and removes the table when stopped."""
    return (
        _HEADER
        + "[Unit]\n"
        + "Description=Headshot kiosk: phones' connectivity checks to the kiosk's answering port\n"
        + "After=network-pre.target\nBefore=network.target\n\n"
        + "[Service]\nType=oneshot\nRemainAfterExit=yes\n"
        + f"ExecStart=/usr/sbin/nft -f {CHECKS_NFT_PATH}\n"
        + "ExecStop=/usr/sbin/nft delete table ip headshot_kiosk_checks\n\n"
        + "[Install]\nWantedBy=multi-user.target\n"
    )


def hotspot_specs(settings: HotspotSettings, passphrase: str) -> list[FileSpec]:
    """Every file ``hotspot`` installs. Files holding the passphrase are 0600."""
    qr = wifi_qr_payload(settings.ssid, passphrase)
    return [
        FileSpec(PASSPHRASE_PATH, (passphrase + "\n").encode(), 0o600, SERVICE_USER, SERVICE_GROUP),
        FileSpec(QR_PATH, (qr + "\n").encode(), 0o600, SERVICE_USER, SERVICE_GROUP),
        FileSpec(HOSTAPD_PATH, render_hostapd(settings, passphrase).encode(), 0o600, triggers=("hostapd",)),
        FileSpec(DNSMASQ_PATH, render_dnsmasq(settings).encode(), triggers=("dnsmasq",)),
        FileSpec(NETWORKD_PATH, render_networkd(settings).encode(), triggers=("networkd",)),
        FileSpec(NM_PATH, render_networkmanager(settings).encode(), triggers=("networkmanager",)),
        FileSpec(CHECKS_NFT_PATH, render_checks_nft(settings).encode(), triggers=("checks",)),
        FileSpec(CHECKS_UNIT_PATH, render_checks_unit().encode(), triggers=("checks",)),
    ]


def _existing_passphrase(root: Path) -> str | None:
    try:
        text = host_path(root, PASSPHRASE_PATH).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return text if 8 <= len(text) <= 63 and text.isascii() else None


def hotspot(
    root: Path, settings: HotspotSettings, runner: Runner, out: TextIO, *, rotate: bool = False
) -> bool:
    """Install the access point configuration under ``root``; returns True if anything changed.

    The passphrase is kept across runs unless ``rotate``. Services are (re)started only for files that
    changed, through ``runner``.
    """
    passphrase = None if rotate else _existing_passphrase(root)
    new = passphrase is None
    if passphrase is None:
        passphrase = generate_passphrase()
    live = runner.execute and is_live_root(root)
    # Installed first: the packages' own defaults must not start over our files (where the root has a dpkg
    # database; see provisioning.apply.package_commands).
    for command in package_commands(root, HOTSPOT_PACKAGES):
        runner.run(command)
    changes = write_specs(root, hotspot_specs(settings, passphrase), compare_owner=live, out=out)
    triggered = {t for c in changes if isinstance(c.spec, FileSpec) for t in c.spec.triggers}
    commands: list[tuple[str, ...]] = list(chown_commands(root, changes))
    if "networkmanager" in triggered:
        commands.append(("systemctl", "reload", "NetworkManager.service"))
    if "networkd" in triggered:
        commands += [("systemctl", "enable", "--now", "systemd-networkd.service"), ("networkctl", "reload")]
    if "hostapd" in triggered:
        commands += [("systemctl", "enable", HOSTAPD_UNIT), ("systemctl", "restart", HOSTAPD_UNIT)]
    if "dnsmasq" in triggered:
        commands.append(("systemctl", "restart", "dnsmasq.service"))
    if "checks" in triggered:
        commands += [("systemctl", "daemon-reload"), ("systemctl", "enable", CHECKS_UNIT)]
        commands.append(("systemctl", "restart", CHECKS_UNIT))
    for command in commands:
        # NetworkManager may be absent (networkd-only images); everything else must work.
        runner.run(command, check=command[:2] != ("systemctl", "reload"))
    if new:
        # The passphrase is not printed (scrollback, `| tee` logs); the kiosk shows it as a QR.
        print(
            f"Wi-Fi {settings.ssid!r}: new passphrase generated, stored in {PASSPHRASE_PATH} (mode 0600)",
            file=out,
        )
    print(f"phones on this network reach the kiosk as {settings.host_name} ({settings.ip})", file=out)
    return bool(changes or commands)
