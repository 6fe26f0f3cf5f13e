"""P1-8 unit exposure gate: the rendered kiosk unit scores <= 1.5 in ``systemd-analyze security --offline``
(issue 6; DESIGN.md §6 measured 1.4 here) and passes ``systemd-analyze verify``; a bare unit scores far worse.

Needs systemd-analyze >= 250 (``--offline``). CI images based on Debian bookworm get it from the ``systemd``
package (252); when it is missing the test is skipped with that reason, never faked.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from appliance.config import parse_config
from provisioning.configfile import device_config
from provisioning.doctor import parse_exposure
from provisioning.render import render_kiosk_unit
from provisioning.target import Target

REPO = Path(__file__).resolve().parents[2]
GATE = 1.5
BARE_AT_LEAST = 9.0


def _systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd, version >= 250)")
    first = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False).stdout
    match = re.match(r"systemd (\d+)", first)
    if match is None or int(match.group(1)) < 250:
        pytest.skip(f"systemd-analyze too old for --offline (needs >= 250): {first.splitlines()[:1]}")
    return tool


def _variants() -> dict[str, str]:
    # The service's interpreter must exist for `verify`: point the prefix at this checkout and its .venv.
    prefix = PurePosixPath(str(REPO))
    units = {}
    devices = {
        "orin-jp6": ("5.15.148-tegra", ("/dev/nvhost-ctrl-gpu", "/dev/nvmap", "/dev/video0")),
        "thor-jp7": ("6.8.12-tegra", ("/dev/nvidia0", "/dev/nvidiactl", "/dev/video0")),
        "cpu": ("6.8.0-52-generic", ("/dev/video0",)),
    }
    for name, (kernel, nodes) in devices.items():
        target = Target(Path("/"), kernel, nodes, 995, 993, prefix=prefix)
        config = device_config(target, public_host="kiosk.lan", tls=name == "thor-jp7")
        if name == "cpu":
            config = parse_config(
                {**config.model_dump(mode="json", exclude_none=True), "engine": {"backend": "onnxruntime"}}
            )
        units[name] = render_kiosk_unit(config, target)
    return units


def _score(tool: str, unit: Path, threshold: float) -> tuple[float, int]:
    # --threshold counts in tenths (the 0-100 scale systemd uses internally): 15 means 1.5.
    done = subprocess.run(
        [tool, "security", "--offline=true", f"--threshold={round(threshold * 10)}", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    score = parse_exposure(done.stdout + done.stderr)
    assert score is not None, f"no score in systemd-analyze output:\n{done.stdout}\n{done.stderr}"
    return score, done.returncode


@pytest.mark.parametrize("variant", ["orin-jp6", "thor-jp7", "cpu"])
def test_rendered_unit_exposure_is_at_most_the_gate(variant: str, tmp_path: Path) -> None:
    tool = _systemd_analyze()
    unit = tmp_path / "headshot-kiosk.service"
    unit.write_text(_variants()[variant], encoding="utf-8")
    verify = subprocess.run(
        [tool, "verify", str(unit)], capture_output=True, text=True, check=False, timeout=60
    )
    assert verify.returncode == 0, verify.stderr
    score, code = _score(tool, unit, GATE)
    print(f"{variant}: exposure {score}")  # shown with -s; recorded in docs/PROVISIONING.md
    assert score <= GATE and code == 0, f"{variant} exposure {score} > {GATE}"


def test_bare_unit_control_scores_much_higher(tmp_path: Path) -> None:
    tool = _systemd_analyze()
    bare = tmp_path / "bare.service"
    bare.write_text(f"[Service]\nExecStart={REPO / '.venv/bin/python'} -m appliance run\n", encoding="utf-8")
    score, code = _score(tool, bare, GATE)
    assert score >= BARE_AT_LEAST and code != 0, f"bare unit scored {score}; is the analyzer working?"
