"""Prometheus metrics over HTTP: ``asgi_app()`` to mount in any ASGI application.

::

    from fastapi import FastAPI
    from director_llm import Director
    from director_llm.metrics import asgi_app

    director = Director.from_file("configs/director.toml")
    app = FastAPI()
    app.mount("/metrics", asgi_app(director))

Each scrape refreshes the state gauges (budget windows, breakers, cache counters) and serves
the families listed in ``docs/observability.md``, in the text format (or OpenMetrics, gzip,
as the scraper asks: prometheus_client's negotiation). Without a ``director`` it serves, at
each scrape, the most recently built open Director of this process, or in multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``) every process's metrics. Importing this module is cheap:
prometheus_client is imported on the first scrape.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from director_llm.director import Director
    from director_llm.observability.telemetry import Telemetry

__all__ = ["ASGIApp", "asgi_app"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def asgi_app(director: Director | None = None) -> ASGIApp:
    """An ASGI app serving Prometheus metrics: ``director``'s, or (None) this process's open
    Director, or every process's in multiprocess mode (see the module docstring)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # served as the top-level app: nothing to start
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        from prometheus_client import make_asgi_app

        registry = await _registry(director.telemetry if director is not None else None)
        await make_asgi_app(registry)(scope, receive, send)

    return app


async def _registry(telemetry: Telemetry | None) -> Any:
    from director_llm.observability.prometheus import multiprocess_mode, multiprocess_registry
    from director_llm.observability.telemetry import latest

    if telemetry is None:
        telemetry = latest()
    if telemetry is not None:
        await telemetry.refresh()
        registry = telemetry.exposed()
        if registry is not None:
            return registry
    if multiprocess_mode():
        return multiprocess_registry()
    from prometheus_client import CollectorRegistry

    return CollectorRegistry()
