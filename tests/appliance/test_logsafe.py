"""The logging safety net: what RedactFilter masks, what it leaves readable, and the stderr-only setup."""

from __future__ import annotations

import base64
import io
import logging
import random
import sys
from collections.abc import Iterator

import pytest

from appliance.logsafe import RedactFilter, configure_logging, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jane.doe+kiosk@example.co.uk now", "mail <email> now"),
        ("to: A.B@mail.example.org.", "to: <email>."),
        ("call +44 20 7946 0958 later", "call <phone> later"),
        ("call +1 (555) 867-5309", "call <phone>"),
        ("tel (020) 7946 0958", "tel <phone>"),
        ("tel 555-867-5309", "tel <phone>"),
        ("tel 06 12 34 56 78", "tel <phone>"),
        ("tel 07700900123", "tel <phone>"),
        ("tel 0049-30-1234567", "tel <phone>"),
        ("GET /d/Q2x1ZQ.c2VjcmV0LWtleS1ieXRlcw HTTP/1.1", "GET /d/<redacted> HTTP/1.1"),
        (
            "link https://kiosk-7f3a.example.net/d/abc.def?x=1",
            "link https://kiosk-7f3a.example.net/d/<redacted>",
        ),
        ("img data:image/png;base64,iVBORw0KGgoAAAANSUhEUg== end", "img data:<redacted> end"),
        ("src='data:image/jpeg;base64,/9j/4AAQ'", "src='data:<redacted>'"),
        ("token 0123456789abcdef0123456789abcdef", "token <token>"),
        ("bearer Zm9vYmFyYmF6cXV4cXV1eHh5eg==", "bearer <token>"),
        ("secret aB3_dE-fG9hIjKlMnOpQrStUv", "secret <token>"),
    ],
)
def test_personal_data_and_tokens_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "session 0123456789abcdef delivered via qr in 1.5s",
        "at 2024-05-01 10:11:12 wrote 104857600 bytes",
        "shape (1080, 1920, 3) dtype uint8",
        "SessionStoreCapacityExceeded in appliance.session_worker",
        "HTTPServerErrorHandler raised",
        "MALLOC_MMAP_THRESHOLD_ set for worker",
        "test_abort_in_review_wipes_captures passed",
        "TensorRT 10.3.0.26 plan built for Orin",
        "listening on 192.168.100.200:8443",
        "pid 12345 took 12.345s for 3 objects",
        "GET /staff/dashboard 200",
    ],
)
def test_operational_information_stays_readable(text: str) -> None:
    assert redact(text) == text


def test_random_tokens_are_masked_with_overwhelming_probability() -> None:
    # Seeded, so the test is deterministic: about 5 in 100,000 random letter-only tokens look like
    # CamelCase/snake_case names and stay readable by design, which would make an unseeded run flaky.
    rng = random.Random(20261126)
    urlsafe = [base64.urlsafe_b64encode(rng.randbytes(16)).rstrip(b"=").decode() for _ in range(5000)]
    misses = [t for t in urlsafe if redact(f"t {t} .") != "t <token> ."]
    assert misses == []
    hex_misses = [t for t in (rng.randbytes(10).hex() for _ in range(1000)) if redact(t) != "<token>"]
    assert hex_misses == []


@pytest.fixture
def capture_logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactFilter())
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("tests.logsafe.child")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger, stream
    logger.removeHandler(handler)
    logger.propagate = True


def test_filter_masks_arguments(capture_logger: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = capture_logger
    logger.info("delivery to %s at %s", "jane@example.com", "/d/abc.def")
    assert stream.getvalue() == "delivery to <email> at /d/<redacted>\n"


def test_filter_masks_exception_text(capture_logger: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = capture_logger
    try:
        raise ValueError("bad address jane@example.com")
    except ValueError:
        logger.exception("failed for %s", "+44 20 7946 0958")
    output = stream.getvalue()
    assert "jane@example.com" not in output
    assert "7946" not in output
    assert "ValueError: bad address <email>" in output
    assert output.startswith("failed for <phone>")


def test_filter_masks_stack_info() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None, sinfo="at jane@example.com")
    RedactFilter().filter(record)
    assert record.stack_info == "at <email>"


def test_broken_format_string_does_not_leak_arguments(
    capture_logger: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = capture_logger
    logger.info("two %s %s", "jane@example.com")  # noqa: PLE1206 - deliberately broken
    assert "jane@example.com" not in stream.getvalue()
    assert "<email>" in stream.getvalue()


def test_filter_never_drops_records() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "plain %d", (3,), None)
    assert RedactFilter().filter(record) is True
    assert record.getMessage() == "plain 3"
    assert RedactFilter().filter(record) is True  # a second handler's filter is harmless
    assert record.getMessage() == "plain 3"


def test_configure_logging_installs_one_filtered_stderr_handler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    try:
        first = configure_logging(logging.INFO)
        second = configure_logging("DEBUG")
        ours = [h for h in root.handlers if h not in before]
        assert ours == [second]
        assert first not in root.handlers
        assert isinstance(second, logging.StreamHandler)
        assert second.stream is stream
        assert not any(isinstance(h, logging.FileHandler) for h in ours)
        assert any(isinstance(f, RedactFilter) for f in second.filters)
        assert root.level == logging.DEBUG
        logging.getLogger("appliance.some_child").warning("sent to %s", "jane@example.com")
        assert stream.getvalue() == "WARNING appliance.some_child: sent to <email>\n"
    finally:
        for handler in root.handlers[:]:
            if handler not in before:
                root.removeHandler(handler)
        root.setLevel(level)
