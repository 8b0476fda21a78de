"""``director-llm init [PATH]`` writes a commented starter config; ``director-llm schema`` prints
the config's JSON Schema. Neither reads a config nor imports litellm."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from director_llm.cli.app import JsonOpt, app, err, fail
from director_llm.errors import InputError

PathArg = Annotated[
    Path | None,
    typer.Argument(
        help="Where to write the config (default: configs/director.toml, found there without --config).",
        show_default=False,
    ),
]


@app.command("init")
def init(
    path: PathArg = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite an existing file.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write a commented starter config: the local tier on, each LLM provider commented out."""
    from director_llm.config.sources import DEFAULT_CONFIG_PATH, packaged_default_path

    target = path or DEFAULT_CONFIG_PATH
    if target.suffix.lower() != ".toml":
        raise fail(
            InputError(
                f"{target}: init writes TOML; give a .toml path (YAML configs use the same keys: "
                "see docs/configuration.md)"
            ),
            as_json=as_json,
        )
    if target.exists() and not force:
        raise fail(
            InputError(f"{target} already exists; pass --force to overwrite it, or give another path"), as_json=as_json
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(packaged_default_path().read_text(encoding="utf-8"), encoding="utf-8")
    except OSError as exc:
        raise fail(InputError(f"cannot write {target}: {exc.strerror or exc}"), as_json=as_json) from None
    if as_json:
        print(json.dumps({"written": str(target)}))
        return
    shown = escape(str(target))
    err.print(
        f"wrote [bold]{shown}[/]: the embedded local tier is on, every LLM provider is commented out.\n"
        f"Check it with: director-llm check-config {shown}",
        highlight=False,
    )


@app.command("schema")
def schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.", show_default=False)
    ] = None,
) -> None:
    """Print the config's JSON Schema (for editor completion and validation of director.toml/YAML)."""
    from director_llm.config.schema import json_schema_text

    text = json_schema_text()
    if output is None:
        print(text, end="")
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise fail(InputError(f"cannot write {output}: {exc.strerror or exc}")) from None
    err.print(f"wrote {escape(str(output))}", highlight=False)
