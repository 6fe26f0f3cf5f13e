"""Issue 20.3, 20.7 and 20.8: delivery links open only by their exact spelling, the expiry sweep never takes a
delivery being written or collected, and a refused link costs the same work whether its id exists or not.
"""

from __future__ import annotations

import os
import secrets
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import appliance.delivery as delivery_module
from appliance.delivery import DeliveryGone, DeliveryStore
from appliance.kiosk import Kiosk
from kiosk_ui.delivery import create_delivery_app
from tests.support import workerless_kiosk

JPEG = b"\xff\xd8\xff\xe0" + os.urandom(64 * 1024) + b"\xff\xd9"  # opaque bytes of a headshot's order


class ManualClock:
    """Epoch seconds that move only when told to."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> DeliveryStore:
    return DeliveryStore(tmp_path / "deliveries", window_seconds=600)


def _wrong_key(token: str) -> str:
    obj_id, key = token.split(".")
    # A middle character: the last one carries two unused bits and could spell the same key.
    return f"{obj_id}.{key[:20]}{'A' if key[20] != 'A' else 'B'}{key[21:]}"


# -- 20.3: only the exact spelling ------------------------------------------------------------------------

SUFFIXES = ["\n", "\r\n", "\r", " ", "\t", "\x00", "\x0b", "\x0c", "\u2028", "\n\n"]


@pytest.mark.parametrize("suffix", SUFFIXES, ids=repr)
def test_a_token_with_anything_after_it_opens_nothing(store: DeliveryStore, suffix: str) -> None:
    token = store.create(JPEG).token
    for spelling in (token + suffix, suffix + token):
        with pytest.raises(DeliveryGone):
            store.peek(spelling)
        with pytest.raises(DeliveryGone):
            store.spend(spelling)
        assert not store.revoke(spelling)
    assert store.spend(token) == JPEG  # the wrong spellings neither opened nor destroyed it


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    with workerless_kiosk(tmp_path_factory.mktemp("p20-links")) as k:  # only the delivery store is needed
        yield k


def test_a_link_ending_in_an_encoded_newline_is_the_plain_404(kiosk: Kiosk) -> None:
    """The probe's request: POST /d/<token>%0A returned the JPEG."""
    assert kiosk.deliveries is not None
    token = kiosk.deliveries.create(JPEG).token
    client = create_delivery_app(kiosk, rate_limit=10_000).test_client()
    for encoded in ("%0A", "%0D%0A", "%0D", "%00", "%20", "%09"):
        assert client.get(f"/d/{token}{encoded}").status_code == 404, encoded
        assert client.post(f"/d/{token}{encoded}").status_code == 404, encoded
    r = client.post(f"/d/{token}")
    assert r.status_code == 200 and r.data == JPEG


# -- 20.7: the sweep and creations ---------------------------------------------------------------------------


def _sweeping(store: DeliveryStore) -> tuple[threading.Event, threading.Thread, list[BaseException]]:
    stop = threading.Event()
    errors: list[BaseException] = []

    def sweep() -> None:
        try:
            while not stop.is_set():
                store.purge_expired()
                time.sleep(0.0005)  # the probe swept every 2 ms; the kiosk every 0.5 s
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    thread = threading.Thread(target=sweep, daemon=True)
    thread.start()
    return stop, thread, errors


def test_creations_and_collections_survive_a_sweep_running_all_the_time(store: DeliveryStore) -> None:
    stop, thread, sweep_errors = _sweeping(store)
    failures: list[str] = []
    tokens = []
    try:
        for _ in range(500):
            try:
                tokens.append(store.create(JPEG).token)
            except OSError as exc:
                failures.append(f"create: {type(exc).__name__}")
        for token in tokens:
            try:
                if store.spend(token) != JPEG:
                    failures.append("spend: wrong bytes")
            except DeliveryGone:
                failures.append("spend: DeliveryGone")
    finally:
        stop.set()
        thread.join()
    assert not sweep_errors
    assert not failures, f"{len(failures)} of 500 failed, e.g. {failures[:3]}"
    assert len(tokens) == 500 and store.pending() == 0


def test_the_sweep_still_removes_expired_deliveries_and_stale_work_files(tmp_path: Path) -> None:
    clock = ManualClock()
    store = DeliveryStore(
        tmp_path / "deliveries", window_seconds=600, clock=clock, work_file_grace_seconds=0.2
    )
    kept = store.create(JPEG).token
    clock.now += 300
    expiring = store.create(JPEG).token
    leftovers = [store.directory / f".{secrets.token_hex(16)}.partial", store.directory / ".x.1234.spent"]
    for path in leftovers:
        path.write_bytes(b"half")
    clock.now += 301  # the first delivery is past its 10 minutes, the second is not
    assert store.purge_expired() == 1
    assert all(path.exists() for path in leftovers)  # young work files: somebody is using them
    with pytest.raises(DeliveryGone):
        store.peek(kept)
    assert store.peek(expiring) == len(JPEG)
    time.sleep(0.3)
    assert store.purge_expired() == 2
    assert not any(path.exists() for path in leftovers)
    assert store.pending() == 1


# -- 20.8: the same work for an unknown id as for a known one with a wrong key -------------------------


class _CountingAesGcm:
    """AESGCM, recording how many bytes each decryption attempt covers."""

    decryptions: ClassVar[list[int]] = []

    def __init__(self, key: bytes) -> None:
        self._inner = AESGCM(key)

    def encrypt(self, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        return self._inner.encrypt(nonce, data, aad)

    def decrypt(self, nonce: Any, data: Any, aad: Any) -> bytes:
        self.decryptions.append(len(data) + len(aad))
        return self._inner.decrypt(nonce, data, aad)


def test_every_refused_link_costs_one_decryption_of_the_same_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock()
    store = DeliveryStore(tmp_path / "deliveries", window_seconds=600, clock=clock)
    monkeypatch.setattr(delivery_module, "AESGCM", _CountingAesGcm)
    live = store.create(JPEG).token
    expired = store.create(JPEG).token
    spent = store.create(JPEG).token
    revoked = store.create(JPEG).token
    store.spend(spent)
    store.revoke(revoked)
    clock.now += 300
    live = store.create(JPEG).token  # created last: the store's latest size is this one's
    clock.now += 301  # `expired` is past its window, `live` is not
    refused = {
        "known id, wrong key": _wrong_key(live),
        "unknown id": f"{secrets.token_hex(16)}.{live.split('.')[1]}",
        "expired": expired,
        "spent": spent,
        "revoked": revoked,
    }
    work = {}
    for name, token in refused.items():
        for operation in (store.peek, store.spend):
            _CountingAesGcm.decryptions.clear()
            with pytest.raises(DeliveryGone):
                operation(token)
            work[f"{operation.__name__} {name}"] = list(_CountingAesGcm.decryptions)
    reference = work["peek known id, wrong key"]
    assert len(reference) == 1
    assert all(w == reference for w in work.values()), work
    assert store.peek(live) == len(JPEG)  # and the wrong keys destroyed nothing


def test_an_unknown_id_takes_as_long_as_a_known_one_with_a_wrong_key(store: DeliveryStore) -> None:
    """Medians of interleaved tries, with a generous bound: without the decoy the unknown id was about ten
    times faster here (no read, no decryption); with it they are within a few per cent."""
    token = store.create(b"\xff\xd8" + os.urandom(512 * 1024)).token
    wrong = _wrong_key(token)
    unknown = f"{secrets.token_hex(16)}.{token.split('.')[1]}"
    times: dict[str, list[float]] = {wrong: [], unknown: []}
    for i in range(200):
        for candidate in (wrong, unknown) if i % 2 else (unknown, wrong):
            started = time.perf_counter()
            with pytest.raises(DeliveryGone):
                store.peek(candidate)
            times[candidate].append(time.perf_counter() - started)
    known_ms, unknown_ms = (statistics.median(times[t]) * 1000 for t in (wrong, unknown))
    assert 0.4 < unknown_ms / known_ms < 2.5, f"unknown id {unknown_ms:.3f} ms, known id {known_ms:.3f} ms"
