"""Typed errors: every failure director-llm raises on purpose is a ``DirectorError``.

The hierarchy::

    DirectorError
    ├── ConfigError                 you misconfigured: file, line or key, and the fix (CLI exit 2)
    │   └── TrainingDataError       a local-tier training file is unreadable (path, line)
    ├── LocalModelError             the local tier cannot be trained from what it was given (exit 2)
    ├── InputError                  the text/messages given are unusable (CLI exit 2)
    ├── DirectorClosedError         the Director was closed (``aclose``); build a new one
    ├── BudgetExceededError         no tier can be afforded in some budget window
    │   └── AttemptOverBudgetError  one attempt did not fit (the request moved on, or ran out)
    ├── BudgetBackendError          the budget store (Redis) failed; spend could not be checked
    │   └── BudgetStoreDownError    ... so no priced deployment could be served safely
    ├── ReservationClosedError      a budget reservation was settled twice (a bug in the caller)
    ├── ProviderError               the world failed: every deployment that could serve failed (exit 1)
    │   ├── ClassificationError     no deployment produced a valid classification
    │   ├── RateLimitedError        every deployment that could serve is at a rate limit
    │   └── StreamInterruptedError  a stream broke after tokens were delivered
    ├── CacheError                  internal; never escapes a request (caches degrade to misses)
    └── RedisUnavailableError       tests: no redis-server to start (``director_llm.testing``)

Errors carry data (typed attributes) plus a message that says what to do next. Secrets are
never part of a message: ``redact`` is applied to anything that may echo a provider's reply.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from director_llm.route import Route

__all__ = [
    "AttemptOverBudgetError",
    "BudgetBackendError",
    "BudgetExceededError",
    "BudgetStoreDownError",
    "CacheError",
    "ClassificationError",
    "ConfigError",
    "DirectorClosedError",
    "DirectorError",
    "InputError",
    "LocalModelError",
    "ProviderError",
    "RateLimitedError",
    "RedisUnavailableError",
    "ReservationClosedError",
    "StreamInterruptedError",
    "TrainingDataError",
    "redact",
    "register_secrets",
    "unregister_secrets",
]

# Long opaque tokens that look like API keys (sk-..., AIza..., bearer tokens), credentials in
# URLs (``scheme://user:password@``) and secret-looking query parameters (``?api_key=...``).
_KEY_PATTERNS = [
    re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"\bAIza[0-9A-Za-z_\-]{20,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9_\-\.=]{8,}"),
    re.compile(r"(?i)((?:api[_-]?key|x-api-key|x-goog-api-key|authorization)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}&]{6,}"),
    re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://[^\s/@:\"'<>]*:)[^\s/@\"'<>]+(?=@)"),
    re.compile(
        r"(?i)([?&;](?:[a-z0-9_\-]*(?:key|token|secret|passw(?:or)?d|pwd|sig|signature|credential|auth))=)"
        r"[^&#\s\"'<>]+"
    ),
]
_SECRET_ENV_HINTS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CRED", "AUTH")
_MIN_SECRET_CHARS = 6
"""Shorter values are not replaced wherever they appear (they would eat ordinary words);
credentials in URLs are still removed by the URL pattern above."""

_registry_lock = threading.Lock()
_registered: dict[int, frozenset[str]] = {}
_known: tuple[str, ...] = ()
_tokens = itertools.count(1)


def register_secrets(values: Iterable[str]) -> int:
    """Make ``redact`` remove ``values`` (a live Director's configured secrets) until
    ``unregister_secrets(token)``; returns the token. See ``director_llm.config.secrets``."""
    global _known
    kept = frozenset(v for v in values if isinstance(v, str) and len(v) >= _MIN_SECRET_CHARS)
    with _registry_lock:
        token = next(_tokens)
        _registered[token] = kept
        _known = tuple(sorted(set().union(*_registered.values()), key=len, reverse=True))
    return token


def unregister_secrets(token: int) -> None:
    """Forget the values registered under ``token`` (unknown tokens are ignored)."""
    global _known
    with _registry_lock:
        if _registered.pop(token, None) is None:
            return
        _known = tuple(sorted(set().union(*_registered.values()), key=len, reverse=True))


def redact(text: object, extra_secrets: tuple[str, ...] = ()) -> str:
    """Return ``text`` with secrets removed: the values registered by live Directors (every
    configured key, URL password and secret query value, whatever the variable's name), the
    current values of environment variables whose name looks secret (``*_API_KEY``,
    ``*_TOKEN``, ``*_CRED``...), ``extra_secrets``, known key shapes, URL userinfo and
    secret-looking query parameters."""
    s = str(text)
    env = [v for k, v in os.environ.items() if any(h in k.upper() for h in _SECRET_ENV_HINTS)]
    candidates = [*extra_secrets, *_known, *sorted(env, key=len, reverse=True)]
    for secret in candidates:
        if secret and len(secret) >= _MIN_SECRET_CHARS and secret in s:
            s = s.replace(secret, "[REDACTED]")
    for pat in _KEY_PATTERNS:
        if pat.groups:
            s = pat.sub(lambda m: m.group(1) + "[REDACTED]", s)
        else:
            s = pat.sub("[REDACTED]", s)
    return s


class DirectorError(Exception):
    """Root of every error director-llm raises on purpose."""

    exit_code: int = 1
    route: Route | None = None
    """How far the request got (attempts, tokens and cost so far), when it got anywhere."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(DirectorError):
    """The configuration is invalid. ``path`` is the file, ``key`` the dotted key path
    (schema errors) and ``line`` the line number (syntax errors), when known."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        key: str | None = None,
        line: int | None = None,
        problems: list[str] | None = None,
    ) -> None:
        self.path = path
        self.key = key
        self.line = line
        self.problems = [redact(p) for p in problems] if problems else [redact(message)]
        super().__init__(message)


class LocalModelError(DirectorError):
    """The local tier cannot be trained from what it was given (e.g. fewer than two intents)."""

    exit_code = 2


class TrainingDataError(ConfigError):
    """A training file is unreadable or has a bad line; ``path`` and ``line`` say where."""


class InputError(DirectorError):
    """The text or messages given to the Director cannot be processed."""

    exit_code = 2


class BudgetExceededError(DirectorError):
    """No tier that could serve the request fits the remaining budget of ``window``."""

    exit_code = 1

    def __init__(
        self,
        message: str | None = None,
        *,
        window: str,
        limit_usd: float,
        spent_usd: float,
        reserved_usd: float = 0.0,
        requested_usd: float = 0.0,
        resets_at: datetime | None = None,
    ) -> None:
        self.window = window
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd
        self.reserved_usd = reserved_usd
        self.requested_usd = requested_usd
        self.resets_at = resets_at
        if message is None:
            reset = resets_at.isoformat() if resets_at else "the next window"
            message = (
                f"budget exceeded for window {window}: limit ${limit_usd:.6f}, spent ${spent_usd:.6f}, "
                f"reserved ${reserved_usd:.6f}, this request needs up to ${requested_usd:.6f}; "
                f"resets at {reset}. Raise the limit in [llm] or use a cheaper/local tier."
            )
        super().__init__(message)


class ProviderError(DirectorError):
    """Every deployment that could serve the request failed. ``attempts`` lists each
    deployment tried or skipped (``route.Attempt``: deployment, outcome, redacted message;
    it still unpacks as the old ``(deployment, error class, message)`` tuple)."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        attempts: Sequence[Any] | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
        route: Route | None = None,
    ) -> None:
        from director_llm.route import Attempt

        self.attempts = [
            a if isinstance(a, Attempt) else Attempt(a[0], a[1], redact(a[2]) if len(a) > 2 else "")
            for a in (attempts or [])
        ]
        self.status_code = status_code
        self.retry_after = retry_after
        self.route = route
        super().__init__(message)


class ClassificationError(ProviderError):
    """No deployment produced a valid classification; ``raw_outputs`` holds what each
    returned (secrets redacted) and ``usage`` the tokens spent on the way."""

    def __init__(
        self,
        message: str,
        *,
        raw_outputs: list[str] | None = None,
        attempts: Sequence[Any] | None = None,
        usage: dict[str, Any] | None = None,
        route: Route | None = None,
    ) -> None:
        self.raw_outputs = [redact(r) for r in (raw_outputs or [])]
        self.usage = usage or {}
        super().__init__(message, attempts=attempts, route=route)


class RateLimitedError(ProviderError):
    """Every deployment that could serve the request is at a rate limit this library
    enforces (``rpm``, ``tpm``, ``max_parallel_requests`` of a deployment, or of
    ``[llm.rate_limits]``) and none freed up within ``[llm.rate_limits] max_wait_seconds``
    (or the request deadline). ``limit`` names the limit (``"rpm"``, ``"tpm"``,
    ``"max_parallel_requests"``), ``scope`` the deployment or ``"global"``, ``retry_after``
    the seconds until it frees up (for ``max_parallel_requests`` an upper bound: a slot
    frees as soon as a request in flight ends; None when this request alone exceeds the
    limit)."""

    def __init__(
        self,
        message: str,
        *,
        limit: str,
        scope: str,
        retry_after: float | None,
        attempts: Sequence[Any] | None = None,
        route: Route | None = None,
    ) -> None:
        self.limit = limit
        self.scope = scope
        super().__init__(message, attempts=attempts, retry_after=retry_after, route=route)


class StreamInterruptedError(ProviderError):
    """A stream failed after tokens reached the caller. ``partial_text`` is what was
    delivered; the caller decides whether to show it, retry, or resume."""

    def __init__(
        self,
        message: str,
        *,
        partial_text: str,
        deployment: str | None = None,
        attempts: Sequence[Any] | None = None,
        route: Route | None = None,
    ) -> None:
        self.partial_text = partial_text
        self.deployment = deployment
        super().__init__(message, attempts=attempts, route=route)


class CacheError(DirectorError):
    """A cache layer failed. Internal: the cache turns it into a miss and a warning."""


class AttemptOverBudgetError(BudgetExceededError):
    """One attempt's worst-case cost does not fit a budget window (the request moves on to a
    cheaper deployment; raised to the caller only when nothing affordable is left)."""


class DirectorClosedError(DirectorError):
    """The Director was closed with ``aclose()``; a closed Director serves nothing (its
    budget ledger and connections are gone). Build a new one."""


class BudgetBackendError(DirectorError):
    """The ledger's store (Redis) failed, so spend could not be checked or booked."""


class BudgetStoreDownError(BudgetBackendError):
    """The shared ledger is unreachable and ``[llm] budget_store_failure = "closed"`` (or no
    local allowance is left), so priced deployments are refused; zero-cost ones still serve."""


class ReservationClosedError(DirectorError):
    """``settle`` was called on a reservation that was already settled or released;
    booking it twice would double-count the spend."""


class RedisUnavailableError(DirectorError):
    """Tests: no ``redis-server`` binary, or it did not come up. ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"{reason}. Install redis-server (apt-get install redis-server) or put it on PATH.")
        self.reason = reason
