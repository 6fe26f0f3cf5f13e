"""The staff console in the kiosk's four languages: its own gettext domain ("staff", apart from the guest's
"messages"), complete catalogs, the language chosen by Accept-Language or a switch and remembered, and the
host names the console answers to."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from appliance.accounts import Role
from appliance.config import KioskConfig
from appliance.kiosk import Kiosk
from kiosk_ui.serve import ephemeral_certificate
from kiosk_ui.staff import LANG_COOKIE, TLS_LANG_COOKIE, allowed_hosts
from tests.kiosk_ui.conftest import kiosk_config
from tests.kiosk_ui.staff_helpers import Staff, StaffActions, make_staff

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "kiosk_ui" / "translations"
# "%(name)s" placeholders, a literal "%%", and inline markup must survive translation unchanged.
PLACEHOLDER = re.compile(r"%\(\w+\)s|%%|</?\w+>")
DASHBOARD = {"en": "Dashboard", "fr": "Tableau de bord", "es": "Panel", "de": "Übersicht"}


def _extract(cfg: str, keywords: dict[str, object]) -> tuple[set[str], set[str]]:
    """(msgids, files) ``pybabel extract -F cfg`` finds in the checkout, in-process."""
    with (TRANSLATIONS / cfg).open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    ids: set[str] = set()
    files: set[str] = set()

    def seen(filename: str, method: str, options: dict[str, str]) -> None:
        if method != "ignore":
            files.add(filename)

    for _filename, _line, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=keywords, callback=seen
    ):
        ids.add(message if isinstance(message, str) else message[0])
    return ids, files


def _catalog_ids(path: Path) -> set[str]:
    with path.open("rb") as f:
        return {m.id for m in read_po(f) if m.id and isinstance(m.id, str)}


def test_the_guest_extraction_never_reads_a_staff_file() -> None:
    from babel.messages.extract import DEFAULT_KEYWORDS

    _, files = _extract("babel.cfg", dict(DEFAULT_KEYWORDS))
    assert "kiosk_ui/guest.py" in files and "kiosk_ui/templates/index.html" in files
    staff_files = {f for f in files if "staff" in f}
    assert staff_files == set(), f"the guest catalog would take staff strings from {sorted(staff_files)}"


def test_the_staff_template_is_up_to_date_with_the_sources() -> None:
    from babel.messages.extract import DEFAULT_KEYWORDS

    keywords = {**DEFAULT_KEYWORDS, "_s": None, "_sl": None}
    extracted, files = _extract("staff-babel.cfg", keywords)
    assert {"kiosk_ui/staff.py", "kiosk_ui/staff_auth.py", "kiosk_ui/templates/staff/base.html"} <= files
    assert extracted == _catalog_ids(TRANSLATIONS / "staff.pot"), (
        "staff.pot is stale: see kiosk_ui/translations/staff-babel.cfg for the commands"
    )


@pytest.mark.parametrize("lang", ["fr", "es", "de"])
def test_staff_catalogs_are_complete_and_compiled(lang: str) -> None:
    wanted = _catalog_ids(TRANSLATIONS / "staff.pot")
    with (TRANSLATIONS / lang / "LC_MESSAGES" / "staff.po").open("rb") as f:
        catalog = read_po(f)
    po = {m.id: m.string for m in catalog if m.id}
    with (TRANSLATIONS / lang / "LC_MESSAGES" / "staff.mo").open("rb") as f:
        mo = {m.id: m.string for m in read_mo(f) if m.id}
    assert set(po) == wanted, "staff.po is out of date with staff.pot"
    assert [k for k, v in po.items() if not v] == []
    assert [m.id for m in catalog if m.id and m.fuzzy] == []
    for msgid, text in po.items():
        assert sorted(PLACEHOLDER.findall(str(msgid))) == sorted(PLACEHOLDER.findall(str(text))), msgid
    assert mo == po, "staff.mo is stale: run pybabel compile -D staff -d kiosk_ui/translations"


# ------------------------------------------------------------------------------------------ the console


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    k = Kiosk(kiosk_config(tmp_path_factory.mktemp("staff-i18n")))
    k.start(wait_for_worker=False)
    yield k
    k.close()


@pytest.fixture
def staff(kiosk: Kiosk, tmp_path: Path) -> Staff:
    return make_staff(kiosk, tmp_path, alice=Role.ADMIN)


def _signed_in(staff: Staff, *, https: bool = False) -> StaffActions:
    browser = staff.client(https=https)
    assert browser.login("alice").status_code == 303
    return browser


@pytest.mark.parametrize("lang", sorted(DASHBOARD))
def test_every_console_page_speaks_the_chosen_language(staff: Staff, lang: str) -> None:
    browser = _signed_in(staff)
    pages = ["/staff/", "/staff/admin/event", "/staff/admin/accounts", "/staff/admin/audit"]
    pages += ["/staff/admin/compliance", "/staff/camera", "/staff/nowhere"]
    for path in pages:
        page = browser.get(f"{path}?lang={lang}").get_data(as_text=True)
        assert f'<html lang="{lang}">' in page, path
        assert DASHBOARD[lang] in page, path  # the navigation, in every page
    if lang != "en":  # nothing left in English on the dashboard but names, numbers and technical values
        page = browser.get(f"/staff/?lang={lang}").get_data(as_text=True)
        for english in ("Backgrounds and crop presets", "Abort current visit", "Since start", "Sign out"):
            assert english not in page


def test_accept_language_then_the_switch_is_remembered(staff: Staff) -> None:
    browser = staff.client()
    german = {"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}
    assert "Anmeldung für das Personal" in browser.get("/staff/login", headers=german).get_data(as_text=True)
    chosen = browser.get("/staff/login?lang=es", headers=german)
    assert "Inicio de sesión del personal" in chosen.get_data(as_text=True)
    (cookie,) = [c for c in chosen.headers.getlist("Set-Cookie") if c.startswith(LANG_COOKIE)]
    assert cookie.startswith(f"{LANG_COOKIE}=es;") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    # The next pages keep Spanish although the browser still prefers German, signed in or not.
    assert "Inicio de sesión" in browser.get("/staff/login", headers=german).get_data(as_text=True)
    assert browser.login("alice").status_code == 303
    assert DASHBOARD["es"] in browser.get("/staff/", headers=german).get_data(as_text=True)
    # Signing out clears every cookie of the console (Clear-Site-Data): the language goes along in the URL.
    signed_out = browser.logout()
    assert signed_out.headers["Location"].endswith("/staff/login?lang=es")
    assert browser.get("/staff/?lang=xx", headers=german).status_code == 303  # an unknown code is ignored


def test_over_tls_the_language_cookie_is_a_host_cookie(staff: Staff) -> None:
    browser = staff.client(https=True)
    cookies = browser.get("/staff/login?lang=fr").headers.getlist("Set-Cookie")
    (cookie,) = [c for c in cookies if c.startswith(TLS_LANG_COOKIE)]
    assert cookie.startswith(f"{TLS_LANG_COOKIE}=fr;") and "Secure" in cookie and "Path=/" in cookie
    assert "Domain" not in cookie


def test_sign_in_failures_read_alike_in_each_language(staff: Staff) -> None:
    browser = staff.client()
    browser.get("/staff/login?lang=de")
    failed = browser.login("alice", code="000000")
    assert failed.status_code == 401
    assert "Anmeldung fehlgeschlagen" in failed.get_data(as_text=True)


def test_compliance_documents_default_to_the_console_language(staff: Staff) -> None:
    browser = _signed_in(staff)
    page = browser.get("/staff/admin/compliance?lang=fr").get_data(as_text=True)
    assert "privacy-notice.fr.md" in page and "LPRPDE" in page and "privacy-notice.en.md" not in page
    page = browser.get("/staff/admin/compliance?doc_lang=de").get_data(as_text=True)
    assert "Tableau de bord" in page and "privacy-notice.de.md" in page  # French console, German documents


# ------------------------------------------------------------------------------------------ host names


def test_the_console_answers_only_to_the_kiosks_names(kiosk: Kiosk, tmp_path: Path) -> None:
    cert_pem, _ = ephemeral_certificate(["kiosk-7f3k.events.example.com", "*.lan.example.org", "10.42.0.1"])
    (tmp_path / "staff.pem").write_bytes(cert_pem)
    cfg = KioskConfig.model_validate(
        {
            **kiosk.cfg.model_dump(),
            "delivery": {"public_host": "kiosk.example.net"},
            "staff": {"tls_cert_path": str(tmp_path / "staff.pem"), "tls_key_path": str(tmp_path / "k")},
        }
    )
    assert allowed_hosts(cfg) == {
        "localhost",
        "kiosk.example.net",
        "kiosk-7f3k.events.example.com",
        "*.lan.example.org",
    }
    kiosk.cfg, original = cfg, kiosk.cfg
    try:
        client = make_staff(kiosk, tmp_path).app.test_client()
    finally:
        kiosk.cfg = original
    for host in (
        "localhost",
        "localhost:8090",
        "127.0.0.1:8090",
        "[::1]:8090",
        "10.42.0.1",
        "kiosk.example.net",
        "KIOSK-7F3K.events.example.com.:8090",
        "booth.lan.example.org",
    ):
        assert client.get("/staff/login", headers={"Host": host}).status_code == 200, host
    for host in ("evil.example", "kiosk.example.net.evil.example", "a.b.lan.example.org", "[evil]", "x:y:z"):
        refused = client.get("/staff/login", headers={"Host": host})
        assert refused.status_code == 421, host
        page = refused.get_data(as_text=True)
        assert "unknown_host" in page and "answers only to the kiosk" in page
        assert "frame-ancestors 'none'" in refused.headers["Content-Security-Policy"]
        assert refused.headers["Cache-Control"] == "no-store"
        assert client.post("/staff/login", headers={"Host": host}).status_code == 421
