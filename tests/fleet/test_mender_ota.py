"""Signed OTA on Mender (issue 18): artifacts from ``tools/build_ota.py`` are signed and verified, and the
Mender client (Debian's mender-client 3.4, standalone mode) installs them through our Update Module
(``fleet/mender/headshot_kiosk_deb.py``) into this machine: only when the kiosk is idle, committed when the
health check passes, rolled back when it fails, and put back in order after a power cut in the middle.

The package installed for real is a tiny ``hk-ota-selftest`` built here with dpkg-deb (never the kiosk's
own package). The kiosk's side of the pause protocol is simulated on loopback (``SimulatedKiosk``). The
Mender client runs with a test ``mender.conf`` and ``--data`` directory; two things it reads from fixed
system paths are placed for the duration and put back afterwards: the Update Module
(``/usr/share/mender/modules/v3/headshot-kiosk-deb``) and, when absent, ``/etc/mender/artifact_info`` (the
name of the running software before any Mender install; a device gets it at provisioning).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fleet.fleet_support import (
    FLEET,
    PYTHON,
    REPO,
    SimulatedKiosk,
    build_deb,
    dpkg,
    installed_version,
    kill_session,
    need_tools,
    placed_file,
    wait_for,
)

PACKAGE = "hk-ota-selftest"
DEVICE_TYPE = "headshot-kiosk-selftest"
MODULE_PATH = Path("/usr/share/mender/modules/v3/headshot-kiosk-deb")
ARTIFACT_INFO = Path("/etc/mender/artifact_info")
MODULE_SOURCE = FLEET / "mender" / "headshot_kiosk_deb.py"


def build_ota(deb: Path, out: Path, *extra: str) -> Path:
    """``tools/build_ota.py`` as ``make ota`` calls it; returns the artifact."""
    result = subprocess.run(
        [str(PYTHON), str(REPO / "tools" / "build_ota.py"), "--deb", str(deb), "--out", str(out), *extra],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (artifact,) = out.glob(f"{PACKAGE}-{deb.name.split('_')[1]}.mender")
    return artifact


def flip_byte(src: Path, dst: Path, member: str, offset_in_member: int) -> None:
    """Copy ``src`` to ``dst`` with one bit changed inside the content of the artifact's tar ``member``."""
    with tarfile.open(src) as tar:
        # "header.tar" / "data/0000.tar", with a compression suffix unless written with --compression none.
        (info,) = [m for m in tar.getmembers() if m.name.split(".tar")[0] == member]
        position = info.offset_data + min(offset_in_member, info.size - 1)
    data = bytearray(src.read_bytes())
    data[position] ^= 0x01
    dst.write_bytes(bytes(data))


def write_unsigned(deb: Path, artifact: Path) -> Path:
    """An artifact for the same module and device type as ours, with no signature."""
    argv = ["mender-artifact", "write", "module-image", "-T", "headshot-kiosk-deb", "-n", "unsigned"]
    subprocess.run(
        [*argv, "-t", DEVICE_TYPE, "-f", str(deb), "-o", str(artifact)], check=True, capture_output=True
    )
    return artifact


def validate(artifact: Path, key: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["mender-artifact", "validate", "-k", str(key), str(artifact)],
        check=False,
        capture_output=True,
        text=True,
    )


@dataclass
class Ota:
    """One prepared OTA bench: artifacts, the Mender client's files, the module's settings."""

    base: Path
    artifacts: dict[str, Path]
    public_key: Path
    kiosk: SimulatedKiosk
    env: dict[str, str]
    block_flag: Path
    postinst_started: Path
    doctor_fails: Path

    @property
    def state_dir(self) -> Path:
        return Path(self.env["HK_OTA_STATE_DIR"])

    @property
    def pause_file(self) -> Path:
        return Path(self.env["HK_OTA_PAUSE_FILE"])

    @property
    def journal(self) -> Path:
        return self.state_dir / "journal.json"

    def mender(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.mender_argv(*args),
            check=False,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
        )

    def mender_argv(self, *args: str) -> list[str]:
        return [
            "mender",
            "--no-syslog",
            "--log-level",
            "info",  # the client logs the module's stderr at info
            "--config",
            str(self.base / "mender.conf"),
            "--fallback-config",
            str(self.base / "no-fallback.conf"),
            "--data",
            str(self.base / "mender-data"),
            *args,
        ]

    def artifact_name(self) -> str:
        return self.mender("show-artifact").stdout.strip()

    def recover(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(MODULE_PATH), "recover"],
            check=False,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
        )


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ota]:
    need_tools("mender", "mender-artifact", "dpkg-deb", root=True)
    if installed_version(PACKAGE) is not None:
        dpkg("--purge", PACKAGE)
    base = tmp_path_factory.mktemp("ota")
    block_flag, started = base / "block-postinst", base / "postinst-started"
    debs = base / "debs"
    debs.mkdir()
    out = base / "ota"
    artifacts = {}
    for version, marker in (("1.0", "1.0"), ("2.0", "2.0"), ("3.0", "3.0 broken")):
        deb = build_deb(debs, PACKAGE, version, marker=marker, block_flag=block_flag, started=started)
        artifacts[version] = build_ota(deb, out, "--device-type", DEVICE_TYPE)
    (base / "mender.conf").write_text(json.dumps({"ArtifactVerifyKey": str(out / "artifact-verify.pem")}))
    (base / "run").mkdir()
    pause_file = base / "run" / "headshot-kiosk-update" / "pause"
    with (
        placed_file(MODULE_PATH, MODULE_SOURCE.read_bytes(), 0o755),
        placed_file(ARTIFACT_INFO, b"artifact_name=factory\n")
        if not ARTIFACT_INFO.exists()
        else contextlib.nullcontext(),
        SimulatedKiosk(pause_file, Path("/usr/share") / PACKAGE / "VERSION") as kiosk,
    ):
        env = {
            **os.environ,
            "HK_OTA_CONFIG": str(base / "no-ota.conf"),
            "HK_OTA_PACKAGE": PACKAGE,
            "HK_OTA_STATE_DIR": str(base / "ota-state"),
            "HK_OTA_PAUSE_FILE": str(pause_file),
            "HK_OTA_METRICS_URL": kiosk.url,
            "HK_OTA_READY_TIMEOUT": "20",
            "HK_OTA_HEALTH_TIMEOUT": "4",
            # Stands in for `provisioning doctor` (which audits this CI machine, not a kiosk).
            "HK_OTA_HEALTH_COMMAND": f"test ! -e {base / 'doctor-fails'}",
            "HK_OTA_POLL_SECONDS": "0.2",
        }
        bench = Ota(
            base,
            artifacts,
            out / "artifact-verify.pem",
            kiosk,
            env,
            block_flag,
            started,
            base / "doctor-fails",
        )
        try:
            yield bench
        finally:
            block_flag.unlink(missing_ok=True)
            if installed_version(PACKAGE) is not None:
                dpkg("--purge", PACKAGE)
    assert installed_version(PACKAGE) is None, "the test package must not outlive the tests"


@pytest.fixture
def ota(bench: Ota) -> Ota:
    """The bench with version 1.0 installed and committed through Mender (so its .deb is kept for the next
    rollback), the kiosk idle and no update in progress."""
    bench.kiosk.visit_in_progress = False
    bench.doctor_fails.unlink(missing_ok=True)
    bench.block_flag.unlink(missing_ok=True)
    bench.postinst_started.unlink(missing_ok=True)
    if installed_version(PACKAGE) is not None:
        assert dpkg("--purge", PACKAGE).returncode == 0
    subprocess.run(["rm", "-rf", str(bench.base / "mender-data"), str(bench.state_dir)], check=True)
    (bench.base / "mender-data").mkdir()
    (bench.base / "mender-data" / "device_type").write_text(f"device_type={DEVICE_TYPE}\n")
    result = bench.mender("install", str(bench.artifacts["1.0"]))
    assert result.returncode == 0, result.stderr
    assert bench.mender("commit").returncode == 0
    assert installed_version(PACKAGE) == ("ii", "1.0")
    assert bench.artifact_name() == f"{PACKAGE}-1.0"
    return bench


def assert_settled(ota: Ota, version: str, *, awaiting_commit: bool = False) -> None:
    """``version`` installed cleanly, no update half done (or, ``awaiting_commit``, one healthy install
    waiting for ``mender commit``), the kiosk not held paused."""
    assert installed_version(PACKAGE) == ("ii", version)
    assert (Path("/usr/share") / PACKAGE / "VERSION").read_text().strip().split()[0] == version
    if awaiting_commit:
        assert json.loads(ota.journal.read_text())["phase"] == "installed"
    else:
        assert not ota.journal.exists(), ota.journal.read_text() if ota.journal.exists() else ""
    assert not ota.pause_file.exists(), "the kiosk must be released after every outcome"


# ---------------------------------------------------------------------------------------------- signing


def test_built_artifacts_are_signed_and_any_change_fails_validation(bench: Ota, tmp_path: Path) -> None:
    artifact = bench.artifacts["2.0"]
    assert validate(artifact, bench.public_key).returncode == 0
    read = subprocess.run(
        ["mender-artifact", "read", str(artifact)], check=False, capture_output=True, text=True
    )
    assert "Signature: signed" in read.stdout
    assert "headshot-kiosk-deb" in read.stdout and "rootfs-image.headshot-kiosk.version: 2.0" in read.stdout

    # One flipped bit anywhere that carries meaning: the manifest of checksums, the headers, the payload.
    for member, offset in (("manifest", 10), ("header", 40), ("data/0000", 700)):
        altered = tmp_path / f"flip-{member.replace('/', '_')}.mender"
        flip_byte(artifact, altered, member, offset)
        assert validate(altered, bench.public_key).returncode != 0, (
            f"a bit flipped in {member} went unnoticed"
        )

    # Unsigned, and signed by someone else's key.
    unsigned = write_unsigned(bench.base / "debs" / f"{PACKAGE}_2.0_all.deb", tmp_path / "unsigned.mender")
    assert "missing signature" in validate(unsigned, bench.public_key).stderr
    other = build_ota(bench.base / "debs" / f"{PACKAGE}_2.0_all.deb", tmp_path / "other-key")
    assert validate(other, bench.public_key).returncode != 0

    # mender-artifact sign turns the unsigned one into one our key verifies (what a signing host does).
    signed = tmp_path / "signed.mender"
    key = bench.base / "ota" / "artifact-signing-key.pem"
    subprocess.run(["mender-artifact", "sign", "-k", str(key), "-o", str(signed), str(unsigned)], check=True)
    assert validate(signed, bench.public_key).returncode == 0


def test_the_client_refuses_unsigned_altered_and_foreign_artifacts(ota: Ota, tmp_path: Path) -> None:
    unsigned = write_unsigned(ota.base / "debs" / f"{PACKAGE}_2.0_all.deb", tmp_path / "unsigned.mender")
    flipped = tmp_path / "flipped.mender"
    flip_byte(ota.artifacts["2.0"], flipped, "data/0000", 700)
    foreign = build_ota(ota.base / "debs" / f"{PACKAGE}_2.0_all.deb", tmp_path / "foreign")
    for artifact, why in ((unsigned, "signature"), (flipped, ""), (foreign, "signature")):
        result = ota.mender("install", str(artifact))
        assert result.returncode != 0, f"{artifact.name} was accepted"
        assert why in result.stderr
        assert_settled(ota, "1.0")
        assert ota.artifact_name() == f"{PACKAGE}-1.0"


# ---------------------------------------------------------------------------------------------- install


def test_installs_only_when_idle_then_commits(ota: Ota) -> None:
    ota.kiosk.visit_in_progress = True  # a guest is in front of the camera
    started = time.monotonic()
    install = subprocess.Popen(
        ota.mender_argv("install", str(ota.artifacts["2.0"])),
        env=ota.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(ota.pause_file.exists, 30, "the pause request")
        time.sleep(2.0)
        assert installed_version(PACKAGE) == ("ii", "1.0"), "installed while a visit was in progress"
        assert install.poll() is None
        ota.kiosk.visit_in_progress = False  # the guest took their photo and left
        out, err = install.communicate(timeout=60)
    finally:
        if install.poll() is None:
            install.kill()
            install.communicate()
    assert install.returncode == 0, err
    assert "Use 'commit' to update" in out
    assert time.monotonic() - started >= 2.0
    assert_settled(ota, "2.0", awaiting_commit=True)
    assert ota.artifact_name() == f"{PACKAGE}-1.0", "not committed yet"
    assert (ota.state_dir / "kept" / f"{PACKAGE}_1.0_all.deb").exists(), "the rollback copy is kept"

    commit = ota.mender("commit")
    assert commit.returncode == 0, commit.stderr
    assert ota.artifact_name() == f"{PACKAGE}-2.0"
    kept = sorted(p.name for p in (ota.state_dir / "kept").iterdir())
    assert kept == [f"{PACKAGE}_2.0_all.deb"], "the committed version is the next rollback target"
    assert ota.mender("commit").returncode == 2, "nothing left to commit"


@pytest.mark.parametrize("failure", ["metrics", "doctor"])
def test_a_failing_health_check_rolls_back(ota: Ota, failure: str) -> None:
    if failure == "metrics":
        artifact = ota.artifacts["3.0"]  # installs, but the kiosk it brings answers /metrics with 500
    else:
        artifact = ota.artifacts["2.0"]
        ota.doctor_fails.touch()  # the health command (doctor's stand-in) exits non-zero
    result = ota.mender("install", str(artifact))
    assert result.returncode != 0
    assert "Rolling back Artifact" in result.stdout
    assert "health check failed" in result.stderr
    assert_settled(ota, "1.0")
    assert ota.artifact_name() == f"{PACKAGE}-1.0"
    assert ota.mender("commit").returncode == 2, "a rolled-back update leaves nothing to commit"


def test_an_operator_rollback_of_a_healthy_install(ota: Ota) -> None:
    assert ota.mender("install", str(ota.artifacts["2.0"])).returncode == 0
    assert installed_version(PACKAGE) == ("ii", "2.0")
    result = ota.mender("rollback")
    assert result.returncode == 0, result.stderr
    assert_settled(ota, "1.0")
    assert ota.artifact_name() == f"{PACKAGE}-1.0"


def test_a_kiosk_that_never_gets_idle_is_not_updated(ota: Ota) -> None:
    ota.kiosk.visit_in_progress = True
    env = {**ota.env, "HK_OTA_READY_TIMEOUT": "2"}
    result = subprocess.run(
        ota.mender_argv("install", str(ota.artifacts["2.0"])),
        check=False,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "did not become idle" in result.stderr
    assert_settled(ota, "1.0")


# ---------------------------------------------------------------------------------------------- power loss


def _cut_power_during_install(ota: Ota, artifact: Path, moment: Path) -> None:
    """Start ``mender install`` and kill its whole process tree once ``moment`` exists; then do what a
    reboot does to /run (the pause request is gone)."""
    install = subprocess.Popen(
        ota.mender_argv("install", str(artifact)),
        env=ota.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(moment.exists, 60, "the moment to cut the power")
    finally:
        kill_session(install.pid)
        install.wait(10)
    ota.block_flag.unlink(missing_ok=True)
    ota.pause_file.unlink(missing_ok=True)  # /run is a tmpfs: a reboot empties it


def test_power_cut_in_the_middle_of_dpkg_is_rolled_back_at_boot(ota: Ota) -> None:
    ota.block_flag.touch()  # the new version's postinst stands still: dpkg is mid-run
    _cut_power_during_install(ota, ota.artifacts["2.0"], ota.postinst_started)

    status = installed_version(PACKAGE)
    assert status is not None and status[1] == "2.0" and status[0] != "ii", (
        f"dpkg should be mid-run: {status}"
    )
    assert json.loads(ota.journal.read_text())["phase"] == "installing"
    # Mender's own database stayed consistent: the old software is current, nothing is pending.
    assert ota.artifact_name() == f"{PACKAGE}-1.0"
    assert ota.mender("commit").returncode == 2
    assert ota.mender("rollback").returncode == 2

    # What headshot-kiosk-ota-recover.service runs at boot.
    recovered = ota.recover()
    assert recovered.returncode == 0, recovered.stderr
    assert "rollback done" in recovered.stderr
    assert_settled(ota, "1.0")
    assert ota.recover().returncode == 0  # nothing left: a second boot does nothing

    # And the next update goes through.
    assert ota.mender("install", str(ota.artifacts["2.0"])).returncode == 0
    assert ota.mender("commit").returncode == 0
    assert_settled(ota, "2.0")
    assert ota.artifact_name() == f"{PACKAGE}-2.0"


def test_power_cut_during_the_health_check_is_settled_by_the_next_install(ota: Ota) -> None:
    reached = ota.base / "health-check-running"
    reached.unlink(missing_ok=True)
    slow = {**ota.env, "HK_OTA_HEALTH_COMMAND": f"touch {reached}; sleep 60", "HK_OTA_HEALTH_TIMEOUT": "90"}
    original, ota.env = ota.env, slow
    try:
        _cut_power_during_install(ota, ota.artifacts["2.0"], reached)
    finally:
        ota.env = original
    assert installed_version(PACKAGE) == ("ii", "2.0"), "dpkg finished; the health check had not"
    assert json.loads(ota.journal.read_text())["phase"] == "installing"
    assert ota.artifact_name() == f"{PACKAGE}-1.0"

    # No boot-time recovery ran: the next `mender install` settles the cut-short one first.
    result = ota.mender("install", str(ota.artifacts["2.0"]))
    assert result.returncode == 0, result.stderr
    assert "found an unfinished update" in result.stderr and "rollback done" in result.stderr
    assert ota.mender("commit").returncode == 0
    assert_settled(ota, "2.0")


def test_without_a_copy_to_roll_back_to_nothing_is_touched(ota: Ota) -> None:
    subprocess.run(["rm", "-rf", str(ota.state_dir / "kept")], check=True)  # e.g. a hand-installed 1.0
    result = ota.mender("install", str(ota.artifacts["2.0"]))
    if shutil.which("dpkg-repack"):  # then the module rebuilds the copy from the installed files
        assert result.returncode == 0, result.stderr
        assert "rebuilt a rollback copy" in result.stderr
        return
    assert result.returncode != 0
    assert "no copy of the installed hk-ota-selftest 1.0 to roll back to" in result.stderr
    assert_settled(ota, "1.0")
