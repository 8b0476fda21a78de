"""The one interface the engine reports to: ``Observer`` (per Director) and ``RequestObserver``
(per request). Metrics, traces and the request log line all implement it through
``observability.telemetry.Telemetry``; the engine calls nothing else.

The engine's side, per public call::

    obs = parts.observer.request("complete", call)      # or "stream", "classify"
    obs.attempt(attempt)       # each Attempt recorded in Run.record (tried, skipped, ok)
    obs.usage(info, pt, ct, usd)   # each upstream call's tokens and cost (Run.account)
    obs.local_decision("escalated")    # classification: the local tier's decision
    obs.finish(route, error=exc, ...)  # once: the answer's Route, or the error

``NOOP_OBSERVER`` (the default of ``engine.parts.Parts``) does nothing, at the cost of one
method call per event. ``outcome_of`` names how a request ended, the same way for every
consumer (the ``outcome`` label, the log line, the span attribute).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from director_llm.providers import DeploymentInfo
    from director_llm.request import Call
    from director_llm.route import Attempt, Route

__all__ = [
    "LOCAL_DECISIONS",
    "NOOP_OBSERVER",
    "NOOP_REQUEST",
    "OUTCOMES",
    "NoopObserver",
    "NoopRequest",
    "Observer",
    "RequestObserver",
    "fallback_reason",
    "outcome_of",
]

OUTCOMES = ("ok", "error", "fallback", "cache_hit", "refused_budget", "rate_limited")
"""Values of the ``outcome`` of a request (metrics label, log field, span attribute)."""
LOCAL_DECISIONS = ("answered", "escalated", "last_resort")
"""What the local tier did with a classification it saw."""


class RequestObserver(Protocol):
    """What one request reports while it runs (see the module docstring)."""

    def attempt(self, attempt: Attempt) -> None:
        """An attempt was recorded (called, failed, skipped or the answer)."""

    def usage(self, info: DeploymentInfo, prompt_tokens: int, completion_tokens: int, cost_usd: float) -> None:
        """One upstream call to ``info`` consumed these tokens and cost (failed calls too)."""

    def local_decision(self, decision: str) -> None:
        """The local tier ``answered``, ``escalated`` or served as ``last_resort``."""

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
        """The request ended: its ``route`` (None when it failed before one existed), the
        error it raised, and what it answered (a completion's ``response``, a classification's
        ``flow`` and ``confidence``, a stream's text as ``output``). Called at most once."""


class Observer(Protocol):
    """Starts a ``RequestObserver`` per public call."""

    def request(self, entry: str, call: Call | None = None, *, text: str | None = None) -> RequestObserver:
        """A request of ``entry`` (complete, stream, classify) begins now; ``call`` holds its
        messages, ``text`` a classification's input (read only when content is captured)."""
        ...


class NoopRequest:
    """A ``RequestObserver`` that does nothing."""

    __slots__ = ()

    def attempt(self, attempt: Attempt) -> None:
        return None

    def usage(self, info: DeploymentInfo, prompt_tokens: int, completion_tokens: int, cost_usd: float) -> None:
        return None

    def local_decision(self, decision: str) -> None:
        return None

    def finish(self, route: Route | None, **kwargs: Any) -> None:
        return None


NOOP_REQUEST = NoopRequest()


class NoopObserver:
    """An ``Observer`` that does nothing (the engine's default)."""

    __slots__ = ()

    def request(self, entry: str, call: Call | None = None, *, text: str | None = None) -> RequestObserver:
        return NOOP_REQUEST


NOOP_OBSERVER = NoopObserver()


def outcome_of(route: Route | None, error: BaseException | None) -> str:
    """How a request ended, one of ``OUTCOMES``:

    * ``cache_hit``: a cache layer answered (``route.cache``);
    * ``fallback``: answered, after at least one deployment was called and failed;
    * ``ok``: answered by the first deployment called (or shared with an identical request);
    * ``refused_budget``: nothing was affordable (``BudgetExceededError``);
    * ``rate_limited``: the last upstream answer was a 429, or ``RateLimitedError`` (our limits);
    * ``error``: any other failure.
    """
    if error is None:
        if route is None:
            return "ok"
        if route.cache:
            return "cache_hit"
        return "fallback" if any(a.called and not a.ok for a in route.attempts) else "ok"
    from director_llm.errors import BudgetExceededError

    if isinstance(error, BudgetExceededError):
        return "refused_budget"
    if getattr(error, "status_code", None) == 429 or "RateLimit" in type(error).__name__:
        return "rate_limited"
    return "error"


def fallback_reason(attempts: Sequence[Attempt], limit: int = 3) -> str | None:
    """``deployment: outcome`` of the deployments that failed before the answer (None when
    none did): why the request fell back. Names and error classes only, never a message."""
    failed = [f"{a.deployment}: {a.outcome}" for a in attempts if a.called and not a.ok]
    if not failed:
        return None
    more = f" (+{len(failed) - limit} more)" if len(failed) > limit else ""
    return "; ".join(failed[:limit]) + more
