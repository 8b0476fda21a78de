"""The one ``Retry-After`` parser: seconds to wait, from a header or an error, capped.

A provider may send ``Retry-After: 2`` (seconds), ``Retry-After: <HTTP date>``, or
``retry-after-ms`` (OpenAI). Whatever it says, the answer is capped (``cap``, the breaker's
``max_cooldown_seconds``): a ``Retry-After: 999999999`` must not keep a deployment out of
service for years on every host sharing the breaker.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

__all__ = ["parse_retry_after", "retry_after_of"]


def parse_retry_after(value: Any, *, now: datetime | None = None) -> float | None:
    """Seconds from one ``Retry-After`` value (number of seconds or an HTTP date); None when
    absent or unreadable."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _headers_of(error: BaseException | None) -> Mapping[str, Any] | None:
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None) or getattr(error, "headers", None)
    return headers if headers is not None and hasattr(headers, "get") else None


def retry_after_of(error: BaseException | None, *, cap: float | None = None) -> float | None:
    """Seconds a provider asked to wait, from the headers of an HTTP error (``retry-after-ms``
    first, then ``retry-after``), at most ``cap``."""
    headers = _headers_of(error)
    if headers is None:
        return None
    seconds: float | None = None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            seconds = max(0.0, float(ms) / 1000)
    except (TypeError, ValueError):
        seconds = None
    if seconds is None or not math.isfinite(seconds):
        seconds = parse_retry_after(headers.get("retry-after"))
    if seconds is not None and cap is not None:
        seconds = min(seconds, cap)
    return seconds
