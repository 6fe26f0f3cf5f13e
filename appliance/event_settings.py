"""What staff may change about the running event: guests' choices, the event name, languages and window.

The staff console parses the forms and renders the pages; the rules live here, beside the facade they
change: the new settings are validated by ``KioskConfig`` itself (every bound of the config file holds at
run time too), settings that change the consent text wait for a paused, idle kiosk, and the receipt
recorder is rebuilt so every receipt names the text its guest agreed to.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from appliance.audit import receipt_recorder
from appliance.config import KioskConfig
from appliance.kiosk import NotAllowed

if TYPE_CHECKING:
    from appliance.kiosk import Kiosk

__all__ = ["EventSettings"]


class EventSettings:
    """Changes to ``kiosk``'s event while it runs, bounded by ``configured`` (the config it started with).

    Operators pick which of the configured backgrounds and crop presets guests are offered; admins change
    the event name, the offered languages and the delivery window. Thread-safe: one change at a time, so
    two staff members submitting at once cannot interleave a read and a swap of the config.
    """

    def __init__(self, kiosk: Kiosk, configured: KioskConfig) -> None:
        self.kiosk = kiosk
        self.configured = configured
        self._lock = threading.Lock()

    def _replace_event(
        self, *, event: Mapping[str, Any], delivery: Mapping[str, Any] | None = None
    ) -> KioskConfig:
        """The kiosk's current config with ``event`` (and ``delivery``) fields changed, validated again by
        ``KioskConfig`` so every bound of the config file (delivery window ≤ 60 min...) holds.

        Raises pydantic's ``ValidationError`` for a value outside those bounds.
        """
        data = self.kiosk.cfg.model_dump()
        data["event"] = {**data["event"], **event}
        if delivery:
            data["delivery"] = {**data["delivery"], **delivery}
        return KioskConfig.model_validate(data)

    def choose_backgrounds_and_presets(self, backgrounds: Sequence[str], presets: Sequence[str]) -> None:
        """Offer guests a subset of the configured backgrounds and presets; the first of each is the default.

        Only the event's choices change, none of the consent text, so receipts keep their policy hash and
        a visit in progress is not disturbed. Raises ``ValueError`` for an empty or unknown choice.
        """
        if not backgrounds or not presets:
            raise ValueError("choose at least one background and one crop preset")
        event = self.configured.event
        if set(backgrounds) - set(event.backgrounds) or set(presets) - set(event.presets):
            raise ValueError("choose among the configured backgrounds and crop presets")
        with self._lock:
            new = self._replace_event(event={"backgrounds": tuple(backgrounds), "presets": tuple(presets)})
            # The facade reads its config on every call (validation, the first render's defaults) and the
            # guest page reads it on every load, so swapping the frozen object applies the choice.
            self.kiosk.update_event(new)

    def change(self, *, name: str, languages: Sequence[str], window_minutes: int) -> None:
        """Change the event name, the offered languages and the delivery window (≤ 60 min).

        These change the consent text, so they apply only while the kiosk is paused with no visit in
        progress (no guest agrees to one text and leaves under another), and the receipt recorder is rebuilt
        so later receipts carry the new text's hash. Raises ``NotAllowed`` (``not_paused``) otherwise
        and ``ValueError`` naming each field outside the config's bounds.
        """
        with self._lock:
            state = self.kiosk.state()
            if not state["paused"] or state["phase"] != "idle":
                raise NotAllowed(
                    "pause the kiosk and wait until no visit is in progress before changing event settings",
                    code="not_paused",
                )
            try:
                new = self._replace_event(
                    event={"name": name, "languages": tuple(languages)},
                    delivery={"window_minutes": window_minutes},
                )
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)
                )
                raise ValueError(problems) from None
            # python -m appliance run records receipts with receipt_recorder(cfg), whose policy hash is
            # fixed at creation; a new text needs a recorder hashing the new text. A kiosk without a
            # recorder (tests, `bench`) keeps none.
            recorder = receipt_recorder(new) if self.kiosk.on_receipt is not None else None
            self.kiosk.update_event(new, require_idle=True, on_receipt=recorder)
