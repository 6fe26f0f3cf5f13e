"""P1-7: session key pages are locked in RAM and excluded from core dumps, checked from outside in /proc.

A child process holds a ``SecretKey``; the test reads the child's ``/proc/<pid>/smaps`` entry for the key's
mapping. VmFlags (proc(5)): ``lo`` = VM_LOCKED (never swapped), ``dd`` = VM_DONTDUMP (left out of core
dumps), ``wf`` = VM_WIPEONFORK. For memfd_secret the kernel sets ``lo`` and ``dd`` itself (mm/secretmem.c),
the mapping is named ``/secretmem (deleted)``, and the page is missing from the kernel's direct map, so even
root reading ``/proc/<pid>/mem`` gets EIO, whereas the mlock page is readable that way (which also shows the
read is real). The mlock fallback is always exercised; memfd_secret is skipped with the kernel's reason where
unavailable.
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.secretmem import memfd_secret_available, memfd_secret_unavailable_reason

REPO = Path(__file__).resolve().parents[2]


@dataclass
class KeyHolder:
    process: subprocess.Popen[str]
    mechanism: str
    address: int
    digest: str

    def step(self) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()


def smaps_entry(pid: int, address: int) -> dict[str, str] | None:
    """The smaps block of the mapping containing ``address``: header fields plus ``Key: value`` lines."""
    entry: dict[str, str] | None = None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        first = line.split(maxsplit=1)[0]
        if "-" in first and ":" not in first:
            if entry is not None:
                return entry
            start, end = (int(part, 16) for part in first.split("-"))
            if start <= address < end:
                fields = line.split(maxsplit=5)
                entry = {"range": first, "perms": fields[1], "path": fields[5] if len(fields) > 5 else ""}
        elif entry is not None:
            key, _, value = line.partition(":")
            entry[key] = value.strip()
    return entry


@pytest.fixture
def key_holder(request: pytest.FixtureRequest) -> Iterator[KeyHolder]:
    prefer_secret: bool = request.param
    script = textwrap.dedent(
        f"""
        import hashlib, sys
        from appliance.secretmem import SecretKey
        key = SecretKey.generate(prefer_secret={prefer_secret})
        with key.view() as view:
            digest = hashlib.sha256(view).hexdigest()
        print(key.mechanism.value, key.address, digest, flush=True)
        sys.stdin.readline()
        key.destroy()
        print("destroyed", flush=True)
        sys.stdin.readline()
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdin is not None
    mechanism, address, digest = process.stdout.readline().split()
    try:
        yield KeyHolder(process, mechanism, int(address), digest)
    finally:
        process.stdin.close()
        process.wait(timeout=30)
        process.stdout.close()


def read_remote(pid: int, address: int, length: int) -> bytes:
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    try:
        return os.pread(fd, length, address)
    finally:
        os.close(fd)


@pytest.mark.parametrize("key_holder", [False], indirect=True, ids=["mlock"])
def test_p1_7_mlock_key_page_is_locked_dontdump_and_wiped_on_fork(key_holder: KeyHolder) -> None:
    assert key_holder.mechanism == "mlock"
    entry = smaps_entry(key_holder.process.pid, key_holder.address)
    assert entry is not None, "key mapping not found in smaps"
    flags = entry["VmFlags"].split()
    assert {"lo", "dd", "wf"} <= set(flags), flags
    assert entry["path"] == ""  # anonymous
    assert entry["Locked"] == entry["Rss"] == entry["Size"]
    assert entry["Swap"] == "0 kB"
    # The parent can read this page through /proc/<pid>/mem: locking does not hide it from root or ptrace.
    assert hashlib.sha256(read_remote(key_holder.process.pid, key_holder.address, 32)).hexdigest() == (
        key_holder.digest
    )
    assert key_holder.step() == "destroyed"
    assert smaps_entry(key_holder.process.pid, key_holder.address) is None


@pytest.mark.skipif(not memfd_secret_available(), reason=f"{memfd_secret_unavailable_reason()}")
@pytest.mark.parametrize("key_holder", [True], indirect=True, ids=["memfd_secret"])
def test_p1_7_memfd_secret_key_page_is_locked_dontdump_and_unreadable(key_holder: KeyHolder) -> None:
    assert key_holder.mechanism == "memfd_secret"
    entry = smaps_entry(key_holder.process.pid, key_holder.address)
    assert entry is not None, "key mapping not found in smaps"
    flags = entry["VmFlags"].split()
    assert {"lo", "dd"} <= set(flags), flags
    assert "secretmem" in entry["path"]
    assert entry["Swap"] == "0 kB"
    with pytest.raises(OSError) as excinfo:
        read_remote(key_holder.process.pid, key_holder.address, 32)
    assert excinfo.value.errno == errno.EIO
    assert key_holder.step() == "destroyed"
    assert smaps_entry(key_holder.process.pid, key_holder.address) is None
