"""Fixtures for the guest UI tests: one real started Kiosk per module (demo camera, real worker process)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.config import KioskConfig
from appliance.kiosk import Kiosk
from kiosk_ui import create_app

LANGUAGES = ("en", "fr", "es", "de")


def kiosk_config(base: Path, **sections: dict[str, object]) -> KioskConfig:
    """A demo-camera config whose RAM store and audit log live under ``base``."""
    data: dict[str, object] = {
        "store": {"path": str(base / "store"), "size_mib": 64},
        "audit": {"path": str(base / "audit")},
        "event": {"name": "Test Expo", "languages": list(LANGUAGES)},
    }
    data.update(sections)
    return KioskConfig.model_validate(data)


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    k = Kiosk(kiosk_config(tmp_path_factory.mktemp("kiosk")))
    k.start()
    yield k
    k.close()


@pytest.fixture(scope="module")
def app(kiosk: Kiosk) -> Flask:
    return create_app(kiosk, testing=True)


@pytest.fixture
def client(app: Flask, kiosk: Kiosk) -> Iterator[FlaskClient]:
    """A test client on an idle kiosk; whatever a test leaves behind is wiped."""
    if kiosk.state().phase != "idle":
        kiosk.delete_now()
    yield app.test_client()
    if kiosk.state().phase != "idle":
        kiosk.delete_now()
