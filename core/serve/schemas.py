"""Request validation and error bodies for the HTTP API.

Every refusal is an :class:`ApiError` carrying its HTTP status; the app renders it in the style of
the route's API: OpenAI's ``{"error": {"message", "type", "code"}}`` under ``/v1/``, TEI's
``{"error", "error_type"}`` elsewhere. Field readers name the field, what was sent and what is
expected, so a client sees what to fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bertzoo.errors import InputError
from bertzoo.inference.batching import check_strings

# TEI's error_type for each status it documents
_TEI_TYPES = {400: "Validation", 401: "Unauthorized", 404: "NotFound", 413: "Validation", 422: "Validation",
              429: "Overloaded", 500: "Backend", 503: "Unhealthy"}
_OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                 413: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error",
                 500: "server_error", 503: "server_error"}


class ApiError(Exception):
    """A request refused with ``status`` and a message saying what to change."""

    def __init__(self, status: int, message: str, *, code: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})

    def body(self, openai_style: bool) -> dict[str, Any]:
        if openai_style:
            return {"error": {"message": self.message, "type": _OPENAI_TYPES.get(self.status, "invalid_request_error"),
                              "param": None, "code": self.code}}
        return {"error": self.message, "error_type": _TEI_TYPES.get(self.status, "Validation")}


def invalid(message: str) -> ApiError:
    return ApiError(422, message, code="invalid_value")


def field(body: Mapping[str, Any], name: str, kind: type | tuple[type, ...], default: Any = None, *,
          what: str) -> Any:
    """``body[name]`` checked to be ``kind`` (absent or null = ``default``); bool is never an int here."""
    value = body.get(name)
    if value is None:
        return default
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        raise invalid(f"field {name!r} is {type(value).__name__} {value!r:.60}; it must be {what}")
    return value


def positive_int(body: Mapping[str, Any], name: str) -> int | None:
    value = field(body, name, int, what="a positive integer")
    if value is not None and value < 1:
        raise invalid(f"field {name!r} is {value}; it must be a positive integer")
    return value


def texts(value: Any, name: str) -> tuple[list[str], bool]:
    """A string or a non-empty list of strings → ``(texts, single)``; token-id arrays are refused."""
    if value is None:
        raise invalid(f"field {name!r} is missing; send a string or a list of strings")
    if isinstance(value, str):
        items, single = [value], True
    elif isinstance(value, list):
        if not value:
            raise invalid(f"field {name!r} is an empty list; send at least one string")
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value) or (
                all(isinstance(v, list) for v in value)):
            raise invalid(f"field {name!r} holds token ids; this server tokenizes itself, send the texts as strings")
        items, single = value, False
    else:
        raise invalid(f"field {name!r} is {type(value).__name__}; send a string or a list of strings")
    try:
        return check_strings(items, name), single
    except InputError as exc:
        raise invalid(str(exc)) from None


def text_or_pairs(value: Any, name: str) -> tuple[list[Any], bool]:
    """A string, a ``[text, text_pair]`` pair inside a list, or a list of both → ``(items, single)``.

    Unlike TEI, a list of two strings is two texts, never one pair: send ``[["a", "b"]]`` for a pair.
    """
    if isinstance(value, str):
        return texts(value, name)
    if not isinstance(value, list) or not value:
        raise invalid(f"field {name!r} must be a string or a non-empty list of strings and [text, text_pair] pairs")
    try:
        return check_strings(value, name, pairs=True), False
    except InputError as exc:
        raise invalid(str(exc)) from None


def truncate_policy(body: Mapping[str, Any], default: bool, *, windows: bool = False) -> str:
    """``truncate`` (TEI: a bool; bertzoo also takes ``"chunk"`` on embedding routes) → a truncation policy
    of :mod:`bertzoo.inference.truncation`: cut quietly, refuse (``error``), or embed as windows."""
    value = body.get("truncate")
    if value is None:
        value = default
    if windows and value == "chunk":
        return "chunk"
    if not isinstance(value, bool):
        extra = ' or "chunk"' if windows else ""
        raise invalid(f"field 'truncate' is {value!r}; it must be true, false{extra}")
    direction = body.get("truncation_direction")
    if direction not in (None, "right", "Right"):
        raise invalid(f"field 'truncation_direction' is {direction!r}; only 'right' is supported")
    return "silent" if value else "error"


__all__ = ["ApiError", "field", "invalid", "positive_int", "text_or_pairs", "texts", "truncate_policy"]
