"""P1-4: fuzzing the listeners on loopback — schemathesis against the guest API's OpenAPI document, random
paths, methods and malformed requests against the TLS delivery listener, and the staff listener if present.

Every response must be < 500 and carry ``Content-Security-Policy`` and ``X-Content-Type-Options`` (plus
``Cache-Control: no-store`` on the API and delivery listener). Responses cheroot writes itself for requests
that never reach the application (a malformed request line) are counted apart: they are the HTTP server's,
not the app's, and are reported as such.

Beyond the generated cases, each listener gets the edges issue 20 found: heads and bodies past the size
limits (431/413 or a closed connection, never a grown process or a 5xx), deeply nested JSON to every
guest POST (400 from the parser, not a RecursionError's 500), and paths with encoded control characters
(``%0A``, ``%0D``, ``%1B``), which must not open a link and must not spend one.
"""

from __future__ import annotations

import contextlib
import random
import socket
import ssl
import string
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.audit.client import REQUIRED_HEADERS, phone_ip
from tests.audit.state import Audit

# The MJPEG preview never ends while the visit is in preview; schemathesis would wait for the end of the
# body forever. The audit reads it with a bounded client instead (sessions.py).
SKIP_OPERATIONS = ("GET /api/session/preview.mjpg",)

# Encoded control characters for paths: a link that ends in one must not open (the token pattern's "$" once
# matched before a final newline), and none may split the access log's line.
CONTROL_SUFFIXES = ("%0A", "%0D%0A", "%0D", "%1B", "%1B[2J", "%00", "%E2%80%A8")
# JSON nested past Python's recursion limit. The first is far over the guest listener's body limit (413
# from the listener); the others fit under it and reach the app's parser.
NESTED_JSON_BODIES = (
    b"[" * 100_000,
    b"[" * 5_000,
    b"[" * 3_000 + b"]" * 3_000,
    b'{"a":' * 1_200 + b"1" + b"}" * 1_200,
)
# A head far past the listeners' limit (a few KiB), as one header and as many.
LONG_HEADER_BYTES = 1 << 20


@dataclass
class FuzzStats:
    """Counts for one target."""

    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    missing_headers: list[str] = field(default_factory=list)
    transport_errors: list[str] = field(default_factory=list)
    # Answers written by cheroot itself before the app saw the request (malformed request line, "//" paths,
    # CONNECT, HTTP/9.9): recognisable by the absence of the app's CSP, which the app sets on everything.
    server_level: list[str] = field(default_factory=list)

    def summary(self) -> str:
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))
        return (
            f"{self.cases} cases; statuses {{{statuses}}}; >=500 from the app: {len(self.server_errors)}; "
            f"app responses missing headers: {len(self.missing_headers)}; "
            f"answered by cheroot without any security header: {len(self.server_level)}; "
            f"transport errors: {len(self.transport_errors)}"
        )


def _check_headers(
    stats: FuzzStats, where: str, status: int, headers: dict[str, str], *, no_store: bool
) -> None:
    stats.cases += 1
    stats.statuses[status] += 1
    lower = {k.lower() for k in headers}
    if "content-security-policy" not in lower and "x-content-type-options" not in lower:
        stats.server_level.append(f"{where} -> {status}")
        return
    # 505 HTTP Version Not Supported is the correct protocol answer to a request line such as HTTP/9.9,
    # not a server fault.
    if status >= 500 and status != 505:
        stats.server_errors.append(where)
    lower = {k.lower(): v for k, v in headers.items()}
    missing = [h for h in REQUIRED_HEADERS if h.lower() not in lower]
    if no_store and "no-store" not in lower.get("cache-control", ""):
        missing.append("Cache-Control: no-store")
    if missing:
        stats.missing_headers.append(f"{where} -> {status}: missing {', '.join(missing)}")


# -- schemathesis ------------------------------------------------------------------------------------------


def fuzz_api(audit: Audit, examples: int, deadline: float) -> FuzzStats:
    """Positive and negative cases of every operation of ``/api/openapi.json``, each batch run with the kiosk
    idle and again in the middle of a visit (review), so state-dependent branches are reached."""
    import hypothesis
    import requests
    import schemathesis
    from schemathesis import GenerationMode

    stats = FuzzStats()
    base = audit.layout.ui_url
    schema = schemathesis.openapi.from_url(f"{base}/api/openapi.json")
    operations = []
    for result in schema.get_all_operations():
        op = result.ok()
        if op is None:
            audit.fail("schemathesis could not load an operation of the OpenAPI document")
            continue
        if f"{op.method.upper()} {op.path}" in SKIP_OPERATIONS:
            continue
        operations.append(op)
    session = requests.Session()
    api = audit.api()

    def to_review() -> None:
        state = api.get("/api/session").json()
        if state["phase"] != "idle":
            api.post("/api/session/delete")
        api.post("/api/session")
        api.post("/api/session/consent", {"accept": True})
        api.post("/api/session/capture")

    for setup in ("idle", "review"):
        for op in operations:
            if setup == "review":
                to_review()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                if time.monotonic() > deadline:
                    audit.fail("API fuzzing stopped by its time bound")
                    return stats
                if setup == "idle" and api.get("/api/session").json()["phase"] != "idle":
                    api.post("/api/session/delete")

                strategy = op.as_strategy(generation_mode=mode)

                @hypothesis.settings(
                    max_examples=examples,
                    deadline=None,
                    database=None,
                    derandomize=False,
                    phases=[hypothesis.Phase.generate],
                    suppress_health_check=list(hypothesis.HealthCheck),
                )
                @hypothesis.given(case=strategy)
                def run(case: Any) -> None:
                    label = f"{case.method} {case.formatted_path}"
                    try:
                        response = case.call(base_url=base, session=session, timeout=60)
                    except requests.RequestException as exc:
                        stats.transport_errors.append(f"{label}: {type(exc).__name__}")
                        return
                    _check_headers(stats, label, response.status_code, dict(response.headers), no_store=True)

                with contextlib.suppress(hypothesis.errors.Unsatisfiable):
                    run()
    # Before the final delete: a POST /api/session among the edges may start a visit.
    _api_edges(stats, base, session, [op.path for op in operations if op.method.upper() == "POST"])
    api.post("/api/session/delete")
    return stats


def _api_edges(stats: FuzzStats, base: str, session: Any, post_paths: list[str]) -> None:
    """Nested JSON to every POST, an oversized head, and control characters in paths, against the guest
    listener. Each answer is checked like a generated case; a dropped connection is allowed only for the
    requests the listener refuses for their size."""
    import requests

    cases: list[tuple[str, str, dict[str, str], bytes, bool]] = []  # label, path, headers, body, may drop
    json_type = {"Content-Type": "application/json"}
    for path in post_paths:
        for body in NESTED_JSON_BODIES:
            cases.append((f"POST {path} nested JSON ({len(body)} bytes)", path, json_type, body, True))
    cases.append(
        (
            "GET /api/session with a 1 MiB header",
            "/api/session",
            {"X-Big": "y" * LONG_HEADER_BYTES},
            b"",
            True,
        )
    )
    many = {f"X-H{i}": "z" * 100 for i in range(500)}
    cases.append(("GET /api/session with 500 headers", "/api/session", many, b"", True))
    for suffix in CONTROL_SUFFIXES:
        cases.append((f"GET /api/session{suffix}", f"/api/session{suffix}", {}, b"", False))
        cases.append((f"GET /{suffix}ERROR", f"/{suffix}ERROR", {}, b"", False))
    for label, path, headers, body, may_drop in cases:
        method = "POST" if body else "GET"
        try:
            response = session.request(method, base + path, data=body or None, headers=headers, timeout=60)
        except requests.RequestException as exc:
            if not may_drop:
                stats.transport_errors.append(f"{label}: {type(exc).__name__}")
            continue
        _check_headers(stats, label, response.status_code, dict(response.headers), no_store=True)


# -- the delivery listener ---------------------------------------------------------------------------------


def _raw_tls(
    port: int, cafile: Path, request: bytes, source_ip: str, timeout: float = 15.0
) -> tuple[int, dict[str, str]]:
    """Send ``request`` verbatim over TLS (certificate verified); returns (status, headers), or (0, {}) if
    the server closed without an answer."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    data = b""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source_ip, 0)) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(request)
        while b"\r\n\r\n" not in data and len(data) < 65536:
            try:
                chunk = tls.recv(65536)
            except (ssl.SSLError, ConnectionResetError):
                break
            if not chunk:
                break
            data += chunk
    if not data.startswith(b"HTTP/"):
        return 0, {}
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers = {}
    for line in head[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip()] = v.strip()
    return status, headers


def _random_path(rng: random.Random, pending: list[str]) -> str:
    hexd = "0123456789abcdef"
    b64 = string.ascii_letters + string.digits + "-_"
    fake_token = (
        "".join(rng.choice(hexd) for _ in range(32)) + "." + "".join(rng.choice(b64) for _ in range(43))
    )
    choices = [
        f"/d/{fake_token}",
        f"/d/{fake_token[: rng.randint(0, 80)]}",
        "/d/"
        + "".join(rng.choice(string.printable[:94]) for _ in range(rng.randint(1, 120))).replace(" ", "%20"),
        "/d/" + "%" + "".join(rng.choice("0123456789ABCDEFGZ%") for _ in range(rng.randint(1, 20))),
        "/d/%00" + fake_token,
        "/d/" + fake_token + "/extra",
        "/d/../api/session",
        "/d//" + fake_token,
        "/" + "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(0, 12))),
        "/api/session",
        "/api/openapi.json",
        "/static/kiosk.js",
        "/d/" + "A" * rng.choice([100, 1000, 7000]),
        "/d/" + "é✓" * rng.randint(1, 30),
        "/D/" + fake_token,
        "//d/" + fake_token,
        "/d/" + fake_token + "?x=" + "y" * rng.randint(0, 3000),
        "/d/" + fake_token + rng.choice(CONTROL_SUFFIXES),
        "/" + rng.choice(CONTROL_SUFFIXES) + "ERROR%20appliance.kiosk:%20worker%20died",
    ]
    if pending:
        token = rng.choice(pending)
        obj, key = token.split(".", 1)
        # Change a middle character: the last one also carries 2 unused bits, so swapping it for a
        # neighbour can spell the same key (and spend the link: found when this check first ran).
        wrong = key[:20] + ("A" if key[20] != "A" else "B") + key[21:]
        choices.append(f"/d/{obj}.{wrong}")  # a wrong key must not destroy somebody's delivery
        # The real link with a control character after it: opens nothing, spends nothing (issue 20).
        choices.append(f"/d/{token}{rng.choice(CONTROL_SUFFIXES)}")
    return rng.choice(choices)


def fuzz_delivery(audit: Audit, cases: int, deadline: float) -> FuzzStats:
    """Random methods, paths, headers and bodies — and malformed requests — against the delivery listener.
    Answers must be 4xx (the listener serves only ``/d/<token>``), never 5xx, always with the headers."""
    rng = random.Random(audit.seed ^ 0xD11)
    stats = FuzzStats()
    port = audit.layout.delivery_port
    # Real links for the wrong-key cases (the load phase has collected the others): a few fresh ones,
    # collected by the late phones after this phase.
    from tests.audit.load import top_up

    pending = [d.token for d in top_up(audit, 3, deadline)]
    if not pending:
        audit.fail("delivery fuzzing: no pending link to send wrong-key variants of")
    methods = [
        "GET",
        "POST",
        "HEAD",
        "PUT",
        "DELETE",
        "OPTIONS",
        "PATCH",
        "TRACE",
        "PROPFIND",
        "CONNECT",
        "FOO",
    ]
    for n in range(cases):
        if time.monotonic() > deadline:
            audit.fail("delivery fuzzing stopped by its time bound")
            break
        method = rng.choice(methods)
        path = _random_path(rng, pending)
        headers = [f"Host: 127.0.0.1:{port}"]
        body = b""
        if rng.random() < 0.3:
            headers.append(
                f"Origin: {rng.choice(['https://evil.example', 'null', 'https://127.0.0.1:' + str(port)])}"
            )
        if rng.random() < 0.3:
            headers.append(f"Sec-Fetch-Site: {rng.choice(['cross-site', 'same-origin', 'none', 'x'])}")
        if method in ("POST", "PUT", "PATCH") and rng.random() < 0.5:
            body = bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 10, 1024, 1025, 5000])))
            headers.append(f"Content-Type: {rng.choice(['application/json', 'text/plain', 'x/y'])}")
        headers.append(f"Content-Length: {len(body)}")
        request = f"{method} {path} HTTP/1.1\r\n".encode("utf-8", "surrogateescape")
        request += ("\r\n".join(headers) + "\r\nConnection: close\r\n\r\n").encode() + body
        where = f"{method} {'/d/<token-like>' if path.startswith('/d/') else path[:60]}"
        try:
            status, got = _raw_tls(port, audit.layout.cert, request, phone_ip(3000 + n % 2000))
        except OSError as exc:
            stats.transport_errors.append(f"{where}: {type(exc).__name__}")
            continue
        if status == 0:
            stats.transport_errors.append(f"{where}: closed without an answer")
            continue
        _check_headers(stats, where, status, got, no_store=True)
        if status == 200 and not path.startswith("/d/"):
            stats.server_errors.append(f"{where}: the delivery listener served a non-/d/ path")
        if status == 200 and path.endswith(CONTROL_SUFFIXES):
            stats.server_errors.append(f"{where}: a link followed by a control character opened")
    # Every pending link once more with a newline after it, POSTed: the probe's request that returned the
    # JPEG. The check below then finds the link still pending.
    for n, token in enumerate(pending):
        request = (
            f"POST /d/{token}%0A HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Length: 0\r\nConnection: close\r\n\r\n"
        ).encode()
        try:
            status, got = _raw_tls(port, audit.layout.cert, request, phone_ip(5000 + n))
        except OSError as exc:
            stats.transport_errors.append(f"POST /d/<token>%0A: {type(exc).__name__}")
            continue
        _check_headers(stats, "POST /d/<token>%0A", status, got, no_store=True)
        if status != 404:
            stats.server_errors.append(f"POST /d/<token>%0A -> {status}: only the exact link may open")
    # Malformed at the protocol level: cheroot answers (or closes) before the app runs.
    for raw in (
        b"\x16\x03\x01garbage\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET /d/x HTTP/9.9\r\n\r\n",
        b"GET /d/x HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        b"POST /d/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /d/" + b"x" * 70000 + b" HTTP/1.1\r\n\r\n",
        b"GET /d/x HTTP/1.1\r\n" + b"X: " + b"y" * 70000 + b"\r\n\r\n",
        # Past the head limit (431, or closed once the limit is read; never read to the end).
        b"GET /d/x HTTP/1.1\r\nHost: a\r\nX: " + b"y" * LONG_HEADER_BYTES + b"\r\n\r\n",
        b"GET /d/x HTTP/1.1\r\nHost: a\r\n"
        + b"".join(b"X-%d: %s\r\n" % (i, b"z" * 100) for i in range(500))
        + b"\r\n",
        # Past the body limit, declared (413 before a byte is read) and chunked (411: a length is required).
        b"POST /d/x HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000\r\n\r\n",
        b"POST /d/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n100000\r\n" + b"x" * 4096,
        # Raw control characters in the request line and a header (cheroot refuses or the app answers 404).
        b"GET /d/x\x1b[2J HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /d/x HTTP/1.1\r\nHost: a\r\nX: a\rERROR forged\r\n\r\n",
    ):
        try:
            status, got = _raw_tls(port, audit.layout.cert, raw, "127.0.9.9")
        except OSError as exc:
            stats.transport_errors.append(f"malformed: {type(exc).__name__}")
            continue
        if status:
            _check_headers(stats, f"malformed {raw[:24]!r}", status, got, no_store=True)
    for token in pending:  # the wrong-key requests destroyed nothing
        d = audit.deliveries[token]
        if d.state == "pending":
            from tests.audit.client import Phone

            page = Phone(port, audit.layout.cert, "127.0.9.10", audit.headers).request("GET", f"/d/{token}")
            if page.status != 200:
                audit.fail("delivery fuzzing: a pending link stopped working after wrong-key requests")
                break
    return stats


# -- the staff listener --------------------------------------------------------------------------------------


def fuzz_staff(audit: Audit, cases: int, deadline: float) -> FuzzStats | None:
    """Random paths and methods against ``[staff]`` if something listens there; ``None`` if not."""
    import http.client

    port = audit.layout.staff_port
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return None
    rng = random.Random(audit.seed ^ 0x57AF)
    stats = FuzzStats()
    paths = ["/", "/login", "/logout", "/health", "/metrics", "/api/status", "/static/x", "/admin", "/d/x"]
    for n in range(cases):
        if time.monotonic() > deadline:
            break
        method = rng.choice(["GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD"])
        path = rng.choice(paths) + rng.choice(
            ["", "?x=1", "/" + "z" * rng.randint(1, 200), "%00", "/../..", *CONTROL_SUFFIXES]
        )
        body = None
        headers: dict[str, str] = {}
        if method == "POST":
            body = rng.choice([b"", b"user=a&password=b&totp=123456", b"{}", b"\xff" * 100, b"[" * 5000])
            headers["Content-Type"] = rng.choice(["application/x-www-form-urlencoded", "application/json"])
        oversized = rng.random() < 0.05  # a head past the listener's limit: 431 or a closed connection
        if oversized:
            headers["X-Big"] = "y" * LONG_HEADER_BYTES
        try:
            conn = http.client.HTTPConnection(
                "127.0.0.1", port, timeout=30, source_address=(phone_ip(6000 + n), 0)
            )
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            conn.close()
        except (OSError, http.client.HTTPException) as exc:
            if not oversized:
                stats.transport_errors.append(f"{method} {path[:40]}: {type(exc).__name__}")
            continue
        _check_headers(stats, f"{method} {path[:60]}", resp.status, dict(resp.getheaders()), no_store=False)
    return stats
