"""A config's secrets, in one place: what they are, and keeping them out of every output.

The rule: **every configured secret value is redacted wherever text leaves the process**
(errors, their causes, log records, ``--json``, ``check-config``), whatever the name of the
variable holding it. A config's secrets (``config_secrets``) are:

* the values of every environment variable a provider takes a key from: ``api_key_env``,
  the key pool ``api_key_envs`` and the kind's default (``OPENAI_API_KEY``...), for enabled
  and disabled providers alike (``key_env_names``);
* in every URL of the config (``base_url``, ``redis_url``, ``state_redis_url``, any other):
  the userinfo password (or a lone user name, ``https://TOKEN@host``) and the values of
  secret-looking query parameters (``key``, ``api_key``, ``token``, ``sig``, ``password``...);
* any value that looks like a key placed in a name field (``api_key_env = "sk-..."``):
  ``check-config`` refuses it without echoing it (``name_field_problems``).

A live ``Director`` holds a ``SecretScope``: its secrets are registered with
``errors.redact`` (so every ``DirectorError`` message and every redacted upstream text loses
them) and a ``RedactingFilter`` is installed on the package's loggers and LiteLLM's
(``LOG_NAMES``) until ``aclose``. Values shorter than 6 characters are not replaced in free
text (they would eat ordinary words); URL credentials are removed by pattern whatever their
length.

A key variable holding a URL or DSN (``api_key_env = "DATABASE_URL"``) is never sent: it is
a located ``check-config`` warning, and at call time the attempt is refused before any HTTP
(``key_value_problem``; ``docs/security.md``).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pydantic import BaseModel

from director_llm.config.models import DirectorConfig, ProviderConfig
from director_llm.config.problems import Problem
from director_llm.config.urls import url_secrets
from director_llm.errors import redact, register_secrets, unregister_secrets

__all__ = [
    "LOG_NAMES",
    "RedactingFilter",
    "SecretScope",
    "config_secrets",
    "config_urls",
    "key_env_names",
    "key_value_problem",
    "looks_like_key",
    "name_field_problems",
    "redact_data",
]

#: Loggers the filter is installed on, besides every ``director_llm.*`` logger that exists.
LOG_NAMES = ("director_llm", "LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "httpx", "httpcore", "openai")

# Prefixes of real API keys and tokens (OpenAI, Anthropic, Google, xAI, Groq, Hugging Face,
# GitHub, GitLab, Slack, AWS, Google OAuth, JWTs).
_KEY_PREFIX = re.compile(
    r"^(?:sk|pk|rk)[-_][A-Za-z0-9]|^sk-ant-|^AIza[0-9A-Za-z_\-]{10}|^xai-|^gsk_|^hf_[A-Za-z]|^gh[pousr]_|"
    r"^github_pat_|^glpat-|^xox[abpr]-|^AKIA[0-9A-Z]{12}|^ya29\.|^eyJ[A-Za-z0-9_\-]{8,}\."
)
_URLISH = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://|^[^\s:/@]+:[^\s@]*@[^\s@]+")


def looks_like_key(value: str) -> bool:
    """Whether ``value`` (found where a *name* belongs) looks like a key rather than an
    environment variable name: a known key prefix (``sk-``, ``sk_live_``, ``AIza``, ``ghp_``...),
    characters no variable name has, or a long random-looking run of letters and digits."""
    v = value.strip()
    if len(v) < 8:
        return False
    if _KEY_PREFIX.search(v):
        return True
    if len(v) >= 16 and re.search(r"[^A-Za-z0-9_]", v) and not re.search(r"\s", v):
        return True
    has_lower, has_upper, has_digit = (bool(re.search(p, v)) for p in ("[a-z]", "[A-Z]", "[0-9]"))
    return len(v) >= 24 and "_" not in v and has_lower and has_digit and (has_upper or len(v) >= 32)


def key_value_problem(env_name: str, value: str | None) -> str | None:
    """Why the value of ``env_name`` must not be sent as an API key (it is a URL or a DSN,
    e.g. ``DATABASE_URL``: sent as a bearer token, its password would reach the provider),
    or None. The message never holds the value."""
    if not value or not _URLISH.search(value.strip()):
        return None
    scheme = value.split("://", 1)[0] if "://" in value else ""
    what = f"a {scheme}:// URL" if scheme and len(scheme) <= 20 else "a URL or connection string"
    return (
        f"${env_name} holds {what}, not an API key: it is never sent to the provider (its password "
        f"would travel as a bearer token). Name the variable that holds the provider's key"
    )


def key_env_names(section: ProviderConfig) -> list[str]:
    """The environment variables a provider section takes its key(s) from: the pool
    ``api_key_envs`` (when the config has one), else ``api_key_env``, else the kind's default
    (``OPENAI_API_KEY``...; none for local servers)."""
    pool = getattr(section, "api_key_envs", None) or ()
    if pool:
        return [str(name) for name in pool]
    if section.api_key_env:
        return [section.api_key_env]
    if section.kind in ("ollama", "local"):
        return []
    from director_llm.providers import KINDS

    spec = KINDS.get(section.kind)
    return [spec.default_key_env] if spec is not None and spec.default_key_env else []


def _named_envs(section: ProviderConfig) -> list[str]:
    """Every variable name written in the section (``api_key_env`` and the pool alike)."""
    pool = [str(n) for n in (getattr(section, "api_key_envs", None) or ())]
    return pool + ([section.api_key_env] if section.api_key_env else [])


def config_urls(config: BaseModel, prefix: str = "") -> Iterator[tuple[str, str]]:
    """``(dotted key, url)`` for every string of the config that holds a ``://`` URL."""
    for name in type(config).model_fields:
        yield from _urls_in(getattr(config, name), f"{prefix}{name}")


def _urls_in(value: Any, key: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        if "://" in value:
            yield key, value
    elif isinstance(value, BaseModel):
        yield from config_urls(value, f"{key}.")
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _urls_in(v, f"{key}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _urls_in(v, f"{key}.{i}")


def config_secrets(config: DirectorConfig, *, environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """Every secret value of ``config`` (module docstring), read from ``environ`` (default
    ``os.environ``) now."""
    env = os.environ if environ is None else environ
    found: set[str] = set()
    for section in config.providers.values():
        for name in {*key_env_names(section), *_named_envs(section)}:
            value = env.get(name)
            if value:
                found.add(value)
                found.add(value.strip())
            if looks_like_key(name):
                found.add(name)
    for _, url in config_urls(config):
        found.update(url_secrets(url))
    return frozenset(v for v in found if _worth_redacting(v))


def _worth_redacting(value: str) -> bool:
    """Placeholders such as ``ollama`` or ``not-needed`` are not secrets, and replacing them
    everywhere would mangle messages (``ollama/llama3.2`` is a deployment name)."""
    return len(value) >= 8 and not (len(value) < 16 and re.fullmatch(r"[a-z\-]+", value))


def name_field_problems(config: DirectorConfig) -> list[Problem]:
    """Errors for keys pasted into name fields (never echoed), and warnings for key
    variables that hold a URL or DSN (the value is never sent)."""
    out: list[Problem] = []
    for provider, section in config.providers.items():
        field = "api_key_envs" if getattr(section, "api_key_envs", None) else "api_key_env"
        for name in _named_envs(section):
            if looks_like_key(name):
                out.append(
                    Problem(
                        "error",
                        f"providers.{provider}.{field}",
                        "holds what looks like an API key (not shown), not the NAME of an environment "
                        "variable: put the key in an environment variable and write its name here, "
                        'e.g. api_key_env = "OPENAI_API_KEY"',
                    )
                )
        if not section.enabled:
            continue
        for name in key_env_names(section):
            problem = key_value_problem(name, os.environ.get(name))
            if problem:
                out.append(Problem("warning", f"providers.{provider}.{field}", problem))
    return out


def redact_data(data: Any, secrets: Iterable[str] = ()) -> Any:
    """``data`` (JSON-like: dicts, lists, strings) with every string redacted (``errors.redact``
    plus ``secrets``); other values unchanged."""
    extra = tuple(sorted(set(secrets), key=len, reverse=True))
    return _redact_data(data, extra)


def _redact_data(data: Any, extra: tuple[str, ...]) -> Any:
    if isinstance(data, str):
        return redact(data, extra)
    if isinstance(data, Mapping):
        return {_redact_data(k, extra) if isinstance(k, str) else k: _redact_data(v, extra) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_redact_data(v, extra) for v in data]
    return data


class RedactingFilter(logging.Filter):
    """Redacts a record's message, arguments, exception text and stack (``errors.redact``:
    the registered secrets of live Directors, key shapes, URL credentials)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string: keep the template only
            message = str(record.msg)
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = RedactingFilter("director_llm.secrets")
_scope_lock = threading.Lock()
_open_scopes = 0


def _loggers() -> list[logging.Logger]:
    names = {*LOG_NAMES}
    names.update(n for n in list(logging.root.manager.loggerDict) if n.startswith(("director_llm.", "LiteLLM")))
    return [logging.getLogger(n) for n in sorted(names)]


def _install_filter() -> None:
    # First in line: a filter that rewrites the text before ours (LiteLLM masks parts of
    # secrets its own way) would leave pieces our exact values no longer match.
    for logger in _loggers():
        if _FILTER in logger.filters:
            logger.filters.remove(_FILTER)
        logger.filters.insert(0, _FILTER)


def _remove_filter() -> None:
    for logger in _loggers():
        logger.removeFilter(_FILTER)


class SecretScope:
    """A live Director's secrets: registered with ``errors.redact`` and a ``RedactingFilter``
    on the loggers (``LOG_NAMES`` and every ``director_llm.*``) until ``close``. Closed
    automatically when its owner is garbage-collected."""

    def __init__(self, config: DirectorConfig, *, owner: object | None = None) -> None:
        global _open_scopes
        self._config = config
        self._token: int | None = register_secrets(config_secrets(config))
        with _scope_lock:
            _open_scopes += 1
            _install_filter()
        self._finalizer = weakref.finalize(owner, _close, self._token) if owner is not None else None

    @property
    def closed(self) -> bool:
        return self._token is None

    def refresh(self) -> None:
        """Re-read the environment (keys changed, e.g. ``reload_keys``) and loggers created since."""
        if self._token is None:
            return
        old, self._token = self._token, register_secrets(config_secrets(self._config))
        unregister_secrets(old)
        if self._finalizer is not None:
            owner = self._finalizer.peek()
            self._finalizer.detach()
            if owner is not None:
                self._finalizer = weakref.finalize(owner[0], _close, self._token)
        with _scope_lock:
            _install_filter()

    def close(self) -> None:
        if self._token is None:
            return
        token, self._token = self._token, None
        if self._finalizer is not None:
            self._finalizer.detach()
        _close(token)


def _close(token: int) -> None:
    global _open_scopes
    unregister_secrets(token)
    with _scope_lock:
        _open_scopes = max(0, _open_scopes - 1)
        if _open_scopes == 0:
            _remove_filter()
