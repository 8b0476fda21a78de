"""Classification on the engine: a completion with a prompt, a schema and a parser.

``Classifier.classify`` (``director.classify_intent``) and ``Classifier.stream``
(``director.stream_intent``) take one path::

    validate (text, history, strategy)  -> InputError
    cache lookup (memory -> Redis -> disk)                 -> hit: route.cache = layer
    cascade: the local tier first when it applies (``director_llm.cascade``)
                                                           -> sure enough: local answer
    plan the LLM tiers (strategy x complexity x budget x health), the local tier last
    engine.run: for each deployment, the attempt is
        local tier  -> its prediction (the last resort)
        LLM         -> one call with the deployment's output constraint (JSON schema, JSON
                       mode or the prompt alone) -> parse; an invalid reply gets one repair
                       round on the same deployment, then the next deployment
    cache store, route (cost and tokens summed over every call, repairs included)

Identical classifications in flight share one run (single flight). The stream variant runs
the same path and yields the partial results and routing events as they happen.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from director_llm import cascade
from director_llm.engine.run import AttemptRejected, Slot
from director_llm.errors import (
    BudgetBackendError,
    BudgetExceededError,
    ClassificationError,
    InputError,
    ProviderError,
)
from director_llm.intents.models import (
    CacheHitEvent,
    FallbackEvent,
    IntentClassification,
    IntentClassificationStream,
    TierChosenEvent,
    UsageEvent,
)
from director_llm.intents.parsing import AnswerInvalid, ParsedAnswer, clean_input, parse_answer, parse_partial
from director_llm.intents.parsing import reasoning_steps as steps_of
from director_llm.intents.prompts import (
    FEW_SHOT_EXAMPLES,
    MAX_TOKENS_CAP,
    FlowSet,
    build_messages,
    constraint_for,
    flow_set,
    history_lines,
    max_tokens_for,
    repair_messages,
    response_format,
)
from director_llm.observability.observer import NOOP_REQUEST
from director_llm.request import Call, check_strategy
from director_llm.route import OK, Attempt, Route
from director_llm.router.dispatch import UpstreamError
from director_llm.singleflight import SingleFlight

if TYPE_CHECKING:
    from director_llm.cache.director import DirectorCache
    from director_llm.config.models import DirectorConfig
    from director_llm.engine.core import Engine
    from director_llm.local_tier import LocalTier
    from director_llm.observability.observer import RequestObserver
    from director_llm.providers import DeploymentInfo

__all__ = ["CLASSIFY_MAX_TOKENS", "Classifier", "ClassifyRequest"]

CLASSIFY_MAX_TOKENS = MAX_TOKENS_CAP
"""The most output tokens asked for one answer; the actual ``max_tokens`` is derived from
the answer's schema (``prompts.max_tokens_for``, 113 for the built-in flows)."""

Emit = Callable[[Any], None]


@dataclass(slots=True)
class ClassifyRequest:
    """One classification in progress (the prompt is built only when a model is asked)."""

    text: str
    history: list[Any] | None
    lines: list[str]
    """The history as the prompt shows it (and as the cache keys it)."""
    strategy: str
    cache: bool = True
    tier: str | None = None
    model: str | None = None
    started: float = field(default_factory=time.perf_counter)
    raws: list[str] = field(default_factory=list)
    """Unusable replies seen on the way (for ``ClassificationError.raw_outputs``)."""
    llm_only: bool = False
    """Ask the pinned group alone: no cache, no local tier first or last (evaluation)."""
    obs: RequestObserver = NOOP_REQUEST
    """The request's telemetry (``observability.observer``)."""
    _call: Call | None = None

    @property
    def pinned(self) -> bool:
        return self.tier is not None or self.model is not None


class Classifier:
    """Intent classification of one Director (see the module docstring)."""

    def __init__(
        self,
        config: DirectorConfig,
        *,
        engine: Engine,
        cache: DirectorCache,
        local: LocalTier | None,
        local_info: DeploymentInfo | None,
    ) -> None:
        self.config = config
        self.intents = config.intents
        self.flows: FlowSet = flow_set(config.intents)
        self.max_tokens = max_tokens_for(self.flows)
        """The answer's ``max_tokens``: what the schema allows, with room (``max_tokens_for``)."""
        self.engine = engine
        self.cache = cache
        self.local = local
        self.local_info = local_info if local is not None else None
        self._flights: SingleFlight[IntentClassification] = SingleFlight()

    # -- input ---------------------------------------------------------------------------
    def prepare(
        self,
        text: str,
        history: list[Any] | None = None,
        *,
        strategy: str | None = None,
        cache: bool = True,
        tier: str | None = None,
        model: str | None = None,
    ) -> ClassifyRequest:
        """Validate the input (``InputError`` when unusable)."""
        cfg = self.intents
        clean = clean_input(text, max_chars=cfg.max_input_chars, truncate=cfg.truncate_long_input)
        history = _check_history(history, max_chars=self.config.llm.max_input_chars)
        chosen = check_strategy(strategy, self.config.llm.default_strategy)
        return ClassifyRequest(
            clean, history, history_lines(history, cfg.history_turns), chosen, cache=cache, tier=tier, model=model
        )

    def call_of(self, req: ClassifyRequest) -> Call:
        """The engine's request for ``req``: the prompt, built on first use."""
        if req._call is None:
            examples = None
            if self.local is not None:
                examples = self.local.nearest_examples(self.flows, req.text, FEW_SHOT_EXAMPLES)
            messages = build_messages(
                self.flows, req.text, req.history, history_turns=self.intents.history_turns, examples=examples
            )
            req._call = Call(
                entry="classify",
                messages=messages,
                params={},
                strategy=req.strategy,
                model=req.model,
                tier=req.tier,
                deadline_s=self.config.llm.timeout_seconds,
                started=req.started,
            )
        return req._call

    # -- entry points --------------------------------------------------------------------
    async def classify(
        self,
        text: str,
        history: list[Any] | None = None,
        *,
        strategy: str | None = None,
        cache: bool = True,
        tier: str | None = None,
        model: str | None = None,
    ) -> IntentClassification:
        """Classify ``text`` (see the module docstring). Identical requests in flight at the
        same time share one run; the followers get a copy whose route says so (nothing spent)."""
        req = self.prepare(text, history, strategy=strategy, cache=cache, tier=tier, model=model)
        return await self._observed(req, self._serve(req))

    async def _observed(self, req: ClassifyRequest, work: Awaitable[IntentClassification]) -> IntentClassification:
        """Run ``work`` and tell the request's telemetry how it ended."""
        req.obs = obs = self.engine.parts.observer.request("classify", text=req.text)
        try:
            result = await work
        except BaseException as exc:
            obs.finish(None, error=exc)
            raise
        obs.finish(result.route, flow=result.flow, confidence=result.confidence)
        return result

    async def _serve(self, req: ClassifyRequest) -> IntentClassification:
        if not req.cache:
            return await self._classify(req, None)
        hit = await self._lookup(req)  # a hit needs no single flight
        if hit is not None:
            return hit
        key = (" ".join(req.text.lower().split()), tuple(req.lines), req.strategy, req.tier, req.model)
        result, shared = await self._flights.run(key, lambda: self._classify(req, None, looked_up=True))
        if not shared:
            return result
        route = result.route.model_copy(
            update={
                "calls": 0,
                "cost_usd": 0.0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "attempts": [],
                "latency_ms": round((time.perf_counter() - req.started) * 1000, 3),
                "reason": f"{result.route.reason} (shared with an identical request in flight)",
            }
        )
        return result.model_copy(update={"route": route})

    async def classify_llm(self, text: str, *, group: str, history: list[Any] | None = None) -> IntentClassification:
        """The answer of ``group`` (a tier or deployment) alone: no cache, no local tier, no
        other group (what ``director-llm eval`` measures for a remote tier)."""
        req = self.prepare(text, history, cache=False, model=group)
        req.llm_only = True
        return await self._observed(req, self._classify(req, None))

    async def stream(
        self,
        text: str,
        history: list[Any] | None = None,
        *,
        strategy: str | None = None,
        tier: str | None = None,
        model: str | None = None,
    ) -> AsyncIterator[Any]:
        """``StreamItem``s: routing events and partial results, then the final one (``done``)."""
        req = self.prepare(text, history, strategy=strategy, tier=tier, model=model)
        req.obs = obs = self.engine.parts.observer.request("classify", text=req.text)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        task = asyncio.ensure_future(self._classify(req, queue.put_nowait, streaming=True))
        try:
            while not task.done():
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                else:
                    getter.cancel()
            while not queue.empty():
                yield queue.get_nowait()
            result = task.result()
        except BaseException as exc:
            obs.finish(None, error=exc)
            raise
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        obs.finish(result.route, flow=result.flow, confidence=result.confidence)
        if result.route.calls:
            yield UsageEvent(
                prompt_tokens=result.route.prompt_tokens,
                completion_tokens=result.route.completion_tokens,
                cost_usd=result.route.cost_usd,
                deployment=result.route.deployment,
            )
        yield IntentClassificationStream(
            partial_flow=result.flow,
            confidence=result.confidence,
            reasoning_steps=steps_of(result.reasoning),
            entities=result.entities,
            done=True,
            result=result,
            elapsed_ms=_ms(req.started),
        )

    # -- the path ------------------------------------------------------------------------
    async def _classify(
        self, req: ClassifyRequest, emit: Emit | None, *, streaming: bool = False, looked_up: bool = False
    ) -> IntentClassification:
        hit = None if looked_up else await self._lookup(req)
        if hit is not None:
            if emit is not None and hit.route.cache:
                emit(CacheHitEvent(layer=hit.route.cache))
            return hit
        local, prior, pred, why = (None if req.llm_only else self.local), [], None, ""
        llm_usable = not self.engine.planner.topology.empty
        words = cascade.user_turns(req.text, req.history)
        if local is not None and cascade.local_first(req.strategy, pinned=req.pinned, llm_usable=llm_usable):
            pred = await local.apredict(req.text)
            decision = cascade.decide(
                pred.confidence,
                escalate_below=local.escalate_below,
                fallback_below=local.confidence_threshold,
                llm_usable=llm_usable,
                words=words,
            )
            if decision.action == "answer":
                req.obs.local_decision("answered")
                return self._local(req, pred, decision.reason, [Attempt(self._local_name(), OK)])
            req.obs.local_decision("escalated")
            why = decision.reason
            prior = [Attempt(self._local_name(), "escalated", why)]
        try:
            plan = await self.engine.plan(
                self.call_of(req), words=words, local_confidence=pred.confidence if pred is not None else None
            )
        except (BudgetExceededError, BudgetBackendError, ProviderError) as exc:
            if local is None:
                raise
            pred = pred if pred is not None else await local.apredict(req.text)
            what = "every LLM tier over budget" if isinstance(exc, BudgetExceededError) else "no LLM tier can serve"
            lead = f"{why}; " if why else ""
            req.obs.local_decision("last_resort")
            return self._local(
                req, pred, f"{lead}{what}, answered locally ({exc})", [*prior, Attempt(self._local_name(), OK)]
            )
        reason = f"{why} -> {plan.reason}" if why else plan.reason
        plan.reason = reason
        if emit is not None:
            emit(TierChosenEvent(tier=plan.group, reason=reason))
        if req.llm_only:
            plan.candidates = [c for c in plan.candidates if c.name in self.engine.planner.topology.members(plan.group)]
        elif local is not None and self.local_info is not None:
            plan.candidates.append(self.local_info)  # the last resort
        state: dict[str, Any] = {"pred": pred, "repaired": False, "failed": None}

        async def attempt(slot: Slot) -> ParsedAnswer:
            failed = state["failed"]
            if failed is not None and emit is not None:  # the deployment that failed, and where we go now
                emit(
                    FallbackEvent(
                        from_deployment=failed.deployment,
                        to=slot.name,
                        error_class=failed.outcome,
                        message=failed.message[:200],
                    )
                )
            state["failed"] = None
            if slot.deployment.kind == "local":
                assert local is not None
                state["pred"] = state["pred"] if state["pred"] is not None else await local.apredict(req.text)
                state["local"] = True
                return ParsedAnswer("", 0.0, "")
            parsed, repaired = await self._ask(slot, req, emit if streaming else None)
            state["repaired"] = repaired
            return parsed

        def observe(a: Attempt) -> None:
            if a.called and not a.ok:
                state["failed"] = a

        try:
            parsed, route = await self.engine.run(
                self.call_of(req), plan, attempt, prior=prior, observer=observe, obs=req.obs
            )
        except ProviderError as exc:
            failed = state["failed"]
            if failed is not None and emit is not None:
                emit(
                    FallbackEvent(
                        from_deployment=failed.deployment,
                        to=None,
                        error_class=failed.outcome,
                        message=failed.message[:200],
                    )
                )
            if req.raws:
                usage = _usage_of(exc.route)
                raise ClassificationError(
                    f"no valid classification: {exc}",
                    raw_outputs=req.raws,
                    attempts=exc.attempts,
                    usage=usage,
                    route=exc.route,
                ) from None
            raise
        if state.get("local"):
            req.obs.local_decision("last_resort")
            failures = "; ".join(f"{a.deployment}: {a.outcome}" for a in route.attempts if a.called and not a.ok)
            route = route.model_copy(
                update={
                    "reason": cascade.last_resort_reason(
                        f"the LLM tiers failed ({failures or 'nothing could be tried'})"
                    )
                }
            )
            result = self._local(req, state["pred"], route.reason or "", route.attempts, route=route)
            return result
        route = route.model_copy(update={"repaired": state["repaired"]})
        result = IntentClassification(
            flow=parsed.flow,
            confidence=parsed.confidence,
            reasoning=parsed.reasoning,
            entities=parsed.entities,
            route=route,
            raw_flow=parsed.raw_flow,
        )
        await self._store(req, result)
        return result

    async def _ask(self, slot: Slot, req: ClassifyRequest, emit: Emit | None) -> tuple[ParsedAnswer, bool]:
        """One LLM deployment's answer, with one repair round on the same deployment."""
        params = self.params_for(slot.deployment)
        if emit is None:
            raw = (await slot.call(self.call_of(req).messages, params)).text
        else:
            raw = await self._stream_answer(slot, req, params, emit)
        try:
            return parse_answer(raw, self.flows), False
        except AnswerInvalid as exc:
            error = str(exc)
            req.raws.append(raw)
        raw2 = (await slot.call(repair_messages(self.call_of(req).messages, raw, error, self.flows), params)).text
        try:
            return parse_answer(raw2, self.flows), True
        except AnswerInvalid as exc:
            req.raws.append(raw2)
            raise AttemptRejected("InvalidAnswer", f"{error}; after repair: {exc}") from None

    async def _stream_answer(self, slot: Slot, req: ClassifyRequest, params: Mapping[str, Any], emit: Emit) -> str:
        llm = self.config.llm
        text = ""
        last: tuple[Any, ...] | None = None
        try:
            async with aclosing(
                slot.stream(
                    self.call_of(req).messages,
                    params,
                    first_token_s=llm.first_token_timeout_seconds,
                    idle_s=llm.attempt_timeout_seconds,
                )
            ) as pieces:
                async for piece in pieces:
                    text += piece
                    partial = parse_partial(text, self.flows)
                    steps = steps_of(partial.reasoning)
                    key = (partial.flow, partial.confidence, len(steps), len(partial.entities))
                    if key != last and (partial.flow is not None or steps):
                        last = key
                        emit(
                            IntentClassificationStream(
                                partial_flow=partial.flow,
                                confidence=partial.confidence,
                                reasoning_steps=steps,
                                entities=partial.entities,
                                elapsed_ms=_ms(req.started),
                            )
                        )
        except UpstreamError:
            # A stream cut after the answer was complete is still an answer; otherwise move on.
            if not _complete(text, self.flows):
                raise
        return text

    def params_for(self, info: DeploymentInfo) -> dict[str, Any]:
        """Request parameters of one call to ``info``: deterministic, short, constrained."""
        params: dict[str, Any] = {
            "temperature": 0,
            "max_tokens": min(self.max_tokens, info.max_tokens or self.max_tokens),
        }
        rf = response_format(constraint_for(info), self.flows)
        if rf is not None:
            params["response_format"] = rf
        return params

    # -- local answers -------------------------------------------------------------------
    def _local_name(self) -> str:
        if self.local_info is not None:
            return self.local_info.name
        return self.local.deployment if self.local is not None else "local"

    def _local(
        self, req: ClassifyRequest, pred: Any, reason: str, attempts: Sequence[Attempt], route: Route | None = None
    ) -> IntentClassification:
        assert self.local is not None
        answer = self.local.classification(pred, reason=reason, started=req.started)
        if route is None:
            name = self._local_name()
            route = Route.model_construct(
                deployment=name,
                model=answer.route.model,
                provider=answer.route.provider,
                tier="local",
                group="local",
                reason=reason,
                strategy=req.strategy,
                cache=None,
                cost_usd=0.0,
                reserved_cost_usd=None,
                latency_ms=round((time.perf_counter() - req.started) * 1000, 3),
                first_token_ms=None,
                prompt_tokens=0,
                completion_tokens=0,
                calls=0,
                attempts=list(attempts),
                repaired=False,
                resumed=False,
            )
        else:
            local_info = self.local_info
            route = route.model_copy(
                update={
                    "deployment": self._local_name(),
                    "tier": "local",
                    "model": local_info.model if local_info else answer.route.model,
                    "provider": local_info.provider if local_info else answer.route.provider,
                }
            )
        return answer.model_copy(update={"route": route})

    # -- cache ---------------------------------------------------------------------------
    def _cache_material(self, req: ClassifyRequest) -> dict[str, Any]:
        return {
            "history": req.lines,
            "tier": req.tier or req.model,
            "strategy": req.strategy,
            "flows_fingerprint": self.flows.fingerprint,
            "valid_flows": self.flows.names,
        }

    async def _lookup(self, req: ClassifyRequest) -> IntentClassification | None:
        if not req.cache or not self.cache.enabled:
            return None
        return await self.cache.lookup_classification(req.text, started=req.started, **self._cache_material(req))

    async def _store(self, req: ClassifyRequest, result: IntentClassification) -> None:
        if req.cache and self.cache.enabled:
            await self.cache.store_classification(result, req.text, **self._cache_material(req))


def _check_history(history: Any, *, max_chars: int) -> list[Any] | None:
    if history is None:
        return None
    if not isinstance(history, list):
        raise InputError("history must be a list of {'role', 'content'} dicts or strings")
    from director_llm.request import sanitize_text

    out: list[Any] = []
    total = 0
    for i, item in enumerate(history):
        content = item.get("content") if isinstance(item, Mapping) else item
        if isinstance(item, Mapping) and not isinstance(content, str):
            raise InputError(f"history[{i}].content must be a string, not {type(content).__name__}")
        if not isinstance(content, str):
            raise InputError(f"history[{i}] must be a string or a {{'role', 'content'}} dict")
        total += len(content)
        if total > max_chars:
            raise InputError(f"the history holds more than {max_chars} characters ([llm] max_input_chars)")
        clean = sanitize_text(content)
        out.append({**item, "content": clean} if isinstance(item, Mapping) else clean)
    return out


def _complete(text: str, flows: FlowSet) -> bool:
    try:
        parse_answer(text, flows)
    except AnswerInvalid:
        return False
    return bool(text)


def _usage_of(route: Route | None) -> dict[str, Any]:
    if route is None:
        return {}
    return {
        "prompt_tokens": route.prompt_tokens,
        "completion_tokens": route.completion_tokens,
        "cost_usd": route.cost_usd,
        "calls": route.calls,
    }


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
