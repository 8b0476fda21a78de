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
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from director_llm.config.models import DirectorConfig, FlowConfig, ModelOverride, ProviderConfig
from director_llm.config.parsing import excerpt, parse_text
from director_llm.config.sources import (
    CONFIG_ENV_VAR,
    DEFAULT_CONFIG_PATH,
    packaged_default_path,
    read_config_file,
    resolve_config_path,
)
from director_llm.errors import ConfigError

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_CONFIG_PATH",
    "load_config",
    "packaged_default_path",
    "parse_config_text",
    "resolve_config_path",
    "validate_config_dict",
]

MAX_LISTED_PROBLEMS = 20
"""A config with hundreds of mistakes gets the first ones and a count, not a wall of text."""


def load_config(path: str | os.PathLike[str] | None = None) -> DirectorConfig:
    """Read, parse and validate a config file (TOML or YAML, by suffix).

    ``path`` None: ``$DIRECTOR_CONFIG``, else ``./configs/director.toml``, else the default
    config shipped in the package. Raises ``ConfigError`` naming the file and the line or
    key on any problem, including semantic ones LiteLLM would only find at run time (bad
    fallback targets, cycles, a fallback flow that is not a flow, timeouts).
    """
    p = resolve_config_path(path)
    hint = f" (from ${CONFIG_ENV_VAR})" if path is None and os.environ.get(CONFIG_ENV_VAR) else ""
    text, fmt = read_config_file(p, hint=hint)
    return parse_config_text(text, fmt=fmt, source=str(p))


def parse_config_text(text: str, *, fmt: str = "toml", source: str = "<config>") -> DirectorConfig:
    """Parse and validate config text; ``source`` names it in error messages."""
    data = parse_text(text, fmt, source)
    config = validate_config_dict(data, source=source)
    from director_llm.config.semantics import check_semantics  # needs the deployments (providers.py)

    base_dir = Path(source).parent if source and not source.startswith("<") else None
    errors = [p for p in check_semantics(config, base_dir=base_dir) if p.level == "error"]
    if errors:
        raise _error(source, [f"{p.key}: {p.message}" for p in errors], key=errors[0].key)
    return config


def _error(source: str, problems: list[str], *, key: str | None) -> ConfigError:
    lines = [f"{source}: {p}" for p in problems]
    shown = lines[:MAX_LISTED_PROBLEMS]
    if len(lines) > MAX_LISTED_PROBLEMS:
        shown.append(f"{source}: ... and {len(lines) - MAX_LISTED_PROBLEMS} more problems")
    return ConfigError("\n".join(shown), path=source, key=key, problems=lines)


def validate_config_dict(data: dict[str, Any], *, source: str = "<config>") -> DirectorConfig:
    """Validate a parsed dict; pydantic errors become one readable ``ConfigError``."""
    try:
        return DirectorConfig.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        # Deduplicate while keeping order (unions can repeat the same complaint).
        problems = list(dict.fromkeys(_describe(err) for err in errors))
        first_key = _dotted(tuple(errors[0]["loc"])) if errors else None
        raise _error(source, problems, key=first_key) from None


def _dotted(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if not (isinstance(p, str) and p.startswith(("function-", "literal[")))]
    return ".".join(parts) or "<root>"


def _show(value: object) -> str:
    """A found value for an error message: short, whatever its size."""
    if isinstance(value, str):
        return f'"{excerpt(value, 60)}"'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return f"a list ({len(value)} items)" if len(value) > 3 or len(repr(value)) > 60 else repr(value)
    return repr(value).lower() if isinstance(value, bool) else excerpt(repr(value), 60)


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class that owns the key at ``loc`` (for "did you mean")."""
    model: type[BaseModel] | None = DirectorConfig
    path = list(loc[:-1])
    mapping_fields: dict[tuple[str, str], type[BaseModel]] = {
        ("DirectorConfig", "providers"): ProviderConfig,
        ("ProviderConfig", "overrides"): ModelOverride,
        ("IntentsConfig", "flows"): FlowConfig,
    }
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
        model = next(
            (t for t in getattr(ann, "__args__", (ann,)) if isinstance(t, type) and issubclass(t, BaseModel)), None
        )
        i += 1
    return model


_EXPECTED = {
    "float_parsing": "a number",
    "float_type": "a number",
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "finite_number": "a finite number",
}


#: Unknown keys that mean "an API key was pasted into the config".
_SECRET_KEYS = re.compile(r"(?i)^(api[_-]?key|key|apikey|token|secret|password|access[_-]?token|auth)$")


def _describe(err: Any) -> str:
    loc = tuple(err["loc"])
    key = _dotted(loc)
    kind = err["type"]
    found = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden" and _SECRET_KEYS.match(str(loc[-1])) and "providers" in loc[:1]:
        # Never echo the value. Worded so that the secret redactor leaves the advice intact.
        return (
            f"{key}: do not write API keys in a config file (the value is not shown). Move the key "
            "into an environment variable and name that variable here instead, e.g. "
            'api_key_env = "OPENAI_API_KEY"'
        )
    if kind == "extra_forbidden":
        model = _model_at(loc)
        options = sorted(model.model_fields) if model else []
        close = difflib.get_close_matches(str(loc[-1]), options, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else (f"; known keys: {', '.join(options)}" if options else "")
        return f"{key}: unknown key{hint}"
    if kind == "missing":
        if loc and loc[-1] == "kind":
            return (
                f"{key}: required for a provider section with a custom name; set kind to one of "
                "ollama, openai, gemini, anthropic, openai_compatible, litellm_proxy, local"
            )
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
        return f"{key}: {excerpt(str(err.get('msg', '')).removeprefix('Value error, '), 300)}"
    return f"{key}: {excerpt(err.get('msg', kind), 200)}, got {_show(found)}"


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
