"""Build the ``headshot-kiosk`` Debian package: ``make deb [ARCH=arm64]`` runs this (issue 18).

Writes ``build/deb/headshot-kiosk_<version>_<arch>.deb``. Steps:

1. a build tree ``build/deb/<arch>/headshot-kiosk-<version>/`` with ``debian/`` copied from
   ``packaging/debian/`` and the generated parts beside it: ``debian/changelog`` (version from
   pyproject.toml), ``debian/profile.mk`` (the architecture's dependencies and venv flavour), the units
   (rendered by provisioning's own renderers, for dh_installsystemd) and ``payload/``: the wheelhouse
   (``tools/wheelhouse.py``), the models (verified against ``models/SHA256SUMS`` here and again by the
   postinst), the shipped ``kiosk.toml`` conffile, the postinst's provisioning helper and the docs;
2. ``dpkg-buildpackage -b`` on that tree (``--host-arch arm64`` for the Jetson package: nothing is compiled,
   the wheels are already aarch64), so debhelper does the Debian side (conffiles, maintainer-script
   snippets for the units, md5sums, control);
3. the .deb moved to the output directory.

The tree is generated, not committed: dpkg-buildpackage needs ``debian/`` at the root of what it builds,
and the project's root is a Python project, not a Debian source package.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from email.utils import formatdate
from pathlib import Path, PurePosixPath

import wheelhouse

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGING = REPO_ROOT / "packaging"
PACKAGE = "headshot-kiosk"
PREFIX = PurePosixPath("/opt/headshot-kiosk")
DOCS = ("PROVISIONING.md", "EVENT-DAY.md", "AUDIT.md")

# Debian dependencies per architecture. The interpreter is pinned to the minor version the wheelhouse was
# resolved for (its compiled wheels carry that ABI tag).
_AMD64_DEPENDS = ("python3-venv", "systemd")
# JetPack 6 (NVIDIA's apt repository): libopencv-python is JetPack's cv2 with GStreamer, python3-libnvinfer
# the TensorRT bindings; python3-dev and g++ build pycuda on the device (the postinst, when nvcc is there).
_ARM64_DEPENDS = ("python3-venv", "systemd", "libopencv-python", "python3-libnvinfer", "python3-dev", "g++")
# The kiosk browser (cage + Chromium) is optional: the postinst installs its unit only when both exist.
_AMD64_RECOMMENDS = ("cage", "chromium", "espeak-ng")  # espeak-ng: the guest screens spoken
# nvidia-jetpack brings CUDA's nvcc (pycuda's build); python3-systemd is Ubuntu's systemd-python.
_ARM64_RECOMMENDS = ("cage", "snapd", "nvidia-jetpack", "python3-systemd", "espeak-ng")


def debian_depends(profile: wheelhouse.Profile) -> tuple[str, str]:
    """(Depends, Recommends) of the package for ``profile``."""
    major, minor = profile.python
    python = f"python3 (>= {major}.{minor}~), python3 (<< {major}.{minor + 1}~)"
    if profile.arch == "arm64":
        return ", ".join((python, *_ARM64_DEPENDS)), ", ".join(_ARM64_RECOMMENDS)
    return ", ".join((python, *_AMD64_DEPENDS)), ", ".join(_AMD64_RECOMMENDS)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def copy_models(dest: Path, models: Path = REPO_ROOT / "models") -> None:
    """Copy every model of ``models/SHA256SUMS`` and the sums file, refusing any mismatch."""
    dest.mkdir(parents=True)
    sums = models / "SHA256SUMS"
    for line in sums.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        digest, name = line.split(maxsplit=1)
        name = name.lstrip("*")
        source = models / name
        if not source.is_file():
            raise SystemExit(f"{source} is missing: run `make models` first")
        if sha256_file(source) != digest:
            raise SystemExit(f"{source} does not match models/SHA256SUMS: run `make models` again")
        shutil.copy2(source, dest / name)
    shutil.copy2(sums, dest / "SHA256SUMS")


def render_device_files(profile: wheelhouse.Profile, dest: Path) -> dict[str, str]:
    """The shipped ``kiosk.toml`` and the unit files, rendered by provisioning's own code.

    The config is apply's device defaults for a device without a camera found (the demo source) on amd64;
    a Jetson gets ``source = "csi"``. Units are rendered for a generic device of the architecture (no device
    nodes, placeholder ids); ``provisioning apply`` in the postinst renders this device's unit into
    /etc/systemd/system, which systemd prefers over the package's copy in /lib (systemd.unit(5), unit
    search path). Returns unit file name -> text.
    """
    sys.path.insert(0, str(REPO_ROOT))
    from appliance.config import parse_config  # the checkout, not an installed package
    from provisioning.configfile import device_config, render_config_toml
    from provisioning.render import (
        CERT_RENEW_SERVICE,
        CERT_RENEW_TIMER,
        KIOSK_UNIT,
        render_cert_renew_service,
        render_cert_renew_timer,
        render_kiosk_unit,
    )
    from provisioning.target import Target

    kernel = "5.15.148-tegra" if profile.arch == "arm64" else "6.1.0"
    target = Target(root=Path("/nonexistent"), kernel_release=kernel, prefix=PREFIX, browser=False)
    config = device_config(target)
    if profile.arch == "arm64":
        data = config.model_dump(mode="json")
        data["camera"] = {"source": "csi"}
        config = parse_config(data, source="<jetson defaults>")
    (dest / "kiosk.toml").write_text(render_config_toml(config), encoding="utf-8")
    return {
        KIOSK_UNIT: render_kiosk_unit(config, target),
        CERT_RENEW_SERVICE: render_cert_renew_service(target.venv_python),
        CERT_RENEW_TIMER: render_cert_renew_timer(),
    }


def changelog(version: str) -> str:
    """A one-entry debian/changelog for ``version`` (native package, no Debian revision)."""
    stamp = formatdate(int(os.environ.get("SOURCE_DATE_EPOCH", time.time())), localtime=False)
    return (
        f"{PACKAGE} ({version}) unstable; urgency=medium\n\n"
        f"  * Built from the project checkout (version {version} of pyproject.toml).\n\n"
        f" -- Headshot kiosk maintainers <kiosk@example.org>  {stamp}\n"
    )


def stage(arch: str, work: Path, *, wheels: Path | None = None) -> Path:
    """Create the build tree for ``arch`` under ``work``; returns it. ``wheels`` reuses a wheelhouse."""
    profile = wheelhouse.profile_for(arch)
    version = wheelhouse.project_version()
    tree = work / f"{PACKAGE}-{version}"
    if tree.exists():
        shutil.rmtree(tree)
    shutil.copytree(PACKAGING / "debian", tree / "debian")
    payload = tree / "payload"
    payload.mkdir()
    if wheels is not None:
        shutil.copytree(wheels, payload / "wheels")
    else:
        wheelhouse.build(profile, payload / "wheels")
    copy_models(payload / "models")
    units = render_device_files(profile, payload)
    for name, text in units.items():
        # dh_installsystemd's names: debian/<package>.service for the unit named like the package,
        # debian/<package>.<unit> for the others (installed with --name).
        target = f"{PACKAGE}.service" if name == f"{PACKAGE}.service" else f"{PACKAGE}.{name}"
        (tree / "debian" / target).write_text(text, encoding="utf-8")
    shutil.copy2(PACKAGING / "package_provision.py", payload / "package_provision.py")
    (payload / "docs").mkdir()
    for doc in DOCS:
        shutil.copy2(REPO_ROOT / "docs" / doc, payload / "docs" / doc)
    depends, recommends = debian_depends(profile)
    (tree / "debian" / "changelog").write_text(changelog(version), encoding="utf-8")
    (tree / "debian" / "profile.mk").write_text(
        "# Generated by tools/build_deb.py for this architecture.\n"
        f"HK_DEPENDS := {depends}\n"
        f"HK_RECOMMENDS := {recommends}\n"
        f"HK_SYSTEM_SITE_PACKAGES := {'yes' if profile.system_site_packages else 'no'}\n",
        encoding="utf-8",
    )
    return tree


def build(arch: str, out: Path, *, wheels: Path | None = None, work: Path | None = None) -> Path:
    """Stage and build the package; returns ``out/headshot-kiosk_<version>_<arch>.deb``."""
    for tool in ("dpkg-buildpackage", "dh"):
        if shutil.which(tool) is None:
            raise SystemExit(
                f"{tool} is missing: apt-get install debhelper dpkg-dev fakeroot (make system-deps)"
            )
    work = work or out / arch
    work.mkdir(parents=True, exist_ok=True)
    tree = stage(arch, work, wheels=wheels)
    command = ["dpkg-buildpackage", "-b", "-us", "-uc", f"--host-arch={arch}"]
    if os.geteuid() != 0:
        command.append("-rfakeroot")
    env = {**os.environ, "DEB_BUILD_OPTIONS": "nocheck"}
    # A foreign host architecture makes dpkg-architecture warn that CC does not match; nothing is compiled.
    done = subprocess.run(command, cwd=tree, capture_output=True, text=True, env=env, check=False)
    log = work / "dpkg-buildpackage.log"
    log.write_text(done.stdout + done.stderr, encoding="utf-8")
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).splitlines()[-25:])
        raise SystemExit(f"dpkg-buildpackage failed (full log: {log}):\n{tail}")
    version = wheelhouse.project_version()
    name = f"{PACKAGE}_{version}_{arch}.deb"
    built = work / name
    out.mkdir(parents=True, exist_ok=True)
    final = out / name
    shutil.move(str(built), final)
    for leftover in work.glob(f"{PACKAGE}_{version}_{arch}.*"):
        leftover.unlink()  # .buildinfo / .changes: a binary-only local build, not an upload
    shutil.rmtree(tree)  # ~300 MB of staged wheels and models; the log stays beside it
    return final


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--arch amd64|arm64 --out build/deb``."""
    parser = argparse.ArgumentParser(description="Build the headshot-kiosk Debian package.")
    parser.add_argument("--arch", choices=("amd64", "arm64"), default="amd64")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "deb")
    parser.add_argument(
        "--wheels", type=Path, default=None, help="reuse this wheelhouse (tools/wheelhouse.py)"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    deb = build(args.arch, args.out, wheels=args.wheels)
    size = deb.stat().st_size / 1e6
    print(f"{deb} ({size:.1f} MB, {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
