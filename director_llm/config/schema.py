"""The config's published forms, generated from the pydantic models so they cannot drift:

- ``json_schema()``: the JSON Schema editors use to complete and validate ``director.toml``
  / ``.yaml`` (``director-llm schema``; committed as ``docs/director.schema.json``);
- ``reference_markdown()``: ``docs/configuration.md``, one table per section.

``scripts/gen_config_docs.py`` writes both files; a test fails when either is stale.
"""

from __future__ import annotations

import copy
import json
import re
import types
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from director_llm.config.models import (
    KNOWN_KINDS,
    CachingConfig,
    CircuitBreakerConfig,
    DirectorConfig,
    FlowConfig,
    IntentsConfig,
    LLMConfig,
    ModelOverride,
    ObservabilityConfig,
    ProviderConfig,
    ServeConfig,
)

#: (TOML header, model, one line about the section) in the order of the reference page.
SECTIONS: tuple[tuple[str, type[BaseModel], str], ...] = (
    ("[llm]", LLMConfig, "Budgets, strategy, timeouts, retries and fallbacks."),
    ("[llm.circuit_breaker]", CircuitBreakerConfig, "When a deployment is considered dead and skipped."),
    (
        "[providers.<name>]",
        ProviderConfig,
        "One section per provider. The name is free; `ollama`, `openai`, `gemini`, `anthropic`, "
        "`openai_compatible`, `litellm_proxy` and `local` also set `kind`.",
    ),
    ("[providers.<name>.overrides.<model>]", ModelOverride, "Per-model settings; `<model>` is listed in `models`."),
    ("[caching]", CachingConfig, "Cache layers memory -> Redis -> disk; a layer whose setting is absent is off."),
    ("[intents]", IntentsConfig, "How messages are classified into flows."),
    ("[intents.flows.<name>]", FlowConfig, "One flow (intent) of the application."),
    ("[observability]", ObservabilityConfig, "Prometheus metrics, OpenTelemetry traces, the request log line."),
    ("[serve]", ServeConfig, "The OpenAI-compatible HTTP gateway (`director-llm serve`, [serving](serving.md))."),
)


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a config file. A section named after a provider kind
    (``[providers.openai]``) needs no ``kind``; any other name does, as when loading."""
    schema = DirectorConfig.model_json_schema()
    defs = schema["$defs"]
    named = copy.deepcopy(defs["ProviderConfig"])
    named["required"] = [r for r in named.get("required", []) if r != "kind"]
    if not named["required"]:
        del named["required"]
    named["title"] = "ProviderSection"
    named["description"] = "A provider section named after its kind: `kind` may be left out."
    defs["ProviderSection"] = named
    providers = schema["properties"]["providers"]
    providers["properties"] = {k: {"$ref": "#/$defs/ProviderSection"} for k in KNOWN_KINDS}
    rest = {k: v for k, v in schema.items() if k != "title"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "director-llm config (director.toml / director.yaml)",
        **rest,
    }


def json_schema_text() -> str:
    """``json_schema()`` as the committed file holds it."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


# -- the reference page ------------------------------------------------------------------------
def _md(text: str) -> str:
    """A docstring as one markdown table cell: ``x`` -> `x`, one line, pipes escaped."""
    text = re.sub(r"``([^`]+)``", r"`\1`", " ".join(text.split()))
    return text.replace("|", "\\|")


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return " or ".join(_type_name(a) for a in inner)
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}s" if args else "list"
    if origin is dict:
        key, value = args
        if isinstance(value, type) and issubclass(value, BaseModel):
            return "sections by name"
        return f"table: {_type_name(key)} -> {_type_name(value)}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(annotation, str(annotation))


def _constraints(field: FieldInfo) -> str:
    parts = []
    for meta in field.metadata:
        for attr, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            value = getattr(meta, attr, None)
            if value is not None:
                parts.append(f"{op} {value:g}")
        if getattr(meta, "min_length", None):
            parts.append("not empty")
    return f" ({', '.join(parts)})" if parts else ""


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            return "its section"
        return f"`{json.dumps(value)}`"
    if field.default is None or field.default is PydanticUndefined:
        return "not set"
    if isinstance(field.default, bool):
        return f"`{str(field.default).lower()}`"
    if isinstance(field.default, str):
        return f'`"{field.default}"`'
    return f"`{field.default:g}`" if isinstance(field.default, float) else f"`{field.default}`"


def _section(header: str, model: type[BaseModel], about: str) -> list[str]:
    lines = [f"## `{header}`", "", about, "", "| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        type_name = _type_name(field.annotation) + _constraints(field)
        lines.append(f"| `{name}` | {type_name} | {_default(field)} | {_md(field.description or '')} |")
    return [*lines, ""]


def reference_markdown() -> str:
    """``docs/configuration.md``: every key of every section, from the models' docstrings."""
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by scripts/gen_config_docs.py from director_llm/config/models.py: edit the",
        "     field docstrings there, then run `python scripts/gen_config_docs.py`. -->",
        "",
        "One file, TOML or YAML (same keys), read from `--config PATH`, else `$DIRECTOR_CONFIG`, else",
        "`./configs/director.toml`, else the default config shipped in the package. Keys not marked",
        "required have defaults; a config needs at least one enabled provider (the embedded `local`",
        'one is enough). Unknown keys are errors with a "did you mean". Check a file with',
        "`director-llm check-config PATH`; start one with `director-llm init`.",
        "",
        "Editors: the JSON Schema [`director.schema.json`](director.schema.json) (also printed by",
        "`director-llm schema`) gives completion and validation. For TOML with Taplo / Even Better",
        "TOML put `#:schema ./director.schema.json` on the first line (a path or URL to the file);",
        "for YAML with the Red Hat YAML extension, `# yaml-language-server: $schema=./director.schema.json`.",
        "",
    ]
    for header, model, about in SECTIONS:
        lines += _section(header, model, about)
    return "\n".join(lines).rstrip("\n") + "\n"
