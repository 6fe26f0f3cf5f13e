"""The wheelhouse the Debian package builds its venv from, for one target profile (issue 18).

Run as ``.venv/bin/python tools/wheelhouse.py --arch amd64|arm64 --out DIR`` (``make deb`` calls it through
``tools/build_deb.py``). DIR receives every wheel the kiosk's venv needs on the *target*, the project's own
wheel, and ``requirements.lock`` (``name==version --hash=sha256:...`` per file), which the package's postinst
installs with ``pip install --no-index --require-hashes --no-deps``: nothing is fetched on the device and
nothing that was not resolved here can get in.

Two profiles (``PROFILES``):

* ``amd64``: laptops and CI, as ``make venv`` installs it: every pin of pyproject.toml, PyPI's headless
  OpenCV, numpy 2. The target Python is the build host's ``/usr/bin/python3`` (the interpreter the package
  depends on), so a package built on Debian 12 is for Debian 12.
* ``arm64``: JetPack 6 (Ubuntu 22.04, Python 3.10, glibc 2.35). The venv is made with
  ``--system-site-packages`` so JetPack's own OpenCV (NVIDIA's ``libopencv-python``, 4.8.0, built with
  GStreamer; docs.nvidia.com JetPack 6 release notes, RidgeRun "NVIDIA Jetpack 6 Components") and
  TensorRT (``python3-libnvinfer``) are the ones imported. So no PyPI OpenCV may be in it: PyPI's wheels have
  no GStreamer and would shadow JetPack's (the CSI camera then refuses to open). numpy stays on 1.x because
  JetPack's cv2 and TensorRT bindings are built against Ubuntu's numpy 1.21 (a module built against numpy
  1.x does not import under numpy 2). pycuda has no aarch64 wheel on PyPI: its sdist goes into the
  wheelhouse and the postinst builds it on the device against JetPack's CUDA (``--no-build-isolation``, so
  its build requirements are wheels here too). systemd-python is taken from Ubuntu (``python3-systemd``).

pip evaluates environment markers (``python_version < "3.11"``, ``platform_machine``) against the
interpreter it runs in even with ``--python-version``/``--platform`` (pypa/pip#11664, still open): run from
CI's Python 3.11 it would silently drop ``tomli`` for a Python 3.10 target. So pip runs here with its
vendored ``packaging.markers.default_environment`` answering for the target (what Pex and panda3d do too),
and ``--only-binary=:all:`` with the target's platform, ABI and Python tags does the rest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the build runs in the project's venv; JetPack's 3.10 uses tomli
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCK_NAME = "requirements.lock"
SDIST_LOCK_NAME = "build-on-device.lock"
_CHUNK = 1 << 20
# Top-level names a distribution may not install into the Jetson venv: JetPack's cv2 must win.
JETSON_FORBIDDEN_MODULES = frozenset({"cv2"})


@dataclass(frozen=True)
class Profile:
    """What one target needs: interpreter, platform tags, marker environment and requirement changes.

    ``drop`` names distributions of pyproject.toml the target's system provides instead; ``replace`` maps a
    distribution to the requirement used in its place; ``extra`` adds wheels; ``sdists`` are built on the
    device at install time (their build requirements must be among the wheels).
    """

    arch: str  # Debian architecture
    machine: str  # platform_machine / wheel platform suffix
    python: tuple[int, int]
    python_full: str
    glibc: tuple[int, int]
    platform_release: str
    system_site_packages: bool
    drop: frozenset[str] = frozenset()
    replace: dict[str, str] = field(default_factory=dict)
    extra: tuple[str, ...] = ()
    sdists: tuple[str, ...] = ()
    forbidden_modules: frozenset[str] = frozenset()

    @property
    def cp(self) -> str:
        """``cp310`` for Python 3.10."""
        return f"cp{self.python[0]}{self.python[1]}"

    def platforms(self) -> list[str]:
        """Wheel platform tags the target's glibc accepts, newest first (PEP 600 manylinux_x_y and the
        manylinux2014 alias of 2.17). pip takes each ``--platform`` literally, so all are listed."""
        tags = [f"manylinux_2_{minor}_{self.machine}" for minor in range(self.glibc[1], 16, -1)]
        return [*tags, f"manylinux2014_{self.machine}"]

    def marker_environment(self) -> dict[str, str]:
        """PEP 508 marker values as the target's interpreter would report them."""
        return {
            "implementation_name": "cpython",
            "implementation_version": self.python_full,
            "os_name": "posix",
            "platform_machine": self.machine,
            "platform_python_implementation": "CPython",
            "platform_release": self.platform_release,
            "platform_system": "Linux",
            "platform_version": "",
            "python_full_version": self.python_full,
            "python_version": f"{self.python[0]}.{self.python[1]}",
            "sys_platform": "linux",
        }


def _host_python() -> tuple[tuple[int, int], str]:
    """(major, minor) and full version of the build host's /usr/bin/python3 (the package's interpreter)."""
    python = shutil.which("python3", path="/usr/bin") or sys.executable
    out = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    major, minor = (int(p) for p in out.split(".")[:2])
    return (major, minor), out


def _host_glibc() -> tuple[int, int]:
    text = os.confstr("CS_GNU_LIBC_VERSION") or "glibc 2.17"
    major, minor = (int(p) for p in text.split()[-1].split(".")[:2])
    return major, minor


def amd64_profile() -> Profile:
    """Laptops and CI: the build host's Debian/Ubuntu Python, every pin of pyproject.toml."""
    python, full = _host_python()
    return Profile(
        arch="amd64",
        machine="x86_64",
        python=python,
        python_full=full,
        glibc=_host_glibc(),
        platform_release="",
        system_site_packages=False,
    )


# JetPack 6.x: Ubuntu 22.04 ships Python 3.10.12 and glibc 2.35; L4T r36 runs kernel 5.15 (README hardware
# table). numpy 1.26.4 is the last 1.x release and has cp310 aarch64 wheels.
JETPACK6 = Profile(
    arch="arm64",
    machine="aarch64",
    python=(3, 10),
    python_full="3.10.12",
    glibc=(2, 35),
    platform_release="5.15.148-tegra",
    system_site_packages=True,
    drop=frozenset({"opencv-python-headless"}),
    replace={"numpy": "numpy==1.26.4"},
    # pycuda's runtime requirements (its sdist's egg-info) and its build requirements (pyproject.toml:
    # setuptools, wheel, numpy>=1.24), so the device builds it offline.
    extra=("pytools==2026.1.1", "platformdirs==4.12.4", "mako==1.4.3", "setuptools==84.2.1", "wheel==0.48.0"),
    sdists=("pycuda==2026.1",),
    forbidden_modules=JETSON_FORBIDDEN_MODULES,
)


def profile_for(arch: str) -> Profile:
    """The profile of Debian architecture ``arch`` (``amd64`` or ``arm64``)."""
    if arch == "amd64":
        return amd64_profile()
    if arch == "arm64":
        return JETPACK6
    raise SystemExit(f"no wheelhouse profile for architecture {arch!r} (amd64 or arm64)")


def canonical(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def project_dependencies(pyproject: Path = REPO_ROOT / "pyproject.toml") -> list[str]:
    """``[project] dependencies`` of pyproject.toml, as written (markers included)."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    return list(data["project"]["dependencies"])


# What `make test-device` needs of the dev extras on the Jetson. Not hypothesis: its pin needs Python >= 3.11,
# and tests/device does not use it; the browser and audit tools stay off the device too.
DEVICE_TEST_TOOLS = ("pytest", "onnx")


def device_test_tools(pyproject: Path = REPO_ROOT / "pyproject.toml") -> list[str]:
    """The pinned ``[project.optional-dependencies] dev`` requirements named in ``DEVICE_TEST_TOOLS``."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    dev = data["project"]["optional-dependencies"]["dev"]
    return [r for r in dev if canonical(re.split(r"[ ;<>=!~\[]", r, maxsplit=1)[0]) in DEVICE_TEST_TOOLS]


def project_version(pyproject: Path = REPO_ROOT / "pyproject.toml") -> str:
    """``[project] version``."""
    return str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"])


def requirements_for(profile: Profile, dependencies: list[str]) -> list[str]:
    """The top-level requirements for ``profile``: pyproject's, minus ``drop``, with ``replace`` applied,
    plus ``extra``. Markers stay: pip evaluates them in the target's environment (see ``download``)."""
    out: list[str] = []
    for requirement in dependencies:
        name = canonical(re.split(r"[ ;<>=!~\[]", requirement.strip(), maxsplit=1)[0])
        if name in profile.drop:
            continue
        out.append(profile.replace.get(name, requirement))
    return [*out, *profile.extra]


# Runs pip with the marker environment of the target (see the module docstring). argv[1] is the JSON
# environment, the rest is pip's command line.
_PIP_WITH_TARGET_MARKERS = """
import json, sys
from pip._vendor.packaging import markers
target = json.loads(sys.argv[1])
markers.default_environment = lambda: dict(target)
from pip._internal.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def _pip(profile: Profile, args: list[str]) -> None:
    env = json.dumps(profile.marker_environment())
    # -I: no user site or PYTHON* variables; a pip.conf still applies (index mirrors, certificates).
    command = [sys.executable, "-I", "-c", _PIP_WITH_TARGET_MARKERS, env, *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise SystemExit(f"pip {' '.join(args[:1])} for {profile.arch}/{profile.cp} failed:\n{tail}")


def download(profile: Profile, requirements: list[str], dest: Path, *, with_sdists: bool = True) -> None:
    """Resolve ``requirements`` for the target and download binary wheels only into ``dest``; then the
    profile's sdists (built on the device) unless ``with_sdists`` is False."""
    req_file = dest.parent / f".{dest.name}.requirements.txt"
    req_file.write_text("\n".join(requirements) + "\n", encoding="utf-8")
    try:
        args = ["download", "--quiet", "--disable-pip-version-check", "--dest", str(dest)]
        args += ["--only-binary=:all:", "--implementation", "cp"]
        args += ["--python-version", f"{profile.python[0]}.{profile.python[1]}"]
        for abi in (profile.cp, "abi3", "none"):
            args += ["--abi", abi]
        for platform in profile.platforms():
            args += ["--platform", platform]
        _pip(profile, [*args, "-r", str(req_file)])
        for sdist in profile.sdists if with_sdists else ():
            # The sdist alone (its dependencies are in ``extra``). pip still prepares its metadata in an
            # isolated build environment; pycuda's setup.py pauses 10 s there when CUDA is not configured.
            name = canonical(sdist.split("==")[0])
            args = ["download", "--quiet", "--disable-pip-version-check", "--dest", str(dest), "--no-deps"]
            _pip(profile, [*args, "--no-binary", name, sdist])
    finally:
        req_file.unlink(missing_ok=True)


def build_project_wheel(dest: Path, source: Path = REPO_ROOT) -> Path:
    """Build the project's own wheel (pure Python) from a copy of ``source``; returns its path.

    A copy, because setuptools writes ``build/`` and ``*.egg-info`` next to the sources, and ``build/`` of
    the checkout is where ``make`` puts its outputs.
    """
    with tempfile.TemporaryDirectory(prefix="hk-wheel-") as tmp:
        tree = Path(tmp) / "src"
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", ".*")
        tree.mkdir()
        for name in ("pyproject.toml", "README.md", "NOTICE"):
            if (source / name).exists():
                shutil.copy2(source / name, tree / name)
        for package in ("engine", "appliance", "kiosk_ui", "provisioning"):
            shutil.copytree(source / package, tree / package, ignore=ignore)
        # Build isolation: setuptools as pyproject.toml's [build-system] asks, not whatever the venv has.
        command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
        done = subprocess.run(
            [*command, "--wheel-dir", str(dest), str(tree)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise SystemExit(f"building the project wheel failed:\n{done.stderr[-2000:]}")
    version = project_version(source / "pyproject.toml")
    wheels = sorted(dest.glob(f"headshot_kiosk-{version}-py3-none-any.whl"))
    if not wheels:
        raise SystemExit("pip wheel did not produce headshot_kiosk-*.whl")
    return wheels[0]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def distribution_of(filename: str) -> tuple[str, str]:
    """(canonical name, version) from a wheel (PEP 427) or sdist (``name-version.tar.gz``) file name."""
    if filename.endswith(".whl"):
        name, version = filename.split("-")[:2]
    else:
        stem = filename.removesuffix(".tar.gz").removesuffix(".zip")
        name, _, version = stem.rpartition("-")
    return canonical(name), version


def write_locks(wheelhouse: Path) -> tuple[Path, Path]:
    """``requirements.lock`` (every wheel) and ``build-on-device.lock`` (every sdist), with sha256 hashes.

    One line per file: ``name==version --hash=sha256:<hex>``. Two wheels of one distribution would be
    ambiguous for ``--require-hashes``, so that is an error.
    """
    wheels: dict[str, str] = {}
    sdists: dict[str, str] = {}
    for path in sorted(wheelhouse.iterdir()):
        if path.name.endswith(".lock") or path.name.startswith("."):
            continue
        name, version = distribution_of(path.name)
        table = wheels if path.name.endswith(".whl") else sdists
        if name in table:
            raise SystemExit(f"two files for {name} in {wheelhouse}: resolution is ambiguous")
        table[name] = f"{name}=={version} --hash=sha256:{sha256_file(path)}"
    lock = wheelhouse / LOCK_NAME
    sdist_lock = wheelhouse / SDIST_LOCK_NAME
    lock.write_text("".join(f"{line}\n" for _, line in sorted(wheels.items())), encoding="utf-8")
    sdist_lock.write_text("".join(f"{line}\n" for _, line in sorted(sdists.items())), encoding="utf-8")
    return lock, sdist_lock


def wheel_top_level(path: Path) -> set[str]:
    """Top-level importable names a wheel installs: first path components of its files (``cv2/...``,
    ``cv2.abi3.so`` -> ``cv2``), ignoring ``*.dist-info``/``*.data`` and ``*.libs`` (auditwheel's vendored
    shared libraries)."""
    names: set[str] = set()
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            first = member.split("/", 1)[0]
            if first.endswith((".dist-info", ".data", ".libs")):
                continue
            names.add(first.split(".", 1)[0])
    return names


def forbidden_providers(wheelhouse: Path, forbidden: frozenset[str]) -> dict[str, set[str]]:
    """Wheel file -> the forbidden top-level names it would install (empty when none does)."""
    found: dict[str, set[str]] = {}
    for wheel in sorted(wheelhouse.glob("*.whl")):
        hit = wheel_top_level(wheel) & forbidden
        if hit:
            found[wheel.name] = hit
    return found


def check_wheel_tags(profile: Profile, wheelhouse: Path) -> list[str]:
    """Wheels whose tags the target cannot install (wrong Python, ABI or machine); [] when all fit."""
    bad = []
    for wheel in sorted(wheelhouse.glob("*.whl")):
        python_tag, abi_tag, platform_tag = wheel.stem.split("-")[-3:]
        pythons = set(python_tag.split("."))
        if (
            not pythons & {profile.cp, "py3", f"cp{profile.python[0]}"}
            and not (abi_tag == "abi3" and any(p.startswith("cp3") for p in pythons))
        ) or (platform_tag != "any" and not platform_tag.endswith(profile.machine)):
            bad.append(wheel.name)
    return bad


def build(profile: Profile, out: Path, *, with_project: bool = True, with_sdists: bool = True) -> Path:
    """Fill ``out`` (emptied first) with the profile's wheelhouse and its locks; returns the lock path.

    Raises SystemExit with the reason when resolution fails, a wheel does not fit the target, or a wheel
    provides a forbidden module (``cv2`` on the Jetson).
    """
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    download(profile, requirements_for(profile, project_dependencies()), out, with_sdists=with_sdists)
    if with_project:
        build_project_wheel(out)
    misfits = check_wheel_tags(profile, out)
    if misfits:
        raise SystemExit(f"wheels that do not fit {profile.arch}/{profile.cp}: {', '.join(misfits)}")
    providers = forbidden_providers(out, profile.forbidden_modules)
    if providers:
        detail = ", ".join(f"{w} ({', '.join(sorted(m))})" for w, m in providers.items())
        raise SystemExit(f"the {profile.arch} wheelhouse must not provide these modules: {detail}")
    lock, _ = write_locks(out)
    return lock


def main(argv: list[str] | None = None) -> int:
    """Command line: build the wheelhouse of one architecture."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--arch", choices=("amd64", "arm64"), default="amd64")
    parser.add_argument("--out", type=Path, help="directory to fill (emptied first)")
    parser.add_argument("--no-project", action="store_true", help="dependencies only, not our own wheel")
    parser.add_argument(
        "--binary-only", action="store_true", help="wheels only: leave out the sdists built on the device"
    )
    parser.add_argument(
        "--device-test-tools", action="store_true", help="print the pinned test tools for make test-device"
    )
    args = parser.parse_args(argv)
    if args.device_test_tools:
        print(" ".join(device_test_tools()))
        return 0
    if args.out is None:
        parser.error("--out is required")
    profile = profile_for(args.arch)
    lock = build(profile, args.out, with_project=not args.no_project, with_sdists=not args.binary_only)
    count = len(lock.read_text(encoding="utf-8").splitlines())
    size = sum(p.stat().st_size for p in args.out.iterdir()) / 1e6
    print(f"{args.out}: {count} wheels for {profile.arch}/{profile.cp}, {size:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
