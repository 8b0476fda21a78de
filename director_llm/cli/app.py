"""``director-llm``: thin typer commands over the library.

Exit codes: 0 success, 1 the world failed (every provider), 2 bad config or input.
Diagnostics go to stderr; ``--json`` output goes to stdout alone. Commands that do not call
a model (``check-config``) never import litellm.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from director_llm.errors import DirectorError

app = typer.Typer(
    name="director-llm",
    help="Robust, cheap and fast LLM calls for Director, from one config file.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped output is not squeezed into 80 columns (rich's default without a terminal).
out = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160)
err = Console(stderr=True)

ConfigOpt = Annotated[
    Optional[Path],
    typer.Option("--config", "-c", help="Config file (default: $DIRECTOR_CONFIG, else configs/director.toml).",
                 envvar="DIRECTOR_CONFIG", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object to stdout.")]


@app.callback()
def _root() -> None:
    """Robust, cheap and fast LLM calls for Director, from one config file."""


def fail(exc: DirectorError) -> typer.Exit:
    """Print a DirectorError as one clear message and return the Exit to raise."""
    err.print(f"[red]error[/]: {exc}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(exc.exit_code)


@app.command("check-config")
def check_config(
    path: Annotated[Optional[Path], typer.Argument(help="Config file to check.", show_default=False)] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    strict: Annotated[bool, typer.Option("--strict", help="Treat warnings (missing keys, unknown prices) as errors.")] = False,
) -> None:
    """Validate a config and show what it resolves to, without calling any model."""
    from director_llm.config.loading import load_config, resolve_config_path
    from director_llm.config.report import config_report

    source = resolve_config_path(path or config)
    try:
        cfg = load_config(source)
    except DirectorError as exc:
        if as_json:
            print(json.dumps({"source": str(source), "valid": False, "error": str(exc)}))
        raise fail(exc) from None
    report = config_report(cfg, source=str(source), strict=strict)
    if as_json:
        print(json.dumps(report, indent=2, default=str))
    else:
        from director_llm.cli.render import render_config_report

        render_config_report(out, report)
    if not report["valid"]:
        raise typer.Exit(2)


# Feature commands live in their own modules (cmd_*.py) and register on ``app`` when imported.
COMMAND_MODULES: tuple[str, ...] = ("cmd_cache", "cmd_costs", "cmd_classify", "cmd_chat", "cmd_health", "cmd_eval")


def _register_commands() -> None:
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"director_llm.cli.{name}")


_register_commands()


def main() -> None:
    """Console-script entry point: no tracebacks for errors we raise on purpose."""
    try:
        app()
    except DirectorError as exc:  # commands normally handle these; this is the safety net
        err.print(f"[red]error[/]: {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    # ``python -m director_llm.cli.app`` runs this file as ``__main__``; the command modules
    # register on the importable ``director_llm.cli.app.app``, so run that one.
    from director_llm.cli.app import main as _main

    _main()
