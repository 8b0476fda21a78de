"""OpenTelemetry spans with the GenAI semantic conventions (optional: ``director-llm[otel]``).

A span per public call (``director.completion``, ``director.stream``, ``director.classify``)
and a child span per upstream attempt (``chat <model>``), with the GenAI attributes
(``gen_ai.operation.name``, ``gen_ai.provider.name`` and the older ``gen_ai.system``,
``gen_ai.request.model``, ``gen_ai.response.model``, ``gen_ai.usage.input_tokens`` /
``output_tokens``) and Director's own (``director.tier``, ``director.cache``,
``director.cost_usd``, ``director.flow``, ``director.confidence``,
``director.fallback_reason``...). Errors are recorded on the span as exceptions. Prompt and
answer text only with ``[observability] capture_content = true``.

Zero cost when unused: this module never imports OpenTelemetry. It uses
``opentelemetry.trace`` only if the application already imported it *and* installed a
tracer provider (``trace.set_tracer_provider(...)``, which an OTel SDK setup does); until
then ``tracer()`` answers None after one dict lookup and the request path creates nothing.
Spans are not made current (a stream's steps run in its consumer's context); the request
span's parent is whatever span is current when the call starts.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from director_llm.providers import DeploymentInfo
    from director_llm.route import Attempt

__all__ = [
    "MAX_CONTENT_CHARS",
    "SPAN_NAMES",
    "attempt_span",
    "deployment_attributes",
    "end_request",
    "gen_ai_system",
    "messages_text",
    "output_text",
    "start_request",
    "tracer",
]

SPAN_NAMES = {"complete": "director.completion", "stream": "director.stream", "classify": "director.classify"}
MAX_CONTENT_CHARS = 32_000
"""Captured prompt/answer text is cut to this many characters per attribute."""
_SYSTEMS = {
    "openai": "openai",
    "openai_compatible": "openai",
    "litellm_proxy": "litellm_proxy",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "ollama": "ollama",
    "local": "director.local",
}
_cache: tuple[Any, Any] = (None, None)  # (provider, tracer)


def tracer() -> Any:
    """The application's tracer, or None when OpenTelemetry is not set up in this process."""
    global _cache
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    provider = trace.get_tracer_provider()
    if provider is _cache[0]:
        return _cache[1]
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None
    from director_llm import __version__

    found = provider.get_tracer("director_llm", __version__)
    _cache = (provider, found)
    return found


def gen_ai_system(info: DeploymentInfo | None) -> str:
    """``gen_ai.provider.name`` of a deployment (the well-known values where one exists)."""
    if info is None:
        return "unknown"
    return _SYSTEMS.get(info.kind, info.kind)


def deployment_attributes(info: DeploymentInfo | None) -> dict[str, Any]:
    if info is None:
        return {}
    system = gen_ai_system(info)
    return {
        "gen_ai.provider.name": system,
        "gen_ai.system": system,
        "gen_ai.request.model": info.model,
        "director.deployment": info.name,
        "director.provider": info.provider,
        "director.tier": info.tier,
    }


def start_request(found: Any, entry: str, *, strategy: str | None, content: str | None) -> Any:
    """The span of one public call (not made current)."""
    attributes: dict[str, Any] = {"gen_ai.operation.name": "chat", "director.entry": entry}
    if strategy:
        attributes["director.strategy"] = strategy
    if content is not None:
        attributes["gen_ai.input.messages"] = content[:MAX_CONTENT_CHARS]
    from opentelemetry.trace import SpanKind

    return found.start_span(SPAN_NAMES.get(entry, f"director.{entry}"), kind=SpanKind.CLIENT, attributes=attributes)


def attempt_span(
    found: Any, parent: Any, attempt: Attempt, info: DeploymentInfo | None, usage: tuple[int, int, float] | None
) -> None:
    """A finished child span for one attempt (it ended now, after ``attempt.elapsed_s``)."""
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, Status, StatusCode

    end = time.time_ns()
    start = end - int(attempt.elapsed_s * 1e9)
    model = info.model if info is not None else attempt.deployment
    attributes = {"gen_ai.operation.name": "chat", **deployment_attributes(info), "director.outcome": attempt.outcome}
    if usage is not None:
        attributes["gen_ai.usage.input_tokens"] = usage[0]
        attributes["gen_ai.usage.output_tokens"] = usage[1]
        attributes["director.cost_usd"] = usage[2]
    if attempt.ok and info is not None:
        attributes["gen_ai.response.model"] = info.model
    if attempt.status_code is not None:
        attributes["http.response.status_code"] = attempt.status_code
    span = found.start_span(
        f"chat {model}",
        context=trace.set_span_in_context(parent),
        kind=SpanKind.CLIENT,
        attributes=attributes,
        start_time=start,
    )
    if not attempt.ok and attempt.called:
        span.set_attribute("error.type", attempt.outcome)
        span.add_event("exception", {"exception.type": attempt.outcome, "exception.message": attempt.message[:500]})
        span.set_status(Status(StatusCode.ERROR, attempt.outcome))
    span.end(end_time=end)


def end_request(span: Any, attributes: dict[str, Any], error: BaseException | None) -> None:
    """Set the request's attributes, record its error, end it."""
    from opentelemetry.trace import Status, StatusCode

    span.set_attributes({k: v for k, v in attributes.items() if v is not None})
    if error is not None:
        span.record_exception(error)
        span.set_attribute("error.type", type(error).__name__)
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    span.end()


def output_text(text: str) -> str:
    """Captured answer text as the GenAI convention's JSON."""
    return json.dumps([{"role": "assistant", "content": text[:MAX_CONTENT_CHARS]}], ensure_ascii=False)


def messages_text(messages: Any) -> str | None:
    """Captured prompt content as the GenAI convention's JSON (role and text parts)."""
    try:
        return json.dumps(
            [{"role": m.get("role"), "content": m.get("content")} for m in messages],
            ensure_ascii=False,
            default=str,
        )
    except (TypeError, ValueError, AttributeError):
        return None
