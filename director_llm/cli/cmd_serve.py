"""``director-llm serve``: the OpenAI-compatible gateway (``director_llm.serve``) on uvicorn.

Exit codes: 2 when the ``serve`` extra is missing, the config is bad or ``[serve]
api_keys_env`` names a variable holding no token; 1 when the port cannot be bound.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from director_llm.cli.app import ConfigOpt, app, err, fail, print_error
from director_llm.cli.cmd_costs import PrefixOpt
from director_llm.errors import DirectorError

MISSING_EXTRA = "director-llm serve needs the serve extra (Starlette and uvicorn): pip install 'director-llm[serve]'"


@app.command("serve")
def serve(
    config: ConfigOpt = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (0.0.0.0 to accept other hosts: set api_keys_env).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            "--workers", "-w", min=1, max=64, help="Worker processes (share state through the config's Redis)."
        ),
    ] = 1,
    state_prefix: PrefixOpt = None,
    reload_config: Annotated[
        bool,
        typer.Option(
            "--reload-config",
            help="Reload the config file when it changes (an invalid file is logged and the old config keeps serving).",
        ),
    ] = False,
    log_level: Annotated[
        str, typer.Option("--log-level", help="uvicorn's log level: critical, error, warning, info, debug.")
    ] = "info",
) -> None:
    """Serve the OpenAI-compatible API (/v1/chat/completions, /v1/models, /v1/classify,
    /health, /metrics) until interrupted. See docs/serving.md."""
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError:
        print_error(ImportError(MISSING_EXTRA))
        raise typer.Exit(2) from None
    from director_llm.config.loading import load_config, resolve_config_path
    from director_llm.serve.app import CONFIG_ENV, RELOAD_ENV, STATE_PREFIX_ENV, create_app
    from director_llm.serve.auth import tokens_from_config

    source = resolve_config_path(config)
    try:
        cfg = load_config(source)
        secured = bool(tokens_from_config(cfg, str(source)))
        target = create_app(source, state_prefix=state_prefix, reload_config=reload_config) if workers == 1 else None
    except DirectorError as exc:
        raise fail(exc) from None
    if workers > 1 and cfg.redis_state_url is None:
        err.print(
            "[yellow]warning[/]: several workers without Redis ([llm] state_redis_url or [caching] redis_url): "
            "each keeps its own budget, breakers and cache",
            highlight=False,
        )
    if not secured and host not in ("127.0.0.1", "localhost", "::1"):
        err.print(
            f"[yellow]warning[/]: listening on {host} without authentication ([serve] api_keys_env)",
            highlight=False,
        )
    err.print(f"serving http://{host}:{port}/v1 ({workers} worker(s), config {source})", highlight=False)
    try:
        if target is not None:
            uvicorn.run(target, host=host, port=port, log_level=log_level, lifespan="on")
        else:
            # Worker processes import the app factory and read the config path from the environment.
            os.environ[CONFIG_ENV] = str(source.resolve())
            if state_prefix:
                os.environ[STATE_PREFIX_ENV] = state_prefix
            if reload_config:
                os.environ[RELOAD_ENV] = "1"
            uvicorn.run(
                "director_llm.serve.app:app_from_env",
                factory=True,
                host=host,
                port=port,
                workers=workers,
                log_level=log_level,
                lifespan="on",
            )
    except OSError as exc:
        print_error(OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}"))
        raise typer.Exit(1) from None
