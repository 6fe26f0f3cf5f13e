"""Session keys in memory that is locked, kept out of core dumps and, where possible, hidden from the kernel.

A :class:`SecretKey` owns one page of memory holding 32 random key bytes. Two mechanisms, best first:

``memfd_secret``
    memfd_secret(2) (Linux >= 5.14, ``CONFIG_SECRETMEM=y``). The pages are removed from the kernel's direct
    map, so only this process's page tables reach them; the kernel marks the mapping
    ``VM_LOCKED | VM_DONTDUMP`` itself (mm/secretmem.c, ``secretmem_mmap``) and even root cannot read it
    through ``/proc/<pid>/mem`` or ptrace (get_user_pages refuses secretmem VMAs). The syscall fails with
    ENOSYS where the kernel lacks it or has it switched off: on 5.15 (JetPack 6) it needs
    ``secretmem.enable=1`` on the kernel command line.
``mlock``
    An anonymous private mapping with ``madvise(MADV_DONTDUMP)`` (madvise(2): excluded from core dumps),
    ``madvise(MADV_WIPEONFORK)`` (a forked child sees zeros, Linux >= 4.14) and ``mlock(2)`` (never swapped).

What Python copies, and why that is acceptable here
----------------------------------------------------
The key is written into the page by getrandom(2) directly (no Python ``bytes`` object ever holds it) and
handed to ``AESGCM`` as a ``memoryview`` over the page, so no Python-level copy exists at all. What remains:

* ``cryptography``'s ``AESGCM`` copies the key at construction into OpenSSL cipher contexts (the AES key
  schedule lives in OpenSSL's malloc heap: two base contexts plus a transient one per operation; OpenSSL 3
  frees them with ``OPENSSL_clear_free``). That heap is neither locked nor excluded from dumps.
  ``tests/appliance/test_secretmem.py`` checks the copy-at-construction behaviour so a change is noticed.
* If libc has no ``getrandom`` symbol, the key passes through one 32-byte ``bytes`` object from
  ``os.urandom``, which CPython frees without zeroing.

Both leftovers are covered by the session-worker design (DESIGN.md §3): the key lives only in the short-lived
per-session worker, which is non-dumpable (``appliance.hardening.harden_process``) and ends at WIPE, so the
kernel reclaims every page it used. ``destroy()`` still zeroes and unmaps the page so the key is gone as soon
as possible.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import functools
import logging
import mmap
import os
import platform
import threading
import weakref
from collections.abc import Iterator
from enum import Enum
from types import TracebackType

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

logger = logging.getLogger(__name__)

KEY_BYTES = 32
"""Length of a session key in bytes (AES-256)."""

# memfd_secret is syscall 447 in the asm-generic table that x86-64, aarch64 and riscv64 share for new syscalls
# (arch/x86/entry/syscalls/syscall_64.tbl, include/uapi/asm-generic/unistd.h).
_SYS_MEMFD_SECRET = {"x86_64": 447, "aarch64": 447, "riscv64": 447}

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0o2000000)
_PROT_READ = mmap.PROT_READ
_PROT_WRITE = mmap.PROT_WRITE
_MAP_SHARED = mmap.MAP_SHARED
_MAP_PRIVATE = mmap.MAP_PRIVATE
_MAP_ANONYMOUS = getattr(mmap, "MAP_ANONYMOUS", 0x20)
# madvise(2) advice values (include/uapi/asm-generic/mman-common.h); the same on every architecture we run on.
_MADV_DONTFORK = getattr(mmap, "MADV_DONTFORK", 10)
_MADV_DONTDUMP = getattr(mmap, "MADV_DONTDUMP", 16)
_MADV_WIPEONFORK = getattr(mmap, "MADV_WIPEONFORK", 18)
_MAP_FAILED = ctypes.c_void_p(-1).value


class SecretMemoryError(OSError):
    """Secret key memory could not be set up (no lockable memory, kernel refused a call)."""


class Mechanism(str, Enum):
    """How a :class:`SecretKey`'s page is protected."""

    MEMFD_SECRET = "memfd_secret"  # noqa: S105 - a mechanism name, not a password
    MLOCK = "mlock"


def _load_libc() -> ctypes.CDLL:
    name = ctypes.util.find_library("c") or "libc.so.6"
    libc = ctypes.CDLL(name, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    ]
    libc.munmap.restype = ctypes.c_int
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    for fn in (libc.mlock, libc.munlock):
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.madvise.restype = ctypes.c_int
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    if hasattr(libc, "getrandom"):
        libc.getrandom.restype = ctypes.c_ssize_t
        libc.getrandom.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint]
    return libc


_libc = _load_libc()


def _oserror(what: str) -> SecretMemoryError:
    err = ctypes.get_errno()
    return SecretMemoryError(err, f"{what} failed: {os.strerror(err)}")


def _memfd_secret() -> int:
    """Return a new memfd_secret file descriptor (close-on-exec); raise SecretMemoryError with errno set."""
    number = _SYS_MEMFD_SECRET.get(platform.machine())
    if number is None:
        raise SecretMemoryError(errno.ENOSYS, f"memfd_secret syscall number unknown on {platform.machine()}")
    fd = int(_libc.syscall(ctypes.c_long(number), ctypes.c_uint(_O_CLOEXEC)))
    if fd < 0:
        raise _oserror("memfd_secret")
    return fd


def _map_secretmem(length: int) -> int:
    """Map ``length`` bytes of secret memory and return the address. The fd is closed: the mapping keeps the
    file alive, and no descriptor is left around to be inherited or re-mapped."""
    fd = _memfd_secret()
    try:
        os.ftruncate(fd, length)
        addr = _libc.mmap(None, length, _PROT_READ | _PROT_WRITE, _MAP_SHARED, fd, 0)
        if addr is None or addr == _MAP_FAILED:
            # ENOMEM/EAGAIN here usually means RLIMIT_MEMLOCK: secretmem pages are accounted as locked memory.
            raise _oserror("mmap of memfd_secret")
    finally:
        os.close(fd)
    # The kernel already sets VM_LOCKED|VM_DONTDUMP on secretmem VMAs. MADV_DONTFORK keeps the page out of
    # forked children (MADV_WIPEONFORK is for private anonymous mappings only).
    if _libc.madvise(addr, length, _MADV_DONTFORK) != 0:
        logger.debug("madvise(MADV_DONTFORK) on secretmem failed: %s", os.strerror(ctypes.get_errno()))
    return int(addr)


def _map_locked_anonymous(length: int) -> int:
    """Map ``length`` bytes of anonymous memory, excluded from dumps, wiped on fork and locked in RAM."""
    addr = _libc.mmap(None, length, _PROT_READ | _PROT_WRITE, _MAP_PRIVATE | _MAP_ANONYMOUS, -1, 0)
    if addr is None or addr == _MAP_FAILED:
        raise _oserror("mmap")
    try:
        if _libc.madvise(addr, length, _MADV_DONTDUMP) != 0:
            raise _oserror("madvise(MADV_DONTDUMP)")
        # MADV_WIPEONFORK exists since Linux 4.14; without it a fork() child would inherit a copy of the key.
        if _libc.madvise(addr, length, _MADV_WIPEONFORK) != 0:
            raise _oserror("madvise(MADV_WIPEONFORK)")
        # mlock(2) rather than MAP_LOCKED: mmap(2) notes that MAP_LOCKED failures to populate are silent,
        # mlock reports them. Locking happens before the key is written, so it is never swappable.
        if _libc.mlock(addr, length) != 0:
            err = ctypes.get_errno()
            raise SecretMemoryError(
                err,
                f"mlock of one page failed: {os.strerror(err)}; raise RLIMIT_MEMLOCK "
                "(LimitMEMLOCK= in the unit) or run where locking one page is allowed",
            )
    except BaseException:
        _libc.munmap(addr, length)
        raise
    return int(addr)


def _fill_random(addr: int, length: int) -> None:
    """Fill memory at ``addr`` with ``length`` bytes from the kernel CSPRNG, without a Python bytes copy."""
    if hasattr(_libc, "getrandom"):
        done = 0
        while done < length:
            # getrandom(2): requests of up to 256 bytes are never short once the pool is ready; loop anyway.
            n = int(_libc.getrandom(addr + done, length - done, 0))
            if n < 0:
                if ctypes.get_errno() == errno.EINTR:
                    continue
                raise _oserror("getrandom")
            done += n
        return
    # libc without getrandom (glibc < 2.25): one short-lived bytes object, freed unzeroed (module docstring).
    ctypes.memmove(addr, os.urandom(length), length)


def _release(addr: int, length: int, mechanism: Mechanism, owner_pid: int) -> None:
    """Zero, unlock and unmap a key page. Also registered as a finalizer, so it must not reference the key."""
    if os.getpid() != owner_pid:
        # A fork() child: MADV_DONTFORK left the secretmem page unmapped here (touching it would crash) and
        # MADV_WIPEONFORK gave it a zero page. Nothing to erase; the owner releases the real page.
        return
    ctypes.memset(addr, 0, length)
    if mechanism is Mechanism.MLOCK:
        # munmap would unlock too; munlock first so a failure to unmap still leaves nothing pinned. For
        # secretmem, mlock/munlock are no-ops (mm/mlock.c skips secretmem VMAs), so it is not called.
        _libc.munlock(addr, length)
    if _libc.munmap(addr, length) != 0:
        raise _oserror("munmap")


@functools.lru_cache(maxsize=1)
def memfd_secret_unavailable_reason() -> str | None:
    """Why memfd_secret cannot be used here, or ``None`` when it can. Probes once (maps one page)."""
    try:
        addr = _map_secretmem(mmap.PAGESIZE)
    except SecretMemoryError as exc:
        if exc.errno == errno.ENOSYS:
            return (
                "memfd_secret(2) not provided by this kernel (needs Linux >= 5.14 with CONFIG_SECRETMEM=y; "
                "kernels such as 5.15 also need secretmem.enable=1 on the command line)"
            )
        if exc.errno == errno.EPERM:
            return "memfd_secret(2) blocked (EPERM), probably by a seccomp filter"
        if exc.errno in (errno.ENOMEM, errno.EAGAIN):
            return f"memfd_secret(2) page could not be mapped ({exc.strerror}); check RLIMIT_MEMLOCK"
        return f"memfd_secret(2) failed: {exc.strerror}"
    _libc.munmap(addr, mmap.PAGESIZE)
    return None


def memfd_secret_available() -> bool:
    """True if memfd_secret(2) works in this process (kernel support, not blocked, memlock limit ok)."""
    return memfd_secret_unavailable_reason() is None


class SecretKey:
    """32 random key bytes in one page of locked, dump-excluded memory. The holder owns it and calls
    :meth:`destroy` (or uses it as a context manager); a finalizer releases it if that is forgotten.

    Create with :meth:`generate`; the constructor is internal.
    """

    def __init__(self, address: int, mapped_bytes: int, mechanism: Mechanism) -> None:
        self._address = address
        self._mapped_bytes = mapped_bytes
        self._mechanism = mechanism
        self._lock = threading.RLock()
        self._destroyed = False
        self._owner_pid = os.getpid()
        self._finalizer = weakref.finalize(self, _release, address, mapped_bytes, mechanism, self._owner_pid)

    @classmethod
    def generate(cls, *, prefer_secret: bool = True) -> SecretKey:
        """Map a fresh page and fill its first :data:`KEY_BYTES` bytes from getrandom(2).

        With ``prefer_secret`` memfd_secret is tried first and the mlock mechanism is the fallback (logged
        once at INFO with the reason). Raises :class:`SecretMemoryError` if no protected memory can be had;
        the key is never placed in unprotected memory instead.
        """
        length = mmap.PAGESIZE
        address: int | None = None
        mechanism = Mechanism.MLOCK
        if prefer_secret and memfd_secret_available():
            try:
                address = _map_secretmem(length)
                mechanism = Mechanism.MEMFD_SECRET
            except SecretMemoryError as exc:
                logger.warning("memfd_secret page unavailable now (%s); using mlock", exc.strerror)
        elif prefer_secret:
            _log_fallback_once()
        if address is None:
            address = _map_locked_anonymous(length)
        try:
            _fill_random(address, KEY_BYTES)
        except BaseException:
            _release(address, length, mechanism, os.getpid())
            raise
        return cls(address, length, mechanism)

    @property
    def mechanism(self) -> Mechanism:
        """Which protection holds the key page (a ``str`` enum: ``"memfd_secret"`` or ``"mlock"``)."""
        return self._mechanism

    @property
    def address(self) -> int:
        """Virtual address of the key page in this process (for tests that inspect /proc/<pid>/smaps)."""
        return self._address

    @property
    def destroyed(self) -> bool:
        """True once :meth:`destroy` has run."""
        return self._destroyed

    @contextlib.contextmanager
    def view(self) -> Iterator[memoryview]:
        """Yield a read-only ``memoryview`` of the 32 key bytes, released on exit.

        Copying out of it (``bytes(view)``) defeats the protection; pass the view to the consumer directly.
        Raises :class:`SecretMemoryError` after :meth:`destroy`, or if the consumer kept a buffer export.
        """
        with self._lock:
            if self._destroyed:
                raise SecretMemoryError(errno.EBADF, "secret key already destroyed")
            if os.getpid() != self._owner_pid:
                raise SecretMemoryError(
                    errno.EBADF, "secret key belongs to the parent process (not inherited)"
                )
            array = (ctypes.c_ubyte * KEY_BYTES).from_address(self._address)
            base = memoryview(array)
            # ctypes exports format "<B"; cryptography only accepts plain unsigned bytes ("B").
            flat = base.cast("B")
            readonly = flat.toreadonly()
            try:
                yield readonly
            finally:
                try:
                    readonly.release()
                    flat.release()
                    base.release()
                except BufferError as exc:
                    # A consumer still holds a buffer export of the key page; it would dangle after destroy().
                    raise SecretMemoryError(
                        errno.EBUSY, "a consumer kept a reference to the key memory; refusing to continue"
                    ) from exc

    def aesgcm(self) -> AESGCM:
        """Return an ``AESGCM`` for this key. ``cryptography`` copies the key into OpenSSL cipher contexts at
        construction (see the module docstring); the returned object keeps working after :meth:`destroy`, so
        the caller drops it at the same time."""
        with self.view() as key:
            return AESGCM(key)

    def destroy(self) -> None:
        """Overwrite the key with zeros, unlock and unmap its page. Idempotent."""
        with self._lock:
            if self._destroyed:
                return
            self._destroyed = True
            self._finalizer.detach()
            _release(self._address, self._mapped_bytes, self._mechanism, self._owner_pid)

    def __enter__(self) -> SecretKey:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.destroy()

    def __repr__(self) -> str:
        state = "destroyed" if self._destroyed else "live"
        return f"<SecretKey {self._mechanism.value} {state}>"


@functools.lru_cache(maxsize=1)
def _log_fallback_once() -> None:
    logger.info(
        "memfd_secret unavailable, session keys use mlock+MADV_DONTDUMP: %s",
        memfd_secret_unavailable_reason(),
    )
