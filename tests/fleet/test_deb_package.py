"""The ``headshot-kiosk`` Debian package, for real (issue 18): build, lintian, install, verify, purge.

``make deb`` builds the package (``tools/build_deb.py``). Here it is built once per session, checked by
lintian (no errors), installed on this machine with ``dpkg -i``, its units checked with ``systemd-analyze
verify``, the installed venv's ``python -m appliance check-config`` run, then removed and purged; a
snapshot taken before the install must match the one after the purge (files, links, owners, modes and
the content of small files under /etc, /opt, /var/lib, ... and the account databases).

Installing the package provisions the machine (``provisioning apply`` in the postinst). On a machine
not booted with systemd (CI, containers) the postinst writes files but starts, mounts and changes nothing
in the running system: that is checked too (no kiosk process, no mount, core_pattern and swap as before).
A developer's machine booted with systemd would be really provisioned (swap off, kiosk units, the kiosk
browser's Chromium policy), so the install test runs there only with ``HK_DEB_TEST_ON_SYSTEMD=1``.

The arm64 (JetPack 6) wheelhouse is resolved for cp310/aarch64 with ``pip download --only-binary=:all:``
and checked to hold no PyPI OpenCV (nothing that installs ``cv2``) and numpy 1.x; the arm64 package is
built from it and checked by lintian too.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / "tools"
PREFIX = Path("/opt/headshot-kiosk")
VENV_PYTHON = PREFIX / ".venv" / "bin" / "python"
CONFIG = Path("/etc/headshot-kiosk/kiosk.toml")
MANIFEST = Path("/var/lib/headshot-kiosk-package/manifest")
PACKAGED_UNITS = (
    Path("/lib/systemd/system/headshot-kiosk.service"),
    Path("/lib/systemd/system/headshot-kiosk-cert-renew.service"),
    Path("/lib/systemd/system/headshot-kiosk-cert-renew.timer"),
)
DEVICE_UNIT = Path("/etc/systemd/system/headshot-kiosk.service")
# Where the package, dpkg, deb-systemd-helper and provisioning apply write; compared before/after.
SNAPSHOT_ROOTS = (
    "/etc",
    "/opt",
    "/var/lib",
    "/lib/systemd",
    "/usr/lib/headshot-kiosk",
    "/usr/share/headshot-kiosk",
    "/usr/share/doc/headshot-kiosk",
    "/home",
    "/run/headshot-kiosk",
)
# dpkg's and apt's own databases record every install and removal (the purged package leaves them, as any
# package does); the package's own entries there (/var/lib/dpkg/info/headshot-kiosk.*) are checked apart.
SNAPSHOT_SKIP = ("/var/lib/dpkg", "/var/lib/apt", "/var/cache")
# The shadow suite's one-generation backups change with every account change (systemd-sysusers, userdel);
# they are compared for traces of the accounts instead (the postrm refreshes them after deleting them).
ACCOUNT_BACKUPS = ("/etc/passwd-", "/etc/group-", "/etc/shadow-", "/etc/gshadow-")
_HASH_LIMIT = 1 << 20
_SECONDS = {"build": 0.0}


def _load_tool(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # build_deb imports wheelhouse by name
    spec.loader.exec_module(module)
    return module


def _require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (make system-deps installs debhelper, lintian, ...)")


def _require_installable() -> None:
    if os.geteuid() != 0:
        pytest.skip("dpkg -i / dpkg -P need root")
    if Path("/run/systemd/system").is_dir() and os.environ.get("HK_DEB_TEST_ON_SYSTEMD") != "1":
        pytest.skip(
            "booted with systemd: installing the package would really provision this machine (swap off, "
            "kiosk units, default target); set HK_DEB_TEST_ON_SYSTEMD=1 on a throw-away machine"
        )
    done = subprocess.run(["dpkg-query", "-W", "headshot-kiosk"], capture_output=True, check=False)
    if done.returncode == 0:
        pytest.skip("headshot-kiosk is already installed here; the test would remove the operator's copy")


def _run(
    argv: list[str], *, timeout: float = 600, env: dict[str, str] | None = None, cwd: Path = REPO
) -> str:
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, env=env, cwd=cwd
    )
    assert done.returncode == 0, f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def _dpkg(*args: str, env: dict[str, str] | None = None) -> str:
    """dpkg, waiting (up to 2 min) while another dpkg or apt holds its lock instead of failing."""
    deadline = time.monotonic() + 120
    while True:
        done = subprocess.run(
            ["dpkg", *args], capture_output=True, text=True, timeout=600, check=False, env=env, cwd="/"
        )
        if done.returncode == 0 or "lock" not in done.stderr or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert done.returncode == 0, (
        f"dpkg {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    return done.stdout + done.stderr


def _build(arch: str, out: Path, wheels: Path | None = None) -> Path:
    _require("dpkg-buildpackage", "dh", "dpkg-deb")
    argv = [sys.executable, str(TOOLS / "build_deb.py"), "--arch", arch, "--out", str(out)]
    if wheels is not None:
        argv += ["--wheels", str(wheels)]
    started = time.monotonic()
    _run(argv)
    _SECONDS["build"] += time.monotonic() - started
    version = _load_tool("wheelhouse").project_version()
    deb = out / f"headshot-kiosk_{version}_{arch}.deb"
    assert deb.is_file(), f"{deb} was not written"
    return deb


@pytest.fixture(scope="module")
def amd64_deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The amd64 package, built once per session (what ``make deb`` writes to build/deb)."""
    return _build("amd64", tmp_path_factory.mktemp("deb-amd64"))


@pytest.fixture(scope="module")
def arm64_wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The JetPack 6 wheelhouse, wheels only (pycuda's sdist, built on the device, is left out here)."""
    wheelhouse = _load_tool("wheelhouse")
    out = tmp_path_factory.mktemp("wheels-arm64") / "wheels"
    wheelhouse.build(wheelhouse.JETPACK6, out, with_project=True, with_sdists=False)
    return out


def _lintian_errors(deb: Path) -> list[str]:
    _require("lintian")
    # --fail-on error: exit 1 only for errors (warnings and infos are listed, not fatal).
    done = subprocess.run(
        ["lintian", "--fail-on", "error", "--tag-display-limit", "0", str(deb)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    errors = [line for line in done.stdout.splitlines() if line.startswith("E:")]
    assert done.returncode == 0 or errors, f"lintian failed to run:\n{done.stdout}\n{done.stderr}"
    return errors


def _snapshot() -> dict[str, str]:
    """Path -> type, mode, owner, size, link target and (small regular files) sha256; plus the accounts."""
    seen: dict[str, str] = {}
    for top in SNAPSHOT_ROOTS:
        if not os.path.lexists(top):
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in SNAPSHOT_SKIP]
            for name in [*dirnames, *filenames, ""]:
                path = os.path.join(dirpath, name) if name else dirpath
                try:
                    st = os.lstat(path)
                except FileNotFoundError:
                    continue
                text = f"{stat.filemode(st.st_mode)} {st.st_uid}:{st.st_gid}"
                if stat.S_ISLNK(st.st_mode):
                    text += " -> " + os.readlink(path)
                elif stat.S_ISREG(st.st_mode):
                    text += f" {st.st_size}"
                    if st.st_size <= _HASH_LIMIT:
                        text += " " + hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
                seen[path] = text
    for database in ("passwd", "group"):
        out = subprocess.run(["getent", database], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            seen[f"{database}:{line.split(':', 1)[0]}"] = line
    return seen


def _differences(before: dict[str, str], after: dict[str, str]) -> list[str]:
    lines = []
    for path in sorted(set(before) | set(after)):
        if before.get(path) != after.get(path):
            lines.append(f"{path}: {before.get(path, '(absent)')} => {after.get(path, '(absent)')}")
    return lines


def _kernel_state() -> tuple[str, str, str]:
    """(core_pattern, /proc/swaps, our mounts): what a postinst must not change without systemd."""
    core = Path("/proc/sys/kernel/core_pattern").read_text(encoding="utf-8")
    swaps = Path("/proc/swaps").read_text(encoding="utf-8")
    # Mount points the kiosk's units would create (the RAM store, the browser's home), by field 5 of
    # mountinfo; other tests' tmpfs stores elsewhere are not the package's.
    ours = ("/run/headshot-kiosk", "/home/headshot-kiosk-browser", str(PREFIX))
    lines = Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines()
    mounts = "\n".join(line for line in lines if line.split()[4].startswith(ours))
    return core, swaps, mounts


def _kiosk_processes() -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(PREFIX) in cmdline:
            found.append(f"{proc.name}: {cmdline[:120]}")
    return found


def _purge_after_failure() -> None:
    if (
        subprocess.run(["dpkg-query", "-W", "headshot-kiosk"], capture_output=True, check=False).returncode
        == 0
    ):
        _dpkg("--purge", "headshot-kiosk")


# ------------------------------------------------------------------------------------------------ amd64


def test_amd64_package_is_lintian_clean_and_shaped_as_pinned(amd64_deb: Path) -> None:
    assert amd64_deb.name.endswith("_amd64.deb")
    errors = _lintian_errors(amd64_deb)
    assert not errors, "lintian errors:\n" + "\n".join(errors)
    info = _run(["dpkg-deb", "--field", str(amd64_deb), "Architecture", "Depends"])
    assert "Architecture: amd64" in info
    assert "python3-venv" in info and "python3 (<< 3." in info, info
    listing = _run(["dpkg-deb", "--contents", str(amd64_deb)])
    # Nothing under /opt is shipped: the venv is made there at install time.
    assert "./opt/" not in listing
    for unit in PACKAGED_UNITS:
        assert f".{unit}" in listing, f"{unit} not shipped"
    assert "./usr/share/headshot-kiosk/wheels/requirements.lock" in listing
    assert "./usr/share/headshot-kiosk/models/SHA256SUMS" in listing
    conffiles = subprocess.run(
        ["dpkg-deb", "--ctrl-tarfile", str(amd64_deb)], capture_output=True, check=True
    ).stdout
    assert b"conffiles" in conffiles


def test_install_provisions_files_only_then_remove_and_purge_leave_nothing(
    amd64_deb: Path, tmp_path: Path
) -> None:
    _require_installable()
    _require("systemd-analyze")
    before = _snapshot()
    kernel_before = _kernel_state()
    # The browser unit is forced on (cage is not installed here) so that every file apply can write is
    # written, and then has to go again.
    env = {**os.environ, "HEADSHOT_KIOSK_BROWSER": "yes", "DEBIAN_FRONTEND": "noninteractive"}
    timings: dict[str, float] = {}
    try:
        started = time.monotonic()
        log = _dpkg("--install", str(amd64_deb), env=env)
        timings["install"] = time.monotonic() - started
        assert "not booted with systemd: files only" in log or Path("/run/systemd/system").is_dir(), log

        # The venv, built from the wheelhouse, runs the appliance's own config check on the conffile.
        assert VENV_PYTHON.exists(), log
        # Made from Debian's interpreter (the one the package depends on), not a python3 earlier on PATH.
        assert "home = /usr/bin" in (PREFIX / ".venv" / "pyvenv.cfg").read_text(encoding="utf-8")
        # (cwd /: `python -m` puts the working directory first on sys.path, and this checkout is one.)
        check = _run([str(VENV_PYTHON), "-m", "appliance", "check-config", str(CONFIG)], cwd=Path("/"))
        assert "config OK" in check
        # The installed app comes from the package's wheel.
        code = "import appliance, cv2; print(appliance.__file__)"
        where = _run([str(VENV_PYTHON), "-c", code], cwd=Path("/"))
        assert where.startswith(str(PREFIX)), where
        # The installed wheels and the packaged (sha256-checked) models really make a headshot.
        portrait = REPO / "tests" / "assets" / "faces" / "astronaut.png"
        render = [str(VENV_PYTHON), "-m", "engine", "render", str(portrait), "-o", str(tmp_path / "out")]
        render += ["--models-dir", str(PREFIX / "models"), "--backend", "onnxruntime", "--json"]
        assert '"ok": true' in _run(render, cwd=Path("/"))

        # The units the package ships and the device unit apply rendered load cleanly (the ExecStart
        # interpreter exists now, so verify checks it too).
        _run(["systemd-analyze", "verify", *map(str, PACKAGED_UNITS), str(DEVICE_UNIT)])
        uid = int(_run(["id", "-u", "headshot-kiosk"]).strip())
        assert f"uid={uid}," in DEVICE_UNIT.read_text(encoding="utf-8"), "device unit lacks the real uid"
        assert oct(CONFIG.stat().st_mode & 0o777) == "0o640"

        # Not booted with systemd: nothing was started, mounted or changed in the running kernel.
        if not Path("/run/systemd/system").is_dir():
            assert _kernel_state() == kernel_before
            assert not _kiosk_processes()
        assert MANIFEST.is_file()

        started = time.monotonic()
        _dpkg("--remove", "headshot-kiosk", env=env)
        timings["remove"] = time.monotonic() - started
        # remove: the machine is no longer a kiosk, the kiosk's data stays until purge.
        assert not PREFIX.exists() and not DEVICE_UNIT.exists()
        assert not Path("/etc/chromium/policies/managed/headshot-kiosk.json").exists()
        assert CONFIG.exists() and Path("/var/lib/headshot-kiosk/audit").is_dir()
        assert subprocess.run(["id", "headshot-kiosk"], capture_output=True, check=False).returncode == 0

        started = time.monotonic()
        _dpkg("--purge", "headshot-kiosk", env=env)
        timings["purge"] = time.monotonic() - started
    finally:
        _purge_after_failure()
    after = _snapshot()
    assert not list(Path("/var/lib/dpkg/info").glob("headshot-kiosk.*"))
    for backup in ACCOUNT_BACKUPS:
        before.pop(backup, None)
        after.pop(backup, None)
        if Path(backup).exists():
            assert b"headshot-kiosk" not in Path(backup).read_bytes(), f"{backup} still names the accounts"
    differences = _differences(before, after)
    assert not differences, "left behind or changed after purge:\n" + "\n".join(differences[:60])
    print(
        f"\ndeb timings (s): build {_SECONDS['build']:.0f}, "
        + ", ".join(f"{k} {v:.0f}" for k, v in timings.items())
    )


# ------------------------------------------------------------------------------------------------ arm64


def test_forbidden_module_check_finds_a_cv2_wheel(tmp_path: Path) -> None:
    # The check below is only worth something if it would see PyPI's OpenCV: a wheel shaped like it.
    wheelhouse = _load_tool("wheelhouse")
    fake = tmp_path / "opencv_python_headless-4.8.0.76-cp37-abi3-manylinux_2_17_aarch64.whl"
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr("cv2/__init__.py", "")
        archive.writestr("cv2/cv2.abi3.so", b"\x7fELF")
        archive.writestr(
            "opencv_python_headless-4.8.0.76.dist-info/METADATA", "Name: opencv-python-headless\n"
        )
    (tmp_path / "numpy-1.26.4-cp310-cp310-manylinux_2_17_aarch64.whl").write_bytes(b"")
    assert wheelhouse.wheel_top_level(fake) == {"cv2"}
    with zipfile.ZipFile(tmp_path / "numpy-1.26.4-cp310-cp310-manylinux_2_17_aarch64.whl", "w") as archive:
        archive.writestr("numpy/__init__.py", "")
        archive.writestr("numpy.libs/libopenblas.so", b"")
    assert wheelhouse.forbidden_providers(tmp_path, wheelhouse.JETSON_FORBIDDEN_MODULES) == {
        fake.name: {"cv2"}
    }


def test_jetpack6_wheelhouse_resolves_for_cp310_aarch64_without_cv2(arm64_wheelhouse: Path) -> None:
    wheelhouse = _load_tool("wheelhouse")
    profile = wheelhouse.JETPACK6
    wheels = sorted(p.name for p in arm64_wheelhouse.glob("*.whl"))
    names = {wheelhouse.distribution_of(w)[0]: wheelhouse.distribution_of(w)[1] for w in wheels}
    assert not wheelhouse.forbidden_providers(arm64_wheelhouse, frozenset({"cv2"}))
    assert not {n for n in names if n.startswith("opencv")}, sorted(names)
    assert names["numpy"].startswith("1."), names["numpy"]
    # Markers were evaluated for Python 3.10 (pip alone would have used this interpreter's version).
    assert "tomli" in names
    assert not wheelhouse.check_wheel_tags(profile, arm64_wheelhouse)
    assert any(w.endswith("aarch64.whl") and "-cp310-" in w for w in wheels)
    lock = (arm64_wheelhouse / wheelhouse.LOCK_NAME).read_text(encoding="utf-8").splitlines()
    assert len(lock) == len(wheels) and all("--hash=sha256:" in line for line in lock)


def test_jetpack6_package_builds_lintian_clean(arm64_wheelhouse: Path, tmp_path: Path) -> None:
    deb = _build("arm64", tmp_path, wheels=arm64_wheelhouse)
    errors = _lintian_errors(deb)
    assert not errors, "lintian errors:\n" + "\n".join(errors)
    fields = _run(["dpkg-deb", "--field", str(deb), "Architecture", "Depends"])
    assert "Architecture: arm64" in fields
    # JetPack's OpenCV and TensorRT, Python 3.10 exactly.
    for depend in ("libopencv-python", "python3-libnvinfer", "python3 (>= 3.10~)", "python3 (<< 3.11~)"):
        assert depend in fields, fields
    profile = _run(["sh", "-c", f"dpkg-deb --fsys-tarfile {deb} | tar -xO ./usr/lib/headshot-kiosk/profile"])
    assert "system_site_packages=yes" in profile
