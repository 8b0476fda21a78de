"""Metrics, traces and the request log line, against the real fake-provider server.

Each test builds its own Director (its own Prometheus registry: Directors do not collide)
and reads ``director.metrics_text()`` back with prometheus_client's own parser. Spans go to
the OpenTelemetry SDK's in-memory exporter (installed once per process as the global tracer
provider; every test clears it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from director_llm.config.loading import parse_config_text
from director_llm.director import Director
from director_llm.errors import BudgetExceededError, ProviderError
from director_llm.testing import FakeProviderServer, Fault, Reply

KEY_ENV = "TEST_OBSERVE_KEY"
KEY = "sk-observe-secret-0123456789"
PROMPT = "segredo do usuario: minha senha e 1234"
INTENT = {"flow": "create_task", "confidence": 0.9, "reasoning": "asks for a task", "entities": {}}


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


@pytest.fixture(scope="module")
def _provider() -> TracerProvider:
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    provider = TracerProvider()
    trace.set_tracer_provider(provider)
    return provider


@pytest.fixture
def spans(_provider: TracerProvider) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    _provider.add_span_processor(processor)
    yield exporter
    exporter.clear()
    processor.shutdown()


def config(base: str, *, extra: str = "", observability: str = "") -> Director:
    text = f"""
[llm]
num_retries = 0
timeout_seconds = 10
attempt_timeout_seconds = 5
{extra}
[llm.fallbacks]
"openai/first" = ["openai/second"]
[providers.openai]
models = ["first", "second", "limited"]
base_url = "{base}/v1"
api_key_env = "{KEY_ENV}"
tier = "small"
[providers.openai.overrides.first]
input_price_per_million = 1.0
output_price_per_million = 2.0
[providers.openai.overrides.second]
input_price_per_million = 3.0
output_price_per_million = 4.0
[providers.openai.overrides.limited]
tier = "strong"
input_price_per_million = 3.0
output_price_per_million = 4.0
[caching]
memory_size_mb = 4
[observability]
{observability}
"""
    return Director(parse_config_text(text))


def samples(director: Director) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition text: (name, sorted labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(director.metrics_text()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found: dict, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


async def test_counters_follow_real_requests(fake_provider: FakeProviderServer) -> None:
    fake_provider.script("first", [Fault.status(500)], repeat=True)
    fake_provider.script("second", [Reply("from second", usage=(11, 7))], repeat=True)
    fake_provider.script("limited", [Fault.status(429)], repeat=True)
    async with config(fake_provider.base_url) as d:
        messages = [{"role": "user", "content": PROMPT}]
        await d.acompletion(messages, model="openai/first", temperature=0)  # -> second
        await d.acompletion(messages, model="openai/first", temperature=0)  # memory cache
        async with d.stream_response(messages, model="openai/second") as stream:
            text = await stream.text()
        assert text == "from second"
        with pytest.raises(ProviderError):
            await d.acompletion(messages, model="openai/limited")
        await d.refresh_metrics()
        found = samples(d)

    small = {"provider": "openai", "model": "second", "tier": "small"}
    assert value(found, "director_requests_total", **small, entry="complete", outcome="fallback") == 1
    assert value(found, "director_requests_total", **small, entry="stream", outcome="ok") == 1
    none = {"provider": "none", "model": "none", "tier": "none"}
    assert value(found, "director_requests_total", **none, entry="complete", outcome="cache_hit") == 1
    assert value(found, "director_requests_total", **none, entry="complete", outcome="rate_limited") == 1
    assert value(found, "director_attempts_total", provider="openai", model="first", outcome="InternalServerError") == 1
    assert value(found, "director_attempts_total", provider="openai", model="second", outcome="ok") == 2
    assert value(found, "director_attempts_total", provider="openai", model="limited", outcome="RateLimitError") == 1
    assert value(found, "director_tokens_total", provider="openai", model="second", direction="input") == 22
    assert value(found, "director_tokens_total", provider="openai", model="second", direction="output") == 14
    cost = value(found, "director_cost_usd_total", provider="openai", model="second")
    assert cost == pytest.approx(2 * (11 * 3e-6 + 7 * 4e-6))
    assert value(found, "director_request_duration_seconds_count", entry="complete", tier="small") == 1
    assert value(found, "director_request_duration_seconds_count", entry="complete", tier="none") == 2
    assert value(found, "director_time_to_first_token_seconds_count", provider="openai", model="second") == 1
    assert value(found, "director_cache_requests_total", layer="memory", result="hit") == 1
    assert value(found, "director_cache_requests_total", layer="memory", result="miss") == 1
    assert value(found, "director_breaker_state", deployment="openai/second") == 0
    text = d.metrics_text()
    assert PROMPT not in text and KEY not in text and "1234" not in text


async def test_budget_gauges_and_refused_budget(fake_provider: FakeProviderServer) -> None:
    fake_provider.set_default(Reply("fine", usage=(1000, 100)))
    extra = "budget_per_hour = 0.01"
    async with config(fake_provider.base_url, extra=extra) as d:
        await d.acompletion([{"role": "user", "content": "hi"}], model="openai/first")
        await d.budget.drain()
        with pytest.raises(BudgetExceededError):
            await d.acompletion([{"role": "user", "content": "hi"}], model="openai/first", max_tokens=100_000)
        await d.refresh_metrics()
        found = samples(d)
    spent = 1000 * 1e-6 + 100 * 2e-6
    assert value(found, "director_budget_remaining_usd", window="hour") == pytest.approx(0.01 - spent)
    assert value(found, "director_budget_reserved_usd", window="hour") == 0
    none = {"provider": "none", "model": "none", "tier": "none"}
    assert value(found, "director_requests_total", **none, entry="complete", outcome="refused_budget") == 1


async def test_breaker_gauge_shows_an_open_circuit(fake_provider: FakeProviderServer) -> None:
    fake_provider.script("first", [Fault.status(503)], repeat=True)
    extra = "[llm.circuit_breaker]\nfailure_threshold = 1\ncooldown_seconds = 300\n"
    async with config(fake_provider.base_url, extra=extra) as d:
        await d.acompletion([{"role": "user", "content": "hi"}], model="openai/first")  # served by second
        found = samples(d)
    assert value(found, "director_breaker_state", deployment="openai/first") == 2
    assert value(found, "director_breaker_state", deployment="openai/second") == 0


async def test_two_directors_in_one_process_do_not_collide(fake_provider: FakeProviderServer) -> None:
    fake_provider.set_default(Reply("ok", usage=(3, 2)))
    async with config(fake_provider.base_url) as a, config(fake_provider.base_url) as b:
        for _ in range(3):
            await a.acompletion([{"role": "user", "content": "a"}], model="openai/first")
        await b.acompletion([{"role": "user", "content": "b"}], model="openai/first")
        ok = {"provider": "openai", "model": "first", "tier": "small", "entry": "complete", "outcome": "ok"}
        assert value(samples(a), "director_requests_total", **ok) == 3
        assert value(samples(b), "director_requests_total", **ok) == 1


async def test_metrics_off_counts_nothing(fake_provider: FakeProviderServer) -> None:
    async with config(fake_provider.base_url, observability="metrics = false") as d:
        await d.acompletion([{"role": "user", "content": "a"}], model="openai/first")
        assert d.metrics_text() == ""


async def test_one_log_line_per_request_without_prompt_or_key(
    fake_provider: FakeProviderServer, caplog: pytest.LogCaptureFixture
) -> None:
    fake_provider.script("first", [Fault.status(500, f"upstream echoed {PROMPT}")], then=Fault.status(500))
    fake_provider.script("second", [Reply("answer text here", usage=(5, 3))], then=Fault.status(503))
    async with config(fake_provider.base_url, observability='log_format = "json"') as d:
        with caplog.at_level(logging.INFO, logger="director_llm"):
            await d.acompletion([{"role": "user", "content": PROMPT}], model="openai/first")
            with pytest.raises(ProviderError):
                await d.acompletion([{"role": "user", "content": PROMPT}], model="openai/first")
    lines = [r for r in caplog.records if r.name == "director_llm"]
    assert len(lines) == 2
    served, failed = (json.loads(r.getMessage()) for r in lines)
    assert served["entry"] == "complete" and served["outcome"] == "fallback"
    assert served["deployment"] == "openai/second" and served["tier"] == "small"
    assert served["prompt_tokens"] == 5 and served["completion_tokens"] == 3
    assert served["cost_usd"] == pytest.approx(5 * 3e-6 + 3 * 4e-6)
    assert served["attempts"] == ["openai/first:InternalServerError", "openai/second:ok"]
    assert served["latency_ms"] > 0 and served["calls"] == 2
    assert failed["outcome"] == "error" and failed["error"] == "ProviderError"
    assert lines[0].director["deployment"] == "openai/second"  # structured fields on the record
    for r in lines:
        message = r.getMessage()
        assert PROMPT not in message and KEY not in message and "answer text here" not in message


async def test_text_log_line(fake_provider: FakeProviderServer, caplog: pytest.LogCaptureFixture) -> None:
    async with config(fake_provider.base_url) as d:
        with caplog.at_level(logging.INFO, logger="director_llm"):
            await d.acompletion([{"role": "user", "content": PROMPT}], model="openai/first")
    (line,) = [r.getMessage() for r in caplog.records if r.name == "director_llm"]
    assert line.startswith("request entry=complete outcome=ok deployment=openai/first tier=small")
    assert PROMPT not in line


async def test_spans_carry_the_genai_attributes(fake_provider: FakeProviderServer, spans: InMemorySpanExporter) -> None:
    fake_provider.script("first", [Fault.status(500)], repeat=True)
    fake_provider.script("second", [Reply("from second", usage=(11, 7))], repeat=True)
    async with config(fake_provider.base_url) as d:
        await d.acompletion([{"role": "user", "content": PROMPT}], model="openai/first")
        async with d.stream_response([{"role": "user", "content": PROMPT}], model="openai/second") as s:
            await s.text()
    done = spans.get_finished_spans()
    completion = next(s for s in done if s.name == "director.completion")
    a = completion.attributes
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai" and a["gen_ai.system"] == "openai"
    assert a["gen_ai.request.model"] == "second" and a["gen_ai.response.model"] == "second"
    assert a["gen_ai.usage.input_tokens"] == 11 and a["gen_ai.usage.output_tokens"] == 7
    assert a["director.tier"] == "small" and a["director.cache"] == "none"
    assert a["director.cost_usd"] == pytest.approx(11 * 3e-6 + 7 * 4e-6)
    assert a["director.fallback_reason"] == "openai/first: InternalServerError"
    assert a["director.outcome"] == "fallback"
    children = [s for s in done if s.parent is not None and s.parent.span_id == completion.context.span_id]
    assert [c.name for c in children] == ["chat first", "chat second"]
    failed, ok = children
    assert failed.status.status_code.name == "ERROR" and failed.attributes["error.type"] == "InternalServerError"
    assert failed.events[0].name == "exception"
    assert ok.attributes["gen_ai.usage.input_tokens"] == 11 and ok.attributes["gen_ai.response.model"] == "second"
    assert failed.attributes["http.response.status_code"] == 500
    assert failed.start_time < failed.end_time <= ok.end_time
    stream = next(s for s in done if s.name == "director.stream")
    assert stream.attributes["gen_ai.request.model"] == "second"
    for s in done:  # no prompt text anywhere without capture_content
        assert all(PROMPT not in str(v) for v in s.attributes.values())
        assert all(PROMPT not in str(v) for e in s.events for v in e.attributes.values())


async def test_errors_are_recorded_on_the_span(fake_provider: FakeProviderServer, spans: InMemorySpanExporter) -> None:
    fake_provider.set_default(Fault.status(503))
    async with config(fake_provider.base_url) as d:
        with pytest.raises(ProviderError):
            await d.acompletion([{"role": "user", "content": "x"}], model="openai/limited")
    (span,) = [s for s in spans.get_finished_spans() if s.name == "director.completion"]
    assert span.status.status_code.name == "ERROR"
    assert span.attributes["error.type"] == "ProviderError" and span.attributes["director.outcome"] == "error"
    (event,) = [e for e in span.events if e.name == "exception"]
    assert event.attributes["exception.type"].endswith("ProviderError")


async def test_classification_span_and_captured_content(
    fake_provider: FakeProviderServer, spans: InMemorySpanExporter
) -> None:
    fake_provider.respond_with("first", lambda r: Reply(json=INTENT, usage=(50, 10)))
    async with config(fake_provider.base_url, observability="capture_content = true") as d:
        result = await d.classify_intent(PROMPT, model="openai/first", cache=False)
        await d.acompletion([{"role": "user", "content": PROMPT}], model="openai/first")
    assert result.flow == "create_task"
    done = spans.get_finished_spans()
    classify = next(s for s in done if s.name == "director.classify")
    assert classify.attributes["director.flow"] == "create_task"
    assert classify.attributes["director.confidence"] == 0.9
    assert PROMPT in classify.attributes["gen_ai.input.messages"]
    completion = next(s for s in done if s.name == "director.completion")
    assert PROMPT in completion.attributes["gen_ai.input.messages"]
    assert json.loads(completion.attributes["gen_ai.output.messages"])[0]["role"] == "assistant"


async def test_no_spans_without_a_tracer_provider(fake_provider: FakeProviderServer) -> None:
    # The tracer of this process is the SDK's (module fixture unused here): tracing = false
    # in the config must still create nothing.
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    processor = SimpleSpanProcessor(exporter)
    if isinstance(provider, TracerProvider):
        provider.add_span_processor(processor)
    async with config(fake_provider.base_url, observability="tracing = false") as d:
        await d.acompletion([{"role": "user", "content": "x"}], model="openai/first")
    assert exporter.get_finished_spans() == ()
    processor.shutdown()


async def test_asgi_app_serves_the_metrics(fake_provider: FakeProviderServer) -> None:
    import httpx

    from director_llm.metrics import asgi_app

    fake_provider.set_default(Reply("ok", usage=(3, 2)))
    async with config(fake_provider.base_url, extra="budget_per_day = 5.0") as d:
        await d.acompletion([{"role": "user", "content": PROMPT}], model="openai/first")
        await d.budget.drain()  # the settlement lands in the background
        for app in (asgi_app(d), asgi_app()):  # explicit, and this process's latest open Director
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                response = await client.get("/metrics")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain")
            found = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(response.text)
                for s in f.samples
            }
            ok = {"provider": "openai", "model": "first", "tier": "small", "entry": "complete", "outcome": "ok"}
            assert value(found, "director_requests_total", **ok) == 1
            # the scrape refreshed the budget gauge (no refresh_metrics() call here)
            assert value(found, "director_budget_remaining_usd", window="day") == pytest.approx(5.0 - 3e-6 - 4e-6)
            assert PROMPT not in response.text


async def test_streams_closed_early_and_classification_streams(fake_provider: FakeProviderServer) -> None:
    fake_provider.script("second", [Reply("one two three four five six", token_delay=0.01)], repeat=True)
    fake_provider.respond_with("first", lambda r: Reply(json=INTENT, usage=(40, 9)))
    async with config(fake_provider.base_url) as d:
        async with d.stream_response([{"role": "user", "content": "x"}], model="openai/second") as stream:
            async for _chunk in stream:
                break  # the caller leaves after the first token: served, not an error
        items = [i async for i in d.stream_intent("quero criar uma tarefa", model="openai/first")]
        assert items[-1].done and items[-1].result.flow == "create_task"
        found = samples(d)
    served = {"provider": "openai", "model": "second", "tier": "small"}
    assert value(found, "director_requests_total", **served, entry="stream", outcome="ok") == 1
    first = {"provider": "openai", "model": "first", "tier": "small"}
    assert value(found, "director_requests_total", **first, entry="classify", outcome="ok") == 1
    assert (
        value(found, "director_tokens_total", **{k: first[k] for k in ("provider", "model")}, direction="input") == 40
    )
