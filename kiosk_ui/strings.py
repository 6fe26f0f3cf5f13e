"""Translated text the templates and the page script need, generated from the config where it states facts
(retention times, link window, policy version) so the consent summary cannot drift from what the kiosk does.

All strings go through Flask-Babel; call these inside a request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask_babel import gettext as _

if TYPE_CHECKING:
    from appliance.config import KioskConfig


def consent_summary(cfg: KioskConfig) -> list[tuple[str, str]]:
    """The plain-language consent summary as (heading, sentence) pairs, facts taken from ``cfg``."""
    s = cfg.session
    idle = int(
        max(
            s.consent_idle_timeout_seconds,
            s.preview_idle_timeout_seconds,
            s.review_idle_timeout_seconds,
            s.delivery_idle_timeout_seconds,
        )
    )
    return [
        (
            _("What we capture"),
            _(
                "Pictures from the camera while you pose, and the headshots made from them. "
                "We do not ask for your name, e-mail or phone number."
            ),
        ),
        (_("Why"), _("Only to make your headshot and hand it to you.")),
        (
            _("Where it stays"),
            _(
                "Only in this kiosk's memory (RAM), encrypted with a key made for your visit alone. "
                "Nothing is written to disk."
            ),
        ),
        (
            _("How long"),
            _(
                "Everything is deleted when you finish, when you press Delete now, or after "
                "%(seconds)s seconds without activity. Your download link works once, for %(minutes)s "
                "minutes.",
                seconds=idle,
                minutes=cfg.delivery.window_minutes,
            ),
        ),
        (
            _("What we never do"),
            _("Nothing is uploaded, shared, kept after your visit, or used to train AI."),
        ),
        (
            _("Your rights"),
            _(
                "You can see what we hold and delete it at any time. Declining captures nothing. "
                "You get an anonymous receipt code (no image, no name) for notice version %(version)s.",
                version=cfg.event.policy_version,
            ),
        ),
    ]


def client_strings() -> dict[str, str]:
    """Text the page script shows, keyed by the codes the API returns (hints, error codes) and UI ids.

    ``{n}`` in a value is replaced by the script with a number."""
    return {
        # pose guidance (engine.preview hint codes)
        "hint_ready": _("Looking good: press Take photo when you are ready"),
        "hint_no_face": _("We can't see a face yet: look at the screen"),
        "hint_step_closer": _("Step closer"),
        "hint_step_back": _("Step back a little"),
        "hint_centre_yourself": _("Move to the middle of the outline"),
        "hint_look_at_camera": _("Look at the camera"),
        "hint_more_light": _("More light, please: face the light"),
        # dynamic labels
        "takes_left": _("Retake ({n} left)"),
        "no_takes_left": _("No retakes left"),
        "photo_n": _("Photo {n}"),
        "expires_in": _("The link works once, for {n} more minutes"),
        "expires_soon": _("The link works once, for less than a minute"),
        "idle_warning": _("Are you still there? Returning to the start in {n} seconds."),
        "held_empty": _("Nothing is stored about you right now."),
        "held_expires": _("deleted within {n} min"),
        "kind_capture": _("Camera photo"),
        "kind_headshot": _("Headshot"),
        "kind_delivery": _("Download waiting for your phone"),
        "working": _("Making your headshot..."),
        # errors by API code
        "error_no_face": _("We couldn't see your face. Please look at the camera and try again."),
        "error_retake_limit": _("You have used all your photos."),
        "error_generic": _("Something went wrong. Please try again."),
        "error_session_active": _("Someone else's visit is still in progress. Please wait a moment."),
        "error_paused": _("The kiosk is paused by staff. Please ask for help."),
        # background and preset names
        "bg_studio-grey": _("Studio grey"),
        "bg_white": _("White"),
        "bg_blur": _("Blurred"),
        "bg_colour": _("Colour"),
        "bg_off": _("Camera background"),
        "preset_square": _("Square"),
        "preset_portrait": _("Portrait"),
        "preset_badge": _("Badge"),
    }
