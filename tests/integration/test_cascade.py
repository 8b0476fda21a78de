"""The cascade against a real fake-provider server: local first, escalation, last resort,
strategy, the chat guard, and the trained model's disk cache.

The local model is the real one (TF-IDF + USE-m3 on the built-in flows), trained once per
session into a temporary cache directory; every Director after the first loads it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from director_llm.config.loading import parse_config_text
from director_llm.director import Director
from director_llm.errors import ProviderError
from director_llm.testing import FakeProviderServer, Fault, RecordedRequest, Reply

KEY_ENV = "TEST_CASCADE_KEY"
MODEL = "gpt-4o-mini"
CONFIDENT = "quero criar uma tarefa para amanhã"


@pytest.fixture(scope="session")
def local_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("local-models")


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-cascade-test-0123456789")


def config(
    base: str | None, cache_dir: Path, *, escalate_below: float = 0.5, extra: str = "", strategy: str = "adaptive"
) -> Director:
    text = f'[llm]\nnum_retries = 0\ntimeout_seconds = 10\ndefault_strategy = "{strategy}"\n{extra}'
    text += f'[providers.local]\nkind = "local"\ncache_dir = "{cache_dir}"\n'
    if base is not None:
        text += (
            f'[providers.openai]\nmodels = ["{MODEL}"]\nbase_url = "{base}/v1"\napi_key_env = "{KEY_ENV}"\n'
            f'[providers.openai.overrides."{MODEL}"]\ninput_price_per_million = 0.15\n'
            "output_price_per_million = 0.6\n"
        )
    text += f"[caching]\nenabled = false\n[intents]\ntier_thresholds = {{ local = {escalate_below} }}\n"
    return Director(parse_config_text(text))


def llm_says(flow: str, confidence: float = 0.9):
    def respond(request: RecordedRequest) -> Reply:
        return Reply(
            json={"flow": flow, "confidence": confidence, "reasoning": "oracle", "entities": {}}, usage=(200, 20)
        )

    return respond


async def test_confident_local_answer_makes_no_http_request(
    fake_provider: FakeProviderServer, local_cache: Path
) -> None:
    fake_provider.respond_with(MODEL, llm_says("greeting"))
    async with config(fake_provider.base_url, local_cache) as d:
        pred = await d.local_tier.apredict(CONFIDENT)
        assert pred.confidence >= 0.5, pred  # precondition of this test
        result = await d.classify_intent(CONFIDENT)
    assert result.flow == "create_task"
    assert result.route.tier == "local" and result.route.cost_usd == 0.0
    assert result.route.deployment == "local/intent"
    assert result.route.reason.startswith("local confident (")
    assert fake_provider.requests == []


async def test_unsure_local_escalates_to_the_llm(fake_provider: FakeProviderServer, local_cache: Path) -> None:
    fake_provider.respond_with(MODEL, llm_says("cancel"))
    async with config(fake_provider.base_url, local_cache, escalate_below=0.999) as d:
        result = await d.classify_intent(CONFIDENT)
    assert result.flow == "cancel"  # the LLM's answer, not the local one
    assert result.route.deployment == f"openai/{MODEL}"
    assert result.route.cost_usd > 0
    assert "local unsure (" in result.route.reason and "< 0.999" in result.route.reason
    assert len(fake_provider.requests) == 1
    assert CONFIDENT in fake_provider.requests[0].last_user_text


async def test_local_is_the_last_resort_when_the_llm_is_down(
    fake_provider: FakeProviderServer, local_cache: Path
) -> None:
    fake_provider.script(MODEL, Fault.status(503), repeat=True)
    async with config(fake_provider.base_url, local_cache, escalate_below=0.999) as d:
        result = await d.classify_intent(CONFIDENT)
    assert result.flow == "create_task"
    assert result.route.tier == "local"
    assert result.route.reason.startswith("local last resort")
    assert f"openai/{MODEL}" in result.route.tried
    assert len(fake_provider.requests) >= 1


async def test_stream_intent_also_falls_back_to_the_local_tier(
    fake_provider: FakeProviderServer, local_cache: Path
) -> None:
    fake_provider.script(MODEL, Fault.status(503), repeat=True)
    async with config(fake_provider.base_url, local_cache, escalate_below=0.999) as d:
        items = [item async for item in d.stream_intent(CONFIDENT)]
    fallbacks = [i for i in items if i.type == "fallback"]
    assert fallbacks and fallbacks[-1].to == "local/intent"
    final = items[-1]
    assert final.done and final.result.flow == "create_task" and final.result.route.tier == "local"
    assert len(fake_provider.requests) >= 1


async def test_quality_strategy_skips_the_local_shortcut(fake_provider: FakeProviderServer, local_cache: Path) -> None:
    fake_provider.respond_with(MODEL, llm_says("create_task"))
    async with config(fake_provider.base_url, local_cache, strategy="quality") as d:
        result = await d.classify_intent(CONFIDENT)
        cost_first = await d.classify_intent(CONFIDENT, strategy="cost")
    assert result.route.tier != "local" and len(fake_provider.requests) == 1
    assert cost_first.route.tier == "local" and len(fake_provider.requests) == 1


async def test_local_deployment_in_a_fallback_chain(fake_provider: FakeProviderServer, local_cache: Path) -> None:
    fake_provider.script(MODEL, Fault.status(503), repeat=True)
    extra = f'[llm.fallbacks]\n"openai/{MODEL}" = ["local/intent"]\nbalanced = ["local/intent"]\n'
    async with config(fake_provider.base_url, local_cache, escalate_below=0.999, extra=extra) as d:
        result = await d.classify_intent(CONFIDENT)
        # A chat must never be answered by the classifier through that chain.
        with pytest.raises(ProviderError):
            await d.acompletion([{"role": "user", "content": "write me a poem"}], model=f"openai/{MODEL}")
    assert result.flow == "create_task"
    assert result.route.tier == "local" and result.route.deployment == "local/intent"
    assert result.route.reason.startswith("local last resort")
    assert [a.outcome for a in result.route.attempts] == ["escalated", "ServiceUnavailableError", "ok"]


async def test_second_start_loads_the_model_from_disk(tmp_path: Path, local_cache: Path) -> None:
    first = config(None, local_cache)
    model = await first.local_tier.aload()
    second = config(None, local_cache)
    loaded = await second.local_tier.aload()
    assert loaded.loaded_from_cache
    assert loaded is not model
    assert second.local_tier.predict(CONFIDENT).intent == first.local_tier.predict(CONFIDENT).intent
    assert list(local_cache.glob("local-intent-*.npz"))
