"""Write the record of one ``make test-device`` run: when, on which board and JetPack, and every result.

Run by ``make test-device`` after pytest (``--junitxml build/device/junit.xml``), whatever pytest's exit
status. README's "What is verified where" says a Jetson row is verified only when such a record exists:
on a Jetson the record goes to ``docs/device-runs/<date>-<board>.md`` (commit it); elsewhere to
``build/device/RECORD.md`` (a run off the device proves nothing about the device).

The record names versions and test outcomes only (skip and failure messages are test output about the
machine, never guest data).
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEVICE_RUNS = REPO_ROOT / "docs" / "device-runs"
OFF_DEVICE = REPO_ROOT / "build" / "device" / "RECORD.md"
TEGRA_RELEASE = Path("/etc/nv_tegra_release")
BOARD_MODEL = Path("/proc/device-tree/model")
# What the venv's interpreter imports (the modules that differ between a Jetson and a laptop).
_VERSIONS_PROBE = """
import importlib, re
for name in ("numpy", "cv2", "tensorrt", "pycuda", "onnxruntime"):
    try:
        module = importlib.import_module(name)
    except Exception as exc:
        print(f"{name}\\tnot importable ({type(exc).__name__})")
        continue
    version = getattr(module, "__version__", getattr(module, "VERSION", "?"))
    extra = ""
    if name == "cv2":
        match = re.search(r"^\\s*GStreamer:\\s*(\\w+)", module.getBuildInformation(), re.M)
        extra = f", GStreamer {match.group(1) if match else 'unknown'}, {module.__file__}"
    print(f"{name}\\t{version}{extra}")
"""


@dataclass(frozen=True)
class Result:
    """One test's outcome: ``passed``, ``failed``, ``error`` or ``skipped`` (with pytest's message)."""

    test: str
    outcome: str
    message: str = ""


def read_junit(path: Path) -> list[Result]:
    """Every testcase of a pytest JUnit XML file."""
    results = []
    for case in ET.parse(path).getroot().iter("testcase"):  # our own pytest's output
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            element = case.find(kind)
            if element is not None:
                outcome = "failed" if kind == "failure" else kind
                message = (
                    (element.get("message") or "").splitlines()[0][:200] if element.get("message") else ""
                )
                break
        results.append(Result(name, outcome, message))
    return results


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip("\x00\n ")
    except OSError:
        return ""


def jetpack_version() -> str:
    """The installed ``nvidia-jetpack`` package's version, or ``unknown``."""
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "nvidia-jetpack"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "unknown"


def module_versions(python: str) -> list[str]:
    """``module<TAB>version`` lines as the interpreter ``python`` (the venv) imports them."""
    done = subprocess.run([python, "-c", _VERSIONS_PROBE], capture_output=True, text=True, check=False)
    return done.stdout.splitlines()


def render(results: list[Result], *, when: dt.datetime, board: str, python: str) -> str:
    """The record as Markdown."""
    counts = {k: sum(r.outcome == k for r in results) for k in ("passed", "failed", "error", "skipped")}
    l4t = _read(TEGRA_RELEASE).splitlines()[0] if _read(TEGRA_RELEASE) else "not a Jetson"
    lines = [
        f"# Device run {when:%Y-%m-%d %H:%M} UTC",
        "",
        f"- board: {board}",
        f"- L4T: {l4t}",
        f"- JetPack (nvidia-jetpack): {jetpack_version()}",
        f"- kernel: {platform.release()}; Python {platform.python_version()}",
        *(f"- {line.replace(chr(9), ': ', 1)}" for line in module_versions(python)),
        "- result: " + ", ".join(f"{v} {k}" for k, v in counts.items()),
        "",
        "| test | outcome | message |",
        "|---|---|---|",
    ]
    for result in results:
        message = result.message.replace("|", "\\|")
        lines.append(f"| `{result.test}` | {result.outcome} | {message} |")
    return "\n".join(lines) + "\n"


def record_path(board: str, when: dt.datetime, *, on_device: bool) -> Path:
    """Where the record goes (see the module docstring)."""
    if not on_device:
        return OFF_DEVICE
    slug = re.sub(r"[^a-z0-9]+", "-", board.lower()).strip("-") or "jetson"
    return DEVICE_RUNS / f"{when:%Y-%m-%d}-{slug}.md"


def main(argv: list[str] | None = None) -> int:
    """``--junit FILE [--python PATH]``: write the record and print where it went."""
    parser = argparse.ArgumentParser(description="Record a make test-device run.")
    parser.add_argument("--junit", type=Path, required=True)
    parser.add_argument("--python", default=sys.executable, help="the venv interpreter the tests ran in")
    args = parser.parse_args(argv)
    if not args.junit.is_file():
        print(f"no {args.junit}: pytest did not get to write results; nothing recorded", file=sys.stderr)
        return 1
    when = dt.datetime.now(dt.timezone.utc)
    on_device = TEGRA_RELEASE.is_file()
    board = _read(BOARD_MODEL) or platform.node() or "unknown"
    path = record_path(board, when, on_device=on_device)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        render(read_junit(args.junit), when=when, board=board, python=args.python), encoding="utf-8"
    )
    note = "commit it" if on_device else "not a Jetson: kept out of docs/device-runs"
    print(f"device run recorded in {path} ({note})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
