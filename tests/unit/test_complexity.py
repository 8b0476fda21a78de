"""Complexity estimate: levels on typical requests, local confidence, and its cost."""

import time

import pytest

from director_llm.complexity import COMPLEX_FROM, SIMPLE_BELOW, estimate_complexity, level_of

SIMPLE = ["hi", "thanks!", "Oi, tudo bem?", "ok", "What time is it?"]
COMPLEX = [
    "Explain step by step why this function leaks memory, compare two fixes and their trade-offs:\n"
    "```python\ndef f(xs):\n    cache = {}\n    for x in xs:\n        cache[x] = list(range(x))\n    return cache\n```\n"
    "1. What is the leak?\n2. How would you refactor it?\n3. How would you test it?",
    "Design an architecture for a multi-region event pipeline. Analyze the trade-offs between "
    "exactly-once and at-least-once delivery, explain how you would handle schema evolution, and "
    "compare Kafka with Pulsar for this workload? What would you monitor? How would you plan the "
    "migration from the current batch system? " * 2,
]


@pytest.mark.parametrize("text", SIMPLE)
def test_trivial_messages_are_simple(text: str) -> None:
    assert estimate_complexity([{"role": "user", "content": text}]).level == "simple"


@pytest.mark.parametrize("text", COMPLEX)
def test_long_multi_part_reasoning_and_code_is_complex(text: str) -> None:
    c = estimate_complexity([{"role": "user", "content": text}])
    assert c.level == "complex", c


def test_medium_request() -> None:
    c = estimate_complexity("Summarize this paragraph about the printing press and explain why it mattered.")
    assert c.level == "medium", c


def test_history_depth_raises_the_score() -> None:
    ask = {"role": "user", "content": "Can you summarize what we decided about the release plan?"}
    history = [{"role": r, "content": "..."} for r in ("user", "assistant") * 8]
    assert estimate_complexity([*history, ask]).score > estimate_complexity([ask]).score


def test_last_user_message_is_scored_not_the_system_prompt() -> None:
    system = {"role": "system", "content": "Explain, analyze and compare everything. " * 50}
    assert estimate_complexity([system, {"role": "user", "content": "hi"}]).level == "simple"


def test_local_confidence_moves_the_score_both_ways() -> None:
    msg = [{"role": "user", "content": "Summarize this paragraph about the printing press for a student."}]
    base = estimate_complexity(msg).score
    assert estimate_complexity(msg, local_confidence=0.99).score < base
    assert estimate_complexity(msg, local_confidence=0.1).score > base
    assert estimate_complexity(msg, local_confidence=0.6).score == pytest.approx(base)


def test_levels_thresholds() -> None:
    assert level_of(SIMPLE_BELOW - 0.01) == "simple"
    assert level_of(SIMPLE_BELOW) == "medium"
    assert level_of(COMPLEX_FROM) == "complex"


def test_content_parts_are_read() -> None:
    parts = [{"type": "text", "text": COMPLEX[0]}]
    assert estimate_complexity([{"role": "user", "content": parts}]).level == "complex"


def test_costs_microseconds() -> None:
    msgs = [{"role": "user", "content": COMPLEX[1]}]
    n = 2000
    t0 = time.perf_counter()
    for _ in range(n):
        estimate_complexity(msgs)
    per_call_us = (time.perf_counter() - t0) / n * 1e6
    # ~20-40 us on a quiet machine (scripts/bench_selection.py measures it); this only catches a
    # pathological regression (a backtracking regex costs milliseconds), so it holds on a busy CI box.
    assert per_call_us < 2000, per_call_us
