"""What a guest at the screen (or anything on loopback) can send the guest API, and ids that end in a newline
(issue 20, items 2 and 4, and the same anchored-regex defect as item 3 in the staff and audit checks).

- Consent choices are yes/no answers to the choices the event offers, nothing else: free text never reaches
  the audit trail, and a receipt that could not be recorded is never shown as recorded.
- A deeply nested JSON body is a 400 with one log line, not a 500 with a traceback.
- ``^...$`` with ``re.match`` accepts a trailing newline: names, codes and record fields must match whole.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from appliance.accounts import StaffError, StaffStore
from appliance.audit import AuditError, AuditLog, receipt_recorder
from appliance.kiosk import Kiosk, Receipt
from kiosk_ui import create_app
from tests.appliance.test_accounts import FAST
from tests.kiosk_ui.conftest import kiosk_config


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Kiosk, FlaskClient, Path]]:
    base = tmp_path_factory.mktemp("hostile")
    cfg = kiosk_config(base, event={"name": "Expo", "consent_choices": ["skin_smoothing"]})
    recorder = receipt_recorder(cfg)
    failing = {"on": False}

    def sink(receipt: Receipt) -> None:
        if failing["on"]:
            raise AuditError("the audit disk is full")
        recorder(receipt)

    kiosk = Kiosk(cfg, on_receipt=sink)
    kiosk.start()
    client = create_app(kiosk, testing=True).test_client()
    client.failing = failing  # type: ignore[attr-defined]
    yield kiosk, client, cfg.audit.path
    kiosk.close()


@pytest.fixture
def guest(recorded: tuple[Kiosk, FlaskClient, Path]) -> Iterator[tuple[Kiosk, FlaskClient, Path]]:
    kiosk, client, _ = recorded
    client.failing["on"] = False  # type: ignore[attr-defined]
    yield recorded
    if kiosk.state().phase != "idle":
        kiosk.delete_now()


def _trail(audit_dir: Path) -> str:
    return AuditLog(audit_dir).export().decode()


@pytest.mark.parametrize(
    "choices",
    [
        {"Bad Key": True},
        {"john_smith_at_acme": True},
        {"skin_smoothing": True, "email_me": False},
        {"skin_smoothing": "yes"},
        {"skin_smoothing\n": True},
    ],
)
def test_only_the_offered_choices_with_yes_no_answers_are_accepted(
    guest: tuple[Kiosk, FlaskClient, Path], choices: dict[str, Any]
) -> None:
    kiosk, client, audit_dir = guest
    before = _trail(audit_dir)
    assert client.post("/api/session").status_code == 201
    for accept in (False, True):
        r = client.post("/api/session/consent", json={"accept": accept, "choices": choices})
        assert r.status_code == 400 and r.json["error"] in ("bad_choices", "bad_request"), r.json
        assert "john" not in r.get_data(as_text=True)
    # Refused before anything happened: still on the consent screen, nothing written to the trail.
    assert kiosk.state().phase == "consent"
    assert _trail(audit_dir) == before


def test_the_offered_choice_is_recorded_and_nothing_else(guest: tuple[Kiosk, FlaskClient, Path]) -> None:
    _, client, audit_dir = guest
    client.post("/api/session")
    assert client.post("/api/session/consent", json={"accept": False, "choices": {}}).status_code == 200
    last = json.loads(_trail(audit_dir).splitlines()[-1])
    assert last["choices"] == {"skin_smoothing": False}  # an offered choice left unticked is a no


def test_a_receipt_that_could_not_be_recorded_is_not_shown_as_recorded(
    guest: tuple[Kiosk, FlaskClient, Path],
) -> None:
    kiosk, client, _ = guest
    client.post("/api/session")
    client.failing["on"] = True  # type: ignore[attr-defined]
    before = kiosk.counters.receipts_unrecorded
    r = client.post("/api/session/consent", json={"accept": False})
    assert r.status_code == 200 and r.json["last_receipt"]["receipt"] is None
    client.post("/api/session")
    r = client.post("/api/session/delete")
    assert r.status_code == 200 and r.json["receipt"] is None  # the page then shows no code
    assert kiosk.counters.receipts_unrecorded == before + 2


# Within the guest API's body limit (larger bodies are the listener's 413), deep enough for the parser.
@pytest.mark.parametrize("body", [b"[" * 5_000, b'{"a":' * 1_500 + b"1" + b"}" * 1_500])
def test_deeply_nested_json_is_a_400_with_one_log_line(
    guest: tuple[Kiosk, FlaskClient, Path], body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    _, client, _ = guest
    client.post("/api/session")
    with caplog.at_level(logging.DEBUG):
        r = client.post("/api/session/consent", data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json["error"] == "bad_json"
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR or rec.exc_info]


def test_staff_names_must_match_whole(tmp_path: Path) -> None:
    # (TOTP codes are normalised on purpose: spaces and a stray newline from a paste are stripped.)
    accounts = StaffStore(tmp_path / "staff.json", argon2=FAST)
    with pytest.raises(StaffError):
        accounts.add("bob\n", "operator", "a long enough password")


def test_audit_records_must_match_whole(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    with pytest.raises(AuditError):
        log.append_consent(
            receipt="7K3QX9MD\n",
            policy="0" * 64,
            choices=None,
            outcome="delivered",
            started=1_700_000_000.0,
            ended=1_700_000_060.0,
        )
    with pytest.raises(AuditError):
        log.append_consent(
            receipt="7K3QX9MD",
            policy="0" * 64,
            choices={"skin_smoothing\n": True},
            outcome="delivered",
            started=1_700_000_000.0,
            ended=1_700_000_060.0,
        )
