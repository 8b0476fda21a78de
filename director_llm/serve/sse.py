"""Server-sent events: ``data: <json>\\n\\n`` frames, ``data: [DONE]`` at the end.

An error after the response started (the stream broke after its first token) is sent as one
``data: {"error": {...}}`` frame, then the stream ends without ``[DONE]``: the ``openai``
client raises ``APIError`` on such a frame.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import StreamingResponse

__all__ = ["DONE", "SSE_HEADERS", "event", "sse_response"]

DONE = b"data: [DONE]\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def event(payload: Any) -> bytes:
    """One SSE frame holding ``payload`` as JSON (a str is sent as is)."""
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return b"data: " + data.encode() + b"\n\n"


def sse_response(frames: Any, headers: dict[str, str]) -> StreamingResponse:
    """A ``text/event-stream`` response sending ``frames`` (an async iterator of bytes)."""
    return StreamingResponse(frames, media_type="text/event-stream", headers={**SSE_HEADERS, **headers})
