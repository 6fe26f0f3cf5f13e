"""How long each thing of a visit is kept: one source for what the guest reads and what the kiosk enforces.

The consent screen's "How long", the privacy documents, "What we hold" and the delivery screen all take
their numbers from here, and so do the idle wipe (``appliance.lifecycle.timeout_for``), the link window
(``DeliveryStore``) and the vault's own expiry stamp, so the text and the behaviour cannot drift apart
(issue 11: "What we hold" used to show *window + 60 min* while the consent text said 10 minutes).

- A capture or a headshot lives until the visit ends: the guest finishes or presses Delete now, or the
  visit is wiped ``idle_limit_seconds`` after the last touch at the latest (each phase's own timeout is at
  most that). "What we hold" shows that deadline, counted from the last touch.
- The one delivered headshot waits, encrypted under a key only the QR code holds, for
  ``delivery_window_seconds`` after the QR is shown.
- ``VAULT_BACKSTOP_SECONDS`` is only the expiry stamped into each vault object, a second lock behind the
  wipe: a visit kept alive by touches for longer than this loses its photos rather than keeping them.
"""

from __future__ import annotations

from appliance.config import KioskConfig, SessionConfig

# A visit is one guest at a screen; an hour of constant touching is not one. Past this the vault itself
# refuses to return its objects, whatever the wipe did or did not do.
VAULT_BACKSTOP_SECONDS = 3600.0


def idle_limit_seconds(session: SessionConfig) -> float:
    """The longest a visit survives without a touch (s): the largest idle timeout of a guest phase."""
    return float(
        max(
            session.consent_idle_timeout_seconds,
            session.preview_idle_timeout_seconds,
            session.review_idle_timeout_seconds,
            session.delivery_idle_timeout_seconds,
        )
    )


def delivery_window_seconds(cfg: KioskConfig) -> float:
    """How long a delivered headshot waits for its one download (s)."""
    return float(cfg.delivery.window_minutes * 60)
