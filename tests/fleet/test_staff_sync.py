"""The fleet's staff sync (fleet/ansible/.../staff_sync.py) on its own: hashes only, and a prune that
keeps the last admin instead of failing the whole run (found in review)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import argon2

from appliance.accounts import StaffStore

SYNC = Path(__file__).resolve().parents[2] / "fleet/ansible/roles/headshot_kiosk/files/staff_sync.py"
FAST = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("staff_sync", SYNC)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prune_keeps_the_last_admin_and_finishes(tmp_path: Path) -> None:
    sync = _module()
    store = StaffStore(tmp_path / "accounts.json")
    store.provision("root-admin", "admin", FAST.hash("a long enough password"))
    store.provision("old-operator", "operator", FAST.hash("another long password"))
    wanted = {"new-operator": {"role": "operator", "password_hash": FAST.hash("a third long password")}}
    result = sync.sync(store, wanted, tmp_path / "applied.json", prune=True)
    assert result["added"] == ["new-operator"] and result["removed"] == ["old-operator"]
    assert result["kept"] == ["root-admin"]  # the last admin: kept, said, and the run still finishes
    assert json.loads((tmp_path / "applied.json").read_text()) == {
        "new-operator": wanted["new-operator"]["password_hash"]
    }
    assert sorted(s.name for s in store.list()) == ["new-operator", "root-admin"]
