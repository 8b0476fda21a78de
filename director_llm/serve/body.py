"""Reading a request's JSON body: bounded, and every failure an ``InputError`` (400/413)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from director_llm.errors import InputError

__all__ = ["BodyTooLargeError", "MalformedBodyError", "read_json"]


class MalformedBodyError(InputError):
    """The body is not the JSON object the endpoint expects (400 ``invalid_json``)."""


class BodyTooLargeError(InputError):
    """The body is larger than the server accepts (413)."""


async def read_json(request: Request, *, limit: int) -> dict[str, Any]:
    """The body as a JSON object, read at most ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError(f"the request body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(f"the request body is larger than {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise MalformedBodyError("the request body is empty: send a JSON object")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise MalformedBodyError(f"the request body is not valid JSON{where}") from None
    if not isinstance(body, dict):
        raise MalformedBodyError(f"the request body must be a JSON object, not {type(body).__name__}")
    return body
