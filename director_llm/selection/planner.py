"""A request's plan: the ordered deployments to try, and why the first was chosen.

``Planner.plan`` runs for every request (complete, stream, classify, stream-classify):

1. the first group: the caller's pin (``model=`` / ``tier=``), else the strategy's choice
   over the tiers (complexity x remaining budget x health x context window, see
   ``selection.strategies``), with one ledger read when a budget is set;
2. the chain: the strategy's order of the other tiers, then the config's fallback chain
   of the first group (``[llm.fallbacks]``, derived tier order);
3. each group expanded into its deployments, ordered for the strategy (latency: lowest
   observed p50 first; cost: cheapest first; others: shuffled, which spreads load), minus
   those that cannot serve the request: without a capability it needs (tools, JSON schema
   output), with a context window smaller than the prompt, or the local classifier for a
   chat request. No deployment left because of a capability is the caller's ``InputError``.

The budget is only *read* here; each attempt's reservation is the real check, so a stale
read can make the plan optimistic, never overspend.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from director_llm.budget.guard import BudgetGuard, binding_remaining, fits, is_free
from director_llm.errors import BudgetBackendError, BudgetStoreDownError, InputError, ProviderError
from director_llm.providers import DeploymentInfo
from director_llm.request import Call
from director_llm.selection.complexity import Complexity, estimate_complexity
from director_llm.selection.strategies import NothingAffordable, TierOption, select
from director_llm.selection.topology import Topology
from director_llm.tokens import rough_tokens

__all__ = ["Plan", "Planner"]


@dataclass(slots=True)
class Plan:
    """The deployments to try, in order, and the reason for the first group."""

    group: str
    reason: str
    candidates: list[DeploymentInfo]
    strategy: str
    complexity: Complexity | None = None
    remaining_usd: float | None = None
    excluded: dict[str, str] = field(default_factory=dict)
    """Deployments left out of the plan and why (capability, context window)."""


class Planner:
    """Plans requests over one ``Topology`` (see the module docstring)."""

    def __init__(
        self,
        topology: Topology,
        budget: BudgetGuard,
        *,
        is_open: Callable[[str], bool],
        p50_ms: Callable[[str], float | None],
        rng: random.Random | None = None,
    ) -> None:
        self.topology = topology
        self.budget = budget
        self._is_open = is_open
        self._p50 = p50_ms
        self._rng = rng or random.Random()

    # -- the first group ---------------------------------------------------------------------
    def pinned(self, call: Call) -> tuple[str, str] | None:
        """``(group, reason)`` for a pinned model or tier; ``InputError`` when unknown."""
        groups = self.topology.groups
        if call.model is not None:
            if call.model not in groups:
                raise InputError(f"unknown model or tier {call.model!r}; known: {', '.join(groups) or 'none'}")
            return call.model, "pinned by caller"
        if call.tier is not None:
            if call.tier not in groups:
                raise InputError(f"tier {call.tier!r} has no usable deployment; known: {', '.join(groups) or 'none'}")
            return call.tier, "tier requested by caller"
        return None

    async def plan(
        self,
        call: Call,
        *,
        words: Sequence[Mapping[str, Any]] | None = None,
        local_confidence: float | None = None,
        prompt_tokens: int | None = None,
    ) -> Plan:
        """Plan ``call``. ``words`` are the messages whose complexity counts (the user's turns
        for a classification, whose prompt is ours); ``prompt_tokens`` the prompt's size
        when already counted. Raises ``InputError``, ``BudgetExceededError``,
        ``BudgetStoreDownError`` or ``ProviderError`` (nothing can serve)."""
        if self.topology.empty:
            raise ProviderError(
                "no LLM deployment is usable: every provider is disabled, local-only or "
                "missing its API key (see `director-llm check-config`)"
            )
        size = (
            prompt_tokens
            if prompt_tokens is not None
            else rough_tokens(
                call.messages, tools=call.params.get("tools"), response_format=call.params.get("response_format")
            )
        )
        if call.needs.tools or call.needs.json_schema:
            unmet = {
                i.name: why
                for i in self.topology.deployments.values()
                if i.kind != "local"
                and (why := call.needs.unmet_by(i.supports_function_calling, i.supports_json_schema))
            }
            if len(unmet) == sum(1 for i in self.topology.deployments.values() if i.kind != "local"):
                raise self._nothing_left(call, unmet)
        pin = self.pinned(call)
        complexity: Complexity | None = None
        remaining: float | None = None
        if pin is not None:
            group, reason = pin
            chain = list(self.topology.chain(group))
        else:
            complexity = estimate_complexity(list(words or call.messages), local_confidence=local_confidence)
            chain, reason, remaining = await self._select(call, size, complexity)
            group = chain[0]
            chain += [g for g in self.topology.fallbacks.get(group, ()) if g not in chain]
        candidates, excluded = self._expand(call, chain, size)
        if not candidates:
            raise self._nothing_left(call, excluded)
        return Plan(
            group=group,
            reason=reason,
            candidates=candidates,
            strategy=call.strategy,
            complexity=complexity,
            remaining_usd=remaining,
            excluded=excluded,
        )

    async def _select(self, call: Call, size: int, complexity: Complexity) -> tuple[list[str], str, float | None]:
        budget = self.budget
        infos = {t: [self.topology.deployments[n] for n in self.topology.members(t)] for t in self.topology.tiers}
        priced = any(not is_free(i) for ds in infos.values() for i in ds)
        remaining: dict[str, float] = {}
        store_down = False
        if priced and budget.limited:
            try:
                remaining = await budget.remaining()
            except BudgetBackendError:
                store_down = True
        options = []
        for tier, ds in infos.items():
            fitting = [
                i
                for i in ds
                if not (i.context_window and size > i.context_window)
                and call.needs.unmet_by(i.supports_function_calling, i.supports_json_schema) is None
            ]
            costs = []
            for i in fitting:
                cost = budget.worst_case(i, size, budget.max_tokens_for(i, call.params)) if budget.limited else 0.0
                costs.append((cost, cost == 0 or (not store_down and fits(remaining, i.provider, cost))))
            options.append(
                TierOption(
                    tier=tier,
                    cost_usd=min((c for c, _ in costs), default=0.0),
                    affordable=any(ok for _, ok in costs),
                    healthy=any(not self._is_open(i.name) for i in ds),
                    fits=bool(fitting),
                    p50_ms=self._best_p50([i.name for i in ds]) if call.strategy == "latency" else None,
                )
            )
        left = 0.0 if store_down else binding_remaining(remaining)
        try:
            sel = select(call.strategy, options, complexity=complexity, remaining_usd=left)
        except NothingAffordable as exc:
            raise await self._explain(exc.cheapest, infos, store_down) from None
        return list(sel.chain), sel.reason, None if math.isinf(left) else left

    def _best_p50(self, names: Sequence[str]) -> float | None:
        values = [v for v in (self._p50(n) for n in names) if v is not None]
        return min(values) if values else None

    async def _explain(
        self, cheapest: TierOption | None, infos: Mapping[str, Sequence[DeploymentInfo]], store_down: bool
    ) -> Exception:
        if store_down:
            return BudgetStoreDownError(
                "the budget store (Redis) is unreachable and no zero-cost tier is "
                "configured, so no request can be served without risking overspend"
            )
        if cheapest is None or not cheapest.fits:
            return ProviderError(
                "no tier can serve this request: the prompt is larger than every deployment's "
                "context window, or none has the capabilities it needs"
            )
        provider = infos[cheapest.tier][0].provider if infos.get(cheapest.tier) else "-"
        return await self.budget.explain(cheapest.cost_usd, provider)

    # -- groups -> deployments ---------------------------------------------------------------
    def _expand(self, call: Call, chain: Sequence[str], size: int) -> tuple[list[DeploymentInfo], dict[str, str]]:
        seen: set[str] = set()
        out: list[DeploymentInfo] = []
        excluded: dict[str, str] = {}
        pinned = call.model
        for group in chain:
            for info in self._order(call, [self.topology.deployments[n] for n in self.topology.members(group)]):
                if info.name in seen:
                    continue
                seen.add(info.name)
                why = self._unfit(call, info, size, pinned)
                if why is not None:
                    excluded[info.name] = why
                    continue
                out.append(info)
        return out, excluded

    def _unfit(self, call: Call, info: DeploymentInfo, size: int, pinned: str | None) -> str | None:
        if info.kind == "local":
            # The local tier answers classifications, which the engine asks it directly.
            return "the local tier only classifies"
        unmet = call.needs.unmet_by(info.supports_function_calling, info.supports_json_schema)
        if unmet is not None:
            return unmet
        if info.context_window and size > info.context_window:
            return f"prompt (~{size} tokens) larger than its context window ({info.context_window})"
        return None

    def _order(self, call: Call, infos: list[DeploymentInfo]) -> list[DeploymentInfo]:
        if len(infos) < 2:
            return infos
        if call.strategy == "latency":
            return sorted(infos, key=lambda i: (self._p50(i.name) is None, self._p50(i.name) or 0.0))
        if call.strategy == "cost":
            return sorted(infos, key=lambda i: (i.price.input_per_token or 0.0) + (i.price.output_per_token or 0.0))
        shuffled = list(infos)
        self._rng.shuffle(shuffled)
        return shuffled

    @staticmethod
    def _nothing_left(call: Call, excluded: Mapping[str, str]) -> Exception:
        why = "; ".join(f"{n}: {w}" for n, w in excluded.items())
        if call.needs.tools or call.needs.json_schema:
            need = " and ".join(
                n
                for n, on in (("tools", call.needs.tools), ("a JSON schema response_format", call.needs.json_schema))
                if on
            )
            return InputError(
                f"no usable deployment supports {need} ({why}); set supports_function_calling / "
                "supports_json_schema in the model's [providers.*.overrides] if it does, or drop "
                "the parameter"
            )
        return ProviderError(f"no deployment can serve this request ({why or 'none usable'})")
