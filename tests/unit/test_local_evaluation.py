"""Unit tests of the pure evaluation functions behind ``director-llm eval``."""

from __future__ import annotations

import pytest

from director_llm.local.evaluation import (
    accuracy,
    apply_threshold,
    evaluate,
    expected_calibration_error,
    in_scope_accuracy,
    macro_f1,
    oos_recall,
    percentile,
    suggest_threshold,
    threshold_sweep,
    top_confusions,
)

OOS = "oos"
GOLD = ["a", "a", "b", "b", OOS, OOS]
PRED = ["a", "b", "b", "b", "a", OOS]
CONF = [0.9, 0.4, 0.8, 0.7, 0.3, 0.6]


def test_apply_threshold() -> None:
    assert apply_threshold(PRED, CONF, 0.5, OOS) == ["a", OOS, "b", "b", OOS, OOS]
    assert apply_threshold(PRED, CONF, 0.0, OOS) == PRED
    with pytest.raises(ValueError, match="length mismatch"):
        apply_threshold(PRED, CONF[:2], 0.5, OOS)


def test_basic_metrics() -> None:
    assert accuracy(GOLD, PRED) == pytest.approx(4 / 6)
    assert in_scope_accuracy(GOLD, PRED, OOS) == pytest.approx(3 / 4)
    assert oos_recall(GOLD, PRED, OOS) == pytest.approx(1 / 2)
    assert oos_recall(["a"], ["a"], OOS) is None
    assert accuracy([], []) == 0.0


def test_macro_f1() -> None:
    # a: tp1 gold2 pred2 -> 0.5 ; b: tp2 gold2 pred3 -> 0.8 ; oos: tp1 gold2 pred1 -> 2/3
    assert macro_f1(GOLD, PRED) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert macro_f1(["x", "y"], ["x", "y"]) == 1.0


def test_percentile() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile(list(range(101)), 99) == pytest.approx(99.0)


def test_top_confusions() -> None:
    gold = ["a", "a", "a", "b", "b", "c"]
    pred = ["b", "b", "c", "a", "b", "c"]
    assert top_confusions(gold, pred, k=2) == [("a", "b", 2), ("a", "c", 1)]


def test_threshold_sweep_is_monotone_in_escalation() -> None:
    rows = threshold_sweep(GOLD, PRED, CONF, oos_label=OOS, thresholds=[0.0, 0.5, 0.65, 1.0])
    assert [r.escalation_rate for r in rows] == pytest.approx([0.0, 2 / 6, 3 / 6, 1.0])
    assert rows[0].oos_recall == pytest.approx(0.5)
    assert rows[1].oos_recall == pytest.approx(1.0)
    assert rows[1].in_scope_accuracy == pytest.approx(3 / 4)
    assert rows[-1].in_scope_accuracy == 0.0
    assert rows[0].accepted_accuracy == pytest.approx(4 / 6)
    assert rows[2].accepted_accuracy == pytest.approx(3 / 3)  # kept: conf 0.9, 0.8, 0.7
    assert rows[-1].accepted_accuracy is None


def test_suggest_threshold_with_oos() -> None:
    th = suggest_threshold(GOLD, PRED, CONF, oos_label=OOS, min_oos_recall=0.9)
    # Recall reaches 1.0 once 0.3 < th; the lowest such grid point keeps accuracy 3/4.
    assert th == pytest.approx(0.31)
    final = apply_threshold(PRED, CONF, th, OOS)
    assert oos_recall(GOLD, final, OOS) == 1.0


def test_suggest_threshold_without_oos_maximises_accuracy() -> None:
    gold = ["a", "b", "a"]
    pred = ["a", "b", "b"]
    assert suggest_threshold(gold, pred, [0.9, 0.8, 0.2], oos_label=OOS) == 0.0


def test_expected_calibration_error() -> None:
    assert expected_calibration_error([True, False], [1.0, 0.0]) == pytest.approx(0.0)
    assert expected_calibration_error([True, True], [0.5, 0.5]) == pytest.approx(0.5)


def test_evaluate_report() -> None:
    report = evaluate(GOLD, PRED, CONF, oos_label=OOS, latencies_ms=[1.0, 2.0, 3.0])
    assert report.n == 6
    assert report.threshold == report.suggested_threshold
    assert report.oos_recall == 1.0
    assert report.p50_ms == 2.0
    assert report.sweep and report.top_confusions
    fixed = evaluate(GOLD, PRED, CONF, oos_label=OOS, threshold=0.0)
    assert fixed.accuracy == pytest.approx(4 / 6)
    assert fixed.escalation_rate == 0.0
