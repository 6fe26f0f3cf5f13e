"""Translated text the templates and the page script need.

The consent screen is not worded here: its templates live in ``appliance.consent`` (the text the receipt's
policy hash covers) and their translations in the consent catalogs next to it. ``consent_summary`` renders
them through Flask-Babel, in the request's language, so the guest reads exactly the hashed wording.

All strings go through Flask-Babel; call these inside a request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask_babel import Domain, get_locale
from flask_babel import gettext as _

from appliance.consent import CONSENT_CATALOGS, CONSENT_DOMAIN, consent_screen

if TYPE_CHECKING:
    from appliance.config import KioskConfig

# A Flask-Babel domain over the appliance's consent catalogs: same locale selection and caching as the UI's
# own ``messages`` catalogs, but its own files, so the two can never disagree about a consent sentence.
_CONSENT = Domain(translation_directories=[str(CONSENT_CATALOGS)], domain=CONSENT_DOMAIN)


class _FlaskBabelConsent:
    """``appliance.consent.ConsentTranslator`` backed by Flask-Babel's consent domain."""

    def gettext(self, msgid: str) -> str:
        # No variables: Flask-Babel then returns the translation unformatted; compliance fills it.
        return str(_CONSENT.gettext(msgid))

    def ngettext(self, singular: str, plural: str, num: int) -> str:
        return str(_CONSENT.ngettext(singular, plural, num))


def consent_summary(cfg: KioskConfig) -> dict[str, Any]:
    """The consent screen in the request's language (see ``appliance.consent.consent_screen``)."""
    return consent_screen(cfg, str(get_locale()), translator=_FlaskBabelConsent())


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
        "hint_step_apart": _("Only you in the picture, please: ask others to step aside"),
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
        # a capture that kept nothing because of the scene (engine.scene.scene_problem codes)
        "error_step_apart": _(
            "Someone else was in your picture. Please ask them to step aside and try again."
        ),
        "error_face_too_small": _("You were too far away. Please step closer and try again."),
        "error_face_cut_off": _(
            "Your face was at the edge of the picture. Please move to the middle and try again."
        ),
        "error_retake_limit": _("You have used all your photos."),
        "error_generic": _("Something went wrong. Please try again."),
        "error_session_active": _("Someone else's visit is still in progress. Please wait a moment."),
        "error_paused": _("The kiosk is paused by staff. Please ask for help."),
        # background and preset names
        "bg_studio-grey": _("Studio grey"),
        "bg_white": _("White"),
        "bg_blur": _("Blurred"),
        "bg_colour": _("Colour"),
        "bg_backdrop": _("Event backdrop"),
        "bg_off": _("Camera background"),
        "preset_square": _("Square"),
        "preset_portrait": _("Portrait"),
        "preset_badge": _("Badge"),
    }
