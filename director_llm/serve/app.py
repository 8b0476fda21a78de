"""The ASGI application: ``create_app(director or config path)`` (Starlette).

Routes: ``POST /v1/chat/completions`` (``chat``), ``GET /v1/models``, ``POST /v1/classify``
(``classify``), ``GET /health``, ``GET /metrics`` (``director_llm.metrics.asgi_app``).
``app_from_env()`` is the factory uvicorn's worker processes call (``serve --workers N``):
it reads the config path from ``$DIRECTOR_SERVE_CONFIG``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from director_llm.director import Director
from director_llm.errors import DirectorError
from director_llm.metrics import asgi_app
from director_llm.reloader import watch_and_reload
from director_llm.serve.auth import BearerAuth, tokens_from_config
from director_llm.serve.chat import AUTO, ChatEndpoint
from director_llm.serve.classify import ClassifyEndpoint
from director_llm.serve.errors import error_response, openai_error

__all__ = ["CONFIG_ENV", "RELOAD_ENV", "STATE_PREFIX_ENV", "app_from_env", "create_app"]

CONFIG_ENV = "DIRECTOR_SERVE_CONFIG"
"""The config path the worker processes of ``serve --workers N`` read."""
STATE_PREFIX_ENV = "DIRECTOR_SERVE_STATE_PREFIX"
"""Optional Redis key prefix of the workers' shared state (``--state-prefix``)."""
RELOAD_ENV = "DIRECTOR_SERVE_RELOAD_CONFIG"
"""``1``: the workers of ``serve --workers N --reload-config`` watch the config file."""
_BODY_OVERHEAD = 1 << 20


class _Metrics:
    """``/metrics`` as a Starlette route endpoint (an ASGI app, not a request handler)."""

    def __init__(self, director: Director) -> None:
        self.app = asgi_app(director)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def create_app(
    source: Director | str | os.PathLike[str] | None = None,
    *,
    state_prefix: str | None = None,
    reload_config: bool = False,
) -> Starlette:
    """The gateway for ``source``: a ``Director`` (the caller owns it and closes it), or a
    config path (None: ``$DIRECTOR_CONFIG``, else ``configs/director.toml``), whose Director
    is built now (a bad config raises ``ConfigError`` here) and closed on shutdown.
    ``ConfigError`` too when ``[serve] api_keys_env`` names a variable holding no token.
    A Director built here reloads its config file on SIGHUP (main thread, Unix) and, with
    ``reload_config``, whenever the file changes (``director_llm.reloader``); ``[serve]``
    itself (tokens, body limit) is read once, at start."""
    owned = not isinstance(source, Director)
    director = source if isinstance(source, Director) else Director.from_file(source, state_prefix=state_prefix)
    tokens = tokens_from_config(director.config, director.source)
    # JSON escapes may take 6 bytes a character; the Director checks the characters.
    limit = director.config.llm.max_input_chars * 6 + _BODY_OVERHEAD

    async def models(request: Request) -> Response:
        return JSONResponse(models_payload(director))

    async def health(request: Request) -> Response:
        try:
            report = await director.health()
        except DirectorError as exc:
            return error_response(exc)
        return JSONResponse({"status": "ok", "deployments": report})

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse(openai_error(f"no route {request.url.path}", "invalid_request_error", "not_found"), 404)

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return JSONResponse(
            openai_error(f"{request.method} is not allowed on {request.url.path}", "invalid_request_error", "method"),
            405,
        )

    async def crashed(request: Request, exc: Exception) -> Response:
        return error_response(exc)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await director.warmup()
        stop = asyncio.Event()
        watcher: asyncio.Task[None] | None = None
        if owned:
            with contextlib.suppress(RuntimeError, ValueError, NotImplementedError):
                director.install_reload_signal()  # not from a thread, not on Windows
            if reload_config:
                watcher = asyncio.create_task(watch_and_reload(director, stop_event=stop))
        try:
            yield
        finally:
            stop.set()
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            if owned:
                await director.aclose()

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", ChatEndpoint(director, body_limit=limit).handle, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/classify", ClassifyEndpoint(director, body_limit=limit).handle, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/metrics", _Metrics(director), methods=["GET"]),
        ],
        exception_handlers={404: not_found, 405: not_allowed, Exception: crashed},
        lifespan=lifespan,
    )
    app.state.director = director
    if tokens:
        app.add_middleware(BearerAuth, tokens=tokens)
    return app


def app_from_env() -> Starlette:
    """The app of ``$DIRECTOR_SERVE_CONFIG`` (uvicorn's ``factory=True`` in each worker)."""
    path = os.environ.get(CONFIG_ENV)
    return create_app(
        Path(path) if path else None,
        state_prefix=os.environ.get(STATE_PREFIX_ENV) or None,
        reload_config=os.environ.get(RELOAD_ENV) == "1",
    )


def models_payload(director: Director) -> dict[str, Any]:
    """``GET /v1/models``: ``auto``, each tier and each deployment, as OpenAI model objects
    (with a ``director`` field: kind, tier, members)."""
    groups = director.groups()
    data: list[dict[str, Any]] = [
        {
            "id": AUTO,
            "object": "model",
            "created": 0,
            "owned_by": "director",
            "director": {"kind": "strategy", "strategy": director.config.llm.default_strategy},
        }
    ]
    for name, members in groups.items():
        info = director.providers.get(name)
        if info is None:
            data.append(
                {
                    "id": name,
                    "object": "model",
                    "created": 0,
                    "owned_by": "director",
                    "director": {"kind": "tier", "deployments": members},
                }
            )
        else:
            data.append(
                {
                    "id": name,
                    "object": "model",
                    "created": 0,
                    "owned_by": info.provider,
                    "director": {"kind": "deployment", "tier": info.tier, "model": info.model},
                }
            )
    return {"object": "list", "data": data}
