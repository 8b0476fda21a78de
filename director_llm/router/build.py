"""``director.router``: a ``litellm.Router`` built from the same deployments and chains.

The engine does not use it (it dispatches each attempt itself, see ``router.dispatch``).
It is there for code that wants LiteLLM's own Router from a director config: one model group
per tier (``small``, ``balanced``, ``strong``) and one per deployment name
(``openai/gpt-4o``), the config's fallback chains, its timeouts and retries. Calls made
directly through it are LiteLLM's: Director's budget, breaker, cache and metrics do not
see them (use ``director.acompletion`` for those). The local classifier is not in it (it
answers classifications, not chats).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from director_llm.config.models import DirectorConfig
from director_llm.config.secrets import key_value_problem
from director_llm.providers import DeploymentInfo
from director_llm.router.dispatch import import_litellm
from director_llm.selection.topology import Topology

if TYPE_CHECKING:
    import litellm

__all__ = ["BuiltRouter", "answered_by", "build_router", "deployment_for_id", "import_litellm", "model_list"]

_instance_ids = itertools.count(1)


@dataclass
class BuiltRouter:
    router: litellm.Router | None
    instance_id: str
    groups: dict[str, list[str]]  # group -> deployment names
    fallbacks: dict[str, list[str]]
    deployments: dict[str, DeploymentInfo]  # name -> info (those given to the Router)


# Router deployment id -> deployment name. Names may contain any character
# (``ollama/llama3.2:1b``), so they are looked up, never parsed.
_BY_ID: dict[str, str] = {}


def deployment_for_id(model_id: object) -> str | None:
    """The deployment name of a Router deployment id (``response._hidden_params["model_id"]``)."""
    return _BY_ID.get(str(model_id)) if model_id else None


def answered_by(response: Any) -> str | None:
    """The deployment name that produced a Router response."""
    return deployment_for_id((getattr(response, "_hidden_params", None) or {}).get("model_id"))


def model_list(deployments: list[DeploymentInfo], instance_id: str) -> list[dict[str, Any]]:
    """Router ``model_list``: each deployment in its tier group and in its own group."""
    entries = []
    for d in deployments:
        params = d.litellm_params()
        if params.get("api_key") and key_value_problem(d.api_key_env or "", params["api_key"]):
            params.pop("api_key")  # a URL or DSN is never sent as a key (config.secrets)
        base_info: dict[str, Any] = {"director_deployment": d.name, "director_tier": d.tier}
        if d.context_window:
            base_info["max_input_tokens"] = d.context_window
        for group in (d.tier, d.name):
            model_id = f"{instance_id}:{group}:{d.name}"
            _BY_ID[model_id] = d.name
            entries.append(
                {"model_name": group, "litellm_params": dict(params), "model_info": {**base_info, "id": model_id}}
            )
    return entries


def build_router(config: DirectorConfig, topology: Topology) -> BuiltRouter:
    """A LiteLLM Router over the topology's LLM deployments (None when there are none)."""
    usable = [d for d in topology.deployments.values() if d.kind != "local"]
    instance_id = f"d{next(_instance_ids)}-{os.getpid()}"
    groups = {
        g: list(m) for g, m in topology.groups.items() if not all(topology.deployments[n].kind == "local" for n in m)
    }
    fallbacks = {g: [t for t in chain if t in groups] for g, chain in topology.fallbacks.items() if g in groups}
    fallbacks = {g: chain for g, chain in fallbacks.items() if chain}
    router = None
    if usable:
        litellm = import_litellm()
        llm = config.llm
        router = litellm.Router(
            model_list=model_list(usable, instance_id),
            fallbacks=[{k: v} for k, v in fallbacks.items()],
            num_retries=llm.num_retries,
            timeout=llm.attempt_timeout_seconds,
            stream_timeout=llm.first_token_timeout_seconds,
            routing_strategy="simple-shuffle",
        )
    return BuiltRouter(
        router=router,
        instance_id=instance_id,
        groups=groups,
        fallbacks=fallbacks,
        deployments={d.name: d for d in usable},
    )
