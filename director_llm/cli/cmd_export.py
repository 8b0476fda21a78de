"""``director-llm export litellm-proxy``: the config as a LiteLLM Proxy ``config.yaml``.

No LiteLLM import: the export reads the config and the provider table
(``director_llm.export``). Secrets stay ``os.environ/NAME`` references.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from director_llm.cli.app import ConfigOpt, app, err, fail
from director_llm.errors import DirectorError

export_app = typer.Typer(
    name="export", help="Write the config in another tool's format (a LiteLLM Proxy config).", no_args_is_help=True
)
app.add_typer(export_app, name="export")


@export_app.command("litellm-proxy")
def litellm_proxy(
    config: ConfigOpt = None,
    out_path: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the YAML to this file (default: stdout).", show_default=False),
    ] = None,
) -> None:
    """Print (or write with --out) a LiteLLM Proxy config.yaml equivalent to the config.

    Run the proxy with it: litellm --config config.yaml. What the proxy cannot express (the
    local tier, Director's budget semantics, the strategy) is listed in its comment header.
    """
    from director_llm.config.loading import load_config, resolve_config_path
    from director_llm.export import litellm_proxy_yaml

    source = resolve_config_path(config)
    try:
        text = litellm_proxy_yaml(load_config(source), source=str(source))
    except DirectorError as exc:
        raise fail(exc) from None
    if out_path is None:
        print(text, end="")
        return
    try:
        out_path.write_text(text, encoding="utf-8")
    except OSError as exc:
        err.print(f"error: cannot write {out_path}: {exc.strerror or exc}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    err.print(f"wrote {out_path}", markup=False, highlight=False)
