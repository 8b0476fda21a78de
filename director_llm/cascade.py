"""The classification cascade: the free local tier first, LLM tiers only when it is unsure.

``attach_cascade(director, classifier)`` registers two steps on the ``intents.Classifier``
(after the cache lookup, so a cached answer still wins)::

    pre_llm:      local predicts (~1-2 ms, in-process, no LiteLLM)
                  - no usable LLM tier (local-only config, keys missing)  -> local answer
                  - confidence >= tier_thresholds.local and not complex     -> local answer
                  - else: plan_route(strategy, local_confidence=...)       -> escalate
                    (over budget / nothing servable                        -> local answer)
    on_llm_error: every LLM deployment failed, or the budget refused       -> local answer
                  (the last resort: a request the local tier can serve is never lost)

Strategies: ``cost``, ``latency`` and ``adaptive`` take the local shortcut (it is both the
cheapest and the fastest tier). ``quality`` skips it whenever an LLM tier is usable (the
caller asked for the strongest answer); the local tier is still its last resort. Escalation
passes the local confidence to the selection hook's complexity estimate, so an unsure local
answer nudges ``adaptive`` towards a stronger tier.

Every answer's ``route.reason`` says which branch was taken, e.g.
``local confident (0.93 >= 0.55)`` or ``local unsure (0.31 < 0.55) -> adaptive: ...``.

``local_for_classification_only`` is a Router filter: the local deployment answers only
classification JSON, so chat requests (``Director.acompletion``) must never reach it through
a fallback chain; only classifications and explicit pins do.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from director_llm.config.semantics import LLM_TIERS
from director_llm.errors import BudgetExceededError, DirectorError, ProviderError

if TYPE_CHECKING:
    from director_llm.director import Director
    from director_llm.intents.classifier import Classifier, ClassifyRequest
    from director_llm.intents.models import IntentClassification
    from director_llm.local_tier import LocalTier

__all__ = ["Cascade", "attach_cascade", "local_for_classification_only"]

log = logging.getLogger("director_llm.cascade")

#: Strategies that skip the local shortcut when an LLM tier is usable.
SKIP_LOCAL_STRATEGIES = frozenset({"quality"})
_NOTE = "cascade.local"  # ClassifyRequest.notes key of the local prediction


class Cascade:
    """The cascade steps of one Director (see the module docstring)."""

    def __init__(self, director: Director, tier: LocalTier) -> None:
        self.director = director
        self.tier = tier

    # -- what is available -------------------------------------------------------------------
    def llm_usable(self) -> bool:
        """Whether any LLM deployment could be called (keys present), decided without
        building the Router, so a local-only config never imports LiteLLM."""
        return any(d.tier in LLM_TIERS for d in self.director.usable_deployments())

    # -- pre_llm -----------------------------------------------------------------------------
    async def pre_llm(self, req: ClassifyRequest) -> IntentClassification | None:
        strategy = req.strategy or self.director.config.llm.default_strategy
        llm = self.llm_usable()
        if llm and (strategy in SKIP_LOCAL_STRATEGIES or req.tier is not None):
            return None  # the caller wants an LLM answer; local stays the last resort
        pred = await self.tier.apredict(req.text)
        req.notes[_NOTE] = pred
        threshold = self.tier.escalate_below
        conf = pred.confidence
        if not llm:
            return self.tier.classification(
                pred, started=req.started,
                reason=f"local only: no usable LLM tier (confidence {conf:.2f}, fallback below "
                       f"{self.tier.confidence_threshold:g})")
        complexity = None
        if conf >= threshold:
            from director_llm.selection.complexity import estimate_complexity

            complexity = estimate_complexity(self._messages(req), local_confidence=conf)
            if complexity.level != "complex":
                return self.tier.classification(pred, started=req.started,
                                                reason=f"local confident ({conf:.2f} >= {threshold:g})")
        why = (f"local unsure ({conf:.2f} < {threshold:g})" if complexity is None
               else f"local confident ({conf:.2f}) but the request is {complexity}")
        return await self._escalate(req, strategy, why)

    async def _escalate(self, req: ClassifyRequest, strategy: str, why: str) -> IntentClassification | None:
        from director_llm.selection.strategies import plan_route

        pred = req.notes[_NOTE]
        try:
            selection, _ = await plan_route(self.director, self._messages(req), strategy=strategy,
                                            local_confidence=pred.confidence)
        except BudgetExceededError as exc:
            return self.tier.classification(pred, started=req.started,
                                            reason=f"{why}; every LLM tier over budget, answered locally ({exc})")
        except ProviderError as exc:
            return self.tier.classification(pred, started=req.started,
                                            reason=f"{why}; no LLM tier can serve, answered locally ({exc})")
        req.route_plan = (selection.tier, f"{why} -> {selection.reason}")
        return None

    @staticmethod
    def _messages(req: ClassifyRequest) -> list[dict[str, Any]]:
        # The complexity of the user's words, not of our classification prompt around them.
        history = [h if isinstance(h, dict) else {"role": "user", "content": str(h)} for h in (req.history or [])]
        return [*history, {"role": "user", "content": req.text}]

    # -- on_llm_error ------------------------------------------------------------------------
    async def on_llm_error(self, req: ClassifyRequest, exc: Exception) -> IntentClassification | None:
        pred = req.notes.get(_NOTE)
        try:
            if pred is None:
                pred = await self.tier.apredict(req.text)
        except DirectorError:  # the local tier cannot train: the LLM's error is the answer
            log.warning("local tier unavailable as last resort", exc_info=True)
            return None
        usage = getattr(exc, "usage", None) or {}
        attempts = list(getattr(exc, "attempts", None) or [])
        tried = list(dict.fromkeys(a[0] for a in attempts if a))
        summary = str(exc).split("\n")[0][:200]
        return self.tier.classification(
            pred, started=req.started, extra_cost_usd=float(usage.get("cost_usd") or 0.0), tried=tried,
            attempts=int(usage.get("calls") or len(attempts)),
            reason=f"local last resort: the LLM tiers failed ({type(exc).__name__}: {summary})")


def attach_cascade(director: Director, classifier: Classifier) -> Cascade | None:
    """Register the cascade on ``classifier`` when the config has a local tier."""
    tier = director.local_tier
    if tier is None:
        return None
    cascade = Cascade(director, tier)
    classifier.pre_llm.append(cascade.pre_llm)
    classifier.on_llm_error.append(cascade.on_llm_error)
    return cascade


async def local_for_classification_only(group: str, deployments: list[dict], request_kwargs: dict) -> list[dict]:
    """Router filter: drop local deployments from chat requests the Director routed (they
    would answer classification JSON to a chat); classifications and raw pins keep them."""
    from director_llm.router.build import director_meta

    if not any((d.get("model_info") or {}).get("director_tier") == "local" for d in deployments):
        return deployments
    meta = director_meta(request_kwargs)
    if not meta or meta.get("purpose") == "classify_intent":
        return deployments
    if meta.get("group") == group:
        return deployments  # the caller pinned this very group
    return [d for d in deployments if (d.get("model_info") or {}).get("director_tier") != "local"]
