"""Shared pieces of the LiteLLM probe scripts: a tiny OpenAI-compatible aiohttp server.

The probes under scripts/dev/litellm_probe_*.py each answer questions in
docs/dev/litellm-notes.md by running the installed LiteLLM against this server.
It is deliberately independent of director_llm/testing/ (the real harness).

Behaviour is picked by the first path segment of the api_base, so one server serves
every scenario: ``api_base = f"{server.url}/<scenario>/v1"``.

Scenarios: ok, e500, e401, ctx400, e429 (Retry-After: 2), hang (never answers),
slow (answers after 0.5 s), stream-ok, stream-e500 (500 before any byte), stream-break
(one token, then the connection is cut).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from aiohttp import web

FAKE_KEY = "sk-probe-SECRET-abc123"


def _completion(model: str, text: str = "hello from probe") -> dict:
    return {
        "id": "chatcmpl-probe",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500},
    }


def _chunk(model: str, content: str | None, finish: str | None = None, usage: dict | None = None) -> bytes:
    body: dict = {
        "id": "chatcmpl-probe",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": []
        if usage
        else [{"index": 0, "delta": ({"content": content} if content else {}), "finish_reason": finish}],
    }
    if usage:
        body["usage"] = usage
    return f"data: {json.dumps(body)}\n\n".encode()


@dataclass
class ProbeServer:
    """The aiohttp server; ``hits`` counts requests per scenario, ``bodies`` keeps the last body."""

    port: int = 0
    hits: Counter = field(default_factory=Counter)
    times: dict = field(default_factory=dict)
    bodies: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)
    open_streams: int = 0
    closed_streams: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def base(self, scenario: str) -> str:
        return f"{self.url}/{scenario}/v1"

    async def start(self) -> ProbeServer:
        app = web.Application()
        app.router.add_post("/{scenario}/v1/chat/completions", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        scenario = request.match_info["scenario"]
        self.hits[scenario] += 1
        self.times.setdefault(scenario, []).append(time.monotonic())
        body = await request.json()
        self.bodies[scenario] = body
        self.headers[scenario] = dict(request.headers)
        model = body.get("model", "?")
        stream = bool(body.get("stream"))
        if scenario == "ok" or scenario.startswith("ok"):
            if stream:
                return await self._stream(request, model, body, n=3)
            return web.json_response(_completion(model, f"answer from {scenario}"))
        if scenario == "slow":
            await asyncio.sleep(0.5)
            return web.json_response(_completion(model))
        if scenario == "hang":
            await asyncio.sleep(3600)
        if scenario == "e500":
            return web.json_response({"error": {"message": "boom", "type": "server_error"}}, status=500)
        if scenario == "e401":
            return web.json_response(
                {
                    "error": {
                        "message": "Incorrect API key provided",
                        "type": "invalid_request_error",
                        "code": "invalid_api_key",
                    }
                },
                status=401,
            )
        if scenario == "ctx400":
            return web.json_response(
                {
                    "error": {
                        "message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
                        "type": "invalid_request_error",
                        "code": "context_length_exceeded",
                    }
                },
                status=400,
            )
        if scenario == "e429":
            return web.json_response(
                {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}},
                status=429,
                headers={"Retry-After": "2"},
            )
        if scenario == "stream-e500":
            return web.json_response({"error": {"message": "stream boom"}}, status=500)
        if scenario == "stream-break":
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            await resp.write(_chunk(model, "partial "))
            await asyncio.sleep(0.05)
            request.transport.close()  # type: ignore[union-attr]  # cut the connection mid-stream
            return resp
        if scenario == "stream-slow":
            return await self._stream(request, model, body, n=50, delay=0.05)
        return web.json_response({"error": {"message": f"unknown scenario {scenario}"}}, status=404)

    async def _stream(
        self, request: web.Request, model: str, body: dict, n: int, delay: float = 0.0
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        self.open_streams += 1
        try:
            for i in range(n):
                await resp.write(_chunk(model, f"tok{i} "))
                if delay:
                    await asyncio.sleep(delay)
            await resp.write(_chunk(model, None, finish="stop"))
            if (body.get("stream_options") or {}).get("include_usage"):
                await resp.write(
                    _chunk(model, None, usage={"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500})
                )
            await resp.write(b"data: [DONE]\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            self.closed_streams += 1
            raise
        finally:
            pass
        return resp


def deployment(name: str, api_base: str, model: str = "openai/mistral-director", **params: object) -> dict:
    """One Router deployment dict pointing at the probe server."""
    return {
        "model_name": name,
        "litellm_params": {"model": model, "api_base": api_base, "api_key": FAKE_KEY, **params},
        "model_info": {"id": f"{name}-{api_base.rsplit('/', 2)[-2]}"},
    }


MSGS = [{"role": "user", "content": "hi"}]
