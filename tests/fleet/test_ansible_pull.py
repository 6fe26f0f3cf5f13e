"""Configuration at scale with Ansible (issue 18): a kiosk pulls the operator's repository with
``ansible-pull --verify-commit`` (through ``headshot-kiosk-fleet-pull``, which adds the lock) and the
``headshot_kiosk`` role renders kiosk.toml from the inventory, runs ``python -m provisioning apply``, syncs
the staff accounts from hashes, and writes the metrics, OTA and timer files.

Everything on loopback and in temporary directories: the repository is a local bare repository, the keys are
generated for the test (ed25519, an operator's and a stranger's), and the role writes into a staging root
(``hk_root``), where ``provisioning apply`` writes files and only prints the commands it would run.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from argon2 import PasswordHasher

from tests.fleet.fleet_support import FLEET, PYTHON, need_tools

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (JetPack 6)
    import tomli as tomllib

HOST = "kiosk-test-01"
OPERATOR = "Fleet Operator (test) <fleet-operator@example.invalid>"
STRANGER = "Somebody Else (test) <stranger@example.invalid>"
# Cheap argon2id parameters: the format is what matters here; the kiosk upgrades the hash at sign-in.
HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def gpg(home: Path, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["gpg", "--batch", "--homedir", str(home), *args], input=input, capture_output=True, check=True
    )


def new_key(home: Path, uid: str) -> str:
    """A signing-only ed25519 key without passphrase in ``home``; returns its fingerprint."""
    home.mkdir(mode=0o700)
    gpg(home, "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
    listing = gpg(home, "--with-colons", "--list-keys").stdout.decode()
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))


@dataclass
class Fleet:
    base: Path
    work: Path  # the operator's clone
    bare: Path
    root: Path  # the kiosk's staging root
    operator_home: Path
    operator_key: str
    stranger_home: Path
    stranger_key: str
    env: dict[str, str]

    def inventory(self) -> dict:
        return yaml.safe_load((self.work / "ansible" / "inventory" / "hosts.yml").read_text())

    def commit(self, inventory: dict, message: str, *, signer: str | None) -> None:
        """Write the inventory, commit (signed by ``signer``: "operator", "stranger" or None) and push."""
        (self.work / "ansible" / "inventory" / "hosts.yml").write_text(
            yaml.safe_dump(inventory, sort_keys=False)
        )
        git = [
            "git",
            "-C",
            str(self.work),
            "-c",
            "user.name=Fleet Test",
            "-c",
            "user.email=fleet@example.invalid",
        ]
        subprocess.run([*git, "add", "-A"], check=True)
        env = dict(os.environ)
        sign = ["--no-gpg-sign"]
        if signer is not None:
            home, key = (
                (self.operator_home, self.operator_key)
                if signer == "operator"
                else (self.stranger_home, self.stranger_key)
            )
            env["GNUPGHOME"] = str(home)
            sign = [f"--gpg-sign={key}"]
        subprocess.run([*git, "commit", "-q", *sign, "-m", message], check=True, env=env, capture_output=True)
        subprocess.run([*git, "push", "-q", "origin", "HEAD:main"], check=True, capture_output=True)

    def pull(self, *extra: str) -> subprocess.CompletedProcess[str]:
        """What headshot-kiosk-fleet.service runs on the kiosk."""
        return subprocess.run(
            [str(FLEET / "ansible" / "headshot-kiosk-fleet-pull"), *extra],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def kiosk_toml(self) -> dict:
        return tomllib.loads((self.root / "etc" / "headshot-kiosk" / "kiosk.toml").read_text())

    def accounts(self) -> dict:
        path = self.root / "var" / "lib" / "headshot-kiosk" / "staff" / "staff-accounts.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        return dict(json.loads(path.read_text())["accounts"])


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    need_tools("ansible-pull", "git", "gpg", "flock", "promtool")
    base = tmp_path_factory.mktemp("fleet")
    operator_home, stranger_home = base / "gnupg-operator", base / "gnupg-stranger"
    try:
        operator_key = new_key(operator_home, OPERATOR)
        stranger_key = new_key(stranger_home, STRANGER)
        root = base / "kiosk-root"
        state = root / "var" / "lib" / "headshot-kiosk-fleet"
        kiosk_keyring = state / "gnupg"
        state.mkdir(parents=True)
        kiosk_keyring.mkdir(mode=0o700)
        public = gpg(operator_home, "--armor", "--export", operator_key).stdout
        # What the installer does once: the kiosk's fleet keyring holds the operator's public key only.
        gpg(kiosk_keyring, "--import", input=public)

        bare, work = base / "fleet.git", base / "work"
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
        subprocess.run(["git", "clone", "-q", str(bare), str(work)], check=True, capture_output=True)
        for part in ("ansible", "prometheus", "mender"):
            shutil.copytree(
                FLEET / part, work / part, ignore=shutil.ignore_patterns("__pycache__", "inventory")
            )
        keys = work / "ansible" / "keys"
        keys.mkdir()
        (keys / "fleet-signing.asc").write_bytes(public)
        (keys / "artifact-verify.pem").write_text(
            "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEtest\n-----END PUBLIC KEY-----\n"
        )
        (work / "ansible" / "inventory").mkdir()
        env = {
            **os.environ,
            "HK_FLEET_ENV": str(base / "no-such-fleet.env"),
            "HK_FLEET_REPO": f"file://{bare}",
            "HK_FLEET_BRANCH": "main",
            "HK_FLEET_HOST": HOST,
            "HK_FLEET_CHECKOUT": str(base / "checkout"),
            "HK_FLEET_GNUPGHOME": str(kiosk_keyring),
            "HK_FLEET_LOCK": str(base / "fleet.lock"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCAL_TEMP": str(base / "ansible-tmp"),
            "ANSIBLE_REMOTE_TEMP": str(base / "ansible-remote-tmp"),
            "ANSIBLE_HOME": str(base / "ansible-home"),
        }
        fleet = Fleet(base, work, bare, root, operator_home, operator_key, stranger_home, stranger_key, env)
        fleet.commit(initial_inventory(fleet), "kiosk-test-01 for the test fair", signer="operator")
        yield fleet
    finally:
        for home in (
            operator_home,
            stranger_home,
            base / "kiosk-root" / "var/lib/headshot-kiosk-fleet/gnupg",
        ):
            if home.exists():
                subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)


def initial_inventory(fleet: Fleet) -> dict:
    return {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": "/usr/bin/python3",
                "hk_root": str(fleet.root),
                "hk_python": str(PYTHON),
                "hk_manage_services": False,
                "hk_fleet_repo_url": f"file://{fleet.bare}",
                "hk_fleet_signing_keys": ["keys/fleet-signing.asc"],
                "hk_fleet_interval": "10min",
                "hk_ota_verify_key": "keys/artifact-verify.pem",
                "hk_metrics_remote_write_url": "https://metrics.example.invalid/api/v1/write",
                "hk_config": {
                    "camera": {"source": "demo"},
                    "store": {"path": "/run/headshot-kiosk", "size_mib": 128},
                    "staff": {
                        "host": "127.0.0.1",
                        "port": 8091,
                        "accounts_path": "/var/lib/headshot-kiosk/staff/staff-accounts.json",
                    },
                    "audit": {"path": "/var/lib/headshot-kiosk/audit"},
                },
                "hk_staff_accounts": [
                    {
                        "name": "ops.lead",
                        "role": "admin",
                        "password_hash": HASHER.hash("correct horse battery"),
                    }
                ],
            },
            "children": {
                "test_fair": {
                    "vars": {
                        "hk_event_id": "test-fair-2025",
                        "hk_event": {"name": "Test Fair 2025", "languages": ["fr", "en"]},
                    },
                    "hosts": {
                        HOST: {"hk_host_config": {"delivery": {"public_host": "kiosk-01.example.invalid"}}}
                    },
                }
            },
        }
    }


def recap(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stdout.splitlines() if line.startswith(HOST) and "ok=" in line]
    assert lines, result.stdout[-3000:] + result.stderr[-3000:]
    return lines[-1]


def test_a_signed_commit_is_applied(fleet: Fleet) -> None:
    result = fleet.pull()
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "failed=0" in recap(result)

    config = fleet.kiosk_toml()
    assert config["event"] == {"name": "Test Fair 2025", "languages": ["fr", "en"]}
    assert config["delivery"]["public_host"] == "kiosk-01.example.invalid"
    assert config["staff"]["port"] == 8091
    check = subprocess.run(
        [str(PYTHON), "-m", "appliance", "check-config", str(fleet.root / "etc/headshot-kiosk/kiosk.toml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    # provisioning apply ran on the staging root: the kiosk's unit is there.
    assert (fleet.root / "etc/systemd/system/headshot-kiosk.service").is_file()

    # Staff: the inventory's hash, a TOTP secret made on the kiosk (and found nowhere in the repository).
    account = fleet.accounts()["ops.lead"]
    assert account["role"] == "admin"
    assert (
        account["password_hash"] == fleet.inventory()["all"]["vars"]["hk_staff_accounts"][0]["password_hash"]
    )
    secret = account["totp_secret"]
    assert len(secret) >= 32 and account["recovery_hashes"] == []
    in_repo = subprocess.run(["git", "-C", str(fleet.bare), "grep", "-q", secret, "main"], check=False)
    assert in_repo.returncode == 1, "the TOTP secret must exist only on the kiosk"

    # Metrics, OTA and the pull's own files.
    agent = yaml.safe_load((fleet.root / "etc/headshot-kiosk/prometheus-agent.yml").read_text())
    assert agent["global"]["external_labels"] == {"kiosk_id": HOST, "event": "test-fair-2025"}
    assert agent["scrape_configs"][0]["static_configs"][0]["targets"] == ["127.0.0.1:8091"]
    ota_conf = (fleet.root / "etc/headshot-kiosk/ota.conf").read_text()
    assert "HK_OTA_METRICS_URL=http://127.0.0.1:8091/metrics" in ota_conf
    mender_conf = json.loads((fleet.root / "etc/mender/mender.conf").read_text())
    assert (
        mender_conf["ArtifactVerifyKey"] == "/etc/mender/artifact-verify.pem"
        and "ServerURL" not in mender_conf
    )
    assert (fleet.root / "var/lib/mender/device_type").read_text().startswith("device_type=headshot-kiosk-")
    assert (fleet.root / "etc/mender/artifact_info").read_text().startswith("artifact_name=headshot-kiosk-")
    module = fleet.root / "usr/share/mender/modules/v3/headshot-kiosk-deb"
    assert module.read_bytes() == (FLEET / "mender" / "headshot_kiosk_deb.py").read_bytes()
    assert os.access(module, os.X_OK)
    timer = (fleet.root / "etc/systemd/system/headshot-kiosk-fleet.timer").read_text()
    assert "OnUnitInactiveSec=10min" in timer
    fleet_env = (fleet.root / "etc/headshot-kiosk/fleet.env").read_text()
    assert f"HK_FLEET_HOST={HOST}" in fleet_env and f"HK_FLEET_REPO=file://{fleet.bare}" in fleet_env
    for unit in ("headshot-kiosk-fleet.service", "headshot-kiosk-ota-recover.service"):
        assert (fleet.root / "etc/systemd/system" / unit).is_file()


def test_a_second_pull_of_the_same_commit_changes_nothing(fleet: Fleet) -> None:
    result = fleet.pull()
    assert result.returncode == 0, result.stdout[-4000:]
    assert "changed=0" in recap(result), result.stdout[-4000:]


@pytest.mark.parametrize("signer", [None, "stranger"])
def test_an_unsigned_or_foreign_commit_is_refused(fleet: Fleet, signer: str | None) -> None:
    inventory = fleet.inventory()
    inventory["all"]["children"]["test_fair"]["vars"]["hk_event"]["name"] = f"Tampered by {signer}"
    fleet.commit(inventory, "not from the operator", signer=signer)
    result = fleet.pull()
    assert result.returncode != 0
    assert "Failed to verify GPG signature" in result.stdout + result.stderr
    assert fleet.kiosk_toml()["event"]["name"] == "Test Fair 2025", "nothing of the refused commit applies"


def test_the_next_signed_commit_applies_again_and_rotates_a_password(fleet: Fleet) -> None:
    inventory = fleet.inventory()
    inventory["all"]["children"]["test_fair"]["vars"]["hk_event"]["name"] = "Test Fair 2025, day 2"
    new_hash = HASHER.hash("a new passphrase for day two")
    inventory["all"]["vars"]["hk_staff_accounts"][0]["password_hash"] = new_hash
    secret_before = fleet.accounts()["ops.lead"]["totp_secret"]
    fleet.commit(inventory, "day 2", signer="operator")
    result = fleet.pull()
    assert result.returncode == 0, result.stdout[-4000:]
    assert fleet.kiosk_toml()["event"]["name"] == "Test Fair 2025, day 2"
    account = fleet.accounts()["ops.lead"]
    assert account["password_hash"] == new_hash
    assert account["totp_secret"] == secret_before, "the enrolment on the kiosk is never touched"


def test_a_password_in_the_inventory_is_refused_even_when_signed(fleet: Fleet) -> None:
    inventory = fleet.inventory()
    inventory["all"]["vars"]["hk_staff_accounts"].append(
        {"name": "careless", "role": "operator", "password": "hunter2hunter2"}
    )
    fleet.commit(inventory, "a mistake", signer="operator")
    result = fleet.pull()
    assert result.returncode != 0
    assert "must never be in the repository" in result.stdout
    assert "hunter2hunter2" not in result.stdout + result.stderr, "the secret is not echoed into the log"
    assert "careless" not in fleet.accounts()


def test_runs_never_overlap(fleet: Fleet) -> None:
    lock = Path(fleet.env["HK_FLEET_LOCK"])
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a run in progress
        started = time.monotonic()
        result = fleet.pull()
        assert result.returncode == 75
        assert "another run holds" in result.stderr
        assert time.monotonic() - started < 10, "a second run gives way at once instead of queueing"
    finally:
        os.close(fd)
