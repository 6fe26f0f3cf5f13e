"""The phone page of a delivery link (issue 15.4): it shows the photo once fetched, offers the system share
sheet with the file where the browser can share files and a download otherwise, and still works as a plain
form without script. Its one inline script and stylesheet are allowed by their hashes and nothing else is;
error pages allow no script at all."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator

import pytest

from appliance.kiosk import Kiosk
from kiosk_ui.delivery import PAGE_JS, create_delivery_app
from tests.support import workerless_kiosk

JPEG = b"\xff\xd8\xff\xe0 a headshot \xff\xd9"


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    with workerless_kiosk(tmp_path_factory.mktemp("delivery-page")) as k:  # only the delivery store is needed
        yield k


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def test_the_page_allows_exactly_its_own_script_and_blob_images(kiosk: Kiosk) -> None:
    assert kiosk.deliveries is not None
    token = kiosk.deliveries.create(JPEG).token
    client = create_delivery_app(kiosk, rate_limit=10_000).test_client()
    r = client.get(f"/d/{token}", base_url="https://localhost:8443")
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
    styles = re.findall(r"<style>(.*?)</style>", page, re.S)
    assert scripts == [PAGE_JS] and len(styles) == 1
    directives = {d.split()[0]: d.split()[1:] for d in r.headers["Content-Security-Policy"].split("; ")}
    assert directives["script-src"] == [f"'{_sha256(scripts[0])}'"]
    assert f"'{_sha256(styles[0])}'" in directives["style-src"]
    assert directives["img-src"] == ["'self'", "blob:"]
    assert directives["connect-src"] == ["'self'"] and directives["frame-ancestors"] == ["'none'"]
    assert "unsafe" not in r.headers["Content-Security-Policy"]
    # What the script needs, and the plain form that works without it.
    for element in ('id="photo"', 'id="share"', 'id="download" class="secondary" download="headshot.jpg"'):
        assert element in page
    assert re.search(r'<input type="hidden" name="attempt" value="[A-Za-z0-9_-]{22}">', page)
    assert 'method="post"' in page and 'id="save"' in page
    assert "navigator.canShare({ files: candidates })" in PAGE_JS
    # Every page gets its own attempt id: a repeat is a repeat of one page's Save.
    again = client.get(f"/d/{token}", base_url="https://localhost:8443").get_data(as_text=True)
    assert re.findall(r'name="attempt" value="([^"]+)"', again) != re.findall(
        r'name="attempt" value="([^"]+)"', page
    )
    # A refusal allows no script.
    gone = client.get("/d/unknown", base_url="https://localhost:8443")
    assert "script-src 'self'" in gone.headers["Content-Security-Policy"]


def test_the_scripts_post_with_the_attempt_is_collected_and_repeats(kiosk: Kiosk) -> None:
    assert kiosk.deliveries is not None
    token = kiosk.deliveries.create(JPEG).token
    client = create_delivery_app(kiosk, rate_limit=10_000).test_client()
    headers = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}  # fetch() under no-referrer
    form = {"attempt": "x" * 22}
    for _ in range(2):  # the same Save again (within the grace) is served again
        r = client.post(f"/d/{token}", base_url="https://localhost:8443", data=form, headers=headers)
        assert r.status_code == 200 and r.data == JPEG
        assert r.headers["Content-Length"] == str(len(JPEG))
        r.close()
    r = client.post(
        f"/d/{token}", base_url="https://localhost:8443", data={"attempt": "y" * 22}, headers=headers
    )
    assert r.status_code == 404
