"""The budget ledger wired into the Router's own callbacks, so every call obeys it.

Parts (registered on ``DirectorHooks`` by ``Director.__init__``):

* ``filter`` (``async_filter_deployments``): drops the deployments of a group whose
  worst-case cost no longer fits a budget window, so LiteLLM's fallback chain moves on to a
  cheaper group. When the budget empties the group it raises ``AttemptOverBudgetError``
  (a ``BudgetExceededError`` naming window, limit, spend and reset time).
* ``guard`` (``async_pre_call_deployment_hook``, run once per ATTEMPT, retries and
  fallbacks included, with the chosen deployment's ``model_info``): atomically reserves the
  attempt's worst case (prompt tokens by ``litellm.token_counter`` + ``max_tokens`` at the
  deployment's price). It also pins ``max_tokens`` on the request so the reservation is a
  true bound. A refused reservation raises ``AttemptOverBudgetError``.
* observer (``async_log_success_event`` / ``async_log_failure_event``): settles the
  reservation to the cost of the usage the provider reported, or releases it. Attempt and
  reservation are matched by ``litellm_call_id``, which LiteLLM creates per attempt and
  passes unchanged to the hook and to the success/failure event (verified, 1.110.2).
* ``allow_fallback`` (``fallback_budget_check``): skips a cross-group fallback when none
  of the target group's deployments can be afforded.
* ``abandon(request_id, ...)``: an attempt LiteLLM will never report (a stream closed early,
  cancelled, or given up at the first-token timeout) is settled by the usage seen or, when
  text was delivered, by an estimate of the tokens delivered; it is never simply released,
  since the provider bills what it generated. Called by ``director_llm.streaming``.

Settlements never get lost: each one runs in its own task owned by ``BudgetHooks``
(shielded, so LiteLLM cancelling a slow callback cannot cut a settle in half), and
``drain()`` waits for the open holds AND for the settlements still in flight before
``Director.aclose()`` closes the ledger. (Before, ``drain`` returned as soon as the last
hold had been *taken out* of the table, while its settle was still on the wire, and the
ledger's Redis pool was then closed under it: "Connection closed by server".) The Redis
ledger retries its idempotent scripts after a dropped connection (``budget.RedisLedger``).

Why the budget errors carry ``status_code = 400``: LiteLLM retries an attempt that failed
with an unknown exception (with ~1 s backoff each), but falls back at once on a 4xx. A
budget refusal will not heal by retrying the same deployment, so it must look like a 4xx.
The circuit breaker ignores 400s too, so budget refusals never open it.

Redis outage: the ledger cannot check spend, so every priced deployment is refused
(fail-closed: never overspend) and zero-cost deployments (local/Ollama) are still served;
amount 0 never touches the store. A warning is logged at most every ``_WARN_EVERY_S``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from director_llm.budget.ledger import (
    BudgetBackendError,
    BudgetLedger,
    BudgetLimits,
    MemoryLedger,
    Reservation,
    estimate_worst_case_cost,
)
from director_llm.errors import BudgetExceededError
from director_llm.router.build import deployment_of, director_meta

if TYPE_CHECKING:
    from director_llm.config.models import DirectorConfig
    from director_llm.providers import DeploymentInfo

log = logging.getLogger("director_llm.budget.hooks")

_WARN_EVERY_S = 30.0
_RECENT_ROUTES = 4096  # call id -> reserved USD, kept for the route of recent responses
_UNLIMITED = float("inf")


class _SettableMessage:
    # LiteLLM appends its fallback notes to ``exc.message``; DirectorError's is read-only.
    @property
    def message(self) -> str:
        return getattr(self, "_litellm_message", None) or str(self)

    @message.setter
    def message(self, value: str) -> None:
        self._litellm_message = value


class AttemptOverBudgetError(_SettableMessage, BudgetExceededError):
    """This attempt (or every deployment of a group) does not fit a budget window.
    A 4xx for LiteLLM, so it falls back at once instead of retrying."""

    status_code = 400


class BudgetStoreDownError(_SettableMessage, BudgetBackendError):
    """The shared ledger is unreachable, so priced deployments are refused (never overspend);
    zero-cost deployments are still served. A 4xx for LiteLLM (fall back, no retry)."""

    status_code = 400


def budget_limits(config: DirectorConfig) -> BudgetLimits:
    """``BudgetLimits`` from ``[llm] budget_per_hour/day`` and each provider's own budget."""
    per_provider = {
        name: (p.budget_per_hour, p.budget_per_day)
        for name, p in config.providers.items()
        if p.budget_per_hour is not None or p.budget_per_day is not None
    }
    return BudgetLimits(per_hour=config.llm.budget_per_hour, per_day=config.llm.budget_per_day,
                        per_provider=per_provider)


def ledger_from_config(config: DirectorConfig, *, clock: Callable[[], datetime] | None = None,
                       prefix: str | None = None) -> BudgetLedger:
    """``RedisLedger`` when ``config.redis_state_url`` is set (shared by every process on that
    Redis), else ``MemoryLedger``. Reservations outlive the longest request by a margin."""
    limits = budget_limits(config)
    ttl = max(60.0, 2 * config.llm.timeout_seconds)
    url = config.redis_state_url
    if url:
        kwargs: dict[str, Any] = {} if prefix is None else {"prefix": prefix}
        from director_llm.budget.redis import RedisLedger

        return RedisLedger(url, limits=limits, clock=clock, reservation_ttl_s=ttl, **kwargs)
    return MemoryLedger(limits=limits, clock=clock, reservation_ttl_s=ttl)


def count_text_tokens(info: DeploymentInfo | None, text: str) -> int:
    """Tokens of ``text`` as LiteLLM counts them for ``info``'s model (estimate for
    output that was delivered but never reported with usage)."""
    import litellm

    model = info.litellm_model if info is not None else "gpt-4o"
    try:
        return int(litellm.token_counter(model=model, text=text))
    except Exception:  # noqa: BLE001 - unknown tokenizer: ~4 characters per token, rounded up
        return max(1, -(-len(text) // 4))


def count_prompt_tokens(model: str, messages: Any) -> int:
    """Prompt tokens as LiteLLM counts them (tiktoken for unknown models; ~0.1 ms)."""
    import litellm

    try:
        return int(litellm.token_counter(model=model, messages=messages or []))
    except Exception:  # noqa: BLE001 - odd message shapes: fall back to a generous estimate
        return max(1, len(str(messages)) // 2)


@dataclass(frozen=True, slots=True)
class Hold:
    """An open reservation for one attempt."""

    reservation: Reservation
    deployment: str
    prompt_tokens: int = 0
    max_tokens: int = 0
    request_id: str | None = None


class BudgetHooks:
    """Filter, guard, observer and fallback check backed by one ``BudgetLedger``.

    ``deployments`` maps a deployment name to its ``DeploymentInfo`` (price, provider,
    ``max_tokens``); ``default_max_tokens`` bounds calls that give none.
    """

    def __init__(self, ledger: BudgetLedger, deployments: Callable[[], Mapping[str, DeploymentInfo]], *,
                 default_max_tokens: int) -> None:
        self.ledger = ledger
        self.limited = has_limits(getattr(ledger, "limits", None))
        """Whether any budget window has a limit. Without one nothing is reserved (no token
        counting on the request path); spend is still booked from each response's usage."""
        self._deployments = deployments
        self.default_max_tokens = default_max_tokens
        self._holds: dict[str, Hold] = {}
        self._by_request: dict[str, set[str]] = {}  # director request_id -> call ids with a hold
        self._settling: set[asyncio.Task[None]] = set()
        self._reserved: OrderedDict[str, float] = OrderedDict()
        self._idle = asyncio.Event()
        self._idle.set()
        self._last_warning = 0.0
        self.round_trips = 0
        """Ledger operations that needed the store (benchmarks read it)."""

    # -- pricing -----------------------------------------------------------------------------
    def info(self, name: str | None) -> DeploymentInfo | None:
        return self._deployments().get(name) if name else None

    def max_tokens_for(self, info: DeploymentInfo, kwargs: Mapping[str, Any]) -> int:
        given = kwargs.get("max_tokens") or kwargs.get("max_completion_tokens")
        return int(given or info.max_tokens or self.default_max_tokens)

    @staticmethod
    def is_free(info: DeploymentInfo) -> bool:
        return not (info.price.input_per_token or info.price.output_per_token)

    def worst_case(self, info: DeploymentInfo, kwargs: Mapping[str, Any], prompt_tokens: int | None = None) -> float:
        """The most this attempt can cost in USD (0 for a zero-cost deployment)."""
        if self.is_free(info):
            return 0.0
        if prompt_tokens is None:
            prompt_tokens = count_prompt_tokens(info.litellm_model, kwargs.get("messages"))
        return estimate_worst_case_cost(prompt_tokens, self.max_tokens_for(info, kwargs),
                                        info.price.input_per_token or 0.0, info.price.output_per_token or 0.0)

    def _prompt_tokens(self, request_kwargs: Mapping[str, Any], info: DeploymentInfo) -> int:
        # The selector counts once per request (metadata "prompt_tokens", with the model whose
        # tokenizer it used); reuse it when this deployment's model is the same one.
        meta = director_meta(dict(request_kwargs))
        cached = meta.get("prompt_tokens")
        if isinstance(cached, int) and meta.get("prompt_tokens_model") in (None, info.litellm_model):
            return cached
        return count_prompt_tokens(info.litellm_model, request_kwargs.get("messages"))

    # -- filter ------------------------------------------------------------------------------
    async def filter(self, group: str, deployments: list[dict], request_kwargs: dict) -> list[dict]:
        """Keep the deployments whose worst case fits every window now."""
        if not self.limited:
            return deployments
        kept: list[dict] = []
        refusal: BaseException | None = None
        meta = director_meta(request_kwargs)
        remaining = meta.get("budget_remaining")  # the selector's fresh read, this request
        verdicts: dict[tuple[str, float], bool] = {}
        for dep in deployments:
            info = self.info((dep.get("model_info") or {}).get("director_deployment"))
            if info is None or self.is_free(info):
                kept.append(dep)
                continue
            amount = self.worst_case(info, request_kwargs, self._prompt_tokens(request_kwargs, info))
            key = (info.provider, amount)
            if key not in verdicts:
                try:
                    verdicts[key] = (fits(remaining, info.provider, amount) if isinstance(remaining, dict)
                                     else await self._can_afford(amount, info.provider))
                except BudgetBackendError as exc:
                    self._warn(exc)
                    verdicts[key], refusal = False, exc
            if verdicts[key]:
                kept.append(dep)
            elif refusal is None:
                refusal = await self.explain(amount, info.provider)
        if kept or not deployments:
            return kept
        if isinstance(refusal, BudgetBackendError):
            raise BudgetStoreDownError(str(refusal)) from refusal
        raise refusal or AttemptOverBudgetError(window="unknown", limit_usd=0.0, spent_usd=0.0)

    async def _can_afford(self, amount: float, provider: str) -> bool:
        self.round_trips += 1
        return await self.ledger.can_afford(amount, provider)

    async def explain(self, amount: float, provider: str) -> AttemptOverBudgetError:
        """A ``BudgetExceededError`` for the first window that cannot hold ``amount``."""
        try:
            report = await self.ledger.snapshot()
        except BudgetBackendError:
            return AttemptOverBudgetError(window="unknown", limit_usd=0.0, spent_usd=0.0, requested_usd=amount)
        for name in ("hour", "day", f"provider:{provider}:hour", f"provider:{provider}:day"):
            w = report.windows.get(name)
            if w is not None and w.remaining_usd is not None and w.remaining_usd < amount:
                return AttemptOverBudgetError(
                    f"Budget window '{name}' ({w.period}) cannot afford this request: it needs up to "
                    f"${amount:.6f} but only ${w.remaining_usd:.6f} of ${w.limit_usd:.6f} is left "
                    f"(${w.spent_usd:.6f} spent, ${w.reserved_usd:.6f} held by calls in flight). It resets "
                    f"at {w.resets_at.isoformat()}. Use a cheaper or local tier, lower max_tokens, wait "
                    f"for the reset, or raise the budget in the config.",
                    window=name, limit_usd=w.limit_usd or 0.0, spent_usd=w.spent_usd,
                    reserved_usd=w.reserved_usd, requested_usd=amount, resets_at=w.resets_at)
        return AttemptOverBudgetError(window="hour", limit_usd=0.0, spent_usd=0.0, requested_usd=amount)

    # -- guard -------------------------------------------------------------------------------
    async def guard(self, kwargs: dict) -> None:
        """Reserve this attempt's worst case, or reject the attempt (LiteLLM falls back)."""
        _, name = deployment_of(kwargs)
        info = self.info(name)
        call_id = kwargs.get("litellm_call_id")
        if info is None or not isinstance(call_id, str):
            return
        if self.is_free(info):
            self._remember(call_id, 0.0)
            return
        if self.limited:
            if not (kwargs.get("max_tokens") or kwargs.get("max_completion_tokens")):
                # Pin the bound we reserve for: without it a provider may answer at any length.
                kwargs["max_tokens"] = self.max_tokens_for(info, kwargs)
            prompt_tokens = self._prompt_tokens(kwargs, info)
            amount = self.worst_case(info, kwargs, prompt_tokens)
        else:  # nothing to protect: a zero hold, settled to the actual cost (spend reports)
            prompt_tokens, amount = 0, 0.0
        self.round_trips += 1
        try:
            res = await self.ledger.reserve(amount_usd=amount, provider=info.provider, model=info.model)
        except BudgetBackendError as exc:
            self._warn(exc)
            raise BudgetStoreDownError(str(exc)) from exc
        except BudgetExceededError as exc:
            raise AttemptOverBudgetError(
                str(exc), window=exc.window, limit_usd=exc.limit_usd, spent_usd=exc.spent_usd,
                reserved_usd=exc.reserved_usd, requested_usd=exc.requested_usd, resets_at=exc.resets_at) from None
        request_id = director_meta(kwargs).get("request_id")
        request_id = request_id if isinstance(request_id, str) else None
        self._holds[call_id] = Hold(res, info.name, prompt_tokens, self.max_tokens_for(info, kwargs), request_id)
        if request_id is not None:
            self._by_request.setdefault(request_id, set()).add(call_id)
        self._idle.clear()
        self._remember(call_id, amount)

    def _remember(self, call_id: str, amount: float) -> None:
        self._reserved[call_id] = amount
        if len(self._reserved) > _RECENT_ROUTES:
            self._reserved.popitem(last=False)

    def reserved_for(self, call_id: str | None) -> float | None:
        """USD reserved for the attempt ``call_id`` (None if unknown)."""
        return self._reserved.get(call_id) if call_id else None

    # -- observer ----------------------------------------------------------------------------
    def actual_cost(self, info: DeploymentInfo | None, prompt_tokens: int, completion_tokens: int,
                    reported: Any) -> float:
        """Cost of a finished attempt: config prices win (LiteLLM may not know the model);
        otherwise LiteLLM's own ``response_cost``."""
        if info is not None and (info.price.source == "config" or reported is None):
            return info.price.cost(prompt_tokens, completion_tokens)
        return max(0.0, float(reported or 0.0))

    def _take(self, call_id: Any) -> Hold | None:
        """Remove and return the open hold of ``call_id``. Synchronous, so whichever of the
        success event, the failure event or ``abandon`` comes first owns the hold."""
        hold = self._holds.pop(str(call_id), None)
        if hold is not None and hold.request_id is not None:
            ids = self._by_request.get(hold.request_id)
            if ids is not None:
                ids.discard(str(call_id))
                if not ids:
                    del self._by_request[hold.request_id]
        return hold

    def _start(self, work: Any) -> asyncio.Task[None] | None:
        """Run one settlement as a task of its own, tracked until it is done (``drain``)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a stream finalised outside any loop: the hold expires with its TTL
            work.close()
            log.warning("budget settlement dropped: no running event loop")
            return None
        task = loop.create_task(work)
        self._settling.add(task)
        self._idle.clear()
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._settling.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("budget settlement failed: %r", task.exception())
        self._maybe_idle()

    async def _settle(self, hold: Hold, cost: float, pt: int, ct: int) -> None:
        try:
            self.round_trips += 1
            await self.ledger.settle(hold.reservation, actual_usd=cost, prompt_tokens=pt, completion_tokens=ct)
        except BudgetBackendError as exc:  # retried already; the hold expires with its TTL
            self._warn(exc)

    async def _release(self, hold: Hold) -> None:
        try:
            self.round_trips += 1
            await self.ledger.release(hold.reservation)
        except BudgetBackendError as exc:
            self._warn(exc)

    async def attempt_succeeded(self, deployment: str, kwargs: dict, response: Any, latency_s: float) -> None:
        hold = self._take(kwargs.get("litellm_call_id"))
        if hold is None:
            return
        slo = kwargs.get("standard_logging_object") or {}
        pt, ct = int(slo.get("prompt_tokens") or 0), int(slo.get("completion_tokens") or 0)
        cost = self.actual_cost(self.info(hold.deployment), pt, ct, slo.get("response_cost"))
        # Shielded: if LiteLLM cancels this callback, the settlement still completes.
        task = self._start(self._settle(hold, cost, pt, ct))
        if task is not None:
            await asyncio.shield(task)

    async def attempt_failed(self, deployment: str, kwargs: dict, error: BaseException | None,
                             latency_s: float) -> None:
        hold = self._take(kwargs.get("litellm_call_id"))
        if hold is None:
            return
        task = self._start(self._release(hold))
        if task is not None:
            await asyncio.shield(task)

    def abandon(self, request_id: str | None, *, usage: Mapping[str, int] | None = None,
                delivered_text: str = "") -> int:
        """Settle the attempts of ``request_id`` that LiteLLM will never report (a stream
        closed early or given up). Returns how many holds were closed.

        The cost booked is that of ``usage`` when the provider sent it; otherwise the
        prompt plus the tokens of ``delivered_text`` (capped at the reserved
        ``max_tokens``), so it never exceeds the reservation. With no text delivered the
        prompt alone is booked: the provider read it and may bill it. Synchronous (the
        ledger call runs in a task ``drain`` waits for), so it can be called from a
        ``finally`` block and wins the race against LiteLLM's own deferred events."""
        if not request_id:
            return 0
        closed = 0
        for call_id in list(self._by_request.get(request_id, ())):
            hold = self._take(call_id)
            if hold is None:
                continue
            closed += 1
            info = self.info(hold.deployment)
            pt = int((usage or {}).get("prompt_tokens") or hold.prompt_tokens)
            ct = (usage or {}).get("completion_tokens")
            if not ct:
                ct = min(hold.max_tokens, count_text_tokens(info, delivered_text)) if delivered_text else 0
            cost = self.actual_cost(info, pt, int(ct), None)
            self._start(self._settle(hold, min(cost, hold.reservation.amount_usd), pt, int(ct)))
        return closed

    def _maybe_idle(self) -> None:
        if not self._holds and not self._settling:
            self._idle.set()

    @property
    def open_holds(self) -> int:
        """Attempts reserved and not yet settled or released."""
        return len(self._holds)

    @property
    def settling(self) -> int:
        """Settlements and releases still on their way to the ledger."""
        return len(self._settling)

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait until every open reservation is settled and every settlement has landed
        (LiteLLM's callbacks run after the response was returned)."""
        self._maybe_idle()
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
                while self._settling:  # settlements started by a hold that closed meanwhile
                    await asyncio.wait(set(self._settling))
        except TimeoutError:
            log.warning("%d budget reservations still open after %.1fs; they expire with their TTL",
                        len(self._holds), timeout)

    async def release_all(self) -> None:
        """Give back every open hold (shutdown after ``drain`` timed out)."""
        for call_id in list(self._holds):
            hold = self._take(call_id)
            if hold is None:
                continue
            try:
                await self.ledger.release(hold.reservation)
            except BudgetBackendError:
                pass
        if self._settling:
            await asyncio.wait(set(self._settling), timeout=5.0)
        self._maybe_idle()

    # -- fallback check ----------------------------------------------------------------------
    async def allow_fallback(self, group: str, request_kwargs: Any) -> bool:
        """False when no deployment of ``group`` can be afforded (LiteLLM skips it)."""
        kwargs = dict(request_kwargs or {})
        infos = [i for i in self._deployments().values() if group in (i.tier, i.name)]
        if not infos or any(self.is_free(i) for i in infos):
            return True
        deps = [{"model_info": {"director_deployment": i.name}} for i in infos]
        try:
            return bool(await self.filter(group, deps, kwargs))
        except (BudgetExceededError, BudgetBackendError):
            return False

    def _warn(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY_S:
            self._last_warning = now
            log.warning("budget ledger unavailable, serving zero-cost tiers only: %s", exc)


def has_limits(limits: Any) -> bool:
    """Whether ``BudgetLimits`` sets any window (global or per provider)."""
    if limits is None:
        return False
    return (limits.per_hour is not None or limits.per_day is not None
            or any(v is not None for lim in limits.per_provider.values() for v in lim))


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
