"""Fixtures for provisioning tests (helpers live in provisioning_helpers.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from provisioning_helpers import ORIN_DEVICES, check_golden, seed_accounts, seed_devices


@pytest.fixture
def staged_root(tmp_path: Path) -> Path:
    """An empty device root with the service accounts and an Orin's device nodes."""
    root = tmp_path / "root"
    seed_accounts(root)
    seed_devices(root, ORIN_DEVICES)
    return root


@pytest.fixture
def golden() -> Callable[[str, str], None]:
    """``golden(relative_name, text)``: see provisioning_helpers.check_golden."""
    return check_golden
