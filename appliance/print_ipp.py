"""A small IPP client that talks to CUPS over its local socket: the operations the kiosk needs, nothing more.

Why not ``lp`` or pycups: ``lp`` cannot say how a job ended once ``PreserveJobHistory No`` has made CUPS
forget it (the job is gone from every listing a moment after it completes, aborted or not), and pycups
builds against libcups2-dev. IPP itself is small: a request is a binary header, attribute groups and the
document (RFC 8010 §3), POSTed as ``application/ipp`` over HTTP (RFC 8010 §4) — here to CUPS's Unix socket,
which is the only listener the kiosk's CUPS has (``provisioning.cups``).

Every call opens its own connection and shares no state, so calls from different threads cannot interfere;
the session worker still makes all of its calls from one print thread (``appliance.printing``), so that a
cancel is always sent after the submission whose job id it needs.

Nothing here logs: a job's title, a document and a user name never reach a log line (the callers log job
ids and states only).
"""

from __future__ import annotations

import http.client
import socket
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "IppError",
    "IppResponse",
    "Op",
    "Tag",
    "UnixHttpConnection",
    "call",
    "decode_response",
    "encode_request",
]


class Op:
    """Operation ids (RFC 8011 §5.2-5.4, RFC 3995 §11, CUPS's ``ipp.h``)."""

    PRINT_JOB = 0x0002
    CANCEL_JOB = 0x0008
    GET_JOB_ATTRIBUTES = 0x0009
    GET_JOBS = 0x000A
    GET_PRINTER_ATTRIBUTES = 0x000B
    CREATE_PRINTER_SUBSCRIPTIONS = 0x0016
    CANCEL_SUBSCRIPTION = 0x001B
    GET_NOTIFICATIONS = 0x001C


class Tag:
    """Delimiter and value tags (RFC 8010 §3.5)."""

    OPERATION = 0x01
    JOB = 0x02
    END = 0x03
    PRINTER = 0x04
    UNSUPPORTED_GROUP = 0x05
    SUBSCRIPTION = 0x06
    EVENT_NOTIFICATION = 0x07
    # out-of-band values
    UNSUPPORTED = 0x10
    UNKNOWN = 0x12
    NO_VALUE = 0x13
    # integers
    INTEGER = 0x21
    BOOLEAN = 0x22
    ENUM = 0x23
    # octet strings
    OCTET_STRING = 0x30
    DATE_TIME = 0x31
    RESOLUTION = 0x32
    RANGE = 0x33
    BEGIN_COLLECTION = 0x34
    TEXT_WITH_LANGUAGE = 0x35
    NAME_WITH_LANGUAGE = 0x36
    END_COLLECTION = 0x37
    # character strings
    TEXT = 0x41
    NAME = 0x42
    KEYWORD = 0x44
    URI = 0x45
    CHARSET = 0x47
    LANGUAGE = 0x48
    MIME_TYPE = 0x49
    MEMBER_NAME = 0x4A


_INTEGER_TAGS = frozenset({Tag.INTEGER, Tag.ENUM})
_STRING_TAGS = frozenset(range(0x40, 0x60))
_MAX_RESPONSE_BYTES = 4 * 2**20  # a status answer is a few KiB; anything larger is not CUPS talking


class IppError(Exception):
    """A request that failed: no CUPS at the socket, a broken answer, or an IPP error status.

    ``status`` is the IPP status code (0 when there was no IPP answer at all)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status

    @property
    def not_found(self) -> bool:
        """``client-error-not-found``: the job (or printer) does not exist (any more)."""
        return self.status == 0x0406


Attribute = tuple[int, str, Sequence[Any]]  # (value tag, name, values)
Group = tuple[int, Sequence[Attribute]]  # (delimiter tag, attributes)


def _encode_value(tag: int, value: Any) -> bytes:
    if tag in _INTEGER_TAGS:
        return struct.pack(">i", int(value))
    if tag == Tag.BOOLEAN:
        return b"\x01" if value else b"\x00"
    if tag in (Tag.NO_VALUE, Tag.UNKNOWN, Tag.UNSUPPORTED):
        return b""
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


def encode_request(operation: int, request_id: int, groups: Iterable[Group]) -> bytes:
    """The IPP/2.0 request header and attribute groups (RFC 8010 §3.1), ending with end-of-attributes.
    The document, if any, follows these bytes unchanged."""
    out = bytearray(struct.pack(">BBHi", 2, 0, operation, request_id))
    for delimiter, attributes in groups:
        out.append(delimiter)
        for tag, name, values in attributes:
            for index, value in enumerate(values):
                raw_name = name.encode("ascii") if index == 0 else b""  # additional values: no name
                raw = _encode_value(tag, value)
                out += struct.pack(">BH", tag, len(raw_name)) + raw_name + struct.pack(">H", len(raw)) + raw
    out.append(Tag.END)
    return bytes(out)


@dataclass(frozen=True)
class IppResponse:
    """A decoded answer: status code, request id and the attribute groups in order. Collections are
    decoded to ``None`` (none of the attributes the kiosk reads is one)."""

    status: int
    request_id: int
    groups: tuple[tuple[int, Mapping[str, tuple[Any, ...]]], ...]

    @property
    def ok(self) -> bool:
        """A successful-ok* status (0x0000-0x00FF)."""
        return self.status < 0x0100

    def group(self, tag: int) -> Mapping[str, tuple[Any, ...]]:
        """The first group with delimiter ``tag`` (empty if there is none)."""
        for delimiter, attributes in self.groups:
            if delimiter == tag:
                return attributes
        return {}

    def all_groups(self, tag: int) -> list[Mapping[str, tuple[Any, ...]]]:
        """Every group with delimiter ``tag``, in order (one per job in a Get-Jobs answer)."""
        return [attributes for delimiter, attributes in self.groups if delimiter == tag]


def _decode_value(tag: int, raw: bytes) -> Any:
    if tag in _INTEGER_TAGS and len(raw) == 4:
        return struct.unpack(">i", raw)[0]
    if tag == Tag.BOOLEAN and len(raw) == 1:
        return raw != b"\x00"
    if tag in _STRING_TAGS:
        return raw.decode("utf-8", "replace")
    if tag in (Tag.TEXT_WITH_LANGUAGE, Tag.NAME_WITH_LANGUAGE) and len(raw) >= 4:
        (lang_len,) = struct.unpack(">H", raw[:2])
        text_at = 2 + lang_len
        (text_len,) = struct.unpack(">H", raw[text_at : text_at + 2])
        return raw[text_at + 2 : text_at + 2 + text_len].decode("utf-8", "replace")
    return None  # out-of-band values, octet strings, dates, resolutions, ranges: not read by the kiosk


def decode_response(data: bytes) -> IppResponse:
    """Decode an IPP answer (RFC 8010 §3.1). Raises ``IppError`` on truncated or malformed data."""
    if len(data) < 9:
        raise IppError("truncated IPP answer")
    _major, _minor, status, request_id = struct.unpack(">BBHi", data[:8])
    groups: list[tuple[int, dict[str, tuple[Any, ...]]]] = []
    current: dict[str, tuple[Any, ...]] | None = None
    last_name = ""
    depth = 0  # inside a collection: its members are skipped, the attribute's value is None
    at = 8
    try:
        while at < len(data):
            tag = data[at]
            at += 1
            if tag == Tag.END:
                break
            if tag < 0x10:  # a delimiter: a new attribute group begins
                current = {}
                groups.append((tag, current))
                continue
            (name_len,) = struct.unpack(">H", data[at : at + 2])
            name = data[at + 2 : at + 2 + name_len].decode("ascii", "replace")
            at += 2 + name_len
            (value_len,) = struct.unpack(">H", data[at : at + 2])
            raw = data[at + 2 : at + 2 + value_len]
            if len(raw) != value_len:
                raise IppError("truncated IPP attribute")
            at += 2 + value_len
            if tag == Tag.BEGIN_COLLECTION:
                if depth == 0 and current is not None:
                    if name:
                        current[name], last_name = (None,), name
                    elif last_name:
                        current[last_name] = (*current.get(last_name, ()), None)
                depth += 1
                continue
            if tag == Tag.END_COLLECTION:
                depth = max(0, depth - 1)
                continue
            if depth or current is None:
                continue  # a collection member, or an attribute outside any group
            value = _decode_value(tag, raw)
            if name:
                current[name] = (value,)
                last_name = name
            elif last_name:
                current[last_name] = (*current.get(last_name, ()), value)
    except struct.error:
        raise IppError("malformed IPP answer") from None
    return IppResponse(status, request_id, tuple(groups))


class UnixHttpConnection(http.client.HTTPConnection):
    """HTTP/1.1 over a Unix stream socket (CUPS's ``Listen /run/cups/cups.sock``)."""

    def __init__(self, socket_path: str, timeout: float) -> None:
        # CUPS accepts "localhost" as the Host of a local-socket request.
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def call(
    socket_path: str,
    resource: str,
    operation: int,
    groups: Sequence[Group],
    *,
    document: bytes | bytearray | memoryview | None = None,
    timeout_seconds: float = 5.0,
    request_id: int = 1,
) -> IppResponse:
    """POST one IPP request (and ``document``, if any, straight from memory) to ``resource`` on the CUPS
    at ``socket_path``; the decoded answer. Raises ``IppError`` when CUPS cannot be reached, answers HTTP
    other than 200, or answers an IPP error status."""
    header = encode_request(operation, request_id, groups)
    body_length = len(header) + (0 if document is None else len(document))
    conn = UnixHttpConnection(socket_path, timeout_seconds)
    try:
        conn.putrequest("POST", resource, skip_accept_encoding=True)
        conn.putheader("Content-Type", "application/ipp")
        conn.putheader("Content-Length", str(body_length))
        conn.endheaders()
        conn.send(header)
        if document is not None:
            conn.send(document)
        reply = conn.getresponse()
        data = reply.read(_MAX_RESPONSE_BYTES + 1)
    except (OSError, http.client.HTTPException) as exc:
        raise IppError(f"CUPS did not answer ({type(exc).__name__})") from None
    finally:
        conn.close()
    if reply.status != 200:
        raise IppError(f"CUPS answered HTTP {reply.status}")
    if len(data) > _MAX_RESPONSE_BYTES:
        raise IppError("CUPS answer too large")
    response = decode_response(data)
    if not response.ok:
        message = response.group(Tag.OPERATION).get("status-message", ("",))[0] or ""
        raise IppError(f"IPP status 0x{response.status:04x} {message}".rstrip(), response.status)
    return response
