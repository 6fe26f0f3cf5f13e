"""``python -m provisioning setup-sheet``: a printable page for the staff of an event.

One HTML file (A4, no scripts, no external resources; the QR codes are PNG data URIs, printed crisp) with:
the staff console's URL and its QR code (``provisioning.staffurl``: what a phone on the kiosk's network
opens), the kiosk hotspot's ``WIFI:`` QR code and network name when the kiosk runs one, the certificate's
names and end date, and the device checklist for the day. It is handed to staff on paper and never shown
on the guest screen.

It never holds a secret: no password, no TOTP secret, no recovery code, no key. The hotspot's join code is
the one the delivery screen shows every guest (the ``WIFI:`` text ``provisioning hotspot`` writes), so it is
not one; its passphrase is not printed as text.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from dataclasses import dataclass
from pathlib import Path

from appliance.config import KioskConfig
from engine.fileio import write_atomic
from provisioning.staffurl import StaffConsoleAddress, staff_console_address
from provisioning.target import host_path

__all__ = ["SetupSheet", "build_setup_sheet", "render_setup_sheet", "wifi_network_name", "write_setup_sheet"]

QR_SCALE = 10  # pixels per module: ~250 dpi at the printed 45 mm, sharp with image-rendering: pixelated
_WIFI_FIELD = re.compile(r"(?:^WIFI:|;)S:((?:\\.|[^;\\])*)")


@dataclass(frozen=True)
class SetupSheet:
    """What the sheet shows. ``wifi`` is the hotspot's ``WIFI:`` text (None: no hotspot)."""

    event: str
    kiosk_host: str
    console: StaffConsoleAddress
    wifi: str | None
    languages: tuple[str, ...]
    made: dt.datetime


def _wifi_payload(cfg: KioskConfig, root: Path) -> str | None:
    path = cfg.delivery.wifi_qr_path
    if path is None:
        return None
    try:
        text = host_path(root, str(path)).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if text.startswith("WIFI:") else None


def wifi_network_name(payload: str) -> str | None:
    """The SSID of a ``WIFI:`` text (its backslash escapes undone), or None."""
    found = _WIFI_FIELD.search(payload)
    return re.sub(r"\\(.)", r"\1", found.group(1)) if found else None


def build_setup_sheet(
    cfg: KioskConfig, *, root: Path = Path("/"), now: dt.datetime | None = None
) -> SetupSheet:
    """Collect the sheet's facts for the device under ``root``."""
    moment = now or dt.datetime.now(dt.timezone.utc)
    return SetupSheet(
        event=cfg.event.name,
        kiosk_host=cfg.delivery.public_host,
        console=staff_console_address(cfg, root=root, now=moment),
        wifi=_wifi_payload(cfg, root),
        languages=tuple(cfg.event.languages),
        made=moment,
    )


def _qr(text: str, label: str) -> str:
    import segno  # noqa: PLC0415 - only the sheet draws QR codes here

    uri = segno.make_qr(text, error="m").png_data_uri(scale=QR_SCALE, border=4)
    return f'<img class="qr" src="{uri}" alt="{html.escape(label)}">'


_STYLE = """
@page { size: A4; margin: 15mm; }
* { box-sizing: border-box; }
body { font: 11pt/1.45 system-ui, sans-serif; color: #111; margin: 0 auto; max-width: 180mm; }
h1 { font-size: 18pt; margin: 0 0 2mm; }
h2 { font-size: 13pt; margin: 0 0 2mm; }
.staff-only { border: 2px solid #111; padding: 2mm 4mm; font-weight: 700; }
section { border: 1px solid #999; border-radius: 2mm; padding: 4mm; margin: 4mm 0; break-inside: avoid; }
.pair { display: flex; gap: 6mm; align-items: flex-start; }
.qr { width: 45mm; height: 45mm; image-rendering: pixelated; flex: none; }
.url { font: 700 13pt/1.3 ui-monospace, monospace; overflow-wrap: anywhere; }
.warn { border-left: 4px solid #b3261e; padding-left: 3mm; }
ul.check { list-style: none; padding: 0; margin: 0; }
ul.check li { padding: 1mm 0 1mm 8mm; text-indent: -8mm; }
ul.check li::before { content: "\\2610"; display: inline-block; width: 8mm; text-indent: 0; }
code { font-family: ui-monospace, monospace; }
.small { font-size: 9pt; color: #444; }
"""


def _console_section(console: StaffConsoleAddress) -> str:
    url = html.escape(console.url)
    out = ["<section>", "<h2>Staff console</h2>"]
    if console.on_network:
        out += [
            '<div class="pair">',
            _qr(console.url, f"QR code of the staff console address {console.url}"),
            "<div>",
            f'<p class="url">{url}</p>',
            "<p>Open it on your phone (scan the code) after joining the kiosk's network. Sign in with your "
            "name, password and the code from your authenticator app. If the kiosk's clock is wrong, codes "
            "will not match: use one of your recovery codes instead (each works once).</p>",
            "</div>",
            "</div>",
        ]
    else:
        out.append(f'<p class="url">{url}</p>')
        out.append("<p>This address works on the kiosk itself only (or through an SSH tunnel).</p>")
    if console.problems:
        out.append('<div class="warn"><p><strong>Before the event:</strong></p><ul>')
        out += [f"<li>{html.escape(problem)}</li>" for problem in console.problems]
        out.append("</ul>")
        if console.fix:
            out.append(f"<p>Fix: {html.escape(console.fix)}</p>")
        out.append("</div>")
    if console.valid_until is not None:
        names = ", ".join(console.certificate_hosts)
        issuer = html.escape(console.issuer) + (" (a local CA: phones warn)" if console.local_ca else "")
        out.append(
            f'<p class="small">Certificate for {html.escape(names)}, issued by {issuer}, valid until '
            f"{console.valid_until:%Y-%m-%d} (UTC). The kiosk renews an ACME certificate when it is "
            "online.</p>"
        )
    out.append("</section>")
    return "\n".join(out)


def _wifi_section(wifi: str | None, kiosk_host: str) -> str:
    if wifi is None:
        return (
            "<section><h2>Network</h2><p>This kiosk runs no Wi-Fi of its own: staff phones join the venue's "
            f"network, where <code>{html.escape(kiosk_host)}</code> must resolve to the kiosk.</p></section>"
        )
    name = wifi_network_name(wifi) or "(see the kiosk's delivery screen)"
    return "\n".join(
        [
            "<section>",
            "<h2>The kiosk's Wi-Fi</h2>",
            '<div class="pair">',
            _qr(wifi, f"QR code to join the Wi-Fi network {name}"),
            "<div>",
            f"<p>Network: <strong>{html.escape(name)}</strong></p>",
            "<p>Scan to join (the same code guests see on the kiosk's delivery screen). Phones on this "
            f"network reach the kiosk as <code>{html.escape(kiosk_host)}</code>, without the internet.</p>",
            "</div>",
            "</div>",
            "</section>",
        ]
    )


_CHECKLIST = (
    "The kiosk is on power, its screen shows the start page, the camera faces the guest's spot.",
    "<code>sudo .venv/bin/python -m provisioning doctor</code> shows no FAIL (clock, certificate, store, "
    "swap).",
    "Your phone joins the network, opens the console address above without a certificate warning, and you "
    "can sign in.",
    "Dashboard → Camera check: framing, light, colour and focus (people show only as silhouettes).",
    "Event page (admins): event name, languages and delivery window; the dashboard: backgrounds and crops.",
    "Compliance page (admins): the privacy notice and the other documents reviewed, in every language the "
    "event offers.",
    "One test visit end to end: consent, photo, QR code, “Save photo” on a phone; then “Delete now” on a "
    "second visit.",
    "Recovery codes are kept apart from the phones; nobody shares an account.",
    "Guests never see this sheet or the console: keep it with the staff.",
    "At the end of the day: pause the kiosk on the dashboard and sign out.",
)


def render_setup_sheet(sheet: SetupSheet) -> str:
    """The sheet as one self-contained HTML document."""
    title = f"Setup sheet — {sheet.event}"
    checklist = "\n".join(f"<li>{item}</li>" for item in _CHECKLIST)
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(title)}</title>",
            f"<style>{_STYLE}</style>",
            "</head>",
            "<body>",
            f"<h1>Headshot kiosk · {html.escape(title)}</h1>",
            f"<p>Kiosk <code>{html.escape(sheet.kiosk_host)}</code>; guest languages: "
            f"{html.escape(', '.join(sheet.languages))}. Printed {sheet.made:%Y-%m-%d %H:%M} UTC.</p>",
            '<p class="staff-only">For staff only. Do not post or show it where guests can see it.</p>',
            _console_section(sheet.console),
            _wifi_section(sheet.wifi, sheet.kiosk_host),
            "<section>",
            "<h2>Checklist</h2>",
            f'<ul class="check">{checklist}</ul>',
            "</section>",
            '<p class="small">Made by <code>python -m provisioning setup-sheet</code>. It holds no password, '
            "authenticator secret, recovery code or key. Print a new one after changing the certificate, "
            "the console's address or the Wi-Fi (<code>hotspot --rotate</code>).</p>",
            "</body>",
            "</html>",
            "",
        ]
    )


def write_setup_sheet(
    cfg: KioskConfig, output: Path, *, root: Path = Path("/"), now: dt.datetime | None = None
) -> SetupSheet:
    """Build the sheet for the device under ``root`` and write it to ``output`` (atomically, mode 0644)."""
    sheet = build_setup_sheet(cfg, root=root, now=now)
    write_atomic(output, render_setup_sheet(sheet).encode("utf-8"), mode=0o644)
    return sheet
