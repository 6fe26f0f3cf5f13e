"""``GET /api/openapi.json``: an OpenAPI 3.0 description of the guest API (used for schemathesis fuzzing,
DESIGN.md §9 P1-4). Kept by hand next to the views; a test checks that every API route is described."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

bp = Blueprint("openapi", __name__)

_ID = {"type": "string", "minLength": 1, "maxLength": 64}
_ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
}
_HELD = {
    "type": "object",
    "required": ["kind", "bytes", "created", "expires"],
    "properties": {
        "id": {"type": "string"},
        "kind": {"type": "string", "enum": ["capture", "headshot", "delivery", "print"]},
        "bytes": {"type": "integer", "minimum": 0},
        "created": {"type": "number", "description": "epoch seconds"},
        "expires": {"type": "number", "description": "epoch seconds"},
    },
}
_PRINT_STATUS = {
    "type": "string",
    "nullable": True,
    "enum": ["queued", "printing", "completed", "failed", "cancelled", None],
}
_PRINT = {
    "type": "object",
    "required": ["job", "status", "prints_left"],
    "properties": {
        "job": {"type": "string", "nullable": True},
        "status": _PRINT_STATUS,
        "reason": {"type": "string", "nullable": True},
        "prints_left": {"type": "integer", "minimum": 0},
    },
}
_STATE = {
    "type": "object",
    "required": ["phase", "held", "takes"],
    "properties": {
        "phase": {
            "type": "string",
            "enum": [
                "idle",
                "consent",
                "preview",
                "countdown",
                "capture",
                "processing",
                "review",
                "delivery",
                "wipe",
            ],
        },
        "session": {"type": "string", "nullable": True},
        # The session's receipt code during a visit; after delete/revoke/end the code to keep, or null if
        # the receipt could not be recorded.
        "receipt": {"type": "string", "nullable": True},
        "held": {"type": "array", "items": _HELD},
        "takes": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"take": {"type": "string"}, "number": {"type": "integer"}},
            },
        },
        "renders": {"type": "array", "items": {"type": "object"}},
        "takes_left": {"type": "integer"},
        "idle_seconds_left": {"type": "number", "nullable": True},
        "idle_warning": {"type": "boolean"},
        "delivery": {"type": "object", "nullable": True},
        "paused": {"type": "boolean"},
        "error": {"type": "string"},
        "last_receipt": {"type": "object"},
        # Only where the event offers printing: the latest print of the visit and the prints left.
        "print": _PRINT,
    },
}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Malformed JSON or invalid fields",
        403: "Consent required, or a foreign Origin",
        404: "No visit, unknown id, or printing not offered (print_disabled)",
        409: "Not possible in the current phase",
        413: "Body too large",
        415: "Body is not application/json",
        422: "No face found",
        503: "Engine or camera failure; the visit was wiped",
    }
    return {str(c): _json({"$ref": "#/components/schemas/Error"}, text[c]) for c in codes}


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


_EMPTY = {"type": "object", "additionalProperties": False}
_POST_ERRORS = (400, 403, 413, 415)
_STATE_REF = {"$ref": "#/components/schemas/State"}


def _post(
    summary: str, ok: dict[str, Any], *codes: int, body: dict[str, Any] | None = None, status: str = "200"
) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "requestBody": body or _body(_EMPTY, required=False),
            "responses": {status: _json(ok), **_errors(*_POST_ERRORS, *codes)},
        }
    }


def spec() -> dict[str, Any]:
    """The OpenAPI document."""
    render_ok = {
        "type": "object",
        "required": ["render", "image"],
        "properties": {
            "render": {"type": "string"},
            "image": {"type": "string"},
            "take": {"type": "string"},
            "background": {"type": "string"},
            "preset": {"type": "string"},
            "bytes": {"type": "integer"},
        },
    }
    paths: dict[str, Any] = {
        "/api/session": {
            "get": {"summary": "The visit's state", "responses": {"200": _json(_STATE_REF)}},
            **_post("Start a visit (IDLE -> CONSENT)", _STATE_REF, 409, 503, status="201"),
        },
        "/api/session/consent": _post(
            "Accept (-> PREVIEW, camera opens) or decline (-> IDLE, nothing captured)",
            _STATE_REF,
            404,
            409,
            503,
            body=_body(
                {
                    "type": "object",
                    "required": ["accept"],
                    "properties": {
                        "accept": {"type": "boolean"},
                        "choices": {
                            "type": "object",
                            "additionalProperties": {"type": "boolean"},
                            "maxProperties": 16,
                        },
                    },
                }
            ),
        ),
        "/api/session/preview.mjpg": {
            "get": {
                "summary": "Live preview (MJPEG); ends when the phase leaves preview",
                "parameters": [
                    {"name": "background", "in": "query", "required": False, "schema": {"type": "string"}},
                    {
                        "name": "mirror",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["0", "1"]},
                    },
                    {
                        "name": "seated",
                        "in": "query",
                        "required": False,
                        "description": "1: guide towards the seated (lower) face position",
                        "schema": {"type": "string", "enum": ["0", "1"]},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "MJPEG stream",
                        "content": {
                            "multipart/x-mixed-replace": {"schema": {"type": "string", "format": "binary"}}
                        },
                    },
                    **_errors(400, 403, 409, 503),
                },
            }
        },
        "/api/session/guidance": {
            "get": {
                "summary": "Latest pose hints from the preview",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "hints": {"type": "array", "items": {"type": "string"}},
                                "face": {"type": "array", "items": {"type": "number"}, "nullable": True},
                                "fresh": {"type": "boolean"},
                            },
                        }
                    )
                },
            }
        },
        "/api/session/touch": _post("Reset the idle timer", {"type": "object"}),
        "/api/session/capture": _post(
            "Countdown is done: take a burst, keep the best, first render",
            {"allOf": [_STATE_REF, render_ok]},
            404,
            409,
            422,
            503,
        ),
        "/api/session/retake": _post("Back to the live preview for another photo", _STATE_REF, 404, 409),
        "/api/session/render": _post(
            "Another background/preset for a take",
            render_ok,
            404,
            409,
            503,
            body=_body(
                {
                    "type": "object",
                    "required": ["take", "background", "preset"],
                    "properties": {"take": _ID, "background": _ID, "preset": _ID},
                }
            ),
        ),
        "/api/session/render/{render_id}.jpg": {
            "get": {
                "summary": "A headshot JPEG (no-store)",
                "parameters": [{"name": "render_id", "in": "path", "required": True, "schema": _ID}],
                "responses": {
                    "200": {
                        "description": "JPEG",
                        "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    **_errors(404, 409),
                },
            }
        },
        "/api/session/deliver": _post(
            "Make the one-time download link",
            {
                "type": "object",
                "required": ["url", "qr", "expires_in"],
                "properties": {
                    "url": {"type": "string"},
                    "qr": {"type": "string"},
                    "expires_in": {"type": "integer"},
                },
            },
            404,
            409,
            503,
            body=_body(
                {
                    "type": "object",
                    "required": ["render"],
                    "properties": {
                        "render": _ID,
                        # Other crops of the same photo, through the same one link (issue 15.4).
                        "also_presets": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
                    },
                }
            ),
        ),
        "/api/session/print": _post(
            "Print a headshot (only where the event offers printing; GET /api/session follows the job)",
            {"$ref": "#/components/schemas/Print"},
            404,
            409,
            503,
            body=_body({"type": "object", "required": ["render"], "properties": {"render": _ID}}),
        ),
        "/api/session/qr.png": {
            "get": {
                "summary": "The QR code of the pending link (v: the nonce deliver returned as qr)",
                "parameters": [{"name": "v", "in": "query", "required": True, "schema": {"type": "string"}}],
                "responses": {
                    "200": {
                        "description": "PNG",
                        "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    **_errors(404),
                },
            }
        },
        "/api/wifi.png": {
            "get": {
                "summary": "The kiosk hotspot's join-this-network QR code (404 without a hotspot)",
                "responses": {
                    "200": {
                        "description": "PNG",
                        "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    **_errors(404),
                },
            }
        },
        "/api/speech.wav": {
            "get": {
                "summary": "A text the guest screens show, spoken (espeak-ng on the kiosk); others: 404",
                "parameters": [
                    {"name": "lang", "in": "query", "required": True, "schema": {"type": "string"}},
                    {
                        "name": "text",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "maxLength": 600},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "WAV, 16-bit mono",
                        "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    **_errors(404, 503),
                },
            }
        },
        "/api/session/delete": _post("Delete now (wipes everything, the link included)", _STATE_REF, 404),
        "/api/session/revoke": _post("Withdraw consent (wipes everything)", _STATE_REF, 404),
        "/api/session/end": _post("Finish (only the pending link survives its window)", _STATE_REF, 404, 409),
        "/api/openapi.json": {
            "get": {"summary": "This document", "responses": {"200": _json({"type": "object"})}}
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "Headshot kiosk guest API", "version": "1"},
        "paths": paths,
        "components": {"schemas": {"Error": _ERROR, "State": _STATE, "Held": _HELD, "Print": _PRINT}},
    }


@bp.get("/api/openapi.json")
def openapi_json() -> Response:
    return jsonify(spec())
