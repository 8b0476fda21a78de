"""Prometheus metric families of director-llm (``prometheus-client``).

The names are a contract (dashboards and alerts are built on them)::

    director_requests_total{provider,model,tier,entry,outcome}
    director_attempts_total{provider,model,outcome}
    director_request_duration_seconds{entry,tier}                 histogram
    director_time_to_first_token_seconds{provider,model}          histogram
    director_tokens_total{provider,model,direction}               direction: input, output
    director_cost_usd_total{provider,model}
    director_cache_requests_total{layer,result}                   layer: memory, redis, disk
    director_budget_remaining_usd{window}                         gauge
    director_budget_reserved_usd{window}                          gauge
    director_breaker_state{deployment}                            0 closed, 1 half-open, 2 open
    director_local_tier_decisions_total{decision}                 answered, escalated, last_resort

Label values come from the config (provider sections, model and deployment names, tiers,
budget windows) or from fixed vocabularies (entries, outcomes, error classes): never a
prompt, a key or a user id. ``label`` bounds anything else to a short identifier.

Registries. Each ``PromMetrics`` has its own ``CollectorRegistry`` (several Directors in one
process do not collide), unless prometheus-client's multiprocess mode is on
(``PROMETHEUS_MULTIPROC_DIR`` set before the first import of ``prometheus_client``): then
the families are one per process, their values live in that directory's files, and
``exposition()`` merges every process's files (what a ``/metrics`` endpoint of any worker,
or ``director-llm metrics`` beside them, serves). In that mode the budget gauges keep the
most recent value written by any process (``mostrecent``: with a shared Redis ledger they all
agree), the breaker gauge the worst state any process sees (``max``).

``prometheus_client`` costs ~35 ms to import: it is imported when the first request ends,
or by ``Director.warmup()`` off the event loop, never by ``import director_llm``.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any

__all__ = [
    "BREAKER_STATES",
    "DURATION_BUCKETS",
    "MULTIPROC_ENV",
    "PromMetrics",
    "exposition",
    "label",
    "multiprocess_mode",
    "multiprocess_registry",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
"""Seconds: from a memory-cache hit (~50 us) to a long stream."""
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0)
_SAFE = re.compile(r"[^A-Za-z0-9_.:/@+-]")
_shared: PromMetrics | None = None
_shared_lock = threading.Lock()


def multiprocess_mode() -> bool:
    """Whether prometheus-client's multiprocess mode is on (``PROMETHEUS_MULTIPROC_DIR``)."""
    return bool(os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()))


def label(value: object, *, limit: int = 64) -> str:
    """A label value from something not in the config (an error class): a short identifier."""
    text = _SAFE.sub("_", str(value))[:limit]
    return text or "none"


class PromMetrics:
    """The families above on one registry (see the module docstring), with a cache of label
    children so that a request costs a few dict lookups and increments."""

    def __init__(self, *, multiprocess: bool = False) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = multiprocess
        self.registry: Any = None if multiprocess else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "director_requests",
            "Requests by the deployment that answered (provider, model, tier: none when nothing did), "
            "entry (complete, stream, classify) and outcome (ok, error, fallback, cache_hit, refused_budget, "
            "rate_limited).",
            ["provider", "model", "tier", "entry", "outcome"],
            registry=r,
        )
        self.attempts = Counter(
            "director_attempts",
            "Upstream calls (each try of a deployment) by outcome: ok or the error class.",
            ["provider", "model", "outcome"],
            registry=r,
        )
        self.duration = Histogram(
            "director_request_duration_seconds",
            "Wall time of a request, cache hits and fallbacks included, by entry and answering tier.",
            ["entry", "tier"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "director_time_to_first_token_seconds",
            "Streams: time from the request to its first text, by the deployment that sent it.",
            ["provider", "model"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "director_tokens",
            "Tokens of upstream calls (failed calls that generated text included) by direction: input, output.",
            ["provider", "model", "direction"],
            registry=r,
        )
        self.cost = Counter(
            "director_cost_usd",
            "USD spent on upstream calls, at the configured or LiteLLM price.",
            ["provider", "model"],
            registry=r,
        )
        self.cache = Counter(
            "director_cache_requests",
            "Cache lookups that reached a layer (memory, redis, disk), by result (hit, miss).",
            ["layer", "result"],
            registry=r,
        )
        self.budget_remaining = Gauge(
            "director_budget_remaining_usd",
            "USD left in each limited budget window (hour, day, provider:<name>:hour|day).",
            ["window"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.budget_reserved = Gauge(
            "director_budget_reserved_usd",
            "USD held by calls in flight in each limited budget window.",
            ["window"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.breaker = Gauge(
            "director_breaker_state",
            "Circuit breaker of each deployment: 0 closed, 1 half-open, 2 open.",
            ["deployment"],
            registry=r,
            multiprocess_mode="max",
        )
        self.local = Counter(
            "director_local_tier_decisions",
            "Classifications the local tier answered, escalated to an LLM tier, or answered as the last resort.",
            ["decision"],
            registry=r,
        )
        self._children: dict[tuple[Any, ...], Any] = {}
        self._attempt_children: dict[tuple[str, str, str], Any] = {}

    @classmethod
    def for_director(cls) -> PromMetrics:
        """A new registry, or the process's families in multiprocess mode."""
        if not multiprocess_mode():
            return cls()
        global _shared
        with _shared_lock:
            if _shared is None:
                _shared = cls(multiprocess=True)
            return _shared

    def _child(self, family: Any, *values: str) -> Any:
        key = (id(family), *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(*values)
        return child

    # -- events ------------------------------------------------------------------------------
    def request(self, provider: str, model: str, tier: str, entry: str, outcome: str, seconds: float) -> None:
        self._child(self.requests, provider, model, tier, entry, outcome).inc()
        self._child(self.duration, entry, tier).observe(seconds)

    def attempt(self, provider: str, model: str, outcome: str) -> None:
        """``outcome``: ok or the error class (bounded by ``label``)."""
        key = (provider, model, outcome)
        child = self._attempt_children.get(key)
        if child is None:
            child = self._attempt_children[key] = self.attempts.labels(provider, model, label(outcome))
        child.inc()

    def usage(self, provider: str, model: str, prompt_tokens: int, completion_tokens: int, cost_usd: float) -> None:
        if prompt_tokens:
            self._child(self.tokens, provider, model, "input").inc(prompt_tokens)
        if completion_tokens:
            self._child(self.tokens, provider, model, "output").inc(completion_tokens)
        if cost_usd > 0:
            self._child(self.cost, provider, model).inc(cost_usd)
        else:
            self._child(self.cost, provider, model)  # the series exists (at 0) for free deployments

    def first_token(self, provider: str, model: str, seconds: float) -> None:
        self._child(self.ttft, provider, model).observe(seconds)

    def local_decision(self, decision: str) -> None:
        self._child(self.local, decision).inc()

    # -- state read at refresh ---------------------------------------------------------------
    def cache_lookups(self, layer: str, result: str, count: int) -> None:
        child = self._child(self.cache, layer, result)
        if count > 0:
            child.inc(count)

    def budget(self, window: str, remaining: float, reserved: float) -> None:
        self._child(self.budget_remaining, window).set(remaining)
        self._child(self.budget_reserved, window).set(reserved)

    def breaker_state(self, deployment: str, state: str) -> None:
        self._child(self.breaker, deployment).set(BREAKER_STATES.get(state, 0))

    def text(self) -> str:
        """The exposition text (every process's, in multiprocess mode)."""
        return exposition(self.exposed())

    def exposed(self) -> Any:
        """The registry a ``/metrics`` endpoint serves: this one, or every process's files."""
        return multiprocess_registry() if self.multiprocess else self.registry


def multiprocess_registry() -> Any:
    """A registry that reads every process's files of ``PROMETHEUS_MULTIPROC_DIR``."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return registry


def exposition(registry: Any = None) -> str:
    """Prometheus text format of ``registry``; None: every process's files in multiprocess
    mode, else an empty text."""
    from prometheus_client import generate_latest

    if registry is None:
        if not multiprocess_mode():
            return ""
        registry = multiprocess_registry()
    return generate_latest(registry).decode("utf-8")
