"""The kiosk config: defaults, the example file, every error by dotted path, check-config."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from appliance.cli.check_config import check_config_main
from appliance.config import (
    MAX_DELIVERY_WINDOW_MINUTES,
    MAX_IDLE_TIMEOUT_SECONDS,
    ConfigError,
    CsiCameraConfig,
    DemoCameraConfig,
    DirectoryCameraConfig,
    KioskConfig,
    SessionConfig,
    V4l2CameraConfig,
    VideoCameraConfig,
    load_config,
    parse_config,
)

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "kiosk.toml"
IDLE_KEYS = (
    "consent_idle_timeout_seconds",
    "preview_idle_timeout_seconds",
    "review_idle_timeout_seconds",
    "delivery_idle_timeout_seconds",
)
CAMERA_MODELS: dict[str, type[BaseModel]] = {
    "demo": DemoCameraConfig,
    "directory": DirectoryCameraConfig,
    "video": VideoCameraConfig,
    "v4l2": V4l2CameraConfig,
    "csi": CsiCameraConfig,
}


def problems_of(data: dict[str, Any]) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return info.value.problems


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kiosk.toml"
    path.write_text(text, encoding="utf-8")
    return path


def plain(value: object) -> object:
    """A config value as TOML would spell it."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [plain(item) for item in value]
    return value


def camera_alternatives() -> dict[str, dict[str, Any]]:
    """The commented-out ``# --- camera alternative: NAME ---`` blocks of the example, parsed as TOML."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        marker = re.match(r"^# --- camera alternative: (\w+)", line)
        if marker:
            current = blocks.setdefault(marker.group(1), [])
        elif current is not None and (setting := re.match(r"^# (\w+ = .*)$", line)):
            current.append(setting.group(1))
        elif not line.startswith("#"):
            current = None
    return {name: tomllib.loads("\n".join(lines)) for name, lines in blocks.items()}


# --------------------------------------------------------------------------------------------------
# Defaults and the example file


def test_defaults_give_a_working_laptop_demo() -> None:
    config = load_config(None)
    assert config == KioskConfig()
    assert isinstance(config.camera, DemoCameraConfig)
    assert config.ui.host == "127.0.0.1"
    assert config.delivery.host == "127.0.0.1"  # no TLS needed without a network listener
    assert config.staff.host == "127.0.0.1"
    # RAM, and writable without root.
    assert config.store.path.parent == Path("/dev/shm")
    assert config.delivery.window_minutes == 10


def test_config_is_frozen() -> None:
    config = KioskConfig()
    with pytest.raises(ValidationError):
        config.ui.port = 1


def test_example_is_valid() -> None:
    config = load_config(EXAMPLE)
    assert isinstance(config.camera, CsiCameraConfig)
    assert config.delivery.public_host == "kiosk.local"


def test_every_key_of_the_example_round_trips() -> None:
    raw = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    config = load_config(EXAMPLE)
    checked = 0
    for section, table in raw.items():
        model = getattr(config, section)
        for key, value in table.items():
            assert plain(getattr(model, key)) == value, f"{section}.{key}"
            checked += 1
    assert checked > 40


@pytest.mark.parametrize("source", ["demo", "directory", "video", "v4l2"])
def test_each_commented_camera_alternative_of_the_example_is_valid(source: str) -> None:
    table = camera_alternatives()[source]
    config = parse_config({"camera": table})
    assert config.camera.source == source
    for key, value in table.items():
        assert plain(getattr(config.camera, key)) == value, f"camera.{key}"


def test_example_documents_every_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    documented = set(re.findall(r"^#? ?(\w+) = ", text, flags=re.MULTILINE))
    sections = {name: field.annotation for name, field in KioskConfig.model_fields.items()}
    for section, model in sections.items():
        if section == "camera":
            continue
        assert isinstance(model, type) and issubclass(model, BaseModel)
        assert f"[{section}]" in text
        for key in model.model_fields:
            assert key in documented, f"{section}.{key} is not in examples/kiosk.toml"
    for source, camera_model in CAMERA_MODELS.items():
        for key in camera_model.model_fields:
            assert key in documented, f"camera.{key} ({source}) is not in examples/kiosk.toml"


def test_every_kiosk_field_has_a_description() -> None:
    models: list[type[BaseModel]] = [*CAMERA_MODELS.values()]
    for name, field in KioskConfig.model_fields.items():
        if name not in ("camera", "engine"):  # engine.config is composed, not ours
            assert isinstance(field.annotation, type)
            models.append(field.annotation)
    for model in models:
        for key, field in model.model_fields.items():
            if key == "source":
                continue
            assert field.description, f"{model.__name__}.{key} has no description"


# --------------------------------------------------------------------------------------------------
# Errors by dotted path


def test_unknown_key_is_an_error_with_its_dotted_path() -> None:
    assert problems_of({"session": {"idle_timeout": 5}}) == (
        "session.idle_timeout: Extra inputs are not permitted",
    )


def test_unknown_section_is_an_error() -> None:
    assert problems_of({"cameras": {}}) == ("cameras: Extra inputs are not permitted",)


def test_unknown_camera_source_names_the_tag_and_the_choices() -> None:
    (problem,) = problems_of({"camera": {"source": "usb"}})
    assert problem.startswith(
        "camera: Input tag 'usb' found using 'source' does not match any of the expected tags"
    )
    for tag in CAMERA_MODELS:
        assert f"'{tag}'" in problem


def test_camera_field_errors_use_the_key_the_operator_wrote() -> None:
    problems = problems_of({"camera": {"source": "v4l2", "width": "wide", "zoom": 2}})
    assert any(p.startswith("camera.width: ") for p in problems)
    assert "camera.zoom: Extra inputs are not permitted" in problems
    assert not any("v4l2." in p for p in problems)


def test_directory_camera_requires_a_path() -> None:
    assert problems_of({"camera": {"source": "directory"}}) == ("camera.path: Field required",)


def test_delivery_window_above_the_legal_bound() -> None:
    problems = problems_of({"delivery": {"window_minutes": MAX_DELIVERY_WINDOW_MINUTES + 1}})
    assert problems == ("delivery.window_minutes: Input should be less than or equal to 60",)


@pytest.mark.parametrize("key", IDLE_KEYS)
def test_idle_timeout_above_the_legal_bound(key: str) -> None:
    problems = problems_of({"session": {key: MAX_IDLE_TIMEOUT_SECONDS + 1}})
    assert problems == (f"session.{key}: Input should be less than or equal to 600",)


def test_reconnect_attempts_are_bounded() -> None:
    problems = problems_of({"camera": {"source": "demo", "reconnect_attempts": 21}})
    assert problems == ("camera.reconnect_attempts: Input should be less than or equal to 20",)


def test_every_problem_is_listed_together() -> None:
    data = {
        "camera": {"source": "usb"},
        "session": {"idle_timeout": 3, "review_idle_timeout_seconds": 601},
        "delivery": {"window_minutes": 61},
        "event": {"languages": ["en", "it"], "presets": ["square", "square"]},
        "ui": {"port": 0},
    }
    with pytest.raises(ConfigError) as info:
        parse_config(data, source="kiosk.toml")
    paths = [problem.split(":", 1)[0] for problem in info.value.problems]
    assert sorted(paths) == sorted(
        [
            "camera",
            "session.idle_timeout",
            "session.review_idle_timeout_seconds",
            "delivery.window_minutes",
            "event.languages.1",
            "event.presets",
            "ui.port",
        ]
    )
    message = str(info.value)
    assert message.startswith("invalid kiosk config kiosk.toml:\n")
    assert len(message.splitlines()) == 1 + len(paths)


@pytest.mark.parametrize(
    ("data", "names"),
    [
        (
            {"delivery": {"host": "0.0.0.0"}},
            ("delivery.host", "delivery.tls_cert_path", "delivery.tls_key_path"),
        ),
        ({"delivery": {"tls_cert_path": "/etc/c.crt"}}, ("delivery.tls_cert_path", "delivery.tls_key_path")),
        ({"staff": {"host": "0.0.0.0"}}, ("staff.host", "staff.tls_cert_path")),
        (
            {"session": {"idle_warning_seconds": 60}},
            ("session.idle_warning_seconds", "consent_idle_timeout_seconds"),
        ),
        (
            {"session": {"capture_timeout_seconds": 3, "countdown_seconds": 5}},
            ("session.capture_timeout_seconds", "session.countdown_seconds"),
        ),
        ({"staff": {"port": 8080}}, ("ui.port", "staff.port")),
        ({"store": {"path": "/srv/k"}, "audit": {"path": "/srv/k/audit"}}, ("store.path", "audit.path")),
    ],
)
def test_cross_field_rules_name_both_fields(data: dict[str, Any], names: tuple[str, ...]) -> None:
    problems = problems_of(data)
    assert len(problems) == 1
    for name in names:
        assert name in problems[0]


def test_idle_warning_is_checked_against_each_timeout() -> None:
    problems = problems_of({"session": {"idle_warning_seconds": 100}})
    assert len(problems) == 2  # consent (60) and preview (90); review and delivery are 120
    assert all(
        p.startswith("session.idle_warning_seconds (100) must be shorter than session.") for p in problems
    )


@pytest.mark.parametrize("host", ["192.168.1.20", "kiosk.local"])
def test_ui_never_leaves_loopback(host: str) -> None:
    (problem,) = problems_of({"ui": {"host": host}})
    assert problem.startswith("ui")


@pytest.mark.parametrize(
    "public_host", ["https://kiosk.local", "kiosk.local/d", "kiosk local", "kiosk.local:8443", ""]
)
def test_public_host_must_be_a_bare_host_name(public_host: str) -> None:
    (problem,) = problems_of({"delivery": {"public_host": public_host}})
    assert problem.startswith("delivery.public_host: ")


@pytest.mark.parametrize("background", ["studio-grey", "white", "blur", "#1f4E79"])
def test_backgrounds_accept_names_and_hex_colours(background: str) -> None:
    assert parse_config({"event": {"backgrounds": [background]}}).event.backgrounds == (background,)


@pytest.mark.parametrize("background", ["red", "#12345", "#GGGGGG", "studio-gray"])
def test_backgrounds_refuse_anything_else(background: str) -> None:
    assert problems_of({"event": {"backgrounds": [background]}})[0].startswith("event.backgrounds.0: ")


@given(
    timeout=st.floats(min_value=0.5, max_value=1000, allow_nan=False),
    warning=st.floats(min_value=0.1, max_value=120, allow_nan=False),
)
def test_idle_timeouts_valid_exactly_within_the_legal_bound(timeout: float, warning: float) -> None:
    values = dict.fromkeys(IDLE_KEYS, timeout)
    should_pass = timeout <= MAX_IDLE_TIMEOUT_SECONDS and warning < timeout
    try:
        SessionConfig.model_validate({**values, "idle_warning_seconds": warning})
    except ValidationError:
        assert not should_pass
    else:
        assert should_pass


# --------------------------------------------------------------------------------------------------
# Reading files


def test_toml_syntax_error_reports_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '[camera]\nsource = "demo"\nfps = = 3\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert problem.startswith("TOML syntax error: ")
    assert "line 3" in problem
    assert "column" in problem


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file: No such file or directory"):
        load_config(tmp_path / "absent.toml")


def test_directory_instead_of_a_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path)


def test_non_utf8_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.toml"
    path.write_bytes(b'[event]\nname = "\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


def test_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")) == KioskConfig()


# --------------------------------------------------------------------------------------------------
# check-config


def test_check_config_accepts_the_example_and_prints_no_secret_paths(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert check_config_main([str(EXAMPLE)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("config OK: camera=csi 1920x1080@30fps")
    assert "tls=on" in out
    assert ".key" not in out and ".crt" not in out and "staff-accounts" not in out
    assert err == ""


def test_check_config_without_a_path_checks_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_config_main([]) == 0
    assert capsys.readouterr().out.startswith("config OK: camera=demo")


def test_check_config_lists_every_problem_and_returns_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path, '[camera]\nsource = "usb"\n[delivery]\nwindow_minutes = 61\n[session]\nidle_timeout = 5\n'
    )
    assert check_config_main([str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"invalid kiosk config {path}:" in err
    assert "  camera: Input tag 'usb'" in err
    assert "  delivery.window_minutes: Input should be less than or equal to 60" in err
    assert "  session.idle_timeout: Extra inputs are not permitted" in err


def test_check_config_reports_syntax_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check_config_main([str(write(tmp_path, "[camera\n"))]) == 2
    assert "TOML syntax error" in capsys.readouterr().err


def test_check_config_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_config_main(["a.toml", "b.toml"]) == 2
    assert "usage:" in capsys.readouterr().err
    assert check_config_main(["--help"]) == 0
    assert "usage:" in capsys.readouterr().out
