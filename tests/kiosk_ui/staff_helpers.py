"""Helpers for the staff console tests: a settable clock, cheap real argon2id, real TOTP codes, and
``StaffActions`` (sign in, post a form with its CSRF token) in the manner of flaskr's ``AuthActions``."""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import argon2
import pyotp
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from appliance.accounts import TOTP_INTERVAL_SECONDS, Role, StaffStore
from appliance.audit import AuditLog
from appliance.kiosk import Kiosk
from kiosk_ui.metrics import THERMAL_ROOT
from kiosk_ui.staff import COOKIE, TLS_COOKIE, create_staff_app
from tests.appliance.conftest import ManualClock

# Real argon2id at test cost (production parameters: tests/security/test_p1_1_staff_auth.py).
FAST = argon2.Parameters(
    type=argon2.Type.ID, version=19, salt_len=16, hash_len=32, time_cost=1, memory_cost=1024, parallelism=1
)
PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


class Clock(ManualClock):
    """The store tests' manual clock, started 5 s into a TOTP step near the real time, so audit records and
    "today" on the dashboard fall on the real date."""

    def __init__(self) -> None:
        super().__init__(math.floor(time.time() / TOTP_INTERVAL_SECONDS) * TOTP_INTERVAL_SECONDS + 5.0)


@dataclass
class Staff:
    """A staff console app over a real kiosk, its accounts (name -> TOTP secret) and its clock."""

    app: Flask
    store: StaffStore
    audit: AuditLog
    clock: Clock
    secrets: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, role: Role) -> str:
        self.secrets[name] = self.store.add(name, role, PASSWORD).secret
        return name

    def code(self, name: str) -> str:
        """The current TOTP code of ``name`` at the test clock."""
        return pyotp.TOTP(self.secrets[name]).at(int(self.clock()))

    def next_code(self, name: str) -> str:
        """Move the clock one TOTP step on and return that step's code: always unused."""
        self.clock.advance(TOTP_INTERVAL_SECONDS)
        return self.code(name)

    def client(self, *, https: bool = False) -> StaffActions:
        base = "https://localhost" if https else "http://localhost"
        return StaffActions(self, self.app.test_client(), base)

    def actions(self) -> list[str]:
        """The staff actions in the audit trail, as ``account:action`` strings, oldest first."""
        lines = self.audit.export().decode().splitlines()
        records = [json.loads(line) for line in lines]
        return [f"{r['account']}:{r['action']}" for r in records if r["type"] == "staff"]


def make_staff(kiosk: Kiosk, base: Path, *, thermal_root: Path = THERMAL_ROOT, **accounts: Role) -> Staff:
    """A console over ``kiosk`` with its accounts file under ``base`` and the given accounts."""
    store = StaffStore(base / "staff.json", argon2=FAST)
    audit = AuditLog(kiosk.cfg.audit.path)
    clock = Clock()
    app = create_staff_app(
        kiosk, kiosk.cfg, store=store, audit=audit, clock=clock, thermal_root=thermal_root, testing=True
    )
    staff = Staff(app, store, audit, clock)
    for name, role in accounts.items():
        staff.add(name, role)
    return staff


class StaffActions:
    """One browser on the staff console."""

    def __init__(self, staff: Staff, client: FlaskClient, base_url: str) -> None:
        self.staff = staff
        self.client = client
        self.base_url = base_url

    def get(self, path: str, **kwargs: object) -> TestResponse:
        return self.client.get(path, base_url=self.base_url, **kwargs)  # type: ignore[arg-type]

    def csrf(self, path: str = "/staff/login") -> str:
        """The CSRF token of the form on ``path`` (the sign-in page makes a pre-sign-in session)."""
        page = self.get(path).get_data(as_text=True)
        found = CSRF.search(page)
        assert found, f"no csrf_token on {path}"
        return found.group(1)

    def post(
        self, path: str, data: dict[str, object] | None = None, *, csrf: str | None = None, **kwargs: object
    ) -> TestResponse:
        """POST ``data`` with the session's CSRF token (taken from the dashboard unless given)."""
        form = dict(data or {})
        form.setdefault("csrf_token", csrf if csrf is not None else self.csrf("/staff/"))
        return self.client.post(path, data=form, base_url=self.base_url, **kwargs)  # type: ignore[arg-type]

    def login(
        self, name: str, *, password: str = PASSWORD, code: str | None = None, address: str = "127.0.0.1"
    ) -> TestResponse:
        token = self.csrf()
        return self.client.post(
            "/staff/login",
            data={
                "csrf_token": token,
                "username": name,
                "password": password,
                "totp": code if code is not None else self.staff.next_code(name),
            },
            base_url=self.base_url,
            environ_overrides={"REMOTE_ADDR": address},
        )

    def reauth(self, name: str) -> dict[str, str]:
        """Form fields confirming a sensitive action: the password and a fresh code."""
        return {"password": PASSWORD, "totp": self.staff.next_code(name)}

    def cookie(self) -> str | None:
        cookie = self.client.get_cookie(COOKIE) or self.client.get_cookie(TLS_COOKIE, domain="localhost")
        return cookie.value if cookie is not None else None

    def logout(self) -> TestResponse:
        return self.post("/staff/logout")
