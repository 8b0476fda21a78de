"""The LLM path of a classification: prompt, constrained call, parse, repair, next deployment.

``Classifier.classify`` is what ``director.classify_intent`` calls::

    prepare (clean input, flows, messages)
      -> pre_llm steps   (seams: cache lookup, local-tier cascade; the first non-None wins)
      -> classify_llm    (group by strategy -> answer -> parse
                          -> invalid: one repair round on the same deployment
                          -> still invalid: next deployment of the group, then of the chain)
      -> post_llm steps  (seam: cache store)

Usage and cost are summed over every attempt (repairs and fallbacks too), so budgets stay
right even when the answer comes from the third call. ``AttemptLog`` (a hooks observer)
records the attempts LiteLLM itself made (retries, fallbacks on provider errors) per
classification, which feeds ``route.attempts``, fallback events and error messages.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from director_llm.errors import (
    BudgetExceededError,
    ClassificationError,
    ProviderError,
    redact,
)
from director_llm.intents.models import (
    FallbackEvent,
    IntentClassification,
    Route,
    TierChosenEvent,
)
from director_llm.intents.parsing import (
    AnswerInvalid,
    ParsedAnswer,
    clean_input,
    parse_answer,
)
from director_llm.intents.prompts import (
    ConstraintKind,
    FlowSet,
    build_messages,
    constraint_for,
    flow_set,
    repair_messages,
    response_format,
    weakest,
)
from director_llm.routing import answered_by, director_meta

if TYPE_CHECKING:
    from director_llm.director import Director

CLASSIFY_MAX_TOKENS = 300
"""Output tokens asked for one answer: the JSON object is short; this bounds cost and budget holds."""
FAILURE_LOG_WAIT_S = 0.2
"""LiteLLM reports failed attempts from a background task; wait this long for them on error."""

Emit = Callable[[Any], None]
PreStep = Callable[["ClassifyRequest"], Awaitable[IntentClassification | None]]
PostStep = Callable[["ClassifyRequest", IntentClassification], Awaitable[None]]
ErrorStep = Callable[["ClassifyRequest", Exception], Awaitable[IntentClassification | None]]


@dataclass
class ClassifyRequest:
    """One classification in progress: the cleaned input and what the LLM path needs.

    Pre-LLM steps (cache, cascade) read it and may set ``tier`` (escalate to that tier)."""

    text: str
    history: list[Any] | None
    strategy: str | None
    flows: FlowSet
    messages: list[dict[str, str]]
    history_turns: int
    tier: str | None = None
    """Group to ask first (a tier or deployment); None: chosen by ``strategy``."""
    cache: bool = True
    """False: the result cache is neither read nor written (``cache=False``, ``--no-cache``)."""
    route_plan: tuple[str, str] | None = None
    """``(group, reason)`` chosen by a pre-step (the cascade's escalation) for the LLM path.
    Unlike ``tier`` it is not part of the cache key: the lookup ran before it was chosen."""
    notes: dict[str, Any] = field(default_factory=dict)
    """Scratch space of the pre/post steps (the cascade keeps its local prediction here)."""
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started: float = field(default_factory=time.perf_counter)

    def cache_material(self) -> dict[str, Any]:
        """What identifies this classification in a cache: normalized text, the history shown
        to the model, the flows + prompt version, and the tier asked."""
        from director_llm.intents.prompts import history_lines

        return {
            "text": " ".join(self.text.lower().split()),
            "history": history_lines(self.history, self.history_turns),
            "flows": self.flows.fingerprint,
            "tier": self.tier,
        }


@dataclass
class AttemptRecord:
    deployment: str
    ok: bool
    error_class: str = ""
    message: str = ""


class AttemptLog:
    """Hooks observer: the attempts of each running classification, by ``classify_id``."""

    def __init__(self) -> None:
        self._runs: dict[str, list[AttemptRecord]] = {}

    def open(self, run_id: str) -> None:
        self._runs[run_id] = []

    def close(self, run_id: str) -> list[AttemptRecord]:
        return self._runs.pop(run_id, [])

    def records(self, run_id: str) -> list[AttemptRecord]:
        return self._runs.get(run_id, [])

    async def attempt_succeeded(self, deployment: str, kwargs: dict, response: Any, latency_s: float) -> None:
        run = self._runs.get(director_meta(kwargs).get("classify_id") or "")
        if run is not None:
            run.append(AttemptRecord(deployment, True))

    async def attempt_failed(self, deployment: str, kwargs: dict, error: BaseException | None, latency_s: float) -> None:
        run = self._runs.get(director_meta(kwargs).get("classify_id") or "")
        if run is not None:
            msg = str(error) if error is not None else ""
            run.append(AttemptRecord(deployment, False, type(error).__name__ if error else "Error",
                                     redact(msg).split("\n")[0][:200]))


@dataclass
class _Run:
    """Accounting of one LLM path: what was tried, spent and answered."""

    req: ClassifyRequest
    group: str
    reason: str
    emit: Emit
    tried: list[str] = field(default_factory=list)
    raws: list[str] = field(default_factory=list)
    errors: list[tuple[str, str, str]] = field(default_factory=list)
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    seen_failures: int = 0

    def usage(self) -> dict[str, Any]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "cost_usd": self.cost_usd, "calls": self.calls}


class Classifier:
    """Intent classification for one Director. ``pre_llm`` / ``post_llm`` are the seams for
    the cache (lookup, store) and the local-tier cascade."""

    def __init__(self, director: Director) -> None:
        self.director = director
        self.flows = flow_set(director.config.intents)
        self.pre_llm: list[PreStep] = []
        """Async ``(request) -> IntentClassification | None``; the first result wins (cache, cascade)."""
        self.post_llm: list[PostStep] = []
        """Async ``(request, result) -> None`` after a model answered (cache store)."""
        self.on_llm_error: list[ErrorStep] = []
        self._in_flight: dict[str, asyncio.Future[IntentClassification]] = {}
        """Async ``(request, error) -> IntentClassification | None`` when the LLM path failed
        (``ProviderError`` or ``BudgetExceededError``); the first result is the answer instead
        of the error (the cascade: the local tier as the last resort)."""
        self.log = AttemptLog()
        director.hooks.observers.append(self.log)
        director.cache.attach(self)  # first pre-step: a cache hit skips the cascade and the LLM

    # -- entry points --------------------------------------------------------------------------
    def prepare(self, text: str, history: list[Any] | None = None, *, strategy: str | None = None,
                cache: bool = True, tier: str | None = None) -> ClassifyRequest:
        """Clean the input (``InputError`` when unusable) and build the prompt."""
        cfg = self.director.config.intents
        clean = clean_input(text, max_chars=cfg.max_input_chars, truncate=cfg.truncate_long_input)
        if history is not None and not isinstance(history, list):
            from director_llm.errors import InputError

            raise InputError("history must be a list of {'role', 'content'} dicts or strings")
        messages = build_messages(self.flows, clean, history, history_turns=cfg.history_turns)
        return ClassifyRequest(clean, history, strategy, self.flows, messages, cfg.history_turns, tier=tier,
                               cache=cache)

    async def classify(self, text: str, history: list[Any] | None = None, *,
                       strategy: str | None = None, cache: bool = True,
                       tier: str | None = None) -> IntentClassification:
        """Classify ``text``: pre-LLM steps, else the LLM path, then post-LLM steps.

        Identical requests in flight at the same time (same cleaned text, history, flows,
        strategy) share one run (single flight): the others wait for it instead of calling a
        model again, and get a copy whose route says so (no attempts, nothing spent).
        """
        req = self.prepare(text, history, strategy=strategy, cache=cache, tier=tier)
        if not req.cache:
            return await self._classify(req)
        import json

        key = json.dumps({**req.cache_material(), "strategy": strategy}, sort_keys=True, default=str)
        leader = self._in_flight.get(key)
        if leader is not None:
            try:
                result = await asyncio.shield(leader)
            except asyncio.CancelledError:
                if not leader.cancelled():
                    raise  # this caller was cancelled
                return await self._classify(req)  # the leader was cancelled: run our own
            route = result.route.model_copy(update={
                "attempts": 0, "cost_usd": 0.0, "prompt_tokens": 0, "completion_tokens": 0,
                "latency_ms": round((time.perf_counter() - req.started) * 1000, 3),
                "reason": f"{result.route.reason} (shared with an identical request in flight)"})
            return result.model_copy(update={"route": route})
        future: asyncio.Future[IntentClassification] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            result = await self._classify(req)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        else:
            future.set_result(result)
            return result
        finally:
            self._in_flight.pop(key, None)

    async def _classify(self, req: ClassifyRequest) -> IntentClassification:
        hit = await self.run_pre_steps(req)
        if hit is not None:
            return hit
        try:
            result = await self.classify_llm(req)
        except (ProviderError, BudgetExceededError) as exc:
            rescued = await self.run_error_steps(req, exc)
            if rescued is None:
                raise
            return rescued
        await self.run_post_steps(req, result)
        return result

    async def run_error_steps(self, req: ClassifyRequest, exc: Exception) -> IntentClassification | None:
        for step in self.on_llm_error:
            found = await step(req, exc)
            if found is not None:
                return found
        return None

    async def run_pre_steps(self, req: ClassifyRequest) -> IntentClassification | None:
        for step in self.pre_llm:
            found = await step(req)
            if found is not None:
                return found
        return None

    async def run_post_steps(self, req: ClassifyRequest, result: IntentClassification) -> None:
        for step in self.post_llm:
            await step(req, result)

    # -- the LLM path --------------------------------------------------------------------------
    def start_run(self, req: ClassifyRequest, emit: Emit | None = None) -> _Run:
        """Choose the first group and open the attempt log (``finish_run`` closes it)."""
        d = self.director
        if req.route_plan is not None:
            group, reason = req.route_plan
        elif req.tier is not None:
            group, reason = d.choose_group(req.tier, None, None)
            reason = "escalated by the cascade" if reason == "pinned by caller" else reason
        else:
            group, reason = d.choose_group(None, None, req.strategy)
        run = _Run(req, group, reason, emit or (lambda _e: None))
        self.log.open(req.id)
        run.emit(TierChosenEvent(tier=group, reason=reason))
        return run

    def finish_run(self, run: _Run) -> None:
        self.log.close(run.req.id)

    async def classify_llm(self, req: ClassifyRequest, *, emit: Emit | None = None) -> IntentClassification:
        """Ask the model(s) until one answer is valid (see the module docstring)."""
        run = self.start_run(req, emit)
        try:
            return await self.settle(run, None)
        finally:
            self.finish_run(run)

    async def settle(self, run: _Run, first: tuple[str, str] | None) -> IntentClassification:
        """From an optional first ``(deployment, raw answer)`` (a stream's), to a valid result."""
        pending = first
        while True:
            if pending is None:
                group = self.next_group(run)
                if group is None:
                    raise self._exhausted(run)
                pending = await self.ask(run, group, run.req.messages)
            deployment, raw = pending
            pending = None
            try:
                return self.result(run, deployment, parse_answer(raw, self.flows))
            except AnswerInvalid as exc:
                error = str(exc)
                run.raws.append(raw)
            try:
                _, raw2 = await self.ask(run, deployment, repair_messages(run.req.messages, raw, error, self.flows))
                return self.result(run, deployment, parse_answer(raw2, self.flows), repaired=True)
            except AnswerInvalid as exc:
                error = f"{error}; after repair: {exc}"
                run.raws.append(raw2)
            except ProviderError as exc:
                error = f"{error}; repair failed: {exc}"
            run.tried.append(deployment)
            run.errors.append((deployment, "InvalidAnswer", error))
            run.emit(FallbackEvent(from_deployment=deployment, to=self.next_group(run),
                                   error_class="InvalidAnswer", message=error[:200]))

    def next_group(self, run: _Run) -> str | None:
        """The first group of the chain (first group, then its fallbacks) with an untried deployment."""
        built = self.director.built
        for group in [run.group, *built.fallbacks.get(run.group, [])]:
            if any(d not in run.tried for d in built.groups.get(group, [])):
                return group
        return None

    def constraint(self, run: _Run, group: str) -> ConstraintKind:
        built = self.director.built
        kinds = [constraint_for(built.deployments[d]) for d in built.groups.get(group, []) if d not in run.tried]
        return weakest(kinds)

    def request_kwargs(self, run: _Run, group: str, *, stream: bool = False) -> dict[str, Any]:
        """Keyword arguments of ``director.acompletion`` for one call to ``group``."""
        kw: dict[str, Any] = {
            # cache=False: the chat cache would replay a garbage answer on the repair round;
            # classifications are cached as results by a pre/post step instead.
            "model": group, "temperature": 0, "max_tokens": self.max_tokens(group), "cache": False,
            "metadata": {"director": {"exclude": list(run.tried), "classify_id": run.req.id,
                                      "purpose": "classify_intent"}},
        }
        rf = response_format(self.constraint(run, group), self.flows)
        if rf is not None:
            kw["response_format"] = rf
        if stream:
            kw["stream"] = True
            kw["stream_options"] = {"include_usage": True}
        return kw

    def max_tokens(self, group: str) -> int:
        """``CLASSIFY_MAX_TOKENS``, or less when every deployment of ``group`` has a lower
        ``max_tokens`` override (slow local models: a cut answer is repaired by the parser)."""
        built = self.director.built
        caps = [built.deployments[d].max_tokens for d in built.groups.get(group, [])]
        if caps and all(caps):
            return min(CLASSIFY_MAX_TOKENS, max(c for c in caps if c))
        return CLASSIFY_MAX_TOKENS

    async def ask(self, run: _Run, group: str, messages: list[dict[str, str]]) -> tuple[str, str]:
        """One non-streamed call: ``(deployment that answered, its text)``, accounted in ``run``."""
        run.calls += 1
        try:
            response = await self.director.acompletion(messages, **self.request_kwargs(run, group))
        except ProviderError as exc:
            await self._collect_failures(run, wait=True)
            raise self._failed(run, exc) from exc
        deployment = self.deployment_of(response, group)
        usage = getattr(response, "usage", None)
        self.account(run, deployment, getattr(usage, "prompt_tokens", 0) or 0,
                     getattr(usage, "completion_tokens", 0) or 0,
                     (getattr(response, "_hidden_params", None) or {}).get("response_cost"))
        await self._collect_failures(run, wait=False, answered_by=deployment)
        try:
            text = response.choices[0].message.content or ""
        except (AttributeError, IndexError):
            text = ""
        return deployment, text

    def account(self, run: _Run, deployment: str, prompt_tokens: int, completion_tokens: int,
                cost: float | None) -> None:
        run.prompt_tokens += int(prompt_tokens)
        run.completion_tokens += int(completion_tokens)
        if cost is None or cost == 0:
            info = self.director.built.deployments.get(deployment)
            cost = info.price.cost(int(prompt_tokens), int(completion_tokens)) if info else 0.0
        run.cost_usd += float(cost or 0.0)

    def deployment_of(self, response: Any, group: str) -> str:
        """Deployment name of a response (looked up by its Router deployment id)."""
        name = answered_by(response)
        if name is not None:
            return name
        members = self.director.built.groups.get(group) or [group]
        return members[0]

    async def _collect_failures(self, run: _Run, *, wait: bool, answered_by: str | None = None) -> None:
        """Turn attempts LiteLLM failed (and retried/fell back from) into events and errors."""
        if wait:
            deadline = time.monotonic() + FAILURE_LOG_WAIT_S
            while time.monotonic() < deadline and not any(
                    not r.ok for r in self.log.records(run.req.id)[run.seen_failures:]):
                await asyncio.sleep(0.01)
        records = self.log.records(run.req.id)
        for rec in records[run.seen_failures:]:
            if not rec.ok:
                run.errors.append((rec.deployment, rec.error_class, rec.message))
                run.emit(FallbackEvent(from_deployment=rec.deployment, to=answered_by,
                                       error_class=rec.error_class, message=rec.message))
        run.seen_failures = len(records)

    # -- results and errors --------------------------------------------------------------------
    def result(self, run: _Run, deployment: str, parsed: ParsedAnswer, *, repaired: bool = False) -> IntentClassification:
        info = self.director.built.deployments.get(deployment)
        failed_attempts = sum(1 for r in self.log.records(run.req.id) if not r.ok)
        route = Route(
            model=info.model if info else deployment, provider=info.provider if info else None,
            deployment=deployment, tier=info.tier if info else None, cache=None,
            cost_usd=round(run.cost_usd, 10), latency_ms=round((time.perf_counter() - run.req.started) * 1000, 2),
            attempts=run.calls + failed_attempts, reason=run.reason,
            prompt_tokens=run.prompt_tokens, completion_tokens=run.completion_tokens,
            repaired=repaired, tried=list(dict.fromkeys([*run.tried, *(e[0] for e in run.errors)])),
        )
        return IntentClassification(flow=parsed.flow, confidence=parsed.confidence, reasoning=parsed.reasoning,
                                    entities=parsed.entities, route=route, raw_flow=parsed.raw_flow)

    def _failed(self, run: _Run, exc: ProviderError) -> ProviderError:
        """The error for a call where every deployment failed: one line naming each and why."""
        attempts = run.errors or list(exc.attempts)
        summary = "; ".join(f"{d}: {c} ({m[:120]})" if m else f"{d}: {c}" for d, c, m in _dedupe(attempts))
        if run.raws:
            return ClassificationError(
                f"no valid classification: {summary}", raw_outputs=run.raws, attempts=attempts, usage=run.usage())
        error = ProviderError(f"every provider failed: {summary or exc}", attempts=attempts,
                              status_code=exc.status_code, retry_after=exc.retry_after)
        return error

    def _exhausted(self, run: _Run) -> ClassificationError:
        summary = "; ".join(f"{d}: {c}" for d, c, _ in _dedupe(run.errors))
        return ClassificationError(
            f"no deployment produced a valid classification ({summary}); raw outputs are in .raw_outputs",
            raw_outputs=run.raws, attempts=run.errors, usage=run.usage())


def _dedupe(attempts: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    seen: dict[tuple[str, str], tuple[str, str, str]] = {}
    for a in attempts:
        seen.setdefault((a[0], a[1]), a)
    return list(seen.values())


__all__ = ["AttemptLog", "Classifier", "ClassifyRequest"]
