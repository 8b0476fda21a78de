"""The classification cascade: the free local tier first, LLM tiers only when it is unsure.

The cascade is a candidate order, decided here and run by the engine::

    local predicts (~1-2 ms, in-process, no LiteLLM)
      - no usable LLM tier (local-only config, keys missing)     -> local answer
      - confidence >= tier_thresholds.local and not complex      -> local answer
      - else escalate: plan the LLM tiers (the local confidence nudges ``adaptive``
        towards a stronger tier), the local tier last
        (over budget / nothing servable                          -> local answer)
    every LLM deployment failed, or the budget refused           -> local answer
    (the last resort: a request the local tier can serve is never lost)

Strategies: ``cost``, ``latency`` and ``adaptive`` take the local shortcut (it is both the
cheapest and the fastest tier). ``quality``, or a pinned tier/model, skips it whenever an
LLM tier is usable (the caller asked for an LLM answer); the local tier stays the last resort.

Every answer's ``route.reason`` says which branch was taken, e.g.
``local confident (0.93 >= 0.55)`` or ``local unsure (0.31 < 0.55) -> adaptive: ...``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from director_llm.selection.complexity import estimate_complexity

__all__ = ["SKIP_LOCAL_STRATEGIES", "Decision", "decide", "last_resort_reason", "user_turns"]

SKIP_LOCAL_STRATEGIES = frozenset({"quality"})
"""Strategies that skip the local shortcut when an LLM tier is usable."""


@dataclass(frozen=True, slots=True)
class Decision:
    """``answer``: the local prediction is the answer; ``escalate``: ask the LLM tiers."""

    action: Literal["answer", "escalate"]
    reason: str


def local_first(strategy: str, *, pinned: bool, llm_usable: bool) -> bool:
    """Whether the local tier is asked before the LLM tiers."""
    return not llm_usable or not (pinned or strategy in SKIP_LOCAL_STRATEGIES)


def user_turns(text: str, history: Sequence[Any] | None) -> list[dict[str, Any]]:
    """The user's words as messages (their complexity counts, not our prompt's)."""
    turns = [dict(h) if isinstance(h, Mapping) else {"role": "user", "content": str(h)} for h in (history or [])]
    return [*turns, {"role": "user", "content": text}]


def decide(
    confidence: float,
    *,
    escalate_below: float,
    fallback_below: float,
    llm_usable: bool,
    words: Sequence[Mapping[str, Any]],
) -> Decision:
    """The cascade's choice for a local prediction of ``confidence``."""
    if not llm_usable:
        return Decision(
            "answer", f"local only: no usable LLM tier (confidence {confidence:.2f}, fallback below {fallback_below:g})"
        )
    if confidence < escalate_below:
        return Decision("escalate", f"local unsure ({confidence:.2f} < {escalate_below:g})")
    complexity = estimate_complexity(list(words), local_confidence=confidence)
    if complexity.level == "complex":
        return Decision("escalate", f"local confident ({confidence:.2f}) but the request is {complexity}")
    return Decision("answer", f"local confident ({confidence:.2f} >= {escalate_below:g})")


def last_resort_reason(error: BaseException | str) -> str:
    """The route reason of a local answer given because the LLM tiers could not."""
    if isinstance(error, str):
        return f"local last resort: {error}"
    summary = str(error).split("\n")[0][:200]
    return f"local last resort: the LLM tiers failed ({type(error).__name__}: {summary})"
