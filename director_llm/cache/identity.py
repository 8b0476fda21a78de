"""Whose answer is it: credential identity and keyed digests for cache keys and entries.

Two Directors that call the same model with *different credentials* must never share an
answer: tenant B must not read tenant A's private answer from a shared Redis, and a key the
provider would reject must not be served from the cache. So the cache namespace includes
an identity of the credentials every configured provider uses, and a chat key includes a
digest of the per-call parameters that select a credential or an endpoint (``api_key``,
``api_base``, ``extra_headers``...).

Neither ever holds a key itself. Both are HMAC-SHA256 digests:

* with ``DIRECTOR_CACHE_SECRET`` set (any string; share it between the processes that
  share a cache), the HMAC key is derived from that secret: a digest reveals nothing about
  the credential to someone who can read the cache but not the environment. The same
  secret also signs every entry the cache writes (``cache.codec``);
* without it, the HMAC key is a fixed, public domain-separation label (``_DOMAIN_LABEL``).
  The digest is then a plain one-way hash of the credential: nobody recovers a key from a
  cache, and API keys are long random strings, so guessing one from its digest is out of
  reach. But someone who already holds a candidate key can check whether a namespace
  belongs to it; set the secret where cache readers must not learn even that.

What the credential identity covers (``credential_identity``): for each enabled provider,
the *set of values* of the environment variables named by its ``api_key_env`` (or the
kind's default, e.g. ``OPENAI_API_KEY``) or by a key pool ``api_key_envs = [...]``, plus the
endpoint variables LiteLLM reads when the config sets no ``base_url`` (``OPENAI_BASE_URL``...).
Values, not variable names: two configs naming different variables that hold the same key
share answers (same account); the same variable holding different keys does not.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from director_llm.config.models import DirectorConfig, ProviderConfig

__all__ = [
    "SECRET_ENV",
    "SECRET_PARAMS",
    "cache_secret",
    "credential_identity",
    "keyed_digest",
    "signing_key",
]

SECRET_ENV = "DIRECTOR_CACHE_SECRET"
"""Environment variable holding the cache secret (keys the digests, signs the entries)."""
_DOMAIN_LABEL = b"director-llm/cache/v1"
#: Per-call parameters that carry a credential or select an endpoint/account. They are part
#: of a chat key as a keyed digest, never as plain text.
SECRET_PARAMS = frozenset(
    {
        "api_key",
        "api_base",
        "base_url",
        "extra_headers",
        "headers",
        "organization",
        "api_version",
        "azure_ad_token",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "aws_profile_name",
        "vertex_credentials",
        "vertex_project",
        "client_secret",
        "token",
    }
)
#: Endpoint variables LiteLLM reads for a provider kind when ``base_url`` is not set.
_ENDPOINT_ENVS: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_BASE_URL", "OPENAI_API_BASE", "OPENAI_ORGANIZATION"),
    "anthropic": ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_BASE"),
    "gemini": ("GEMINI_API_BASE",),
}


def cache_secret(environ: Mapping[str, str] | None = None) -> bytes | None:
    """The value of ``DIRECTOR_CACHE_SECRET`` as bytes, or None when unset or empty."""
    value = (os.environ if environ is None else environ).get(SECRET_ENV)
    return value.encode("utf-8") if value else None


def _subkey(secret: bytes | None, purpose: str) -> bytes:
    # One secret, independent keys per use (credential digests vs entry signatures).
    root = secret if secret is not None else _DOMAIN_LABEL
    return hmac.new(root, b"director-llm/" + purpose.encode(), hashlib.sha256).digest()


def signing_key(secret: bytes | None) -> bytes | None:
    """The key that signs cache entries, derived from the secret; None without a secret."""
    return _subkey(secret, "entry-signature") if secret is not None else None


def keyed_digest(value: Any, *, secret: bytes | None, purpose: str = "credential") -> str:
    """Hex HMAC-SHA256 of ``value`` (str, bytes or anything JSON-serializable; dict keys
    sorted), keyed by the secret or the public label (module doc). ``TypeError`` when
    ``value`` has no JSON form."""
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        data = value.encode("utf-8")
    else:
        data = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
            "utf-8"
        )
    return hmac.new(_subkey(secret, purpose), data, hashlib.sha256).hexdigest()


def provider_key_envs(section: ProviderConfig) -> list[str]:
    """Environment variables a provider section takes its key(s) from (pool or single)."""
    from director_llm.config.secrets import key_env_names

    return key_env_names(section)


def _values(names: Iterable[str], env: Mapping[str, str]) -> list[str]:
    return sorted({env[name] for name in names if env.get(name)})


def credential_identity(
    config: DirectorConfig, *, environ: Mapping[str, str] | None = None, secret: bytes | None = None
) -> str:
    """Keyed digest of the credentials (and environment-chosen endpoints) of every enabled
    provider of ``config``, read from ``environ`` (default ``os.environ``) now."""
    env = os.environ if environ is None else environ
    material: dict[str, Any] = {}
    for name, section in config.providers.items():
        if not section.enabled:
            continue
        entry: dict[str, Any] = {"keys": _values(provider_key_envs(section), env)}
        if not section.base_url:
            entry["endpoint"] = {n: env[n] for n in _ENDPOINT_ENVS.get(section.kind, ()) if env.get(n)}
        material[name] = entry
    return keyed_digest(material, secret=secret, purpose="credentials")
