"""engine.fileio.write_atomic: the one atomic write (mode, owner hook, no partial file, durable rename)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from engine.fileio import write_atomic


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_replaces_the_whole_file_with_the_given_mode(tmp_path: Path) -> None:
    path = tmp_path / "x.plan"
    path.write_bytes(b"old")
    write_atomic(path, b"new contents", mode=0o644)
    assert path.read_bytes() == b"new contents"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert _names(tmp_path) == ["x.plan"]


def test_default_mode_is_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)  # a permissive umask must not widen a secret
    try:
        write_atomic(tmp_path / "secret", b"k")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600


@pytest.mark.parametrize(("umask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_mode_none_leaves_the_mode_to_the_umask(tmp_path: Path, umask: int, expected: int) -> None:
    old = os.umask(umask)
    try:
        write_atomic(tmp_path / "doc.md", b"# notice\n", mode=None)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "doc.md").stat().st_mode) == expected


def test_mode_and_owner_are_set_before_the_first_byte(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    seen: list[tuple[int, int]] = []

    def set_owner(fd: int) -> None:
        st = os.fstat(fd)
        seen.append((stat.S_IMODE(st.st_mode), st.st_size))
        assert not path.exists()  # nothing visible under the name yet

    write_atomic(path, b"-----BEGIN PRIVATE KEY-----\n", mode=0o400, set_owner=set_owner)
    assert seen == [(0o400, 0)]
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    assert path.read_bytes() == b"-----BEGIN PRIVATE KEY-----\n"


def test_writes_a_memoryview_in_full(tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 5)
    write_atomic(tmp_path / "m.plan", memoryview(data))
    assert (tmp_path / "m.plan").read_bytes() == data


@pytest.mark.parametrize("failing", ["write", "fsync", "replace"])
def test_failed_write_leaves_old_file_and_no_partial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    path = tmp_path / "x.plan"
    path.write_bytes(b"old plan")

    def boom(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, boom)
    with pytest.raises(OSError, match="No space"):
        write_atomic(path, b"half a plan" * 1000, mode=0o644)
    monkeypatch.undo()
    assert path.read_bytes() == b"old plan"
    assert _names(tmp_path) == ["x.plan"]  # no temp file left behind


def test_failing_owner_hook_leaves_nothing(tmp_path: Path) -> None:
    def refuse(fd: int) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    with pytest.raises(PermissionError):
        write_atomic(tmp_path / "accounts.json", b"{}", set_owner=refuse)
    assert _names(tmp_path) == []


def test_failed_new_file_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk gone")))
    with pytest.raises(OSError, match="disk gone"):
        write_atomic(tmp_path / "new.plan", b"data")
    assert list(tmp_path.iterdir()) == []


def _record_fsyncs(monkeypatch: pytest.MonkeyPatch, fail_dir_with: int | None = None) -> list[str]:
    """Patch os.fsync to note what kind of file each call syncs; optionally fail the directory's."""
    real_fsync = os.fsync
    kinds: list[str] = []

    def fsync(fd: int) -> None:
        is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
        kinds.append("dir" if is_dir else "file")
        if is_dir and fail_dir_with is not None:
            raise OSError(fail_dir_with, os.strerror(fail_dir_with))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return kinds


def test_file_then_directory_are_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kinds = _record_fsyncs(monkeypatch)
    write_atomic(tmp_path / "head.json", b"{}")
    assert kinds == ["file", "dir"]  # the data before the rename, the rename itself after


def test_directory_fsync_io_error_is_reported_after_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _record_fsyncs(monkeypatch, fail_dir_with=errno.EIO)
    with pytest.raises(OSError) as info:
        write_atomic(tmp_path / "head.json", b"{}")
    assert info.value.errno == errno.EIO
    assert (tmp_path / "head.json").read_bytes() == b"{}"  # in place, but its durability is not known


def test_directory_without_fsync_support_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Some network/FUSE filesystems answer EINVAL for a directory fsync; the rename is atomic regardless.
    _record_fsyncs(monkeypatch, fail_dir_with=errno.EINVAL)
    write_atomic(tmp_path / "head.json", b"{}")
    assert (tmp_path / "head.json").read_bytes() == b"{}"


def test_refuses_a_symlink_planted_at_a_temp_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The temp name is random; if it were guessed and planted, O_EXCL | O_NOFOLLOW refuses it rather than
    # writing through the link.
    target = tmp_path / "elsewhere"
    monkeypatch.setattr("engine.fileio.secrets.token_hex", lambda n: "0" * (2 * n))
    (tmp_path / f".x.{'0' * 16}.tmp").symlink_to(target)
    with pytest.raises(FileExistsError):
        write_atomic(tmp_path / "x", b"data")
    assert not target.exists()
    assert not (tmp_path / "x").exists()
