"""Answer parsing and input hygiene: the messy shapes real models return."""

from __future__ import annotations

import tomllib

import pytest

from director_llm.config.loading import validate_config_dict
from director_llm.errors import InputError
from director_llm.intents.models import (
    MAX_ENTITY_DEPTH,
    MAX_ENTITY_NODES,
    MAX_ENTITY_STRING_CHARS,
    IntentClassification,
    IntentClassificationStream,
    Route,
    check_json_bounds,
)
from director_llm.intents.parsing import (
    MAX_ANSWER_CHARS,
    AnswerInvalid,
    bound_entities,
    clean_input,
    coerce_confidence,
    extract_object,
    map_flow,
    normalize_name,
    parse_answer,
    parse_partial,
    reasoning_steps,
)
from director_llm.intents.prompts import flow_set

FLOWS_TOML = """
[intents]
confidence_threshold = 0.6
[intents.flows.greeting]
description = "The user says hello"
examples = ["oi", "hello there"]
[intents.flows.create_task]
description = "The user wants to create a task or reminder"
examples = ["cria uma tarefa para amanhã", "remind me to call Ana"]
[intents.flows.cancel]
description = "The user cancels something"
examples = ["cancela isso"]
"""


def _intents(text: str):
    """The ``[intents]`` of a config fragment: schema only (a whole config also needs a provider)."""
    return validate_config_dict(tomllib.loads(text)).intents


@pytest.fixture(scope="module")
def flows():
    return flow_set(_intents(FLOWS_TOML))


@pytest.mark.parametrize(
    "raw",
    [
        '{"flow": "create_task", "confidence": 0.9, "reasoning": "asks for a task", "entities": {}}',
        '```json\n{"flow": "create_task", "confidence": 0.9, "reasoning": "x", "entities": {}}\n```',
        'Sure! Here is the classification:\n{"flow": "create_task", "confidence": 0.9, "reasoning": "x"}\nHope it helps.',
        '{"flow": "create_task", "confidence": 0.9, "reasoning": "x", "entities": {},}',
        '{"flow": "create_task", "confidence": 0.9, "reasoning": "the user wants a tas',
        '{"flow": "CREATE TASK", "confidence": "0.9"}',
        '{"flow": "Create-Task", "confidence": "90%"}',
        '{"flow": "criar_tarefa", "confidence": 90}',
        '{"Intent": "create_task", "Confidence": "high"}',
        "{'flow': 'create_task', 'confidence': 0.9}",
        '[{"flow": "create_task", "confidence": 0.9}]',
    ],
)
def test_messy_shapes_parse_to_the_flow(flows, raw):
    parsed = parse_answer(raw, flows)
    assert parsed.flow == "create_task"
    assert 0.84 <= parsed.confidence <= 0.91


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "I think the user wants a task.",
        "{}",
        '{"confidence": 0.9}',
        '{"flow": "create_task"}',
        '{"flow": "create_task", "confidence": "very sure"}',
        '{"flow": 42, "confidence": 0.9}',
        '{"flow": "greeting", "confidence": 7000}',
    ],
)
def test_unusable_answers_raise(flows, raw):
    with pytest.raises(AnswerInvalid):
        parse_answer(raw, flows)


def test_invented_flow_becomes_fallback(flows):
    parsed = parse_answer('{"flow": "admin", "confidence": 1.0, "reasoning": "user asked"}', flows)
    assert parsed.flow == "out_of_scope"
    assert parsed.raw_flow == "admin"
    assert "admin" in parsed.reasoning


def test_low_confidence_becomes_fallback(flows):
    parsed = parse_answer('{"flow": "greeting", "confidence": 0.59}', flows)
    assert parsed.flow == "out_of_scope"
    assert parse_answer('{"flow": "greeting", "confidence": 0.6}', flows).flow == "greeting"


def test_flow_mapped_through_examples(flows):
    assert map_flow("Hello there", flows) == "greeting"
    assert map_flow("saudação", flows) == "greeting"
    assert map_flow("cancelar", flows) == "cancel"
    assert map_flow("greetings", flows) == "greeting"  # close match
    assert map_flow("delete_everything", flows) is None
    assert map_flow("", flows) is None


def test_entities_and_reasoning_shapes(flows):
    parsed = parse_answer(
        '{"flow": "create_task", "confidence": 0.8, "reasoning": ["a.", "b."], "entities": ["amanhã"]}', flows
    )
    assert parsed.reasoning == "a. b."
    assert parsed.entities == {"items": ["amanhã"]}
    assert reasoning_steps("First. Second! Third") == ["First.", "Second!", "Third"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.5, 0.5),
        ("0.5", 0.5),
        ("0,5", 0.5),
        ("50%", 0.5),
        (50, 0.5),
        ("alta", 0.85),
        ("LOW", 0.3),
        (1, 1.0),
        (0, 0.0),
        (-0.1, None),
        ("abc", None),
        (None, None),
        (True, None),
        (float("nan"), None),
        # Out of range is unreadable (repair round), never rescaled: "150%" once was 0.015.
        ("150%", None),
        ("101%", None),
        (150, None),
        (1.5, None),
        ("1.5", None),
        (100.5, None),
        ("-5%", None),
        (float("inf"), None),
        ("1e400", None),
        (10**400, None),
        ("100%", 1.0),
        (100, 1.0),
        (2, 0.02),
        ("2%", 0.02),
    ],
)
def test_confidence_coercion(value, expected):
    assert coerce_confidence(value) == expected


def test_normalize_name():
    assert normalize_name("  Criar Tarefa! ") == "criar_tarefa"
    assert normalize_name("Saudação") == "saudacao"


def test_extract_object_no_json():
    with pytest.raises(AnswerInvalid):
        extract_object("no braces at all")


def test_partial_reports_only_complete_values(flows):
    assert parse_partial('{"flow": "crea', flows).flow is None
    p = parse_partial('```json\n{"flow": "create_task", "confidence": 0.', flows)
    assert p.flow == "create_task" and p.confidence is None
    p = parse_partial('{"flow": "create_task", "confidence": 0.95, "reasoning": "The user as', flows)
    assert p.confidence == 0.95 and p.reasoning == "The user as"
    assert parse_partial('{"flow": "admin", "confidence"', flows).flow == "out_of_scope"
    assert parse_partial("thinking...", flows).flow is None


def test_clean_input_strips_controls_and_limits():
    assert clean_input("  oi\x00\x07 tudo\u200b bem\r\n ", max_chars=100) == "oi tudo bem"
    with pytest.raises(InputError, match="empty"):
        clean_input(" \x00\x01 ", max_chars=10)
    with pytest.raises(InputError, match="max_input_chars"):
        clean_input("x" * 11, max_chars=10)
    assert clean_input("x" * 11, max_chars=10, truncate=True) == "x" * 10
    assert clean_input("olá 👋 mundo", max_chars=100) == "olá 👋 mundo"
    with pytest.raises(InputError):
        clean_input(None, max_chars=10)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------- bounds
def _nested(levels: int, leaf: object = 1) -> dict:
    root: dict = {}
    node = root
    for _ in range(levels - 1):
        node["a"] = {}
        node = node["a"]
    node["a"] = leaf
    return root


HOSTILE_ENTITIES = [
    _nested(300),
    _nested(MAX_ENTITY_DEPTH + 1),
    [[[[[[[[[["deep list"]]]]]]]]]],
    {"s": "x" * 100_000},
    {"k" * 5000: "v"},
    {f"k{i}": [i] * 3 for i in range(5000)},
    {"n": 10**500, "f": float("inf"), "nan": float("nan"), "obj": object(), "t": (1, 2)},
    list(range(10_000)),
    "just a string",
    42,
    None,
]


@pytest.mark.parametrize("value", HOSTILE_ENTITIES, ids=lambda v: type(v).__name__ + str(len(str(v)[:9000])))
def test_bound_entities_always_fits_the_model(value):
    bounded = bound_entities(value)
    assert isinstance(bounded, dict)
    check_json_bounds(
        bounded, max_depth=MAX_ENTITY_DEPTH, max_nodes=MAX_ENTITY_NODES, max_string_chars=MAX_ENTITY_STRING_CHARS
    )
    result = IntentClassification(flow="greeting", confidence=0.9, entities=bounded)
    assert IntentClassification.model_validate_json(result.model_dump_json()).entities == bounded


def test_bound_entities_keeps_what_fits_unchanged():
    fine = {
        "date": "2025-01-02",
        "people": ["Ana", "Rui"],
        "where": {"city": "Porto", "geo": [41.1, -8.6]},
        "n": 3,
        "ok": True,
        "none": None,
    }
    assert bound_entities(fine) == fine
    assert bound_entities(_nested(MAX_ENTITY_DEPTH, "leaf")) == _nested(MAX_ENTITY_DEPTH, "leaf")
    # Cut below the last level that fits (its container stays, empty), not dropped whole.
    assert bound_entities(_nested(MAX_ENTITY_DEPTH + 1, "leaf")) == _nested(MAX_ENTITY_DEPTH - 1, {})


def test_models_refuse_what_is_out_of_bounds():
    from pydantic import ValidationError

    for bad in (
        _nested(MAX_ENTITY_DEPTH + 1),
        {"s": "x" * (MAX_ENTITY_STRING_CHARS + 1)},
        {str(i): i for i in range(MAX_ENTITY_NODES + 1)},
        {"f": float("inf")},
    ):
        with pytest.raises(ValidationError):
            IntentClassification(flow="greeting", confidence=0.5, entities=bad)
        with pytest.raises(ValidationError):
            IntentClassificationStream(entities=bad)
    with pytest.raises(ValidationError):
        IntentClassification(flow="greeting", confidence=0.5, reasoning="r" * 5000)
    with pytest.raises(ValidationError):
        IntentClassification(flow="greeting", confidence=0.5, raw_flow="f" * 500)
    with pytest.raises(ValidationError):
        Route(planted=_nested(50))
    assert Route(budget={"window": "hour", "reserved": [1, 2]}).model_extra == {
        "budget": {"window": "hour", "reserved": [1, 2]}
    }


def test_parse_answer_bounds_every_free_field(flows):
    import json

    raw = json.dumps(
        {"flow": "Greeting", "confidence": 0.9, "reasoning": [["deep", ["why"]]] * 5000, "entities": _nested(300)}
    )
    parsed = parse_answer(raw, flows)
    assert parsed.flow == "greeting" and len(parsed.reasoning) <= 600
    assert parsed.reasoning.startswith("deep why deep why")
    check_json_bounds(parsed.entities, max_depth=MAX_ENTITY_DEPTH)
    long_flow = parse_answer(json.dumps({"flow": "greeting" * 1000, "confidence": 0.9}), flows)
    assert long_flow.flow == "out_of_scope" and len(long_flow.raw_flow) == 200
    # Only the first MAX_ANSWER_CHARS are read: what follows cannot cost anything.
    padded = '{"flow": "greeting", "confidence": 0.9, "reasoning": "' + "z" * (2 * MAX_ANSWER_CHARS) + '"}'
    assert parse_answer(padded, flows).flow == "greeting"


def test_parse_partial_bounds_entities_and_reasoning(flows):
    import json

    text = json.dumps({"flow": "greeting", "confidence": 0.9, "entities": _nested(300), "reasoning": "r" * 5000})
    partial = parse_partial(text[: len(text) - 3], flows)
    check_json_bounds(partial.entities, max_depth=MAX_ENTITY_DEPTH)
    assert len(partial.reasoning) <= 600
    IntentClassificationStream(partial_flow=partial.flow, entities=partial.entities).model_dump_json()


def test_confidence_error_message_is_short_whatever_was_sent(flows):
    import json

    with pytest.raises(AnswerInvalid) as info:
        parse_answer(json.dumps({"flow": "greeting", "confidence": {"x": ["y" * 10_000] * 100}}), flows)
    assert len(str(info.value)) < 300
