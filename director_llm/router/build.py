"""The only module that builds a ``litellm.Router``, and the bridge for its callbacks.

Model groups: one per tier (``small``, ``balanced``, ``strong``) and one per deployment name
(``openai/gpt-4o``), so a caller can ask for a tier or pin a deployment, and explicit fallback
chains can name either. Every entry carries ``model_info.director_deployment`` (our stable
name) and ``model_info.director_instance`` (which ``Director`` built it), so the process-wide
LiteLLM callbacks can hand each event to the right Director even for calls made directly
through ``director.router``.

LiteLLM's callbacks are global (``litellm.callbacks``); ``_Dispatcher`` is registered once per
process and forwards to the ``RouterHooks`` of the owning Director (held weakly).
"""

from __future__ import annotations

import itertools
import logging
import os
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from director_llm.config.models import DirectorConfig
from director_llm.config.semantics import LLM_TIERS, resolve_fallbacks
from director_llm.providers import DeploymentInfo

if TYPE_CHECKING:
    import litellm

log = logging.getLogger("director_llm.router.build")
_instance_ids = itertools.count(1)


class RouterHooks(Protocol):
    """What a Director plugs into the Router's callbacks. Every method must be cheap and
    must never raise except to deliberately reject a deployment (``before_attempt``)."""

    async def filter_deployments(self, group: str, deployments: list[dict], request_kwargs: dict) -> list[dict]: ...
    async def before_attempt(self, kwargs: dict) -> None: ...
    async def on_success(self, kwargs: dict, response: Any, start_time: Any, end_time: Any) -> None: ...
    async def on_failure(self, kwargs: dict, response: Any, start_time: Any, end_time: Any) -> None: ...
    async def allow_fallback(self, group: str, request_kwargs: Any) -> bool: ...


def import_litellm() -> Any:
    """Import LiteLLM quietly and offline (its cost map from the package, not the network)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_TELEMETRY", "False")
    os.environ.setdefault("LITELLM_LOG", "CRITICAL")
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    if not os.environ.get("DIRECTOR_DEBUG_LITELLM"):
        # LiteLLM logs every failed attempt at ERROR with the provider's message; we report
        # failures ourselves, typed and redacted, so its loggers stay quiet.
        for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    _Dispatcher.install(litellm)
    return litellm


@dataclass
class BuiltRouter:
    router: litellm.Router
    instance_id: str
    groups: dict[str, list[str]]  # group -> deployment names
    fallbacks: dict[str, list[str]]
    deployments: dict[str, DeploymentInfo]  # name -> info (those given to the Router)


# Router deployment id -> (Director instance, deployment name). Ids are ours, but names may
# contain any character (``ollama/llama3.2:1b``), so they are looked up, never parsed.
_BY_ID: dict[str, tuple[str, str]] = {}


def deployment_for_id(model_id: object) -> tuple[str, str] | None:
    """(instance, deployment name) of a Router deployment id (``response._hidden_params["model_id"]``)."""
    return _BY_ID.get(str(model_id)) if model_id else None


def answered_by(response: Any) -> str | None:
    """The deployment name that produced a Router response."""
    found = deployment_for_id((getattr(response, "_hidden_params", None) or {}).get("model_id"))
    return found[1] if found else None


def model_list(deployments: list[DeploymentInfo], instance_id: str) -> list[dict[str, Any]]:
    """Router ``model_list``: each deployment in its tier group and in its own group."""
    entries = []
    for d in deployments:
        params = d.litellm_params()
        base_info = {"director_deployment": d.name, "director_instance": instance_id, "director_tier": d.tier}
        if d.context_window:
            base_info["max_input_tokens"] = d.context_window
        for group in (d.tier, d.name):
            _BY_ID[f"{instance_id}:{group}:{d.name}"] = (instance_id, d.name)
            entries.append({
                "model_name": group,
                "litellm_params": dict(params),
                "model_info": {**base_info, "id": f"{instance_id}:{group}:{d.name}"},
            })
    return entries


def build_router(config: DirectorConfig, deployments: list[DeploymentInfo], hooks: RouterHooks) -> BuiltRouter:
    """Build the Router for ``deployments`` (those usable now: keys present, not local)."""
    litellm = import_litellm()
    instance_id = f"d{next(_instance_ids)}-{os.getpid()}"
    usable = [d for d in deployments if d.tier in LLM_TIERS]
    # The embedded local tier joins only a Router that has LLM tiers (a local-only config
    # never builds one): in group "local" and its own, reached by explicit pins and fallback
    # chains; selection only ever picks LLM tiers (see director_llm.local.provider).
    local = [d for d in deployments if d.kind == "local"] if usable else []
    if local:
        from director_llm.local.provider import install

        install()
    usable = usable + local
    groups: dict[str, list[str]] = {}
    for d in usable:
        groups.setdefault(d.tier, []).append(d.name)
        groups[d.name] = [d.name]
    tiers = [t for t in LLM_TIERS if t in groups]
    graph = resolve_fallbacks(config, [d.name for d in usable], tiers)
    # Drop chains whose members are not usable right now (e.g. a missing key).
    fallbacks = {k: [t for t in v if t in groups] for k, v in graph.items() if k in groups}
    fallbacks = {k: v for k, v in fallbacks.items() if v}
    _Dispatcher.register(instance_id, hooks)
    llm = config.llm
    router = litellm.Router(
        model_list=model_list(usable, instance_id),
        fallbacks=[{k: v} for k, v in fallbacks.items()],
        num_retries=llm.num_retries,
        timeout=llm.attempt_timeout_seconds,
        stream_timeout=llm.first_token_timeout_seconds,
        fallback_budget_check=_Dispatcher.fallback_check,
        routing_strategy="simple-shuffle",
        # Our breaker (director_llm.resilience.breaker) decides which deployments are skipped: LiteLLM's
        # cooldowns are TTL-only, exempt single-deployment groups, ignore connection errors,
        # and would also hide a deployment from our half-open trial.
        disable_cooldowns=True,
    ) if usable else None
    return BuiltRouter(router=router, instance_id=instance_id, groups=groups, fallbacks=fallbacks,
                       deployments={d.name: d for d in usable})


def director_meta(kwargs: dict) -> dict:
    """Our per-request metadata from LiteLLM callback kwargs (or request kwargs)."""
    meta = kwargs.get("metadata")
    if not isinstance(meta, dict) or "director" not in meta:
        meta = (kwargs.get("litellm_params") or {}).get("metadata") or {}
    d = meta.get("director") if isinstance(meta, dict) else None
    return d if isinstance(d, dict) else {}


def deployment_of(kwargs: dict) -> tuple[str | None, str | None]:
    """(instance id, deployment name) of the attempt described by callback kwargs."""
    info = (kwargs.get("litellm_params") or {}).get("model_info") or kwargs.get("model_info") or {}
    if not info:
        slo = kwargs.get("standard_logging_object") or {}
        info = (slo.get("model_map_information") or {}).get("model_map_value") or {}
        found = deployment_for_id(slo.get("model_id"))
        if found:
            return found
    return info.get("director_instance"), info.get("director_deployment")


class _Dispatcher:
    """The one process-wide LiteLLM callback, forwarding to each Director's hooks."""

    _hooks: weakref.WeakValueDictionary[str, RouterHooks] = weakref.WeakValueDictionary()
    _logger: Any = None

    @classmethod
    def register(cls, instance_id: str, hooks: RouterHooks) -> None:
        cls._hooks[instance_id] = hooks

    @classmethod
    def unregister(cls, instance_id: str) -> None:
        cls._hooks.pop(instance_id, None)

    @classmethod
    def hooks_for(cls, instance_id: str | None) -> RouterHooks | None:
        return cls._hooks.get(instance_id) if instance_id else None

    @classmethod
    def install(cls, litellm: Any) -> None:
        if cls._logger is not None and cls._logger in litellm.callbacks:
            return
        from litellm.integrations.custom_logger import CustomLogger

        class DirectorCallbacks(CustomLogger):
            async def async_filter_deployments(self, model, healthy_deployments, messages,
                                               request_kwargs=None, parent_otel_span=None):
                if not healthy_deployments:
                    return healthy_deployments
                inst = (healthy_deployments[0].get("model_info") or {}).get("director_instance")
                hooks = cls.hooks_for(inst)
                if hooks is None:
                    return healthy_deployments
                return await hooks.filter_deployments(model, healthy_deployments, request_kwargs or {})

            async def async_pre_call_deployment_hook(self, kwargs, call_type):
                inst, _ = deployment_of(kwargs)
                hooks = cls.hooks_for(inst)
                if hooks is not None:
                    await hooks.before_attempt(kwargs)
                return None

            async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
                hooks = cls.hooks_for(deployment_of(kwargs)[0])
                if hooks is not None:
                    await hooks.on_success(kwargs, response_obj, start_time, end_time)

            async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
                hooks = cls.hooks_for(deployment_of(kwargs)[0])
                if hooks is not None:
                    await hooks.on_failure(kwargs, response_obj, start_time, end_time)

        cls._logger = DirectorCallbacks()
        litellm.callbacks.append(cls._logger)

    @classmethod
    async def fallback_check(cls, *, model: str, request_kwargs: Any, ctx: Any = None) -> bool:
        meta = director_meta(dict(request_kwargs or {}))
        hooks = cls.hooks_for(meta.get("instance"))
        if hooks is None:
            return True
        return await hooks.allow_fallback(model, request_kwargs)
