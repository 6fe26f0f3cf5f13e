"""The kiosk's one config: a TOML file validated into a frozen ``KioskConfig``, plus ``check-config``."""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from appliance.branding import (
    PAGE_THEME,
    BrandingError,
    Logo,
    Theme,
    check_backdrop,
    check_theme,
    load_logo,
)
from engine.config import EngineConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # JetPack 6 ships Python 3.10, which has no tomllib
    # mypy checks this branch (python_version = 3.10) even where tomli is not installed (CI runs 3.11).
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "MAX_DELIVERY_WINDOW_MINUTES",
    "MAX_IDLE_TIMEOUT_SECONDS",
    "MAX_RECONNECT_ATTEMPTS",
    "AuditConfig",
    "BrandingConfig",
    "CameraConfig",
    "ConfigError",
    "CsiCameraConfig",
    "DeliveryConfig",
    "DemoCameraConfig",
    "DirectoryCameraConfig",
    "EventConfig",
    "KioskConfig",
    "PrintConfig",
    "SessionConfig",
    "StaffConfig",
    "StoreConfig",
    "UiConfig",
    "V4l2CameraConfig",
    "VideoCameraConfig",
    "is_loopback",
    "load_config",
    "parse_config",
    "summarize",
]

# Validation context key: the branding files (logo, backdrop) were checked already, by the main process.
FILES_CHECKED = "branding_files_checked"

# Legal upper bounds (DESIGN.md §2 and §7): validation refuses anything longer.
MAX_IDLE_TIMEOUT_SECONDS = 600  # 10 minutes of inactivity on any guest screen
MAX_DELIVERY_WINDOW_MINUTES = 60  # a delivery link never lives longer than an hour
MAX_RECONNECT_ATTEMPTS = 20

# A config file is a few KiB; refuse anything absurd before parsing it.
_MAX_CONFIG_BYTES = 1024 * 1024


class ConfigError(Exception):
    """The config file is unreadable or invalid.

    ``problems`` holds one line per problem, each starting with the dotted path of the offending key
    (``camera.width: Input should be ...``); ``str(error)`` lists them all under a heading.
    """

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems: tuple[str, ...] = tuple(problems)
        lines = "\n".join(f"  {problem}" for problem in self.problems)
        super().__init__(f"invalid kiosk config {source}:\n{lines}")


class _Strict(BaseModel):
    # Unknown keys are errors (a typo must not silently fall back to a default); values are immutable.
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------------------
# Reusable field types


def _check_bind_host(value: str) -> str:
    # Listeners bind to an address, not a name: a name could resolve differently tomorrow.
    if value == "localhost":
        return value
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(
            f"expected an IP address such as 127.0.0.1 or 0.0.0.0, or 'localhost'; got {value!r}"
        ) from None
    return value


def is_loopback(host: str) -> bool:
    """True if binding ``host`` keeps a listener reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_HOSTNAME_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def _check_public_host(value: str) -> str:
    # The value is pasted into https://<public_host>/d/... links: allow a DNS name or an IP, nothing else,
    # so a stray scheme, port, slash or space cannot end up in a QR code.
    try:
        ipaddress.ip_address(value)
    except ValueError:
        pass
    else:
        return value
    labels = value.rstrip(".").split(".")
    if len(value) > 253 or not all(_HOSTNAME_LABEL.fullmatch(label) for label in labels):
        raise ValueError(
            f"expected a DNS host name such as kiosk.local (no scheme, port or path); got {value!r}"
        )
    return value


_HEX_COLOUR = re.compile(r"^#[0-9A-Fa-f]{6}$")
# "backdrop" is the event's image, [branding] backdrop: offered only where that key is set (KioskConfig).
_NAMED_BACKGROUNDS = ("studio-grey", "white", "blur", "backdrop")


def _check_background(value: str) -> str:
    if value in _NAMED_BACKGROUNDS or _HEX_COLOUR.fullmatch(value):
        return value
    raise ValueError(f"expected one of {', '.join(_NAMED_BACKGROUNDS)} or a colour '#RRGGBB'; got {value!r}")


def _check_colour_names(value: dict[str, str]) -> dict[str, str]:
    # Keys are compared upper-case with event.backgrounds; the names are shown to guests, so no control
    # characters and no bare hex code (a name must say something to a person).
    problems = []
    names: dict[str, str] = {}
    for colour, name in value.items():
        if not _HEX_COLOUR.fullmatch(colour):
            problems.append(f"{colour!r} is not a colour '#RRGGBB'")
            continue
        if not name.strip() or len(name) > 40 or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
            problems.append(f"the name of {colour} must be 1 to 40 printable characters")
        elif _HEX_COLOUR.fullmatch(name.strip()):
            problems.append(f"the name of {colour} must be words guests understand, not a colour code")
        if colour.upper() in names:
            problems.append(f"{colour} is named twice")
        names[colour.upper()] = name.strip()
    if problems:
        raise ValueError("; ".join(problems))
    return names


def _unique(values: tuple[str, ...]) -> tuple[str, ...]:
    if len(set(values)) != len(values):
        raise ValueError("values must not repeat")
    return values


def _check_printable(value: str) -> str:
    # Shown on the touch screen and in the staff console; control characters have no business there.
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError("must not contain control characters")
    return value


BindHost = Annotated[str, AfterValidator(_check_bind_host)]
Colour = Annotated[str, Field(pattern=r"^#[0-9A-Fa-f]{6}$")]
Port = Annotated[int, Field(ge=1, le=65535)]
Background = Annotated[str, AfterValidator(_check_background)]
Preset = Literal["square", "portrait", "badge"]
Language = Literal["en", "fr", "es", "de"]
# Optional yes/no choices an event may offer on the consent screen; each changes what is done to the photo,
# and its wording lives with the consent texts (appliance.consent) so the receipt's hash covers it.
ConsentChoice = Literal["skin_smoothing"]


# --------------------------------------------------------------------------------------------------
# [camera]: a discriminated union on `source`; the value matches the module that implements it.


class _CameraCommon(_Strict):
    reconnect_attempts: int = Field(
        default=5,
        ge=0,
        le=MAX_RECONNECT_ATTEMPTS,
        description="Re-open attempts after a failed read before the camera is reported failed (count).",
    )
    reconnect_delay_seconds: float = Field(
        default=1.0, ge=0, le=30, description="Pause before each re-open attempt (seconds)."
    )


class DemoCameraConfig(_CameraCommon):
    """Bundled public-domain portraits with gentle motion; needs no hardware."""

    source: Literal["demo"] = "demo"
    width: int = Field(default=1280, ge=64, le=3840, description="Frame width (pixels).")
    height: int = Field(default=720, ge=64, le=2160, description="Frame height (pixels).")
    # 30, as the kiosk cameras deliver: the live preview then runs as it does on a device (issue 14).
    fps: float = Field(
        default=30.0, gt=0, le=60, description="Frame rate the source is paced to (frames per second)."
    )
    seconds_per_portrait: float = Field(
        default=12.0,
        gt=0,
        le=3600,
        description="How long each bundled portrait is shown before the next (seconds).",
    )


class DirectoryCameraConfig(_CameraCommon):
    """JPEG/PNG files of a directory, in name order, looped; for tests and offline demos."""

    source: Literal["directory"]
    path: Path = Field(description="Directory holding .jpg/.jpeg/.png files.")
    fps: float = Field(
        default=15.0, gt=0, le=60, description="Frame rate the source is paced to (frames per second)."
    )
    frames_per_image: int = Field(
        default=1,
        ge=1,
        le=100_000,
        description="Consecutive frames that repeat one image before the next (count).",
    )
    max_image_megapixels: float = Field(
        default=50.0, gt=0, le=200, description="Files above this pixel count are skipped (megapixels)."
    )
    max_file_mib: float = Field(
        default=40.0, gt=0, le=200, description="Files above this size are skipped (MiB)."
    )


class VideoCameraConfig(_CameraCommon):
    """A video file decoded with OpenCV (FFmpeg), looped."""

    source: Literal["video"]
    path: Path = Field(description="Video file, e.g. an .avi or .mp4.")
    fps: float | None = Field(
        default=None,
        gt=0,
        le=120,
        description="Playback rate (frames per second); unset = the file's own rate.",
    )
    loop: bool = Field(default=True, description="Start again at the end of the file instead of failing.")


class V4l2CameraConfig(_CameraCommon):
    """A USB (UVC) camera through Video4Linux2."""

    source: Literal["v4l2"]
    device: str = Field(default="/dev/video0", pattern=r"^/dev/\S+$", description="V4L2 device node.")
    width: int = Field(default=1280, ge=64, le=7680, description="Requested frame width (pixels).")
    height: int = Field(default=720, ge=64, le=4320, description="Requested frame height (pixels).")
    fps: float = Field(default=30.0, gt=0, le=120, description="Requested frame rate (frames per second).")
    fourcc: str = Field(
        default="MJPG",
        pattern=r"^[A-Z0-9]{4}$",
        description="Pixel format; MJPG lets USB 2 cameras deliver 720p/1080p at full rate.",
    )
    read_timeout_seconds: int = Field(
        default=2, ge=1, le=30, description="A read that waits longer than this fails (whole seconds)."
    )


class CsiCameraConfig(_CameraCommon):
    """A MIPI CSI camera on a Jetson through GStreamer's nvarguscamerasrc."""

    source: Literal["csi"]
    sensor_id: int = Field(default=0, ge=0, le=7, description="nvarguscamerasrc sensor-id (index).")
    width: int = Field(default=1920, ge=64, le=7680, description="Capture width (pixels).")
    height: int = Field(default=1080, ge=64, le=4320, description="Capture height (pixels).")
    fps: int = Field(default=30, ge=1, le=120, description="Capture frame rate (frames per second).")
    flip_method: int = Field(
        default=0,
        ge=0,
        le=7,
        description="nvvidconv flip-method: 0 none, 2 rotate 180, 4 mirror, see nvvidconv docs.",
    )
    probe_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="Limit for the gst-inspect-1.0 check run before opening (seconds).",
    )
    read_timeout_seconds: float = Field(
        default=2.0, gt=0, le=30, description="A read that waits longer than this fails (seconds)."
    )


CameraConfig = Annotated[
    DemoCameraConfig | DirectoryCameraConfig | VideoCameraConfig | V4l2CameraConfig | CsiCameraConfig,
    Field(discriminator="source"),
]
_CAMERA_TAGS = frozenset({"demo", "directory", "video", "v4l2", "csi"})


# --------------------------------------------------------------------------------------------------
# The other sections


def _default_store_path() -> Path:
    # /dev/shm is a tmpfs every Linux user may write to, so the demo works unprivileged and still keeps
    # ciphertext in RAM. The uid keeps two users of one laptop apart. The device config sets /run/... (a
    # size-capped, noswap tmpfs made by provisioning).
    return Path("/dev/shm") / f"headshot-kiosk-{os.getuid()}"  # noqa: S108 - private name, checked by the store


def _default_audit_path() -> Path:
    # Anonymous consent receipts must survive a reboot, so they live on disk (never in the RAM store).
    return Path.home() / ".local" / "state" / "headshot-kiosk" / "audit"


class StoreConfig(_Strict):
    """The encrypted RAM store (a tmpfs holding ciphertext only)."""

    path: Path = Field(default_factory=_default_store_path, description="Root directory of the RAM store.")
    size_mib: int = Field(default=256, ge=16, le=16384, description="tmpfs size cap (MiB).")

    @model_validator(mode="after")
    def _absolute(self) -> StoreConfig:
        if not self.path.is_absolute():
            raise ValueError(f"store.path must be an absolute path; got {str(self.path)!r}")
        return self


class UiConfig(_Strict):
    """The guest touch UI; served to the kiosk's own browser only."""

    host: BindHost = Field(
        default="127.0.0.1", description="Bind address; must be loopback (no TLS on this listener)."
    )
    port: Port = Field(default=8080, description="TCP port.")

    @model_validator(mode="after")
    def _loopback_only(self) -> UiConfig:
        # The touch UI has no TLS and no login: it must not be reachable from the network (STYLE.md §8).
        if not is_loopback(self.host):
            raise ValueError(f"ui.host must be a loopback address such as 127.0.0.1; got {self.host!r}")
        return self


class DeliveryConfig(_Strict):
    """The phone-facing listener that serves one-time download links."""

    host: BindHost = Field(
        default="127.0.0.1",
        description="Bind address; 0.0.0.0 serves the kiosk's network and then requires TLS.",
    )
    port: Port = Field(default=8443, description="TCP port.")
    public_host: Annotated[str, AfterValidator(_check_public_host)] = Field(
        default="localhost", description="Host name phones use; written into the QR link."
    )
    window_minutes: int = Field(
        default=10,
        ge=1,
        le=MAX_DELIVERY_WINDOW_MINUTES,
        description="A delivery link works once within this many minutes (legal bound 60).",
    )
    tls_cert_path: Path | None = Field(default=None, description="PEM certificate chain file.")
    tls_key_path: Path | None = Field(
        default=None, description="PEM private key file (mode 0600; a path, never the key)."
    )
    connectivity_check_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Plain-HTTP port on delivery.host answering phones' connectivity checks (Android, Apple, "
        "Windows) so they stay on the kiosk's Wi-Fi; the hotspot redirects port 80 here. 0: off.",
    )
    wifi_qr_path: Path | None = Field(
        default=Path("/etc/headshot-kiosk/wifi.qr"),
        description="The hotspot's WIFI: text (written by provisioning hotspot); while the file exists the "
        "delivery screen first shows how to join that network. None: never.",
    )

    @model_validator(mode="after")
    def _tls_rules(self) -> DeliveryConfig:
        problems = []
        if (self.tls_cert_path is None) != (self.tls_key_path is None):
            problems.append("delivery.tls_cert_path and delivery.tls_key_path must be set together")
        elif not is_loopback(self.host) and self.tls_cert_path is None:
            # Invariant 6: links are served over TLS on the network; plain HTTP only for a loopback demo.
            problems.append(
                f"delivery.host {self.host!r} is reachable from the network, so delivery.tls_cert_path and "
                "delivery.tls_key_path are required"
            )
        if problems:
            raise ValueError("\n".join(problems))
        return self


class SessionConfig(_Strict):
    """Timing and limits of one guest session (consent to wipe)."""

    consent_idle_timeout_seconds: float = Field(
        default=60,
        gt=0,
        le=MAX_IDLE_TIMEOUT_SECONDS,
        description="Inactivity on the consent screen before wipe (s).",
    )
    preview_idle_timeout_seconds: float = Field(
        default=90,
        gt=0,
        le=MAX_IDLE_TIMEOUT_SECONDS,
        description="Inactivity in the live preview before wipe (s).",
    )
    review_idle_timeout_seconds: float = Field(
        default=120,
        gt=0,
        le=MAX_IDLE_TIMEOUT_SECONDS,
        description="Inactivity on the review screen before wipe (s).",
    )
    delivery_idle_timeout_seconds: float = Field(
        default=120,
        gt=0,
        le=MAX_IDLE_TIMEOUT_SECONDS,
        description="Inactivity on the QR screen before wipe (s).",
    )
    # 20 s at least by default (issue 14.2, WCAG 2.2.1 "Timing Adjustable"): time to notice, read or
    # hear the warning and reach "I need more time", which restarts the phase's idle timer.
    idle_warning_seconds: float = Field(
        default=20,
        gt=0,
        le=120,
        description="The 'still there?' warning shows this long before an idle timeout (s).",
    )
    capture_timeout_seconds: float = Field(
        default=20,
        gt=0,
        le=MAX_IDLE_TIMEOUT_SECONDS,
        description="Countdown plus capture must finish within this, else the session fails and wipes (s).",
    )
    processing_timeout_seconds: float = Field(
        default=60,
        gt=0,
        le=MAX_IDLE_TIMEOUT_SECONDS,
        description="Rendering the headshots must finish within this, else the session fails and wipes (s).",
    )
    max_takes: int = Field(
        default=3, ge=1, le=10, description="Captures per session, the first included (count)."
    )
    countdown_seconds: int = Field(
        default=3, ge=0, le=10, description="Countdown shown before a capture (seconds)."
    )
    capture_burst_frames: int = Field(
        default=5, ge=1, le=30, description="Frames grabbed per capture; the sharpest one is kept (count)."
    )

    @model_validator(mode="after")
    def _timing_rules(self) -> SessionConfig:
        problems = [
            f"session.idle_warning_seconds ({self.idle_warning_seconds:g}) must be shorter than "
            f"session.{name} ({value:g})"
            for name, value in (
                ("consent_idle_timeout_seconds", self.consent_idle_timeout_seconds),
                ("preview_idle_timeout_seconds", self.preview_idle_timeout_seconds),
                ("review_idle_timeout_seconds", self.review_idle_timeout_seconds),
                ("delivery_idle_timeout_seconds", self.delivery_idle_timeout_seconds),
            )
            if self.idle_warning_seconds >= value
        ]
        if self.capture_timeout_seconds <= self.countdown_seconds:
            problems.append(
                f"session.capture_timeout_seconds ({self.capture_timeout_seconds:g}) must be longer than "
                f"session.countdown_seconds ({self.countdown_seconds})"
            )
        if problems:
            raise ValueError("\n".join(problems))
        return self


class StaffConfig(_Strict):
    """The staff console (health, unstick, abort; never guest photos)."""

    host: BindHost = Field(default="127.0.0.1", description="Bind address; non-loopback requires TLS paths.")
    port: Port = Field(default=8090, description="TCP port.")
    accounts_path: Path = Field(
        default=Path("/etc/headshot-kiosk/staff-accounts.json"),
        description="Staff accounts (argon2id hashes, TOTP secrets) written by provisioning, mode 0600.",
    )
    tls_cert_path: Path | None = Field(default=None, description="PEM certificate chain file.")
    tls_key_path: Path | None = Field(
        default=None, description="PEM private key file (mode 0600; a path, never the key)."
    )

    @model_validator(mode="after")
    def _tls_rules(self) -> StaffConfig:
        if (self.tls_cert_path is None) != (self.tls_key_path is None):
            raise ValueError("staff.tls_cert_path and staff.tls_key_path must be set together")
        if not is_loopback(self.host) and self.tls_cert_path is None:
            # Staff passwords and TOTP codes must never cross the network in clear text.
            raise ValueError(
                f"staff.host {self.host!r} is reachable from the network, so staff.tls_cert_path and "
                "staff.tls_key_path are required"
            )
        return self


class AuditConfig(_Strict):
    """Where anonymous consent receipts are kept (no image, no name: DESIGN.md §2 invariant 7)."""

    path: Path = Field(
        default_factory=_default_audit_path,
        description="Directory of the consent-receipt audit log (on disk).",
    )


class EventConfig(_Strict):
    """What this event offers the guest."""

    name: Annotated[str, AfterValidator(_check_printable)] = Field(
        default="Headshot kiosk", min_length=1, max_length=80, description="Shown on the attract screen."
    )
    backgrounds: Annotated[tuple[Background, ...], AfterValidator(_unique)] = Field(
        default=("studio-grey", "white", "blur"),
        min_length=1,
        max_length=8,
        description="Offered backgrounds: studio-grey, white, blur, '#RRGGBB' or backdrop "
        "(branding.backdrop); first is the default.",
    )
    presets: Annotated[tuple[Preset, ...], AfterValidator(_unique)] = Field(
        default=("square", "portrait", "badge"),
        min_length=1,
        description="Offered crop presets; first is the default.",
    )
    languages: Annotated[tuple[Language, ...], AfterValidator(_unique)] = Field(
        default=("en", "fr", "es", "de"),
        min_length=1,
        description="Offered UI languages; first is the default.",
    )
    consent_choices: Annotated[tuple[ConsentChoice, ...], AfterValidator(_unique)] = Field(
        default=(),
        description=(
            "Optional yes/no choices on the consent screen, unticked until the guest ticks them; each "
            "answer is recorded on the receipt. skin_smoothing = light smoothing restricted to skin (when "
            "offered, it replaces engine.skin_smoothing for the visit). Empty: the receipt records that "
            "no choice was offered."
        ),
    )
    policy_version: str = Field(
        default="2025-01",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$",
        description="Version of the privacy notice the guest consents to; recorded on each receipt.",
    )


class BrandingConfig(_Strict):
    """The event's brand on the guest screens (issue 14.3): a logo, the page's colours, names for brand
    colour backgrounds and a backdrop image. Files are checked when the config is loaded
    (``appliance.branding``); a refused one is a config error naming the key and why."""

    logo: Path | None = Field(
        default=None,
        description="PNG or SVG shown on the attract screen and the top bar (at most 512 KiB and 2048 px a "
        "side; an SVG keeps plain drawing only: no script, style, link or embedded image).",
    )
    background: Colour = Field(default=PAGE_THEME.background, description="Page background ('#RRGGBB').")
    text: Colour = Field(
        default=PAGE_THEME.text, description="Text colour; at least 4.5:1 against background (WCAG 2.2 AA)."
    )
    accent: Colour = Field(
        default=PAGE_THEME.accent,
        description=(
            "Fill of the main buttons and the chosen options; at least 3:1 against background and its panels."
        ),
    )
    on_accent: Colour = Field(
        default=PAGE_THEME.on_accent, description="Text on the accent; at least 4.5:1 against accent."
    )
    colour_names: Annotated[dict[str, str], AfterValidator(_check_colour_names)] = Field(
        default_factory=dict,
        description="Names guests see for the '#RRGGBB' backgrounds of event.backgrounds, e.g. "
        '{ "#1F4E79" = "Event blue" }; an unnamed colour is called \'Colour\' (translated), never its code.',
    )
    backdrop: Path | None = Field(
        default=None,
        description="JPEG or PNG offered as the background 'backdrop' (at most 20 MiB and 40 MP, at least "
        "320 px a side), scaled and cropped to fill the headshot. List 'backdrop' in event.backgrounds.",
    )
    backdrop_name: Annotated[str, AfterValidator(_check_printable)] | None = Field(
        default=None,
        min_length=1,
        max_length=40,
        description="Name guests see for the backdrop; unset: 'Event backdrop' (translated).",
    )
    _logo: Logo | None = PrivateAttr(default=None)

    @property
    def theme(self) -> Theme:
        return Theme(
            background=self.background.lower(),
            text=self.text.lower(),
            accent=self.accent.lower(),
            on_accent=self.on_accent.lower(),
        )

    @property
    def themed(self) -> bool:
        """True when the colours differ from the page's own (kiosk.css needs no override then)."""
        return self.theme != PAGE_THEME

    @property
    def logo_image(self) -> Logo | None:
        """The checked logo (re-encoded PNG or reduced SVG) read when the config was loaded."""
        return self._logo

    @model_validator(mode="after")
    def _check_files_and_contrast(self, info: ValidationInfo) -> BrandingConfig:
        problems = check_theme(self.theme, prefix="branding.")
        if info.context and info.context.get(FILES_CHECKED):
            # A session worker re-validating the main process's config: the files were checked there
            # (the worker reads the backdrop itself); a logo replaced since must not stop a visit.
            if problems:
                raise ValueError("\n".join(problems))
            return self
        if self.logo is not None:
            try:
                self._logo = load_logo(self.logo)
            except BrandingError as exc:
                problems.append(f"branding.logo: {exc}")
        if self.backdrop is not None:
            try:
                check_backdrop(self.backdrop)
            except BrandingError as exc:
                problems.append(f"branding.backdrop: {exc}")
        if problems:
            raise ValueError("\n".join(problems))
        return self


# Dye-sub printers Gutenprint drives (its driver names, ``gutenprint.5.3://<model>/expert``): the DNP
# DS620 and DS-RX1HS out of the box; the Mitsubishi CP-D70/D80 need Mitsubishi's image-processing library
# in the print path (docs/PRINTING.md).
PrinterModel = Literal["dnp-ds620", "dnp-dsrx1", "mitsubishi-d70dw", "mitsubishi-d80dw"]
_QUEUE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"


class PrintConfig(_Strict):
    """Printing at the booth (optional, off by default): CUPS + Gutenprint to a dye-sub printer, the job
    held in RAM only and purged when it ends or the visit does."""

    enabled: bool = Field(
        default=False,
        description="Offer a Print button on the review screen (the consent text then mentions printing).",
    )
    layout: Literal["postcard", "badges"] = Field(
        default="postcard",
        description="postcard = the headshot on a 4x6 in page with the event's name in a brand-coloured "
        "band; badges = four 3:4 badge photos on one 4x6 in page, with the same band.",
    )
    brand_colour: Annotated[str, Field(pattern=r"^#[0-9A-Fa-f]{6}$")] = Field(
        default="#1F2937", description="Colour of the band carrying the event's name ('#RRGGBB')."
    )
    copies_per_guest: int = Field(
        default=1, ge=1, le=4, description="Prints one guest may make (each press of Print is one page)."
    )
    max_prints_per_event: int = Field(
        default=300,
        ge=1,
        le=100_000,
        description="Prints the kiosk makes in all until it is restarted; then Print is refused (pages).",
    )
    queue: str = Field(
        default="headshot-kiosk",
        pattern=_QUEUE_NAME,
        description="Name of the CUPS queue provisioning creates and the kiosk prints to.",
    )
    model: PrinterModel = Field(
        default="dnp-ds620",
        description="Printer model, as Gutenprint names it: dnp-ds620, dnp-dsrx1 (DS-RX1HS), "
        "mitsubishi-d70dw, mitsubishi-d80dw.",
    )
    device_uri: str | None = Field(
        default=None,
        max_length=512,
        pattern=r"^[a-z0-9+]+:\S*$",
        description="The queue's CUPS device URI (lpinfo -v); unset: provisioning picks the first printer "
        "Gutenprint's USB backend finds for the model.",
    )
    cups_socket: Path = Field(
        default=Path("/run/cups/cups.sock"),
        description="CUPS's local socket; the only way the kiosk talks to CUPS (no network listener).",
    )
    job_timeout_seconds: float = Field(
        default=180,
        ge=10,
        le=MAX_IDLE_TIMEOUT_SECONDS,
        description="A print not finished by then is cancelled, purged and reported failed (s).",
    )

    @model_validator(mode="after")
    def _absolute_socket(self) -> PrintConfig:
        if not self.cups_socket.is_absolute():
            raise ValueError(f"print.cups_socket must be an absolute path; got {str(self.cups_socket)!r}")
        return self


# --------------------------------------------------------------------------------------------------
# The whole file


def _default_engine() -> EngineConfig:
    # EngineConfig declares its defaults positionally, which type checkers don't read as defaults.
    return EngineConfig.model_validate({})


class KioskConfig(_Strict):
    """The whole ``kiosk.toml``; ``KioskConfig()`` is a working laptop demo (demo camera, store in /dev/shm).

    Cross-section rules run only once every section is valid on its own.
    """

    camera: CameraConfig = Field(default_factory=DemoCameraConfig, description="Which camera source to use.")
    store: StoreConfig = Field(default_factory=StoreConfig)
    ui: UiConfig = Field(default_factory=UiConfig)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    session: SessionConfig = Field(default_factory=SessionConfig)
    engine: EngineConfig = Field(default_factory=_default_engine)
    staff: StaffConfig = Field(default_factory=StaffConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    event: EventConfig = Field(default_factory=EventConfig)
    branding: BrandingConfig = Field(
        default_factory=BrandingConfig, description="The event's logo, colours and backdrop."
    )
    print: PrintConfig = Field(default_factory=PrintConfig, description="Optional printing at the booth.")

    @model_validator(mode="after")
    def _cross_section_rules(self) -> KioskConfig:
        problems = []
        listeners = {
            "ui.port": self.ui.port,
            "delivery.port": self.delivery.port,
            "staff.port": self.staff.port,
        }
        seen: dict[int, str] = {}
        for name, port in listeners.items():
            if port in seen:
                problems.append(f"{seen[port]} and {name} must differ (both are {port})")
            else:
                seen[port] = name
        # The RAM store is swept at start-up and the audit log must survive: neither may contain the other.
        store, audit = self.store.path, self.audit.path
        if store == audit or store in audit.parents or audit in store.parents:
            problems.append(f"store.path and audit.path must not overlap ({str(store)!r}, {str(audit)!r})")
        if "backdrop" in self.event.backgrounds and self.branding.backdrop is None:
            problems.append("event.backgrounds offers 'backdrop', so branding.backdrop must name its image")
        if problems:
            raise ValueError("\n".join(problems))
        return self


# --------------------------------------------------------------------------------------------------
# Loading


def _dotted(loc: tuple[int | str, ...]) -> str:
    parts = list(loc)
    # Pydantic reports fields of a discriminated union under the tag (camera.v4l2.width); the TOML key the
    # operator wrote is camera.width, so drop the tag.
    if len(parts) >= 2 and parts[0] == "camera" and parts[1] in _CAMERA_TAGS:
        del parts[1]
    return ".".join(str(part) for part in parts)


def _problems(error: ValidationError) -> list[str]:
    problems: list[str] = []
    for item in error.errors(include_url=False, include_input=False):
        message = str(item["msg"])
        if item["type"] == "value_error":
            # Our validators already name the keys; drop pydantic's "Value error, " prefix.
            message = message.removeprefix("Value error, ")
        path = _dotted(tuple(item["loc"]))
        for line in message.splitlines():
            # Cross-field messages already start with the dotted keys they name; don't repeat the section.
            named = not path or line.startswith(f"{path}.")
            problems.append(line if named else f"{path}: {line}")
    return problems


def parse_config(data: dict[str, Any], *, source: str = "<dict>") -> KioskConfig:
    """Validate an already-parsed TOML table; raise ``ConfigError`` listing every problem."""
    try:
        return KioskConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, _problems(exc)) from None


def load_config(path: Path | None) -> KioskConfig:
    """Read and validate ``path``; ``None`` gives the defaults (a working laptop demo).

    Raises ``ConfigError`` for an unreadable file, a TOML syntax error (its message carries line and
    column) or invalid values; the error lists every problem by dotted key path.
    """
    if path is None:
        return KioskConfig()
    source = str(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(_MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(source, [f"cannot read the file: {exc.strerror or type(exc).__name__}"]) from None
    if len(raw) > _MAX_CONFIG_BYTES:
        raise ConfigError(source, [f"file is larger than {_MAX_CONFIG_BYTES} bytes; is it the right file?"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(source, [f"not UTF-8 text (byte {exc.start})"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # The message ends with "(at line L, column C)".
        raise ConfigError(source, [f"TOML syntax error: {exc}"]) from None
    return parse_config(data, source=source)


def summarize(config: KioskConfig) -> str:
    """One line for logs and ``check-config``: no secrets, no file paths of images."""
    camera = config.camera
    if isinstance(camera, (DemoCameraConfig, V4l2CameraConfig, CsiCameraConfig)):
        camera_text = f"{camera.source} {camera.width}x{camera.height}@{camera.fps:g}fps"
    else:
        camera_text = camera.source
    delivery = config.delivery
    tls = "on" if delivery.tls_cert_path is not None else "off"
    return (
        f"camera={camera_text}, store={config.store.path} ({config.store.size_mib} MiB), "
        f"ui={config.ui.host}:{config.ui.port}, "
        f"delivery={delivery.host}:{delivery.port} tls={tls} public_host={delivery.public_host} "
        f"window={delivery.window_minutes}min, staff={config.staff.host}:{config.staff.port}, "
        f"engine={config.engine.backend}, languages={','.join(config.event.languages)}, "
        f"policy={config.event.policy_version}"
    )
