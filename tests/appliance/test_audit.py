"""The anonymous audit trail: record allow-list, hash chain, tamper detection, concurrency, commands."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from appliance.audit import (
    CONSENT_FIELDS,
    GENESIS,
    STAFF_FIELDS,
    AuditError,
    AuditLog,
    ConsentOutcome,
    outcome_for,
    policy_version_hash,
    receipt_id,
    receipt_recorder,
)
from appliance.cli.audit import audit_main
from appliance.config import KioskConfig, parse_config
from appliance.lifecycle import WipeReason

REPO = Path(__file__).resolve().parents[2]
POLICY = hashlib.sha256(b"policy").hexdigest()
T0 = datetime(2025, 1, 15, 10, 42, 59, tzinfo=timezone.utc)


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    return AuditLog(tmp_path / "audit")


def consent(log: AuditLog, outcome: str = "delivered", minutes: int = 0) -> dict[str, Any]:
    return log.append_consent(
        receipt=receipt_id(),
        policy=POLICY,
        choices={"processing": True},
        outcome=outcome,
        started=T0 + timedelta(minutes=minutes),
        ended=T0 + timedelta(minutes=minutes + 1),
    )


def fill(log: AuditLog, count: int = 5) -> None:
    for index in range(count):
        if index % 2:
            log.append_staff("alice", "kiosk.pause", at=T0 + timedelta(minutes=index))
        else:
            consent(log, minutes=index)


def lines_of(log: AuditLog) -> list[bytes]:
    return log.log_path.read_bytes().splitlines()


def write_lines(log: AuditLog, lines: list[bytes]) -> None:
    log.log_path.write_bytes(b"".join(line + b"\n" for line in lines))


# ------------------------------------------------------------------------------------------------ records


def test_records_carry_only_the_allowed_fields(log: AuditLog) -> None:
    receipt = receipt_id()
    written = log.append_consent(
        receipt=receipt,
        policy=POLICY,
        choices={"processing": True, "delivery": False},
        outcome=ConsentOutcome.DELIVERED,
        started=T0,
        ended=T0 + timedelta(seconds=75),
    )
    staff = log.append_staff("alice", "kiosk.pause", at=T0)
    assert (
        set(written)
        == CONSENT_FIELDS
        == {
            "type",
            "prev",
            "receipt",
            "policy",
            "choices",
            "outcome",
            "started",
            "ended",
        }
    )
    assert set(staff) == STAFF_FIELDS == {"type", "prev", "account", "action", "at"}
    on_disk = [json.loads(line) for line in lines_of(log)]
    assert on_disk == [written, staff]
    assert on_disk[0] == {
        "type": "consent",
        "prev": GENESIS,
        "receipt": receipt,
        "policy": POLICY,
        "choices": {"delivery": False, "processing": True},
        "outcome": "delivered",
        "started": "2025-01-15T10:42Z",  # 10:42:59 rounded down
        "ended": "2025-01-15T10:44Z",  # 10:44:14 rounded down
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"receipt": "alice@example.org"}, "receipt"),
        ({"receipt": "ILOU1234"}, "receipt"),  # not Crockford
        ({"policy": "2025-01"}, "policy"),
        ({"choices": {"email": "alice@example.org"}}, "true/false"),
        ({"choices": {"name": "Alice Smith"}}, "true/false"),
        ({"choices": {"Full Name": True}}, "true/false"),
        ({"choices": {f"c{i}": True for i in range(17)}}, "at most"),
        ({"outcome": "uploaded"}, "outcome"),
    ],
)
def test_consent_records_outside_the_allow_list_are_refused(
    log: AuditLog, changes: dict[str, Any], message: str
) -> None:
    fields: dict[str, Any] = {
        "receipt": receipt_id(),
        "policy": POLICY,
        "choices": {"processing": True},
        "outcome": "delivered",
        "started": T0,
        "ended": T0,
    }
    fields.update(changes)
    with pytest.raises(AuditError, match=message):
        log.append_consent(**fields)
    assert not log.log_path.exists() or log.log_path.read_bytes() == b""


def test_append_consent_takes_no_extra_fields(log: AuditLog) -> None:
    # The signature is the allow-list's first line of defence: no image, name or e-mail parameter exists.
    with pytest.raises(TypeError):
        log.append_consent(  # type: ignore[call-arg]
            receipt=receipt_id(),
            policy=POLICY,
            choices={},
            outcome="delivered",
            started=T0,
            ended=T0,
            name="Alice",
        )


def test_times_must_be_aware_and_in_order(log: AuditLog) -> None:
    with pytest.raises(AuditError, match="timezone-aware"):
        log.append_consent(
            receipt=receipt_id(),
            policy=POLICY,
            choices={},
            outcome="declined",
            started=datetime(2025, 1, 1),  # naive: the point of the test
            ended=T0,
        )
    with pytest.raises(AuditError, match="ended is before started"):
        log.append_consent(
            receipt=receipt_id(),
            policy=POLICY,
            choices={},
            outcome="declined",
            started=T0,
            ended=T0 - timedelta(hours=1),
        )
    # epoch seconds work too, in UTC
    record = log.append_consent(
        receipt=receipt_id(),
        policy=POLICY,
        choices={},
        outcome="declined",
        started=T0.timestamp(),
        ended=T0.timestamp(),
    )
    assert record["started"] == "2025-01-15T10:42Z"


@pytest.mark.parametrize(
    ("account", "action", "target"),
    [("Alice Smith", "kiosk.pause", None), ("alice", "Paused the kiosk!", None), ("alice", "x", "a@b.org")],
)
def test_staff_records_outside_the_allow_list_are_refused(
    log: AuditLog, account: str, action: str, target: str | None
) -> None:
    with pytest.raises(AuditError):
        log.append_staff(account, action, target=target)


def test_receipt_ids_are_random_crockford_base32() -> None:
    ids = {receipt_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{8}", value) for value in ids)


@pytest.mark.parametrize("reason", list(WipeReason))
def test_every_wipe_reason_has_an_outcome(reason: WipeReason) -> None:
    assert isinstance(outcome_for(reason), ConsentOutcome)


def test_outcomes_of_guest_actions() -> None:
    assert outcome_for(WipeReason.FINISHED) is ConsentOutcome.DELIVERED
    assert outcome_for(WipeReason.CONSENT_DECLINED) is ConsentOutcome.DECLINED
    assert outcome_for(WipeReason.IDLE_TIMEOUT) is ConsentOutcome.TIMED_OUT
    assert outcome_for(WipeReason.DELETED_BY_GUEST) is ConsentOutcome.DELETED
    assert outcome_for(WipeReason.CONSENT_REVOKED) is ConsentOutcome.REVOKED


def test_files_are_owner_only(log: AuditLog) -> None:
    fill(log, 1)
    assert stat.S_IMODE(log.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(log.log_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(log.head_path.stat().st_mode) == 0o600


# ------------------------------------------------------------------------------------------------ chain


def test_each_line_carries_the_hash_of_the_previous_one(log: AuditLog) -> None:
    fill(log, 4)
    lines = lines_of(log)
    assert json.loads(lines[0])["prev"] == GENESIS
    for before, line in itertools.pairwise(lines):
        assert json.loads(line)["prev"] == hashlib.sha256(before).hexdigest()
    assert log.verify().ok
    assert log.verify().records == 4


def test_empty_log_verifies(log: AuditLog) -> None:
    result = log.verify()
    assert result.ok and result.records == 0
    assert log.export() == b""


def _edit_field(lines: list[bytes]) -> list[bytes]:
    record = json.loads(lines[1])
    record["action"] = "kiosk.resume"
    lines[1] = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    return lines


def _edit_last(lines: list[bytes]) -> list[bytes]:
    record = json.loads(lines[-1])
    record["outcome"] = "declined"
    lines[-1] = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    return lines


def _reformat(lines: list[bytes]) -> list[bytes]:
    lines[2] = json.dumps(json.loads(lines[2]), sort_keys=True).encode()  # same data, spaces added
    return lines


def _forge_append(lines: list[bytes]) -> list[bytes]:
    forged = json.loads(lines[-1])
    forged["receipt"] = "ZZZZZZZZ"
    forged["prev"] = GENESIS  # not the hash of the last line
    return [*lines, json.dumps(forged, sort_keys=True, separators=(",", ":")).encode()]


def _insert(lines: list[bytes]) -> list[bytes]:
    return [*lines[:2], lines[2], *lines[2:]]


TAMPERING: dict[str, tuple[Callable[[list[bytes]], list[bytes]], int]] = {
    # name: (change to the 5 lines, first bad line reported)
    "edit a field": (_edit_field, 3),  # line 3's prev no longer matches edited line 2
    "edit the last line": (_edit_last, 5),  # caught by the head
    "reformat a line": (_reformat, 3),
    "delete a line": (lambda lines: lines[:1] + lines[2:], 2),
    "delete the first line": (lambda lines: lines[1:], 1),
    "swap two lines": (lambda lines: [lines[0], lines[2], lines[1], *lines[3:]], 2),
    "insert a duplicate line": (_insert, 4),
    "truncate the last line": (lambda lines: lines[:-1], 5),  # caught by the head
    "truncate to nothing": (lambda lines: [], 1),
    "append a forged line": (_forge_append, 6),
}


@pytest.mark.parametrize("kind", list(TAMPERING))
def test_verify_detects_tampering(log: AuditLog, kind: str) -> None:
    fill(log, 5)
    assert log.verify().ok
    change, bad_line = TAMPERING[kind]
    write_lines(log, change(lines_of(log)))
    result = log.verify()
    assert not result.ok
    assert result.first_bad_line == bad_line, result.problem
    assert result.problem


def test_verify_detects_a_cut_in_the_middle_of_a_line(log: AuditLog) -> None:
    fill(log, 3)
    data = log.log_path.read_bytes()
    log.log_path.write_bytes(data[: len(data) - 20])
    result = log.verify()
    assert not result.ok and result.first_bad_line == 3
    assert "incomplete" in (result.problem or "")


def test_verify_detects_a_deleted_head(log: AuditLog) -> None:
    fill(log, 2)
    log.head_path.unlink()
    assert not log.verify().ok


def test_a_well_chained_line_outside_the_allow_list_is_caught(log: AuditLog) -> None:
    # Someone who recomputes the chain still cannot slip a guest's name in unnoticed by the schema check.
    fill(log, 2)
    lines = lines_of(log)
    forged = {**json.loads(lines[-1]), "prev": hashlib.sha256(lines[-1]).hexdigest(), "name": "Alice Smith"}
    write_lines(log, [*lines, json.dumps(forged, sort_keys=True, separators=(",", ":")).encode()])
    result = log.verify()
    assert not result.ok and result.first_bad_line == 3
    assert "fields" in (result.problem or "")


def test_head_one_line_behind_is_an_interrupted_append(log: AuditLog) -> None:
    # A crash between writing a line and updating the head leaves the head one line behind: that is no
    # tampering, and the next append repairs the head from the file.
    fill(log, 2)
    head_before = log.head_path.read_bytes()
    consent(log, minutes=9)
    log.head_path.write_bytes(head_before)
    assert log.verify().ok
    consent(log, minutes=10)
    assert log.verify().ok
    assert log.verify().records == 4


def test_append_after_a_torn_write_keeps_the_damage_visible(log: AuditLog) -> None:
    fill(log, 2)
    with log.log_path.open("ab") as handle:
        handle.write(b'{"type":"consent","rec')  # power lost mid-write
    consent(log, minutes=5)
    lines = lines_of(log)
    assert len(lines) == 4
    assert lines[2] == b'{"type":"consent","rec'
    result = log.verify()
    assert not result.ok and result.first_bad_line == 3


def test_concurrent_appends_from_threads_keep_one_chain(log: AuditLog) -> None:
    def worker() -> None:
        for _ in range(20):
            AuditLog(log.directory).append_staff("bob", "kiosk.resume")

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = log.verify()
    assert result.ok, result.problem
    assert result.records == 100


def test_concurrent_appends_from_processes_keep_one_chain(log: AuditLog) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from appliance.audit import AuditLog, receipt_id\n"
        "log = AuditLog(Path(sys.argv[1]))\n"
        "for i in range(25):\n"
        "    log.append_consent(receipt=receipt_id(), policy='"
        + POLICY
        + "', choices={'processing': True},\n"
        "                       outcome='timed_out', started=1736937720.0, ended=1736937780.0)\n"
        "    log.append_staff('carol', 'kiosk.pause')\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(log.directory)], cwd=REPO) for _ in range(4)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    result = log.verify()
    assert result.ok, result.problem
    assert result.records == 4 * 25 * 2


def test_export_is_the_log_as_written(log: AuditLog) -> None:
    fill(log, 3)
    exported = log.export()
    assert exported == log.log_path.read_bytes()
    assert exported.count(b"\n") == 3


# -------------------------------------------------------------------------------------------- policy, kiosk


def _cfg(tmp_path: Path, **delivery: Any) -> KioskConfig:
    return parse_config({"audit": {"path": str(tmp_path / "audit")}, "delivery": delivery})


def test_policy_hash_follows_the_rendered_text(tmp_path: Path) -> None:
    base = policy_version_hash(_cfg(tmp_path))
    assert re.fullmatch(r"[0-9a-f]{64}", base)
    assert policy_version_hash(_cfg(tmp_path)) == base  # deterministic
    assert policy_version_hash(_cfg(tmp_path, window_minutes=20)) != base
    versioned = parse_config({"event": {"policy_version": "2025-02"}})
    assert policy_version_hash(versioned) != policy_version_hash(KioskConfig())


@dataclass(frozen=True)
class FakeReceipt:
    code: str
    outcome: WipeReason
    choices: Mapping[str, bool]
    started_wall: float
    ended_wall: float


def test_receipt_recorder_writes_the_kiosk_receipt(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    record = receipt_recorder(cfg)
    record(
        FakeReceipt(
            "7K3QX9MD", WipeReason.IDLE_TIMEOUT, {"processing": True}, T0.timestamp(), T0.timestamp() + 200
        )
    )
    log = AuditLog(cfg.audit.path)
    assert log.verify().ok
    (line,) = [json.loads(x) for x in log.export().splitlines()]
    assert line["receipt"] == "7K3QX9MD"
    assert line["outcome"] == "timed_out"
    assert line["policy"] == policy_version_hash(cfg)
    assert (line["started"], line["ended"]) == ("2025-01-15T10:42Z", "2025-01-15T10:46Z")


# ------------------------------------------------------------------------------------------------ command


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "kiosk.toml"
    path.write_text(f'[audit]\npath = "{tmp_path / "audit"}"\n')
    return path


def test_audit_verify_command(config_file: Path, log: AuditLog, capsys: pytest.CaptureFixture[str]) -> None:
    fill(log, 3)
    assert audit_main(["verify", "--config", str(config_file)]) == 0
    assert "OK: 3 records" in capsys.readouterr().out
    write_lines(log, lines_of(log)[1:])
    assert audit_main(["--config", str(config_file), "verify"]) == 1
    assert "TAMPERED" in capsys.readouterr().err


def test_audit_export_command(
    config_file: Path, log: AuditLog, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    fill(log, 2)
    before = log.export()
    assert audit_main(["export", "--config", str(config_file)]) == 0
    assert capsysbinary.readouterr().out == before
    out = tmp_path / "export.jsonl"
    assert audit_main(["export", "-o", str(out), "--config", str(config_file)]) == 0
    assert out.read_bytes().startswith(before)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    # exports are staff actions too
    last = json.loads(lines_of(log)[-1])
    assert (last["account"], last["action"]) == ("cli", "audit.export")
    assert log.verify().ok


def test_audit_command_usage_errors(config_file: Path) -> None:
    assert audit_main([]) == 2
    assert audit_main(["shred"]) == 2
    assert audit_main(["verify", "--config", str(config_file.with_name("nope.toml"))]) == 2
    assert audit_main(["--help"]) == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_files_made_by_root_belong_to_the_directory_owner(log: AuditLog) -> None:
    # The service user owns [audit] path; `audit export` run as root appends and rewrites the head, which
    # must stay readable to the service.
    log.directory.mkdir(mode=0o700)
    os.chown(log.directory, 4321, 4321)
    fill(log, 2)
    for path in (log.log_path, log.head_path):
        assert (path.stat().st_uid, path.stat().st_gid) == (4321, 4321)
