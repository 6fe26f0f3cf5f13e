"""The parts of printing that need no cupsd: the IPP encoding, the printer's state, the print layouts, the
print thread when CUPS is not there, and the ``[print]`` config section."""

from __future__ import annotations

import io
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from appliance.config import ConfigError, KioskConfig, parse_config
from appliance.print_ipp import IppError, Op, Tag, call, decode_response, encode_request
from appliance.print_layout import PAGE_PIXELS, compose_print, print_document
from appliance.printing import (
    CupsQueue,
    PrinterMonitor,
    PrinterState,
    PrintSpooler,
    printer_state,
    requesting_user,
)
from engine.imageio import encode_jpeg
from tests.conftest import FACES, load_rgb

# -- IPP -----------------------------------------------------------------------------------------------------


def _attribute(tag: int, name: str, value: bytes) -> bytes:
    return struct.pack(">BH", tag, len(name)) + name.encode() + struct.pack(">H", len(value)) + value


def test_a_request_encodes_as_rfc_8010_says() -> None:
    data = encode_request(
        Op.GET_JOB_ATTRIBUTES,
        7,
        [
            (
                Tag.OPERATION,
                [
                    (Tag.CHARSET, "attributes-charset", ["utf-8"]),
                    (Tag.INTEGER, "job-id", [42]),
                    (Tag.KEYWORD, "requested-attributes", ["job-state", "job-state-reasons"]),
                    (Tag.BOOLEAN, "purge-job", [True]),
                ],
            )
        ],
    )
    assert data[:8] == bytes([2, 0, 0, 9, 0, 0, 0, 7])
    assert data[8] == Tag.OPERATION and data[-1] == Tag.END
    body = data[9:-1]
    assert body == (
        _attribute(Tag.CHARSET, "attributes-charset", b"utf-8")
        + _attribute(Tag.INTEGER, "job-id", struct.pack(">i", 42))
        + _attribute(Tag.KEYWORD, "requested-attributes", b"job-state")
        + _attribute(Tag.KEYWORD, "", b"job-state-reasons")  # an additional value has no name
        + _attribute(Tag.BOOLEAN, "purge-job", b"\x01")
    )


def test_an_answer_decodes_with_groups_additional_values_and_collections_skipped() -> None:
    answer = (
        bytes([2, 0, 0, 0, 0, 0, 0, 3, Tag.OPERATION])
        + _attribute(Tag.CHARSET, "attributes-charset", b"utf-8")
        + bytes([Tag.JOB])
        + _attribute(Tag.INTEGER, "job-id", struct.pack(">i", 5))
        + _attribute(Tag.ENUM, "job-state", struct.pack(">i", 9))
        + _attribute(Tag.KEYWORD, "job-state-reasons", b"job-completed-successfully")
        + _attribute(Tag.KEYWORD, "", b"other")
        + _attribute(Tag.BEGIN_COLLECTION, "media-col", b"")
        + _attribute(Tag.MEMBER_NAME, "", b"media-size")
        + _attribute(Tag.BEGIN_COLLECTION, "", b"")
        + _attribute(Tag.MEMBER_NAME, "", b"x-dimension")
        + _attribute(Tag.INTEGER, "", struct.pack(">i", 10160))
        + _attribute(Tag.END_COLLECTION, "", b"")
        + _attribute(Tag.END_COLLECTION, "", b"")
        + _attribute(Tag.NAME_WITH_LANGUAGE, "job-name", b"\x00\x02en\x00\x08headshot")
        + bytes([Tag.JOB])
        + _attribute(Tag.INTEGER, "job-id", struct.pack(">i", 6))
        + bytes([Tag.END])
    )
    response = decode_response(answer)
    assert response.ok and response.request_id == 3
    job = response.group(Tag.JOB)
    assert job["job-id"] == (5,) and job["job-state"] == (9,)
    assert job["job-state-reasons"] == ("job-completed-successfully", "other")
    assert job["media-col"] == (None,)
    assert job["job-name"] == ("headshot",)
    assert [g["job-id"] for g in response.all_groups(Tag.JOB)] == [(5,), (6,)]


@pytest.mark.parametrize("data", [b"", b"\x02\x00\x00\x00", bytes([2, 0, 0, 0, 0, 0, 0, 1, 1, 0x21, 0, 9])])
def test_a_truncated_answer_is_an_ipp_error(data: bytes) -> None:
    with pytest.raises(IppError):
        decode_response(data)


def test_no_cups_at_the_socket_is_an_ipp_error_not_a_hang(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(IppError) as raised:
        call(str(tmp_path / "nothing.sock"), "/", Op.GET_JOBS, [], timeout_seconds=1)
    assert raised.value.status == 0
    assert time.monotonic() - started < 1


# -- the printer's state -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "reasons", "accepting", "expected"),
    [
        (3, (), True, PrinterState.READY),
        (4, (), True, PrinterState.PRINTING),
        (3, ("media-low-warning",), True, PrinterState.READY),  # a warning changes nothing
        (5, ("media-empty-error",), True, PrinterState.OUT_OF_MEDIA),
        (3, ("media-empty",), True, PrinterState.OUT_OF_MEDIA),  # Gutenprint's backend says it bare
        (5, ("marker-supply-empty-error",), True, PrinterState.OUT_OF_MEDIA),  # the ribbon
        (5, ("paused",), True, PrinterState.OFFLINE),
        (3, ("offline-report",), True, PrinterState.OFFLINE),
        (3, (), False, PrinterState.OFFLINE),  # not accepting jobs
    ],
)
def test_cups_printer_states_map_to_the_five_pinned_ones(
    state: int, reasons: tuple[str, ...], accepting: bool, expected: PrinterState
) -> None:
    assert printer_state(state, reasons, accepting) is expected


def test_the_monitor_says_offline_without_cups_and_disabled_without_printing(tmp_path: Path) -> None:
    assert PrinterMonitor(None).status().state is PrinterState.DISABLED
    monitor = PrinterMonitor(CupsQueue(str(tmp_path / "no.sock"), "q", timeout_seconds=0.5))
    status = monitor.status()
    assert status.state is PrinterState.OFFLINE and status.media_remaining is None
    assert monitor.status() is status  # cached: a scrape does not cost a CUPS call each


def test_the_requesting_user_is_the_process_s_own_user() -> None:
    # CUPS 2.4's @OWNER check crashes on a user that does not exist (OpenPrinting/cups#1555).
    import pwd

    assert pwd.getpwnam(requesting_user())


# -- the print thread without CUPS ---------------------------------------------------------------------------


def test_a_print_cups_cannot_take_fails_and_its_document_is_zeroed(tmp_path: Path) -> None:
    spooler = PrintSpooler(CupsQueue(str(tmp_path / "no.sock"), "q", timeout_seconds=0.5), poll_seconds=0.02)
    document = bytearray(b"\xff\xd8 a document \xff\xd9")
    queued = spooler.submit(document, "image/jpeg")
    assert queued["status"] == "queued" and queued["bytes"] == len(document)
    deadline = time.monotonic() + 5
    while spooler.jobs()[0]["status"] == "queued":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert spooler.jobs()[0]["status"] == "failed"
    assert spooler.jobs()[0]["reason"] == "cups_unreachable"
    assert document == bytearray(len(document))  # zeroed once CUPS had it (or could not have it)
    spooler.close()
    with pytest.raises(RuntimeError):
        spooler.submit(bytearray(b"late"), "image/jpeg")


# -- the layouts ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def headshot_jpeg() -> bytes:
    return encode_jpeg(load_rgb(FACES / "grace_hopper.jpg"))


@pytest.mark.parametrize("layout", ["postcard", "badges"])
def test_a_print_is_a_4x6_page_at_300_dpi_with_the_brand_band(layout: str, headshot_jpeg: bytes) -> None:
    document = print_document(headshot_jpeg, layout, event_name="Café Zürich 2025", brand_colour="#1F4E79")
    assert isinstance(document, bytearray)
    page = np.asarray(Image.open(io.BytesIO(bytes(document))).convert("RGB"))
    assert (page.shape[1], page.shape[0]) == PAGE_PIXELS == (1200, 1800)
    band = page[-240:]
    # The band is the brand colour, with light text on it (the name).
    assert np.abs(band[5, 5].astype(int) - (0x1F, 0x4E, 0x79)).max() < 12
    assert (band.min(axis=2) > 200).sum() > 500
    # Deterministic: the test that checks the spool knows the exact bytes the worker sent.
    assert (
        print_document(headshot_jpeg, layout, event_name="Café Zürich 2025", brand_colour="#1F4E79")
        == document
    )


def test_badges_are_four_copies_of_the_headshot(headshot_jpeg: bytes) -> None:
    rgb = load_rgb(FACES / "grace_hopper.jpg").copy()
    page = compose_print(rgb, "badges", event_name="Expo", brand_colour="#FFFFFF")
    top = (1560 - 2 * 720 - 40) // 2  # two rows of 720 px and a 40 px gutter, centred above the band
    cells = [page[y : y + 720, x : x + 540] for y in (top, top + 760) for x in (40, 620)]
    assert all(np.array_equal(cells[0], cell) for cell in cells[1:])
    with pytest.raises(ValueError):
        compose_print(rgb, "poster", event_name="Expo", brand_colour="#FFFFFF")


# -- config --------------------------------------------------------------------------------------------------


def test_printing_is_off_by_default() -> None:
    assert KioskConfig().print.enabled is False


@pytest.mark.parametrize(
    ("section", "path"),
    [
        ({"queue": "has space"}, "print.queue"),
        ({"brand_colour": "navy"}, "print.brand_colour"),
        ({"cups_socket": "cups.sock"}, "print"),
        ({"copies_per_guest": 0}, "print.copies_per_guest"),
        ({"model": "hp-laserjet"}, "print.model"),
        ({"device_uri": "not a uri"}, "print.device_uri"),
        ({"printer": "x"}, "print.printer"),
    ],
)
def test_bad_print_settings_are_named_by_dotted_path(section: dict[str, object], path: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({"print": section})
    assert any(problem.startswith(path) for problem in raised.value.problems), raised.value.problems
