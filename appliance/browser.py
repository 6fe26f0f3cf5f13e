"""How the kiosk's own Chromium is started: one list of flags for the browser unit on the device
(``provisioning.render.render_browser_unit``) and for the tests that drive a real Chromium the way the kiosk
does (issue 11: the tests must see what the kiosk's browser sees, so they cannot use flags of their own).

The flags keep nothing and talk to nobody: no disk cache, no first-run or crash reporting, no background
networking, no translation or sync, no "restore pages?" bubble, no swipe-back into a previous guest's page.
"""

from __future__ import annotations

# Shared by the device and the tests, in this order (the unit's golden file pins it).
PRIVATE_FLAGS: tuple[str, ...] = (
    "--disk-cache-size=1",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-breakpad",
    "--disable-crash-reporter",
    "--disable-sync",
    "--disable-translate",
    "--disable-features=Translate,MediaRouter,OptimizationHints",
    "--noerrdialogs",
    "--disable-session-crashed-bubble",
    "--password-store=basic",
    "--overscroll-history-navigation=0",
)


def device_flags(profile_dir: str) -> list[str]:
    """The kiosk browser on the device: full screen, off the record, its profile in ``profile_dir`` (a
    RAM directory removed at every stop), drawn by the Wayland kiosk compositor."""
    return [
        "--kiosk",
        "--incognito",
        f"--user-data-dir={profile_dir}",
        *PRIVATE_FLAGS,
        "--ozone-platform=wayland",
    ]


def headless_flags() -> list[str]:
    """The same browser for tests and the audit: headless, no GPU, no sandbox (CI runs as root, and there
    the browser is a test client, not the kiosk's own), no QUIC. The profile directory is the caller's
    (Playwright's ``user_data_dir``), so a test can scan what the browser left in it."""
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", *PRIVATE_FLAGS]
