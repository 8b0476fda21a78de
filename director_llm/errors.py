"""Typed errors: every failure director-llm raises on purpose is a ``DirectorError``.

The hierarchy::

    DirectorError
    ├── ConfigError                 you misconfigured: file, line or key, and the fix (CLI exit 2)
    ├── InputError                  the text/messages given are unusable (CLI exit 2)
    ├── BudgetExceededError         no tier can be afforded in some budget window
    ├── ProviderError               the world failed: every deployment that could serve failed (exit 1)
    │   ├── ClassificationError     no deployment produced a valid classification
    │   └── StreamInterruptedError  a stream broke after tokens were delivered
    └── CacheError                  internal; never escapes a request (caches degrade to misses)

Errors carry data (typed attributes) plus a message that says what to do next. Secrets are
never part of a message: ``redact`` is applied to anything that may echo a provider's reply.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from typing import Any

__all__ = [
    "BudgetExceededError",
    "CacheError",
    "ClassificationError",
    "ConfigError",
    "DirectorError",
    "InputError",
    "ProviderError",
    "StreamInterruptedError",
    "redact",
]

# Long opaque tokens that look like API keys (sk-..., AIza..., bearer tokens).
_KEY_PATTERNS = [
    re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"\bAIza[0-9A-Za-z_\-]{20,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9_\-\.=]{8,}"),
    re.compile(r"(?i)((?:api[_-]?key|x-api-key|x-goog-api-key|authorization)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]{6,}"),
    re.compile(r"(?i)([?&]key=)[^&\s\"']{6,}"),
]
_SECRET_ENV_HINTS = ("KEY", "TOKEN", "SECRET", "PASSWORD")


def redact(text: object, extra_secrets: tuple[str, ...] = ()) -> str:
    """Return ``text`` with API keys removed: known key shapes, plus the current values of
    environment variables whose name looks secret (``*_API_KEY``, ``*_TOKEN``...)."""
    s = str(text)
    secrets = [v for k, v in os.environ.items() if any(h in k.upper() for h in _SECRET_ENV_HINTS)]
    for secret in (*extra_secrets, *secrets):
        if secret and len(secret) >= 6 and secret in s:
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
        self.problems = problems or [message]
        super().__init__(message)


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
    """Every deployment that could serve the request failed. ``attempts`` lists
    ``(deployment, error class, short message)`` for each try."""

    exit_code = 1

    def __init__(self, message: str, *, attempts: list[tuple[str, str, str]] | None = None,
                 status_code: int | None = None, retry_after: float | None = None) -> None:
        self.attempts = [(d, c, redact(m)) for d, c, m in (attempts or [])]
        self.status_code = status_code
        self.retry_after = retry_after
        super().__init__(message)


class ClassificationError(ProviderError):
    """No deployment produced a valid classification; ``raw_outputs`` holds what each
    returned (secrets redacted) and ``usage`` the tokens spent on the way."""

    def __init__(self, message: str, *, raw_outputs: list[str] | None = None,
                 attempts: list[tuple[str, str, str]] | None = None,
                 usage: dict[str, Any] | None = None) -> None:
        self.raw_outputs = [redact(r) for r in (raw_outputs or [])]
        self.usage = usage or {}
        super().__init__(message, attempts=attempts)


class StreamInterruptedError(ProviderError):
    """A stream failed after tokens reached the caller. ``partial_text`` is what was
    delivered; the caller decides whether to show it, retry, or resume."""

    def __init__(self, message: str, *, partial_text: str, deployment: str | None = None,
                 attempts: list[tuple[str, str, str]] | None = None) -> None:
        self.partial_text = partial_text
        self.deployment = deployment
        super().__init__(message, attempts=attempts)


class CacheError(DirectorError):
    """A cache layer failed. Internal: the cache turns it into a miss and a warning."""
