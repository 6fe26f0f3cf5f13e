"""Loopback HTTP clients: the kiosk browser's JSON API calls and phones downloading over TLS.

Every connection goes to 127.0.0.1. Phones bind distinct source addresses in 127.0.0.0/8 (all of it is
loopback on Linux) so the delivery listener's per-client rate limit sees many phones, as it would on Wi-Fi.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TIMEOUT_SECONDS = 90.0
REQUIRED_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options")


@dataclass
class Reply:
    """One HTTP response, fully read."""

    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HeaderAudit:
    """Counts responses and the ones that missed a required header or answered >= 500."""

    responses: int = 0
    server_errors: list[str] = field(default_factory=list)
    missing_headers: list[str] = field(default_factory=list)

    def check(self, method: str, path: str, reply: Reply, *, api: bool) -> None:
        self.responses += 1
        where = f"{method} {_redact(path)} -> {reply.status}"
        if reply.status >= 500:
            self.server_errors.append(where)
        lower = {k.lower(): v for k, v in reply.headers.items()}
        missing = [h for h in REQUIRED_HEADERS if h.lower() not in lower]
        if api and "no-store" not in lower.get("cache-control", ""):
            missing.append("Cache-Control: no-store")
        if missing:
            self.missing_headers.append(f"{where}: missing {', '.join(missing)}")


def _redact(path: str) -> str:
    return "/d/<token>" if path.startswith("/d/") else path


class ApiClient:
    """The kiosk page's calls to the guest API (plain HTTP on loopback, like the kiosk's own browser)."""

    def __init__(self, port: int, audit: HeaderAudit) -> None:
        self.port = port
        self.audit = audit

    def request(self, method: str, path: str, body: Any = None, *, timeout: float = TIMEOUT_SECONDS) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        t0 = time.perf_counter()
        try:
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            reply = Reply(resp.status, dict(resp.getheaders()), data, time.perf_counter() - t0)
        finally:
            conn.close()
        self.audit.check(method, path, reply, api=path.startswith("/api/"))
        return reply

    def post(self, path: str, body: Any = None) -> Reply:
        return self.request("POST", path, {} if body is None else body)

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def preview_frames(self, count: int, *, timeout: float = 30.0) -> list[bytes]:
        """Read up to ``count`` JPEG frames from the MJPEG preview, then hang up."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        frames: list[bytes] = []
        try:
            conn.request("GET", "/api/session/preview.mjpg")
            resp = conn.getresponse()
            headers = dict(resp.getheaders())
            reply = Reply(resp.status, headers, b"", 0.0)
            self.audit.check("GET", "/api/session/preview.mjpg", reply, api=True)
            if resp.status != 200:
                resp.read()
                return frames
            while len(frames) < count:
                length = None
                while True:
                    line = resp.fp.readline(1024)
                    if not line:
                        return frames
                    text = line.strip().decode("latin-1")
                    if text.lower().startswith("content-length:"):
                        length = int(text.split(":", 1)[1])
                    if not text and length is not None:
                        break
                frames.append(resp.fp.read(length))
        finally:
            conn.close()
        return frames


class Phone:
    """A phone on the kiosk's network: TLS to the delivery listener, certificate verified."""

    def __init__(self, port: int, cafile: Path, source_ip: str, audit: HeaderAudit) -> None:
        self.port = port
        self.source_ip = source_ip
        self.audit = audit
        self.context = ssl.create_default_context(cafile=str(cafile))

    def request(self, method: str, path: str, *, timeout: float = TIMEOUT_SECONDS) -> Reply:
        conn = http.client.HTTPSConnection(
            "127.0.0.1",
            self.port,
            timeout=timeout,
            context=self.context,
            source_address=(self.source_ip, 0),
        )
        t0 = time.perf_counter()
        try:
            headers = {"Content-Length": "0"} if method == "POST" else {}
            conn.request(method, path, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            reply = Reply(resp.status, dict(resp.getheaders()), data, time.perf_counter() - t0)
        finally:
            conn.close()
        self.audit.check(method, path, reply, api=True)
        return reply

    def download(self, token: str) -> tuple[Reply, Reply]:
        """What a guest does: open the link (GET, never spends it), press Save (POST, spends it)."""
        page = self.request("GET", f"/d/{token}")
        saved = self.request("POST", f"/d/{token}")
        return page, saved


def phone_ip(n: int) -> str:
    """A distinct loopback source address for phone number ``n``."""
    return f"127.0.{(n // 250) % 250 + 1}.{n % 250 + 1}"
