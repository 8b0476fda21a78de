"""``director-llm eval``: run the local tier, the cascade or an LLM tier over a labelled set.

How a cascade is measured: every message is classified once by the local tier and once by
each remote group the cascade may escalate to. The cascade's answer at threshold ``t`` is
then the local answer when its confidence is ``>= t`` and the remote one otherwise, so one
pass gives the whole accuracy-vs-cost curve *and* the always-remote baseline it is compared
with (the eval itself costs what always-remote costs: use ``--limit`` against paid APIs).
This ignores two runtime refinements of the cascade (a confident local answer to a complex
request still escalates; a failed remote call falls back to local), both rare on
single-sentence intent sets.

Labels: CLINC's ``oos`` is the config's fallback flow. When the set's labels are not the
config's flows, the flows are rebuilt from the training data (one per label, its name as
description and three examples), so the LLM tiers are asked the same question.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from director_llm.config.models import DirectorConfig, FlowConfig
from director_llm.errors import DirectorError, InputError

if TYPE_CHECKING:
    from director_llm.director import Director

__all__ = [
    "Answer",
    "CurvePoint",
    "EvalRun",
    "cascade_curve",
    "collect",
    "eval_config",
    "load_eval_set",
    "report",
    "split_run",
    "subset",
]

CLINC_OOS = "oos"
ERROR_FLOW = "<error>"
DEFAULT_CONCURRENCY = 8
#: Escalation thresholds of the cascade curve: 0.00, 0.05, ..., 1.00.
CURVE_THRESHOLDS: tuple[float, ...] = tuple(round(i * 0.05, 2) for i in range(21))


@dataclass(frozen=True)
class Answer:
    """One tier's answer to one message."""

    flow: str
    confidence: float
    latency_ms: float
    cost_usd: float = 0.0
    intent: str | None = None
    """Local tier: the top intent before the out-of-scope threshold."""


@dataclass
class EvalRun:
    """Everything measured: gold labels, the local answers, each remote group's answers."""

    texts: list[str]
    gold: list[str]
    oos_label: str
    local: list[Answer] | None = None
    remote: dict[str, list[Answer]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    simulated: bool = False


@dataclass(frozen=True)
class CurvePoint:
    """The cascade (local -> ``group``) at one escalation threshold."""

    group: str
    threshold: float
    accuracy: float
    in_scope_accuracy: float
    oos_recall: float | None
    escalation_rate: float
    cost_per_1k: float
    p50_ms: float | None
    p99_ms: float | None


def load_eval_set(path: Path, *, oos_label: str, limit: int | None = None) -> list[tuple[str, str]]:
    """``{"text", "intent"}`` lines, CLINC's ``oos`` renamed to ``oos_label``, first ``limit``."""
    from director_llm.local import load_training_file

    items = [(t, oos_label if i == CLINC_OOS else i) for t, i in load_training_file(path)]
    if not items:
        raise InputError(f"{path} has no examples")
    return items[:limit] if limit else items


def eval_config(
    config: DirectorConfig, labels: set[str], train: Sequence[tuple[str, str]]
) -> tuple[DirectorConfig, str | None]:
    """The config to evaluate with, and a note when its flows were rebuilt from ``train``."""
    from director_llm.intents.prompts import flow_set

    fallback = config.intents.fallback_flow
    known = set(flow_set(config.intents).names)
    if labels <= known | {fallback}:
        return config, None
    examples: dict[str, list[str]] = defaultdict(list)
    for text, intent in train:
        intent = fallback if intent == CLINC_OOS else intent
        if len(examples[intent]) < 3:
            examples[intent].append(text)
    names = sorted((labels | set(examples)) - {fallback})
    flows = {n: FlowConfig(description=f"intent: {n.replace('_', ' ')}", examples=examples.get(n, [])) for n in names}
    intents = config.intents.model_copy(update={"flows": flows})
    note = (
        f"the set's labels are not the config's flows: {len(flows)} flows built from the training data "
        "(name as description, 3 examples each)"
    )
    return config.model_copy(update={"intents": intents}), note


async def _local_answers(director: Director, texts: Sequence[str], tick: Callable[[], None]) -> list[Answer]:
    tier = director.local_tier
    if tier is None:
        raise InputError('this config has no local tier ([providers.local] kind = "local")')
    await tier.aload()
    out = []
    for text in texts:
        started = time.perf_counter()
        pred = tier.predict(text)
        ms = (time.perf_counter() - started) * 1000
        out.append(Answer(flow=tier.flow_of(pred), confidence=pred.confidence, latency_ms=ms, intent=pred.intent))
        tick()
        if len(out) % 64 == 0:
            await asyncio.sleep(0)  # let the progress bar and the fake servers breathe
    return out


async def _remote_answers(
    director: Director, group: str, texts: Sequence[str], tick: Callable[[], None], concurrency: int
) -> list[Answer]:
    classifier = director.classifier
    sem = asyncio.Semaphore(concurrency)

    async def one(text: str) -> Answer:
        async with sem:
            started = time.perf_counter()
            try:
                r = await classifier.classify_llm(text, group=group)
                answer = Answer(
                    flow=r.flow,
                    confidence=r.confidence,
                    cost_usd=r.route.cost_usd,
                    latency_ms=(time.perf_counter() - started) * 1000,
                )
            except DirectorError as exc:
                cost = float((getattr(exc, "usage", None) or {}).get("cost_usd") or 0.0)
                answer = Answer(
                    flow=ERROR_FLOW, confidence=0.0, cost_usd=cost, latency_ms=(time.perf_counter() - started) * 1000
                )
            tick()
            return answer

    return list(await asyncio.gather(*(one(t) for t in texts)))


async def collect(
    director: Director,
    items: Sequence[tuple[str, str]],
    *,
    local: bool,
    groups: Sequence[str],
    tick: Callable[[], None] = lambda: None,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> EvalRun:
    """Classify every item with the local tier (when ``local``) and with each of ``groups``."""
    texts = [t for t, _ in items]
    run = EvalRun(texts=texts, gold=[g for _, g in items], oos_label=director.config.intents.fallback_flow)
    if local:
        run.local = await _local_answers(director, texts, tick)
    for group in groups:
        run.remote[group] = await _remote_answers(director, group, texts, tick, concurrency)
    return run


def _p(values: Sequence[float], q: float) -> float | None:
    from director_llm.local.evaluation import percentile

    return percentile(list(values), q)


def cascade_curve(run: EvalRun, group: str, thresholds: Sequence[float] = CURVE_THRESHOLDS) -> list[CurvePoint]:
    """The cascade local -> ``group`` at each escalation threshold (see the module docstring)."""
    from director_llm.local.evaluation import accuracy, in_scope_accuracy, oos_recall

    assert run.local is not None
    remote = run.remote[group]
    n = len(run.gold)
    points = []
    for t in thresholds:
        final, cost, lat, esc = [], 0.0, [], 0
        for loc, rem in zip(run.local, remote, strict=False):
            if loc.confidence >= t:
                final.append(loc.flow)
                lat.append(loc.latency_ms)
            else:
                esc += 1
                final.append(rem.flow)
                cost += rem.cost_usd
                lat.append(loc.latency_ms + rem.latency_ms)
        points.append(
            CurvePoint(
                group=group,
                threshold=t,
                accuracy=accuracy(run.gold, final),
                in_scope_accuracy=in_scope_accuracy(run.gold, final, run.oos_label),
                oos_recall=oos_recall(run.gold, final, run.oos_label),
                escalation_rate=esc / n,
                cost_per_1k=cost / n * 1000,
                p50_ms=_p(lat, 50),
                p99_ms=_p(lat, 99),
            )
        )
    return points


def _tier_summary(run: EvalRun, answers: Sequence[Answer]) -> dict[str, Any]:
    from director_llm.local.evaluation import (
        accuracy,
        in_scope_accuracy,
        macro_f1,
        oos_recall,
        top_confusions,
    )

    flows = [a.flow for a in answers]
    n = len(flows)
    return {
        "accuracy": accuracy(run.gold, flows),
        "in_scope_accuracy": in_scope_accuracy(run.gold, flows, run.oos_label),
        "oos_recall": oos_recall(run.gold, flows, run.oos_label),
        "macro_f1": macro_f1(run.gold, flows),
        "cost_per_1k": sum(a.cost_usd for a in answers) / n * 1000 if n else 0.0,
        "p50_ms": _p([a.latency_ms for a in answers], 50),
        "p99_ms": _p([a.latency_ms for a in answers], 99),
        "errors": sum(f == ERROR_FLOW for f in flows),
        "top_confusions": top_confusions(run.gold, flows, 10),
    }


def split_run(run: EvalRun, share: float) -> tuple[EvalRun | None, EvalRun]:
    """(validation part, held-out part) of a run (``local.datasets.split_indices``: per label,
    by the SHA-256 of the text); ``share`` 0 keeps everything held out (no validation part)."""
    if share <= 0:
        return None, run
    from director_llm.local.datasets import split_indices

    val, held = split_indices(list(zip(run.texts, run.gold, strict=False)), share)
    return subset(run, val), subset(run, held)


def subset(run: EvalRun, indices: Sequence[int]) -> EvalRun:
    """The run restricted to ``indices`` (answers included)."""
    pick = list(indices)
    return EvalRun(
        texts=[run.texts[i] for i in pick],
        gold=[run.gold[i] for i in pick],
        oos_label=run.oos_label,
        local=None if run.local is None else [run.local[i] for i in pick],
        remote={g: [a[i] for i in pick] for g, a in run.remote.items()},
        notes=run.notes,
        simulated=run.simulated,
    )


def report(
    run: EvalRun,
    *,
    mode: str,
    threshold: float | None,
    default_escalation: float = 0.55,
    local_threshold: float | None = None,
    validation: EvalRun | None = None,
) -> dict[str, Any]:
    """The JSON report: headline metrics of ``mode`` at ``threshold``, per-tier results,
    the local sweep, the cascade curves, all measured on ``run``; and the thresholds it
    would recommend, chosen on ``validation`` only (never on the messages it reports on).

    ``local_threshold`` is the local tier's fallback threshold (``intents.confidence_threshold``)
    for the local tier's own row; in ``local`` mode ``threshold`` is that threshold."""
    out = _measure(
        run, mode=mode, threshold=threshold, default_escalation=default_escalation, local_threshold=local_threshold
    )
    out["suggestions"] = {}
    out["validation"] = None
    if validation is not None and validation.gold:
        seen = _measure(
            validation,
            mode=mode,
            threshold=threshold,
            default_escalation=default_escalation,
            local_threshold=local_threshold,
            suggest=True,
        )
        out["suggestions"] = suggestions(seen)
        out["validation"] = {"n": len(validation.gold), "oos": sum(g == validation.oos_label for g in validation.gold)}
        if "local" in out:
            out["local"]["suggested_threshold"] = out["suggestions"].get("local_confidence_threshold")
    return out


def _measure(
    run: EvalRun,
    *,
    mode: str,
    threshold: float | None,
    default_escalation: float,
    local_threshold: float | None,
    suggest: bool = False,
) -> dict[str, Any]:
    from director_llm.local.evaluation import evaluate, macro_f1, top_confusions

    out: dict[str, Any] = {
        "n": len(run.gold),
        "mode": mode,
        "oos_label": run.oos_label,
        "simulated": run.simulated,
        "notes": run.notes,
        "tiers": {},
    }
    if run.local is not None:
        at = threshold if mode == "local" else local_threshold
        ev = evaluate(
            run.gold,
            [a.intent or a.flow for a in run.local],
            [a.confidence for a in run.local],
            oos_label=run.oos_label,
            threshold=None if suggest else at,
            latencies_ms=[a.latency_ms for a in run.local],
        )
        out["local"] = {
            "threshold": ev.threshold,
            "suggested_threshold": ev.suggested_threshold if suggest else None,
            "accuracy": ev.accuracy,
            "in_scope_accuracy": ev.in_scope_accuracy,
            "oos_recall": ev.oos_recall,
            "macro_f1": ev.macro_f1,
            "escalation_rate": ev.escalation_rate,
            "p50_ms": ev.p50_ms,
            "p99_ms": ev.p99_ms,
            "cost_per_1k": 0.0,
            "top_confusions": list(ev.top_confusions),
            "sweep": [vars(r) for r in ev.sweep],
        }
    for group, answers in run.remote.items():
        out["tiers"][group] = _tier_summary(run, answers)
    curves: dict[str, list[dict[str, Any]]] = {}
    if run.local is not None:
        for group in run.remote:
            curves[group] = [vars(p) for p in cascade_curve(run, group)]
    out["cascade"] = curves
    if mode == "local":
        h = dict(out["local"])
        h["escalation_rate"] = None
    elif mode == "cascade":
        if not run.remote or run.local is None:
            raise InputError("cascade needs the local tier and at least one LLM tier")
        t = threshold if threshold is not None else default_escalation
        out["escalate_below"] = t
        out["cascade_at_threshold"] = {g: vars(cascade_curve(run, g, [t])[0]) for g in run.remote}
        group = list(run.remote)[-1]  # the strongest escalation target is the headline
        point = cascade_curve(run, group, [t])[0]
        final = [
            loc.flow if loc.confidence >= t else rem.flow
            for loc, rem in zip(run.local, run.remote[group], strict=False)
        ]
        h = {
            **vars(point),
            "macro_f1": macro_f1(run.gold, final),
            "top_confusions": top_confusions(run.gold, final, 10),
        }
    else:
        h = {**out["tiers"][mode], "threshold": None, "escalation_rate": None}
    out["headline"] = h
    return out


def suggestions(out: dict[str, Any]) -> dict[str, Any]:
    """Thresholds to configure: the local out-of-scope threshold (best in-scope accuracy at
    out-of-scope recall >= 0.90) and, per cascade, the cheapest escalation threshold that
    is at least as accurate as always asking that tier (and its cost cut)."""
    s: dict[str, Any] = {}
    if "local" in out:
        s["local_confidence_threshold"] = out["local"]["suggested_threshold"]
    for group, points in out.get("cascade", {}).items():
        always = out["tiers"][group]
        ok = [p for p in points if p["accuracy"] >= always["accuracy"]]
        best = min(ok, key=lambda p: (p["cost_per_1k"], p["threshold"])) if ok else None
        cut = (1 - best["cost_per_1k"] / always["cost_per_1k"]) if best and always["cost_per_1k"] else None
        s[f"escalate_below:{group}"] = {
            "threshold": best["threshold"] if best else None,
            "cost_cut": cut,
            "always_cost_per_1k": always["cost_per_1k"],
            "always_accuracy": always["accuracy"],
            "cascade_accuracy": best["accuracy"] if best else None,
            "cascade_cost_per_1k": best["cost_per_1k"] if best else None,
        }
    return s
