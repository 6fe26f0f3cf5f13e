"""Several crops through one link (issue 15.4): one link, one claim, one spend; the page's script gets all
photos in one reply, the plain form the main one; a cut connection leaves all of them collectable."""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Iterator

import pytest
from PIL import Image

from appliance.delivery import pack_photos, unpack_photos
from appliance.kiosk import Kiosk
from kiosk_ui.delivery import BUNDLE_TYPE, create_delivery_app
from tests.support import workerless_kiosk

BASE = "https://localhost:8443"
HEADERS = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}


def _jpeg(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="JPEG")
    return out.getvalue()


SQUARE = _jpeg((64, 64), (200, 100, 50))
BADGE = _jpeg((48, 64), (50, 100, 200))


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    with workerless_kiosk(tmp_path_factory.mktemp("several")) as k:
        yield k


def test_pack_and_unpack() -> None:
    assert pack_photos([("headshot.jpg", SQUARE)]) == SQUARE  # one photo stays a plain JPEG
    assert unpack_photos(SQUARE) == [("headshot.jpg", SQUARE)]
    bundle = pack_photos([("headshot-square.jpg", SQUARE), ("headshot-badge.jpg", BADGE)])
    assert unpack_photos(bundle) == [("headshot-square.jpg", SQUARE), ("headshot-badge.jpg", BADGE)]
    for bad in (bundle[:-1], bundle + b"x"):
        with pytest.raises(ValueError):
            unpack_photos(bad)
    for names in ([], [("x.png", SQUARE)], [("../a.jpg", SQUARE)], [("Guest Name.jpg", SQUARE)]):
        with pytest.raises(ValueError):
            pack_photos(names)
    with pytest.raises(ValueError):
        pack_photos([(f"p{i}.jpg", SQUARE) for i in range(5)])


def _parse(body: bytes) -> list[tuple[str, bytes]]:
    """What delivery.js does with the reply."""
    assert body[:4] == b"HKB1"
    (length,) = struct.unpack_from("!I", body, 4)
    index = json.loads(body[8 : 8 + length])
    photos, offset = [], 8 + length
    for name, size in index:
        photos.append((name, body[offset : offset + size]))
        offset += size
    assert offset == len(body)
    return photos


def test_the_script_gets_every_photo_in_one_spend(kiosk: Kiosk) -> None:
    assert kiosk.deliveries is not None
    token = kiosk.deliveries.create(
        pack_photos([("headshot-square.jpg", SQUARE), ("headshot-badge.jpg", BADGE)])
    ).token
    assert kiosk.deliveries.peek_photos(token) == [
        ("headshot-square.jpg", len(SQUARE)),
        ("headshot-badge.jpg", len(BADGE)),
    ]
    client = create_delivery_app(kiosk, rate_limit=10_000).test_client()
    page = client.get(f"/d/{token}", base_url=BASE).get_data(as_text=True)
    assert 'data-count="2"' in page
    r = client.post(f"/d/{token}", base_url=BASE, data={"attempt": "a" * 22, "want": "all"}, headers=HEADERS)
    assert r.status_code == 200 and r.mimetype == BUNDLE_TYPE
    assert "Content-Disposition" not in r.headers
    assert _parse(r.data) == [("headshot-square.jpg", SQUARE), ("headshot-badge.jpg", BADGE)]
    r.close()
    gone = client.post(
        f"/d/{token}", base_url=BASE, data={"attempt": "b" * 22, "want": "all"}, headers=HEADERS
    )
    assert gone.status_code == 404  # one link, spent once for all its photos


def test_the_plain_form_gets_the_main_photo(kiosk: Kiosk) -> None:
    assert kiosk.deliveries is not None
    token = kiosk.deliveries.create(
        pack_photos([("headshot-square.jpg", SQUARE), ("headshot-badge.jpg", BADGE)])
    ).token
    client = create_delivery_app(kiosk, rate_limit=10_000).test_client()
    r = client.post(f"/d/{token}", base_url=BASE, data={"attempt": "c" * 22}, headers=HEADERS)
    assert r.status_code == 200 and r.mimetype == "image/jpeg" and r.data == SQUARE
    assert r.headers["Content-Disposition"] == 'attachment; filename="headshot.jpg"'


def test_a_single_photo_is_unchanged_even_when_all_are_asked_for(kiosk: Kiosk) -> None:
    assert kiosk.deliveries is not None
    token = kiosk.deliveries.create(SQUARE).token
    client = create_delivery_app(kiosk, rate_limit=10_000).test_client()
    assert 'data-count="1"' in client.get(f"/d/{token}", base_url=BASE).get_data(as_text=True)
    r = client.post(f"/d/{token}", base_url=BASE, data={"attempt": "d" * 22, "want": "all"}, headers=HEADERS)
    assert r.status_code == 200 and r.mimetype == "image/jpeg" and r.data == SQUARE


def test_a_cut_download_of_a_bundle_leaves_it_collectable(kiosk: Kiosk) -> None:
    assert kiosk.deliveries is not None
    token = kiosk.deliveries.create(
        pack_photos([("headshot-square.jpg", SQUARE), ("headshot-badge.jpg", BADGE)])
    ).token
    client = create_delivery_app(kiosk, rate_limit=10_000).test_client()
    r = client.post(
        f"/d/{token}",
        base_url=BASE,
        data={"attempt": "e" * 22, "want": "all"},
        headers=HEADERS,
        buffered=False,
    )
    r.close()  # closed before the body was read: the connection broke
    again = client.post(
        f"/d/{token}", base_url=BASE, data={"attempt": "f" * 22, "want": "all"}, headers=HEADERS
    )
    assert again.status_code == 200 and len(_parse(again.data)) == 2
