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
request's answer. A parameter that has no JSON form (a client object) turns caching off for
that call rather than being stringified into a colliding key.

*Classifications* (``classify``): the text folded with ``normalize_for_classification``
(case and whitespace do not change an intent), the history as shown to the model, the tier
or pinned model and the strategy. Flows, prompts and the prompt version are in the
namespace.

The namespace (``config_namespace``) is a fingerprint of everything in the config that
shapes an answer: providers and their models, tiers and base URLs, fallbacks, default
``max_tokens`` and strategy, the whole ``[intents]`` section and the classifier's prompt
version. Editing any of them starts a fresh namespace, so a config change never serves
another config's answers; budgets, timeouts, API key variables and the cache settings
themselves are left out (changing them cannot change an answer).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from director_llm.cache.keys import (
    fingerprint,
    make_key,
    normalize_for_classification,
    normalize_for_completion,
)
from director_llm.cache.stats import CacheStats

if TYPE_CHECKING:
    from director_llm.cache.tiered import TieredCache
    from director_llm.config.models import DirectorConfig

__all__ = [
    "NON_ANSWER_PARAMS",
    "DirectorCache",
    "chat_cache_key",
    "classification_cache_key",
    "config_namespace",
]

_log = logging.getLogger("director_llm.cache")

#: Request parameters that never change what the model answers: transport, retries,
#: routing and bookkeeping. Everything else a caller passes is part of the chat key.
NON_ANSWER_PARAMS = frozenset({
    "metadata", "timeout", "request_timeout", "stream_timeout", "num_retries", "max_retries",
    "fallbacks", "context_window_fallbacks", "user", "extra_headers", "headers", "api_key",
    "litellm_logging_obj", "litellm_call_id", "litellm_trace_id", "mock_testing_fallbacks",
    "stream_options", "cache", "caching", "no-log", "proxy_server_request",
})
#: Provider fields that cannot change an answer (left out of the namespace fingerprint).
_PROVIDER_FIELDS_IGNORED = {"api_key_env", "timeout_seconds", "budget_per_hour", "budget_per_day"}
_OVERRIDE_FIELDS_IGNORED = {"rpm", "tpm"}
_CHAT_NS = {"kind": "chat", "v": 1}
#: Route fields of a classification served from the cache (no call, no cost).
_HIT_ROUTE = {"attempts": 0, "cost_usd": 0.0, "prompt_tokens": 0, "completion_tokens": 0,
              "reserved_cost_usd": None, "tried": [], "repaired": False}
_CLASSIFY_NS = {"kind": "classify", "v": 1}


def _prompt_version() -> str | None:
    # The classifier's prompt text is code, not config: its version must be in the
    # namespace too. Looked up lazily so this module works before (or without) intents.
    try:
        from director_llm.intents import prompts
    except ImportError:
        return None
    return getattr(prompts, "PROMPT_VERSION", None)


def config_namespace(config: DirectorConfig, *, prompt_version: str | None = None) -> str:
    """The cache namespace of ``config``: a fingerprint of what shapes answers (module doc)."""
    providers = {}
    for name, section in config.providers.items():
        dumped = section.model_dump(mode="json", exclude=_PROVIDER_FIELDS_IGNORED)
        dumped["overrides"] = {
            model: {k: v for k, v in override.items() if k not in _OVERRIDE_FIELDS_IGNORED}
            for model, override in dumped.get("overrides", {}).items()
        }
        providers[name] = dumped
    llm = config.llm
    shaping = {
        "providers": providers,
        "llm": {
            "fallbacks": llm.fallbacks,
            "derive_fallbacks": llm.derive_fallbacks,
            "default_max_tokens": llm.default_max_tokens,
            "default_strategy": llm.default_strategy,
        },
        "intents": config.intents.model_dump(mode="json"),
        "prompt_version": prompt_version if prompt_version is not None else _prompt_version(),
    }
    return f"cfg-{fingerprint(shaping)}"


# --------------------------------------------------------------------------------- keys
def _normalize_message(message: Any) -> Any:
    if not isinstance(message, Mapping):
        return message  # make_key rejects what has no JSON form: the call goes uncached
    out = dict(message)
    content = out.get("content")
    if isinstance(content, str):
        out["content"] = normalize_for_completion(content)
    elif isinstance(content, list):
        out["content"] = [
            {**part, "text": normalize_for_completion(part["text"])}
            if isinstance(part, Mapping) and isinstance(part.get("text"), str) else part
            for part in content
        ]
    return out


def _jsonable_param(value: Any) -> Any:
    # A pydantic model class as response_format: its JSON schema is what reaches the model.
    schema = getattr(value, "model_json_schema", None)
    if isinstance(value, type) and callable(schema):
        return {"pydantic_schema": schema(), "name": value.__name__}
    return value


def chat_cache_key(messages: Sequence[Any], *, group: str, params: Mapping[str, Any]) -> str | None:
    """Key of a chat completion, or None when a part has no JSON form (call goes uncached)."""
    payload = {
        "messages": [_normalize_message(m) for m in messages],
        "group": group,
        "params": {k: _jsonable_param(v) for k, v in params.items() if k not in NON_ANSWER_PARAMS},
    }
    try:
        return make_key(_CHAT_NS, payload)
    except (TypeError, ValueError):
        return None


def _normalize_turn(turn: Any) -> Any:
    if isinstance(turn, str):
        return normalize_for_classification(turn)
    if isinstance(turn, Mapping):
        content = turn.get("content")
        return {
            "role": turn.get("role"),
            "content": normalize_for_classification(content) if isinstance(content, str) else content,
        }
    return turn


def classification_cache_key(
    text: str,
    *,
    history: Sequence[Any] | None = None,
    tier: str | None = None,
    model: str | None = None,
    strategy: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str | None:
    """Key of a classification, or None when a part has no JSON form (call goes uncached).

    ``history`` should be what the prompt will show (strings or ``{"role", "content"}``);
    ``extra`` holds anything else a caller varies per call (e.g. a flow subset).
    """
    payload = {
        "text": normalize_for_classification(text),
        "history": [_normalize_turn(t) for t in history or ()],
        "tier": tier,
        "model": model,
        "strategy": strategy,
        "extra": dict(extra) if extra else None,
    }
    try:
        return make_key(_CLASSIFY_NS, payload)
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------------- cache
class DirectorCache:
    """The Director's cache: per-loop ``TieredCache`` + the chat and classification paths.

    ``enabled`` is False when ``[caching] enabled = false`` or no layer is configured; then
    every method calls straight through.
    """

    def __init__(self, config: DirectorConfig, *, namespace: str | None = None) -> None:
        caching = config.caching
        self.settings = caching
        self._memory_bytes = int(caching.memory_size_mb * 2**20) if caching.memory_size_mb else None
        self.enabled = caching.enabled and bool(
            self._memory_bytes or caching.redis_url or caching.disk_cache_path
        )
        self.cache_chat = self.enabled and caching.cache_chat
        self._config = config
        self._namespace = namespace
        self._caches: dict[asyncio.AbstractEventLoop, TieredCache] = {}
        self._last: tuple[asyncio.AbstractEventLoop | None, TieredCache | None] = (None, None)
        self._classification_codec: Any = None
        self._stats_source: TieredCache | None = None
        self.redis_backoff_s: float | None = None
        """Seconds between reconnection probes while Redis is down (None: the cache's default).
        Read when a loop's cache is built; tests shorten it."""

    @property
    def namespace(self) -> str:
        """This config's namespace (computed on first use: it hashes the config)."""
        if self._namespace is None:
            self._namespace = config_namespace(self._config)
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
        return TieredCache(
            memory_bytes=self._memory_bytes,
            redis_url=s.redis_url,
            disk_path=s.disk_cache_path,
            ttl_seconds=s.ttl_seconds,
            namespace=self.namespace,
            redis_timeout_s=s.redis_timeout_ms / 1000,
            **({"redis_backoff_s": self.redis_backoff_s} if self.redis_backoff_s is not None else {}),
        )

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

    # ------------------------------------------------------------------------------- chat
    def chat_key(self, messages: Sequence[Any], *, group: str, params: Mapping[str, Any],
                 cache: bool | None) -> str | None:
        """The key to use for this chat call, or None when it must not be cached."""
        if not self.cache_chat or cache is False or params.get("stream"):
            return None
        if cache is not True and params.get("temperature") != 0:
            return None
        return chat_cache_key(messages, group=group, params=params)

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
        import litellm

        response = litellm.ModelResponse(**value)
        route = _route(response)
        route.update({"cache": layer, "group": group})
        if layer is None:
            route["coalesced"] = True  # joined an identical call in flight
        response._hidden_params["cache_hit"] = layer is not None
        return response

    # ------------------------------------------------------------------------ classification
    def attach(self, classifier: Any) -> None:
        """Register the lookup (first pre-LLM step) and the store (post-LLM step) on an
        ``intents.Classifier``; ``ClassifyRequest.cache = False`` bypasses both."""
        if not self.enabled:
            return
        classifier.pre_llm.insert(0, self._lookup_classification)
        classifier.post_llm.append(self._store_classification)

    def _request_key(self, req: Any) -> str | None:
        from director_llm.intents.prompts import history_lines

        return classification_cache_key(
            req.text,
            history=history_lines(req.history, req.history_turns),  # what the model is shown
            tier=req.tier,
            strategy=req.strategy or self._config.llm.default_strategy,
            extra={"flows": req.flows.fingerprint},
        )

    async def _lookup_classification(self, req: Any) -> Any:
        if not req.cache:
            return None
        tiered = self.tiered()
        key = self._request_key(req) if tiered is not None else None
        if key is None:
            return None
        hit = await tiered.get(key, codec=self._codec())  # type: ignore[union-attr]
        if hit is None:
            return None
        value = hit.value
        # Attempts, cost and tokens were zeroed when stored: a hit only says who answered.
        value.route.cache = hit.layer
        value.route.latency_ms = round((time.perf_counter() - req.started) * 1000, 3)
        return value

    async def _store_classification(self, req: Any, result: Any) -> None:
        if not req.cache or result.route.cache is not None:
            return
        tiered = self.tiered()
        key = self._request_key(req) if tiered is not None else None
        if key is not None:
            # What a hit reports: no attempts, nothing spent (done here, on the miss path, so
            # that a hit only sets ``cache`` and ``latency_ms``); the caller's object is untouched.
            route = result.route.model_copy(update=_HIT_ROUTE)
            await tiered.set(key, result.model_copy(update={"route": route}), codec=self._codec())  # type: ignore[union-attr]

    def _codec(self) -> Any:
        if self._classification_codec is None:
            from director_llm.cache.codec import PydanticCodec
            from director_llm.intents.models import IntentClassification

            self._classification_codec = PydanticCodec(IntentClassification)
        return self._classification_codec

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
