"""Config text -> dict, bounded: TOML or YAML that parses to a plain mapping, or ``ConfigError``.

YAML aliases make a small file stand for a huge document (a 666-byte "billion laughs" file
expands to ~10^9 values): PyYAML itself shares the aliased objects, but validating and
describing them walks every copy. So the composed YAML graph is measured *as expanded*
before anything is built from it: at most ``MAX_VALUES`` values and ``MAX_DEPTH`` levels,
and no alias that contains itself. Error messages quote at most a short excerpt.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

from director_llm.errors import ConfigError

MAX_VALUES = 200_000
"""Values (mapping keys and values, list items) in a document once its aliases are expanded."""
MAX_DEPTH = 64
"""Nesting levels of tables and lists."""
MAX_EXCERPT = 120
"""Characters of the file quoted in an error message."""


def excerpt(text: object, limit: int = MAX_EXCERPT) -> str:
    """``text`` cut to ``limit`` characters, on one line."""
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[:limit] + "..."


def parse_text(text: str, fmt: str, source: str) -> dict[str, Any]:
    """Parse config ``text`` (``fmt`` "toml" or "yaml"); ``source`` names it in errors."""
    data = _parse_toml(text, source) if fmt == "toml" else _parse_yaml(text, source)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level, got {_kind(data)}", path=source)
    return data


def _kind(value: object) -> str:
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _parse_toml(text: str, source: str) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        line = int(m.group(1)) if m else None
        what = excerpt(re.sub(r"\s*\(at line \d+, column \d+\)", "", msg))
        where = f"line {m.group(1)}, column {m.group(2)}" if m else "syntax"
        raise ConfigError(f"{source}: {where}: invalid TOML: {what}", path=source, line=line) from None
    except RecursionError:
        raise ConfigError(f"{source}: invalid TOML: arrays or tables nested too deeply", path=source) from None


def _parse_yaml(text: str, source: str) -> Any:
    import yaml  # only YAML users pay for the import

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}
        _check_size(node, source)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        where = f"line {line}, column {mark.column + 1}" if mark else "syntax"
        raise ConfigError(
            f"{source}: {where}: invalid YAML: {excerpt(exc.problem or exc.context or 'syntax error')}",
            path=source,
            line=line,
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {excerpt(exc)}", path=source) from None
    except RecursionError:
        raise ConfigError(
            f"{source}: invalid YAML: nested too deeply (more than {MAX_DEPTH} levels)", path=source
        ) from None
    finally:
        loader.dispose()


def _check_size(root: Any, source: str) -> None:
    """Refuse a composed YAML graph that expands past the bounds (aliases counted in full)."""
    import yaml

    sizes: dict[int, int] = {}  # node id -> expanded size (aliases share nodes: counted once each)
    active: set[int] = set()

    def children(node: Any) -> list[Any]:
        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        if isinstance(node, yaml.MappingNode):
            return [n for pair in node.value for n in pair]
        return []

    def size(node: Any, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise _too_big(source, node, "an alias (*name) refers to a collection that contains it")
        if depth > MAX_DEPTH:
            raise _too_big(source, node, f"nested more than {MAX_DEPTH} levels deep")
        active.add(key)
        total = 1
        for child in children(node):
            total += size(child, depth + 1)
            if total > MAX_VALUES:
                raise _too_big(source, node, f"more than {MAX_VALUES:,} values once its aliases (*name) are expanded")
        active.discard(key)
        sizes[key] = total
        return total

    size(root, 0)


def _too_big(source: str, node: Any, why: str) -> ConfigError:
    mark = getattr(node, "start_mark", None)
    line = mark.line + 1 if mark else None
    where = f"line {line}: " if line else ""
    return ConfigError(
        f"{source}: {where}refused: the YAML document is {why}; a config needs no such "
        "structure (remove the anchors &name / aliases *name)",
        path=source,
        line=line,
    )
