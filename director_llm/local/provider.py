"""The local tier as a LiteLLM custom provider (``director_local/<model>``), cost 0.

It answers the classification JSON (``{"flow", "confidence", "reasoning", "entities"}``)
for the last user message, so the embedded classifier can sit in a Router fallback chain
(``[llm.fallbacks] strong = ["local/intent"]``: the last resort when every cloud provider
is down). The Director does not use it on the hot path: the Router adds ~4-7 ms to a ~1 ms
prediction, so the cascade calls the model directly (``director_llm.cascade``).

LiteLLM's ``custom_provider_map`` is process-wide, so one handler serves every Director: a
request finds its Director's ``LocalTier`` through the deployment's
``model_info.director_instance``. Importing this module imports LiteLLM; only
``routing.import_litellm`` does.
"""

from __future__ import annotations

import json
import re
import time
import weakref
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import litellm
from litellm import CustomLLM
from litellm.types.utils import GenericStreamingChunk

from director_llm.providers import LOCAL_PROVIDER

if TYPE_CHECKING:
    from director_llm.local_tier import LocalTier

__all__ = ["LocalIntentLLM", "classification_json", "install", "register_tier", "user_text"]

_TIERS: weakref.WeakValueDictionary[str, LocalTier] = weakref.WeakValueDictionary()
_USER_BLOCK = re.compile(r"<user_message>\n?(.*?)\n?</user_message>", re.DOTALL)
_STREAM_PIECE = 24  # characters per streamed chunk (a UI sees the flow arrive early)


class LocalProviderError(Exception):
    """No local tier is registered for the Router that called (LiteLLM wraps it)."""


def register_tier(instance_id: str, tier: LocalTier) -> None:
    """Route ``director_local`` calls of the Router ``instance_id`` to ``tier``."""
    _TIERS[instance_id] = tier


def user_text(messages: list[dict[str, Any]]) -> str:
    """The text to classify: the last user message, unwrapped from the classifier's prompt
    (``<user_message>...</user_message>``) when it is one."""
    for m in reversed(messages or []):
        if isinstance(m, dict) and m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):
                content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            text = str(content or "")
            found = _USER_BLOCK.findall(text)
            return found[-1].strip() if found else text.strip()
    return ""


def classification_json(tier: LocalTier, text: str) -> str:
    """The classification JSON the LLM tiers are asked for, answered by the local model."""
    if not text:
        flow, conf, why = tier.fallback_flow, 0.0, "local classifier: empty message"
    else:
        pred = tier.predict(text)
        flow, conf = tier.flow_of(pred), float(pred.confidence)
        why = "local classifier: " + ", ".join(f"{i} {p:.2f}" for i, p in pred.ranking[:3])
    return json.dumps({"flow": flow, "confidence": round(conf, 4), "reasoning": why, "entities": {}},
                      ensure_ascii=False)


def _tier_for(kwargs: dict[str, Any]) -> LocalTier:
    params = kwargs.get("litellm_params") or {}
    info = params.get("model_info") or (params.get("metadata") or {}).get("model_info") or {}
    tier = _TIERS.get(str(info.get("director_instance") or ""))
    if tier is None:
        raise LocalProviderError("no local tier is registered for this Router (build it through director_llm)")
    return tier


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)  # informative only: the price is 0


class LocalIntentLLM(CustomLLM):
    """``director_local/*``: the embedded intent classifier behind LiteLLM's interface."""

    async def acompletion(self, model: str, messages: list[dict[str, Any]], api_base: Any, custom_prompt_dict: Any,
                          model_response: Any, *args: Any, **kwargs: Any) -> Any:
        text = user_text(messages)
        answer = classification_json(_tier_for(kwargs), text)
        model_response.choices[0].message.content = answer
        model_response.choices[0].finish_reason = "stop"
        model_response.model = model
        model_response.created = int(time.time())
        pt, ct = _tokens(text), _tokens(answer)
        model_response.usage = litellm.Usage(prompt_tokens=pt, completion_tokens=ct, total_tokens=pt + ct)
        return model_response

    async def astreaming(self, model: str, messages: list[dict[str, Any]], api_base: Any, custom_prompt_dict: Any,
                         model_response: Any, *args: Any, **kwargs: Any) -> AsyncIterator[GenericStreamingChunk]:
        text = user_text(messages)
        answer = classification_json(_tier_for(kwargs), text)
        for i in range(0, len(answer), _STREAM_PIECE):
            yield GenericStreamingChunk(text=answer[i:i + _STREAM_PIECE], is_finished=False, finish_reason="",
                                        usage=None, index=0, tool_use=None)
        pt, ct = _tokens(text), _tokens(answer)
        yield GenericStreamingChunk(text="", is_finished=True, finish_reason="stop", index=0, tool_use=None,
                                    usage={"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct})


_HANDLER: LocalIntentLLM | None = None


def install() -> None:
    """Add the handler to ``litellm.custom_provider_map`` once per process (before a Router
    with a ``director_local/*`` deployment is built)."""
    global _HANDLER
    if _HANDLER is None:
        _HANDLER = LocalIntentLLM()
    current = list(getattr(litellm, "custom_provider_map", None) or [])
    if not any(e.get("provider") == LOCAL_PROVIDER for e in current):
        current.append({"provider": LOCAL_PROVIDER, "custom_handler": _HANDLER})
        litellm.custom_provider_map = current
        # LiteLLM reads the map when a provider is first resolved; register it now too.
        from litellm.utils import custom_llm_setup

        custom_llm_setup()
