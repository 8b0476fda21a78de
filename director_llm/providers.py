"""Provider sections -> deployments: one table of provider kinds, no LiteLLM import.

``build_deployments(config)`` turns every enabled ``provider x model`` into a
``DeploymentInfo`` (the seed's "unified provider interface" as data: provider type, price and
its source, capabilities, tier, base URL, never the key). ``DeploymentInfo.litellm_params()``
produces the dict LiteLLM's Router takes; it is the only place that reads a key value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import urlparse

from director_llm.config.models import TIERS, DirectorConfig, ModelOverride, ProviderConfig
from director_llm.pricing import Price, lookup

ProviderType = Literal["local", "cloud", "hybrid"]
GEMINI_OPENAI_BASE = "https://generativelanguage.googleapis.com/v1beta/openai/"
LOCAL_PROVIDER = "director_local"  # LiteLLM custom provider name of the embedded tier
_STRONG_INPUT_PRICE = 1.0e-6  # >= $1 per 1M input tokens: a "strong" model by default
GUESS_PER_MILLION = (15.0, 75.0)
"""USD per 1M input / output tokens suggested for an unpriced model when nothing in the config
has a price to copy (a high guess, to be replaced by the provider's real price)."""


@dataclass(frozen=True)
class KindSpec:
    """How one provider kind maps onto LiteLLM."""

    prefix: str  # LiteLLM model prefix
    default_key_env: str | None
    default_base_url: str | None
    default_tier: str
    price_keys: tuple[str, ...]  # cost-map keys to try, ``{m}`` = model name


KINDS: dict[str, KindSpec] = {
    "ollama": KindSpec("ollama_chat", None, "http://localhost:11434", "small", ("ollama/{m}",)),
    "openai": KindSpec("openai", "OPENAI_API_KEY", None, "balanced", ("{m}", "openai/{m}")),
    "gemini": KindSpec("gemini", "GEMINI_API_KEY", None, "balanced", ("gemini/{m}", "{m}", "vertex_ai/{m}")),
    "anthropic": KindSpec("anthropic", "ANTHROPIC_API_KEY", None, "strong", ("{m}", "anthropic/{m}")),
    "openai_compatible": KindSpec("openai", None, None, "small", ("{m}",)),
    # A LiteLLM Proxy: models are the proxy's model names; its key (a virtual key or the
    # master key) is optional, like an OpenAI-compatible server's.
    "litellm_proxy": KindSpec("litellm_proxy", None, None, "balanced", ("{m}", "openai/{m}")),
    "local": KindSpec(LOCAL_PROVIDER, None, None, "local", ()),
}


@dataclass(frozen=True)
class DeploymentInfo:
    """One deployment: a model served by a provider section. Holds no secret."""

    name: str  # "<provider section>/<model>", the deployment id everywhere
    provider: str  # section name
    kind: str
    model: str
    litellm_model: str
    provider_type: ProviderType
    tier: str
    base_url: str | None
    api_key_env: str | None
    price: Price
    supports_json_schema: bool | None
    supports_function_calling: bool | None
    timeout_seconds: float
    rpm: int | None = None
    tpm: int | None = None
    max_parallel_requests: int | None = None
    max_tokens: int | None = None
    context_window: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    api_key_envs: tuple[str, ...] = ()
    """Every variable of the provider's key pool (``api_key_envs``), or the one ``api_key_env``
    (then ``api_key_env`` is its first name). Names only: values are read by the key pool."""

    def __post_init__(self) -> None:
        if self.api_key_env and not self.api_key_envs:
            object.__setattr__(self, "api_key_envs", (self.api_key_env,))

    @property
    def cost_per_token(self) -> Price:
        """Input and output price per token, with where it came from."""
        return self.price

    @property
    def needs_key(self) -> bool:
        return bool(self.api_key_envs)

    def key_statuses(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """``{variable name: "set" | "missing"}`` for every key of the pool (never a value)."""
        env = os.environ if environ is None else environ
        return {name: "set" if env.get(name) else "missing" for name in self.api_key_envs}

    def key_status(self, environ: Mapping[str, str] | None = None) -> str:
        """``set`` (at least one key of the pool is set), ``missing`` or ``not needed`` (the
        value itself is never exposed)."""
        if not self.needs_key:
            return "not needed"
        return "set" if "set" in self.key_statuses(environ).values() else "missing"

    def litellm_params(self, environ: Mapping[str, str] | None = None, *, with_key: bool = True) -> dict[str, Any]:
        """The ``litellm_params`` of this deployment; with ``with_key`` the key (the first set
        one of the pool) is read from the environment now. The engine passes ``with_key=False``
        and sends the key its key pool chose for the attempt."""
        env = os.environ if environ is None else environ
        params: dict[str, Any] = {"model": self.litellm_model, "timeout": self.timeout_seconds}
        if self.base_url:
            params["api_base"] = self.base_url
        if self.api_key_envs:
            key = next((env[n] for n in self.api_key_envs if env.get(n)), None)
            if key and with_key:
                params["api_key"] = key
        elif self.kind in ("openai_compatible", "litellm_proxy"):
            params["api_key"] = "not-needed"  # OpenAI clients insist on some key
        if self.price.known:
            params["input_cost_per_token"] = self.price.input_per_token
            params["output_cost_per_token"] = self.price.output_per_token
        else:  # LiteLLM needs a price or spends ms per call in cost diagnostics; 0 is flagged by check-config
            params["input_cost_per_token"] = 0.0
            params["output_cost_per_token"] = 0.0
        for k in ("rpm", "tpm", "max_tokens"):
            v = getattr(self, k)
            if v is not None:
                params[k] = v
        return params

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly description (for ``check-config --json`` and ``director.providers``)."""
        pin, pout = self.price.per_million()
        return {
            "name": self.name,
            "provider": self.provider,
            "kind": self.kind,
            "model": self.model,
            "litellm_model": self.litellm_model,
            "provider_type": self.provider_type,
            "tier": self.tier,
            "base_url": self.base_url,
            "api_key_env": self.api_key_env,
            "api_key_envs": list(self.api_key_envs),
            "key_status": self.key_status(),
            "keys": self.key_statuses(),
            "price_per_million": {"input": pin, "output": pout, "source": self.price.source},
            "supports_json_schema": self.supports_json_schema,
            "supports_function_calling": self.supports_function_calling,
            "timeout_seconds": self.timeout_seconds,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "max_parallel_requests": self.max_parallel_requests,
            "max_tokens": self.max_tokens,
            "context_window": self.context_window,
        }


def _is_loopback(url: str | None) -> bool:
    host = (urlparse(url).hostname or "") if url else ""
    return host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")


def _provider_type(p: ProviderConfig) -> ProviderType:
    if p.kind in ("ollama", "local"):
        return "local"
    if p.kind == "gemini" and p.use_openai_compatibility:
        return "hybrid"
    if p.kind == "openai_compatible":
        return "local" if _is_loopback(p.base_url) else "cloud"
    return "cloud"


def _price(
    p: ProviderConfig, model: str, ov: ModelOverride, ptype: ProviderType
) -> tuple[Price, dict[str, Any] | None]:
    found = lookup([k.format(m=model) for k in KINDS[p.kind].price_keys])
    entry = found[1] if found else None
    if ov.input_price_per_million is not None or ov.output_price_per_million is not None:
        pin = ov.input_price_per_million
        pout = ov.output_price_per_million
        base_in = entry.get("input_cost_per_token") if entry else None
        base_out = entry.get("output_cost_per_token") if entry else None
        return Price(
            pin / 1e6 if pin is not None else base_in, pout / 1e6 if pout is not None else base_out, "config"
        ), entry
    if p.kind in ("ollama", "local") or (p.kind == "openai_compatible" and ptype == "local"):
        return Price(0.0, 0.0, "local (free)"), entry
    if found is not None and entry is not None and entry.get("input_cost_per_token") is not None:
        return Price(
            entry.get("input_cost_per_token"), entry.get("output_cost_per_token"), f"litellm:{found[0]}"
        ), entry
    return Price(None, None, "unknown"), entry


def _tier(p: ProviderConfig, ov: ModelOverride, price: Price) -> str:
    if ov.tier:
        return ov.tier
    if p.tier:
        return p.tier
    spec = KINDS[p.kind]
    if p.kind in ("openai", "gemini", "anthropic", "litellm_proxy") and price.input_per_token is not None:
        return "strong" if price.input_per_token >= _STRONG_INPUT_PRICE else "balanced"
    return spec.default_tier


def _base_url(p: ProviderConfig) -> str | None:
    url: str | None
    if p.base_url:
        url = p.base_url
    elif p.kind == "gemini" and p.use_openai_compatibility:
        url = GEMINI_OPENAI_BASE
    else:
        url = KINDS[p.kind].default_base_url
    return url


def deployments_for(name: str, p: ProviderConfig, config: DirectorConfig) -> list[DeploymentInfo]:
    """The deployments of one provider section (empty when disabled)."""
    if not p.enabled:
        return []
    spec = KINDS[p.kind]
    models = p.models or (["intent"] if p.kind == "local" else [])
    ptype = _provider_type(p)
    out = []
    for model in models:
        ov = p.overrides.get(model, ModelOverride())
        price, entry = _price(p, model, ov, ptype)
        prefix = "openai" if (p.kind == "gemini" and p.use_openai_compatibility) else spec.prefix
        supports_schema = ov.supports_json_schema
        if supports_schema is None and entry is not None and p.kind != "ollama":
            supports_schema = bool(entry.get("supports_response_schema"))
        if p.kind == "local":
            supports_schema = False
        supports_tools = ov.supports_function_calling
        if supports_tools is None and entry is not None:
            supports_tools = bool(entry.get("supports_function_calling"))
        key_envs = tuple(p.key_envs or ([spec.default_key_env] if spec.default_key_env else []))
        if p.kind in ("ollama", "local"):
            key_envs = tuple(p.key_envs or ())  # local servers need no key unless the user says so
        out.append(
            DeploymentInfo(
                name=f"{name}/{model}",
                provider=name,
                kind=p.kind,
                model=model,
                litellm_model=ov.litellm_model or f"{prefix}/{model}",
                provider_type=ptype,
                tier=_tier(p, ov, price),
                base_url=_base_url(p),
                api_key_env=key_envs[0] if key_envs else None,
                api_key_envs=key_envs,
                price=price,
                supports_json_schema=supports_schema,
                supports_function_calling=supports_tools,
                timeout_seconds=p.timeout_seconds or config.llm.attempt_timeout_seconds,
                rpm=ov.rpm,
                tpm=ov.tpm,
                max_parallel_requests=ov.max_parallel_requests,
                max_tokens=ov.max_tokens,
                context_window=ov.context_window or (entry or {}).get("max_input_tokens"),
            )
        )
    return out


def build_deployments(config: DirectorConfig) -> list[DeploymentInfo]:
    """Every deployment of every enabled provider, in config order (unknown prices under a
    budget replaced as ``budgeted_prices`` says)."""
    out: list[DeploymentInfo] = []
    for name, p in config.providers.items():
        out.extend(deployments_for(name, p, config))
    return budgeted_prices(config, out)


def under_budget(config: DirectorConfig, provider: str) -> bool:
    """Whether any budget window (global, or ``provider``'s own) limits calls to ``provider``."""
    p = config.providers.get(provider)
    return (
        config.llm.budget_per_hour is not None
        or config.llm.budget_per_day is not None
        or (p is not None and (p.budget_per_hour is not None or p.budget_per_day is not None))
    )


def most_expensive_price(deployments: list[DeploymentInfo]) -> tuple[float, float] | None:
    """The highest input and the highest output price per token among the priced deployments
    (each side on its own), or None when no deployment has a non-zero price."""
    priced = [
        d.price
        for d in deployments
        if d.price.known and not d.price.assumed and (d.price.input_per_token or d.price.output_per_token)
    ]
    if not priced:
        return None
    return max(p.input_per_token or 0.0 for p in priced), max(p.output_per_token or 0.0 for p in priced)


def budgeted_prices(config: DirectorConfig, deployments: list[DeploymentInfo]) -> list[DeploymentInfo]:
    """Unknown prices are never free: a deployment under a budget limit whose price (or one side
    of it) is unknown is priced at the most expensive input / output price configured, with
    ``Price.assumed`` set. When nothing has a price it keeps its unknown price, and the budget
    refuses to call it (``budget.guard``)."""
    unknown = [d for d in deployments if not d.price.known and under_budget(config, d.provider)]
    top = most_expensive_price(deployments) if unknown else None
    if top is None:
        return deployments
    pin, pout = top
    assumed = {}
    for d in unknown:
        i = d.price.input_per_token if d.price.input_per_token is not None else pin
        o = d.price.output_per_token if d.price.output_per_token is not None else pout
        source = f"unknown: budgeted at the most expensive configured (${i * 1e6:g} / ${o * 1e6:g} per 1M)"
        assumed[d.name] = replace(d, price=Price(i, o, source, assumed=True))
    return [assumed.get(d.name, d) for d in deployments]


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def override_lines(
    config: DirectorConfig | None,
    info: DeploymentInfo,
    deployments: list[DeploymentInfo] = (),  # type: ignore[assignment]
) -> str:
    """The config lines that give ``info`` a price, ready to paste into the config (TOML): the
    price it is budgeted at (the most expensive configured) or, when nothing has a price, a high
    guess. Only the missing prices; the table header too unless the file already has it."""
    top = most_expensive_price(list(deployments))
    pin, pout = (top[0] * 1e6, top[1] * 1e6) if top else GUESS_PER_MILLION
    note = (
        "budgeted at the most expensive configured price until you set this model's real one"
        if top
        else "a high guess: set this model's real price"
    )
    p = config.providers.get(info.provider) if config is not None else None
    ov = p.overrides.get(info.model) if p is not None else None
    header = f"[providers.{_toml_key(info.provider)}.overrides.{_toml_key(info.model)}]"
    lines = [f"# add to the existing {header} table:" if ov is not None else header]
    lines.append(f"# USD per 1M tokens; {note}")
    if ov is None or ov.input_price_per_million is None:
        lines.append(f"input_price_per_million = {round(pin, 6):g}")
    if ov is None or ov.output_price_per_million is None:
        lines.append(f"output_price_per_million = {round(pout, 6):g}")
    return "\n".join(lines)


def tiers_in_use(deployments: list[DeploymentInfo]) -> list[str]:
    """Tiers that have at least one deployment, cheapest first."""
    present = {d.tier for d in deployments}
    return [t for t in TIERS if t in present]
