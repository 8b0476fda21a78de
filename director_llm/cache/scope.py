"""What an answer depends on: the cache namespace of a config and the key of a chat call.

See ``cache.director`` for the policy (what is cached, under which key, and why) and
``cache.identity`` for the credential identity and keyed digests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from director_llm.cache.identity import (
    SECRET_PARAMS,
    cache_secret,
    credential_identity,
    keyed_digest,
)
from director_llm.cache.keys import fingerprint, make_key, normalize_for_completion

if TYPE_CHECKING:
    from director_llm.config.models import DirectorConfig

__all__ = ["NON_ANSWER_PARAMS", "chat_cache_key", "config_namespace"]

#: Request parameters that never change what the model answers: transport, retries,
#: routing and bookkeeping. Everything else a caller passes is part of the chat key (the
#: credential/endpoint ones, ``identity.SECRET_PARAMS``, as a keyed digest).
NON_ANSWER_PARAMS = frozenset(
    {
        "metadata",
        "timeout",
        "request_timeout",
        "stream_timeout",
        "num_retries",
        "max_retries",
        "fallbacks",
        "context_window_fallbacks",
        "user",
        "litellm_logging_obj",
        "litellm_call_id",
        "litellm_trace_id",
        "mock_testing_fallbacks",
        "stream_options",
        "cache",
        "caching",
        "no-log",
        "proxy_server_request",
    }
)
#: Provider fields that cannot change an answer (left out of the namespace fingerprint; the
#: key *values* the variables hold are in it, through the credential identity).
_PROVIDER_FIELDS_IGNORED = {"api_key_env", "api_key_envs", "timeout_seconds", "budget_per_hour", "budget_per_day"}
_OVERRIDE_FIELDS_IGNORED = {"rpm", "tpm", "max_parallel_requests"}
_CHAT_NS = {"kind": "chat", "v": 2}  # v2: credential parameters are in the key


def _prompt_version() -> str | None:
    # The classifier's prompt text is code, not config: its version must be in the
    # namespace too. Looked up lazily so this module works before (or without) intents.
    try:
        from director_llm.intents import prompts
    except ImportError:
        return None
    return getattr(prompts, "PROMPT_VERSION", None)


def config_namespace(
    config: DirectorConfig,
    *,
    prompt_version: str | None = None,
    environ: Mapping[str, str] | None = None,
    secret: bytes | None = None,
) -> str:
    """The cache namespace of ``config``: a fingerprint of what shapes answers, including the
    credential identity read from ``environ`` (default ``os.environ``) and keyed by
    ``secret`` (default: ``DIRECTOR_CACHE_SECRET`` from that environment; module doc)."""
    if secret is None:
        secret = cache_secret(environ)
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
        "credentials": credential_identity(config, environ=environ, secret=secret),
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
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
            else part
            for part in content
        ]
    return out


def _jsonable_param(value: Any) -> Any:
    # A pydantic model class as response_format: its JSON schema is what reaches the model.
    schema = getattr(value, "model_json_schema", None)
    if isinstance(value, type) and callable(schema):
        return {"pydantic_schema": schema(), "name": value.__name__}
    return value


def chat_cache_key(
    messages: Sequence[Any], *, group: str, params: Mapping[str, Any], secret: bytes | None = None
) -> str | None:
    """Key of a chat completion, or None when a part has no JSON form (call goes uncached).

    Credential and endpoint parameters (``identity.SECRET_PARAMS``) enter as a digest keyed
    by ``secret`` (the cache secret, or None for the public label), never in clear.
    """
    try:
        kept = {}
        for k, v in params.items():
            if k in NON_ANSWER_PARAMS:
                continue
            kept[k] = (
                f"hmac:{keyed_digest(v, secret=secret, purpose='call-credential')}"
                if k in SECRET_PARAMS and v is not None
                else _jsonable_param(v)
            )
        payload = {"messages": [_normalize_message(m) for m in messages], "group": group, "params": kept}
        return make_key(_CHAT_NS, payload)
    except (TypeError, ValueError):
        return None
