"""The encrypted RAM store: round trip, AAD binding, tampering, inventory, wipe, sweep, expiry, mounts."""

from __future__ import annotations

import logging
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from appliance.mounts import mount_at, read_mountinfo
from appliance.store import (
    Backing,
    IntegrityError,
    ObjectNotFoundError,
    SessionStore,
    SessionVault,
    StoreError,
    StoreFullError,
    new_session_id,
)

if TYPE_CHECKING:
    from tests.appliance.conftest import ManualClock

REPO = Path(__file__).resolve().parents[2]


def _kernel_at_least(major: int, minor: int) -> bool:
    found = re.match(r"(\d+)\.(\d+)", platform.release())
    return found is not None and (int(found.group(1)), int(found.group(2))) >= (major, minor)


def _in_initial_user_namespace() -> bool:
    return Path("/proc/self/uid_map").read_text().split() == ["0", "0", "4294967295"]


def _files_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*") if not p.is_dir()}


# -- round trip and format ---------------------------------------------------------------------------------


def test_put_then_get_returns_the_plaintext(shm_store: SessionStore, manual_clock: ManualClock) -> None:
    vault = shm_store.begin(new_session_id())
    data = os.urandom(100_000)
    obj_id = vault.put("capture", data, expires_at=manual_clock() + 60)
    assert vault.get(obj_id) == data
    assert vault.get(obj_id) == data  # reading does not consume


def test_put_accepts_bytearray_and_memoryview(shm_store: SessionStore, manual_clock: ManualClock) -> None:
    vault = shm_store.begin(new_session_id())
    buffer = bytearray(b"\x01\x02\x03" * 1000)
    a = vault.put("capture", buffer, expires_at=manual_clock() + 60)
    b = vault.put("capture", memoryview(buffer)[:300], expires_at=manual_clock() + 60)
    assert vault.get(a) == bytes(buffer)
    assert vault.get(b) == bytes(buffer[:300])


def test_object_ids_are_random_hex_file_names(shm_store: SessionStore, manual_clock: ManualClock) -> None:
    session_id = new_session_id()
    vault = shm_store.begin(session_id)
    ids = {vault.put("headshot", b"x", expires_at=manual_clock() + 60) for _ in range(20)}
    assert len(ids) == 20
    assert all(re.fullmatch(r"[0-9a-f]{32}", obj_id) for obj_id in ids)
    assert set(os.listdir(shm_store.path / session_id)) == ids


def test_files_and_directories_are_private(shm_store: SessionStore, manual_clock: ManualClock) -> None:
    session_id = new_session_id()
    vault = shm_store.begin(session_id)
    obj_id = vault.put("capture", b"x", expires_at=manual_clock() + 60)
    assert stat.S_IMODE(os.stat(shm_store.path).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(shm_store.path / session_id).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(shm_store.path / session_id / obj_id).st_mode) == 0o600


def test_each_session_gets_its_own_key(shm_store: SessionStore) -> None:
    a = shm_store.begin(new_session_id())
    b = shm_store.begin(new_session_id())
    with a.key.view() as key_a, b.key.view() as key_b:
        assert bytes(key_a) != bytes(key_b)


# -- authentication: AAD binding and tampering -------------------------------------------------------------


def test_renamed_blob_fails_authentication(shm_store: SessionStore, manual_clock: ManualClock) -> None:
    session_id = new_session_id()
    vault = shm_store.begin(session_id)
    obj_id = vault.put("capture", b"pixels" * 100, expires_at=manual_clock() + 60)
    other_id = "0" * 32
    os.rename(shm_store.path / session_id / obj_id, shm_store.path / session_id / other_id)
    with pytest.raises(IntegrityError, match="failed authentication"):
        vault.get(other_id)
    with pytest.raises(IntegrityError):
        vault.inventory()


def test_blob_moved_to_another_session_fails_authentication(
    shm_store: SessionStore, manual_clock: ManualClock
) -> None:
    first, second = new_session_id(), new_session_id()
    vault_a = shm_store.begin(first)
    vault_b = shm_store.begin(second)
    obj_id = vault_a.put("capture", b"pixels", expires_at=manual_clock() + 60)
    shutil.copyfile(shm_store.path / first / obj_id, shm_store.path / second / obj_id)
    with pytest.raises(IntegrityError):
        vault_b.get(obj_id)


def test_same_key_different_session_id_fails(shm_store: SessionStore, manual_clock: ManualClock) -> None:
    """The AAD, not only the key, binds the session: a vault with the same key but another id cannot read."""
    first = new_session_id()
    vault = shm_store.begin(first)
    obj_id = vault.put("capture", b"pixels", expires_at=manual_clock() + 60)
    second = new_session_id()
    (shm_store.path / second).mkdir(mode=0o700)
    shutil.copyfile(shm_store.path / first / obj_id, shm_store.path / second / obj_id)
    impostor = SessionVault(shm_store.path / second, second, vault.key, clock=manual_clock)
    with pytest.raises(IntegrityError):
        impostor.get(obj_id)
    impostor.wipe()


@pytest.mark.parametrize("where", ["header", "body", "tag"])
def test_flipped_byte_is_detected(shm_store: SessionStore, manual_clock: ManualClock, where: str) -> None:
    session_id = new_session_id()
    vault = shm_store.begin(session_id)
    obj_id = vault.put("capture", os.urandom(4096), expires_at=manual_clock() + 60)
    path = shm_store.path / session_id / obj_id
    blob = bytearray(path.read_bytes())
    offset = {"header": 4 + 12 + 2 + 3, "body": len(blob) // 2, "tag": len(blob) - 1}[where]
    blob[offset] ^= 0x01
    path.write_bytes(bytes(blob))
    with pytest.raises(IntegrityError):
        vault.get(obj_id)


def test_truncated_blob_is_detected_by_inventory(shm_store: SessionStore, manual_clock: ManualClock) -> None:
    session_id = new_session_id()
    vault = shm_store.begin(session_id)
    obj_id = vault.put("capture", os.urandom(4096), expires_at=manual_clock() + 60)
    path = shm_store.path / session_id / obj_id
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(IntegrityError, match="wrong length"):
        vault.inventory()
    with pytest.raises(IntegrityError):
        vault.get(obj_id)


# -- inventory ---------------------------------------------------------------------------------------------


def test_inventory_equals_directory_contents(shm_store: SessionStore, manual_clock: ManualClock) -> None:
    session_id = new_session_id()
    vault = shm_store.begin(session_id)
    sizes = {}
    for n, kind in enumerate(["capture", "capture", "headshot", "delivery"]):
        manual_clock.advance(1)
        data = os.urandom(1000 * (n + 1))
        sizes[vault.put(kind, data, expires_at=manual_clock() + 600)] = (kind, len(data), manual_clock())
    deleted = next(iter(sizes))
    assert vault.delete(deleted)
    del sizes[deleted]

    held = vault.inventory()
    on_disk = set(os.listdir(shm_store.path / session_id))
    assert {item.id for item in held} == on_disk == set(sizes)
    for item in held:
        kind, size, created = sizes[item.id]
        assert (item.kind, item.bytes, item.created, item.expires) == (kind, size, created, created + 600)
    assert [item.created for item in held] == sorted(item.created for item in held)


def test_inventory_is_empty_for_a_new_session(shm_store: SessionStore) -> None:
    assert shm_store.begin(new_session_id()).inventory() == []


def test_inventory_rejects_unknown_files(shm_store: SessionStore) -> None:
    session_id = new_session_id()
    vault = shm_store.begin(session_id)
    (shm_store.path / session_id / "stray.jpg").write_bytes(b"\xff\xd8\xff")
    with pytest.raises(StoreError, match="unexpected file"):
        vault.inventory()


def test_delete_is_idempotent(shm_store: SessionStore, manual_clock: ManualClock) -> None:
    vault = shm_store.begin(new_session_id())
    obj_id = vault.put("capture", b"x", expires_at=manual_clock() + 60)
    assert vault.delete(obj_id) is True
    assert vault.delete(obj_id) is False
    with pytest.raises(ObjectNotFoundError):
        vault.get(obj_id)


# -- validation --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "session_id", ["", "abc", "../../etc", "Jane-Doe-2024", "0123456789ABCDEF", "a" * 65]
)
def test_session_ids_must_be_random_hex(shm_store: SessionStore, session_id: str) -> None:
    with pytest.raises(StoreError, match="hex"):
        shm_store.begin(session_id)


@pytest.mark.parametrize("kind", ["", "Capture", "jane@example.com", "a/b", "x" * 40])
def test_kind_must_be_a_short_label(shm_store: SessionStore, manual_clock: ManualClock, kind: str) -> None:
    vault = shm_store.begin(new_session_id())
    with pytest.raises(StoreError, match="kind"):
        vault.put(kind, b"x", expires_at=manual_clock() + 60)


def test_expiry_must_be_in_the_future(shm_store: SessionStore, manual_clock: ManualClock) -> None:
    vault = shm_store.begin(new_session_id())
    with pytest.raises(StoreError, match="future"):
        vault.put("capture", b"x", expires_at=manual_clock())


def test_object_id_validation(shm_store: SessionStore) -> None:
    vault = shm_store.begin(new_session_id())
    with pytest.raises(ObjectNotFoundError):
        vault.get("../../etc/passwd")
    with pytest.raises(ObjectNotFoundError):
        vault.get("f" * 32)


def test_same_session_cannot_begin_twice(shm_store: SessionStore) -> None:
    session_id = new_session_id()
    shm_store.begin(session_id)
    with pytest.raises(StoreError, match="already"):
        shm_store.begin(session_id)


# -- expiry ------------------------------------------------------------------------------------------------


def test_purge_expired_removes_only_expired(shm_store: SessionStore, manual_clock: ManualClock) -> None:
    session_id = new_session_id()
    vault = shm_store.begin(session_id)
    short = vault.put("capture", b"a", expires_at=manual_clock() + 10)
    long = vault.put("headshot", b"b", expires_at=manual_clock() + 100)
    assert vault.purge_expired() == 0
    manual_clock.advance(10)
    assert shm_store.purge_expired() == 1
    assert [item.id for item in vault.inventory()] == [long]
    assert not (shm_store.path / session_id / short).exists()
    manual_clock.advance(1000)
    assert vault.purge_expired() == 1
    assert vault.inventory() == []


def test_expired_object_is_gone_on_get(shm_store: SessionStore, manual_clock: ManualClock) -> None:
    session_id = new_session_id()
    vault = shm_store.begin(session_id)
    obj_id = vault.put("capture", b"a", expires_at=manual_clock() + 5)
    manual_clock.advance(5)
    with pytest.raises(ObjectNotFoundError, match="expired"):
        vault.get(obj_id)
    assert os.listdir(shm_store.path / session_id) == []


# -- wipe --------------------------------------------------------------------------------------------------


def test_wipe_removes_every_file_and_destroys_the_key(
    shm_store: SessionStore, manual_clock: ManualClock
) -> None:
    session_id = new_session_id()
    vault = shm_store.begin(session_id)
    for _ in range(5):
        vault.put("capture", os.urandom(2000), expires_at=manual_clock() + 60)
    key = vault.key
    assert vault.wipe() == 5
    assert not (shm_store.path / session_id).exists()
    assert key.destroyed
    assert vault.wiped
    assert vault.wipe() == 0  # idempotent
    with pytest.raises(StoreError, match="wiped"):
        vault.put("capture", b"x", expires_at=manual_clock() + 60)
    with pytest.raises(StoreError, match="wiped"):
        vault.inventory()
    assert shm_store.usage().objects == 0


def test_leaving_the_vault_context_wipes(shm_store: SessionStore, manual_clock: ManualClock) -> None:
    session_id = new_session_id()
    with pytest.raises(RuntimeError), shm_store.begin(session_id) as vault:
        vault.put("capture", b"x", expires_at=manual_clock() + 60)
        raise RuntimeError("camera unplugged")
    assert vault.wiped
    assert not (shm_store.path / session_id).exists()


def test_store_wipes_a_session_without_its_key(shm_store: SessionStore, manual_clock: ManualClock) -> None:
    """The main process removes a worker's files by session id; the worker's vault then refuses to write."""
    session_id = new_session_id()
    worker_vault = SessionVault.create(shm_store.path, session_id, clock=manual_clock)
    worker_vault.put("capture", b"x", expires_at=manual_clock() + 60)
    worker_vault.put("capture", b"y", expires_at=manual_clock() + 60)
    assert shm_store.session_ids() == [session_id]
    assert shm_store.wipe_session(session_id) == 2
    assert shm_store.session_ids() == []
    with pytest.raises(StoreError, match="gone"):
        worker_vault.put("capture", b"z", expires_at=manual_clock() + 60)
    worker_vault.wipe()
    assert shm_store.wipe_session(session_id) == 0


def test_vault_created_in_a_worker_process_is_wiped_by_the_store(shm_store: SessionStore) -> None:
    """A real second process holds the key and dies without wiping (as at kill -9); the store cleans up."""
    session_id = new_session_id()
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from appliance.store import SessionVault
        vault = SessionVault.create(Path({str(shm_store.path)!r}), {session_id!r})
        for _ in range(3):
            vault.put("capture", b"pixels" * 1000, expires_at=time.time() + 60)
        print(len(vault.inventory()), flush=True)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "3"
    usage = shm_store.usage()
    assert (usage.sessions, usage.objects) == (1, 3)
    assert shm_store.wipe_session(session_id) == 3
    assert _files_under(shm_store.path) == set()


def test_close_wipes_all_vaults_and_removes_the_directory(
    store_root: Path, manual_clock: ManualClock
) -> None:
    store = SessionStore(store_root, size_mib=4, allow_mount=False, clock=manual_clock)
    store.open()
    path = store.path
    vaults = [store.begin(new_session_id()) for _ in range(3)]
    for vault in vaults:
        vault.put("capture", b"x", expires_at=manual_clock() + 60)
    store.close()
    assert all(vault.wiped and vault.key.destroyed for vault in vaults)
    assert not path.exists()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="not open"):
        _ = store.path


# -- sweep -------------------------------------------------------------------------------------------------


def test_open_sweeps_leftovers_of_a_crashed_run(
    store_root: Path, tmp_path: Path, manual_clock: ManualClock
) -> None:
    crashed = SessionStore(store_root, size_mib=4, allow_mount=False, clock=manual_clock)
    crashed.open()
    path = crashed.path
    vault = crashed.begin(new_session_id())
    vault.put("capture", b"x" * 100, expires_at=manual_clock() + 60)
    (path / "deadbeefdeadbeef").mkdir()
    (path / "deadbeefdeadbeef" / ("a" * 32 + ".partial")).write_bytes(b"half")
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    (path / "link").symlink_to(outside)
    # The process "crashes": nothing is closed. A new run opens the same root.
    restarted = SessionStore(store_root, size_mib=4, allow_mount=False, clock=manual_clock)
    try:
        restarted.open()
        assert restarted.path == path
        assert os.listdir(path) == []
        assert outside.read_text() == "keep me"  # symlinks are removed, never followed
    finally:
        restarted.close()
        vault.wipe()


def test_sweep_keeps_sessions_of_live_vaults(shm_store: SessionStore, manual_clock: ManualClock) -> None:
    vault = shm_store.begin(new_session_id())
    obj_id = vault.put("capture", b"x", expires_at=manual_clock() + 60)
    (shm_store.path / "junk").write_bytes(b"junk")
    assert shm_store.sweep() == 1
    assert vault.get(obj_id) == b"x"


# -- usage and capacity ------------------------------------------------------------------------------------


def test_usage_reports_counts_and_sizes_only(shm_store: SessionStore, manual_clock: ManualClock) -> None:
    vault = shm_store.begin(new_session_id())
    vault.put("capture", b"x" * 1000, expires_at=manual_clock() + 60)
    vault.put("capture", b"x" * 2000, expires_at=manual_clock() + 60)
    usage = shm_store.usage()
    assert usage.sessions == 1
    assert usage.objects == 2
    assert 3000 < usage.bytes_used < 3400  # ciphertext + nonces, header, tags
    assert usage.capacity_bytes == 16 * 1024 * 1024
    assert usage.backing is Backing.SHM_FALLBACK
    assert usage.noswap is False


def test_size_cap_is_enforced_without_a_tmpfs(store_root: Path, manual_clock: ManualClock) -> None:
    with SessionStore(store_root, size_mib=1, allow_mount=False, clock=manual_clock) as store:
        vault = store.begin(new_session_id())
        vault.put("capture", b"x" * 600_000, expires_at=manual_clock() + 60)
        with pytest.raises(StoreFullError):
            vault.put("capture", b"x" * 600_000, expires_at=manual_clock() + 60)
        assert len(vault.inventory()) == 1


# -- where the store lives ---------------------------------------------------------------------------------


def test_unprivileged_fallback_is_a_private_shm_directory(
    store_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="appliance.store")
    with SessionStore(store_root, size_mib=4, allow_mount=False) as store:
        assert store.backing is Backing.SHM_FALLBACK
        assert store.path.parent == Path("/dev/shm")
        st = os.lstat(store.path)
        assert stat.S_ISDIR(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o700
        assert st.st_uid == os.geteuid()
        assert not store_root.exists()  # nothing is created at the requested root
        assert not store.noswap
    assert any("swap" in record.getMessage() for record in caplog.records)


def test_fallback_refuses_a_directory_it_does_not_own_privately(store_root: Path) -> None:
    store = SessionStore(store_root, size_mib=4, allow_mount=False)
    store.open()
    path = store.path
    store.close()
    path.mkdir(mode=0o755)
    os.chmod(path, 0o755)  # as if someone else prepared it (umask-independent)
    try:
        with pytest.raises(StoreError, match="private"):
            SessionStore(store_root, size_mib=4, allow_mount=False).open()
    finally:
        path.rmdir()


def test_tmpfs_is_mounted_as_root_with_cap_mode_and_noswap(
    store_root: Path, require_tmpfs_mount: None
) -> None:
    store = SessionStore(store_root, size_mib=16)
    store.open()
    try:
        assert store.backing is Backing.MOUNTED
        assert store.path == store_root
        entry = mount_at(store_root)
        assert entry is not None
        assert entry.fstype == "tmpfs"
        assert "size=16384k" in entry.super_options
        assert "mode=700" in entry.super_options
        assert {"nosuid", "nodev", "noexec"} <= set(entry.mount_options)
        if _kernel_at_least(6, 4) and _in_initial_user_namespace():
            # tmpfs noswap exists since Linux 6.4 (refused inside user namespaces); the store tries it.
            assert store.noswap
            assert "noswap" in entry.super_options
        else:
            assert not store.noswap
        assert store.usage().capacity_bytes == 16 * 1024 * 1024
    finally:
        store.close()
    assert mount_at(store_root) is None
    assert not store_root.exists()  # the store created the mount point and removes it again


def test_mounted_tmpfs_size_cap_reports_store_full(store_root: Path, require_tmpfs_mount: None) -> None:
    with SessionStore(store_root, size_mib=1) as store:
        vault = store.begin(new_session_id())
        with pytest.raises(StoreFullError):
            for _ in range(4):
                vault.put("capture", b"x" * 400_000, expires_at=1e12)


def test_existing_tmpfs_mount_is_used_and_left_mounted(
    store_root: Path, tmp_path: Path, require_tmpfs_mount: None
) -> None:
    store_root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(store_root)], check=True)
    try:
        with SessionStore(store_root, size_mib=2) as store:
            assert store.backing is Backing.EXISTING_MOUNT
            assert stat.S_IMODE(os.stat(store_root).st_mode) == 0o700
        assert mount_at(store_root) is not None
    finally:
        subprocess.run(["umount", str(store_root)], check=True)


def test_disk_backed_mount_point_is_refused(store_root: Path, require_tmpfs_mount: None) -> None:
    store_root.mkdir()
    subprocess.run(["mount", "--bind", str(store_root), str(store_root)], check=True)
    try:
        entry = mount_at(store_root)
        assert entry is not None
        if entry.fstype in {"tmpfs", "ramfs"}:
            pytest.skip("the test directory is itself on a RAM filesystem here")
        with pytest.raises(StoreError, match="not RAM-backed"):
            SessionStore(store_root).open()
    finally:
        subprocess.run(["umount", str(store_root)], check=True)


def test_mountinfo_parser_unescapes_spaces(tmp_path: Path) -> None:
    sample = tmp_path / "mountinfo"
    sample.write_text(
        "36 35 98:0 /mnt1 /mnt/my\\040store rw,noatime master:1 - tmpfs none rw,size=1024k,mode=700,noswap\n"
    )
    (entry,) = read_mountinfo(sample)
    assert entry.mount_point == "/mnt/my store"
    assert entry.fstype == "tmpfs"
    assert "noswap" in entry.super_options
    assert entry.mount_options == ("rw", "noatime")
