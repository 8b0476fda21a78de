"""One request's journey through its plan: the loop every entry point shares.

``Run.slots()`` walks the plan's deployments in order and hands out a ``Slot`` for each one
worth trying, until the request's deadline:

* a deployment whose circuit breaker is open is skipped (``Attempt(outcome="skipped")``);
  a half-open one gets its single trial request; a failing one (failures, not yet open)
  one attempt at a time, and a request that finds it busy tries it after the rest. The
  breaker is asked last, just before sending (``Slot._admit_breaker``), so an attempt that
  waited for its budget or rate limit sees a failure recorded meanwhile by any worker;
* ``Slot.call`` / ``Slot.stream`` make one upstream call: reserve the budget (a refusal
  skips the deployment), take a rate-limit permit (a deployment at its limit, or at a
  global one, is skipped: ``LimitReached``), send it within ``min(attempt timeout, time
  left)``, then settle the hold to the usage (or release it, or settle what was generated
  when the call was abandoned), give the permit back with the tokens used, and count tokens
  and cost for the route;
* the caller reports the outcome (``succeeded`` / ``failed``); failures the deployment is
  to blame for feed its breaker, every attempt feeds the metrics, and the next slot comes.

When the plan runs out and some deployments were skipped at a rate limit, the run waits
for the soonest of them to free up (``[llm.rate_limits] max_wait_seconds`` in all, within
the deadline) and offers those again: a request waits only when nothing else could serve it.
Then ``exhausted()`` is the error: ``RateLimitedError`` when the last round ended at a limit,
the budget's when nothing was affordable, else a ``ProviderError`` holding every attempt and
the route so far.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from director_llm.errors import (
    AttemptOverBudgetError,
    BudgetBackendError,
    BudgetExceededError,
    ProviderError,
    RateLimitedError,
    StreamInterruptedError,
)
from director_llm.observability.observer import NOOP_REQUEST
from director_llm.resilience.rate_limits import LimitReached
from director_llm.route import OK, SKIPPED, Attempt, Route
from director_llm.router.dispatch import Reply, UpstreamError

if TYPE_CHECKING:
    from director_llm.budget.guard import Hold
    from director_llm.engine.parts import Parts
    from director_llm.observability.observer import RequestObserver
    from director_llm.providers import DeploymentInfo
    from director_llm.request import Call
    from director_llm.resilience.keys import KeyLease
    from director_llm.resilience.rate_limits import Permit
    from director_llm.selection.planner import Plan

_T = TypeVar("_T")

__all__ = ["AttemptRejected", "LimitReached", "Run", "Slot"]

LEASE_MARGIN_S = 5.0
"""An in-flight slot is held at most this long past the request's deadline (a killed process)."""
POLL_S = 0.05
"""How often a request waiting for an in-flight slot looks again."""


class AttemptRejected(Exception):
    """A reply that cannot be used (empty, an invalid classification, the local tier unsure):
    the request moves on to the next deployment."""

    def __init__(self, outcome: str, message: str, *, feeds_breaker: bool = False) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.message = message
        self.feeds_breaker = feeds_breaker
        self.status_code: int | None = None
        self.retry_after: float | None = None
        self.kind = "provider" if feeds_breaker else "request"


class Deferred(Exception):
    """The slot's deployment is open, or failing with another attempt probing it: this one is
    not sent (no failure, nothing spent); a failing one is offered again after the others."""


PASSED_OVER = (BudgetExceededError, BudgetBackendError, LimitReached, Deferred)
"""What a slot raises when it was not sent: the budget refused it, a rate limit or the breaker."""


class Slot:
    """One deployment's turn in a ``Run``: its upstream calls are reserved and accounted."""

    def __init__(self, run: Run, deployment: DeploymentInfo) -> None:
        self.run = run
        self.deployment = deployment
        self.started = time.monotonic()
        self.got_text = False
        """Streams: whether this slot delivered text to the caller."""
        self.lease: KeyLease | None = None
        """The API key of the pool this slot's call went out with (``resilience.keys``)."""
        self.claim: str | None = None
        """The breaker's single-attempt claim this slot holds (``CircuitBreaker.admit``)."""
        self.deferred = False
        """Not sent: the deployment started failing before it went out (``Deferred``)."""
        self.last_resort = False
        """Sent without the claim of a failing deployment: every other one was tried first."""

    @property
    def name(self) -> str:
        return self.deployment.name

    def timeout(self) -> float:
        """Time this attempt may take: the deployment's attempt timeout, within the deadline."""
        left = self.run.remaining()
        if left <= 0:
            raise UpstreamError("provider", "Timeout", "no time left before the request deadline", status_code=408)
        return min(self.deployment.timeout_seconds, left)

    async def _reserve(
        self, messages: Sequence[Mapping[str, Any]], params: dict[str, Any]
    ) -> tuple[Hold, dict[str, Any]]:
        budget = self.run.parts.budget
        info = self.deployment
        max_tokens = budget.max_tokens_for(info, params)
        prompt = 0
        if budget.limited and not budget.is_free(info):
            prompt = self.run.prompt_tokens(info, messages, params)
            if not (params.get("max_tokens") or params.get("max_completion_tokens")):
                # Pin the bound that was reserved: without it a provider may answer at any length.
                params = {**params, "max_tokens": max_tokens}
        hold = await budget.reserve(info, prompt_tokens=prompt, max_tokens=max_tokens)
        return hold, params

    async def _admit(
        self, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any], hold: Hold
    ) -> Permit | None:
        """A rate-limit permit for this call (None: no limit applies). At a limit the budget
        hold is released and ``LimitReached`` raised: the deployment is skipped."""
        limiter = self.run.parts.limiter
        info = self.deployment
        if limiter is None or not limiter.applies(info.name):
            return None
        tokens = self.run.prompt_tokens(info, messages, params) if limiter.counts_tokens(info.name) else 0
        try:
            return await limiter.acquire(
                info.name, tokens=tokens, lease_s=max(0.0, self.run.remaining()) + LEASE_MARGIN_S
            )
        except BaseException:
            self.run.parts.budget.release(hold)
            raise

    async def _admit_breaker(self, hold: Hold, permit: Permit | None) -> None:
        """The breaker's word, as late as possible: after the budget and the rate limit, just
        before sending (``CircuitBreaker.admit``: one HMGET when shared). A failing deployment
        takes one attempt at a time: without its claim this one is not sent (``Deferred``: no
        failure, nothing spent) and is offered again after the others, then sent anyway."""
        if self.deployment.kind == "local":
            return
        admission = await self.run.parts.breaker.admit(self.name)
        if admission.allowed or (admission.verdict == "busy" and self.last_resort):
            self.claim = admission.token
            return
        self.run.parts.budget.release(hold)
        await self._finish(permit, 0, 0)
        self.deferred = admission.verdict == "busy"
        why = "failing: another attempt is probing it (tried again last)" if self.deferred else "circuit open"
        self.run.skip(self.name, why)
        raise Deferred(why)

    async def _finish(self, permit: Permit | None, prompt_tokens: int, completion_tokens: int) -> None:
        """Give the permit back; the tokens used correct the admitted count (when known)."""
        if permit is None:
            return
        used = (prompt_tokens or permit.tokens) + completion_tokens if (prompt_tokens or completion_tokens) else None
        limiter = self.run.parts.limiter
        if limiter is not None:
            await limiter.finish(permit, tokens=used)

    async def _keyed(self, params: Mapping[str, Any], send: Callable[[str | None], Awaitable[_T]]) -> _T:
        """``send(key)`` with a key of the deployment's pool (``resilience.keys``). A key refused
        (401/403) or rate-limited (429) while another key can serve is dropped or cooled down,
        and the call goes again with the next key (same reservation, same deadline); the last
        key's failure is the attempt's. A caller's own ``api_key`` bypasses the pool."""
        keys = self.run.parts.keys
        pool = keys.pool_for(self.deployment) if keys is not None and "api_key" not in params else None
        if pool is None:
            self.run.calls += 1
            return await send(None)
        for _ in range(len(pool.names)):  # each key at most once per slot, whatever its Retry-After
            lease = pool.take(self.name)
            if lease is None:
                raise UpstreamError("local", "NoUsableKey", f"no API key of {self.deployment.provider} can serve now")
            self.run.calls += 1
            started = time.monotonic()
            try:
                result = await send(lease.value)
            except UpstreamError as exc:
                lease.release()
                if lease.value and lease.value in exc.message:  # an upstream body echoing the key
                    exc.message = exc.message.replace(lease.value, f"[{lease.name}]")
                if exc.kind == "credential" and pool.drop(lease, exc.status_code):
                    why = f"key {lease.name} refused ({exc.status_code}): taken out of the pool"
                elif exc.status_code == 429 and pool.cool(lease, exc.retry_after):
                    why = f"key {lease.name} rate-limited: cooling down"
                else:
                    exc.message = f"{exc.message} [key {lease.name}]"
                    raise
                elapsed = round(time.monotonic() - started, 4)
                self.run.record(
                    Attempt(self.name, exc.error_class, f"{why}; {exc.message[:160]}", elapsed, exc.status_code)
                )
                continue
            except BaseException:
                lease.release()
                raise
            self.lease = lease
            return result
        raise UpstreamError("local", "KeysExhausted", f"every API key of {self.deployment.provider} was tried")

    def _book_key(self, prompt_tokens: int, completion_tokens: int, cost: float) -> None:
        lease, self.lease = self.lease, None
        if lease is not None:
            lease.settle(prompt_tokens, completion_tokens, cost)

    async def call(self, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> Reply:
        """One non-streamed call to this deployment (``UpstreamError`` when it failed)."""
        timeout = self.timeout()
        hold, sent = await self._reserve(messages, dict(params))
        permit = await self._admit(messages, sent, hold)
        await self._admit_breaker(hold, permit)
        budget = self.run.parts.budget
        dispatcher = self.run.parts.dispatcher
        pt = ct = 0
        try:
            try:
                async with asyncio.timeout(timeout):
                    reply = await self._keyed(
                        sent, lambda key: dispatcher.complete(self.deployment, messages, sent, timeout=timeout, key=key)
                    )
            except UpstreamError:
                budget.release(hold)
                raise
            except TimeoutError:
                # Cut by us: the provider read the prompt and may be generating; book the prompt.
                budget.abandon(hold, prompt_tokens=0, completion_tokens=0, delivered_text="")
                raise UpstreamError(
                    "provider", "Timeout", f"no answer within {timeout:.2f}s", status_code=408
                ) from None
            except BaseException:
                budget.abandon(hold, prompt_tokens=0, completion_tokens=0, delivered_text="")
                raise
            pt, ct = reply.prompt_tokens, reply.completion_tokens
            cost = budget.settle(hold, pt, ct)
            self.run.account(pt, ct, cost, hold.amount_usd, self.deployment)
            self._book_key(pt, ct, cost)
            return reply
        finally:
            await self._finish(permit, pt, ct)

    async def stream(
        self, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any], *, first_token_s: float, idle_s: float
    ) -> AsyncGenerator[str, None]:
        """One streamed call: yields text pieces. Before the first piece the wait is bounded by
        ``first_token_s`` (within the deadline), after it each piece by ``idle_s`` and the whole
        stream by the deadline. Use with ``contextlib.aclosing``."""
        run = self.run
        left = run.remaining()
        if left <= 0:
            raise UpstreamError("provider", "Timeout", "no time left before the request deadline", status_code=408)
        wait = min(first_token_s, left)
        hold, sent = await self._reserve(messages, dict(params))
        permit = await self._admit(messages, sent, hold)
        await self._admit_breaker(hold, permit)
        budget = run.parts.budget
        dispatcher = run.parts.dispatcher
        upstream = None
        texts: list[str] = []
        done = False
        try:
            try:
                async with asyncio.timeout(wait):
                    upstream = await self._keyed(
                        sent, lambda key: dispatcher.stream(self.deployment, messages, sent, timeout=wait, key=key)
                    )
                    pieces = upstream.__aiter__()
                    first = await anext(pieces, None)
            except TimeoutError:
                raise UpstreamError(
                    "provider", "FirstTokenTimeout", f"no token within {wait:.2f}s", status_code=408
                ) from None
            if first is None:
                raise AttemptRejected("EmptyAnswer", "the stream ended without any text", feeds_breaker=True)
            self.got_text = True
            texts.append(first)
            yield first
            while True:
                left = run.remaining()
                if left <= 0:
                    raise _StreamDeadline(run.deadline_s)
                try:
                    async with asyncio.timeout(min(idle_s, left)):
                        piece = await anext(pieces, None)
                except TimeoutError:
                    if run.remaining() <= 0:
                        raise _StreamDeadline(run.deadline_s) from None
                    raise UpstreamError(
                        "provider", "IdleTimeout", f"no chunk within {idle_s:.2f}s of the previous one"
                    ) from None
                if piece is None:
                    break
                texts.append(piece)
                yield piece
            done = True
        finally:
            pt = upstream.prompt_tokens if upstream is not None else 0
            ct = upstream.completion_tokens if upstream is not None else 0
            if done:
                if not ct:  # some servers send no usage in streams: count what was delivered
                    from director_llm.tokens import text_tokens

                    ct = text_tokens(self.deployment.litellm_model, "".join(texts))
                cost = budget.settle(hold, pt or hold.prompt_tokens, ct)
                run.account(pt or hold.prompt_tokens, ct, cost, hold.amount_usd, self.deployment)
                self._book_key(pt or hold.prompt_tokens, ct, cost)
            elif texts or ct or upstream is not None:
                # Abandoned (cut, cancelled, closed early, broke): the provider bills what it generated.
                cost = budget.abandon(hold, prompt_tokens=pt, completion_tokens=ct, delivered_text="".join(texts))
                run.account(pt or hold.prompt_tokens, ct, cost, hold.amount_usd, self.deployment)
                self._book_key(pt or hold.prompt_tokens, ct, cost)
            else:
                budget.release(hold)
            if upstream is not None:
                await upstream.aclose()
            await self._finish(permit, pt, ct)


class _StreamDeadline(UpstreamError):
    def __init__(self, seconds: float) -> None:
        super().__init__(
            "request", "StreamDeadline", f"the stream ran past its deadline of {seconds:g}s ([llm] max_stream_seconds)"
        )


class Run:
    """The state of one request while its plan is tried (see the module docstring)."""

    def __init__(
        self,
        parts: Parts,
        call: Call,
        plan: Plan,
        *,
        deadline_s: float | None = None,
        prior: Sequence[Attempt] = (),
        observer: Callable[[Attempt], None] | None = None,
        obs: RequestObserver | None = None,
    ) -> None:
        self.parts = parts
        self.call = call
        self.plan = plan
        self.deadline_s = deadline_s if deadline_s is not None else call.deadline_s
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.deadline = loop.time() + self.deadline_s
        self.attempts: list[Attempt] = list(prior)
        self._observer = observer
        self.obs: RequestObserver = obs if obs is not None else NOOP_REQUEST
        """The request's telemetry: told of every attempt and every call's usage."""
        self.calls = 0
        self.prompt_tokens_total = 0
        self.completion_tokens_total = 0
        self.cost_usd = 0.0
        self.reserved_usd: float | None = None
        self._refusals: list[BudgetExceededError | BudgetBackendError] = []
        self._limited: dict[str, LimitReached] = {}
        """Deployments skipped at a rate limit in the current round of the plan."""
        self.waited_s = 0.0
        """Time spent waiting for a rate limit to free up."""
        self._limit_skips: set[str] = set()
        self._counted: dict[int, int] = {}
        self.first_token_at: float | None = None
        self._last_retry_after: float | None = None

    @classmethod
    async def start(cls, parts: Parts, call: Call, plan: Plan, **kwargs: Any) -> Run:
        """A run whose deadline starts now, after LiteLLM is imported (a one-time cost of the
        process, done off the event loop, that no request's deadline should pay)."""
        if not parts.dispatcher.loaded and any(c.kind != "local" for c in plan.candidates):
            await parts.dispatcher.load()
        return cls(parts, call, plan, **kwargs)

    def remaining(self) -> float:
        return self.deadline - self._loop.time()

    def prompt_tokens(
        self, info: DeploymentInfo, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]
    ) -> int:
        """The prompt's size for a reservation, counted once per message list."""
        key = id(messages)
        counted = self._counted.get(key)
        if counted is None:
            from director_llm.tokens import prompt_tokens

            counted = self._counted[key] = prompt_tokens(
                info.litellm_model, messages, tools=params.get("tools"), response_format=params.get("response_format")
            )
        return counted

    def account(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        cost: float,
        reserved: float,
        info: DeploymentInfo | None = None,
    ) -> None:
        if info is not None:
            self.obs.usage(info, prompt_tokens, completion_tokens, cost)
        self.prompt_tokens_total += prompt_tokens
        self.completion_tokens_total += completion_tokens
        self.cost_usd += cost
        self.reserved_usd = reserved if reserved else self.reserved_usd

    # -- the loop ----------------------------------------------------------------------------
    async def slots(self) -> AsyncGenerator[Slot, None]:
        breaker = self.parts.breaker
        todo = list(self.plan.candidates)
        while todo:
            self._limited = {}
            queue = deque(todo)
            deferred: set[str] = set()
            while queue:
                info = queue.popleft()
                if self.remaining() <= 0:
                    return
                if info.kind != "local" and breaker.is_open(info.name):  # this process's view, no I/O
                    self.skip(info.name, "circuit open")
                    continue
                why = self._no_key(info)
                if why is not None:
                    self.skip(info.name, why)
                    continue
                slot = Slot(self, info)
                slot.last_resort = info.name in deferred  # offered again, after the others
                try:
                    yield slot
                finally:  # the attempt is over, whatever its outcome: give the claim back
                    if slot.claim is not None:
                        await breaker.release(info.name, slot.claim)
                if slot.deferred and info.name not in deferred:
                    deferred.add(info.name)
                    queue.append(info)
            # Nothing answered; only deployments at a rate limit may still serve: wait for one.
            if not self._limited or not await self._wait_for_limits():
                return
            todo = [
                i
                for i in self.plan.candidates
                if i.name in self._limited and self._limited[i.name].retry_after is not None
            ]

    async def _wait_for_limits(self) -> bool:
        """Sleep until the soonest rate limit of this round frees up (True), unless that is
        past ``[llm.rate_limits] max_wait_seconds`` or the deadline (False)."""
        left = min(self.parts.llm.rate_limits.max_wait_seconds - self.waited_s, self.remaining() - POLL_S)
        hits = list(self._limited.values())
        frees = [h.retry_after for h in hits if h.retry_after is not None]
        if left <= 0 or not frees:
            return False
        if any(not h.exact and h.retry_after is not None for h in hits):
            pause = min(POLL_S * random.uniform(0.8, 1.2), left)
        else:
            soonest = min(frees)
            if soonest > left:
                return False
            pause = min(soonest + 0.01, left)
        started = self._loop.time()
        await asyncio.sleep(pause)
        self.waited_s += self._loop.time() - started
        return True

    def _no_key(self, info: DeploymentInfo) -> str | None:
        """Why no key of the deployment's pool can serve it now (None: one can)."""
        keys = self.parts.keys
        pool = keys.pool_for(info) if keys is not None and "api_key" not in self.call.params else None
        if pool is None or pool.available(info.name):
            return None
        free_in = pool.free_in(info.name)
        if free_in is not None:
            return f"every API key rate-limited (the first is free in {free_in:.1f}s)"
        return "no usable API key (unset or refused: see `director-llm health`)"

    def record(self, attempt: Attempt) -> None:
        """Add an attempt to the route (and tell the observers: telemetry, stream events)."""
        self.attempts.append(attempt)
        self.obs.attempt(attempt)
        if self._observer is not None:
            self._observer(attempt)

    def skip(self, name: str, why: str) -> None:
        self.record(Attempt(name, SKIPPED, why))

    def passed_over(self, slot: Slot, exc: BaseException) -> None:
        """A slot that was not sent (one of ``PASSED_OVER``): note why; the loop moves on."""
        if isinstance(exc, LimitReached):
            self.limited(slot, exc)
        elif isinstance(exc, (BudgetExceededError, BudgetBackendError)):
            self.refused(slot, exc)
        # Deferred: already recorded as skipped, and offered again after the others.

    def limited(self, slot: Slot, exc: LimitReached) -> None:
        """The deployment (or the global limit) is at a rate limit: skip it for this round."""
        self._limited[slot.name] = exc
        if slot.name not in self._limit_skips:  # once per request, not once per look while waiting
            self._limit_skips.add(slot.name)
            self.skip(slot.name, f"rate limited: {exc}")

    def refused(self, slot: Slot, exc: BudgetExceededError | BudgetBackendError) -> None:
        """The budget refused (or could not check) the slot's reservation: skip it."""
        self._refusals.append(exc)
        what = "over budget" if isinstance(exc, BudgetExceededError) else "budget store down"
        self.skip(slot.name, f"{what}: {str(exc).split('. ')[0][:160]}")

    async def failed(self, slot: Slot, exc: UpstreamError | AttemptRejected) -> None:
        """Record a failed attempt (breaker when the deployment is to blame, metrics)."""
        elapsed = time.monotonic() - slot.started
        outcome = exc.outcome if isinstance(exc, AttemptRejected) else exc.error_class
        self._last_retry_after = exc.retry_after
        self.record(Attempt(slot.name, outcome, exc.message, round(elapsed, 4), exc.status_code))
        if slot.deployment.kind == "local":
            return
        self.parts.metrics.for_deployment(slot.name).record_failure(elapsed, outcome, exc.message)
        if exc.feeds_breaker:
            await self.parts.breaker.record_failure(slot.name, exc, token=slot.claim)

    async def succeeded(self, slot: Slot, *, reason: str | None = None) -> Route:
        """Record the answering attempt and build the request's ``Route``."""
        elapsed = time.monotonic() - slot.started
        self.record(Attempt(slot.name, OK, "", round(elapsed, 4)))
        if slot.deployment.kind != "local":
            self.parts.metrics.for_deployment(slot.name).record_success(
                elapsed, self.cost_usd, self.prompt_tokens_total, self.completion_tokens_total
            )
            await self.parts.breaker.record_success(slot.name)
        return self.route(slot.deployment, reason=reason)

    def route(self, info: DeploymentInfo | None, *, reason: str | None = None) -> Route:
        now = time.perf_counter()
        first = None
        if self.first_token_at is not None:
            first = round((self.first_token_at - self.call.started) * 1000, 3)
        return Route.model_construct(
            deployment=info.name if info else None,
            model=info.model if info else None,
            provider=info.provider if info else None,
            tier=info.tier if info else None,
            group=self.plan.group,
            reason=reason or self.plan.reason,
            strategy=self.call.strategy,
            cache=None,
            cost_usd=round(self.cost_usd, 12),
            reserved_cost_usd=self.reserved_usd,
            latency_ms=round((now - self.call.started) * 1000, 3),
            first_token_ms=first,
            prompt_tokens=self.prompt_tokens_total,
            completion_tokens=self.completion_tokens_total,
            calls=self.calls,
            attempts=list(self.attempts),
            repaired=False,
            resumed=False,
        )

    def exhausted(self, *, partial_text: str = "", interrupted_on: str | None = None) -> Exception:
        """The error when no deployment answered (see the module docstring)."""
        called = [a for a in self.attempts if a.called]
        if self._limited and interrupted_on is None:
            return self._rate_limited()
        if not called and self._refusals:
            first = self._refusals[0]
            first.route = self.route(None)
            return first
        summary = (
            "; ".join(
                f"{a.deployment}: {a.outcome}" + (f" ({a.message[:120]})" if a.message else "") for a in self.attempts
            )
            or "no deployment could be tried"
        )
        route = self.route(None)
        last = called[-1] if called else None
        if interrupted_on is not None:
            return StreamInterruptedError(
                f"the answer broke on {interrupted_on} and no deployment could resume it ({summary})",
                partial_text=partial_text,
                deployment=interrupted_on,
                attempts=list(self.attempts),
                route=route,
            )
        timed_out = self.remaining() <= 0
        why = (
            f"no answer within the request deadline of {self.deadline_s:g}s"
            if timed_out
            else "every deployment that could serve this request failed"
        )
        retry_after = self._last_retry_after if last is not None and last.status_code == 429 else None
        return ProviderError(
            f"{why} (group {self.plan.group}: {summary}); check `director-llm health`",
            attempts=list(self.attempts),
            status_code=last.status_code if last else None,
            retry_after=retry_after,
            route=route,
        )

    def _rate_limited(self) -> RateLimitedError:
        hits = sorted(self._limited.values(), key=lambda h: (h.retry_after is None, h.retry_after or 0.0))
        first = hits[0]
        waited = f"after waiting {self.waited_s:.2f}s" if self.waited_s else "without waiting"
        summary = "; ".join(f"{n}: {h}" for n, h in self._limited.items())
        return RateLimitedError(
            f"every deployment that could serve this request is at a rate limit, {waited} "
            f"([llm.rate_limits] max_wait_seconds = {self.parts.llm.rate_limits.max_wait_seconds:g}, "
            f"request deadline {self.deadline_s:g}s): {summary}",
            limit=first.limit,
            scope=first.scope,
            retry_after=first.retry_after,
            attempts=list(self.attempts),
            route=self.route(None),
        )


def over_budget(exc: BaseException) -> bool:
    """Whether an exception is the budget refusing (or unable to check) a reservation."""
    return isinstance(exc, (AttemptOverBudgetError, BudgetExceededError, BudgetBackendError))
