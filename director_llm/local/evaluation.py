"""Pure functions for the local tier's evaluation report (used by ``director-llm eval``).

Everything here takes plain Python data (gold labels, predicted labels, confidences,
latencies) and returns plain data, so the CLI can render it and tests can check it
without training anything. The out-of-scope decision is the cascade's: a prediction is
out-of-scope when its confidence is below the threshold *or* its top intent is the
out-of-scope label itself.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "EvalReport",
    "SweepRow",
    "accuracy",
    "apply_threshold",
    "evaluate",
    "expected_calibration_error",
    "in_scope_accuracy",
    "macro_f1",
    "oos_recall",
    "percentile",
    "suggest_threshold",
    "threshold_sweep",
    "top_confusions",
]

#: Thresholds swept by default: 0.00, 0.05, ..., 0.95.
DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(round(i * 0.05, 2) for i in range(20))


@dataclass(frozen=True)
class SweepRow:
    """Metrics at one threshold. ``escalation_rate`` is the share of all messages whose
    confidence is below the threshold (those the cascade sends to a remote tier);
    ``accepted_accuracy`` is the raw accuracy on the others (what the local tier answers
    alone), None when nothing is accepted."""

    threshold: float
    accuracy: float
    in_scope_accuracy: float
    oos_recall: float | None
    escalation_rate: float
    accepted_accuracy: float | None = None


@dataclass(frozen=True)
class EvalReport:
    """The whole report at one threshold, plus the sweep and the latency percentiles."""

    n: int
    threshold: float
    accuracy: float
    in_scope_accuracy: float
    oos_recall: float | None
    macro_f1: float
    escalation_rate: float
    p50_ms: float | None
    p99_ms: float | None
    top_confusions: tuple[tuple[str, str, int], ...]
    sweep: tuple[SweepRow, ...]
    suggested_threshold: float


def apply_threshold(
    predicted: Sequence[str], confidences: Sequence[float], threshold: float, oos_label: str
) -> list[str]:
    """Predicted labels after the cascade's rule: below ``threshold`` -> ``oos_label``."""
    _same_length(predicted, confidences)
    return [oos_label if c < threshold else p for p, c in zip(predicted, confidences, strict=False)]


def accuracy(gold: Sequence[str], predicted: Sequence[str]) -> float:
    """Share of exact matches (0.0 for empty input)."""
    _same_length(gold, predicted)
    return sum(g == p for g, p in zip(gold, predicted, strict=False)) / len(gold) if gold else 0.0


def in_scope_accuracy(gold: Sequence[str], predicted: Sequence[str], oos_label: str) -> float:
    """Accuracy over the examples whose gold label is not out-of-scope."""
    pairs = [(g, p) for g, p in zip(gold, predicted, strict=False) if g != oos_label]
    return sum(g == p for g, p in pairs) / len(pairs) if pairs else 0.0


def oos_recall(gold: Sequence[str], predicted: Sequence[str], oos_label: str) -> float | None:
    """Share of out-of-scope examples predicted out-of-scope; None when there are none."""
    preds = [p for g, p in zip(gold, predicted, strict=False) if g == oos_label]
    return sum(p == oos_label for p in preds) / len(preds) if preds else None


def macro_f1(gold: Sequence[str], predicted: Sequence[str]) -> float:
    """Unweighted mean of per-label F1 over the labels present in ``gold``."""
    _same_length(gold, predicted)
    labels = sorted(set(gold))
    if not labels:
        return 0.0
    tp = Counter(g for g, p in zip(gold, predicted, strict=False) if g == p)
    n_gold = Counter(gold)
    n_pred = Counter(predicted)
    total = 0.0
    for label in labels:
        denom = n_gold[label] + n_pred[label]
        total += 2 * tp[label] / denom if denom else 0.0
    return total / len(labels)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def top_confusions(gold: Sequence[str], predicted: Sequence[str], k: int = 10) -> list[tuple[str, str, int]]:
    """The ``k`` most frequent (gold, predicted, count) errors, most frequent first."""
    counts = Counter((g, p) for g, p in zip(gold, predicted, strict=False) if g != p)
    return [(g, p, n) for (g, p), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


def expected_calibration_error(correct: Sequence[bool], confidences: Sequence[float], bins: int = 10) -> float:
    """ECE: mean |accuracy - confidence| over equal-width confidence bins, weighted by size."""
    _same_length(correct, confidences)
    if not correct:
        return 0.0
    buckets: list[list[tuple[bool, float]]] = [[] for _ in range(bins)]
    for ok, conf in zip(correct, confidences, strict=False):
        buckets[min(int(conf * bins), bins - 1)].append((ok, conf))
    total = 0.0
    for bucket in buckets:
        if bucket:
            acc = sum(ok for ok, _ in bucket) / len(bucket)
            mean_conf = sum(c for _, c in bucket) / len(bucket)
            total += len(bucket) * abs(acc - mean_conf)
    return total / len(correct)


def threshold_sweep(
    gold: Sequence[str],
    predicted: Sequence[str],
    confidences: Sequence[float],
    *,
    oos_label: str,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> list[SweepRow]:
    """Accuracy, in-scope accuracy, out-of-scope recall and escalation rate per threshold."""
    _same_length(gold, predicted)
    rows = []
    for th in thresholds:
        final = apply_threshold(predicted, confidences, th, oos_label)
        escalated = sum(c < th for c in confidences) / len(confidences) if confidences else 0.0
        accepted = [(g, p) for g, p, c in zip(gold, predicted, confidences, strict=False) if c >= th]
        rows.append(
            SweepRow(
                threshold=float(th),
                accuracy=accuracy(gold, final),
                in_scope_accuracy=in_scope_accuracy(gold, final, oos_label),
                oos_recall=oos_recall(gold, final, oos_label),
                escalation_rate=escalated,
                accepted_accuracy=accuracy(*zip(*accepted, strict=False)) if accepted else None,
            )
        )
    return rows


def suggest_threshold(
    gold: Sequence[str],
    predicted: Sequence[str],
    confidences: Sequence[float],
    *,
    oos_label: str,
    min_oos_recall: float = 0.90,
    thresholds: Sequence[float] | None = None,
) -> float:
    """The threshold to configure for this data.

    With out-of-scope examples in ``gold``: the threshold with the best in-scope accuracy
    among those reaching ``min_oos_recall`` (if none does, the one with the best recall).
    Without any: the threshold with the best overall accuracy. Ties go to the *lowest*
    threshold, which escalates the fewest messages. Candidate thresholds default to a
    0.01 grid.
    """
    grid = list(thresholds) if thresholds is not None else [i / 100 for i in range(100)]
    rows = threshold_sweep(gold, predicted, confidences, oos_label=oos_label, thresholds=grid)
    if not rows:
        raise ValueError("no thresholds to choose from")
    if any(g == oos_label for g in gold):
        ok = [r for r in rows if r.oos_recall is not None and r.oos_recall >= min_oos_recall]
        if ok:
            return max(ok, key=lambda r: (r.in_scope_accuracy, -r.threshold)).threshold
        return max(rows, key=lambda r: (r.oos_recall or 0.0, r.in_scope_accuracy, -r.threshold)).threshold
    return max(rows, key=lambda r: (r.accuracy, -r.threshold)).threshold


def evaluate(
    gold: Sequence[str],
    predicted: Sequence[str],
    confidences: Sequence[float],
    *,
    oos_label: str,
    threshold: float | None = None,
    latencies_ms: Sequence[float] = (),
    min_oos_recall: float = 0.90,
    k_confusions: int = 10,
) -> EvalReport:
    """The full report; ``threshold=None`` evaluates at ``suggest_threshold``'s choice."""
    _same_length(gold, predicted)
    _same_length(gold, confidences)
    suggested = suggest_threshold(gold, predicted, confidences, oos_label=oos_label, min_oos_recall=min_oos_recall)
    th = suggested if threshold is None else threshold
    final = apply_threshold(predicted, confidences, th, oos_label)
    return EvalReport(
        n=len(gold),
        threshold=th,
        accuracy=accuracy(gold, final),
        in_scope_accuracy=in_scope_accuracy(gold, final, oos_label),
        oos_recall=oos_recall(gold, final, oos_label),
        macro_f1=macro_f1(gold, final),
        escalation_rate=sum(c < th for c in confidences) / len(confidences) if confidences else 0.0,
        p50_ms=percentile(latencies_ms, 50),
        p99_ms=percentile(latencies_ms, 99),
        top_confusions=tuple(top_confusions(gold, final, k_confusions)),
        sweep=tuple(threshold_sweep(gold, predicted, confidences, oos_label=oos_label)),
        suggested_threshold=suggested,
    )


def _same_length(a: Sequence[object], b: Sequence[object]) -> None:
    if len(a) != len(b):
        raise ValueError(f"length mismatch: {len(a)} vs {len(b)}")
