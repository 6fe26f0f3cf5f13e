"""staff-bootstrap delegates to appliance.accounts, and says so clearly when that module is missing."""

from __future__ import annotations

import importlib
import io
import sys
from pathlib import Path

import pytest

from provisioning.cli import main


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "kiosk.toml"
    path.write_text(
        f'[staff]\naccounts_path = "{tmp_path / "staff" / "accounts.json"}"\n'
        f'[audit]\npath = "{tmp_path / "audit"}"\n'
        f'[store]\npath = "{tmp_path / "store"}"\n',
        encoding="utf-8",
    )
    return path


def test_missing_staff_module_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.import_module

    def fake(name: str, package: str | None = None) -> object:
        if name == "appliance.accounts":
            raise ModuleNotFoundError("No module named 'appliance.accounts'", name="appliance.accounts")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", fake)
    assert main(["staff-bootstrap", "--config", str(_config(tmp_path))], out=io.StringIO()) == 2
    assert "appliance.accounts is missing" in capsys.readouterr().err


def test_bootstrap_creates_the_first_admin_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("appliance.accounts")
    config = _config(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO("correct horse battery staple\n"))
    argv = ["staff-bootstrap", "--config", str(config), "--name", "alice", "--password-stdin"]
    assert main(argv, out=io.StringIO()) == 0
    assert (tmp_path / "staff" / "accounts.json").is_file()
    assert "alice" in capsys.readouterr().out  # the enrolment the staff module printed
    monkeypatch.setattr(sys, "stdin", io.StringIO("another long password\n"))
    assert main(argv, out=io.StringIO()) == 2
    assert "already has an admin" in capsys.readouterr().err
