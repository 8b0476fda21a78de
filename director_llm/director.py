"""The facade: ``Director`` builds the parts from one config and owns their lifetime.

Every public call goes through the one request engine (``director_llm.engine``):
validate -> cache -> plan -> for each deployment: reserve, attempt, settle, record ->
one ``Route``. Construction is cheap and never imports LiteLLM: that happens off the
event loop on the first LLM call (or ``await director.warmup()``), so the local tier and
``check-config`` stay fast.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from director_llm.budget.guard import BudgetGuard, ledger_from_config
from director_llm.cache.director import DirectorCache
from director_llm.config.loading import load_config, resolve_config_path
from director_llm.config.models import DirectorConfig
from director_llm.config.secrets import SecretScope
from director_llm.engine.core import Engine
from director_llm.engine.parts import Parts
from director_llm.engine.stream import ResponseStream
from director_llm.errors import DirectorClosedError, InputError
from director_llm.observability.stats import Metrics
from director_llm.observability.telemetry import Telemetry
from director_llm.providers import DeploymentInfo, build_deployments
from director_llm.request import Call, check_params, check_strategy, needs_of, validate_messages
from director_llm.resilience.breaker import DEFAULT_PREFIX, CircuitBreaker
from director_llm.resilience.keys import KeyPools
from director_llm.resilience.rate_limits import DEFAULT_PREFIX as LIMITS_PREFIX
from director_llm.resilience.rate_limits import RateLimiter
from director_llm.route import Route
from director_llm.router.dispatch import Dispatcher, UpstreamError
from director_llm.selection.planner import Planner
from director_llm.selection.topology import Topology

if TYPE_CHECKING:
    from director_llm.budget.ledger import SpendReport
    from director_llm.cache.stats import CacheStats
    from director_llm.engine.classify import Classifier
    from director_llm.intents.models import IntentClassification
    from director_llm.local_tier import LocalTier
    from director_llm.redis_clients import RedisClients
    from director_llm.resilience.shared_stats import SharedAttemptStats
    from director_llm.router.build import BuiltRouter

__all__ = ["Director"]


class Director:
    """Director's LLM layer, built from one config.

    Use ``Director.from_file(path)`` (default ``$DIRECTOR_CONFIG``, else
    ``configs/director.toml``) or ``Director(config)``, and ``async with`` it (or call
    ``aclose()``) so background writes are flushed and connections closed.
    """

    def __init__(
        self,
        config: DirectorConfig,
        *,
        source: str | None = None,
        state_prefix: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.config = config
        self.source = source
        self._state_prefix = state_prefix
        self._clock = clock
        self._secrets = SecretScope(config, owner=self)
        """This config's secrets: redacted from errors and log records while this Director lives."""
        self._old_secrets: list[SecretScope] = []
        self.providers: dict[str, DeploymentInfo] = {d.name: d for d in build_deployments(config)}
        """Every configured deployment by name (``openai/gpt-4o``): type, price, capabilities, tier."""
        self.metrics = Metrics()
        """In-process counters per deployment (requests, failures, latency, cost)."""
        self._redis: RedisClients | None = None
        if config.redis_state_url:
            from director_llm.redis_clients import RedisClients

            self._redis = RedisClients(config.redis_state_url)
        self.breaker = CircuitBreaker.from_config(
            config, prefix=f"{state_prefix}breaker:" if state_prefix else DEFAULT_PREFIX, redis=self._redis
        )
        """Circuit breaker per deployment (shared through Redis when ``redis_state_url`` is set)."""
        self.budget = BudgetGuard(
            ledger_from_config(config, clock=clock, prefix=state_prefix, redis=self._redis),
            default_max_tokens=config.llm.default_max_tokens,
        )
        """Reservations and settlements against the budget ledger (``budget.ledger``)."""
        self.cache = DirectorCache(config)
        """The ``[caching]`` layers (memory -> Redis -> disk) in this config's namespace."""
        self.topology = Topology.build(config, self.usable_deployments())
        """Groups (tiers, deployment names) and fallback chains of the usable deployments."""
        self.breaker.watch(n for n, d in self.topology.deployments.items() if d.kind != "local")
        self.dispatcher = Dispatcher(max_response_bytes=config.llm.max_response_bytes)
        self.limiter = RateLimiter.from_config(
            config,
            self.topology.deployments.values(),
            redis=self._redis,
            prefix=f"{state_prefix}limits:" if state_prefix else LIMITS_PREFIX,
        )
        """Rate limits per deployment and global (``resilience.rate_limits``), counted in the
        state Redis when there is one, in memory otherwise."""
        breaker_cfg = config.llm.circuit_breaker
        self.keys = KeyPools(
            (d for d in self.providers.values() if d.kind != "local"),
            default_cooldown_s=breaker_cfg.cooldown_seconds,
            max_cooldown_s=breaker_cfg.max_cooldown_seconds,
        )
        """The API key pool of each provider (``resilience.keys``): names and states, never values."""
        planner = Planner(self.topology, self.budget, is_open=self.breaker.is_open, p50_ms=self._p50)
        self.telemetry = Telemetry(
            config.observability,
            deployments=self.providers,
            watched=(n for n, d in self.topology.deployments.items() if d.kind != "local"),
            breaker=self.breaker,
            budget=self.budget,
            cache=self.cache,
            shared=self._shared_stats(state_prefix),
            shared_state=self._redis is not None,
        )
        """Metrics, traces, the request log line and the shared health counters
        (``observability.telemetry``; ``docs/observability.md``)."""
        self.engine = Engine(
            Parts(
                planner=planner,
                dispatcher=self.dispatcher,
                budget=self.budget,
                breaker=self.breaker,
                metrics=self.metrics,
                llm=config.llm,
                observer=self.telemetry,
                limiter=self.limiter if self.limiter.enabled else None,
                keys=self.keys,
            )
        )
        """The request engine every call goes through."""
        self._built: BuiltRouter | None = None
        self._local_tier: LocalTier | None = None
        self._local_loaded = False
        self._classifier: Classifier | None = None
        self._closed = False
        self._reload_lock = asyncio.Lock()
        self._retired: list[Any] = []  # parts replaced by a reload, closed once their requests are done
        self._retiring: set[asyncio.Task[Any]] = set()
        self._signal_loop: asyncio.AbstractEventLoop | None = None
        self._signal = 0

    @classmethod
    def from_file(cls, path: str | os.PathLike[str] | None = None, **kwargs: Any) -> Director:
        """Load ``path`` (or ``$DIRECTOR_CONFIG``, else ``configs/director.toml``) and build
        (``kwargs``: ``state_prefix``, ``clock``)."""
        p = resolve_config_path(path)
        return cls(load_config(p), source=str(p), **kwargs)

    def _shared_stats(self, state_prefix: str | None) -> SharedAttemptStats | None:
        return self._shared_stats_on(self._redis, state_prefix)

    @staticmethod
    def _shared_stats_on(redis: RedisClients | None, state_prefix: str | None) -> SharedAttemptStats | None:
        if redis is None:
            return None
        from director_llm.resilience.shared_stats import SharedAttemptStats

        return SharedAttemptStats(redis, prefix=f"{state_prefix}health:" if state_prefix else "director:health:")

    # -- deployments -----------------------------------------------------------------------
    def usable_deployments(self) -> list[DeploymentInfo]:
        """Deployments that can be called now: keys present (missing keys are skipped)."""
        return [d for d in self.providers.values() if d.key_status() != "missing"]

    def groups(self) -> dict[str, list[str]]:
        """Groups a request may ask for (tiers and deployment names) -> deployment names."""
        return {g: list(m) for g, m in self.topology.groups.items()}

    def _p50(self, name: str) -> float | None:
        stats = self.metrics.deployments.get(name)
        return stats.p50_latency_ms if stats is not None else None

    @property
    def built(self) -> BuiltRouter:
        """The LiteLLM Router build (``router``, groups, fallbacks), built on first access."""
        if self._built is None:
            from director_llm.router.build import build_router

            self._built = build_router(self.config, self.topology)
        return self._built

    @property
    def router(self) -> Any:
        """A ``litellm.Router`` with the config's deployments, groups and fallback chains.

        Director's own calls do not go through it; calls made directly through it are plain
        LiteLLM calls (no Director budget, breaker, cache or metrics). Raises ``ProviderError``
        when no LLM deployment is usable."""
        router = self.built.router
        if router is None:
            from director_llm.errors import ProviderError

            raise ProviderError(
                "no LLM deployment is usable: every provider is disabled, local-only or "
                "missing its API key (see `director-llm check-config`)"
            )
        return router

    def choose_group(self, model: str | None, tier: str | None, strategy: str | None) -> tuple[str, str]:
        """(group, reason) a request would start with: the pinned deployment or tier
        (``InputError`` if unknown), else the strategy's first tier without a request at hand."""
        call = Call(
            entry="complete",
            messages=[],
            params={},
            strategy=check_strategy(strategy, self.config.llm.default_strategy),
            model=model,
            tier=tier,
        )
        pinned = self.engine.planner.pinned(call)
        if pinned is not None:
            return pinned
        from director_llm.selection.strategies import TierOption, select

        if self.topology.empty:
            from director_llm.errors import ProviderError

            raise ProviderError("no LLM tier has a usable deployment (see `director-llm check-config`)")
        options = [
            TierOption(tier=t, healthy=not all(self.breaker.is_open(n) for n in self.topology.members(t)))
            for t in self.topology.tiers
        ]
        sel = select(call.strategy, options)
        return sel.chain[0], sel.reason

    # -- completions -----------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise DirectorClosedError("this Director was closed with aclose(); build a new one")

    def _call(
        self,
        entry: Any,
        messages: Any,
        *,
        model: str | None,
        tier: str | None,
        strategy: str | None,
        cache: bool | None,
        kwargs: dict[str, Any],
    ) -> Call:
        self._check_open()
        llm = self.config.llm
        chosen = check_strategy(strategy, llm.default_strategy)
        checked = validate_messages(messages, max_chars=llm.max_input_chars)
        params = check_params(kwargs, entry=entry)
        return Call(
            entry=entry,
            messages=checked,
            params=params,
            strategy=chosen,
            model=model,
            tier=tier,
            needs=needs_of(params),
            cache=cache,
            deadline_s=llm.timeout_seconds,
        )

    async def acompletion(
        self,
        messages: list[dict[str, Any]],
        *,
        model: str | None = None,
        tier: str | None = None,
        strategy: str | None = None,
        cache: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """Send a chat completion and return LiteLLM's ``ModelResponse``.

        ``model`` pins a deployment (``openai/gpt-4o``) or tier; otherwise the strategy (default:
        the config's) plans over complexity x remaining budget x health x capabilities. Every
        usable deployment of the chosen tier is tried, then the fallback chain, within
        ``llm.timeout_seconds``. ``director.route_of(response)`` says how it was served.
        Raises ``InputError`` (bad messages or parameters; ``stream=True`` belongs to
        ``stream_response``), ``BudgetExceededError`` or ``ProviderError``.

        Cached (``[caching] cache_chat``) when ``temperature=0`` or ``cache=True``, never with
        ``cache=False``; identical concurrent misses make one upstream call.
        """
        call = self._call("complete", messages, model=model, tier=tier, strategy=strategy, cache=cache, kwargs=kwargs)
        served: dict[str, Route] = {}
        obs = self.telemetry.request("complete", call)

        async def upstream() -> Any:
            reply, route = await engine.complete(call, obs=obs)
            served["route"] = route
            _hidden(reply.response)["director_route"] = route
            return reply.response

        group = call.group or f"auto:{call.strategy}"
        engine, cache_ = self.engine, self.cache  # a reload meanwhile does not move this request
        try:
            response = await cache_.complete(call.messages, group=group, params=call.params, cache=cache, call=upstream)
        except BaseException as exc:
            obs.finish(None, error=exc)
            raise
        hidden = _hidden(response)
        route = served.get("route")
        if route is None or hidden.get("director_route") is not route:
            # Served by the cache (or by an identical call in flight): no call, nothing spent.
            previous = hidden.get("director_route")
            layer = previous.get("cache") if isinstance(previous, (dict, Route)) else None
            route = Route(
                cache=layer,
                group=group,
                strategy=call.strategy,
                reason="cache" if layer else "shared",
                latency_ms=round((time.perf_counter() - call.started) * 1000, 3),
            )
            hidden["director_route"] = route
        obs.finish(route, response=response)
        return response

    @staticmethod
    def route_of(response: Any) -> Route:
        """The ``Route`` of a response from ``acompletion`` (deployment, tier, reason, cache,
        cost, latency, attempts)."""
        route = _hidden(response).get("director_route")
        if isinstance(route, Route):
            return route
        if isinstance(route, dict):
            return Route.model_validate(route)
        raise InputError("this response did not come from director.acompletion (it has no route)")

    def stream_response(
        self,
        messages: list[dict[str, Any]],
        *,
        model: str | None = None,
        tier: str | None = None,
        strategy: str | None = None,
        resume: bool = False,
        **kwargs: Any,
    ) -> ResponseStream:
        """Stream an answer: an async iterator (and async context manager) of ``TextDelta``
        chunks then one ``StreamEnd`` (usage, cost, route). Planned like ``acompletion``;
        failures before the first token move to the next deployment unseen; after it they
        raise ``StreamInterruptedError(partial_text=...)``, or with ``resume=True`` continue on
        the next deployment. See ``director_llm.engine.stream``."""
        call = self._call("stream", messages, model=model, tier=tier, strategy=strategy, cache=False, kwargs=kwargs)
        return self.engine.stream(call, resume=resume)

    async def warmup(self) -> None:
        """Do the slow first-use work now: import LiteLLM (off the event loop) and load the
        local tier's model. ``serve`` and the CLI call it; a library user may too."""
        self._check_open()
        await self.engine.warmup()
        if self.config.observability.metrics:
            await asyncio.to_thread(self.telemetry.load)
        if self.local_tier is not None:
            await self.local_tier.aload()

    # -- health and spend ------------------------------------------------------------------
    async def health(self, *, probe: bool = False, probe_timeout: float | None = None) -> dict[str, Any]:
        """Each deployment's state (healthy / degraded / cooling down / half-open / unknown),
        recent error rate, latency and last error (redacted). With Redis the breaker states
        and the counts are every process's (``resilience.shared_stats``); a deployment no
        process has called is ``unknown``. ``probe=True`` also sends each a tiny request
        with a short timeout of its own (``probe_timeout``, default min(5 s, the attempt
        timeout); LiteLLM is imported before, outside it; with a key pool, one request per key).
        Each deployment with an API key also has ``keys``: its provider's keys by variable
        name and their state (as in ``key_pools``), never a value."""
        from director_llm.resilience.health import PROBE_MESSAGES, deployment_health

        names = [d.name for d in self.usable_deployments() if d.kind != "local"]

        async def send(name: str, timeout: float) -> None:
            # A probe's outcome is evidence like any attempt's: it feeds the breaker. With a key
            # pool each key is probed: a refused one leaves the pool (not the last), as in requests.
            info = self.providers[name]
            pool = self.keys.pool_for(info)
            if pool is None:
                leases: list[Any] = [None]
            else:
                taken = [pool.take(name, name=k) for k in pool.names]
                leases = [lease for lease in taken if lease is not None]
                if not leases:
                    raise UpstreamError("local", "NoUsableKey", "no API key of the pool can serve now")
            answered = False
            failure: UpstreamError | None = None
            try:
                for lease in leases:
                    try:
                        await self.dispatcher.complete(
                            info, PROBE_MESSAGES, {"max_tokens": 1}, timeout=timeout, key=lease.value if lease else None
                        )
                        answered = True
                    except UpstreamError as exc:
                        if lease is not None:
                            exc.message = f"{exc.message} [key {lease.name}]"
                            if exc.kind == "credential" and pool is not None and pool.drop(lease, exc.status_code):
                                continue
                            if exc.status_code == 429 and pool is not None and pool.cool(lease, exc.retry_after):
                                continue
                        failure = exc
                    finally:
                        if lease is not None:
                            lease.release()
            finally:  # a probe cut by its timeout: the keys not probed yet are free again
                for lease in leases:
                    if lease is not None:
                        lease.release()
            if failure is not None and not answered:
                if failure.feeds_breaker:
                    await self.breaker.record_failure(name, failure)
                raise failure
            await self.breaker.record_success(name)

        if probe and names:
            await self.engine.warmup()  # the import is not the probe's time
        timeout = probe_timeout or min(5.0, self.config.llm.attempt_timeout_seconds)
        report = await deployment_health(
            names,
            breaker=self.breaker,
            metrics=self.metrics,
            probe=send if probe else None,
            probe_timeout=timeout,
            shared=self.telemetry.shared,
        )
        for name in names:  # the key pool of each deployment's provider, by variable name
            pool = self.keys.pool_for(self.providers[name])
            if pool is not None and name in report:
                report[name]["keys"] = pool.states()
        return report

    def key_pools(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Each provider's API keys by variable NAME (never a value) and their state: ``ok``,
        ``missing`` (unset), ``dropped`` (answered 401/403), ``rejected`` (the last key, kept:
        the breaker decides), ``cooling`` (answered 429; ``cooling_s`` left per deployment),
        with the calls each answered in this process. ``health`` shows the same states."""
        return self.keys.describe()

    def reload_keys(self) -> dict[str, dict[str, str]]:
        """Read the API keys again from the environment, without rebuilding the Director:
        ``{provider: {variable: "unchanged" | "changed" | "added" | "removed" | "missing"}}``.
        A changed or newly set key is back in its pool (a dropped or cooling one too); an
        unset one leaves it. Requests in flight finish with the key they took. A provider
        that had no key at all when the Director was built stays out of its plan: build a
        new Director for it. (The cache namespace is not recomputed.) The new values are
        redacted from errors and logs from now on, like the old ones."""
        self._secrets.refresh()
        return self.keys.reload()

    def install_sighup_handler(self) -> bool:
        """Reload the keys on SIGHUP (``kill -HUP <pid>``) for a long-running process. Opt in:
        call it once from the main thread, with the event loop running (the handler goes on
        the loop) or not (a plain ``signal`` handler). False where there is no SIGHUP
        (Windows) or when called outside the main thread."""
        import signal
        import threading

        sighup = getattr(signal, "SIGHUP", None)
        if sighup is None or threading.current_thread() is not threading.main_thread():
            return False
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            loop.add_signal_handler(sighup, self._on_sighup)
        else:
            signal.signal(sighup, lambda *_: self._on_sighup())
        return True

    def _on_sighup(self) -> None:
        import logging

        changes = self.reload_keys()
        changed = sorted(n for pool in changes.values() for n, c in pool.items() if c not in ("unchanged", "missing"))
        logging.getLogger("director_llm").info(
            "SIGHUP: API keys reloaded (%s)", ", ".join(changed) if changed else "no change"
        )

    # -- metrics ---------------------------------------------------------------------------
    def metrics_text(self) -> str:
        """This Director's Prometheus metrics in the text exposition format (every process's
        in multiprocess mode). Counters are live; the budget gauges are as of the last
        ``refresh_metrics()`` (each scrape through ``director_llm.metrics.asgi_app`` or
        ``director-llm metrics`` does one, and requests do one at most every 5 s). Empty
        with ``[observability] metrics = false``. See ``docs/observability.md``."""
        return self.telemetry.text()

    async def refresh_metrics(self) -> None:
        """Read the state gauges now: budget windows (one ledger read), breaker states (from
        Redis when shared), cache counters. Never raises."""
        await self.telemetry.refresh()

    async def spend(self, *, by: str | None = None) -> SpendReport:
        """``budget.SpendReport`` from the (shared) ledger: each window's limit, spend, held,
        remaining and reset time, and requests/tokens/cost of the last 24 h grouped ``by``
        ``provider``, ``model`` or ``hour``. With Redis it includes every process's spend.
        ``keys`` holds this process's calls per API key, by variable name (never a value)."""
        if by not in (None, "provider", "model", "hour"):
            raise InputError(f"by must be 'provider', 'model' or 'hour', not {by!r}")
        await self.budget.flush()  # this process's batched usage first
        report = await self.budget.ledger.snapshot(by=by)  # type: ignore[arg-type]
        from dataclasses import replace

        from director_llm.budget.ledger import UsageReport

        keys = {
            name: UsageReport(u.requests, u.prompt_tokens, u.completion_tokens, round(u.cost_usd, 12))
            for name, u in self.keys.usage().items()
        }
        return replace(report, keys=keys)

    # -- intents ---------------------------------------------------------------------------
    @property
    def local_tier(self) -> LocalTier | None:
        """The embedded ``local_tier.LocalTier`` of the config's ``kind = "local"`` provider
        (None without one). Built cheaply; the model trains or loads on first prediction."""
        if not self._local_loaded:
            from director_llm.local_tier import LocalTier

            base = Path(self.source).resolve().parent if self.source else None
            self._local_tier = LocalTier.from_config(self.config, base_dir=base)
            self._local_loaded = True
        return self._local_tier

    @property
    def classifier(self) -> Classifier:
        """The classification entry on the engine (built on first use)."""
        if self._classifier is None:
            from director_llm.engine.classify import Classifier

            tier = self.local_tier
            info = next(
                (
                    d
                    for d in self.providers.values()
                    if d.kind == "local" and tier is not None and d.name == tier.deployment
                ),
                None,
            )
            self._classifier = Classifier(
                self.config, engine=self.engine, cache=self.cache, local=tier, local_info=info
            )
        return self._classifier

    async def classify_intent(
        self,
        text: str,
        history: list[Any] | None = None,
        *,
        strategy: str | None = None,
        cache: bool | None = None,
        tier: str | None = None,
        model: str | None = None,
    ) -> IntentClassification:
        """Classify ``text`` into one of the configured flows: an ``IntentClassification``.

        ``history`` is a list of earlier turns (``{"role", "content"}`` dicts or strings);
        ``tier`` / ``model`` ask a tier or deployment first (the local tier stays the last
        resort). Raises ``InputError`` (empty/too long text, bad history, unknown strategy),
        ``ClassificationError`` (no deployment gave a valid answer) or ``ProviderError``.
        Results are cached (``route.cache`` names the layer); ``cache=False`` skips the cache.
        """
        self._check_open()
        return await self.classifier.classify(
            text, history, strategy=strategy, cache=cache is not False, tier=tier, model=model
        )

    def stream_intent(
        self,
        text: str,
        history: list[Any] | None = None,
        *,
        strategy: str | None = None,
        tier: str | None = None,
        model: str | None = None,
    ) -> AsyncIterator[Any]:
        """Classify while the answer streams: an async iterator of ``intents.StreamItem``
        (partial results and routing events; the last item is final, ``done=True``)."""
        self._check_open()
        return self.classifier.stream(text, history, strategy=strategy, tier=tier, model=model)

    # -- cache -----------------------------------------------------------------------------
    def cache_stats(self) -> CacheStats | None:
        """``cache.CacheStats`` (hits/misses per layer, hit rate, bytes in L1, Redis state) of
        this process, or None when caching is off or nothing was looked up yet."""
        return self.cache.stats()

    # -- hot reload ------------------------------------------------------------------------
    async def reload(self, path: str | os.PathLike[str] | None = None) -> dict[str, list[str]]:
        """Load ``path`` (None: the file this Director was built from) and swap it in.

        A valid config replaces the deployments, groups, fallbacks, strategy, timeouts and
        limits in one step: requests already running finish on the parts they started with;
        new ones use the new config. State carries over: the budget ledger (spend and open
        holds) and the circuit breakers (by deployment name, so an open breaker stays open),
        the metrics, and the cache when the config's cache namespace is unchanged (a change
        that can change answers starts a new namespace, on purpose). A new Redis URL for
        shared state starts fresh parts on it. ``[observability]`` changes need a restart.

        An invalid file raises the ``ConfigError`` ``check-config`` reports (file, key or
        line, fix), and the current config keeps serving. Returns the deployment names
        ``added``, ``removed`` and ``kept``."""
        self._check_open()
        target = path if path is not None else self.source
        if target is None:
            from director_llm.errors import ConfigError

            raise ConfigError("this Director was built from a config object, not a file: call reload(path)")
        p = resolve_config_path(target)
        config = await asyncio.to_thread(load_config, p)  # raises ConfigError; nothing changed yet
        async with self._reload_lock:
            self._check_open()
            return self._swap(config, source=str(p))

    def _swap(self, config: DirectorConfig, *, source: str) -> dict[str, list[str]]:
        """Build the parts of ``config`` (reusing the stateful ones) and assign them without an
        ``await`` in between, so no request sees half of each config."""
        old = self.config
        retired: list[Any] = []
        providers = {d.name: d for d in build_deployments(config)}
        redis, breaker, budget, shared = self._redis, self.breaker, self.budget, self.telemetry.shared
        if config.redis_state_url != old.redis_state_url or (
            config.llm.budget_store_failure != old.llm.budget_store_failure and config.redis_state_url
        ):  # a new store, or the other outage mode around it (state in Redis is kept either way)
            retired += [self.budget, self.breaker, *([shared] if shared is not None else []), self._redis]
            redis = None
            if config.redis_state_url:
                from director_llm.redis_clients import RedisClients

                redis = RedisClients(config.redis_state_url)
            prefix = self._state_prefix
            breaker = CircuitBreaker.from_config(
                config, prefix=f"{prefix}breaker:" if prefix else DEFAULT_PREFIX, redis=redis
            )
            budget = BudgetGuard(
                ledger_from_config(config, clock=self._clock, prefix=prefix, redis=redis),
                default_max_tokens=config.llm.default_max_tokens,
            )
            shared = self._shared_stats_on(redis, prefix)
        cache = DirectorCache(config)
        if config.caching == old.caching and cache.namespace == self.cache.namespace:
            cache = self.cache  # same answers, same layers: keep every entry, memory included
        else:
            retired.append(self.cache)
        usable = [d for d in providers.values() if d.key_status() != "missing"]
        topology = Topology.build(config, usable)
        watched = [n for n, d in topology.deployments.items() if d.kind != "local"]
        breaker.watch(watched)
        dispatcher = self.dispatcher
        if config.llm.max_response_bytes != old.llm.max_response_bytes:
            retired.append(self.dispatcher)
            dispatcher = Dispatcher(max_response_bytes=config.llm.max_response_bytes)
        limiter = RateLimiter.from_config(
            config,
            topology.deployments.values(),
            redis=redis,
            prefix=f"{self._state_prefix}limits:" if self._state_prefix else LIMITS_PREFIX,
        )
        limiter.adopt_counts(self.limiter)
        keys = KeyPools(
            (d for d in providers.values() if d.kind != "local"),
            default_cooldown_s=config.llm.circuit_breaker.cooldown_seconds,
            max_cooldown_s=config.llm.circuit_breaker.max_cooldown_seconds,
        )
        keys.adopt(self.keys)
        keys.reload()  # a config reload re-reads the key variables too (one SIGHUP does both)
        planner = Planner(topology, budget, is_open=breaker.is_open, p50_ms=self._p50)
        engine = Engine(
            Parts(
                planner=planner,
                dispatcher=dispatcher,
                budget=budget,
                breaker=breaker,
                metrics=self.metrics,
                llm=config.llm,
                observer=self.telemetry,
                limiter=limiter if limiter.enabled else None,
                keys=keys,
            )
        )
        keep_local = _local_part(config) == _local_part(old) and source == self.source
        before = set(self.providers)
        # -- the swap: plain assignments, no await
        if breaker is self.breaker:  # carried over: the new thresholds and limits apply from now
            breaker.configure(config)
            budget.configure(config)
        self._redis = redis
        t = self.telemetry
        t.shared_state = redis is not None
        t.deployments, t.watched, t.breaker, t.budget, t.cache, t.shared = (
            {**self.providers, **providers},  # attempts in flight on a removed deployment still count
            sorted(watched),
            breaker,
            budget,
            cache,
            shared,
        )
        self.config, self.source, self.providers, self.topology = config, source, providers, topology
        self.breaker, self.budget, self.cache, self.dispatcher, self.engine = breaker, budget, cache, dispatcher, engine
        self.limiter, self.keys = limiter, keys
        # The new config's secrets are redacted from now on; the old ones stay redacted until
        # aclose (requests in flight on the old parts may still log them).
        self._old_secrets.append(self._secrets)
        self._secrets = SecretScope(config, owner=self)
        self._built = None
        self._classifier = None
        if not keep_local:
            self._local_tier, self._local_loaded = None, False
        self._retire([r for r in retired if r is not None], after=_longest_request_s(old))
        return {
            "added": sorted(set(providers) - before),
            "removed": sorted(before - set(providers)),
            "kept": sorted(before & set(providers)),
        }

    def _retire(self, parts: list[Any], *, after: float) -> None:
        """Close ``parts`` once the requests that hold them are over (their deadline)."""
        if not parts:
            return
        self._retired.extend(parts)

        async def later() -> None:
            await asyncio.sleep(after)
            done = [p for p in parts if p in self._retired]
            self._retired = [p for p in self._retired if p not in done]
            await self._close_retired(done)

        task = asyncio.get_running_loop().create_task(later())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    @staticmethod
    async def _close_retired(parts: list[Any]) -> None:
        for part in parts:
            try:
                if isinstance(part, BudgetGuard):
                    await part.drain()
                    await part.release_all()
                    await part.ledger.aclose()
                else:
                    await part.aclose()
            except Exception:  # closing an old part must not fail the new config
                logging.getLogger("director_llm").warning("closing a part replaced by a reload failed", exc_info=True)

    def install_reload_signal(self, sig: int | None = None) -> None:
        """Reload the config file on SIGHUP (or ``sig``) in this running event loop (opt-in,
        for long-running processes; Unix, from the main thread). An invalid file is logged as a warning on the
        ``director_llm`` logger and the current config keeps serving."""
        import signal

        loop = asyncio.get_running_loop()
        number = sig if sig is not None else signal.SIGHUP

        def handle() -> None:
            task = loop.create_task(self._reload_logged())
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

        loop.add_signal_handler(number, handle)
        self._signal_loop = loop
        self._signal = number

    def remove_reload_signal(self) -> None:
        """Undo ``install_reload_signal``."""
        loop, self._signal_loop = self._signal_loop, None
        if loop is not None and not loop.is_closed():
            loop.remove_signal_handler(self._signal)

    async def _reload_logged(self) -> dict[str, list[str]] | None:
        """``reload()`` for unattended callers (signals, file watchers): the outcome is logged,
        a ``ConfigError`` is not raised."""
        from director_llm.errors import ConfigError

        log = logging.getLogger("director_llm")
        try:
            changes = await self.reload()
        except ConfigError as exc:
            log.warning("config reload rejected, the current config keeps serving: %s", exc)
            return None
        except DirectorClosedError:
            return None
        log.info(
            "config reloaded from %s: added %s, removed %s",
            self.source,
            ", ".join(changes["added"]) or "none",
            ", ".join(changes["removed"]) or "none",
        )
        return changes

    # -- lifecycle -------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Flush background work and release connections. Safe to call twice; a closed
        Director refuses new requests (``DirectorClosedError``)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.remove_reload_signal()
            for task in list(self._retiring):
                task.cancel()
            await self._close_retired(self._retired)
            self._retired = []
            await self.budget.drain()
            await self.budget.release_all()
            await self.budget.ledger.aclose()
            await self.cache.aclose()
            await self.telemetry.aclose()
            await self.breaker.aclose()
            await self.dispatcher.aclose()
            if self._redis is not None:
                await self._redis.aclose()
        finally:
            for scope in [*self._old_secrets, self._secrets]:
                scope.close()
            self._old_secrets = []

    async def __aenter__(self) -> Director:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"Director(source={self.source!r}, deployments={list(self.providers)})"


def _local_part(config: DirectorConfig) -> Any:
    """What the local tier is built from: its provider section(s) and the intents."""
    local = {n: p for n, p in config.providers.items() if p.kind == "local"}
    return (local, config.intents)


def _longest_request_s(config: DirectorConfig) -> float:
    """How long a request of ``config`` may still be running: its deadline, or a stream's."""
    llm = config.llm
    return max(llm.timeout_seconds, llm.max_stream_seconds or 0.0) + 5.0


def _hidden(response: Any) -> dict[str, Any]:
    hidden = getattr(response, "_hidden_params", None)
    if not isinstance(hidden, dict):
        hidden = {}
        try:
            response._hidden_params = hidden
        except AttributeError:
            pass
    return hidden
