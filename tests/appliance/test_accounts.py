"""Staff accounts: file format and permissions, account management, sign-in, and the ``staff`` command."""

from __future__ import annotations

import io
import json
import os
import re
import stat
import threading
from pathlib import Path

import argon2
import pyotp
import pytest

from appliance.accounts import (
    RECOVERY_CODES,
    TOTP_INTERVAL_SECONDS,
    AuthFailed,
    FailureReason,
    Role,
    StaffError,
    StaffStore,
    bootstrap_admin,
)
from appliance.audit import AuditLog
from appliance.cli.accounts import staff_main

# Cheap argon2id for unit tests; the production parameters are asserted in tests/security/test_p1_1_*.
FAST = argon2.Parameters(
    type=argon2.Type.ID, version=19, salt_len=16, hash_len=32, time_cost=1, memory_cost=1024, parallelism=1
)
PASSWORD = "correct horse battery staple"
T0 = 1_700_000_010.0  # 10 s into a TOTP step


def code(secret: str, at: float) -> str:
    return pyotp.TOTP(secret).at(int(at))


@pytest.fixture
def accounts_path(tmp_path: Path) -> Path:
    return tmp_path / "etc" / "staff-accounts.json"


@pytest.fixture
def store(accounts_path: Path) -> StaffStore:
    return StaffStore(accounts_path, argon2=FAST)


def test_add_returns_an_enrolment_with_uri_and_terminal_qr(store: StaffStore) -> None:
    enrolment = store.add("alice", "admin", PASSWORD)
    assert enrolment.role is Role.ADMIN
    assert enrolment.uri.startswith("otpauth://totp/")
    assert f"secret={enrolment.secret}" in enrolment.uri
    assert "issuer=Headshot%20kiosk" in enrolment.uri
    assert len(enrolment.secret) == 32  # 160 bits of base32
    assert "▀" in enrolment.qr or "▄" in enrolment.qr
    # The secret must not leak through repr (an accidental log line).
    assert enrolment.secret not in repr(enrolment)
    assert "otpauth" not in repr(enrolment)


def test_accounts_file_is_owner_only_and_holds_no_clear_password(store: StaffStore) -> None:
    store.add("alice", Role.ADMIN, PASSWORD)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    text = store.path.read_text()
    assert PASSWORD not in text
    data = json.loads(text)
    assert data["format"] == "headshot-kiosk-staff"
    assert data["version"] == 1
    account = data["accounts"]["alice"]
    assert account["password_hash"].startswith("$argon2id$")
    assert set(account) == {
        "role",
        "password_hash",
        "totp_secret",
        "totp_last_step",
        "recovery_hashes",
        "failures",
        "locked_until",
        "created",
    }


def test_write_keeps_0600_under_a_permissive_umask(store: StaffStore) -> None:
    old = os.umask(0)
    try:
        store.add("alice", Role.ADMIN, PASSWORD)
    finally:
        os.umask(old)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert not [p for p in store.path.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_refuses_a_file_others_may_read(store: StaffStore, mode: int) -> None:
    store.add("alice", Role.ADMIN, PASSWORD)
    store.path.chmod(mode)
    with pytest.raises(StaffError, match=r"chmod 600"):
        store.list()
    with pytest.raises(StaffError, match=f"{mode:04o}"):
        store.verify("alice", PASSWORD, "000000", now=T0)


def test_refuses_a_symlinked_accounts_file(tmp_path: Path) -> None:
    real = StaffStore(tmp_path / "real.json", argon2=FAST)
    real.add("alice", Role.ADMIN, PASSWORD)
    link = tmp_path / "link.json"
    link.symlink_to(real.path)
    with pytest.raises(StaffError, match="symlink"):
        StaffStore(link, argon2=FAST).list()


def test_refuses_a_file_that_is_not_ours(accounts_path: Path) -> None:
    accounts_path.parent.mkdir(mode=0o700)
    accounts_path.write_text('{"users": []}')
    accounts_path.chmod(0o600)
    with pytest.raises(StaffError, match="not a headshot-kiosk staff file"):
        StaffStore(accounts_path, argon2=FAST).list()


def test_missing_file_means_no_accounts(store: StaffStore) -> None:
    assert store.list() == []
    with pytest.raises(AuthFailed):
        store.verify("alice", PASSWORD, "123456", now=T0)


def test_hash_uses_the_store_parameters(store: StaffStore) -> None:
    store.add("alice", Role.ADMIN, PASSWORD)
    stored = json.loads(store.path.read_text())["accounts"]["alice"]["password_hash"]
    params = argon2.extract_parameters(stored)
    assert params.type is argon2.Type.ID
    assert (params.time_cost, params.memory_cost, params.parallelism) == (1, 1024, 1)


@pytest.mark.parametrize("name", ["A", "Alice", "al ice", "1alice", "a", "x" * 33, "alice@example.org", ""])
def test_invalid_names_are_refused(store: StaffStore, name: str) -> None:
    with pytest.raises(StaffError, match="invalid staff name"):
        store.add(name, Role.OPERATOR, PASSWORD)


@pytest.mark.parametrize("name", ["cli", "system", "unknown"])
def test_names_used_by_the_audit_trail_are_reserved(store: StaffStore, name: str) -> None:
    with pytest.raises(StaffError, match="reserved"):
        store.add(name, Role.OPERATOR, PASSWORD)


def test_bad_role_short_password_and_duplicates_are_refused(store: StaffStore) -> None:
    with pytest.raises(StaffError, match="unknown role"):
        store.add("alice", "root", PASSWORD)
    with pytest.raises(StaffError, match="too short"):
        store.add("alice", Role.ADMIN, "short")
    store.add("alice", Role.ADMIN, PASSWORD)
    with pytest.raises(StaffError, match="already exists"):
        store.add("alice", Role.OPERATOR, PASSWORD)


def test_list_shows_names_and_roles_only(store: StaffStore) -> None:
    store.add("bob", Role.OPERATOR, PASSWORD, now=T0)
    store.add("alice", Role.ADMIN, PASSWORD, now=T0)
    summaries = store.list(now=T0)
    assert [(s.name, s.role) for s in summaries] == [("alice", Role.ADMIN), ("bob", Role.OPERATOR)]
    assert summaries[0].created == "2023-11-14T22:13Z"
    assert summaries[0].locked_until is None
    assert set(vars(summaries[0])) == {"name", "role", "created", "locked_until"}


def test_remove_refuses_unknown_and_the_last_admin(store: StaffStore) -> None:
    store.add("alice", Role.ADMIN, PASSWORD)
    store.add("bob", Role.OPERATOR, PASSWORD)
    with pytest.raises(StaffError, match="no staff account"):
        store.remove("carol")
    with pytest.raises(StaffError, match="last admin"):
        store.remove("alice")
    store.remove("bob")
    assert [s.name for s in store.list()] == ["alice"]
    with pytest.raises(AuthFailed) as failed:
        store.verify("bob", PASSWORD, "123456", now=T0)
    assert failed.value.reason is FailureReason.UNKNOWN_USER


def test_verify_succeeds_with_password_and_current_code(store: StaffStore) -> None:
    enrolment = store.add("alice", Role.OPERATOR, PASSWORD)
    summary = store.verify("alice", PASSWORD, code(enrolment.secret, T0), now=T0)
    assert (summary.name, summary.role) == ("alice", Role.OPERATOR)


def test_codes_with_spaces_are_accepted(store: StaffStore) -> None:
    enrolment = store.add("alice", Role.OPERATOR, PASSWORD)
    typed = code(enrolment.secret, T0)
    store.verify("alice", PASSWORD, f" {typed[:3]} {typed[3:]} ", now=T0)


def test_reset_totp_replaces_the_secret(store: StaffStore) -> None:
    old = store.add("alice", Role.ADMIN, PASSWORD)
    new = store.reset_totp("alice")
    assert new.secret != old.secret
    with pytest.raises(AuthFailed) as failed:
        store.verify("alice", PASSWORD, code(old.secret, T0), now=T0)
    assert failed.value.reason is FailureReason.WRONG_CODE
    store.verify("alice", PASSWORD, code(new.secret, T0 + 60), now=T0 + 60)
    with pytest.raises(StaffError, match="no staff account"):
        store.reset_totp("nobody")


def test_weaker_hash_is_upgraded_on_successful_sign_in(accounts_path: Path) -> None:
    weak = StaffStore(accounts_path, argon2=FAST)
    enrolment = weak.add("alice", Role.ADMIN, PASSWORD)
    stronger = argon2.Parameters(
        type=argon2.Type.ID,
        version=19,
        salt_len=16,
        hash_len=32,
        time_cost=2,
        memory_cost=2048,
        parallelism=1,
    )
    StaffStore(accounts_path, argon2=stronger).verify("alice", PASSWORD, code(enrolment.secret, T0), now=T0)
    stored = json.loads(accounts_path.read_text())["accounts"]["alice"]["password_hash"]
    params = argon2.extract_parameters(stored)
    assert (params.time_cost, params.memory_cost) == (2, 2048)
    # and the new hash still verifies the same password
    StaffStore(accounts_path, argon2=stronger).verify(
        "alice", PASSWORD, code(enrolment.secret, T0 + 30), now=T0 + 30
    )


def test_store_refuses_non_argon2id_parameters(accounts_path: Path) -> None:
    argon2i = argon2.Parameters(
        type=argon2.Type.I,
        version=19,
        salt_len=16,
        hash_len=32,
        time_cost=3,
        memory_cost=65536,
        parallelism=4,
    )
    with pytest.raises(StaffError, match="argon2id"):
        StaffStore(accounts_path, argon2=argon2i)


def test_concurrent_sign_ins_with_one_code_succeed_once(store: StaffStore) -> None:
    # The replay check is a read-modify-write of the last used step: it must be atomic across threads
    # (and processes: the same flock).
    enrolment = store.add("alice", Role.ADMIN, PASSWORD)
    totp = code(enrolment.secret, T0)
    results: list[str] = []
    barrier = threading.Barrier(6)

    def attempt() -> None:
        barrier.wait()
        try:
            StaffStore(store.path, argon2=FAST).verify("alice", PASSWORD, totp, now=T0)
        except AuthFailed as exc:
            results.append(exc.reason.value)
        else:
            results.append("ok")

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["ok"] + ["reused_code"] * 5


def test_bootstrap_admin_only_once(store: StaffStore) -> None:
    enrolment = bootstrap_admin(store, "alice", PASSWORD)
    assert enrolment.role is Role.ADMIN
    with pytest.raises(StaffError, match="already has an admin"):
        bootstrap_admin(store, "root2", PASSWORD)


def test_a_totp_step_is_thirty_seconds() -> None:
    assert TOTP_INTERVAL_SECONDS == 30


# ------------------------------------------------------------------------------------------------ command


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "kiosk.toml"
    path.write_text(
        f'[staff]\naccounts_path = "{tmp_path / "etc" / "staff.json"}"\n'
        f'[audit]\npath = "{tmp_path / "audit"}"\n'
    )
    return path


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


def test_staff_command_add_list_reset_remove(
    config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _stdin(monkeypatch, PASSWORD + "\n")
    assert (
        staff_main(["add", "alice", "--role", "admin", "--password-stdin", "--config", str(config_file)]) == 0
    )
    out = capsys.readouterr().out
    assert "otpauth://totp/" in out
    assert "▄" in out or "▀" in out  # the QR code
    _stdin(monkeypatch, PASSWORD + "\n")
    assert (
        staff_main(["--config", str(config_file), "add", "bob", "--role", "operator", "--password-stdin"])
        == 0
    )
    capsys.readouterr()

    assert staff_main(["list", "--config", str(config_file)]) == 0
    listing = capsys.readouterr().out
    assert "alice" in listing and "admin" in listing and "bob" in listing
    assert "otpauth" not in listing and "$argon2" not in listing

    assert staff_main(["reset-totp", "bob", "--config", str(config_file)]) == 0
    assert "otpauth://" in capsys.readouterr().out
    assert staff_main(["remove", "bob", "--config", str(config_file)]) == 0

    # Every change is in the audit trail, done by "cli", with no secret in it.
    log = AuditLog(tmp_path / "audit")
    assert log.verify().ok
    records = [json.loads(line) for line in log.export().splitlines()]
    assert [(r["account"], r["action"], r["target"]) for r in records] == [
        ("cli", "staff.add.admin", "alice"),
        ("cli", "staff.add.operator", "bob"),
        ("cli", "staff.reset_totp", "bob"),
        ("cli", "staff.remove", "bob"),
    ]
    assert PASSWORD not in log.export().decode()

    stored = json.loads((tmp_path / "etc" / "staff.json").read_text())["accounts"]["alice"]["password_hash"]
    assert argon2.extract_parameters(stored).memory_cost >= 64 * 1024  # the command uses production cost


def test_staff_command_errors_exit_2(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert staff_main([]) == 2
    assert staff_main(["frobnicate"]) == 2
    assert staff_main(["add", "alice", "--role", "root", "--config", str(config_file)]) == 2
    _stdin(monkeypatch, "")
    assert (
        staff_main(["add", "alice", "--role", "admin", "--password-stdin", "--config", str(config_file)]) == 2
    )
    _stdin(monkeypatch, "short\n")
    assert (
        staff_main(["add", "alice", "--role", "admin", "--password-stdin", "--config", str(config_file)]) == 2
    )
    assert "too short" in capsys.readouterr().err
    assert staff_main(["remove", "nobody", "--config", str(config_file)]) == 2
    assert staff_main(["list", "--config", str(config_file.with_name("missing.toml"))]) == 2
    assert staff_main(["--help"]) == 0


def test_staff_command_prompts_twice_without_password_stdin(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = iter([PASSWORD, "something else entirely"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert staff_main(["add", "alice", "--role", "admin", "--config", str(config_file)]) == 2
    assert "do not match" in capsys.readouterr().err
    answers = iter([PASSWORD, PASSWORD])
    assert staff_main(["add", "alice", "--role", "admin", "--config", str(config_file)]) == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_root_rewrite_keeps_the_service_users_ownership(store: StaffStore) -> None:
    # Provisioning hands the file to the service user; a later `staff add` run as root must not take it back.
    store.add("alice", Role.ADMIN, PASSWORD)
    os.chown(store.path, 4321, 4321)
    store.add("bob", Role.OPERATOR, PASSWORD)
    info = store.path.stat()
    assert (info.st_uid, info.st_gid) == (4321, 4321)
    assert stat.S_IMODE(info.st_mode) == 0o600


# ------------------------------------------------------------------------------------------------ recovery

_GROUP = "[0-9A-HJKMNP-TV-Z]{4}"  # Crockford base32
RECOVERY_LINE = re.compile(rf"^recovery code: {_GROUP}-{_GROUP}-{_GROUP}$")


def test_enrolment_gives_recovery_codes_stored_only_as_argon2id_hashes(store: StaffStore) -> None:
    enrolment = store.add("alice", Role.ADMIN, PASSWORD)
    codes = enrolment.recovery_codes
    assert len(codes) == RECOVERY_CODES == len(set(codes))
    assert all(RECOVERY_LINE.fullmatch(f"recovery code: {c}") for c in codes)
    assert codes[0] not in repr(enrolment)
    text = store.path.read_text()
    for recovery in codes:
        assert recovery not in text and recovery.replace("-", "") not in text
    hashes = json.loads(text)["accounts"]["alice"]["recovery_hashes"]
    assert len(hashes) == RECOVERY_CODES and all(h.startswith("$argon2id$") for h in hashes)
    assert store.recovery_codes_left("alice") == RECOVERY_CODES


def test_a_recovery_code_signs_in_once_whatever_the_clock(store: StaffStore) -> None:
    enrolment = store.add("alice", Role.ADMIN, PASSWORD)
    first, second = enrolment.recovery_codes[:2]
    hours_off = T0 - 7 * 3600  # the kiosk's clock after a power cut: TOTP codes of the phone do not match
    with pytest.raises(AuthFailed) as failed:
        store.verify("alice", PASSWORD, code(enrolment.secret, T0), now=hours_off)
    assert failed.value.reason is FailureReason.WRONG_CODE
    signed = store.authenticate("alice", PASSWORD, first, now=hours_off)
    assert signed.recovery and signed.recovery_left == RECOVERY_CODES - 1
    assert signed.summary.name == "alice"
    with pytest.raises(AuthFailed) as again:  # spent: its hash is gone from the file
        store.verify("alice", PASSWORD, first, now=hours_off)
    assert again.value.reason in (FailureReason.WRONG_CODE, FailureReason.REUSED_CODE)
    # Typed loosely: lower case, spaces, no dashes, O for 0 and l for 1 are read as meant.
    loose = second.lower().replace("-", " ").replace("0", "o").replace("1", "l")
    assert store.authenticate("alice", PASSWORD, loose, now=hours_off).recovery
    assert store.recovery_codes_left("alice") == RECOVERY_CODES - 2


def test_a_recovery_code_needs_the_password_and_the_right_account(store: StaffStore) -> None:
    alice = store.add("alice", Role.ADMIN, PASSWORD)
    store.add("bob", Role.OPERATOR, PASSWORD)
    with pytest.raises(AuthFailed) as failed:
        store.verify("alice", "wrong password!!", alice.recovery_codes[0], now=T0)
    assert failed.value.reason is FailureReason.WRONG_PASSWORD
    with pytest.raises(AuthFailed) as other:
        store.verify("bob", PASSWORD, alice.recovery_codes[0], now=T0)
    assert other.value.reason is FailureReason.WRONG_CODE
    assert store.recovery_codes_left("alice") == RECOVERY_CODES  # nothing spent by the failures


def test_wrong_recovery_codes_count_towards_the_lockout(store: StaffStore) -> None:
    enrolment = store.add("alice", Role.ADMIN, PASSWORD)
    for _ in range(5):
        with pytest.raises(AuthFailed):
            store.verify("alice", PASSWORD, "AAAA-BBBB-CCCC", now=T0)
    with pytest.raises(AuthFailed) as locked:
        store.verify("alice", PASSWORD, enrolment.recovery_codes[0], now=T0 + 1)
    assert locked.value.reason is FailureReason.LOCKED


def test_reset_and_new_recovery_codes_replace_the_old_ones(store: StaffStore) -> None:
    old = store.add("alice", Role.ADMIN, PASSWORD).recovery_codes
    reset = store.reset_totp("alice").recovery_codes
    assert len(reset) == RECOVERY_CODES and not set(reset) & set(old)
    with pytest.raises(AuthFailed):
        store.verify("alice", PASSWORD, old[0], now=T0)
    fresh = store.new_recovery_codes("alice")
    with pytest.raises(AuthFailed):
        store.verify("alice", PASSWORD, reset[0], now=T0)
    store.verify("alice", PASSWORD, fresh[0], now=T0)
    with pytest.raises(StaffError, match="no staff account"):
        store.new_recovery_codes("nobody")


def test_concurrent_sign_ins_with_one_recovery_code_succeed_once(store: StaffStore) -> None:
    recovery = store.add("alice", Role.ADMIN, PASSWORD).recovery_codes[0]
    results: list[str] = []
    barrier = threading.Barrier(4)

    def attempt() -> None:
        barrier.wait()
        try:
            StaffStore(store.path, argon2=FAST).verify("alice", PASSWORD, recovery, now=T0)
        except AuthFailed as exc:
            results.append(exc.reason.value)
        else:
            results.append("ok")

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Exactly one sign-in spends the code. A sign-in that read the file before that is refused as a reuse;
    # one that read it after finds no such code any more (a spent code's hash is gone): refused as wrong.
    assert results.count("ok") == 1 and len(results) == 4
    assert set(results) - {"ok"} <= {"reused_code", "wrong_code"}


def test_staff_add_prints_each_recovery_code_on_its_own_line(
    config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _stdin(monkeypatch, PASSWORD + "\n")
    add = ["add", "alice", "--role", "admin", "--password-stdin", "--config", str(config_file)]
    assert staff_main(add) == 0
    lines = capsys.readouterr().out.splitlines()
    printed = [line for line in lines if line.startswith("recovery code: ")]
    assert len(printed) == RECOVERY_CODES and all(RECOVERY_LINE.fullmatch(line) for line in printed)
    # The lines that were there before are unchanged.
    assert lines[0] == "Scan this code with an authenticator app to enrol alice (admin):"
    assert any(line.startswith("or open: otpauth://totp/") for line in lines)
    assert any(line.startswith("or type the secret: ") for line in lines)
    assert lines[-1] == "This is shown once and not stored in any log."
    store = StaffStore(tmp_path / "etc" / "staff.json", argon2=FAST)
    store.verify("alice", PASSWORD, printed[3].removeprefix("recovery code: "), now=T0)

    assert staff_main(["recovery-codes", "alice", "--config", str(config_file)]) == 0
    new = [line for line in capsys.readouterr().out.splitlines() if line.startswith("recovery code: ")]
    assert len(new) == RECOVERY_CODES and not set(new) & set(printed)
    records = [json.loads(line) for line in AuditLog(tmp_path / "audit").export().splitlines()]
    assert (records[-1]["account"], records[-1]["action"], records[-1]["target"]) == (
        "cli",
        "staff.recovery_codes",
        "alice",
    )
    for line in new:
        assert line.removeprefix("recovery code: ") not in AuditLog(tmp_path / "audit").export().decode()


def test_provision_from_a_hash_never_needs_a_secret(store: StaffStore, accounts_path: Path) -> None:
    hashed = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
    assert store.provision("bob", "operator", hashed, now=T0) == "added"
    assert store.provision("bob", "operator", hashed) == "unchanged"
    stored = json.loads(accounts_path.read_text())["accounts"]["bob"]
    assert stored["password_hash"] == hashed and stored["recovery_hashes"] == []
    # The password is right, but nobody knows the TOTP secret made here: an admin enrols bob on the kiosk.
    with pytest.raises(AuthFailed):
        store.verify("bob", PASSWORD, "000000", now=T0)
    secret = store.reset_totp("bob").secret
    assert store.verify("bob", PASSWORD, code(secret, T0), now=T0).role is Role.OPERATOR
    # A later run keeps the enrolment; the role follows the inventory; a hash only when asked to.
    other = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash("another long password")
    assert store.provision("bob", "admin", other, replace_hash=False) == "updated"
    assert store.verify("bob", PASSWORD, code(secret, T0 + 60), now=T0 + 60).role is Role.ADMIN
    for bad in ("plain password", "$argon2i$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA", "$2b$12$abcdefghijk"):
        with pytest.raises(StaffError, match="argon2id"):
            store.provision("carol", "operator", bad)
