"""Cascade, local tier wiring, eval arithmetic and the simulated oracle: no sockets, no
trained model (a scripted stand-in for the model where the branch logic is under test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from director_llm.config.loading import parse_config_text
from director_llm.director import Director
from director_llm.errors import InputError
from director_llm.evalrun import Answer, EvalRun, cascade_curve, suggestions
from director_llm.evalsim import SIMULATED_MODELS, SimulatedRemotes, parse_spec
from director_llm.local_tier import (
    DEFAULT_ESCALATE_BELOW,
    DEFAULT_LOCAL_CONFIDENCE_THRESHOLD,
    LocalTier,
)

KEY_ENV = "TEST_UNIT_CASCADE_KEY"
OPENAI = f'[providers.openai]\nmodels = ["gpt-4o-mini"]\napi_key_env = "{KEY_ENV}"\n'


def director(extra: str = "", *, thresholds: str = "") -> Director:
    text = f'[providers.local]\nkind = "local"\n{extra}[caching]\nenabled = false\n'
    if thresholds:
        text += f"[intents]\ntier_thresholds = {{ {thresholds} }}\n"
    return Director(parse_config_text(text))


def test_local_tier_settings_from_config(tmp_path: Path) -> None:
    (tmp_path / "extra.jsonl").write_text(json.dumps({"text": "abre um chamado", "intent": "create_task"}) + "\n")
    cfg = parse_config_text(
        f'[providers.embedded]\nkind = "local"\ntraining_file = "{tmp_path / "extra.jsonl"}"\n'
        f'cache_dir = "{tmp_path / "models"}"\nconfidence_threshold = 0.4\nfeatures = "tfidf"\n'
        "[intents]\ntier_thresholds = { local = 0.8 }\n"
    )
    tier = LocalTier.from_config(cfg, base_dir=tmp_path)
    assert tier is not None and tier.deployment == "embedded/intent"
    assert tier.confidence_threshold == 0.4 and tier.escalate_below == 0.8
    assert tier.cache_dir() == tmp_path / "models" and tier.settings().features == "tfidf"
    examples = tier.examples()
    assert ("abre um chamado", "create_task") in examples
    assert any(intent == "greeting" for _, intent in examples)  # built-in flows when none configured
    plain = LocalTier(parse_config_text('[providers.local]\nkind = "local"\n'))
    assert plain.confidence_threshold == DEFAULT_LOCAL_CONFIDENCE_THRESHOLD
    assert plain.escalate_below == DEFAULT_ESCALATE_BELOW
    assert LocalTier.from_config(parse_config_text(OPENAI)) is None
    only = LocalTier(cfg, examples=[("a", "x"), ("b", "y")], extra_examples=[("c", "x")])
    assert only.examples() == [("a", "x"), ("b", "y"), ("c", "x")]


def run_of(gold, local, remote) -> EvalRun:
    return EvalRun(
        texts=[str(i) for i in range(len(gold))],
        gold=gold,
        oos_label="oos",
        local=[Answer(f, c, 1.0) for f, c in local],
        remote={"big": [Answer(f, 0.9, 100.0, 0.01) for f in remote]},
    )


def test_cascade_curve_composes_local_and_remote_answers() -> None:
    run = run_of(["a", "b", "c", "oos"], [("a", 0.9), ("x", 0.4), ("c", 0.8), ("oos", 0.3)], ["a", "b", "x", "oos"])
    by_t = {p.threshold: p for p in cascade_curve(run, "big", [0.0, 0.5, 0.85, 1.0])}
    assert by_t[0.0].accuracy == 0.75 and by_t[0.0].cost_per_1k == 0 and by_t[0.0].escalation_rate == 0
    assert by_t[0.5].accuracy == 1.0 and by_t[0.5].escalation_rate == 0.5
    assert by_t[0.5].cost_per_1k == pytest.approx(5.0)  # 2 of 4 escalated at $0.01
    assert by_t[1.0].accuracy == 0.75 and by_t[1.0].cost_per_1k == pytest.approx(10.0)
    assert by_t[0.85].p99_ms > 100  # escalated latency adds both tiers
    out = {
        "tiers": {"big": {"accuracy": 0.75, "cost_per_1k": 10.0}},
        "cascade": {"big": [vars(p) for p in by_t.values()]},
    }
    s = suggestions(out)["escalate_below:big"]
    assert s["threshold"] == 0.0 and s["cost_cut"] == 1.0  # cheapest point as accurate as always-big


def test_simulate_spec_and_the_oracle() -> None:
    models = parse_spec("accuracy_mini=0.5, accuracy_4o=1.0, latency_ms=20")
    assert [(m.model, m.accuracy, m.latency_ms) for m in models] == [("gpt-4o-mini", 0.5, 20.0), ("gpt-4o", 1.0, 20.0)]
    assert models[1].input_per_million == SIMULATED_MODELS["4o"].input_per_million == 2.5
    for bad in ("", "accuracy_mini=x", "accuracy_gpt5=0.9", "accuracy_4o=1.5"):
        with pytest.raises(InputError):
            parse_spec(bad)
    truth = {f"text {i}": ["a", "b", "c"][i % 3] for i in range(400)}
    sim = SimulatedRemotes(models, truth, ["a", "b", "c"])
    right = [sim.answer(models[0], t)[0] == g for t, g in truth.items()]
    assert 0.4 < sum(right) / len(right) < 0.6
    assert all(sim.answer(models[1], t)[0] == g for t, g in truth.items())
    assert [sim.answer(models[0], t) for t in truth] == [sim.answer(models[0], t) for t in truth]  # reproducible
