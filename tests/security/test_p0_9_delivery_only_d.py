"""P0-9: the phone-facing listener exposes only /d/<token>. Every route of the guest app, its static files,
the API and random paths answer the same plain 404 there, over the real TLS listener and through the app
map."""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import pytest

from appliance.kiosk import Kiosk
from kiosk_ui import create_app
from kiosk_ui.delivery import NOT_FOUND_BODY, create_delivery_app
from tests.support import tls_delivery_listener, workerless_kiosk


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    with workerless_kiosk(tmp_path_factory.mktemp("p09")) as k:  # only the delivery store is needed
        yield k


def _guest_paths(kiosk: Kiosk) -> list[str]:
    app = create_app(kiosk)
    paths = []
    for rule in app.url_map.iter_rules():
        path = rule.rule.replace("<render_id>", "abc").replace("<path:filename>", "kiosk.js")
        paths.append(path)
    return [
        *sorted(set(paths)),
        "/static/kiosk.css",
        "/d/",
        "/d",
        "/D/abc",
        "/d/abc/extra",
        "/favicon.ico",
        "/robots.txt",
        "/.well-known/security.txt",
        "/admin",
        "/metrics",
        "/%2e%2e/etc/passwd",
    ]


def test_the_app_map_has_only_d(kiosk: Kiosk) -> None:
    app = create_delivery_app(kiosk)
    assert {r.rule for r in app.url_map.iter_rules()} == {"/d/<token>"}  # GET and POST


def test_every_other_path_is_404_through_the_app(kiosk: Kiosk) -> None:
    client = create_delivery_app(kiosk, rate_limit=10_000).test_client()
    for path in _guest_paths(kiosk):
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
            r = client.open(path, method=method)
            assert r.status_code == 404, (method, path, r.status_code)
            assert r.data == NOT_FOUND_BODY.encode()
            assert r.headers["Cache-Control"] == "no-store"


def test_on_the_link_itself_only_get_head_and_post_answer(kiosk: Kiosk) -> None:
    """OPTIONS was answered 200 with an Allow header (Flask adds it to every route; seen in the audit's
    fuzzing): on this listener every other method is the same plain 404, even on a well-formed link."""
    client = create_delivery_app(kiosk, rate_limit=10_000).test_client()
    link = "/d/" + "0" * 32 + "." + "A" * 43
    for method in ("OPTIONS", "PUT", "DELETE", "PATCH", "TRACE", "PROPFIND"):
        r = client.open(link, method=method)
        assert r.status_code == 404, (method, r.status_code)
        assert r.data == NOT_FOUND_BODY.encode() and "Allow" not in r.headers
    assert client.get(link).status_code == 404  # unknown link: routed to the view, which says 404


def test_every_other_path_is_404_over_tls(kiosk: Kiosk) -> None:
    with tls_delivery_listener(kiosk, threads=4) as (listener, ctx):
        for path in _guest_paths(kiosk):
            conn = http.client.HTTPSConnection("127.0.0.1", listener.port, context=ctx, timeout=10)
            try:
                conn.request("GET", path)
                r = conn.getresponse()
                assert r.status == 404, (path, r.status)
                assert r.read() == NOT_FOUND_BODY.encode()
                assert r.getheader("Cache-Control") == "no-store"
                assert "max-age" in (r.getheader("Strict-Transport-Security") or "")
            finally:
                conn.close()
        # Plain HTTP to the TLS port gets no page at all.
        plain = http.client.HTTPConnection("127.0.0.1", listener.port, timeout=10)
        try:
            plain.request("GET", "/d/abc")
            status = plain.getresponse().status
        except (http.client.HTTPException, ConnectionError):
            status = None
        finally:
            plain.close()
        assert status != 200
