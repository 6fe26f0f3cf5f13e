"""The staff console over a real started kiosk: roles × routes, dashboard and metrics, operator and admin
actions (each in the audit trail), and invariant 8 — no staff route ever returns a guest's image."""

from __future__ import annotations

import json
import re
import ssl
import stat
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
from flask.testing import FlaskClient
from markupsafe import escape
from prometheus_client.parser import text_string_to_metric_families

from appliance.accounts import Role
from appliance.audit import AuditLog, receipt_id, receipt_recorder
from appliance.compliance import policy_hash, render_documents
from appliance.config import KioskConfig
from appliance.kiosk import Kiosk
from appliance.overrides import load_with_overrides
from engine.runtime import tensorrt_available
from kiosk_ui import create_app
from kiosk_ui.metrics import dashboard, percentile, read_temperatures
from kiosk_ui.serve import ephemeral_certificate, listeners, staff_listener
from kiosk_ui.staff import COOKIE, TLS_COOKIE
from kiosk_ui.staff_auth import TLS_LOGIN_COOKIE
from tests.kiosk_ui.conftest import kiosk_config
from tests.kiosk_ui.staff_helpers import PASSWORD, Staff, StaffActions, make_staff
from tests.support import free_port

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    """A started kiosk that records receipts in its audit trail, as ``python -m appliance run`` does."""
    cfg = kiosk_config(tmp_path_factory.mktemp("staff-kiosk"))
    k = Kiosk(cfg, on_receipt=receipt_recorder(cfg))
    k.start()
    yield k
    k.close()


@pytest.fixture
def staff(kiosk: Kiosk, tmp_path: Path) -> Iterator[Staff]:
    """A console with an admin (alice) and an operator (olga); the kiosk is left idle, running and with its
    original config."""
    original = (kiosk.cfg, kiosk.on_receipt, kiosk.deliveries.window_seconds if kiosk.deliveries else 0)
    yield make_staff(kiosk, tmp_path, alice=Role.ADMIN, olga=Role.OPERATOR)
    if kiosk.state().phase != "idle":
        kiosk.staff_abort()
    kiosk.resume()
    kiosk.cfg, kiosk.on_receipt = original[0], original[1]
    if kiosk.deliveries is not None:
        kiosk.deliveries.window_seconds = original[2]


@pytest.fixture
def guest(kiosk: Kiosk) -> FlaskClient:
    return create_app(kiosk, testing=True).test_client()


def signed_in(staff: Staff, name: str) -> StaffActions:
    browser = staff.client()
    assert browser.login(name).status_code == 303
    return browser


# ------------------------------------------------------------------------------------------ role × route

Form = Callable[[StaffActions, str], dict[str, Any]]


def nothing(_: StaffActions, __: str) -> dict[str, Any]:
    return {}


def choices(_: StaffActions, __: str) -> dict[str, Any]:
    return {"backgrounds": ["white", "studio-grey"], "presets": ["square"]}


def settings(_: StaffActions, __: str) -> dict[str, Any]:
    return {"name": "Matrix Expo", "languages": ["en"], "window_minutes": "10"}


def add_account(browser: StaffActions, name: str) -> dict[str, Any]:
    return {"name": f"new-{name}", "role": "operator", "new_password": PASSWORD, **browser.reauth(name)}


def missing_account(browser: StaffActions, name: str) -> dict[str, Any]:
    return {"name": "nobody", **browser.reauth(name)}


def confirmed(browser: StaffActions, name: str) -> dict[str, Any]:
    return browser.reauth(name)


# (method, path, form, expected status for anonymous / operator / admin). 303 for anonymous = to sign-in.
ROUTES: list[tuple[str, str, Form, tuple[int, int, int]]] = [
    ("GET", "/staff/login", nothing, (200, 303, 303)),  # signed-in staff are sent to the dashboard
    ("POST", "/staff/login", nothing, (401, 401, 401)),  # no credentials: refused for everyone
    ("GET", "/staff/", nothing, (303, 200, 200)),
    ("GET", "/staff/camera", nothing, (303, 200, 200)),  # tests/kiosk_ui/test_camera_check.py
    ("GET", "/staff/camera.mjpg", nothing, (303, 200, 200)),
    ("GET", "/metrics", nothing, (200, 200, 200)),  # anonymous from loopback: a local scraper
    ("POST", "/staff/kiosk/pause", nothing, (303, 303, 303)),
    ("POST", "/staff/kiosk/resume", nothing, (303, 303, 303)),
    ("POST", "/staff/kiosk/abort", nothing, (303, 303, 303)),
    ("POST", "/staff/event/choices", choices, (303, 303, 303)),
    ("GET", "/staff/admin/event", nothing, (303, 403, 200)),
    ("POST", "/staff/admin/event", settings, (303, 403, 409)),  # 409: allowed, but only while paused
    ("POST", "/staff/admin/event/reset", nothing, (303, 403, 303)),  # nothing overridden: no pause needed
    ("GET", "/staff/admin/accounts", nothing, (303, 403, 200)),
    ("POST", "/staff/admin/accounts/add", add_account, (303, 403, 200)),
    ("POST", "/staff/admin/accounts/remove", missing_account, (303, 403, 400)),  # 400: no such account
    ("POST", "/staff/admin/accounts/reset-totp", missing_account, (303, 403, 400)),
    ("POST", "/staff/admin/accounts/recovery-codes", missing_account, (303, 403, 400)),
    ("GET", "/staff/admin/audit", nothing, (303, 403, 200)),
    ("POST", "/staff/admin/audit/export", confirmed, (303, 403, 200)),
    ("GET", "/staff/admin/compliance", nothing, (303, 403, 200)),
    ("GET", "/staff/admin/compliance/dpia.md", nothing, (303, 403, 200)),
    ("POST", "/staff/logout", nothing, (303, 303, 303)),
]
ROLES = {"anonymous": None, "operator": "olga", "admin": "alice"}


@pytest.mark.parametrize(
    ("method", "path", "form", "expected"), ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES]
)
@pytest.mark.parametrize("who", list(ROLES))
def test_role_route_matrix(
    staff: Staff, who: str, method: str, path: str, form: Form, expected: tuple[int, int, int]
) -> None:
    name = ROLES[who]
    browser = signed_in(staff, name) if name else staff.client()
    if method == "GET":
        response = browser.get(path)
    else:
        token = browser.csrf("/staff/" if name else "/staff/login")
        response = browser.post(path, form(browser, name or "alice"), csrf=token)
    assert response.status_code == expected[list(ROLES).index(who)], response.get_data(as_text=True)[:300]
    response.close()  # a camera-check stream ends its check when closed
    if response.status_code == 303 and name is None and path != "/staff/login":
        assert response.headers["Location"].endswith("/staff/login")


def test_every_route_of_the_console_is_in_the_matrix(staff: Staff) -> None:
    routes = {
        (method, rule.rule)
        for rule in staff.app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods or ()
        if method in ("GET", "POST")
    }
    covered = {(m, re.sub(r"/dpia\.md$", "/<name>", p)) for m, p, _, _ in ROUTES}
    assert routes == covered


# ------------------------------------------------------------------------------------------ invariant 8


def test_no_staff_route_returns_a_guest_image_or_id(staff: Staff, kiosk: Kiosk, guest: FlaskClient) -> None:
    """Mid-visit, with a headshot rendered, every staff page, download and /metrics is free of JPEG/PNG
    bytes and of the visit's render, take and session ids and receipt code."""
    assert guest.post("/api/session", json={}).status_code == 201
    assert guest.post("/api/session/consent", json={"accept": True}).status_code == 200
    captured = guest.post("/api/session/capture", json={})
    assert captured.status_code == 200, captured.get_json()
    state = kiosk.state()
    secrets = {state.visit, state.receipt, captured.get_json()["render"], captured.get_json()["take"]}
    assert guest.get(captured.get_json()["image"]).data.startswith(JPEG_MAGIC)  # the guest does see it

    admin = signed_in(staff, "alice")
    # The camera check is refused during a visit (409, an error page without an image).
    assert [admin.get(p).status_code for p in ("/staff/camera", "/staff/camera.mjpg")] == [409, 409]
    responses = [
        admin.get(path)
        for method, path, _, _ in ROUTES
        if method == "GET" and path not in ("/staff/login", "/staff/camera", "/staff/camera.mjpg")
    ]
    responses += [admin.get("/staff/admin/compliance/dpia.md?download=1")]
    responses += [admin.post("/staff/admin/audit/export", admin.reauth("alice"))]
    responses += [admin.post("/staff/admin/accounts/add", add_account(admin, "alice"))]
    responses += [admin.post("/staff/kiosk/pause"), admin.get("/staff/"), admin.post("/staff/kiosk/resume")]
    assert "visit in progress" in responses[0].get_data(as_text=True)
    for response in responses:
        assert response.status_code in (200, 303)
        assert not response.mimetype.startswith("image/")
        raw = response.get_data() + str(response.headers).encode()
        assert JPEG_MAGIC not in raw and PNG_MAGIC not in raw
        for secret in secrets:
            assert secret.encode() not in raw, f"{secret} leaked by {response.request.path}"

    assert admin.post("/staff/kiosk/abort").status_code == 303
    assert kiosk.state().phase == "idle" and kiosk.session_dirs() == []
    assert staff.actions()[-1] == "alice:kiosk.abort"


# ------------------------------------------------------------------------------------------ dashboard


def test_dashboard_shows_health_counts_and_versions(staff: Staff, kiosk: Kiosk, guest: FlaskClient) -> None:
    # One declined visit, so today's count (from the receipts) and the counters since start move.
    guest.post("/api/session", json={})
    guest.post("/api/session/consent", json={"accept": False})
    kiosk.tick()  # what the run loop does: warm a new spare worker after a visit used the last one
    kiosk.wait_for_spare()
    page = signed_in(staff, "olga").get("/staff/").get_data(as_text=True)
    assert 'id="phase">running, idle' in page
    assert 'id="camera">closed' in page
    assert "spare ready" in page
    assert 'id="temperature">n/a' in page or "°C" in page
    assert "modnet.onnx" in page and "onnxruntime" in page
    in_use = "tensorrt" if tensorrt_available() else "onnxruntime"
    assert f'id="backend">{in_use} (configured: {kiosk.cfg.engine.backend})' in page
    declined = re.search(r"<th>Declined</th><td>(\d+)</td><td>(\d+)</td>", page)
    assert declined and int(declined.group(1)) >= 1 and int(declined.group(2)) >= 1
    assert re.search(r'id="render">(\d+ ms|n/a) / (\d+ ms|n/a)', page)


def test_todays_counts_come_from_the_end_of_a_long_audit_trail(kiosk: Kiosk, tmp_path: Path) -> None:
    # The dashboard reads the trail backwards in 64 KiB chunks (appliance.audit_tail) and stops at the first
    # receipt of an earlier day: today's receipts span a chunk boundary (a line cut there must still count
    # once), yesterday's are not counted.
    audit = AuditLog(tmp_path / "audit")
    now = 1_750_000_000.0  # 2025-06-15 15:06 UTC
    yesterday = now - 86_400

    def receipt(outcome: str, at: float) -> None:
        audit.append_consent(
            receipt=receipt_id(), policy="0" * 64, choices=None, outcome=outcome, started=at, ended=at
        )

    for outcome in ("delivered", "declined") * 5:
        receipt(outcome, yesterday)
    for outcome in ("delivered", "declined") * 150:
        receipt(outcome, now)
    audit.append_staff("alice", "login", at=now)  # staff lines in between are skipped, not a stop
    receipt("error", now)
    assert audit.log_path.stat().st_size > 64 * 1024
    today = dashboard(kiosk, audit, now=now)["today"]
    assert today["date"] == "2025-06-15"
    assert (today["visits"], today["completed"], today["declined"], today["errors"]) == (301, 150, 150, 1)
    assert dashboard(kiosk, AuditLog(tmp_path / "none"), now=now)["today"]["visits"] == 0


def test_dashboard_shows_temperatures_where_the_platform_has_them(kiosk: Kiosk, tmp_path: Path) -> None:
    thermal = tmp_path / "thermal"
    for index, (kind, millidegrees) in enumerate((("cpu-thermal", "48500"), ("gpu-thermal", "51250"))):
        zone = thermal / f"thermal_zone{index}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(millidegrees + "\n")
    (thermal / "thermal_zone2").mkdir()  # a zone whose temp cannot be read: skipped
    assert [(t.kind, t.celsius) for t in read_temperatures(thermal)] == [
        ("cpu-thermal", 48.5),
        ("gpu-thermal", 51.25),
    ]
    assert read_temperatures(tmp_path / "absent") == []

    browser = signed_in(make_staff(kiosk, tmp_path, thermal_root=thermal, olga=Role.OPERATOR), "olga")
    assert "cpu-thermal 48.5 °C, gpu-thermal 51.2 °C" in browser.get("/staff/").get_data(as_text=True)
    metrics = browser.get("/metrics").get_data(as_text=True)
    assert 'headshot_kiosk_temperature_celsius{type="cpu-thermal",zone="thermal_zone0"} 48.5' in metrics


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([30.0, 10.0, 20.0], 50) == 20.0
    assert percentile(list(map(float, range(1, 101))), 95) == 95.0


# ------------------------------------------------------------------------------------------ metrics


def test_metrics_are_prometheus_text_with_counts_only(staff: Staff, kiosk: Kiosk, guest: FlaskClient) -> None:
    guest.post("/api/session", json={})
    guest.post("/api/session/consent", json={"accept": True})
    state = kiosk.state()
    response = staff.client().get("/metrics")  # loopback scraper, not signed in
    assert response.status_code == 200 and response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in (
        "headshot_kiosk_sessions_started",
        "headshot_kiosk_sessions_ended",
        "headshot_kiosk_wipes",
        "headshot_kiosk_errors",
        "headshot_kiosk_render_duration_seconds",
        "headshot_kiosk_store_used_bytes",
        "headshot_kiosk_worker_spare_ready",
        "headshot_kiosk_camera_open",
        "headshot_kiosk_session_active",
        "headshot_kiosk_uptime_seconds",
    ):
        assert name in families, name
    assert families["headshot_kiosk_session_active"].samples[0].value == 1.0
    assert families["headshot_kiosk_sessions_started"].samples[0].value == kiosk.counters.started
    assert state.visit not in text and state.receipt not in text
    (backend,) = families["headshot_kiosk_engine_backend_info"].samples
    assert backend.labels == {
        "configured": kiosk.cfg.engine.backend,
        "in_use": "tensorrt" if tensorrt_available() else "onnxruntime",
    }
    labels = {key for f in families.values() for s in f.samples for key in s.labels}
    # nothing that could name a visit ("state": the printer's, one of five fixed words)
    assert labels <= {"outcome", "percentile", "zone", "type", "configured", "in_use", "state"}


def test_metrics_need_staff_or_loopback(staff: Staff) -> None:
    remote = {"REMOTE_ADDR": "192.0.2.10"}
    assert staff.client().get("/metrics", environ_overrides=remote).status_code == 403
    browser = staff.client()
    assert browser.login("olga", address="192.0.2.10").status_code == 303
    assert browser.get("/metrics", environ_overrides=remote).status_code == 200


# ------------------------------------------------------------------------------------------ operator actions


def test_operator_pauses_resumes_and_aborts_and_each_is_audited(
    staff: Staff, kiosk: Kiosk, guest: FlaskClient
) -> None:
    olga = signed_in(staff, "olga")
    assert olga.post("/staff/kiosk/pause").headers["Location"].endswith("/staff/?done=paused")
    assert kiosk.state().paused is True
    assert guest.post("/api/session", json={}).status_code == 503  # no new visit while paused
    assert "The kiosk is paused" in olga.get("/staff/?done=paused").get_data(as_text=True)
    olga.post("/staff/kiosk/resume")
    assert kiosk.state().paused is False
    assert guest.post("/api/session", json={}).status_code == 201
    assert olga.post("/staff/kiosk/abort").headers["Location"].endswith("done=aborted")
    assert kiosk.state().phase == "idle"
    assert olga.post("/staff/kiosk/abort").headers["Location"].endswith("done=no_visit")
    assert staff.actions()[-5:] == [
        "olga:login",
        "olga:kiosk.pause",
        "olga:kiosk.resume",
        "olga:kiosk.abort",
        "olga:kiosk.abort.none",
    ]
    assert AuditLog(kiosk.cfg.audit.path).verify().ok


def test_operator_chooses_backgrounds_and_presets_for_guests(
    staff: Staff, kiosk: Kiosk, guest: FlaskClient
) -> None:
    olga = signed_in(staff, "olga")
    before = policy_hash(kiosk.cfg)
    recorded = staff.actions().count("olga:event.choices")
    assert (
        olga.post(
            "/staff/event/choices", {"backgrounds": ["white"], "presets": ["badge", "square"]}
        ).status_code
        == 303
    )
    assert kiosk.cfg.event.backgrounds == ("white",) and kiosk.cfg.event.presets == ("badge", "square")
    page = guest.get("/").get_data(as_text=True)
    data = json.loads(
        re.search(r'<script id="page-data" type="application/json">(.*?)</script>', page, re.S).group(1)
    )
    assert data["backgrounds"] == ["white"] and data["presets"] == ["badge", "square"]
    assert policy_hash(kiosk.cfg) == before  # the consent text did not change
    # Only what the config offers; at least one of each.
    assert (
        olga.post("/staff/event/choices", {"backgrounds": ["#ff00ff"], "presets": ["square"]}).status_code
        == 400
    )
    assert olga.post("/staff/event/choices", {"backgrounds": [], "presets": ["square"]}).status_code == 400
    assert kiosk.cfg.event.backgrounds == ("white",)
    # A choice the operator removed earlier can come back.
    assert (
        olga.post(
            "/staff/event/choices", {"backgrounds": ["blur", "white"], "presets": ["square"]}
        ).status_code
        == 303
    )
    assert kiosk.cfg.event.backgrounds == ("blur", "white")
    assert staff.actions().count("olga:event.choices") == recorded + 2


# ------------------------------------------------------------------------------------------ admin actions


def test_admin_event_settings_stay_within_legal_bounds_and_rehash_the_policy(
    staff: Staff, kiosk: Kiosk, guest: FlaskClient
) -> None:
    alice = signed_in(staff, "alice")
    form = {"name": "Career Fair", "languages": ["en", "de"], "window_minutes": "25"}
    assert alice.post("/staff/admin/event", form).status_code == 409  # not paused
    alice.post("/staff/kiosk/pause")
    assert alice.post("/staff/admin/event", {**form, "window_minutes": "61"}).status_code == 400
    assert alice.post("/staff/admin/event", {**form, "window_minutes": "0"}).status_code == 400
    assert alice.post("/staff/admin/event", {**form, "languages": ["xx"]}).status_code == 400
    assert kiosk.cfg.delivery.window_minutes == 10
    old_hash = policy_hash(kiosk.cfg)

    assert alice.post("/staff/admin/event", form).status_code == 303
    assert kiosk.cfg.delivery.window_minutes == 25 and kiosk.cfg.event.name == "Career Fair"
    assert kiosk.deliveries is not None and kiosk.deliveries.window_seconds == 25 * 60
    consent = guest.get("/?lang=de").get_data(as_text=True)
    assert "höchstens 25 Minuten" in consent and "Career Fair" in consent
    # The next receipt carries the hash of the text the guest now sees.
    alice.post("/staff/kiosk/resume")
    guest.post("/api/session", json={})
    guest.post("/api/session/consent", json={"accept": False})
    last = json.loads(AuditLog(kiosk.cfg.audit.path).export().splitlines()[-1])
    assert last["type"] == "consent" and last["policy"] == policy_hash(kiosk.cfg) != old_hash
    assert "alice:event.settings" in staff.actions()


def test_admin_adds_an_account_shown_once_resets_and_removes_it(staff: Staff) -> None:
    alice = signed_in(staff, "alice")
    page = alice.post(
        "/staff/admin/accounts/add",
        {"name": "bob", "role": "operator", "new_password": PASSWORD, **alice.reauth("alice")},
    )
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    text = page.get_data(as_text=True)
    assert "<svg" in text and "otpauth://totp/" in text
    secret = re.search(r"type the secret: <code>([A-Z2-7]+)</code>", text).group(1)
    assert secret not in alice.get("/staff/admin/accounts").get_data(as_text=True)  # shown once

    staff.secrets["bob"] = secret
    bob = signed_in(staff, "bob")  # the new account works with the enrolled authenticator
    assert bob.get("/staff/").status_code == 200
    reset = alice.post("/staff/admin/accounts/reset-totp", {"name": "bob", **alice.reauth("alice")})
    assert reset.status_code == 200
    assert bob.get("/staff/").status_code == 303  # a reset signs the account out everywhere
    staff.clock.advance(30)
    old = pyotp.TOTP(secret).at(int(staff.clock()))
    assert staff.client().login("bob", code=old).status_code == 401
    staff.secrets["bob"] = re.search(
        r"type the secret: <code>([A-Z2-7]+)</code>", reset.get_data(as_text=True)
    ).group(1)
    bob = signed_in(staff, "bob")
    assert (
        alice.post("/staff/admin/accounts/remove", {"name": "bob", **alice.reauth("alice")}).status_code
        == 303
    )
    assert bob.get("/staff/").status_code == 303
    assert [s.name for s in staff.store.list()] == ["alice", "olga"]
    actions = staff.actions()
    assert "alice:staff.add.operator" in actions and "alice:staff.reset_totp" in actions
    assert "alice:staff.remove" in actions
    # Account changes are refused without a fresh confirmation.
    assert (
        alice.post(
            "/staff/admin/accounts/add", {"name": "eve", "role": "admin", "new_password": PASSWORD}
        ).status_code
        == 403
    )


def test_audit_export_needs_a_fresh_code_and_is_recorded(staff: Staff) -> None:
    alice = staff.client()
    sign_in_code = staff.next_code("alice")
    assert alice.login("alice", code=sign_in_code).status_code == 303
    assert alice.post("/staff/admin/audit/export").status_code == 403
    assert (
        alice.post("/staff/admin/audit/export", {"password": PASSWORD, "totp": sign_in_code}).status_code
        == 403
    )
    assert (
        alice.post(
            "/staff/admin/audit/export", {"password": "wrong password!", "totp": staff.next_code("alice")}
        ).status_code
        == 403
    )
    response = alice.post("/staff/admin/audit/export", alice.reauth("alice"))
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="audit.jsonl"'
    lines = [json.loads(line) for line in response.get_data().splitlines()]
    assert lines and all(line["type"] in ("consent", "staff") for line in lines)
    assert staff.actions()[-1] == "alice:audit.export"
    assert "Chain intact" in alice.get("/staff/admin/audit").get_data(as_text=True)


def test_foreign_origin_refusal_is_the_console_error_page_with_its_code(staff: Staff, kiosk: Kiosk) -> None:
    # The origin check runs before any view (kiosk_ui.security) and hands the console a code, a sentence and a
    # status; staff see the console's own error page with all three, like every other refusal here.
    olga = signed_in(staff, "olga")
    response = olga.post("/staff/kiosk/pause", headers={"Origin": "https://evil.example"})
    assert response.status_code == 403 and kiosk.state().paused is False
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "Requests from other sites are not accepted." in page
    assert "foreign_origin" in page
    assert response.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_compliance_documents_render_from_the_running_config(staff: Staff, kiosk: Kiosk) -> None:
    alice = signed_in(staff, "alice")
    for lang in ("en", "fr", "es", "de"):
        index = alice.get(f"/staff/admin/compliance?doc_lang={lang}").get_data(as_text=True)
        for name, text in render_documents(kiosk.cfg, lang).items():
            assert name in index
            page = alice.get(f"/staff/admin/compliance/{name}")  # read on the phone: a page around the text
            assert page.status_code == 200 and page.mimetype == "text/html"
            assert f'<pre class="document" lang="{lang}">{escape(text)}</pre>' in page.get_data(as_text=True)
            download = alice.get(f"/staff/admin/compliance/{name}?download=1")
            assert download.mimetype == "text/markdown" and download.get_data(as_text=True) == text
            assert download.headers["Content-Disposition"] == f'attachment; filename="{name}"'
    assert policy_hash(kiosk.cfg) in alice.get("/staff/admin/compliance").get_data(as_text=True)
    assert alice.get("/staff/admin/compliance/..%2Fstaff.json").status_code == 404
    assert alice.get("/staff/admin/compliance/dpia.it.md").status_code == 404
    assert {"alice:compliance.view", "alice:compliance.download"} <= set(staff.actions())


# ------------------------------------------------------------------------------------------ the listener


def test_staff_listener_serves_tls_with_a_host_cookie(kiosk: Kiosk, tmp_path: Path) -> None:
    cert_pem, key_pem = ephemeral_certificate(["localhost", "127.0.0.1"])
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    cfg = KioskConfig.model_validate(
        {
            **kiosk.cfg.model_dump(),
            "staff": {
                "port": free_port(),
                "accounts_path": str(tmp_path / "staff.json"),
                "tls_cert_path": str(tmp_path / "cert.pem"),
                "tls_key_path": str(tmp_path / "key.pem"),
            },
        }
    )
    listener = staff_listener(kiosk, cfg)
    listener.start()
    try:
        context = ssl.create_default_context(cadata=cert_pem.decode())
        with urllib.request.urlopen(f"{listener.url}/staff/login", context=context, timeout=10) as response:
            cookie = response.headers["Set-Cookie"]
            assert response.status == 200
            assert response.headers["Strict-Transport-Security"]
    finally:
        listener.stop()
    assert listener.url.startswith("https://")
    # The sign-in form's token cookie (no session exists before sign-in); the session cookie set at sign-in
    # has the same prefix and attributes (tests/security/test_p1_1_staff_web.py).
    assert cookie.startswith(f"{TLS_LOGIN_COOKIE}=") and "Secure" in cookie and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie and "Path=/" in cookie and "Domain" not in cookie
    assert TLS_COOKIE.startswith("__Host-")


def test_listeners_include_the_staff_console_on_loopback(kiosk: Kiosk, tmp_path: Path) -> None:
    cfg = KioskConfig.model_validate({**kiosk.cfg.model_dump(), "staff": {"port": free_port()}})
    names = [listener.name for listener in listeners(kiosk, cfg)]
    assert names == ["ui", "delivery", "staff"]
    plain = staff_listener(kiosk, cfg)
    assert not plain.tls and plain.url.startswith("http://127.0.0.1")
    assert COOKIE == "staff_session"


# ------------------------------------------------------------------------------------------ persistence


def test_event_settings_survive_a_restart_are_audited_and_reset_to_the_config_file(
    staff: Staff, kiosk: Kiosk, tmp_path: Path
) -> None:
    alice = signed_in(staff, "alice")
    configured = staff.app.extensions["staff_console"].cfg  # the config file's values
    path = tmp_path / "event-overrides.json"  # next to the accounts file (make_staff: tmp_path/staff.json)
    choices = {"backgrounds": ["white"], "presets": ["badge"]}
    assert alice.post("/staff/event/choices", choices).status_code == 303
    alice.post("/staff/kiosk/pause")
    form = {"name": "Career Fair", "languages": ["de", "en"], "window_minutes": "25"}
    assert alice.post("/staff/admin/event", form).status_code == 303
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["delivery"] == {"window_minutes": 25}

    # A restart: `python -m appliance run` loads the config file, then the overrides next to its accounts.
    data = configured.model_dump()
    data["staff"] = {**data["staff"], "accounts_path": str(tmp_path / "staff.json")}
    restarted, problem = load_with_overrides(KioskConfig.model_validate(data))
    assert problem is None
    assert restarted.event == kiosk.cfg.event and restarted.delivery == kiosk.cfg.delivery
    assert (restarted.event.name, restarted.event.languages) == ("Career Fair", ("de", "en"))
    assert restarted.event.backgrounds == ("white",) and restarted.delivery.window_minutes == 25

    # Who, what and when, with no free text: the event name is recorded as changed, not by its value.
    records = [json.loads(line) for line in AuditLog(kiosk.cfg.audit.path).export().splitlines()]
    changes = {r["action"]: r.get("changes") for r in records if r["type"] == "staff" and "changes" in r}
    assert changes["event.choices"] == {"event.backgrounds": ["white"], "event.presets": ["badge"]}
    assert changes["event.settings"] == {
        "event.name": None,
        "event.languages": ["de", "en"],
        "delivery.window_minutes": 25,
    }
    assert AuditLog(kiosk.cfg.audit.path).verify().ok
    assert "Career Fair" not in AuditLog(kiosk.cfg.audit.path).export().decode()

    page = alice.get("/staff/admin/event").get_data(as_text=True)
    assert "delivery.window_minutes" in page and "Reset to the config file" in page
    alice.post("/staff/kiosk/resume")
    assert alice.post("/staff/admin/event/reset").status_code == 409  # changes the consent text: pause first
    assert path.exists()
    alice.post("/staff/kiosk/pause")
    assert alice.post("/staff/admin/event/reset").status_code == 303
    assert not path.exists()
    assert kiosk.cfg.event == configured.event and kiosk.cfg.delivery == configured.delivery
    assert staff.actions()[-1] == "alice:event.reset"
    assert "Everything is as in the config file." in alice.get("/staff/admin/event").get_data(as_text=True)


def test_a_change_that_cannot_be_saved_is_not_made(staff: Staff, kiosk: Kiosk, tmp_path: Path) -> None:
    (tmp_path / "event-overrides.json").mkdir()  # something that cannot be replaced by a file
    olga = signed_in(staff, "olga")
    before, recorded = kiosk.cfg, staff.actions().count("olga:event.choices")
    response = olga.post("/staff/event/choices", {"backgrounds": ["white"], "presets": ["badge"]})
    assert response.status_code == 503 and "could not be saved" in response.get_data(as_text=True)
    assert kiosk.cfg == before
    assert staff.actions().count("olga:event.choices") == recorded
