"""What one audit run knows and finds, shared by its phases and turned into the report at the end."""

from __future__ import annotations

import hashlib
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.audit.client import ApiClient, HeaderAudit
from tests.audit.kiosk import KioskLayout, KioskProcess, ProcStats
from tests.audit.markers import Hits, SecretBook, jpeg_windows

# A delivery link in an error text (a Playwright URL, an unexpected reply body): the report must not carry it.
_LINK = re.compile(r"[0-9a-f]{32}\.[A-Za-z0-9_-]{43}")


@dataclass
class Settings:
    """Sizes of one run (``--quick`` or ``--full``)."""

    mode: str
    sessions: int
    browser_shares: int
    worker_kills: int
    main_kills: int
    store_snapshots_every: int
    fuzz_examples: int
    delivery_fuzz_cases: int
    phones: int
    intake_mutants: int
    time_budget_seconds: float


QUICK = Settings("quick", 50, 3, 3, 2, 5, 10, 300, 50, 24, 8 * 60)
FULL = Settings("full", 1000, 8, 25, 10, 20, 60, 3000, 50, 300, 60 * 60)


@dataclass
class Delivery:
    """A delivery link the run knows, and the bytes it should return."""

    token: str
    jpeg_sha: str
    created: float
    state: str = "pending"  # pending, collected, revoked, lost


@dataclass
class Audit:
    """The run's shared state. Phases append findings; the report reads them."""

    settings: Settings
    seed: int
    out: Path
    layout: KioskLayout
    kiosk: KioskProcess
    book: SecretBook
    headers: HeaderAudit
    rng: random.Random
    started_wall: float
    started_mono: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    visits: Counter[str] = field(default_factory=Counter)
    kills: list[str] = field(default_factory=list)
    session_workers: set[int] = field(default_factory=set)
    deliveries: dict[str, Delivery] = field(default_factory=dict)
    image_shas: set[str] = field(default_factory=set)
    preview_frames: int = 0
    hits: dict[str, Hits] = field(default_factory=dict)
    scanned: dict[str, str] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    load_latencies: list[float] = field(default_factory=list)
    soak: dict[str, ProcStats] = field(default_factory=dict)
    sessions_since_start: int = 0
    soak_visits: int = 0  # visits between the soak baseline and its end
    expected_5xx: list[str] = field(default_factory=list)
    fuzz: dict[str, str] = field(default_factory=dict)
    intake: dict[str, str] = field(default_factory=dict)
    snapshots: list[str] = field(default_factory=list)
    phase_seconds: dict[str, float] = field(default_factory=dict)
    backgrounds: list[str] = field(default_factory=list)

    def api(self) -> ApiClient:
        return ApiClient(self.layout.ui_port, self.headers)

    def fail(self, message: str) -> None:
        with self.lock:
            self.failures.append(_LINK.sub("<link>", message))

    def note(self, message: str) -> None:
        with self.lock:
            self.notes.append(_LINK.sub("<link>", message))

    def learn_image(self, data: bytes, label: str, windows: int = 3) -> str:
        """Remember an image the kiosk produced: its windows become secrets. Returns its sha256."""
        sha = hashlib.sha256(data).hexdigest()
        with self.lock:
            new = sha not in self.image_shas
            self.image_shas.add(sha)
        if new:
            for window in jpeg_windows(data, self.rng, windows):
                self.book.add("image", f"{label}:{sha[:8]}", window)
        return sha

    def learn_token(self, token: str, jpeg_sha: str) -> Delivery:
        with self.lock:
            label = f"token#{len(self.deliveries)}"
            d = Delivery(token, jpeg_sha, time.time())
            self.deliveries[token] = d
        self.book.add_token(label, token)
        return d

    def elapsed(self) -> float:
        return time.monotonic() - self.started_mono
