"""Config loading: file -> text -> dict -> ``DirectorConfig``, with errors people can act on.

Every failure is one ``ConfigError`` whose message starts with the file name and names the
line (syntax errors) or the dotted key (schema errors), what was expected and what was found,
e.g. ``configs/director.toml: llm.budget_per_hour: expected a number >= 0, got "ten"``.
This module must stay light: it never imports litellm.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from director_llm.config.models import DirectorConfig
from director_llm.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("configs/director.toml")
CONFIG_ENV_VAR = "DIRECTOR_CONFIG"
_SUFFIXES = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml"}


def resolve_config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """``path``, else ``$DIRECTOR_CONFIG``, else ``configs/director.toml``."""
    if path is not None:
        return Path(path)
    env = os.environ.get(CONFIG_ENV_VAR)
    return Path(env) if env else DEFAULT_CONFIG_PATH


def load_config(path: str | os.PathLike[str] | None = None) -> DirectorConfig:
    """Read, parse and validate a config file (TOML or YAML, by suffix).

    Raises ``ConfigError`` naming the file and the line or key on any problem, including
    semantic ones LiteLLM would only find at run time (bad fallback targets, cycles).
    """
    p = resolve_config_path(path)
    if not p.exists():
        hint = f" (set ${CONFIG_ENV_VAR} or pass a path)" if path is None else ""
        raise ConfigError(f"{p}: file not found{hint}", path=str(p))
    if p.is_dir():
        raise ConfigError(f"{p}: is a directory, expected a .toml or .yaml file", path=str(p))
    fmt = _SUFFIXES.get(p.suffix.lower())
    if fmt is None:
        raise ConfigError(f"{p}: unknown file type {p.suffix!r}; use .toml, .yaml or .yml", path=str(p))
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})", path=str(p)) from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read file: {exc.strerror}", path=str(p)) from None
    return parse_config_text(text, fmt=fmt, source=str(p))


def parse_config_text(text: str, *, fmt: str = "toml", source: str = "<config>") -> DirectorConfig:
    """Parse and validate config text; ``source`` names it in error messages."""
    data = _parse(text, fmt, source)
    config = validate_config_dict(data, source=source)
    # Semantic checks need the deployments; imported here to keep the import graph acyclic.
    from director_llm.config.semantics import check_semantics

    base_dir = Path(source).parent if source and not source.startswith("<") else None
    errors = [p for p in check_semantics(config, base_dir=base_dir) if p.level == "error"]
    if errors:
        lines = [f"{source}: {p.key}: {p.message}" for p in errors]
        raise ConfigError("\n".join(lines), path=source, key=errors[0].key, problems=lines)
    return config


def _parse(text: str, fmt: str, source: str) -> dict[str, Any]:
    if fmt == "toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            msg = str(exc)
            m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
            line = int(m.group(1)) if m else None
            what = re.sub(r"\s*\(at line \d+, column \d+\)", "", msg)
            where = f"line {m.group(1)}, column {m.group(2)}" if m else "syntax"
            raise ConfigError(f"{source}: {where}: invalid TOML: {what}", path=source, line=line) from None
        return data
    import yaml  # only YAML users pay for the import

    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        where = f"line {line}, column {mark.column + 1}" if mark else "syntax"
        raise ConfigError(f"{source}: {where}: invalid YAML: {exc.problem or exc}", path=source, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}", path=source) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level, got {_kind(data)}", path=source)
    return data


def validate_config_dict(data: dict[str, Any], *, source: str = "<config>") -> DirectorConfig:
    """Validate a parsed dict; pydantic errors become one readable ``ConfigError``."""
    try:
        return DirectorConfig.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(err, data) for err in exc.errors(include_url=False)]
        # Deduplicate while keeping order (unions can repeat the same complaint).
        problems = list(dict.fromkeys(problems))
        lines = [f"{source}: {p}" for p in problems]
        first_key = _dotted(exc.errors()[0]["loc"]) if exc.errors() else None
        raise ConfigError("\n".join(lines), path=source, key=first_key, problems=lines) from None


def _dotted(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if not (isinstance(p, str) and p.startswith(("function-", "literal[")))]
    return ".".join(parts) or "<root>"


def _kind(value: object) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)


def _show(value: object) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return f"a list ({len(value)} items)" if len(value) > 3 else repr(value)
    return repr(value).lower() if isinstance(value, bool) else repr(value)


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class that owns the key at ``loc`` (for "did you mean")."""
    from director_llm.config import models as m

    model: type[BaseModel] | None = DirectorConfig
    path = list(loc[:-1])
    mapping_fields = {("DirectorConfig", "providers"): m.ProviderConfig,
                      ("ProviderConfig", "overrides"): m.ModelOverride,
                      ("IntentsConfig", "flows"): m.FlowConfig}
    i = 0
    while i < len(path) and model is not None:
        name = str(path[i])
        field = model.model_fields.get(name)
        if field is None:
            return None
        item_model = mapping_fields.get((model.__name__, name))
        if item_model is not None:
            model, i = item_model, i + 2  # skip the user's key (provider/model/flow name)
            continue
        ann = field.annotation
        model = next((t for t in getattr(ann, "__args__", (ann,)) if isinstance(t, type) and issubclass(t, BaseModel)), None)
        i += 1
    return model


_EXPECTED = {
    "float_parsing": "a number", "float_type": "a number", "int_parsing": "an integer",
    "int_type": "an integer", "int_from_float": "an integer", "bool_parsing": "true or false",
    "bool_type": "true or false", "string_type": "a string", "list_type": "a list",
    "dict_type": "a table", "model_type": "a table", "model_attributes_type": "a table",
}


def _describe(err: dict[str, Any], data: dict[str, Any]) -> str:
    loc = tuple(err["loc"])
    key = _dotted(loc)
    kind = err["type"]
    found = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        model = _model_at(loc)
        options = sorted(model.model_fields) if model else []
        close = difflib.get_close_matches(str(loc[-1]), options, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else (f"; known keys: {', '.join(options)}" if options else "")
        return f"{key}: unknown key{hint}"
    if kind == "missing":
        if loc and loc[-1] == "kind":
            return (f"{key}: required for a provider section with a custom name; set kind to one of "
                    "ollama, openai, gemini, anthropic, openai_compatible, local")
        return f"{key}: required key is missing"
    if kind in ("literal_error", "enum"):
        expected = ctx.get("expected", "")
        close = difflib.get_close_matches(str(found), re.findall(r"'([^']+)'", expected), n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"{key}: expected one of {expected}, got {_show(found)}{hint}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()), "")
        return f"{key}: expected a number {op} {_num(bound)}, got {_show(found)}"
    if kind in _EXPECTED:
        expected = _EXPECTED[kind]
        bound = _bound_hint(loc)
        return f"{key}: expected {expected}{bound}, got {_show(found)}"
    if kind == "string_too_short":
        return f"{key}: must not be empty"
    if kind == "value_error":
        return f"{key}: {str(err.get('msg', '')).removeprefix('Value error, ')}"
    return f"{key}: {err.get('msg', kind)}, got {_show(found)}"


def _bound_hint(loc: tuple[Any, ...]) -> str:
    """' >= 0' when the field at ``loc`` has such a constraint, so messages state the full rule."""
    model = _model_at(loc)
    field = model.model_fields.get(str(loc[-1])) if model else None
    if field is None:
        return ""
    for meta in field.metadata:
        for attr, op in (("ge", ">="), ("gt", ">")):
            value = getattr(meta, attr, None)
            if value is not None:
                return f" {op} {_num(value)}"
    return ""


def _num(value: object) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)
