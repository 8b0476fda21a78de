"""The engine's side of the budget: reserve before each paid call, settle after, never leak.

For every upstream call the engine asks ``BudgetGuard.reserve(deployment, prompt_tokens,
max_tokens)`` for a ``Hold`` on the call's worst case (the whole prompt plus ``max_tokens``
at the deployment's price), makes the call, then ``settle``\\s the hold to the cost of the
usage the provider reported, or ``release``\\s it when the call failed before generating
anything. A refused reservation raises ``AttemptOverBudgetError`` (the engine moves on to a
cheaper deployment), a store outage ``BudgetStoreDownError``.

* Zero-cost deployments (local, Ollama, loopback servers) and unlimited budgets reserve
  nothing (no tokenizer on the request path, no store operation). Their usage is still
  booked for ``director.spend()``, batched: calls are summed per deployment and written in
  one ledger operation at most every ``USAGE_FLUSH_S`` (and by ``flush()`` / ``drain()``).
* An attempt abandoned after it generated text (a stream closed early, cancelled, cut at a
  timeout) is settled by the usage seen or, failing that, by the tokens of the text
  delivered, capped at the reservation: the provider bills what it generated.
* Settlements run as tracked tasks (shielded: a cancelled request cannot cut one in half);
  ``drain()`` waits for the holds still open and the settlements in flight, so
  ``Director.aclose()`` never closes the ledger under a settle that is on the wire.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from director_llm.budget.ledger import (
    BudgetLedger,
    BudgetLimits,
    MemoryLedger,
    Reservation,
    estimate_worst_case_cost,
)
from director_llm.errors import (
    AttemptOverBudgetError,
    BudgetBackendError,
    BudgetExceededError,
    BudgetStoreDownError,
)

if TYPE_CHECKING:
    from director_llm.config.models import DirectorConfig
    from director_llm.providers import DeploymentInfo
    from director_llm.redis_clients import RedisClients

__all__ = ["BudgetGuard", "Hold", "binding_remaining", "budget_limits", "fits", "has_limits", "ledger_from_config"]

log = logging.getLogger("director_llm.budget")

_WARN_EVERY_S = 30.0
USAGE_FLUSH_S = 0.25
"""How long usage that needed no reservation waits to be booked (summed per deployment)."""
_UNLIMITED = float("inf")
_ids = itertools.count(1)


def budget_limits(config: DirectorConfig) -> BudgetLimits:
    """``BudgetLimits`` from ``[llm] budget_per_hour/day`` and each provider's own budget."""
    per_provider = {
        name: (p.budget_per_hour, p.budget_per_day)
        for name, p in config.providers.items()
        if p.budget_per_hour is not None or p.budget_per_day is not None
    }
    return BudgetLimits(
        per_hour=config.llm.budget_per_hour, per_day=config.llm.budget_per_day, per_provider=per_provider
    )


def ledger_from_config(
    config: DirectorConfig,
    *,
    clock: Callable[[], datetime] | None = None,
    prefix: str | None = None,
    redis: RedisClients | None = None,
) -> BudgetLedger:
    """``RedisLedger`` when ``config.redis_state_url`` is set (shared by every process on that
    Redis), wrapped in ``LocalFallbackLedger`` when ``[llm] budget_store_failure = "local"``,
    else ``MemoryLedger``. Reservations outlive the longest request by a margin."""
    limits = budget_limits(config)
    ttl = max(60.0, 2 * config.llm.timeout_seconds)
    url = config.redis_state_url
    if url:
        from director_llm.budget.redis import RedisLedger

        kwargs: dict[str, Any] = {} if prefix is None else {"prefix": prefix}
        if redis is not None:
            ledger = RedisLedger(redis=redis, limits=limits, clock=clock, reservation_ttl_s=ttl, **kwargs)
        else:
            ledger = RedisLedger(url, limits=limits, clock=clock, reservation_ttl_s=ttl, **kwargs)
        if config.llm.budget_store_failure == "local":
            from director_llm.budget.outage import LocalFallbackLedger

            return LocalFallbackLedger(ledger, expected_processes=config.llm.expected_processes)
        return ledger
    return MemoryLedger(limits=limits, clock=clock, reservation_ttl_s=ttl)


def has_limits(limits: Any) -> bool:
    """Whether ``BudgetLimits`` sets any window (global or per provider)."""
    if limits is None:
        return False
    return (
        limits.per_hour is not None
        or limits.per_day is not None
        or any(v is not None for lim in limits.per_provider.values() for v in lim)
    )


def fits(remaining: Mapping[str, float], provider: str, amount: float) -> bool:
    """Does ``amount`` fit every limited window in a ``ledger.remaining()`` result?"""
    return amount <= binding_remaining(remaining, provider)


def binding_remaining(remaining: Mapping[str, float], provider: str | None = None) -> float:
    """USD left in the tightest window that applies (inf when nothing is limited)."""
    names = ["hour", "day"]
    if provider is not None:
        names += [f"provider:{provider}:hour", f"provider:{provider}:day"]
    values = [remaining[n] for n in names if n in remaining]
    return min(values) if values else _UNLIMITED


def is_free(info: DeploymentInfo) -> bool:
    """A deployment whose calls cost nothing (local tier, Ollama, loopback servers)."""
    return info.price.known and not (info.price.input_per_token or info.price.output_per_token)


@dataclass(slots=True)
class Hold:
    """One upstream call's reservation (``reservation`` is None when nothing was reserved)."""

    id: int
    deployment: DeploymentInfo
    reservation: Reservation | None
    amount_usd: float
    prompt_tokens: int
    max_tokens: int
    closed: bool = False


class BudgetGuard:
    """Reserve / settle / release around each upstream call, against one ``BudgetLedger``."""

    def __init__(self, ledger: BudgetLedger, *, default_max_tokens: int) -> None:
        self.ledger = ledger
        self.limited = has_limits(getattr(ledger, "limits", None))
        """Whether any budget window has a limit. Without one nothing is reserved."""
        self.default_max_tokens = default_max_tokens
        self._open: dict[int, Hold] = {}
        self._settling: set[asyncio.Task[None]] = set()
        self._usage: dict[tuple[str, str], list[float]] = {}  # (provider, model) -> [cost, pt, ct, n]
        self._flush_due: asyncio.TimerHandle | None = None
        self._last_warning = 0.0
        self.round_trips = 0
        """Ledger operations that needed the store (benchmarks read it)."""

    def configure(self, config: DirectorConfig) -> None:
        """Take a reloaded config's limits and default ``max_tokens``. The store (spend booked,
        holds open) is kept: windows are read against the limits at each call."""
        limits = budget_limits(config)
        if hasattr(self.ledger, "limits"):
            self.ledger.limits = limits
        if hasattr(self.ledger, "expected_processes"):
            self.ledger.expected_processes = config.llm.expected_processes
        self.limited = has_limits(limits)
        self.default_max_tokens = config.llm.default_max_tokens

    # -- pricing ---------------------------------------------------------------------------
    is_free = staticmethod(is_free)

    def max_tokens_for(self, info: DeploymentInfo, params: Mapping[str, Any]) -> int:
        """The output bound of a call: the caller's, else the deployment's, else the default."""
        given = params.get("max_tokens") or params.get("max_completion_tokens")
        return int(given or info.max_tokens or self.default_max_tokens)

    @staticmethod
    def worst_case(info: DeploymentInfo, prompt_tokens: int, max_tokens: int) -> float:
        """The most one call can cost in USD (0 for a zero-cost deployment)."""
        if is_free(info):
            return 0.0
        return estimate_worst_case_cost(
            prompt_tokens, max_tokens, info.price.input_per_token or 0.0, info.price.output_per_token or 0.0
        )

    @staticmethod
    def cost(info: DeploymentInfo, prompt_tokens: int, completion_tokens: int) -> float:
        """What a finished call cost, at the deployment's price."""
        return info.price.cost(prompt_tokens, completion_tokens)

    # -- reads -----------------------------------------------------------------------------
    async def remaining(self) -> dict[str, float]:
        """USD left per limited window (one store read); ``BudgetBackendError`` if the store is down."""
        self.round_trips += 1
        try:
            return await self.ledger.remaining()
        except BudgetBackendError as exc:
            self._warn(exc)
            raise

    async def explain(self, amount: float, provider: str) -> AttemptOverBudgetError:
        """A ``BudgetExceededError`` naming the first window that cannot hold ``amount``."""
        try:
            report = await self.ledger.snapshot()
        except BudgetBackendError:
            return AttemptOverBudgetError(
                f"the budget store (Redis) is unreachable and this process's share of the remaining "
                f"budget during the outage cannot afford this request (up to ${amount:.6f}); priced "
                "deployments are served again from the shared budget when Redis is back",
                window="unknown",
                limit_usd=0.0,
                spent_usd=0.0,
                requested_usd=amount,
            )
        for name in ("hour", "day", f"provider:{provider}:hour", f"provider:{provider}:day"):
            w = report.windows.get(name)
            if w is not None and w.remaining_usd is not None and w.remaining_usd < amount:
                return AttemptOverBudgetError(
                    f"Budget window '{name}' ({w.period}) cannot afford this request: it needs up to "
                    f"${amount:.6f} but only ${w.remaining_usd:.6f} of ${w.limit_usd:.6f} is left "
                    f"(${w.spent_usd:.6f} spent, ${w.reserved_usd:.6f} held by calls in flight). It resets "
                    f"at {w.resets_at.isoformat()}. Use a cheaper or local tier, lower max_tokens, wait "
                    f"for the reset, or raise the budget in the config.",
                    window=name,
                    limit_usd=w.limit_usd or 0.0,
                    spent_usd=w.spent_usd,
                    reserved_usd=w.reserved_usd,
                    requested_usd=amount,
                    resets_at=w.resets_at,
                )
        return AttemptOverBudgetError(window="hour", limit_usd=0.0, spent_usd=0.0, requested_usd=amount)

    # -- the request path ------------------------------------------------------------------
    def applies(self, provider: str) -> bool:
        """Whether a budget window (global, or ``provider``'s own) limits calls to ``provider``."""
        limits = getattr(self.ledger, "limits", None)
        if not self.limited or limits is None:
            return False
        own = limits.per_provider.get(provider)
        return (
            limits.per_hour is not None
            or limits.per_day is not None
            or (own is not None and any(v is not None for v in own))
        )

    def unpriced(self, info: DeploymentInfo) -> AttemptOverBudgetError:
        """The refusal of a deployment under a budget whose price nobody knows (nothing in the
        config has a price to assume for it, see ``providers.budgeted_prices``)."""
        from director_llm.providers import override_lines

        limits = self.ledger.limits  # type: ignore[attr-defined]
        own = limits.per_provider.get(info.provider)
        window, limit = next(
            (w, v)
            for w, v in (
                ("hour", limits.per_hour),
                ("day", limits.per_day),
                (f"provider:{info.provider}:hour", own.per_hour if own else None),
                (f"provider:{info.provider}:day", own.per_day if own else None),
            )
            if v is not None
        )
        lines = "\n".join("    " + line for line in override_lines(None, info).splitlines())
        return AttemptOverBudgetError(
            f"{info.name} has no known price (not in LiteLLM's cost map, no override) and no deployment "
            f"has a price to budget it at, so the budget ('{window}' window) cannot let it be called: "
            f"an unknown price is never free. Add its price to the config:\n{lines}",
            window=window,
            limit_usd=limit,
            spent_usd=0.0,
        )

    async def reserve(self, info: DeploymentInfo, *, prompt_tokens: int, max_tokens: int) -> Hold:
        """Hold the worst case of one call to ``info``. Raises ``AttemptOverBudgetError`` or
        ``BudgetStoreDownError``; zero-cost deployments and unlimited budgets hold nothing."""
        if not info.price.known and self.applies(info.provider):
            raise self.unpriced(info)
        amount = self.worst_case(info, prompt_tokens, max_tokens) if self.limited else 0.0
        reservation: Reservation | None = None
        if amount > 0:
            self.round_trips += 1
            try:
                reservation = await self.ledger.reserve(amount_usd=amount, provider=info.provider, model=info.model)
            except BudgetBackendError as exc:
                self._warn(exc)
                raise BudgetStoreDownError(str(exc)) from None
            except BudgetExceededError as exc:
                raise AttemptOverBudgetError(
                    str(exc),
                    window=exc.window,
                    limit_usd=exc.limit_usd,
                    spent_usd=exc.spent_usd,
                    reserved_usd=exc.reserved_usd,
                    requested_usd=exc.requested_usd,
                    resets_at=exc.resets_at,
                ) from None
        hold = Hold(next(_ids), info, reservation, amount, prompt_tokens, max_tokens)
        self._open[hold.id] = hold
        return hold

    def settle(self, hold: Hold, prompt_tokens: int, completion_tokens: int) -> float:
        """Book the call's actual cost (and close the hold). Returns the cost in USD."""
        if hold.closed:
            return 0.0
        self._close(hold)
        info = hold.deployment
        cost = self.cost(info, prompt_tokens, completion_tokens)
        if hold.reservation is None:
            self._add_usage(info, cost, prompt_tokens, completion_tokens)
        else:
            self._start(self._book(hold, cost, prompt_tokens, completion_tokens))
        return cost

    def release(self, hold: Hold) -> None:
        """Give the hold back: the call failed before the provider generated anything."""
        if hold.closed:
            return
        self._close(hold)
        if hold.reservation is not None:
            self._start(self._release(hold.reservation))

    def abandon(self, hold: Hold, *, prompt_tokens: int, completion_tokens: int, delivered_text: str) -> float:
        """Settle a call that will not finish (closed early, cancelled, cut at a timeout): by
        the usage seen, else the prompt plus the tokens of the text delivered, never more
        than was reserved."""
        if hold.closed:
            return 0.0
        pt = prompt_tokens or hold.prompt_tokens
        ct = completion_tokens
        if not ct and delivered_text:
            from director_llm.tokens import text_tokens

            ct = min(hold.max_tokens, text_tokens(hold.deployment.litellm_model, delivered_text))
        cost = self.cost(hold.deployment, pt, ct)
        self._close(hold)
        if hold.reservation is not None:
            cost = min(cost, hold.amount_usd)
            self._start(self._book(hold, cost, pt, ct))
        else:
            self._add_usage(hold.deployment, cost, pt, ct)
        return cost

    # -- background settlements ------------------------------------------------------------
    def _close(self, hold: Hold) -> None:
        hold.closed = True
        self._open.pop(hold.id, None)

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # finalised outside any loop: the reservation expires with its TTL
            work.close()
            log.warning("budget settlement dropped: no running event loop")
            return
        task = loop.create_task(work)
        self._settling.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._settling.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("budget settlement failed: %r", task.exception())

    async def _book(self, hold: Hold, cost: float, pt: int, ct: int) -> None:
        assert hold.reservation is not None
        try:
            self.round_trips += 1
            await asyncio.shield(
                self.ledger.settle(hold.reservation, actual_usd=cost, prompt_tokens=pt, completion_tokens=ct)
            )
        except BudgetBackendError as exc:  # retried already; the hold expires with its TTL
            self._warn(exc)

    def _add_usage(self, info: DeploymentInfo, cost: float, pt: int, ct: int) -> None:
        totals = self._usage.setdefault((info.provider, info.model), [0.0, 0, 0, 0])
        totals[0] += cost
        totals[1] += pt
        totals[2] += ct
        totals[3] += 1
        if self._flush_due is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # booked by the next flush() (drain)
            self._flush_due = loop.call_later(USAGE_FLUSH_S, lambda: self._start(self.flush()))

    async def flush(self) -> None:
        """Book the usage summed since the last flush (one ledger operation per deployment)."""
        if self._flush_due is not None:
            self._flush_due.cancel()
            self._flush_due = None
        pending, self._usage = self._usage, {}
        for (provider, model), (cost, pt, ct, n) in pending.items():
            try:
                self.round_trips += 1
                await asyncio.shield(
                    self.ledger.record_usage(
                        provider=provider,
                        model=model,
                        actual_usd=cost,
                        prompt_tokens=int(pt),
                        completion_tokens=int(ct),
                        requests=int(n),
                    )
                )
            except BudgetBackendError as exc:
                self._warn(exc)

    async def _release(self, reservation: Reservation) -> None:
        try:
            self.round_trips += 1
            await asyncio.shield(self.ledger.release(reservation))
        except BudgetBackendError as exc:
            self._warn(exc)

    @property
    def open_holds(self) -> int:
        """Calls reserved and not yet settled or released."""
        return len(self._open)

    @property
    def settling(self) -> int:
        """Settlements and releases still on their way to the ledger."""
        return len(self._settling)

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait until every open hold is closed and every settlement has landed."""
        deadline = time.monotonic() + timeout
        while True:
            if self._usage:  # settled holds' usage waiting for its batch: book it now
                self._start(self.flush())
            if not (self._open or self._settling):
                return
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning(
                    "%d budget reservations still open after %.1fs; they expire with their TTL",
                    len(self._open),
                    timeout,
                )
                return
            if self._settling:
                await asyncio.wait(set(self._settling), timeout=left)
            else:
                await asyncio.sleep(min(0.01, left))

    async def release_all(self) -> None:
        """Give back every open hold (shutdown after ``drain`` timed out)."""
        for hold in list(self._open.values()):
            self.release(hold)
        if self._settling:
            await asyncio.wait(set(self._settling), timeout=5.0)

    def _warn(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY_S:
            self._last_warning = now
            log.warning("budget ledger unavailable, serving zero-cost tiers only: %s", exc)
