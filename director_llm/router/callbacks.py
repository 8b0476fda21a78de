"""The Director's side of the Router callbacks, composed of small parts.

``DirectorHooks`` implements ``routing.RouterHooks``. Parts register themselves here:
``filters`` narrow the deployments of a group (pinning, circuit breaker, budget),
``guards`` run before each attempt and may reject it by raising (budget reservation),
``observers`` see every attempt's outcome (metrics, breaker, budget settlement), and
``fallback_checks`` may veto a cross-group fallback. Each part is independent, so calls made
directly through ``director.router`` obey the same rules as ``director.acompletion``.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, Protocol

from director_llm.observability import Metrics
from director_llm.router.build import deployment_of, director_meta

log = logging.getLogger("director_llm.router.callbacks")

Filter = Callable[[str, list[dict], dict], Awaitable[list[dict]]]
Guard = Callable[[dict], Awaitable[None]]
FallbackCheck = Callable[[str, Any], Awaitable[bool]]


class Observer(Protocol):
    async def attempt_succeeded(self, deployment: str, kwargs: dict, response: Any, latency_s: float) -> None: ...
    async def attempt_failed(self, deployment: str, kwargs: dict, error: BaseException | None, latency_s: float) -> None: ...


def _seconds(start: Any, end: Any) -> float:
    try:
        return max(0.0, (end - start).total_seconds())
    except Exception:  # noqa: BLE001 - LiteLLM passes datetimes or floats depending on path
        try:
            return max(0.0, float(end) - float(start))
        except Exception:  # noqa: BLE001
            return 0.0


async def pin_filter(group: str, deployments: list[dict], request_kwargs: dict) -> list[dict]:
    """Honour ``metadata.director.exclude``: deployments already tried by this request."""
    exclude = director_meta(request_kwargs).get("exclude")
    if not exclude:
        return deployments
    return [d for d in deployments if (d.get("model_info") or {}).get("director_deployment") not in exclude]


def is_budget_refusal(error: BaseException | None) -> bool:
    """Whether an attempt failed because the budget refused it (``BudgetExceededError``,
    ``budget.BudgetBackendError``), also when LiteLLM wrapped our exception."""
    from director_llm.budget.ledger import BudgetBackendError
    from director_llm.errors import BudgetExceededError

    seen = 0
    while error is not None and seen < 4:  # the exception itself, then what it wraps
        if isinstance(error, (BudgetExceededError, BudgetBackendError)):
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


class MetricsObserver:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def attempt_succeeded(self, deployment: str, kwargs: dict, response: Any, latency_s: float) -> None:
        slo = kwargs.get("standard_logging_object") or {}
        self.metrics.for_deployment(deployment).record_success(
            latency_s, float(slo.get("response_cost") or 0.0),
            int(slo.get("prompt_tokens") or 0), int(slo.get("completion_tokens") or 0))

    async def attempt_failed(self, deployment: str, kwargs: dict, error: BaseException | None, latency_s: float) -> None:
        if is_budget_refusal(error):
            return  # our own ledger refused the attempt: the deployment did nothing wrong
        cls = type(error).__name__ if error is not None else "Error"
        msg = str(error) if error is not None else ((kwargs.get("standard_logging_object") or {}).get("error_str") or "")
        self.metrics.for_deployment(deployment).record_failure(latency_s, cls, msg)


class DirectorHooks:
    """Router callbacks of one Director."""

    def __init__(self, metrics: Metrics) -> None:
        self.filters: list[Filter] = [pin_filter]
        self.guards: list[Guard] = []
        self.observers: list[Observer] = [MetricsObserver(metrics)]
        self.fallback_checks: list[FallbackCheck] = []

    async def filter_deployments(self, group: str, deployments: list[dict], request_kwargs: dict) -> list[dict]:
        for f in self.filters:
            deployments = await f(group, deployments, request_kwargs)
            if not deployments:
                break
        return deployments

    async def before_attempt(self, kwargs: dict) -> None:
        for g in self.guards:
            await g(kwargs)

    async def on_success(self, kwargs: dict, response: Any, start_time: Any, end_time: Any) -> None:
        _, name = deployment_of(kwargs)
        if name is None:
            return
        latency = _seconds(start_time, end_time)
        for o in self.observers:
            try:
                await o.attempt_succeeded(name, kwargs, response, latency)
            except Exception:  # noqa: BLE001 - an observer must never break a request
                log.exception("observer %r failed on success", o)

    async def on_failure(self, kwargs: dict, response: Any, start_time: Any, end_time: Any) -> None:
        _, name = deployment_of(kwargs)
        if name is None:
            return
        latency = _seconds(start_time, end_time)
        error = kwargs.get("exception")
        for o in self.observers:
            try:
                await o.attempt_failed(name, kwargs, error, latency)
            except Exception:  # noqa: BLE001
                log.exception("observer %r failed on failure", o)

    async def allow_fallback(self, group: str, request_kwargs: Any) -> bool:
        for check in self.fallback_checks:
            if not await check(group, request_kwargs):
                return False
        return True
