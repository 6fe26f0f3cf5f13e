"""What staff may change about the running event: guests' choices, the event name, languages and window.

The staff console parses the forms and renders the pages; the rules live here, beside the facade they
change: the new settings are validated by ``KioskConfig`` itself (every bound of the config file holds at
run time too), settings that change the consent text wait for a paused, idle kiosk, and the receipt
recorder is rebuilt so every receipt names the text its guest agreed to. Each change is written to the
event overrides file (``appliance.overrides``) before it takes effect, so it survives a restart; a reset
goes back to the config file's values and removes the file.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from appliance.audit import receipt_recorder
from appliance.config import KioskConfig
from appliance.errors import NotAllowed
from appliance.overrides import OVERRIDABLE, differences, write_overrides

if TYPE_CHECKING:
    from appliance.kiosk import Kiosk

__all__ = ["CONSENT_TEXT_KEYS", "EventSettings", "audit_changes"]

# Overridable settings that appear in the consent text or the privacy notice: changing them needs a paused,
# idle kiosk and a new receipt recorder. Backgrounds and presets do not.
CONSENT_TEXT_KEYS = frozenset({"event.name", "event.languages", "delivery.window_minutes"})


def audit_changes(old: KioskConfig, new: KioskConfig) -> dict[str, Any]:
    """What changed from ``old`` to ``new`` among the overridable settings, for the audit trail: dotted key
    -> new value, the free-text event name as None (``appliance.audit.STAFF_CHANGES``)."""
    return {
        f"{section}.{key}": None if (section, key) == ("event", "name") else value
        for section, values in differences(old, new).items()
        for key, value in values.items()
    }


class EventSettings:
    """Changes to ``kiosk``'s event while it runs, bounded by ``configured`` (the config file's values,
    without overrides).

    Operators pick which of the configured backgrounds and crop presets guests are offered; admins change
    the event name, the offered languages and the delivery window, or reset all of it to the config file.
    ``overrides``: the event overrides file each change is written to (None: nothing is persisted, as in
    tests and ``bench``). Thread-safe: one change at a time, so two staff members submitting at once cannot
    interleave a read and a swap of the config. Each method returns ``audit_changes`` of what it did.
    """

    def __init__(self, kiosk: Kiosk, configured: KioskConfig, *, overrides: Path | None = None) -> None:
        self.kiosk = kiosk
        self.configured = configured
        self.overrides = overrides
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

    def _require_paused_idle(self) -> None:
        state = self.kiosk.state()
        if not state.paused or state.phase != "idle":
            raise NotAllowed(
                "pause the kiosk and wait until no visit is in progress before changing event settings",
                code="not_paused",
            )

    def _commit(self, new: KioskConfig, *, consent_text: bool) -> dict[str, Any]:
        """Persist ``new``'s overrides, then swap it in. Called with ``_lock`` held.

        The file is written first: if that fails (``OSError``), nothing has changed. If the swap is then
        refused (a visit started in between), the file is put back as it was.
        """
        old = self.kiosk.cfg
        changes = audit_changes(old, new)
        if self.overrides is not None:
            write_overrides(self.overrides, differences(self.configured, new))
        try:
            if consent_text:
                # python -m appliance run records receipts with receipt_recorder(cfg), whose policy hash is
                # fixed at creation; a new text needs a recorder hashing the new text. A kiosk without a
                # recorder (tests, `bench`) keeps none.
                recorder = receipt_recorder(new) if self.kiosk.on_receipt is not None else None
                self.kiosk.update_event(new, require_idle=True, on_receipt=recorder)
            else:
                # The facade reads its config on every call (validation, the first render's defaults) and
                # the guest page reads it on every load, so swapping the frozen object applies the choice.
                self.kiosk.update_event(new)
        except BaseException:
            if self.overrides is not None:
                write_overrides(self.overrides, differences(self.configured, old))
            raise
        return changes

    def choose_backgrounds_and_presets(
        self, backgrounds: Sequence[str], presets: Sequence[str]
    ) -> dict[str, Any]:
        """Offer guests a subset of the configured backgrounds and presets; the first of each is the default.

        Only the event's choices change, none of the consent text, so receipts keep their policy hash and
        a visit in progress is not disturbed. Raises ``ValueError`` for an empty or unknown choice and
        ``OSError`` if the overrides file cannot be written.
        """
        if not backgrounds or not presets:
            raise ValueError("choose at least one background and one crop preset")
        event = self.configured.event
        if set(backgrounds) - set(event.backgrounds) or set(presets) - set(event.presets):
            raise ValueError("choose among the configured backgrounds and crop presets")
        with self._lock:
            new = self._replace_event(event={"backgrounds": tuple(backgrounds), "presets": tuple(presets)})
            return self._commit(new, consent_text=False)

    def change(self, *, name: str, languages: Sequence[str], window_minutes: int) -> dict[str, Any]:
        """Change the event name, the offered languages and the delivery window (≤ 60 min).

        These change the consent text, so they apply only while the kiosk is paused with no visit in
        progress (no guest agrees to one text and leaves under another), and the receipt recorder is rebuilt
        so later receipts carry the new text's hash. Raises ``NotAllowed`` (``not_paused``) otherwise,
        ``ValueError`` naming each field outside the config's bounds, and ``OSError`` if the overrides file
        cannot be written.
        """
        with self._lock:
            self._require_paused_idle()
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
            return self._commit(new, consent_text=True)

    def overridden(self) -> dict[str, Any]:
        """The settings that differ from the config file now, dotted key -> value (for the console)."""
        return {
            f"{section}.{key}": value
            for section, values in differences(self.configured, self.kiosk.cfg).items()
            for key, value in values.items()
        }

    def reset(self) -> dict[str, Any]:
        """Go back to the config file's values for everything the console can change, and remove the
        overrides file. A reset that changes the consent text needs a paused, idle kiosk, as ``change``."""
        with self._lock:
            data = self.kiosk.cfg.model_dump()
            for section, keys in OVERRIDABLE.items():
                base = getattr(self.configured, section)
                data[section] = {**data[section], **{key: getattr(base, key) for key in keys}}
            new = KioskConfig.model_validate(data)
            consent_text = bool(CONSENT_TEXT_KEYS & set(audit_changes(self.kiosk.cfg, new)))
            if consent_text:
                self._require_paused_idle()
            return self._commit(new, consent_text=consent_text)
