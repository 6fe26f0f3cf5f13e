"""The device's ``kiosk.toml``: device defaults (RAM store under /run, audit and plans under /var/lib) and a
small TOML writer that documents every key with its description from the config model."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel

from appliance.config import KioskConfig, parse_config
from provisioning import ProvisioningError
from provisioning.target import Target

if sys.version_info >= (3, 11):
    import tomllib
else:  # JetPack 6's Python 3.10 has no tomllib
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "AUDIT_DIR",
    "CONFIG_DIR",
    "CONFIG_PATH",
    "CONNECTIVITY_CHECK_PORT",
    "PLANS_DIR",
    "STAFF_DIR",
    "STATE_DIR",
    "STORE_DIR",
    "TLS_CERT",
    "TLS_DIR",
    "TLS_KEY",
    "device_config",
    "render_config_toml",
]

CONFIG_DIR = PurePosixPath("/etc/headshot-kiosk")
CONFIG_PATH = CONFIG_DIR / "kiosk.toml"
TLS_DIR = CONFIG_DIR / "tls"
TLS_CERT = TLS_DIR / "kiosk.pem"
TLS_KEY = TLS_DIR / "kiosk.key"
TLS_CA = TLS_DIR / "kiosk-ca.pem"
STATE_DIR = PurePosixPath("/var/lib/headshot-kiosk")
AUDIT_DIR = STATE_DIR / "audit"
PLANS_DIR = STATE_DIR / "plans"
# The staff console rewrites the accounts file (TOTP last step, lockout counters), and /etc is read-only for
# the service (ProtectSystem=strict), so the accounts live in the state directory, owner-only.
STAFF_DIR = STATE_DIR / "staff"
STORE_DIR = PurePosixPath("/run/headshot-kiosk")
# Where the kiosk answers the phones' connectivity checks on a device with TLS delivery (kiosk_ui.probes).
# Not port 80 itself: the kiosk runs unprivileged in a private user namespace (PrivateUsers=yes), where no
# capability can bind a port below 1024 on the host; the hotspot redirects the access point's port 80 here.
CONNECTIVITY_CHECK_PORT = 8080


def device_config(target: Target, *, public_host: str | None = None, tls: bool = False) -> KioskConfig:
    """The configuration ``apply`` installs when none is given: the laptop defaults moved to device paths.

    The camera is the first V4L2 node found on the device (the demo source if there is none; switch to
    ``source = "csi"`` for a Jetson CSI camera). With ``tls`` the delivery listener serves the network on
    ``public_host`` using the certificate ``provisioning tls`` installed, with the connectivity-check answers
    and the staff console beside it for staff phones; without it, all stay on loopback.
    """
    data: dict[str, Any] = {
        "store": {"path": str(STORE_DIR)},
        "audit": {"path": str(AUDIT_DIR)},
        "engine": {"models_dir": str(target.prefix / "models"), "plans_dir": str(PLANS_DIR)},
        "staff": {"accounts_path": str(STAFF_DIR / "accounts.json")},
    }
    if target.camera_devices:
        data["camera"] = {"source": "v4l2", "device": target.camera_devices[0]}
    if tls:
        if not public_host:
            raise ProvisioningError("a TLS delivery listener needs the kiosk's host name (public_host)")
        data["delivery"] = {
            "host": "0.0.0.0",  # noqa: S104 - phones on the kiosk's network connect here, over TLS only
            "public_host": public_host,
            "tls_cert_path": str(TLS_CERT),
            "tls_key_path": str(TLS_KEY),
            # Where the hotspot redirects the phones' port-80 connectivity checks (provisioning.hotspot).
            "connectivity_check_port": CONNECTIVITY_CHECK_PORT,
        }
        # The staff console on the same network for staff phones, with the same certificate (TLS only).
        data["staff"] = {
            **data["staff"],
            "host": "0.0.0.0",  # noqa: S104 - staff phones, TLS only
            "tls_cert_path": str(TLS_CERT),
            "tls_key_path": str(TLS_KEY),
        }
    return parse_config(data, source="<device defaults>")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ProvisioningError(f"cannot write the non-finite number {value!r} to TOML")
        return repr(value)
    if isinstance(value, str):
        # A JSON string is a valid TOML basic string for everything json.dumps emits (\", \\, \n, \uXXXX).
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table ([branding] colour_names); keys quoted as strings
        items = ", ".join(f"{_toml_value(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    raise ProvisioningError(f"cannot write a {type(value).__name__} to TOML")


def _section(name: str, model: BaseModel) -> list[str]:
    lines = [f"[{name}]"]
    dumped = model.model_dump(mode="json")
    fields = type(model).model_fields
    # The discriminator goes first so a reader sees which kind of camera the rest describes.
    order = sorted(fields, key=lambda key: key != "source")
    for key in order:
        description = fields[key].description
        if description:
            lines.append(f"# {description}")
        value = dumped[key]
        lines.append(f"# {key} = (unset)" if value is None else f"{key} = {_toml_value(value)}")
    return lines


def render_config_toml(config: KioskConfig) -> str:
    """The whole config as TOML, every key written out and commented. Round-trips to an equal config."""
    out = [
        "# Headshot kiosk configuration (rendered by `python -m provisioning apply`).",
        "# Edit freely: apply keeps an existing file; `python -m appliance check-config` validates it.",
    ]
    for name in type(config).model_fields:
        section = getattr(config, name)
        if not isinstance(section, BaseModel):
            raise ProvisioningError(f"config key {name} is not a section")
        out.append("")
        out.extend(_section(name, section))
    text = "\n".join(out) + "\n"
    _check_round_trip(text, config)
    return text


def _check_round_trip(text: str, config: KioskConfig) -> None:
    # The writer is small and hand-made: prove on every render that reading it back gives the same config.
    again = parse_config(tomllib.loads(text), source="<rendered>")
    if again != config:
        raise ProvisioningError("rendered kiosk.toml does not read back as the same config (writer bug)")


def read_text_if_exists(path: Path) -> str | None:
    """File text, or ``None`` when it does not exist."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
