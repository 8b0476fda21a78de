"""``Telemetry``: the Director's ``Observer``. One per Director; it fans each request's events
out to the Prometheus families (``observability.prometheus``), the OpenTelemetry spans
(``observability.tracing``), the request log line (``observability.logline``) and the shared
health counters (``resilience.shared_stats``).

Per request it costs a handful of dict lookups and counter increments (measured by
``scripts/bench_observer.py``); tracing costs one dict lookup when OpenTelemetry is not set
up. State that is not an event (cache counters per layer, breaker states, budget windows)
is read into the gauges by ``refresh`` (each scrape) and ``tick`` (after a request, at most
every ``REFRESH_S``, so that other processes' scrapes in multiprocess mode see it too).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import director_llm.observability.logline as logline
import director_llm.observability.tracing as tracing
from director_llm.observability.observer import fallback_reason, outcome_of

if TYPE_CHECKING:
    from director_llm.budget.guard import BudgetGuard
    from director_llm.cache.director import DirectorCache
    from director_llm.config.models import ObservabilityConfig
    from director_llm.observability.prometheus import PromMetrics
    from director_llm.providers import DeploymentInfo
    from director_llm.request import Call
    from director_llm.resilience.breaker import CircuitBreaker
    from director_llm.resilience.shared_stats import SharedAttemptStats
    from director_llm.route import Attempt, Route

__all__ = ["REFRESH_S", "RequestTelemetry", "Telemetry", "latest"]

log = logging.getLogger("director_llm.observability")

REFRESH_S = 5.0
"""Gauges (budget, breaker, cache) are re-read after a request at most this often."""
_live: list[weakref.ref[Telemetry]] = []


def latest() -> Telemetry | None:
    """The most recently built ``Telemetry`` of this process whose Director is still open."""
    for ref in reversed(_live):
        t = ref()
        if t is not None and not t.closed:
            return t
    return None


class Telemetry:
    """Observer of one Director (see the module docstring)."""

    def __init__(
        self,
        settings: ObservabilityConfig,
        *,
        deployments: Mapping[str, DeploymentInfo],
        watched: Iterable[str],
        breaker: CircuitBreaker,
        budget: BudgetGuard,
        cache: DirectorCache,
        shared: SharedAttemptStats | None = None,
        shared_state: bool = False,
    ) -> None:
        self.settings = settings
        self.deployments = deployments
        self.watched = sorted(watched)
        self.breaker = breaker
        self.budget = budget
        self.cache = cache
        self.shared = shared
        """Health counters in Redis (None without Redis)."""
        self.shared_state = shared_state
        """Whether the breaker and the budget ledger are shared through Redis."""
        self.closed = False
        self._prom: PromMetrics | None = None
        self._lock = threading.Lock()
        self._next_tick = 0.0
        self._refreshing: asyncio.Task[None] | None = None
        self._cache_seen: dict[tuple[str, str], int] = {}
        self._log_format = settings.log_format
        _live[:] = [r for r in _live if r() is not None]
        _live.append(weakref.ref(self))

    # -- Prometheus ------------------------------------------------------------------------
    @property
    def prom(self) -> PromMetrics | None:
        """The metric families (built, and prometheus_client imported, on first use); None
        with ``[observability] metrics = false``."""
        if self._prom is None and self.settings.metrics:
            with self._lock:
                if self._prom is None:
                    from director_llm.observability.prometheus import PromMetrics

                    self._prom = PromMetrics.for_director()
        return self._prom

    def load(self) -> None:
        """Import prometheus_client and build the families now (``Director.warmup`` does it
        in a worker thread, so that the first request does not pay the ~35 ms import)."""
        _ = self.prom

    def text(self) -> str:
        """The exposition text (state gauges as of the last ``refresh``; counters live)."""
        prom = self.prom
        if prom is None:
            return ""
        self.refresh_state()
        return prom.text()

    def refresh_state(self) -> None:
        """Read the breaker states and the cache counters into the metrics (no I/O)."""
        prom = self.prom
        if prom is None:
            return
        for name in self.watched:
            prom.breaker_state(name, self.breaker.state(name))
        stats = self.cache.stats()
        if stats is None:
            return
        for layer, counters in stats.layers.items():
            for result, value in (("hit", counters.hits), ("miss", counters.misses)):
                key = (layer, result)
                seen = self._cache_seen.get(key, 0)
                if value < seen:  # a new cache (another event loop): its counters start at 0
                    seen = 0
                prom.cache_lookups(layer, result, value - seen)
                self._cache_seen[key] = value

    async def refresh(self, *, own_state: bool = True) -> None:
        """Read every gauge now: the shared breaker states, the budget windows (one ledger
        read), the cache counters. ``own_state=False`` (an exporter process that serves no
        request: ``director-llm metrics``) reads only what Redis shares. Never raises."""
        prom = self.prom
        if prom is None:
            return
        if not (own_state or self.shared_state):
            return
        try:
            if self.breaker.shared:
                await self.breaker.refresh()
            if self.budget.limited:
                report = await self.budget.ledger.snapshot()
                for name, w in report.windows.items():
                    if w.limit_usd is not None and w.remaining_usd is not None:
                        prom.budget(name, w.remaining_usd, w.reserved_usd)
        except Exception as exc:  # noqa: BLE001 - metrics never fail the application
            log.debug("metrics refresh failed: %s: %s", type(exc).__name__, exc)
        if own_state:
            self.refresh_state()
        else:
            for name in self.watched:
                prom.breaker_state(name, self.breaker.state(name))

    def exposed(self) -> Any:
        """The registry to serve (None when metrics are off)."""
        prom = self.prom
        return prom.exposed() if prom is not None else None

    def tick(self) -> None:
        """After a request: refresh the gauges if the last refresh is older than ``REFRESH_S``."""
        now = time.monotonic()
        if now < self._next_tick:
            return
        self._next_tick = now + REFRESH_S
        task = self._refreshing
        if task is not None and not task.done() and not task.get_loop().is_closed():
            return
        try:
            self._refreshing = asyncio.get_running_loop().create_task(self.refresh())
        except RuntimeError:
            self.refresh_state()

    # -- the Observer ----------------------------------------------------------------------
    def request(self, entry: str, call: Call | None = None, *, text: str | None = None) -> RequestTelemetry:
        """Start observing one request (see ``observability.observer``)."""
        span = None
        if self.settings.tracing:
            found = tracing.tracer()
            if found is not None:
                content = None
                if self.settings.capture_content:
                    messages = call.messages if call is not None else [{"role": "user", "content": text or ""}]
                    content = tracing.messages_text(messages)
                span = tracing.start_request(
                    found, entry, strategy=call.strategy if call is not None else None, content=content
                )
                return RequestTelemetry(self, entry, call, span, found)
        return RequestTelemetry(self, entry, call, None, None)

    async def aclose(self) -> None:
        """Read the state gauges a last time (multiprocess mode keeps them for the scrapes
        after this process), stop the background refresh, write the health counters."""
        self.refresh_state()
        self.closed = True
        if self._refreshing is not None and not self._refreshing.done():
            self._refreshing.cancel()
        if self.shared is not None:
            await self.shared.aclose()


class RequestTelemetry:
    """One request's ``RequestObserver`` (built by ``Telemetry.request``)."""

    __slots__ = ("_done", "_tracer", "_usage", "entry", "span", "started", "t")

    def __init__(self, t: Telemetry, entry: str, call: Call | None, span: Any, found: Any) -> None:
        self.t = t
        self.entry = entry
        self.started = call.started if call is not None else time.perf_counter()
        self.span = span
        self._tracer = found
        self._usage: dict[str, tuple[int, int, float]] | None = {} if span is not None else None
        self._done = False

    def attempt(self, attempt: Attempt) -> None:
        if not attempt.called:
            return
        t = self.t
        info = t.deployments.get(attempt.deployment)
        if info is not None and info.kind != "local":
            prom = t.prom
            if prom is not None:
                prom.attempt(info.provider, info.model, attempt.outcome)
            if t.shared is not None:
                error = None if attempt.ok else f"{attempt.outcome}: {attempt.message}"
                t.shared.record(attempt.deployment, attempt.ok, attempt.elapsed_s, error)
        if self.span is not None:
            usage = self._usage.pop(attempt.deployment, None) if self._usage is not None else None
            tracing.attempt_span(self._tracer, self.span, attempt, info, usage)

    def usage(self, info: DeploymentInfo, prompt_tokens: int, completion_tokens: int, cost_usd: float) -> None:
        prom = self.t.prom
        if prom is not None:
            prom.usage(info.provider, info.model, prompt_tokens, completion_tokens, cost_usd)
        if self._usage is not None:
            pt, ct, usd = self._usage.get(info.name, (0, 0, 0.0))
            self._usage[info.name] = (pt + prompt_tokens, ct + completion_tokens, usd + cost_usd)

    def local_decision(self, decision: str) -> None:
        prom = self.t.prom
        if prom is not None:
            prom.local_decision(decision)

    def finish(
        self,
        route: Route | None,
        *,
        error: BaseException | None = None,
        response: Any = None,
        flow: str | None = None,
        confidence: float | None = None,
        output: str | None = None,
    ) -> None:
        if self._done:
            return
        self._done = True
        t = self.t
        if route is None and error is not None:
            route = getattr(error, "route", None)
        outcome = outcome_of(route, error)
        seconds = time.perf_counter() - self.started
        provider = model = tier = "none"
        if route is not None:
            # Labels from the config's deployment (one spelling whatever path answered).
            info = t.deployments.get(route.deployment) if route.deployment else None
            provider = (info.provider if info is not None else route.provider) or "none"
            model = (info.model if info is not None else route.model) or "none"
            tier = route.tier or (info.tier if info is not None else None) or "none"
        prom = t.prom
        if prom is not None:
            prom.request(provider, model, tier, self.entry, outcome, seconds)
            if route is not None and route.first_token_ms is not None and route.deployment:
                prom.first_token(provider, model, route.first_token_ms / 1000)
        if logline.enabled():
            logline.emit(self._fields(route, outcome, seconds, error, flow, confidence), fmt=t._log_format)
        if self.span is not None:
            self._end_span(route, outcome, error, response, flow, confidence, output)
        t.tick()

    def _fields(
        self,
        route: Route | None,
        outcome: str,
        seconds: float,
        error: BaseException | None,
        flow: str | None,
        confidence: float | None,
    ) -> dict[str, Any]:
        """The log line's fields (None values left out)."""
        fields: dict[str, Any] = {"entry": self.entry, "outcome": outcome}
        if route is not None:
            for key, v in (
                ("deployment", route.deployment),
                ("tier", route.tier),
                ("group", route.group),
                ("strategy", route.strategy),
                ("cache", route.cache),
            ):
                if v is not None:
                    fields[key] = v
            fields["prompt_tokens"] = route.prompt_tokens
            fields["completion_tokens"] = route.completion_tokens
            fields["cost_usd"] = round(route.cost_usd, 8)
            if route.first_token_ms is not None:
                fields["first_token_ms"] = route.first_token_ms
            fields["calls"] = route.calls
            fields["attempts"] = [f"{a.deployment}:{a.outcome}" for a in route.attempts]
        fields["latency_ms"] = round(seconds * 1000, 2)
        if flow is not None:
            fields["flow"] = flow
            fields["confidence"] = confidence
        if error is not None:
            fields["error"] = type(error).__name__
            status = getattr(error, "status_code", None)
            if status is not None:
                fields["status_code"] = status
        return fields

    def _end_span(
        self,
        route: Route | None,
        outcome: str,
        error: BaseException | None,
        response: Any,
        flow: str | None,
        confidence: float | None,
        output: str | None,
    ) -> None:
        attributes: dict[str, Any] = {"director.outcome": outcome}
        if route is not None:
            info = self.t.deployments.get(route.deployment) if route.deployment else None
            attributes.update(tracing.deployment_attributes(info))
            response_model = getattr(response, "model", None)
            attributes.update(
                {
                    "gen_ai.response.model": response_model
                    if isinstance(response_model, str)
                    else (route.model if route.deployment else None),
                    "gen_ai.usage.input_tokens": route.prompt_tokens,
                    "gen_ai.usage.output_tokens": route.completion_tokens,
                    "director.tier": route.tier,
                    "director.cache": route.cache or "none",
                    "director.cost_usd": route.cost_usd,
                    "director.calls": route.calls,
                    "director.fallback_reason": fallback_reason(route.attempts),
                }
            )
        attributes["director.flow"] = flow
        attributes["director.confidence"] = confidence
        if self.t.settings.capture_content:
            text = output
            if text is None and response is not None:
                text = _response_text(response)
            if text is not None:
                attributes["gen_ai.output.messages"] = tracing.output_text(text)
        tracing.end_request(self.span, attributes, error)


def _response_text(response: Any) -> str | None:
    try:
        choices = response.choices
        text = choices[0].message.content if choices else None
    except (AttributeError, IndexError, TypeError):
        return None
    return text if isinstance(text, str) else None
