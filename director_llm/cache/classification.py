"""Cached classifications: their key, and the codec that refuses an entry it cannot trust.

A classification read from Redis or the disk directory may have been written by anyone
who can write there. ``ClassificationCodec`` accepts an entry only if it is a valid
``IntentClassification`` (confidence a finite number in 0..1; entities, reasoning and
route within the bounds of ``intents.models``), at most ``MAX_ENTRY_BYTES`` long, whose
``flow`` is one of the flows the *current* config may answer (its flows and fallback).
Anything else raises, which the tiered cache turns into a miss: the entry is deleted from
that layer and the next answer overwrites it, with a (rate-limited) warning.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from director_llm.cache.keys import make_key, normalize_for_classification

__all__ = ["MAX_ENTRY_BYTES", "ClassificationCodec", "InvalidEntry", "classification_cache_key"]

#: A cached classification is a few hundred bytes; anything this large was not written by us.
MAX_ENTRY_BYTES = 64 * 1024
_CHECKED_MAX = 1024
_CLASSIFY_NS = {"kind": "classify", "v": 1}


class InvalidEntry(ValueError):
    """A cached classification that the current config could not have produced."""


def _normalize_turn(turn: Any) -> Any:
    if isinstance(turn, str):
        return normalize_for_classification(turn)
    if isinstance(turn, Mapping):
        content = turn.get("content")
        return {
            "role": turn.get("role"),
            "content": normalize_for_classification(content) if isinstance(content, str) else content,
        }
    return turn


def classification_cache_key(
    text: str,
    *,
    history: Sequence[Any] | None = None,
    tier: str | None = None,
    model: str | None = None,
    strategy: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str | None:
    """Key of a classification, or None when a part has no JSON form (call goes uncached).

    ``history`` should be what the prompt will show (strings or ``{"role", "content"}``);
    ``extra`` holds anything else a caller varies per call (e.g. a flow subset).
    """
    payload = {
        "text": normalize_for_classification(text),
        "history": [_normalize_turn(t) for t in history or ()],
        "tier": tier,
        "model": model,
        "strategy": strategy,
        "extra": dict(extra) if extra else None,
    }
    try:
        return make_key(_CLASSIFY_NS, payload)
    except (TypeError, ValueError):
        return None


class ClassificationCodec:
    """JSON <-> ``IntentClassification``, refusing entries outside ``valid_flows`` (module doc)."""

    def __init__(self, valid_flows: Iterable[str]) -> None:
        from pydantic import TypeAdapter

        from director_llm.intents.models import IntentClassification

        self.valid_flows = frozenset(valid_flows)
        self._adapter: Any = TypeAdapter(IntentClassification)
        # Entries already validated, by their exact bytes: a memory-layer hit is read on every
        # request, and validating the JSON again was most of a hit's cost. Readers must not
        # mutate what they get (DirectorCache.lookup_classification copies before it annotates).
        self._checked: OrderedDict[bytes, Any] = OrderedDict()

    def check(self, value: Any) -> None:
        """Raise ``InvalidEntry`` unless ``value``'s flow is one the config may answer."""
        if value.flow not in self.valid_flows:
            raise InvalidEntry(f"flow {value.flow[:80]!r} is not a configured flow or the fallback flow")

    def dumps(self, value: Any) -> bytes:
        self.check(value)  # never store what a reader would refuse
        return bytes(self._adapter.dump_json(value))

    def loads(self, data: bytes) -> Any:
        known = self._checked.get(data)
        if known is not None:
            self._checked.move_to_end(data)
            return known
        if len(data) > MAX_ENTRY_BYTES:
            raise InvalidEntry(f"entry of {len(data)} bytes (at most {MAX_ENTRY_BYTES})")
        value = self._adapter.validate_json(data)  # types, confidence range, bounds
        self.check(value)
        self._checked[bytes(data)] = value
        if len(self._checked) > _CHECKED_MAX:
            self._checked.popitem(last=False)
        return value
