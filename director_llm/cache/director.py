"""The tiered cache as the Director uses it: one namespace per config, chat and intent keys.

``DirectorCache`` is built by ``Director.__init__`` (cheap: no Redis or disk is touched
until the first cached call) and owns one ``TieredCache`` per event loop, because the
Redis layer's connections, semaphores and background tasks belong to the loop that made
them. ``Director.aclose()`` closes the current loop's cache (flushing pending writes).

What is cached, and under which key
-----------------------------------
*Chat completions* (``complete``): only non-streamed calls that are deterministic
(``temperature == 0``) or opted in with ``cache=True``; never with ``cache=False``, and
only when ``[caching] cache_chat`` is on. The key covers the messages (normalized with
``normalize_for_completion``: NFC and line ends only, since every visible character can
change an answer), the group (tier or pinned deployment) and the request parameters that
change the answer. Parameters that only steer transport or bookkeeping (``metadata``,
``timeout``, ``fallbacks``, ``user``...) are left out; any parameter we do not know is
*kept* in the key, because a spurious miss costs one call while a wrong hit serves another
request's answer. Parameters that carry a credential or choose an endpoint (``api_key``,
``api_base``, ``extra_headers``...: ``identity.SECRET_PARAMS``) are in the key as a keyed
digest, never in clear: a per-call key the provider would reject is never answered from
another key's entry. A parameter that has no JSON form (a client object) turns caching off
for that call rather than being stringified into a colliding key.

*Classifications* (``lookup_classification`` / ``store_classification``): the text folded
with ``normalize_for_classification`` (case and whitespace do not change an intent), the
history as shown to the model, the tier or pinned model, the strategy and the flows'
fingerprint. A hit is used only if its flow is one the current config may answer and it
passes the model's bounds (``cache.classification``).

The namespace (``config_namespace``) is a fingerprint of everything that shapes an answer:
providers and their models, tiers and base URLs, fallbacks, default ``max_tokens`` and
strategy, the whole ``[intents]`` section, the classifier's prompt version, and the
*credential identity* (``cache.identity``): a keyed digest of the API keys every enabled
provider uses (the values of its ``api_key_env`` / key pool) and of the endpoints the
environment chooses. Two configs that differ only in their keys never share an answer.
Budgets, timeouts, the names of the key variables and the cache settings themselves are
left out (changing them cannot change an answer).

Trust. Entries in Redis and on disk are not trusted (module doc of ``cache.tiered``); with
``DIRECTOR_CACHE_SECRET`` set every entry is signed and an unsigned or forged one is a
miss. The cache never fails a request: a layer that cannot be opened is left out with a
warning, and every error later is a miss.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from director_llm.cache.classification import (
    ClassificationCodec,
    classification_cache_key,
)
from director_llm.cache.identity import cache_secret, signing_key
from director_llm.cache.scope import NON_ANSWER_PARAMS, chat_cache_key, config_namespace
from director_llm.cache.stats import CacheStats
from director_llm.errors import ConfigError

if TYPE_CHECKING:
    from director_llm.cache.tiered import TieredCache
    from director_llm.config.models import DirectorConfig
    from director_llm.intents.models import IntentClassification

__all__ = [
    "NON_ANSWER_PARAMS",
    "DirectorCache",
    "chat_cache_key",
    "classification_cache_key",
    "config_namespace",
]

_log = logging.getLogger("director_llm.cache")
#: At most one warning per interval for failures of the classification/chat paths.
_WARN_EVERY_S = 60.0

#: Route fields of a classification served from the cache (no call, no cost).
_HIT_ROUTE: dict[str, Any] = {
    "calls": 0,
    "attempts": [],
    "cost_usd": 0.0,
    "prompt_tokens": 0,
    "completion_tokens": 0,
    "reserved_cost_usd": None,
    "repaired": False,
}


# --------------------------------------------------------------------------------- cache
class DirectorCache:
    """The Director's cache: per-loop ``TieredCache`` + the chat and classification paths.

    ``enabled`` is False when ``[caching] enabled = false`` or no layer is configured; then
    every method calls straight through. ``environ`` (default ``os.environ``) is where the
    credentials of the namespace and ``DIRECTOR_CACHE_SECRET`` are read, once, here.
    """

    def __init__(
        self, config: DirectorConfig, *, namespace: str | None = None, environ: Mapping[str, str] | None = None
    ) -> None:
        caching = config.caching
        self.settings = caching
        self._memory_bytes = int(caching.memory_size_mb * 2**20) if caching.memory_size_mb else None
        self.enabled = caching.enabled and bool(self._memory_bytes or caching.redis_url or caching.disk_cache_path)
        self.cache_chat = self.enabled and caching.cache_chat
        self._config = config
        self._namespace = namespace
        self._environ = environ
        self._secret = cache_secret(environ)
        self.signed = self._secret is not None
        """Whether entries are signed (and unsigned ones refused): ``DIRECTOR_CACHE_SECRET`` is set."""
        self._caches: dict[asyncio.AbstractEventLoop, TieredCache] = {}
        self._last: tuple[asyncio.AbstractEventLoop | None, TieredCache | None] = (None, None)
        self._codecs: dict[frozenset[str], ClassificationCodec] = {}
        self._stats_source: TieredCache | None = None
        self._warned_at = -_WARN_EVERY_S
        self.layer_errors: dict[str, str] = {}
        """Layers left out because they could not be opened (``"disk"`` -> why)."""
        self.redis_backoff_s: float | None = None
        """Seconds between reconnection probes while Redis is down (None: the cache's default).
        Read when a loop's cache is built; tests shorten it."""

    @property
    def namespace(self) -> str:
        """This config's namespace (computed on first use: it hashes the config)."""
        if self._namespace is None:
            self._namespace = config_namespace(self._config, environ=self._environ, secret=self._secret)
        return self._namespace

    def tiered(self) -> TieredCache | None:
        """The ``TieredCache`` of the running event loop (built on first use); None when off."""
        if not self.enabled:
            return None
        loop = asyncio.get_running_loop()
        last_loop, last_cache = self._last
        if loop is last_loop:
            return last_cache
        cache = self._caches.get(loop)
        if cache is None:
            cache = self._build()
            self._forget_closed_loops()
            self._caches[loop] = cache
        self._last = (loop, cache)
        self._stats_source = cache
        return cache

    def _build(self) -> TieredCache:
        from director_llm.cache.tiered import TieredCache

        s = self.settings
        layers: dict[str, Any] = {"redis_url": s.redis_url, "disk_path": s.disk_cache_path}
        options: dict[str, Any] = {
            "redis_timeout_s": s.redis_timeout_ms / 1000,
            "signing_key": signing_key(self._secret),
        }
        if self.redis_backoff_s is not None:
            options["redis_backoff_s"] = self.redis_backoff_s
        while True:
            try:
                return TieredCache(
                    memory_bytes=self._memory_bytes,
                    ttl_seconds=s.ttl_seconds,
                    namespace=self.namespace,
                    **layers,
                    **options,
                )
            except ConfigError as exc:
                # The cache never fails a request: leave the layer out, say so once.
                layer = {"caching.disk_cache_path": "disk_path", "caching.redis_url": "redis_url"}.get(exc.key or "")
                if layer is None or layers[layer] is None:
                    raise
                layers[layer] = None
                self.layer_errors["disk" if layer == "disk_path" else "redis"] = str(exc)
                _log.warning("cache: %s; running without that layer", exc)

    def _forget_closed_loops(self) -> None:
        # A cache whose loop has closed cannot be awaited any more; drop it (its pending
        # writes died with the loop) and release the disk store's file handles.
        for loop in [lp for lp in self._caches if lp.is_closed()]:
            cache = self._caches.pop(loop)
            disk = getattr(cache, "_disk", None)
            if disk is not None:
                try:
                    disk.close()
                except Exception as exc:  # noqa: BLE001 - best effort: a leaked handle must not fail a request
                    _log.debug("cache: closing the disk layer of a closed loop failed: %s", exc)

    def _warn(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY_S:
            self._warned_at = now
            _log.warning("cache: %s failed (%s: %s); treated as a miss", what, type(exc).__name__, exc)
        else:
            _log.debug("cache: %s failed (%s: %s)", what, type(exc).__name__, exc)

    # ------------------------------------------------------------------------------- chat
    def chat_key(
        self, messages: Sequence[Any], *, group: str, params: Mapping[str, Any], cache: bool | None
    ) -> str | None:
        """The key to use for this chat call, or None when it must not be cached."""
        if not self.cache_chat or cache is False or params.get("stream"):
            return None
        if cache is not True and params.get("temperature") != 0:
            return None
        return chat_cache_key(messages, group=group, params=params, secret=self._secret)

    async def complete(
        self,
        messages: Sequence[Any],
        *,
        group: str,
        params: Mapping[str, Any],
        cache: bool | None,
        call: Callable[[], Awaitable[Any]],
    ) -> Any:
        """Serve a chat completion from the cache, or ``await call()`` (single flight) and store it.

        The result is a LiteLLM ``ModelResponse``; ``_hidden_params["director_route"]["cache"]``
        names the layer that answered (None when the model did).
        """
        key = self.chat_key(messages, group=group, params=params, cache=cache)
        tiered = self.tiered() if key is not None else None
        if tiered is None or key is None:
            return await call()
        fresh: list[Any] = []

        async def compute() -> dict[str, Any]:
            response = await call()
            fresh.append(response)
            return response.model_dump(mode="json", exclude_none=False)

        value, layer = await tiered.get_or_compute(key, compute)
        if fresh:  # this caller made the upstream call: hand back LiteLLM's own object (and route)
            return fresh[0]
        from director_llm.router.dispatch import model_response

        try:
            response = model_response(value)
        except Exception as exc:  # noqa: BLE001 - an entry LiteLLM cannot read: a miss, not an error
            self._warn("reading a cached chat completion", exc)
            await tiered.delete(key)
            response = await call()
            _route(response)["cache"] = None
            return response
        route = _route(response)
        route.update({"cache": layer, "group": group})
        if layer is None:
            route["coalesced"] = True  # joined an identical call in flight
        response._hidden_params["cache_hit"] = layer is not None
        return response

    # ------------------------------------------------------------------------ classification
    def classification_key(
        self,
        text: str,
        *,
        history: Sequence[Any] = (),
        tier: str | None = None,
        strategy: str | None = None,
        flows_fingerprint: str | None = None,
    ) -> str | None:
        """Key of a classification: ``text`` as cleaned, ``history`` as the prompt shows it
        (``intents.prompts.history_lines``), the tier asked (None: chosen by strategy), the
        strategy (None: the config's default) and the flows' fingerprint. None: uncacheable."""
        return classification_cache_key(
            text,
            history=list(history),
            tier=tier,
            strategy=strategy or self._config.llm.default_strategy,
            extra={"flows": flows_fingerprint},
        )

    async def lookup_classification(
        self,
        text: str,
        *,
        history: Sequence[Any] = (),
        tier: str | None = None,
        strategy: str | None = None,
        flows_fingerprint: str | None = None,
        valid_flows: Iterable[str],
        started: float | None = None,
    ) -> IntentClassification | None:
        """The cached classification of this request, or None (a miss).

        ``valid_flows`` are the flows the current config may answer (its flows and the
        fallback flow): an entry naming another flow, out of range or past the bounds is a
        miss, deleted and later overwritten. ``started`` (``time.perf_counter()`` when the
        request began) sets ``route.latency_ms``. Never raises: a failure is a miss."""
        started = time.perf_counter() if started is None else started
        try:
            tiered = self.tiered()
            key = (
                self.classification_key(
                    text, history=history, tier=tier, strategy=strategy, flows_fingerprint=flows_fingerprint
                )
                if tiered is not None
                else None
            )
            if tiered is None or key is None:
                return None
            hit = await tiered.get(key, codec=self._codec(valid_flows))
        except Exception as exc:  # noqa: BLE001 - the cache never fails a request
            self._warn("a classification lookup", exc)
            return None
        if hit is None:
            return None
        value = hit.value  # shared with other readers (the codec keeps it): annotate a copy
        # Attempts, cost and tokens were zeroed when stored: a hit only says who answered.
        route = value.route.model_copy(
            update={"cache": hit.layer, "latency_ms": round((time.perf_counter() - started) * 1000, 3)}
        )
        return value.model_copy(update={"route": route})

    async def store_classification(
        self,
        result: IntentClassification,
        text: str,
        *,
        history: Sequence[Any] = (),
        tier: str | None = None,
        strategy: str | None = None,
        flows_fingerprint: str | None = None,
        valid_flows: Iterable[str],
    ) -> None:
        """Store ``result`` (a model's answer) under this request's key, in the background
        for Redis and disk. A cache hit (``route.cache`` set) or a result outside
        ``valid_flows`` is not stored. Never raises."""
        if result.route.cache is not None:
            return
        try:
            tiered = self.tiered()
            key = (
                self.classification_key(
                    text, history=history, tier=tier, strategy=strategy, flows_fingerprint=flows_fingerprint
                )
                if tiered is not None
                else None
            )
            if tiered is None or key is None:
                return
            # What a hit reports: no attempts, nothing spent (done here, on the miss path, so
            # that a hit only sets ``cache`` and ``latency_ms``); the caller's object is untouched.
            route = result.route.model_copy(update=_HIT_ROUTE)
            await tiered.set(key, result.model_copy(update={"route": route}), codec=self._codec(valid_flows))
        except Exception as exc:  # noqa: BLE001 - the cache never fails a request
            self._warn("storing a classification", exc)

    def _codec(self, valid_flows: Iterable[str]) -> ClassificationCodec:
        flows = frozenset(valid_flows)
        codec = self._codecs.get(flows)
        if codec is None:
            codec = self._codecs[flows] = ClassificationCodec(flows)
        return codec

    # --------------------------------------------------------------------------- management
    def disable(self) -> None:
        """Turn the cache off for this Director (``--no-cache``): no reads, no writes."""
        self.enabled = self.cache_chat = False

    def stats(self) -> CacheStats | None:
        """Counters of the most recently used loop's cache; None when caching is off or unused."""
        return self._stats_source.stats() if self._stats_source is not None else None

    async def clear(self) -> None:
        """Remove every entry of this config's namespace from every layer."""
        tiered = self.tiered()
        if tiered is not None:
            await tiered.clear()

    async def aclose(self) -> None:
        """Flush pending writes and close the running loop's cache (others are dropped)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        cache = self._caches.pop(loop, None) if loop is not None else None
        self._last = (None, None)
        if cache is not None:
            await cache.aclose()
        self._forget_closed_loops()


def _route(response: Any) -> dict[str, Any]:
    hidden = getattr(response, "_hidden_params", None)
    if hidden is None:
        hidden = {}
        response._hidden_params = hidden
    route = hidden.get("director_route")
    if not isinstance(route, dict):
        route = {}
        hidden["director_route"] = route
    return route
