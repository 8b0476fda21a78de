"""The facade: ``Director`` wires config, deployments, Router, hooks, cache, budget and intents.

Construction is cheap and never imports LiteLLM; the Router is built on first use
(``director.router``), so the local tier and ``check-config`` stay fast.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from director_llm.config.loading import load_config, resolve_config_path
from director_llm.config.models import DirectorConfig
from director_llm.errors import DirectorError, InputError, ProviderError, redact
from director_llm.hooks import DirectorHooks
from director_llm.observability import Metrics
from director_llm.providers import DeploymentInfo, build_deployments
from director_llm.routing import answered_by


class Director:
    """Director's LLM layer, built from one config.

    Use ``Director.from_file(path)`` (default ``$DIRECTOR_CONFIG``, else
    ``configs/director.toml``) or ``Director(config)``, and ``async with`` it (or call
    ``aclose()``) so background writes are flushed and connections closed.
    """

    def __init__(self, config: DirectorConfig, *, source: str | None = None,
                 state_prefix: str | None = None, clock: Callable[[], datetime] | None = None) -> None:
        self.config = config
        self.source = source
        self.metrics = Metrics()
        self.hooks = DirectorHooks(self.metrics)
        from director_llm.breaker import DEFAULT_PREFIX, CircuitBreaker

        self.breaker = CircuitBreaker.from_config(
            config, prefix=f"{state_prefix}breaker:" if state_prefix else DEFAULT_PREFIX)
        """Circuit breaker per deployment (shared through Redis when ``redis_state_url`` is set).
        ``state_prefix`` namespaces its Redis keys (tests, several apps on one Redis)."""
        self.hooks.filters.append(self.breaker.filter)
        from director_llm.cascade import local_for_classification_only

        self.hooks.filters.append(local_for_classification_only)  # chat never falls back to local
        self.hooks.observers.append(self.breaker)
        all_deployments = build_deployments(config)
        self.providers: dict[str, DeploymentInfo] = {d.name: d for d in all_deployments}
        """Every configured deployment by name (``openai/gpt-4o``): type, price, capabilities, tier."""
        self._built: Any = None
        self._closed = False
        from director_llm.budget_hooks import BudgetHooks, ledger_from_config

        self.budget = BudgetHooks(
            ledger_from_config(config, clock=clock, prefix=state_prefix),
            lambda: self.providers, default_max_tokens=config.llm.default_max_tokens)
        """Budget ledger in the Router's hooks (reserve per attempt, settle, filter, fallback
        check); ``self.budget.ledger`` is shared through Redis when ``redis_state_url`` is set.
        ``clock`` (UTC datetimes) is injectable for tests."""
        self.hooks.filters.append(self.budget.filter)
        self.hooks.guards.append(self.budget.guard)
        self.hooks.observers.append(self.budget)
        self.hooks.fallback_checks.append(self.budget.allow_fallback)
        from director_llm.cache.director import DirectorCache

        self.cache = DirectorCache(config)
        """The ``[caching]`` layers (memory -> Redis -> disk) in this config's namespace."""

    @classmethod
    def from_file(cls, path: str | os.PathLike[str] | None = None, **kwargs: Any) -> Director:
        """Load ``path`` (or ``$DIRECTOR_CONFIG``, else ``configs/director.toml``) and build
        (``kwargs``: ``state_prefix``, ``clock``)."""
        p = resolve_config_path(path)
        return cls(load_config(p), source=str(p), **kwargs)

    # -- Router -----------------------------------------------------------------------------
    def usable_deployments(self) -> list[DeploymentInfo]:
        """Deployments that can be called now: keys present (missing keys are skipped)."""
        return [d for d in self.providers.values() if d.key_status() != "missing"]

    @property
    def built(self) -> Any:
        if self._built is None:
            from director_llm.routing import build_router

            self._built = build_router(self.config, self.usable_deployments(), self.hooks)
            if self.local_tier is not None and self._built.router is not None:
                from director_llm.local.provider import register_tier

                register_tier(self._built.instance_id, self.local_tier)
        return self._built

    @property
    def router(self) -> Any:
        """The ``litellm.Router`` built from the config (built on first access)."""
        router = self.built.router
        if router is None:
            raise ProviderError("no LLM deployment is usable: every provider is disabled, local-only or "
                                "missing its API key (see `director-llm check-config`)")
        return router

    def groups(self) -> dict[str, list[str]]:
        """Router model groups (tiers and deployment names) -> deployment names."""
        return self.built.groups

    # -- Completions --------------------------------------------------------------------------
    def choose_group(self, model: str | None, tier: str | None, strategy: str | None) -> tuple[str, str]:
        """(Router group, reason): the pinned deployment or tier when given (``InputError`` if
        unknown), else the strategy's first tier without a request at hand."""
        groups = self.groups()
        if model is not None:
            if model not in groups:
                raise InputError(f"unknown model or tier {model!r}; known: {', '.join(groups) or 'none'}")
            return model, "pinned by caller"
        if tier is not None:
            if tier not in groups:
                raise InputError(f"tier {tier!r} has no usable deployment; known: {', '.join(groups) or 'none'}")
            return tier, "tier requested by caller"
        from director_llm.selection import choose_tier

        return choose_tier(self, strategy=strategy or self.config.llm.default_strategy)

    def _metadata(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        director = {"instance": self.built.instance_id, "request_id": uuid.uuid4().hex}
        if extra:
            director.update(extra)
        return {"director": director}

    async def acompletion(self, messages: list[dict[str, Any]], *, model: str | None = None,
                          tier: str | None = None, strategy: str | None = None,
                          cache: bool | None = None, **kwargs: Any) -> Any:
        """Send a chat completion through the Router and return LiteLLM's response.

        ``model`` pins a deployment (``openai/gpt-4o``) or tier group; otherwise the tier comes
        from ``strategy`` (default: the config's). Fallbacks, retries and the request deadline
        (``llm.timeout_seconds``) apply. Failures raise ``ProviderError`` (or a subclass).

        Cached (``[caching] cache_chat``) when ``temperature=0`` or ``cache=True``, never with
        ``cache=False``; ``response._hidden_params["director_route"]["cache"]`` is the layer
        that answered (None: a model did). Identical concurrent misses make one upstream call.
        """
        if not messages:
            raise InputError("messages must not be empty")
        router = self.router
        extra: dict[str, Any] = {}
        strategy = strategy or self.config.llm.default_strategy
        if model is None and tier is None:
            from director_llm.selection import plan_route

            selection, budget_meta = await plan_route(self, messages, strategy=strategy, request_kwargs=kwargs)
            group, reason = selection.tier, selection.reason
            # The strategy's order replaces the static chain; the config's own chain follows it.
            chain = list(selection.chain[1:]) + [g for g in self.built.fallbacks.get(group, [])
                                                 if g not in selection.chain]
            if "fallbacks" not in kwargs:
                extra["fallbacks"] = [{group: chain}] if chain else []
        else:
            group, reason = self.choose_group(model, tier, strategy)
            budget_meta = {}
        metadata = self._metadata({"group": group, "reason": reason, **budget_meta})
        user_meta = kwargs.pop("metadata", None)
        if isinstance(user_meta, dict):
            # Callers may add keys under "director" (exclude, classify_id); ours win on clashes.
            ours = {**(user_meta.get("director") or {}), **metadata["director"]}
            metadata = {**user_meta, **metadata, "director": ours}
        deadline = self.config.llm.timeout_seconds

        async def call() -> Any:
            empty: list[str] = []  # deployments that answered with no content: try the others
            try:
                async with asyncio.timeout(deadline):
                    while True:
                        started = time.perf_counter()
                        meta = metadata
                        if empty:
                            exclude = [*(metadata["director"].get("exclude") or []), *empty]
                            meta = {**metadata, "director": {**metadata["director"], "exclude": exclude}}
                        response = await router.acompletion(model=group, messages=messages, metadata=meta,
                                                            **kwargs, **extra)
                        name = answered_by(response)
                        if kwargs.get("stream") or has_content(response) or name is None or name in empty:
                            break  # (a stream's emptiness shows only while it is read)
                        empty.append(name)
                        await self._record_empty_answer(name)
                    _attach_route(self, response, reason=reason, strategy=strategy, started=started)
                    return response
            except TimeoutError:
                raise ProviderError(f"no answer within the request deadline of {deadline:g}s (group {group}); "
                                    "raise llm.timeout_seconds or check the providers with `director-llm health`") from None
            except DirectorError:
                raise
            except Exception as exc:  # the one boundary where LiteLLM's errors become ours
                if empty:
                    raise ProviderError(
                        f"no usable answer for {group}: {', '.join(empty)} answered with no content and "
                        f"no other deployment could serve ({type(exc).__name__})",
                        attempts=[(n, "EmptyResponse", "no choices or empty message") for n in empty]) from exc
                raise provider_error(exc, group) from exc

        return await self.cache.complete(messages, group=group, params=kwargs, cache=cache, call=call)

    async def _record_empty_answer(self, name: str) -> None:
        """An answer with no content is a failure of that deployment (metrics and breaker)."""
        self.metrics.for_deployment(name).record_failure(0.0, "EmptyResponse", "no choices or empty message")
        await self.breaker.record_failure(name)

    # -- Streaming and health (issue 7) ---------------------------------------------------------
    def stream_response(self, messages: list[dict[str, Any]], *, model: str | None = None,
                        tier: str | None = None, strategy: str | None = None, resume: bool = False,
                        **kwargs: Any) -> Any:
        """Stream an answer: an async iterator (and async context manager) of
        ``streaming.TextDelta`` chunks then one ``streaming.StreamEnd`` (usage, cost, route).

        Failures before the first token fall back silently (next deployment, then the group's
        fallback chain) within ``llm.timeout_seconds``; after it they raise
        ``StreamInterruptedError(partial_text=...)``, or with ``resume=True`` continue on the
        next deployment. See ``director_llm.streaming``.
        """
        from director_llm.streaming import open_stream

        if not messages:
            raise InputError("messages must not be empty")
        self.router  # noqa: B018 - raises ProviderError now when nothing is usable
        group, reason = self.choose_group(model, tier, strategy)
        return open_stream(self, messages, group=group, reason=reason, resume=resume, **kwargs)

    async def health(self, *, probe: bool = False) -> dict[str, Any]:
        """Each deployment's state (healthy / cooling down / open), recent error rate, p50
        latency and last error (redacted); ``probe=True`` also sends each a tiny request."""
        from director_llm.health import deployment_health

        return await deployment_health(self, probe=probe)

    # -- Intents ------------------------------------------------------------------------------
    @property
    def classifier(self) -> Any:
        """The ``intents.Classifier`` (built on first use; holds the cache and cascade seams)."""
        if getattr(self, "_classifier", None) is None:
            from director_llm.intents.classifier import Classifier

            self._classifier = Classifier(self)
            from director_llm.cascade import attach_cascade

            attach_cascade(self, self._classifier)  # after the cache lookup: a hit still wins
        return self._classifier

    @property
    def local_tier(self) -> Any:
        """The embedded ``local_tier.LocalTier`` of the config's ``kind = "local"`` provider
        (None without one). Built cheaply; the model trains or loads on first prediction."""
        if not hasattr(self, "_local_tier"):
            from director_llm.local_tier import LocalTier

            base = Path(self.source).resolve().parent if self.source else None
            self._local_tier = LocalTier.from_config(self.config, base_dir=base)
        return self._local_tier

    async def classify_intent(self, text: str, history: list[Any] | None = None, *,
                              strategy: str | None = None, cache: bool | None = None,
                              tier: str | None = None, model: str | None = None) -> Any:
        """Classify ``text`` into one of the configured flows: an ``IntentClassification``.

        ``history`` is a list of earlier turns (``{"role", "content"}`` dicts or strings).
        ``tier`` / ``model`` ask that tier or deployment first (as ``acompletion``), instead of
        the strategy's choice. Raises ``InputError`` (empty/too long text), ``ClassificationError``
        (no deployment gave a valid answer) or ``ProviderError`` (every deployment failed).
        Results are cached (``route.cache`` names the layer that answered); ``cache=False``
        skips the cache.
        """
        return await self.classifier.classify(text, history, strategy=strategy, cache=cache is not False,
                                              tier=model if model is not None else tier)

    def stream_intent(self, text: str, history: list[Any] | None = None, *,
                      strategy: str | None = None) -> Any:
        """Classify while the answer streams: an async iterator of ``intents.StreamItem``
        (partial results and routing events; the last item is final, ``done=True``)."""
        from director_llm.intents.streaming import stream_classification

        return stream_classification(self.classifier, text, history, strategy=strategy)

    # -- Cache --------------------------------------------------------------------------------
    async def spend(self, *, by: str | None = None) -> Any:
        """``budget.SpendReport`` from the (shared) ledger: each window's limit, spend, held,
        remaining and reset time, and requests/tokens/cost of the last 24 h grouped ``by``
        ``provider``, ``model`` or ``hour``. With Redis it includes every process's spend."""
        return await self.budget.ledger.snapshot(by=by)  # type: ignore[arg-type]

    def cache_stats(self) -> Any:
        """``cache.CacheStats`` (hits/misses per layer, hit rate, bytes in L1, Redis state) of
        this process, or None when caching is off or nothing was looked up yet."""
        return self.cache.stats()

    # -- Lifecycle ----------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Flush background work and release connections. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        # First: settlements run in LiteLLM's callbacks, after the response was returned.
        await self.budget.drain()
        await self.budget.release_all()
        await self.budget.ledger.aclose()
        await self.cache.aclose()
        await self.breaker.aclose()
        if self._built is not None:
            from director_llm.routing import _Dispatcher

            _Dispatcher.unregister(self._built.instance_id)

    async def __aenter__(self) -> Director:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"Director(source={self.source!r}, deployments={list(self.providers)})"


def _attach_route(director: Director, response: Any, *, reason: str, strategy: str | None, started: float) -> None:
    """``response._hidden_params["director_route"]``: tier, model, reason, reserved and actual cost."""
    from director_llm.selection import describe_route

    hidden = getattr(response, "_hidden_params", None)
    if isinstance(hidden, dict):
        route = hidden.setdefault("director_route", {})
        route.update(describe_route(director, response, reason=reason, strategy=strategy, started=started))


def has_content(response: Any) -> bool:
    """True when a chat completion carries text or tool calls (an empty answer is a failure)."""
    choices = getattr(response, "choices", None)
    if not choices:
        return False
    message = getattr(choices[0], "message", None)
    if message is None:
        return False
    return bool(getattr(message, "content", None) or getattr(message, "tool_calls", None)
                or getattr(message, "function_call", None))


def provider_error(exc: BaseException, group: str) -> ProviderError:
    """Translate a LiteLLM exception into a ``ProviderError`` with status and Retry-After."""
    status = getattr(exc, "status_code", None)
    retry_after = None
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    try:
        ra = headers.get("retry-after") if hasattr(headers, "get") else None
        retry_after = float(ra) if ra is not None else None
    except (TypeError, ValueError):
        retry_after = None
    message = redact(str(exc)).split("\n")[0][:500]
    return ProviderError(f"every deployment for {group} failed: {type(exc).__name__}: {message}",
                         status_code=status if isinstance(status, int) else None, retry_after=retry_after,
                         attempts=[(group, type(exc).__name__, message)])
