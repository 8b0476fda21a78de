"""In-process stats per deployment: requests, failures, latency, cost, last error.

Fed by the engine (``Run.failed`` / ``Run.succeeded``: every upstream attempt). ``health``
and the latency strategy read them. Cheap: a few counters and a bounded deque per
deployment. (Exported metrics are ``observability.prometheus``.)
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from director_llm.errors import redact

_WINDOW = 200  # recent attempts kept for error rate and latency percentiles


@dataclass
class DeploymentStats:
    requests: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    cost_usd: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    last_error: str | None = None
    last_error_class: str | None = None
    last_error_at: float | None = None
    last_seen_at: float | None = None
    """Wall time of the last attempt."""
    recent: deque[tuple[bool, float]] = field(default_factory=lambda: deque(maxlen=_WINDOW))

    def record_success(self, latency_s: float, cost: float = 0.0, prompt: int = 0, completion: int = 0) -> None:
        self.requests += 1
        self.consecutive_failures = 0
        self.cost_usd += cost
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.last_seen_at = time.time()
        self.recent.append((True, latency_s))

    def record_failure(self, latency_s: float, error_class: str, message: str) -> None:
        self.requests += 1
        self.failures += 1
        self.consecutive_failures += 1
        self.last_error_class = error_class
        self.last_error = redact(message)[:300]
        self.last_error_at = self.last_seen_at = time.time()
        self.recent.append((False, latency_s))

    @property
    def error_rate(self) -> float:
        return sum(1 for ok, _ in self.recent if not ok) / len(self.recent) if self.recent else 0.0

    @property
    def p50_latency_ms(self) -> float | None:
        lat = [t for ok, t in self.recent if ok]
        return round(statistics.median(lat) * 1000, 2) if lat else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "failures": self.failures,
            "consecutive_failures": self.consecutive_failures,
            "error_rate": round(self.error_rate, 4),
            "p50_latency_ms": self.p50_latency_ms,
            "cost_usd": round(self.cost_usd, 8),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "last_error": None if self.last_error is None else f"{self.last_error_class}: {self.last_error}",
        }


class Metrics:
    """Stats per deployment name."""

    def __init__(self) -> None:
        self.deployments: dict[str, DeploymentStats] = {}

    def for_deployment(self, name: str) -> DeploymentStats:
        stats = self.deployments.get(name)
        if stats is None:
            stats = self.deployments[name] = DeploymentStats()
        return stats

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {name: s.as_dict() for name, s in self.deployments.items()}
