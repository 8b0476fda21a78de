"""The local tier as the Director sees it: one confidence threshold (issue 14), calibrated
confidences, and filler / emoji-only inputs that are not all greetings. Real trained models
of the built-in flows (cached on disk for the module)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from director_llm.config.loading import parse_config_text
from director_llm.config.models import IntentsConfig
from director_llm.local import LocalIntentModel, LocalPrediction
from director_llm.local_tier import LocalTier

LOCAL = '[providers.local]\nkind = "local"\ncache_dir = "{cache}"\n'


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("local-tier-models")


def tier(cache: Path, extra: str = "", intents: str = "") -> LocalTier:
    text = LOCAL.format(cache=cache) + extra + (f"[intents]\n{intents}\n" if intents else "")
    found = LocalTier.from_config(parse_config_text(text))
    assert found is not None
    return found


def test_the_threshold_a_caller_sees_is_intents_confidence_threshold(cache: Path) -> None:
    default = tier(cache)
    assert default.confidence_threshold == IntentsConfig().confidence_threshold
    assert tier(cache, intents="confidence_threshold = 0.4").confidence_threshold == 0.4
    # The provider key is still accepted, as an explicit override for local answers.
    assert (
        tier(cache, extra="confidence_threshold = 0.3\n", intents="confidence_threshold = 0.8").confidence_threshold
        == 0.3
    )
    # The escalation threshold stays separate.
    assert tier(cache, intents="confidence_threshold = 0.4\ntier_thresholds = { local = 0.9 }").escalate_below == 0.9


def test_classification_below_the_threshold_is_the_fallback_flow(cache: Path) -> None:
    t = tier(cache, intents="confidence_threshold = 0.5")
    low = LocalPrediction("create_task", 0.49, (("create_task", 0.3),))
    high = LocalPrediction("create_task", 0.51, (("create_task", 0.3),))
    a = t.classification(low, started=time.perf_counter(), reason="test")
    b = t.classification(high, started=time.perf_counter(), reason="test")
    assert (a.flow, a.raw_flow, a.confidence) == ("out_of_scope", "create_task", 0.49)
    assert "below 0.5" in a.reasoning
    assert (b.flow, b.raw_flow) == ("create_task", None)


def test_confidence_is_a_calibrated_monotone_map_of_the_score(cache: Path) -> None:
    model = tier(cache).model
    values = [model.confidence_of(s / 2) for s in range(-20, 21)]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert values == sorted(values)
    pred = model.predict("quero criar uma tarefa para amanhã")
    assert pred.score is not None
    assert pred.intent == "create_task" and pred.confidence == pytest.approx(model.confidence_of(pred.score))
    assert pred.confidence >= IntentsConfig().confidence_threshold


@pytest.mark.parametrize("text", ["hmm", "🚀", "🙂🙂🙂", "ok", "...", "👍", "asdf"])
def test_filler_and_emoji_are_the_fallback_flow(cache: Path, text: str) -> None:
    t = tier(cache)
    result = t.classification(t.predict(text), started=time.perf_counter(), reason="test")
    assert result.flow == "out_of_scope", (text, result.reasoning)


def test_a_flow_with_emoji_examples_still_wins_on_them(tmp_path: Path) -> None:
    examples = [
        ("👍", "thanks"),
        ("👍👍", "thanks"),
        ("valeu", "thanks"),
        ("obrigado", "thanks"),
        ("oi", "greeting"),
        ("olá", "greeting"),
        ("bom dia", "greeting"),
        ("qual a capital da frança", "out_of_scope"),
        ("me conta uma piada", "out_of_scope"),
    ]
    model = LocalIntentModel.train(examples)
    assert model.predict("👍").intent == "thanks"
    assert model.predict("🚀").intent == "out_of_scope"


def test_nearest_examples_for_an_llm_prompt(cache: Path) -> None:
    from director_llm.intents.prompts import flow_set

    t = tier(cache)
    flows = flow_set(t.config.intents)
    assert t.nearest_examples(flows, "quero criar uma tarefa", 4) is None or t.loaded  # None until loaded
    t.predict("oi")  # loads the model
    chosen = t.nearest_examples(flows, "preciso criar uma tarefa para amanhã", 4)
    assert chosen is not None and len(chosen) == 4
    assert chosen[0][1] == "create_task"
    assert all(text in flows.flows[name].examples for text, name in chosen)
    assert max(sum(1 for _, n in chosen if n == name) for _, name in chosen) <= 2  # at most 2 per flow
