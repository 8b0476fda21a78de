"""What a model sends cannot crash a classification or bend its result (issue 13).

A model's answer is untrusted input: the fake OpenAI server plays hostile answers (entities
nested 300 deep, megabyte strings, out-of-range confidences) to the real Director and CLI.
Whatever arrives, ``classify --json`` and ``--stream --json`` print valid JSON, results stay
within the bounds of ``intents.models``, and a bad confidence goes to the repair round.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from director_llm import Director
from director_llm.config.loading import parse_config_text
from director_llm.errors import ClassificationError
from director_llm.intents.models import (
    MAX_ENTITY_DEPTH,
    MAX_ENTITY_NODES,
    MAX_ENTITY_STRING_CHARS,
    MAX_RAW_FLOW_CHARS,
    MAX_REASONING_CHARS,
    STREAM_ITEM_ADAPTER,
    IntentClassification,
    check_json_bounds,
)
from director_llm.testing import Reply

KEY_ENV = "TEST_SECURITY_KEY"
MODEL = "gpt-4o-mini"


def config(base: str) -> str:
    return textwrap.dedent(f"""
        [llm]
        num_retries = 0
        [providers.openai]
        models = ["{MODEL}"]
        base_url = "{base}/v1"
        api_key_env = "{KEY_ENV}"
        [caching]
        enabled = false
        """)


@pytest.fixture
def director(fake_provider, monkeypatch) -> Director:
    monkeypatch.setenv(KEY_ENV, "sk-test-security-0123456789")
    return Director(parse_config_text(config(fake_provider.base_url)))


@pytest.fixture
def config_file(tmp_path: Path, fake_provider, monkeypatch) -> Path:
    monkeypatch.setenv(KEY_ENV, "sk-test-security-0123456789")
    monkeypatch.setenv("COLUMNS", "120")
    path = tmp_path / "director.toml"
    path.write_text(config(fake_provider.base_url), encoding="utf-8")
    return path


def nested(levels: int, leaf: Any = "x") -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(levels - 1):
        node["a"] = {}
        node = node["a"]
    node["a"] = leaf
    return root


def answer(**fields: Any) -> dict[str, Any]:
    return {"flow": "create_task", "confidence": 0.9, "reasoning": "wants a task", "entities": {}, **fields}


def assert_bounded(result: IntentClassification) -> None:
    check_json_bounds(
        result.entities,
        max_depth=MAX_ENTITY_DEPTH,
        max_nodes=MAX_ENTITY_NODES,
        max_string_chars=MAX_ENTITY_STRING_CHARS,
    )
    assert len(result.reasoning) <= MAX_REASONING_CHARS
    assert result.raw_flow is None or len(result.raw_flow) <= MAX_RAW_FLOW_CHARS
    assert 0.0 <= result.confidence <= 1.0
    round_trip = IntentClassification.model_validate_json(result.model_dump_json())
    assert round_trip.entities == result.entities


def run_cli(*args: str) -> Any:
    from typer.testing import CliRunner

    from director_llm.cli.app import app

    return CliRunner().invoke(app, ["classify", *args])


DEEP = answer(entities=nested(300))


def test_cli_json_survives_entities_300_deep(config_file, fake_provider):
    fake_provider.set_default(Reply(json=DEEP))
    res = run_cli("cria uma tarefa para amanhã", "--json", "--config", str(config_file))
    assert res.exit_code == 0, res.output
    result = IntentClassification.model_validate(json.loads(res.stdout))
    assert result.flow == "create_task"
    assert_bounded(result)
    assert result.entities == nested(MAX_ENTITY_DEPTH - 1, {})  # the levels that fit, no deeper


def test_cli_stream_json_survives_entities_300_deep(config_file, fake_provider):
    fake_provider.set_default(Reply(json=DEEP, chunk_chars=200))
    res = run_cli("cria uma tarefa para amanhã", "--stream", "--json", "--config", str(config_file))
    assert res.exit_code == 0, res.output
    items = [STREAM_ITEM_ADAPTER.validate_json(line) for line in res.stdout.splitlines()]
    final = items[-1]
    assert final.done and final.result.flow == "create_task"
    assert_bounded(final.result)
    for item in items:
        if item.type == "partial":
            check_json_bounds(item.entities, max_depth=MAX_ENTITY_DEPTH)


HOSTILE = {
    "entities 300 deep": answer(entities=nested(300)),
    "entities 5000 deep, as a list": answer(entities="__DEEP_LIST__"),
    "megabyte entity string": answer(entities={"note": "y" * 1_000_000}),
    "megabyte entity key": answer(entities={"k" * 1_000_000: 1}),
    "10k entity keys": answer(entities={f"k{i}": i for i in range(10_000)}),
    "huge integer entity": {"flow": "create_task", "confidence": 0.9, "entities": {"n": "__BIGINT__"}},
    "reasoning as 100k-item list": answer(reasoning=["step."] * 100_000),
    "reasoning as a deep object": answer(reasoning=nested(200, "why")),
    "megabyte reasoning": answer(reasoning="because " * 150_000),
    "10 kB flow name": answer(flow="create_task" * 1000),
    "flow name is an object": answer(flow=nested(50)),
}


@pytest.mark.parametrize("name", list(HOSTILE), ids=list(HOSTILE))
async def test_hostile_answers_give_bounded_serializable_results(director, fake_provider, name):
    body = (
        json.dumps(HOSTILE[name])
        .replace('"__BIGINT__"', "9" * 5000)
        .replace('"__DEEP_LIST__"', "[" * 5000 + "]" * 5000)
    )  # past Python's own json recursion
    fake_provider.set_default(Reply(text=body))
    try:
        result = await director.classify_intent("cria uma tarefa para amanhã")
    except ClassificationError:
        # Refusing an answer is fine (e.g. a flow that is an object); crashing is not.
        assert name in {"flow name is an object", "entities 5000 deep, as a list"}, name
    else:
        assert result.flow in {"create_task", "out_of_scope"}
        assert_bounded(result)
    await director.aclose()


async def test_stream_of_a_hostile_answer_yields_only_serializable_items(director, fake_provider):
    fake_provider.set_default(
        Reply(json=answer(entities=nested(300, "z" * 5000), reasoning=["a."] * 5000), chunk_chars=500)
    )
    items = [item async for item in director.stream_intent("cria uma tarefa")]
    for item in items:
        STREAM_ITEM_ADAPTER.validate_json(item.model_dump_json())
    assert items[-1].done
    assert_bounded(items[-1].result)
    await director.aclose()


@pytest.mark.parametrize("bad", ["150%", 150, 1.5, -0.2, "-5%", "1e400", "101%", 100.5])
async def test_out_of_range_confidence_is_repaired_not_rescaled(director, fake_provider, bad):
    fake_provider.script(MODEL, [Reply(json=answer(confidence=bad)), Reply(json=answer(confidence=0.77))])
    result = await director.classify_intent("cria uma tarefa para amanhã")
    assert result.confidence == 0.77 and result.route.repaired  # the repair round's answer
    assert len(fake_provider.requests) == 2
    repair_prompt = json.dumps(fake_provider.requests[1].messages)
    assert "confidence" in repair_prompt  # the model is told what was wrong
    await director.aclose()


async def test_a_model_that_insists_on_150_percent_gets_no_result(director, fake_provider):
    fake_provider.set_default(Reply(json=answer(confidence="150%")))
    with pytest.raises(ClassificationError):
        await director.classify_intent("cria uma tarefa para amanhã")
    await director.aclose()


@pytest.mark.parametrize(("given", "expected"), [("90%", 0.9), (90, 0.9), ("0.9", 0.9), ("100%", 1.0), (2, 0.02)])
async def test_in_range_confidences_are_still_read(director, fake_provider, given, expected):
    fake_provider.set_default(Reply(json=answer(confidence=given)))
    result = await director.classify_intent("cria uma tarefa para amanhã")
    assert result.confidence == pytest.approx(expected)
    assert not result.route.repaired
    await director.aclose()
