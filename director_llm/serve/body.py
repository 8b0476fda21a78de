"""Reading a request's JSON body: bounded; a bad or oversized body is ``Rejected`` (400 / 413)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

__all__ = ["Rejected", "read_json"]


class Rejected(Exception):  # an HTTP answer, not a DirectorError: it never leaves the server
    """A request the gateway answers itself (bad body, unknown model): status, OpenAI error
    ``type`` and ``code``, and a message safe to show (it never quotes the request)."""

    def __init__(self, status: int, code: str, message: str, type_: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.type = type_


def _too_large(limit: int) -> Rejected:
    return Rejected(413, "request_too_large", f"the request body is larger than {limit} bytes")


def _malformed(message: str) -> Rejected:
    return Rejected(400, "invalid_json", message)


async def read_json(request: Request, *, limit: int) -> dict[str, Any]:
    """The body as a JSON object, read at most ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise _malformed("the request body is empty: send a JSON object")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise _malformed(f"the request body is not valid JSON{where}") from None
    if not isinstance(body, dict):
        raise _malformed(f"the request body must be a JSON object, not {type(body).__name__}")
    return body
