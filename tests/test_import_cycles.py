"""No import circles among the modules of the product packages (issue 12): every arrow between modules
points one way, as ``test_layering.py`` checks between packages.

Every ``import`` statement in a file counts, including those inside functions: a lazy import avoids the
error at start-up but not the circle (``appliance.camera`` ⇄ ``appliance.csi_source`` was one such).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "appliance", "kiosk_ui", "provisioning")

# Circles that exist today and are still to be removed. Delete an entry when its circle is gone:
# test_known_cycles_still_exist fails on a stale one, so this list can only shrink. Never add to it.
# (Empty since issue 12, item 5: apply.py ⇄ tls.py went when both took engine.fileio.write_atomic.)
KNOWN_CYCLES: frozenset[frozenset[str]] = frozenset()


def find_modules(root: Path, packages: Iterable[str]) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``), for every ``.py`` under ``packages``."""
    modules: dict[str, tuple[Path, bool]] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            modules[".".join(parts)] = (path, is_package)
    return modules


def _known_prefix(name: str, modules: Mapping[str, object]) -> str | None:
    """The longest leading part of dotted ``name`` that is one of our modules (``None`` if none is)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def imports_of(module: str, path: Path, is_package: bool, modules: Mapping[str, object]) -> set[str]:
    """The modules of ours that ``module`` imports anywhere in its file.

    Relative imports are resolved against the module's package, and ``from pkg import name`` points at
    ``pkg.name`` when that is a submodule, else at ``pkg``. Importing ``a.b.c`` also runs ``a/__init__``
    and ``a/b/__init__``, but those implicit parent imports are left out: counting them would make every
    package that imports its own submodules a circle.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [_known_prefix(alias.name, modules) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else _known_prefix(base, modules)
                for alias in node.names
            ]
        else:
            continue
        found |= {target for target in targets if target is not None}
    found.discard(module)
    return found


def import_graph(root: Path, packages: Iterable[str]) -> dict[str, set[str]]:
    modules = find_modules(root, packages)
    return {name: imports_of(name, path, is_pkg, modules) for name, (path, is_pkg) in modules.items()}


def cycles(graph: Mapping[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()

    def visit(node: str) -> None:
        index[node] = lowlink[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                lowlink[node] = min(lowlink[node], lowlink[target])
            elif target in on_stack:
                lowlink[node] = min(lowlink[node], index[target])
        if lowlink[node] == index[node]:
            component: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.add(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _describe(cycle: frozenset[str], graph: Mapping[str, set[str]]) -> str:
    arrows = sorted(f"{a} -> {b}" for a in cycle for b in graph[a] if b in cycle)
    return " ⇄ ".join(sorted(cycle)) + "\n    " + "\n    ".join(arrows)


def test_no_import_cycles_in_the_product_packages() -> None:
    graph = import_graph(REPO, PACKAGES)
    new = cycles(graph) - KNOWN_CYCLES
    assert not new, "import circles:\n  " + "\n  ".join(_describe(c, graph) for c in sorted(new, key=sorted))


def test_known_cycles_still_exist() -> None:
    # A fixed circle must leave the allow-list, or a new one could hide behind its entry.
    stale = KNOWN_CYCLES - cycles(import_graph(REPO, PACKAGES))
    assert not stale, f"remove from KNOWN_CYCLES, these circles are gone: {sorted(map(sorted, stale))}"


def test_the_camera_package_has_no_circle() -> None:
    graph = import_graph(REPO, PACKAGES)
    assert not [c for c in cycles(graph) if any(m.startswith("appliance.camera") for m in c)]
    # The hardware sources depend on the base module only, never on the package that picks them.
    for source in ("appliance.camera.csi_source", "appliance.camera.v4l2_source"):
        assert {m for m in graph[source] if m.startswith("appliance.camera")} == {"appliance.camera.base"}


def test_checker_sees_relative_lazy_and_submodule_circles(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    # pkg.a -> pkg.b through a relative import; pkg.b -> pkg.a lazily, inside a function.
    (pkg / "a.py").write_text("from .b import thing\n")
    (pkg / "b.py").write_text("thing = 1\n\ndef f():\n    from pkg import a\n")
    # pkg.sub (its __init__) -> pkg.sub.c, and pkg.sub.c -> pkg.sub through `from .. import sub`.
    (pkg / "sub" / "__init__.py").write_text("from pkg.sub.c import x\n")
    (pkg / "sub" / "c.py").write_text("x = 1\nfrom .. import sub\n")
    # A package importing its own submodule is not a circle by itself.
    (pkg / "sub" / "d.py").write_text("import os\n")
    graph = import_graph(tmp_path, ["pkg"])
    assert graph["pkg.a"] == {"pkg.b"}
    assert graph["pkg.b"] == {"pkg.a"}
    assert cycles(graph) == {frozenset({"pkg.a", "pkg.b"}), frozenset({"pkg.sub", "pkg.sub.c"})}
