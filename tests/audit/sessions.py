"""Guest visits through the HTTP API with random choices, kill -9 at random phases, and the P0-4 snapshot.

Each visit is a small script over the real API: decline, delete-now or revoke at a random phase, end with or
without a delivery, retakes, other backgrounds and crops, a phone collecting the link over TLS. Everything
the kiosk hands out (render bytes, preview frames, tokens) goes into the run's secret book.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from tests.audit.client import ApiClient, HeaderAudit, Phone, Reply, phone_ip
from tests.audit.kiosk import ProcStats, mounted_under, pid_alive, store_files, wait_dead
from tests.audit.markers import JPEG_SOS, entropy_bits_per_byte
from tests.audit.state import Audit

IDLE_WAIT_SECONDS = 15.0
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG"
MIN_ENTROPY_BITS = 7.9
ENTROPY_MIN_FILE = 4096
VISIT_KINDS = ("decline", "delete", "revoke", "end", "deliver", "deliver+phone", "retake")
# Leaning to deliveries: links left pending are what the 50 phones of the load phase collect.
VISIT_WEIGHTS = (1, 1, 1, 1, 7, 3, 1)
PHASES = ("consent", "preview", "review", "render", "delivery")


class VisitError(Exception):
    """The kiosk answered something a correct kiosk never would (recorded as a failure)."""


def expect(reply: Reply, status: int, what: str) -> Reply:
    if reply.status != status:
        detail = reply.body[:200].decode("utf-8", "replace")
        raise VisitError(f"{what}: expected {status}, got {reply.status} {detail}")
    return reply


class Visits:
    """Runs visits against the kiosk of ``audit``."""

    def __init__(self, audit: Audit) -> None:
        self.a = audit
        self.api: ApiClient = audit.api()
        self._phones = 0
        self.token_in_visit: str | None = None  # the link handed out in the visit under way, if any

    # -- helpers ------------------------------------------------------------------------------------------

    def phone(self, audit_headers: HeaderAudit | None = None) -> Phone:
        self._phones += 1
        return Phone(
            self.a.layout.delivery_port,
            self.a.layout.cert,
            phone_ip(1000 + self._phones),
            audit_headers or self.a.headers,
        )

    def wait_idle(self, timeout: float = IDLE_WAIT_SECONDS) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            state = expect(self.api.get("/api/session"), 200, "state").json()
            if state["phase"] == "idle":
                return state
            time.sleep(0.1)
        raise VisitError(f"the kiosk did not return to idle (phase {state.get('phase')})")

    def fetch_render(self, render_id: str) -> tuple[bytes, str]:
        reply = expect(self.api.get(f"/api/session/render/{render_id}.jpg"), 200, "render image")
        if not reply.body.startswith(JPEG_MAGIC):
            raise VisitError("a render is not a JPEG")
        return reply.body, self.a.learn_image(reply.body, "render")

    def check_held(self, state: dict[str, Any]) -> None:
        """'What we hold' must list exactly the objects the store has for the session."""
        sid = state.get("session")
        if not sid:
            return
        files = [p for p in store_files(self.a.layout.store) if p.parent.name == sid]
        held = [h for h in state["held"] if h["kind"] != "delivery"]
        if len(files) != len(held):
            raise VisitError(f"what-we-hold lists {len(held)} objects, the store has {len(files)}")

    def consent(self) -> dict[str, Any]:
        before = set(self.a.kiosk.workers())
        state = expect(self.api.post("/api/session/consent", {"accept": True}), 200, "consent").json()
        if state["phase"] != "preview":
            raise VisitError(f"consent led to {state['phase']}")
        # During a visit the only worker is the session's (a spare is warmed only while idle).
        for pid in set(self.a.kiosk.workers()) | before:
            if pid_alive(pid):
                self.a.session_workers.add(pid)
        return state

    def preview(self, count: int) -> None:
        for frame in self.api.preview_frames(count):
            self.a.preview_frames += 1
            if frame.startswith(JPEG_MAGIC) and JPEG_SOS in frame:
                self.a.learn_image(frame, "preview", windows=2)

    def capture(self) -> dict[str, Any]:
        result = expect(self.api.post("/api/session/capture"), 200, "capture").json()
        if result["phase"] != "review":
            raise VisitError(f"capture led to {result['phase']}")
        self.fetch_render(result["render"])
        return result

    def render_other(self, take: str) -> str:
        bg = self.a.rng.choice(self.a.backgrounds)
        preset = self.a.rng.choice(["square", "portrait", "badge"])
        body = {"take": take, "background": bg, "preset": preset}
        result = expect(self.api.post("/api/session/render", body), 200, "render").json()
        self.fetch_render(result["render"])
        return str(result["render"])

    def deliver(self, render_id: str, jpeg_sha: str) -> str:
        result = expect(self.api.post("/api/session/deliver", {"render": render_id}), 200, "deliver").json()
        url = str(result["url"])
        prefix = f"https://127.0.0.1:{self.a.layout.delivery_port}/d/"
        if not url.startswith(prefix):
            raise VisitError("the delivery link does not name the kiosk's delivery listener")
        token = url[len(prefix) :]
        self.a.learn_token(token, jpeg_sha)
        self.token_in_visit = token
        # The QR image URL carries this delivery's nonce (an earlier or bare URL answers 404).
        qr_url = str(result["qr"])
        if not qr_url.startswith("/api/session/qr.png?v="):
            raise VisitError("the QR image URL carries no per-delivery nonce")
        qr = expect(self.api.get(qr_url), 200, "qr")
        if not qr.body.startswith(PNG_MAGIC):
            raise VisitError("the QR code is not a PNG")
        return token

    def collect(self, token: str) -> None:
        """A phone opens the link and saves the photo; a second try must be refused."""
        phone = self.phone()
        page, saved = phone.download(token)
        expect(page, 200, "delivery page")
        expect(saved, 200, "delivery save")
        d = self.a.deliveries[token]
        import hashlib

        if hashlib.sha256(saved.body).hexdigest() != d.jpeg_sha:
            raise VisitError("the phone received other bytes than the headshot delivered")
        self.a.latencies.append(page.seconds + saved.seconds)
        d.state = "collected"
        again = phone.request("POST", f"/d/{token}")
        expect(again, 404, "spent link")

    def finish(self, how: str) -> dict[str, Any]:
        reply = expect(self.api.post(f"/api/session/{how}"), 200, how)
        if "no-store" not in reply.headers.get("Cache-Control", ""):
            raise VisitError(f"{how} answered without no-store")
        state = self.wait_idle()
        if state.get("last_receipt", {}).get("receipt") != reply.json().get("receipt"):
            raise VisitError(f"{how}: the receipt shown is not the visit's")
        return state

    # -- one visit ----------------------------------------------------------------------------------------

    def visit(self, kind: str, *, snapshot: bool = False) -> None:
        """One whole visit of ``kind`` (see VISIT_KINDS); raises VisitError on a wrong answer."""
        rng = self.a.rng
        self.token_in_visit = None
        start = expect(self.api.post("/api/session"), 201, "start").json()
        if start["phase"] != "consent" or start["held"]:
            raise VisitError("a new visit does not start in consent with nothing held")
        if kind == "decline":
            state = expect(self.api.post("/api/session/consent", {"accept": False}), 200, "decline").json()
            if state["phase"] != "idle":
                raise VisitError("declining did not end the visit")
            return
        if kind in ("delete", "revoke") and rng.random() < 0.25:
            self.finish(kind)  # before consent: nothing was captured
            return
        self.consent()
        self.preview(rng.randint(1, 2))
        if kind in ("delete", "revoke") and rng.random() < 0.3:
            self.finish(kind)
            return
        result = self.capture()
        take, render_id = str(result["take"]), str(result["render"])
        state = expect(self.api.get("/api/session"), 200, "state").json()
        self.check_held(state)
        if snapshot:
            self.snapshot_store("review")
        if kind == "retake":
            for _ in range(rng.randint(1, 2)):
                expect(self.api.post("/api/session/retake"), 200, "retake")
                self.preview(1)
                result = self.capture()
                take, render_id = str(result["take"]), str(result["render"])
            if expect(self.api.get("/api/session"), 200, "state").json()["takes_left"] == 0:
                over = self.api.post("/api/session/retake")
                expect(over, 409, "retake over the limit")
        if rng.random() < 0.5:
            render_id = self.render_other(take)
        if kind in ("delete", "revoke"):
            if rng.random() < 0.5:
                _jpeg, sha = self.fetch_render(render_id)
                token = self.deliver(render_id, sha)
                self.finish(kind)
                self.a.deliveries[token].state = "revoked"
                gone = self.phone().request("GET", f"/d/{token}")
                expect(gone, 404, "revoked link")
                return
            self.finish(kind)
            return
        if kind in ("end", "retake") and rng.random() < 0.6:
            self.finish("end")
            return
        _jpeg, sha = self.fetch_render(render_id)
        token = self.deliver(render_id, sha)
        if snapshot:
            self.snapshot_store("delivery")
        roll = rng.random()
        if kind == "deliver+phone" and roll < 0.35:
            self.collect(token)  # the guest scans the QR while still at the kiosk
            self.finish("end")
            return
        self.finish("end")
        if kind == "deliver+phone" and roll < 0.7:
            self.collect(token)  # ... or after walking away
        # otherwise the link stays pending: collected later by a phone of the load phase

    def run_visit(self, kind: str, *, snapshot: bool = False) -> bool:
        """``visit`` with failure recording and clean-up; returns whether it went as expected."""
        self.a.visits[kind] += 1
        try:
            self.visit(kind, snapshot=snapshot)
            ok = True
        except (VisitError, OSError, ValueError, KeyError) as exc:
            self.a.fail(f"visit {self.a.visits.total()} ({kind}): {type(exc).__name__}: {exc}")
            ok = False
            self._clean_up()
        self.a.sessions_since_start += 1
        return ok

    def _clean_up(self) -> None:
        try:
            state = self.api.get("/api/session").json()
            if state.get("phase") not in (None, "idle"):
                self.api.post("/api/session/delete")
                # Delete now also revokes the visit's link: the run must not expect it to work any more.
                token = self.token_in_visit
                if token is not None and self.a.deliveries[token].state == "pending":
                    self.a.deliveries[token].state = "revoked"
            self.wait_idle()
        except (VisitError, OSError, ValueError) as exc:
            self.a.fail(f"clean-up after a failed visit: {exc}")

    # -- P0-4 ---------------------------------------------------------------------------------------------

    def snapshot_store(self, phase: str) -> None:
        """P0-4: every file in the RAM store mid-session is ciphertext (no magic, no secret, high entropy)."""
        matcher = self.a.book.matcher()
        files = store_files(self.a.layout.store)
        bad: list[str] = []
        read = 0
        for path in files:
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue  # spent, revoked or expired between the listing and the read (a delivery blob)
            read += 1
            name = str(path.relative_to(self.a.layout.store))
            if data.startswith((JPEG_MAGIC, PNG_MAGIC)) or b"\xff\xd8\xff\xe0\x00\x10JFIF" in data:
                bad.append(f"{name}: image magic")
            found = matcher.find(data)
            if found:
                bad.append(f"{name}: {len(found)} secret pattern(s), e.g. {found[0].category}")
            if len(data) >= ENTROPY_MIN_FILE and entropy_bits_per_byte(data) < MIN_ENTROPY_BITS:
                bad.append(f"{name}: entropy {entropy_bits_per_byte(data):.3f} bits/byte")
        if not read:
            bad.append("the store holds no file mid-session (the snapshot would be vacuous)")
        self.a.snapshots.append(f"{phase}: {read} files, {'OK' if not bad else '; '.join(bad)}")
        for item in bad:
            self.a.fail(f"P0-4 store snapshot in {phase}: {item}")


# -- kill -9 -----------------------------------------------------------------------------------------------


class Kills:
    """A visit cut by ``kill -9`` of the session worker or of the main process at a random phase."""

    def __init__(self, visits: Visits) -> None:
        self.v = visits
        self.a = visits.a
        self._cut: HeaderAudit | None = None  # the render request a kill cuts, while it runs

    def _reach(self, phase: str) -> tuple[str | None, str | None]:
        """Drive a new visit to ``phase``; returns (session id, pending token or None)."""
        v = self.v
        state = expect(v.api.post("/api/session"), 201, "start").json()
        sid = state["session"]
        if phase == "consent":
            return sid, None
        v.consent()
        v.preview(1)
        if phase == "preview":
            return sid, None
        result = v.capture()
        if phase in ("review", "render"):
            return sid, None
        _jpeg, sha = v.fetch_render(str(result["render"]))
        return sid, v.deliver(str(result["render"]), sha)

    def _render_in_flight(self) -> threading.Thread:
        state = self.v.api.get("/api/session").json()
        take = state["takes"][0]["take"]
        body = {"take": take, "background": "blur", "preset": "badge"}
        expected = HeaderAudit()  # a request cut by the kill: a 503 or a reset is the right answer

        def go() -> None:
            with contextlib.suppress(OSError):
                ApiClient(self.a.layout.ui_port, expected).post("/api/session/render", body)

        thread = threading.Thread(target=go, daemon=True)
        thread.start()
        time.sleep(self.a.rng.uniform(0.05, 0.5))
        self._cut = expected
        return thread

    def _record_cut(self) -> None:
        """After the cut render request has finished: its 503 (if any) was expected."""
        if self._cut is not None:
            self.a.expected_5xx.extend(self._cut.server_errors)
            self._cut = None

    def kill_worker(self) -> None:
        phase = self.a.rng.choice(PHASES[1:])
        label = f"worker @ {phase}"
        try:
            sid, token = self._reach(phase)
            thread = self._render_in_flight() if phase == "render" else None
            workers = self.a.kiosk.workers()
            if len(workers) != 1:
                raise VisitError(f"expected one session worker, found {len(workers)}")
            os.kill(workers[0], signal.SIGKILL)
            if thread is not None:
                thread.join(30)
                self._record_cut()
            if not wait_dead(workers[0], 10):
                raise VisitError("the killed worker is still alive")
            state = self.v.wait_idle()
            if state.get("error") not in ("worker_died", "worker_failed"):
                raise VisitError(f"after the worker's death the kiosk shows error {state.get('error')!r}")
            if sid and (self.a.layout.store / sid).exists():
                raise VisitError("the dead worker's session directory is still in the store")
            if token is not None:
                self.a.deliveries[token].state = "pending"  # the link outlives the visit, by design
            self.a.kills.append(f"{label}: OK (wiped, back to idle)")
        except (VisitError, OSError, ValueError, KeyError) as exc:
            self.a.kills.append(f"{label}: FAILED")
            self.a.fail(f"kill -9 {label}: {type(exc).__name__}: {exc}")
            self.v._clean_up()
        self.a.visits["killed-worker"] += 1

    def kill_main(self) -> None:
        phase = self.a.rng.choice(PHASES)
        label = f"main @ {phase}"
        store = self.a.layout.store
        try:
            sid, _token = self._reach(phase)
            thread = self._render_in_flight() if phase == "render" else None
            orphans = self.a.kiosk.kill9()
            if thread is not None:
                thread.join(30)
                self._record_cut()
            still = [pid for pid in orphans if not wait_dead(pid, 20)]
            if still:
                raise VisitError(f"{len(still)} orphaned worker(s) still alive 20 s after the kill")
            if sid and (store / sid).exists() and any((store / sid).iterdir()):
                raise VisitError("the orphaned worker left its session files (it should wipe on EOF)")
            self.a.kiosk.start()
            self.a.sessions_since_start = 0
            # The start-up sweep removes everything a crash left, pending delivery blobs included: links
            # handed out before the crash must now be dead.
            for token, d in self.a.deliveries.items():
                if d.state == "pending":
                    d.state = "swept"
                    if self.v.phone().request("GET", f"/d/{token}").status != 404:
                        raise VisitError("a link from before the crash still answers after the restart sweep")
            left = store_files(store)  # the sweep removes delivery blobs too; no new one exists yet
            if left:
                raise VisitError(f"{len(left)} file(s) survived the restart sweep")
            if len(mounted_under(store)) != 1:
                raise VisitError(f"the store is mounted {len(mounted_under(store))} times after the restart")
            state = self.v.wait_idle()
            if state.get("session"):
                raise VisitError("the restarted kiosk shows a session")
            self.a.kills.append(f"{label}: OK (orphan wiped and exited, restart swept, idle)")
        except (VisitError, OSError, ValueError, KeyError, RuntimeError) as exc:
            self.a.kills.append(f"{label}: FAILED")
            self.a.fail(f"kill -9 {label}: {type(exc).__name__}: {exc}")
            if not self.a.kiosk.alive():
                self.a.kiosk.start()
            self.v._clean_up()
        self.a.visits["killed-main"] += 1


def plan(audit: Audit) -> list[str]:
    """The run's sequence of visit kinds, with kills placed at random: main-process kills in the first
    third (so a long soak follows the last restart), worker kills anywhere."""
    s = audit.settings
    rng = audit.rng
    n = s.sessions - s.worker_kills - s.main_kills
    kinds = rng.choices(VISIT_KINDS, weights=VISIT_WEIGHTS, k=n)
    for _ in range(s.main_kills):
        kinds.insert(rng.randrange(0, max(1, len(kinds) // 3)), "kill-main")
    for _ in range(s.worker_kills):
        kinds.insert(rng.randrange(0, len(kinds) + 1), "kill-worker")
    return kinds


def run_sessions(audit: Audit, deadline: float) -> None:
    """All planned visits, bounded by ``deadline`` (monotonic seconds)."""
    visits = Visits(audit)
    kills = Kills(visits)
    kinds = plan(audit)
    for i, kind in enumerate(kinds):
        if time.monotonic() > deadline:
            audit.fail(f"session phase stopped by its time bound after {i} of {len(kinds)} visits")
            break
        if kind == "kill-main":
            kills.kill_main()
        elif kind == "kill-worker":
            kills.kill_worker()
        else:
            snap = i % audit.settings.store_snapshots_every == 0 and kind not in ("decline",)
            visits.run_visit(kind, snapshot=snap)
        if audit.sessions_since_start == 10 and "baseline" not in audit.soak:
            audit.soak["baseline"] = settle_stats(audit)
        if audit.sessions_since_start == 0:
            audit.soak.pop("baseline", None)  # the main process restarted: the soak starts again
    audit.soak["after_sessions"] = settle_stats(audit)
    audit.soak_visits = audit.sessions_since_start - 10  # the soak's span: from the baseline to here


def settle_stats(audit: Audit) -> ProcStats:
    """The main process's RSS/fd/thread figures at a quiet moment: idle, one (spare) worker, reapers done.
    Transient threads (the worker reaper, the spare spawner) are excluded by taking the minimum of a few
    samples."""
    Visits(audit).wait_idle()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(audit.kiosk.workers()) != 1:
        time.sleep(0.2)
    time.sleep(2.0)
    samples = []
    for _ in range(5):
        samples.append(audit.kiosk.stats())
        time.sleep(0.3)
    return ProcStats(
        rss_kib=samples[-1].rss_kib,
        fds=min(s.fds for s in samples),
        threads=min(s.threads for s in samples),
    )


def dead_session_workers(audit: Audit) -> list[int]:
    """Workers that served a finished session and are still alive (expected: none)."""
    current = set(audit.kiosk.workers())
    state = audit.api().get("/api/session").json()
    live = [pid for pid in audit.session_workers if pid_alive(pid)]
    if state.get("phase") == "idle":
        return live
    return [pid for pid in live if pid not in current]


def visible_store(store: Path) -> list[str]:
    return [str(p.relative_to(store)) for p in store_files(store)]
