"""Imports point one way only (DESIGN.md §3): engine is a leaf; appliance -> engine; UI on top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ALLOWED = {
    "engine": set(),
    "appliance": {"engine"},
    # The UI talks to the appliance facade only (issue 12): model versions, runtimes and the audit trail
    # reach the staff console through appliance modules, never by importing engine.
    "kiosk_ui": {"appliance"},
    "provisioning": {"appliance", "engine"},
}


def _our_imports(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots & set(ALLOWED)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_down_only(package: str) -> None:
    files = sorted((REPO / package).rglob("*.py"))
    wrong = [
        f"{f.relative_to(REPO)} imports {target}"
        for f in files
        for target in sorted(_our_imports(f) - {package} - ALLOWED[package])
    ]
    assert not wrong, "imports pointing the wrong way:\n" + "\n".join(wrong)


def test_kiosk_ui_imports_nothing_from_engine() -> None:
    # Spelled out beside the table: widening ALLOWED["kiosk_ui"] again must fail here too.
    files = sorted((REPO / "kiosk_ui").rglob("*.py"))
    offenders = [str(f.relative_to(REPO)) for f in files if "engine" in _our_imports(f)]
    assert not offenders, f"kiosk_ui must reach engine through appliance only: {offenders}"


def test_relative_imports_stay_inside_their_package() -> None:
    # `from ..kiosk_ui import x` would dodge the check above; we use absolute imports only.
    offenders = [
        str(f.relative_to(REPO))
        for pkg in ALLOWED
        for f in (REPO / pkg).rglob("*.py")
        if any(
            isinstance(n, ast.ImportFrom) and n.level > 1 for n in ast.walk(ast.parse(f.read_text("utf-8")))
        )
    ]
    assert not offenders


def test_checker_sees_a_wrong_arrow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import kiosk_ui.views\nfrom appliance import Kiosk\n", encoding="utf-8")
    assert _our_imports(bad) - ALLOWED["engine"] == {"kiosk_ui", "appliance"}
