"""``director-llm``: thin typer commands over the library.

Exit codes: 0 success, 1 the world failed (every provider), 2 bad config or input.
Diagnostics go to stderr; ``--json`` output (errors included: ``{"error": {"type",
"message"}}``) goes to stdout alone. Commands that do not call a model (``check-config``,
``schema``, ``init``) never import litellm.

Output safety: text that did not come from this package (error messages quoting an
upstream body, a model's reasoning, a config value) may contain ``[...]``, which rich would
read as markup (a crash on ``[/]``, injected styles or links). Such text is always printed
escaped or as ``rich.text.Text``; only our own literal markup is interpreted.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from director_llm.errors import DirectorError

app = typer.Typer(
    name="director-llm",
    help="Robust, cheap and fast LLM calls for Director, from one config file.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# Piped output is not squeezed into 80 columns (rich's default without a terminal).
out = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160)
err = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file (default: $DIRECTOR_CONFIG, else ./configs/director.toml, else the built-in default).",
        envvar="DIRECTOR_CONFIG",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object to stdout (errors too).")]


def _show_version(value: bool) -> None:
    if value:
        from director_llm import __version__

        print(f"director-llm {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool | None,
        typer.Option("--version", "-V", callback=_show_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Robust, cheap and fast LLM calls for Director, from one config file."""


def error_json(exc: BaseException) -> str:
    """The ``--json`` form of an error: ``{"error": {"type", "message"}}``."""
    return json.dumps({"error": {"type": type(exc).__name__, "message": str(exc)}}, ensure_ascii=False)


def print_error(exc: BaseException, *, label: str = "error") -> None:
    """One error line on stderr, printed as plain text (never parsed as markup)."""
    err.print(Text.assemble((label, "red"), ": ", str(exc)), highlight=False, soft_wrap=True)


def fail(exc: DirectorError, *, as_json: bool = False) -> typer.Exit:
    """Report ``exc`` (JSON on stdout with ``as_json``, else one line on stderr) and return the
    Exit to raise, with the error's exit code."""
    if as_json:
        print(error_json(exc))
    else:
        print_error(exc)
    return typer.Exit(exc.exit_code)


@app.command("check-config")
def check_config(
    path: Annotated[Path | None, typer.Argument(help="Config file to check.", show_default=False)] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Treat warnings (missing keys, unknown prices) as errors.")
    ] = False,
) -> None:
    """Validate a config and show what it resolves to, without calling any model."""
    from director_llm.config.loading import load_config, resolve_config_path
    from director_llm.config.report import config_report

    source = resolve_config_path(path or config)
    try:
        cfg = load_config(source)
    except DirectorError as exc:
        if as_json:
            problems = getattr(exc, "problems", [str(exc)])
            print(
                json.dumps(
                    {
                        "source": str(source),
                        "valid": False,
                        "error": {"type": type(exc).__name__, "message": str(exc), "problems": problems},
                    },
                    ensure_ascii=False,
                )
            )
            raise typer.Exit(exc.exit_code) from None
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
COMMAND_MODULES: tuple[str, ...] = (
    "cmd_init",
    "cmd_classify",
    "cmd_chat",
    "cmd_eval",
    "cmd_costs",
    "cmd_health",
    "cmd_cache",
    "cmd_metrics",
    "cmd_serve",
    "cmd_export",
)


def _register_commands() -> None:
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"director_llm.cli.{name}")


_register_commands()


def _tidy(command: Any) -> Any:
    """Help without a ``<bool>`` type next to flags (``--json``, ``--help``): they take no value."""
    for param in getattr(command, "params", []):
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    original = command.get_help_option

    def help_option(ctx: Any) -> Any:
        option = original(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = help_option
    for sub in getattr(command, "commands", {}).values():
        _tidy(sub)
    return command


@functools.cache
def cli() -> Any:
    """The click command behind ``director-llm`` (what ``main`` runs; tests may invoke it)."""
    return _tidy(typer.main.get_command(app))


def main() -> None:
    """Console-script entry point: no tracebacks for errors we raise on purpose."""
    try:
        cli().main(prog_name="director-llm")
    except DirectorError as exc:  # commands normally handle these; this is the safety net
        print_error(exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    # ``python -m director_llm.cli.app`` runs this file as ``__main__``; the command modules
    # register on the importable ``director_llm.cli.app.app``, so run that one.
    from director_llm.cli.app import main as _main

    _main()
