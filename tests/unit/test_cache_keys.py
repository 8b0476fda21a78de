"""Keys and normalization: canonical, collision-averse, and folding only what is safe."""

from __future__ import annotations

import math

import pytest

from director_llm.cache.keys import (
    fingerprint,
    make_key,
    normalize_for_classification,
    normalize_for_completion,
)


def test_key_ignores_dict_order_but_not_content() -> None:
    a = make_key({"kind": "classify", "v": 1}, {"text": "hi", "temperature": 0})
    b = make_key({"v": 1, "kind": "classify"}, {"temperature": 0, "text": "hi"})
    assert a == b
    assert len(a) == 32 and int(a, 16) >= 0
    assert make_key({"kind": "classify", "v": 1}, {"text": "hi", "temperature": 0.5}) != a
    assert make_key({"kind": "chat", "v": 1}, {"text": "hi", "temperature": 0}) != a


def test_namespace_parts_and_payload_cannot_be_confused() -> None:
    # The same data split differently between the two arguments must not collide.
    assert make_key({"a": 1}, {}) != make_key({}, {"a": 1})


def test_key_rejects_values_without_exact_json_form() -> None:
    with pytest.raises(TypeError):
        make_key({}, {"when": object()})
    with pytest.raises(ValueError):
        make_key({}, {"t": math.nan})


def test_types_that_json_conflates_are_documented_not_hidden() -> None:
    # Tuples and lists have one JSON form: equal keys are the intended behaviour.
    assert make_key({}, {"m": (1, 2)}) == make_key({}, {"m": [1, 2]})
    # ...but 1 and "1" stay distinct.
    assert make_key({}, {"m": 1}) != make_key({}, {"m": "1"})


def test_fingerprint_is_short_stable_and_sensitive() -> None:
    cfg = {"model": "gpt-4o-mini", "flows": ["billing", "support"]}
    assert fingerprint(cfg) == fingerprint(dict(reversed(list(cfg.items()))))
    assert len(fingerprint(cfg)) == 16
    assert fingerprint(cfg) != fingerprint({**cfg, "flows": ["billing"]})


def test_classification_normalization_folds_case_width_and_spaces() -> None:
    assert normalize_for_classification("  Quero\tCANCELAR\n meu  plano ") == "quero cancelar meu plano"
    assert normalize_for_classification("ＣＡＮＣＥＬ") == "cancel"  # full-width (NFKC)
    assert normalize_for_classification("Straße") == normalize_for_classification("STRASSE")


def test_completion_normalization_keeps_what_can_change_the_answer() -> None:
    code = "def f():\r\n    return x²\r\n"
    out = normalize_for_completion(code)
    assert out == "def f():\n    return x²"  # indentation, case and superscript kept
    assert normalize_for_completion("US") != normalize_for_completion("us")
    # Canonically equivalent forms (é precomposed vs e + combining accent) do share a key.
    assert normalize_for_completion("caf\u00e9") == normalize_for_completion("cafe\u0301")
