"""``director-llm metrics``: serve Prometheus metrics on ``/metrics`` (an exporter process).

It builds a Director from the config and serves, at each scrape:

* in multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set here and in the application's
  workers): every worker's counters and histograms, merged from that directory;
* with Redis (``[llm] state_redis_url`` or ``[caching] redis_url``): the shared breaker
  states and budget windows, re-read at each scrape.

Without either it has little to show: request counters live in the processes that serve
requests (mount ``director_llm.metrics.asgi_app`` there). The HTTP server is
prometheus_client's (a thread); each scrape asks the event loop for a refresh first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from director_llm.cli.app import ConfigOpt, app, err, fail, print_error
from director_llm.cli.cmd_costs import PrefixOpt
from director_llm.errors import ConfigError, DirectorError

SCRAPE_REFRESH_TIMEOUT_S = 5.0


class _Refreshing:
    """A collector that refreshes the exporter's gauges on the event loop, then yields what
    the registry to serve holds (prometheus_client calls ``collect`` from its server thread)."""

    def __init__(self, director: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.director = director
        self.loop = loop

    def collect(self) -> Iterator[Any]:
        telemetry = self.director.telemetry
        future = asyncio.run_coroutine_threadsafe(telemetry.refresh(own_state=False), self.loop)
        try:
            future.result(timeout=SCRAPE_REFRESH_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - a slow Redis must not fail the scrape; serve what is known
            future.cancel()
        registry = telemetry.exposed()
        if registry is not None:
            yield from registry.collect()


@app.command("metrics")
def metrics(
    config: ConfigOpt = None,
    port: Annotated[int, typer.Option("--port", "-p", help="Port to serve /metrics on (0: any free port).")] = 9464,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (0.0.0.0 to let other hosts scrape).")
    ] = "127.0.0.1",
    state_prefix: PrefixOpt = None,
) -> None:
    """Serve Prometheus metrics on http://HOST:PORT/metrics until interrupted.

    Shows every worker's metrics when PROMETHEUS_MULTIPROC_DIR is shared with them, and the
    shared breaker states and budget windows when the config uses Redis.
    """
    from director_llm.director import Director

    async def serve() -> None:
        async with Director.from_file(config, state_prefix=state_prefix) as director:
            if not director.config.observability.metrics:
                raise ConfigError(
                    "metrics are off in this config ([observability] metrics = false); turn them on to serve them"
                )
            from prometheus_client import CollectorRegistry, start_http_server

            director.telemetry.load()
            registry = CollectorRegistry(auto_describe=False)
            registry.register(_Refreshing(director, asyncio.get_running_loop()))
            try:
                server, thread = start_http_server(port, addr=host, registry=registry)
            except OSError as exc:
                print_error(OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}"))
                raise typer.Exit(1) from None
            url = f"http://{host}:{server.server_port}/metrics"
            print(f"serving {url}", flush=True)
            err.print(f"Prometheus metrics on {url} (Ctrl-C to stop)", highlight=False)
            try:
                await asyncio.Event().wait()
            finally:
                await asyncio.to_thread(server.shutdown)
                server.server_close()
                thread.join(timeout=2)

    try:
        asyncio.run(serve())
    except DirectorError as exc:
        raise fail(exc) from None
