"""``POST /v1/classify``: ``{"text", "history"}`` -> the ``IntentClassification`` JSON that
``director-llm classify --json`` prints; ``?stream=true`` -> SSE of the typed stream items
(``intents.StreamItem``: partial results and routing events, the final one ``done``),
then ``data: [DONE]``. Optional fields: ``model`` (a deployment or tier), ``tier``,
``strategy``, ``cache`` (false skips the cache; not with ``stream``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from director_llm.errors import DirectorError, InputError
from director_llm.serve.body import Rejected, read_json
from director_llm.serve.errors import error_info, error_response
from director_llm.serve.headers import route_headers
from director_llm.serve.sse import DONE, event, sse_response

__all__ = ["ClassifyEndpoint"]

_OPTIONS = ("model", "tier", "strategy")


def _options(body: dict[str, Any]) -> dict[str, Any]:
    text = body.get("text")
    if not isinstance(text, str):
        raise InputError('"text" must be a string: {"text": "...", "history": [...]}')
    history = body.get("history")
    if history is not None and not isinstance(history, list):
        raise InputError('"history" must be a list of earlier turns ({"role", "content"} objects or strings)')
    options: dict[str, Any] = {"text": text, "history": history}
    for name in _OPTIONS:
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise InputError(f'"{name}" must be a string')
        if value is not None:
            options[name] = value
    if "model" in options and options["model"] == "auto":
        del options["model"]
    return options


class ClassifyEndpoint:
    """The handler, bound to one Director."""

    def __init__(self, director: Any, *, body_limit: int) -> None:
        self.director = director
        self.body_limit = body_limit

    async def handle(self, request: Request) -> Response:
        stream = request.query_params.get("stream", "false").lower() in ("1", "true", "yes")
        try:
            body = await read_json(request, limit=self.body_limit)
            options = _options(body)
            if stream:
                return await self._stream(options)
            cache = body.get("cache")
            if cache is not None and not isinstance(cache, bool):
                raise InputError('"cache" must be true or false')
            result = await self.director.classify_intent(**options, cache=cache)
        except (DirectorError, Rejected) as exc:
            return error_response(exc)
        return Response(result.model_dump_json(), media_type="application/json", headers=route_headers(result.route))

    async def _stream(self, options: dict[str, Any]) -> Response:
        items = self.director.stream_intent(**options)
        try:
            first = await items.__anext__()
        except StopAsyncIteration:
            first = None
        except BaseException:
            await asyncio.shield(_close(items))
            raise
        return sse_response(_frames(items, first), {})


async def _close(items: Any) -> None:
    close = getattr(items, "aclose", None)
    if close is not None:
        await close()


async def _frames(items: Any, first: Any) -> AsyncIterator[bytes]:
    item = first
    try:
        while item is not None:
            yield event(item.model_dump_json())
            try:
                item = await items.__anext__()
            except StopAsyncIteration:
                item = None
        yield DONE
    except DirectorError as exc:
        yield event(error_info(exc).body)
    finally:
        await asyncio.shield(_close(items))
