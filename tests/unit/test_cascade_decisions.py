"""The cascade's decisions (local answer, escalation, last resort) without sockets: the local
model is replaced by a scripted prediction, so only the branch logic is under test."""

from __future__ import annotations

import pytest

from director_llm import cascade
from director_llm.config.loading import parse_config_text
from director_llm.director import Director
from director_llm.local import LocalPrediction
from director_llm.local_tier import LocalTier
from director_llm.route import Attempt

KEY_ENV = "TEST_UNIT_CASCADE_KEY"
OPENAI = f'[providers.openai]\nmodels = ["gpt-4o-mini"]\napi_key_env = "{KEY_ENV}"\n'


def director(extra: str = "", *, thresholds: str = "") -> Director:
    text = f'[providers.local]\nkind = "local"\n{extra}[caching]\nenabled = false\n'
    if thresholds:
        text += f"[intents]\ntier_thresholds = {{ {thresholds} }}\n"
    return Director(parse_config_text(text))


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch):
    """Make the local tier answer ``(intent, confidence)`` without training a model."""

    def script(intent: str, confidence: float) -> None:
        async def apredict(self: LocalTier, text: str) -> LocalPrediction:
            return LocalPrediction(intent, confidence, ((intent, confidence),))

        monkeypatch.setattr(LocalTier, "apredict", apredict)

    return script


async def test_local_only_config_answers_locally_below_the_threshold_with_the_fallback(scripted) -> None:
    scripted("create_task", 0.05)
    async with director() as d:
        result = await d.classify_intent("hmm")
    assert result.flow == "out_of_scope" and result.raw_flow == "create_task"
    assert result.route.tier == "local" and result.route.cost_usd == 0 and result.route.calls == 0
    assert result.route.reason.startswith("local only: no usable LLM tier")
    assert result.route.attempts == [Attempt("local/intent", "ok")]


async def test_confident_local_answer_when_llm_tiers_exist(scripted, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-unit-0000000000")
    scripted("greeting", 0.93)
    async with director(OPENAI, thresholds="local = 0.7") as d:
        result = await d.classify_intent("oi")
        assert not d.dispatcher.loaded  # answered without LiteLLM
    assert result.flow == "greeting"
    assert result.route.reason == "local confident (0.93 >= 0.7)"
    assert result.route.deployment == "local/intent" and result.route.provider == "local"


async def test_missing_key_means_local_only(scripted, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    scripted("greeting", 0.1)
    async with director(OPENAI) as d:
        result = await d.classify_intent("oi")
    assert result.route.reason.startswith("local only")


def test_quality_strategy_and_pinned_tier_skip_the_shortcut() -> None:
    assert cascade.local_first("adaptive", pinned=False, llm_usable=True)
    assert not cascade.local_first("quality", pinned=False, llm_usable=True)
    assert not cascade.local_first("cost", pinned=True, llm_usable=True)
    assert cascade.local_first("quality", pinned=True, llm_usable=False)  # nothing else can answer


def test_decisions_and_their_reasons() -> None:
    words = [{"role": "user", "content": "oi"}]
    sure = cascade.decide(0.9, escalate_below=0.55, fallback_below=0.6, llm_usable=True, words=words)
    assert (sure.action, sure.reason) == ("answer", "local confident (0.90 >= 0.55)")
    unsure = cascade.decide(0.31, escalate_below=0.55, fallback_below=0.6, llm_usable=True, words=words)
    assert (unsure.action, unsure.reason) == ("escalate", "local unsure (0.31 < 0.55)")
    hard = [
        {
            "role": "user",
            "content": "Explain step by step why TCP and UDP differ, compare their trade-offs, "
            "then:\n1. design a protocol\n2. implement it in python\n```python\ndef f(x):\n    return x\n```\n"
            + "and prove it is correct. "
            * 60,
        }
    ]
    complex_ = cascade.decide(0.95, escalate_below=0.55, fallback_below=0.6, llm_usable=True, words=hard)
    assert complex_.action == "escalate" and "but the request is" in complex_.reason
    alone = cascade.decide(0.2, escalate_below=0.55, fallback_below=0.6, llm_usable=False, words=words)
    assert alone.action == "answer" and alone.reason.startswith("local only")
    assert (
        cascade.last_resort_reason(RuntimeError("boom\nmore"))
        == "local last resort: the LLM tiers failed (RuntimeError: boom)"
    )
