"""Prices and capabilities from LiteLLM's bundled cost map, read as data.

``import litellm`` costs seconds; its price map is a JSON file inside the package, so we find
the package with ``importlib.util.find_spec`` (which does not execute it) and read the file.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_COST_MAP_FILE = "model_prices_and_context_window_backup.json"


@dataclass(frozen=True)
class Price:
    """USD per token, and where the number came from (``litellm:<key>``, ``config``,
    ``local`` or ``unknown``). An unknown price is never silently $0: under a budget it is
    ``assumed`` to be the most expensive price configured (``providers.budgeted_prices``)."""

    input_per_token: float | None
    output_per_token: float | None
    source: str
    assumed: bool = False
    """True when the numbers are a stand-in for a price nobody gave (see above)."""

    @property
    def known(self) -> bool:
        return self.input_per_token is not None and self.output_per_token is not None

    def per_million(self) -> tuple[float | None, float | None]:
        def f(v: float | None) -> float | None:
            return None if v is None else round(v * 1_000_000, 6)

        return f(self.input_per_token), f(self.output_per_token)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """Cost of a call. An unknown price counts as 0 here; under a budget no deployment keeps
        an unknown price (it is budgeted at the most expensive one, or refused)."""
        return prompt_tokens * (self.input_per_token or 0.0) + completion_tokens * (self.output_per_token or 0.0)


@functools.lru_cache(maxsize=1)
def cost_map_path() -> Path | None:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / _COST_MAP_FILE
    return path if path.exists() else None


@functools.lru_cache(maxsize=1)
def cost_map() -> dict[str, dict[str, Any]]:
    """LiteLLM's bundled model map (empty if LiteLLM is not installed)."""
    path = cost_map_path()
    if path is None:
        return {}
    with path.open("rb") as f:
        data = json.load(f)
    data.pop("sample_spec", None)
    return data


def lookup(candidates: list[str]) -> tuple[str, dict[str, Any]] | None:
    """The first of ``candidates`` present in the cost map, with its entry."""
    table = cost_map()
    for key in candidates:
        entry = table.get(key)
        if entry is not None:
            return key, entry
    return None
