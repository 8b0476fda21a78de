"""classify_intent / stream_intent through the Router against the fake provider server,
for the OpenAI, Anthropic, Ollama and Gemini protocols."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from test_classify_support import (
    KEY_ENV,
    KEY_VALUE,
    MODEL,
    PROTOCOLS,
    config_for,
    provider_section,
    user_data,
)

from director_llm.director import Director
from director_llm.errors import ClassificationError, InputError, ProviderError
from director_llm.intents import (
    FallbackEvent,
    IntentClassificationStream,
    TierChosenEvent,
    UsageEvent,
)
from director_llm.testing import Fault, Reply

MESSY = {
    "fenced": '```json\n{"flow": "create_task", "confidence": 0.92, "reasoning": "asks for a task", '
    '"entities": {"when": "amanhã"}}\n```',
    "prose": 'Claro! Aqui está:\n{"flow": "create_task", "confidence": 0.92, "reasoning": "x", "entities": {}}\nAbraço.',
    "trailing_comma": '{"flow": "create_task", "confidence": 0.92, "reasoning": "x", "entities": {},}',
    "truncated": '{"flow": "create_task", "confidence": 0.92, "reasoning": "the user wants a rem',
    "case_and_percent": '{"flow": "Create Task", "confidence": "92%", "reasoning": "x"}',
    "portuguese_name": '{"fluxo": "criar_tarefa", "confiança": "0,92", "raciocínio": "quer uma tarefa"}',
}


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY_VALUE)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_messy_replies_every_protocol(fake_provider, protocol):
    base = fake_provider.base_url
    fake_provider.script(MODEL[protocol], [Reply(text=t) for t in MESSY.values()])
    async with Director(config_for(provider_section(protocol, base))) as director:
        for shape in MESSY:
            result = await director.classify_intent("cria uma tarefa para amanhã às 9h")
            assert result.flow == "create_task", shape
            assert result.confidence == pytest.approx(0.92), shape
            assert result.route.provider == protocol and result.route.calls == 1
            assert result.route.cost_usd > 0 and result.route.prompt_tokens > 0
    assert len(fake_provider.requests) == len(MESSY)
    # The Portuguese text reached the provider intact, inside the data block.
    assert all(user_data(r) == "cria uma tarefa para amanhã às 9h" for r in fake_provider.requests)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_repair_round_feeds_the_error_back(fake_provider, protocol):
    fake_provider.script(
        MODEL[protocol],
        [
            Reply(text="Sorry, I cannot help with that.", usage=(100, 10)),
            Reply(json={"flow": "greeting", "confidence": 0.9, "reasoning": "hi", "entities": {}}, usage=(150, 20)),
        ],
    )
    async with Director(config_for(provider_section(protocol, fake_provider.base_url))) as director:
        result = await director.classify_intent("oi, bom dia")
    assert result.flow == "greeting" and result.route.repaired
    assert result.route.calls == 2
    assert (result.route.prompt_tokens, result.route.completion_tokens) == (250, 30)
    assert result.route.cost_usd == pytest.approx((250 * 1.0 + 30 * 2.0) / 1e6)
    assert len(fake_provider.requests) == 2
    second = json.dumps(fake_provider.requests[1].body, ensure_ascii=False)
    assert "no JSON object" in second and "Sorry, I cannot help with that." in second


async def test_garbage_falls_back_to_next_deployment(fake_provider):
    base = fake_provider.base_url
    fake_provider.script("cheap-model", Reply(text="lol no json"), then=Reply(text="still no json"))
    fake_provider.script(
        MODEL["ollama"],
        Reply(json={"flow": "cancel", "confidence": 0.8, "reasoning": "r", "entities": {}}),
        repeat=True,
    )
    cfg = config_for(
        provider_section("openai", base, models=["cheap-model"], tier="small"),
        provider_section("ollama", base, tier="balanced"),
    )
    async with Director(cfg) as director:
        result = await director.classify_intent("cancela a reunião de amanhã", strategy="cost")
        events = [item async for item in director.stream_intent("cancela a reunião", strategy="cost")]
    assert result.flow == "cancel"
    assert result.route.deployment == "ollama/llama3.2:1b" and result.route.tried == ["openai/cheap-model"]
    assert result.route.calls == 3 and result.route.reason.startswith("cost:")
    assert [r.model for r in fake_provider.requests[:3]] == ["cheap-model", "cheap-model", "llama3.2:1b"]
    kinds = [e.type for e in events]
    assert kinds[0] == "tier_chosen" and kinds[-2:] == ["usage", "partial"]
    fallback = next(e for e in events if isinstance(e, FallbackEvent))
    assert (fallback.from_deployment, fallback.to, fallback.error_class) == (
        "openai/cheap-model",
        "ollama/llama3.2:1b",
        "InvalidAnswer",
    )
    assert events[-1].done and events[-1].result.flow == "cancel"


async def test_everything_invalid_raises_classification_error(fake_provider):
    leaked = "sk-proj-abcdefghijklmnop123456"
    fake_provider.set_default(Reply(text=f"my key is {leaked} and no json", usage=(10, 5)))
    cfg = config_for(provider_section("openai", fake_provider.base_url, models=["a", "b"]))
    async with Director(cfg) as director:
        with pytest.raises(ClassificationError) as info:
            await director.classify_intent("oi")
    err = info.value
    assert len(err.raw_outputs) == 4 and len(fake_provider.requests) == 4  # 2 deployments x (answer + repair)
    assert all(leaked not in r for r in err.raw_outputs) and "[REDACTED]" in err.raw_outputs[0]
    assert err.usage["prompt_tokens"] == 40 and err.usage["calls"] == 4
    assert {a[0] for a in err.attempts} == {"openai/a", "openai/b"}


async def test_provider_failure_names_each_deployment(fake_provider):
    fake_provider.set_default(Fault.status(503, "upstream overloaded"))
    cfg = config_for(
        provider_section("openai", fake_provider.base_url, tier="small"),
        provider_section("ollama", fake_provider.base_url, tier="balanced"),
    )
    async with Director(cfg) as director:
        with pytest.raises(ProviderError) as info:
            await director.classify_intent("oi", strategy="cost")
    assert not isinstance(info.value, ClassificationError)
    message = str(info.value)
    assert "openai/gpt-4o-mini" in message and "ollama/llama3.2:1b" in message
    assert KEY_VALUE not in message


async def test_provider_error_then_fallback_is_streamed_as_event(fake_provider):
    fake_provider.script(MODEL["openai"], Fault.status(500, "boom"))
    fake_provider.script(
        MODEL["ollama"], Reply(json={"flow": "greeting", "confidence": 0.95, "reasoning": "hi", "entities": {}})
    )
    cfg = config_for(
        provider_section("openai", fake_provider.base_url, tier="small"),
        provider_section("ollama", fake_provider.base_url, tier="balanced"),
    )
    async with Director(cfg) as director:
        items = [i async for i in director.stream_intent("oi", strategy="cost")]
    fallbacks = [i for i in items if isinstance(i, FallbackEvent)]
    assert fallbacks and fallbacks[0].from_deployment == "openai/gpt-4o-mini"
    assert fallbacks[0].to == "ollama/llama3.2:1b" and fallbacks[0].error_class != "InvalidAnswer"
    final = items[-1]
    assert final.done and final.result.flow == "greeting" and final.result.route.calls >= 2


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_stream_flow_known_before_the_end(fake_provider, protocol):
    reasoning = " ".join(["The user clearly asks for a reminder to be created."] * 4)
    answer = {"flow": "create_task", "confidence": 0.91, "reasoning": reasoning, "entities": {"when": "amanhã"}}
    fake_provider.script(MODEL[protocol], Reply(json=answer, token_delay=0.01))
    async with Director(config_for(provider_section(protocol, fake_provider.base_url))) as director:
        started = time.perf_counter()
        first_flow_at = None
        items = []
        async for item in director.stream_intent("me lembra de ligar pra Ana amanhã"):
            items.append(item)
            if first_flow_at is None and getattr(item, "partial_flow", None) == "create_task":
                first_flow_at = time.perf_counter() - started
        total = time.perf_counter() - started
    partials = [i for i in items if isinstance(i, IntentClassificationStream)]
    assert isinstance(items[0], TierChosenEvent) and any(isinstance(i, UsageEvent) for i in items)
    assert partials[-1].done and partials[-1].result.flow == "create_task"
    assert not any(p.done for p in partials[:-1])
    assert first_flow_at is not None and first_flow_at < total / 2, (first_flow_at, total)
    assert len(partials) >= 4  # the reasoning arrived in several steps
    assert partials[-1].result.route.cost_usd > 0


async def test_confidence_threshold_and_history(fake_provider):
    fake_provider.script(
        MODEL["openai"],
        [
            Reply(json={"flow": "greeting", "confidence": 0.3, "reasoning": "unsure", "entities": {}}),
            Reply(json={"flow": "cancel", "confidence": 0.9, "reasoning": "r", "entities": {}}),
        ],
    )
    async with Director(config_for(provider_section("openai", fake_provider.base_url))) as director:
        low = await director.classify_intent("hmm")
        history = [{"role": "user", "content": "marca uma reunião"}, {"role": "assistant", "content": "feito"}]
        with_history = await director.classify_intent("na verdade cancela", history)
    assert low.flow == "out_of_scope" and low.confidence == 0.3
    assert with_history.flow == "cancel"
    sent = fake_provider.requests[1].last_user_text
    assert "user: marca uma reunião" in sent and "assistant: feito" in sent


async def test_input_errors_make_no_request(fake_provider):
    async with Director(config_for(provider_section("openai", fake_provider.base_url))) as director:
        with pytest.raises(InputError):
            await director.classify_intent("\x00 \n ")
        with pytest.raises(InputError, match="max_input_chars"):
            await director.classify_intent("a" * 5000)
        with pytest.raises(InputError):
            async for _ in director.stream_intent(""):
                pass
    assert fake_provider.requests == []


async def test_concurrent_classifications_keep_their_own_accounting(fake_provider):
    def oracle(request):
        text = user_data(request)
        flow = "greeting" if text.startswith("oi") else "cancel"
        return Reply(json={"flow": flow, "confidence": 0.9, "reasoning": text, "entities": {}}, delay=0.02)

    fake_provider.respond_with(MODEL["openai"], oracle)
    async with Director(config_for(provider_section("openai", fake_provider.base_url))) as director:
        texts = [f"oi {i}" if i % 2 else f"cancela {i}" for i in range(12)]
        results = await asyncio.gather(*(director.classify_intent(t) for t in texts))
    for text, result in zip(texts, results, strict=False):
        assert result.flow == ("greeting" if text.startswith("oi") else "cancel")
        assert result.reasoning == text and result.route.calls == 1
