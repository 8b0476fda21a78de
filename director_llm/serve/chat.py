"""``POST /v1/chat/completions``: the OpenAI chat API on ``acompletion`` / ``stream_response``.

``model`` is a deployment (``openai/gpt-4o-mini``), a tier (``small``) or ``auto`` (the
strategy plans; an optional non-standard ``"strategy"`` field picks one). Parameters the
OpenAI API defines and providers take are passed on; the rest are ignored (``n`` must be 1).

A stream's first chunk is awaited before the response starts, so every failure before the
first token (all deployments down, over budget, bad input) is a proper HTTP error; after
it, a failure is an in-band error frame (``sse``). The last chunk has ``finish_reason``,
``usage`` and ``director.route``. A client that goes away closes the stream: the upstream
connection is closed and the budget hold settled by what was generated.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from director_llm.engine.stream import ResponseStream, StreamChunk, StreamEnd, TextDelta
from director_llm.errors import DirectorError, InputError
from director_llm.serve.body import Rejected, read_json
from director_llm.serve.errors import error_info, error_response
from director_llm.serve.headers import route_headers
from director_llm.serve.sse import DONE, event, sse_response

__all__ = ["PASSED_PARAMS", "ChatEndpoint", "resolve_model"]

AUTO = "auto"
PASSED_PARAMS = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "reasoning_effort",
    }
)
"""OpenAI request fields passed to the provider (``model``, ``messages``, ``stream`` and
``stream_options`` are the gateway's; ``user`` is not forwarded)."""


def resolve_model(director: Any, model: Any) -> str | None:
    """The deployment or tier pinned by ``model``; None for ``auto`` (or no model)."""
    if model is None or model == AUTO:
        return None
    if not isinstance(model, str):
        raise InputError(f"model must be a string, not {type(model).__name__}")
    groups = director.groups()
    if model not in groups:
        tiers = sorted(g for g in groups if "/" not in g)
        raise Rejected(
            404,
            "model_not_found",
            f"unknown model {model[:100]!r}: use 'auto', a tier ({', '.join(tiers) or 'none'}) or a deployment "
            "listed by GET /v1/models",
        )
    return model


def call_options(director: Any, body: dict[str, Any]) -> dict[str, Any]:
    """``acompletion`` / ``stream_response`` keyword arguments from an OpenAI request body."""
    n = body.get("n")
    if n is not None and n != 1:
        raise InputError("n must be 1: this server returns one choice")
    strategy = body.get("strategy")
    if strategy is not None and not isinstance(strategy, str):
        raise InputError("strategy must be a string (cost, latency, quality or adaptive)")
    options: dict[str, Any] = {k: v for k, v in body.items() if k in PASSED_PARAMS and v is not None}
    if "max_completion_tokens" in options and "max_tokens" not in options:
        options["max_tokens"] = options.pop("max_completion_tokens")
    options.pop("max_completion_tokens", None)
    options["model"] = resolve_model(director, body.get("model"))
    if strategy is not None:
        options["strategy"] = strategy
    return options


class ChatEndpoint:
    """The handler, bound to one Director."""

    def __init__(self, director: Any, *, body_limit: int) -> None:
        self.director = director
        self.body_limit = body_limit

    async def handle(self, request: Request) -> Response:
        try:
            body = await read_json(request, limit=self.body_limit)
            options = call_options(self.director, body)
            messages = body.get("messages")
            stream = body.get("stream")
            if stream not in (None, True, False):
                raise InputError("stream must be true or false")
            if stream:
                return await self._stream(messages, options)
            response = await self.director.acompletion(messages, **options)
        except (DirectorError, Rejected) as exc:
            return error_response(exc)
        route = self.director.route_of(response)
        payload = response.model_dump(mode="json", exclude_none=False)
        return JSONResponse(payload, headers=route_headers(route))

    async def _stream(self, messages: Any, options: dict[str, Any]) -> Response:
        stream: ResponseStream = self.director.stream_response(messages, **options)
        try:
            first = await stream.__anext__()
        except BaseException:
            await asyncio.shield(stream.aclose())
            raise
        info = stream.deployment
        headers = {"x-director-cache": "none"}
        if info is not None:
            headers["x-director-deployment"] = info.name
            headers["x-director-tier"] = info.tier
        return sse_response(_frames(stream, first, model=info.model if info else AUTO), headers)


async def _frames(stream: ResponseStream, first: StreamChunk, *, model: str) -> AsyncIterator[bytes]:
    """The OpenAI ``chat.completion.chunk`` frames of ``stream`` (whose first chunk is ``first``)."""
    base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk", "created": int(time.time())}
    chunk: StreamChunk | None = first
    role_sent = False
    try:
        while chunk is not None:
            if isinstance(chunk, TextDelta):
                delta: dict[str, Any] = {"content": chunk.text}
                if not role_sent:
                    delta = {"role": "assistant", **delta}
                    role_sent = True
                yield event({**base, "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
            elif isinstance(chunk, StreamEnd):
                route = chunk.route
                yield event(
                    {
                        **base,
                        "model": route.model or model,
                        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                        "usage": chunk.usage,
                        "director": {"route": route.model_dump(mode="json"), "cost_usd": chunk.cost_usd},
                    }
                )
                yield DONE
                return
            try:
                chunk = await stream.__anext__()
            except StopAsyncIteration:
                chunk = None
    except DirectorError as exc:
        yield event(error_info(exc).body)
    finally:
        # A client that went away cancels this generator: close upstream and settle the hold
        # even if this task is cancelled again meanwhile.
        await asyncio.shield(stream.aclose())
