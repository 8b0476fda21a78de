"""Size and depth bounds for JSON-like values that come from outside (model output, caches)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["check_json_bounds"]


def check_json_bounds(
    value: Any,
    *,
    max_depth: int,
    max_nodes: int | None = None,
    max_string_chars: int | None = None,
    what: str = "value",
) -> None:
    """Raise ``ValueError`` when ``value`` (dicts, lists, tuples, scalars) nests containers
    deeper than ``max_depth``, has more than ``max_nodes`` keys/items/scalars, holds a
    string or key longer than ``max_string_chars`` or a non-finite float. Iterative: a
    10 000-deep input costs no recursion."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    nodes = 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if max_nodes is not None and nodes > max_nodes:
            raise ValueError(f"{what} has more than {max_nodes} keys, items and values")
        if isinstance(item, (dict, list, tuple)):
            depth += 1
            if depth > max_depth:
                raise ValueError(f"{what} nests more than {max_depth} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    if max_string_chars is not None and isinstance(key, str) and len(key) > max_string_chars:
                        raise ValueError(f"{what} has a key longer than {max_string_chars} characters")
                    stack.append((child, depth))
            else:
                stack.extend((child, depth) for child in item)
        elif isinstance(item, str):
            if max_string_chars is not None and len(item) > max_string_chars:
                raise ValueError(f"{what} has a string longer than {max_string_chars} characters")
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"{what} holds a non-finite number")
