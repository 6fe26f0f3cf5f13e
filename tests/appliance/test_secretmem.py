"""Session keys in protected memory: both mechanisms, destroy, AESGCM hand-over, fork behaviour."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from appliance.secretmem import (
    KEY_BYTES,
    Mechanism,
    SecretKey,
    SecretMemoryError,
    memfd_secret_available,
    memfd_secret_unavailable_reason,
)

REPO = Path(__file__).resolve().parents[2]

needs_memfd_secret = pytest.mark.skipif(
    not memfd_secret_available(), reason=f"memfd_secret unavailable: {memfd_secret_unavailable_reason()}"
)
MECHANISMS = [
    pytest.param(False, id="mlock"),
    pytest.param(True, id="memfd_secret", marks=needs_memfd_secret),
]


def _mapped(address: int) -> bool:
    for line in Path("/proc/self/maps").read_text().splitlines():
        start, end = (int(part, 16) for part in line.split()[0].split("-"))
        if start <= address < end:
            return True
    return False


@pytest.mark.parametrize("prefer_secret", MECHANISMS)
def test_key_is_32_random_bytes(prefer_secret: bool) -> None:
    with (
        SecretKey.generate(prefer_secret=prefer_secret) as first,
        SecretKey.generate(prefer_secret=prefer_secret) as second,
        first.view() as a,
        second.view() as b,
    ):
        assert len(a) == KEY_BYTES
        assert bytes(a) != bytes(b)
        assert bytes(a) != bytes(KEY_BYTES)


def test_mlock_mechanism_when_secret_not_preferred() -> None:
    with SecretKey.generate(prefer_secret=False) as key:
        assert key.mechanism is Mechanism.MLOCK
        assert isinstance(key.mechanism, str)
        assert key.mechanism.value == "mlock"


def test_preferred_mechanism_follows_kernel_support() -> None:
    with SecretKey.generate() as key:
        expected = Mechanism.MEMFD_SECRET if memfd_secret_available() else Mechanism.MLOCK
        assert key.mechanism is expected


def test_unavailable_reason_is_none_exactly_when_available() -> None:
    reason = memfd_secret_unavailable_reason()
    assert (reason is None) == memfd_secret_available()
    if reason is not None:
        assert "memfd_secret" in reason


@pytest.mark.parametrize("prefer_secret", MECHANISMS)
def test_destroy_zeroes_unmaps_and_is_idempotent(prefer_secret: bool) -> None:
    key = SecretKey.generate(prefer_secret=prefer_secret)
    assert _mapped(key.address)
    key.destroy()
    assert key.destroyed
    assert not _mapped(key.address)
    key.destroy()
    with pytest.raises(SecretMemoryError, match="destroyed"), key.view():
        pass
    with pytest.raises(SecretMemoryError):
        key.aesgcm()


def test_context_manager_destroys() -> None:
    with SecretKey.generate(prefer_secret=False) as key:
        assert not key.destroyed
    assert key.destroyed


def test_view_is_read_only() -> None:
    with SecretKey.generate(prefer_secret=False) as key, key.view() as view:
        assert view.readonly
        with pytest.raises(TypeError):
            view[0] = 1


def test_view_is_released_on_exit() -> None:
    with SecretKey.generate(prefer_secret=False) as key:
        with key.view() as view:
            pass
        with pytest.raises(ValueError, match="released"):
            bytes(view)


@pytest.mark.parametrize("prefer_secret", MECHANISMS)
def test_aesgcm_round_trip(prefer_secret: bool) -> None:
    with SecretKey.generate(prefer_secret=prefer_secret) as key:
        aead = key.aesgcm()
        nonce = bytes(12)
        assert aead.decrypt(nonce, aead.encrypt(nonce, b"pixels", b"aad"), b"aad") == b"pixels"


def test_aesgcm_holds_its_own_copy_of_the_key() -> None:
    """Documents the copy secretmem's docstring describes: cryptography copies the key into OpenSSL contexts
    at construction. If this starts failing, cryptography now reads the key buffer lazily, and the vault must
    keep the key page alive for as long as its AESGCM object."""
    key = SecretKey.generate(prefer_secret=False)
    aead = key.aesgcm()
    nonce = bytes(12)
    sealed = aead.encrypt(nonce, b"pixels", None)
    key.destroy()  # page zeroed and unmapped
    assert aead.decrypt(nonce, sealed, None) == b"pixels"


@pytest.mark.parametrize(
    ("prefer_secret", "expected"),
    [
        # MADV_WIPEONFORK: the child gets a zero-filled page at the same address.
        pytest.param(False, "zeros", id="mlock"),
        # MADV_DONTFORK: the page is not mapped in the child at all.
        pytest.param(True, "unmapped", id="memfd_secret", marks=needs_memfd_secret),
    ],
)
def test_forked_child_does_not_inherit_the_key(prefer_secret: bool, expected: str) -> None:
    script = textwrap.dedent(
        f"""
        import ctypes, os, sys
        from appliance.secretmem import SecretKey
        key = SecretKey.generate(prefer_secret={prefer_secret})
        with key.view() as view:
            assert any(view)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            maps = open("/proc/self/maps").read().splitlines()
            ranges = [[int(x, 16) for x in line.split()[0].split("-")] for line in maps]
            mapped = any(start <= key.address < end for start, end in ranges)
            if not mapped:
                os.write(w, b"unmapped")
            else:
                os.write(w, b"zeros" if ctypes.string_at(key.address, 32) == bytes(32) else b"KEY")
            # A normal exit runs the key's finalizer in the child; it must not touch the parent's page.
            sys.exit(0)
        _, status = os.waitpid(pid, 0)
        print(os.read(r, 100).decode(), os.waitstatus_to_exitcode(status))
        key.destroy()
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == [expected, "0"]


def test_key_cannot_be_used_in_a_forked_child() -> None:
    script = textwrap.dedent(
        """
        import os, sys
        from appliance.secretmem import SecretKey, SecretMemoryError
        key = SecretKey.generate()
        pid = os.fork()
        if pid == 0:
            try:
                with key.view():
                    os._exit(3)
            except SecretMemoryError:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "0"
