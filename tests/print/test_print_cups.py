"""Printing end to end on a real cupsd: the kiosk API -> the session worker -> CUPS's local socket ->
Gutenprint's DNP DS620 filter chain -> the printer's bytes; then nothing of the job anywhere.

One cupsd for the module, started on provisioning's own configuration with its spool on a tmpfs in its own
mount namespace (``tests/print/cups_server.py``), one real Kiosk (session worker, directory camera over
frames with planted markers as in the audit). What is searched for afterwards, in every encoding the audit
knows (``tests.audit.markers``): the planted markers and capture pixels, windows of the headshot and of
the exact document the worker sent to CUPS (the test composes the same bytes: ``print_document`` is
deterministic). Needs root, cups, cups-client, cups-filters and printer-driver-gutenprint (skipped with the
reason otherwise).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.config import KioskConfig
from appliance.kiosk import Kiosk
from appliance.print_layout import print_document
from appliance.printing import CupsQueue
from kiosk_ui import create_app
from kiosk_ui.metrics import metrics_text
from tests.audit.markers import Matcher, SecretBook, jpeg_windows, plant_frames, register_frames
from tests.audit.residue import scan_filesystem
from tests.print.cups_server import DNP_HEADER, QUEUE, CupsServer, missing
from tests.support import CHROMIUM, LAUNCH_ARGS, TIMEOUT_MS, free_port, served_kiosk, wait_visible

REPO = Path(__file__).resolve().parents[2]
PORTRAITS = [REPO / "tests" / "assets" / "faces" / name for name in ("grace_hopper.jpg", "astronaut.png")]
SEED = random.SystemRandom().getrandbits(48)
PRINT_SECONDS = 60.0  # a DS620 4x6 through the whole filter chain takes ~0.5 s here; generous for CI

pytestmark = pytest.mark.skipif(missing() is not None, reason=missing() or "")


class Run:
    """What the module's tests share: the cupsd, the kiosk, the secrets and when it all started."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.started = time.time()
        self.book = SecretBook()
        self.rng = random.Random(SEED)
        self.frames = plant_frames(base / "frames", PORTRAITS, seed=SEED)
        register_frames(self.book, self.frames, self.rng)
        self.cups = CupsServer()
        self.cfg = KioskConfig.model_validate(
            {
                "camera": {"source": "directory", "path": str(self.frames.directory), "fps": 30},
                "store": {"path": str(base / "store"), "size_mib": 64},
                "audit": {"path": str(base / "audit")},
                "session": {"countdown_seconds": 0, "capture_burst_frames": 2},
                "event": {"name": "Print Test Expo", "backgrounds": ["studio-grey"], "presets": ["portrait"]},
                "print": {
                    "enabled": True,
                    "queue": QUEUE,
                    "cups_socket": self.cups.socket,
                    "copies_per_guest": 2,
                    "job_timeout_seconds": 120,
                },
            }
        )
        self.documents: list[bytes] = []

    def learn_headshot(self, jpeg: bytes, label: str) -> bytes:
        """Register the headshot and the document the worker makes of it; returns the document."""
        for window in jpeg_windows(jpeg, self.rng, 24):
            self.book.add("image", label, window)
        document = bytes(
            print_document(
                jpeg,
                self.cfg.print.layout,
                event_name=self.cfg.event.name,
                brand_colour=self.cfg.print.brand_colour,
            )
        )
        for window in jpeg_windows(document, self.rng, 24):
            self.book.add("document", label, window)
        self.documents.append(document)
        return document


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    state = Run(tmp_path_factory.mktemp("print"))
    state.cups.start()
    try:
        yield state
    finally:
        state.cups.remove()


@pytest.fixture(scope="module")
def kiosk(run: Run) -> Iterator[Kiosk]:
    k = Kiosk(run.cfg)
    k.start()
    yield k
    k.close()


@pytest.fixture(scope="module")
def app(kiosk: Kiosk) -> Flask:
    return create_app(kiosk, testing=True)


@pytest.fixture
def client(app: Flask, kiosk: Kiosk, run: Run) -> Iterator[FlaskClient]:
    if kiosk.state().phase != "idle":
        kiosk.delete_now()
    run.cups.drain(True)
    yield app.test_client()
    if kiosk.state().phase != "idle":
        kiosk.delete_now()
    run.cups.drain(True)


def _review(client: FlaskClient, run: Run, label: str) -> str:
    """A visit in review; returns its headshot's render id (headshot and document registered)."""
    assert client.post("/api/session", json={}).status_code == 201
    assert client.post("/api/session/consent", json={"accept": True}).json["phase"] == "preview"
    captured = client.post("/api/session/capture", json={})
    assert captured.status_code == 200, captured.json
    render = captured.json["render"]
    jpeg = client.get(captured.json["image"]).data
    run.learn_headshot(jpeg, label)
    return str(render)


def _wait_print(
    client: FlaskClient, run: Run, want: set[str], timeout: float = PRINT_SECONDS
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state = client.get("/api/session").json
        if state["print"]["status"] in want:
            return dict(state["print"])
        assert time.monotonic() < deadline, (
            f"print still {state['print']} after {timeout:.0f} s; printer got {len(run.cups.output)} bytes, "
            f"spool {run.cups.job_files()}"
        )
        time.sleep(0.1)


def _hits(matcher: Matcher, directory: Path) -> list[str]:
    found = []
    for path in directory.rglob("*"):
        if path.is_file() and not path.is_fifo():
            found += [f"{p.category} {p.label} in {path}" for p in matcher.find(path.read_bytes())]
    return found


def test_a_print_reaches_the_dnp_printer_and_leaves_no_job_behind(
    client: FlaskClient, run: Run, kiosk: Kiosk
) -> None:
    render = _review(client, run, "visit-1")
    run.cups.output.clear()

    answer = client.post("/api/session/print", json={"render": render})
    assert answer.status_code == 200, answer.json
    assert set(answer.json) == {"job", "status", "reason", "prints_left"}
    assert answer.json["status"] == "queued" and answer.json["prints_left"] == 1
    done = _wait_print(client, run, {"completed", "failed", "cancelled"})
    assert done["status"] == "completed", done

    # The printer got DNP data, starting with the DNP control header, from the whole Gutenprint chain.
    assert bytes(run.cups.output[: len(DNP_HEADER)]) == DNP_HEADER
    assert len(run.cups.output) > 1_000_000  # a 4x6 page at 300 dpi, not an error message
    # CUPS forgot the job the moment it ended: no control or document file, nothing in TempDir.
    assert run.cups.job_files() == []
    assert run.cups.temp_files() == []
    assert CupsQueue(run.cups.socket, QUEUE).unfinished() == []
    # Nothing of it in the spool, the job cache or the logs; and no title or spool file name in the logs.
    matcher = run.book.matcher()
    assert _hits(matcher, run.cups.spool) == []
    logs = b"".join(p.read_bytes() for p in (run.cups.base / "log").glob("*"))
    assert b"headshot" not in logs and b"d00001" not in logs
    assert matcher.find(logs) == []
    # The fleet's alert rules read it from /metrics.
    completed = kiosk.health().counters["prints_completed"]
    assert completed >= 1 and f"headshot_kiosk_prints_total {completed:.1f}" in metrics_text(kiosk).decode()
    assert client.post("/api/session/end", json={}).status_code == 200


def test_delete_now_cancels_and_purges_a_printing_and_a_queued_job(
    client: FlaskClient, run: Run, kiosk: Kiosk
) -> None:
    render = _review(client, run, "visit-2")
    before = kiosk.health().counters
    run.cups.drain(False)  # the printer stops reading: the first job stalls mid-print, the second waits
    for _ in range(2):
        assert client.post("/api/session/print", json={"render": render}).status_code == 200
        _wait_print(client, run, {"printing", "queued"})
    deadline = time.monotonic() + PRINT_SECONDS
    while len([f for f in run.cups.job_files() if f.startswith("d")]) < 2:
        assert time.monotonic() < deadline, run.cups.job_files()
        time.sleep(0.05)
    # The positive control: the document sits in the RAM spool, and the scan finds it there.
    held = client.get("/api/session").json["held"]
    assert [item["kind"] for item in held].count("print") == 2
    assert any(hit.startswith("document visit-2") for hit in _hits(run.book.matcher(), run.cups.spool))
    assert client.post("/api/session/print", json={"render": render}).json["error"] == "print_limit"

    assert client.post("/api/session/delete", json={}).status_code == 200

    # Gone from CUPS, from RequestRoot and TempDir, at once.
    assert CupsQueue(run.cups.socket, QUEUE).unfinished() == []
    assert run.cups.job_files() == []
    assert run.cups.temp_files() == []
    assert _hits(run.book.matcher(), run.cups.spool) == []
    after = kiosk.health().counters
    assert after["prints_submitted"] == before["prints_submitted"] + 2
    assert after["prints_completed"] == before["prints_completed"]


def test_the_guest_presses_print_and_is_told_to_collect_it(run: Run) -> None:
    """The kiosk page in a real Chromium: Print on the review screen, the status line follows the job to
    "collect your print", the button goes once the guest's prints are used, the phone delivery still works,
    and the next guest's page says nothing of it."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    base = run.base / "browser"
    cfg = run.cfg.model_copy(
        update={
            "store": run.cfg.store.model_copy(update={"path": base / "store"}),
            "audit": run.cfg.audit.model_copy(update={"path": base / "audit"}),
            "ui": run.cfg.ui.model_copy(update={"port": free_port()}),
            "delivery": run.cfg.delivery.model_copy(update={"port": free_port(), "wifi_qr_path": None}),
            "staff": run.cfg.staff.model_copy(update={"port": free_port()}),
            "print": run.cfg.print.model_copy(update={"copies_per_guest": 1}),
        }
    )
    run.cups.drain(True)
    run.cups.output.clear()
    with served_kiosk(Kiosk(cfg)) as ui_url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(ui_url + "/")
            wait_visible(page, "attract")
            page.click("#start")
            wait_visible(page, "consent")
            assert "printer" in page.inner_text("#consent-print").lower()
            page.check("#agree")
            page.click("#accept")
            wait_visible(page, "preview")
            page.click("#shoot")
            wait_visible(page, "review")
            page.click("#print-btn")
            page.wait_for_function(
                "() => document.getElementById('print-status').dataset.status === 'completed'",
                timeout=TIMEOUT_MS,
            )
            assert page.inner_text("#print-status") == "Collect your print from the printer."
            assert page.is_hidden("#print-btn")  # the guest's one print is used
            assert bytes(run.cups.output[: len(DNP_HEADER)]) == DNP_HEADER
            page.click("#deliver")  # the phone still gets the photo
            wait_visible(page, "delivery")
            assert page.is_visible("#print-status")
            page.click("#finish")
            wait_visible(page, "done")
            page.click("#again")
            wait_visible(page, "attract")
            assert page.inner_text("#print-status") == "" and page.is_hidden("#print-status")
        finally:
            browser.close()


def test_kill_9_of_cupsd_mid_job_leaves_nothing_after_the_restart(client: FlaskClient, run: Run) -> None:
    render = _review(client, run, "visit-3")
    run.cups.drain(False)
    assert client.post("/api/session/print", json={"render": render}).status_code == 200
    deadline = time.monotonic() + PRINT_SECONDS
    while not any(f.startswith("d") for f in run.cups.job_files()):
        assert time.monotonic() < deadline
        time.sleep(0.05)

    run.cups.kill9()  # cupsd and its filters, mid-job; systemd would restart it
    spool_on_disk = Path(run.cups.paths.spool)
    assert list(spool_on_disk.iterdir()) == []  # the tmpfs went with its namespace; the disk never had it
    run.cups.start()

    # The restarted cupsd found nothing to resume, and the kiosk says the print was lost, not printed.
    assert CupsQueue(run.cups.socket, QUEUE).unfinished() == []
    assert run.cups.job_files() == []
    lost = _wait_print(client, run, {"failed", "completed"})
    assert lost == {**lost, "status": "failed", "reason": "lost"}
    assert _hits(run.book.matcher(), run.cups.spool) == []
    # The visit goes on: the phone delivery is untouched by the printer's troubles.
    assert client.post("/api/session/deliver", json={"render": render}).status_code == 200


def test_the_audit_residue_scan_finds_nothing_of_any_print(run: Run, kiosk: Kiosk) -> None:
    """After every visit above has ended: the audit's P0-6 scan (every file changed since the module
    started, /tmp, /var/tmp, /var/log, CUPS's directories and cupsd's own spool) finds none of it."""
    if kiosk.state().phase != "idle":
        kiosk.delete_now()
    assert run.documents, "run the whole module: the visits above make what is searched for"
    result = scan_filesystem(
        run.book.matcher(),
        run.started,
        [run.frames.directory],
        extra=(str(run.cups.spool), str(run.cups.base)),
    )
    hits = {where: h.summary() for where, h in result.hits.items() if h.total}
    assert hits == {}, hits
    assert sum(result.files.values()) > 0
