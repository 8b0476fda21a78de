"""Reproduce the local tier's measured numbers and print them as a table.

    .venv/bin/python scripts/eval_local.py [--only full,few,banking,pt] [--seeds 0,1,2]

Benchmarks (CLINC150 validation, Banking77 held-out train) are read from
``$DIRECTOR_DATA_DIR`` or ``../shared/data``; each is skipped with a reason when absent.
The Portuguese built-in-flows set ships in ``tests/data``. One threshold per benchmark
is chosen with ``suggest_threshold`` (best in-scope accuracy at out-of-scope recall
>= 0.90) and all metrics of that row are reported at it. Takes several minutes (the
full CLINC150 train split alone is ~1-2 min of training on 2 cores).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from director_llm.intents.builtin_flows import BUILTIN_FALLBACK_FLOW, BUILTIN_FLOWS
from director_llm.local import LocalIntentModel, LocalTierSettings, load_training_file
from director_llm.local.datasets import find_data_dir, load_dataset, sample_per_intent
from director_llm.local.evaluation import (
    EvalReport,
    evaluate,
    expected_calibration_error,
    suggest_threshold,
)

OOS = "out_of_scope"


def run(model: LocalIntentModel, test: list[tuple[str, str]], *, threshold: float | None = None,
        latency_sample: int = 300) -> tuple[EvalReport, float]:
    """Evaluate ``model`` on ``test`` at ``threshold`` (None: the suggested one); latency is
    measured one query at a time on a sample."""
    gold = [i for _, i in test]
    preds = model.predict_many([t for t, _ in test])
    latencies = []
    for text, _ in test[:latency_sample]:
        started = time.perf_counter()
        model.predict(text)
        latencies.append((time.perf_counter() - started) * 1000)
    report = evaluate(gold, [p.intent for p in preds], [p.confidence for p in preds], oos_label=OOS,
                      threshold=threshold, latencies_ms=latencies)
    ece = expected_calibration_error([p.intent == g for p, g in zip(preds, gold)], [p.confidence for p in preds])
    return report, ece


def _labels_confs(model: LocalIntentModel, test: list[tuple[str, str]]) -> tuple[list[str], list[float]]:
    preds = model.predict_many([t for t, _ in test])
    return [p.intent for p in preds], [p.confidence for p in preds]


def row(name: str, report: EvalReport, ece: float, train_s: float) -> str:
    rec = "-" if report.oos_recall is None else f"{report.oos_recall:.3f}"
    return (f"{name:<28} {report.n:>5} {report.in_scope_accuracy:>7.3f} {rec:>7} {report.threshold:>5.2f} "
            f"{report.escalation_rate:>6.3f} {report.macro_f1:>6.3f} {ece:>6.3f} {report.p50_ms or 0:>6.2f} "
            f"{report.p99_ms or 0:>6.2f} {train_s:>7.1f}")


HEADER = (f"{'benchmark':<28} {'n':>5} {'in-acc':>7} {'oosrec':>7} {'th':>5} {'escal':>6} {'mF1':>6} "
          f"{'ECE':>6} {'p50ms':>6} {'p99ms':>6} {'train_s':>7}")


CACHE_DIR: Path | None = None


def train(examples: list[tuple[str, str]], settings: LocalTierSettings) -> tuple[LocalIntentModel, float]:
    started = time.perf_counter()
    model = LocalIntentModel.train(examples, settings=settings, cache_dir=CACHE_DIR)
    return model, time.perf_counter() - started


_STARTUP_SNIPPET = """
import sys, time
t0 = time.perf_counter()
from director_llm.intents.builtin_flows import BUILTIN_FLOWS
from director_llm.local import LocalIntentModel
t1 = time.perf_counter()
examples = [(e, n) for n, f in BUILTIN_FLOWS.items() for e in f["examples"]]
model = LocalIntentModel.train(examples, cache_dir=sys.argv[1])
t2 = time.perf_counter()
model.predict("quero criar uma tarefa para amanha")
t3 = time.perf_counter()
print(f"{model.loaded_from_cache} {t1 - t0:.3f} {t2 - t1:.3f} {t3 - t2:.3f}")
"""


def startup() -> None:
    """Cold start (fresh process, empty cache) and warm start (fresh process, cache hit)."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as cache:
        for name in ("cold", "warm"):
            started = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", _STARTUP_SNIPPET, cache], cwd=ROOT, check=True,
                                 capture_output=True, text=True).stdout.split()
            total = time.perf_counter() - started
            print(f"startup {name}: from_cache={out[0]} import {float(out[1]):.2f}s, train/load {float(out[2]):.2f}s, "
                  f"first predict {float(out[3]) * 1000:.0f} ms, whole process {total:.2f}s", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="startup,pt,few,banking,full")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--features", default=None, help="override LocalTierSettings.features")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="reuse trained models across runs (train_s is then the load time)")
    args = parser.parse_args()
    global CACHE_DIR
    CACHE_DIR = args.cache_dir
    only = set(args.only.split(","))
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = LocalTierSettings() if args.features is None else LocalTierSettings(features=args.features)
    print(f"settings: {settings}")
    if "startup" in only:
        startup()
    print(HEADER)

    if "pt" in only:
        examples = [(e, name) for name, flow in BUILTIN_FLOWS.items() for e in flow["examples"]]
        assert BUILTIN_FALLBACK_FLOW == OOS
        model, secs = train(examples, settings)
        test = load_training_file(ROOT / "tests" / "data" / "pt_builtin_flows.jsonl")
        report, ece = run(model, test)
        print(row("pt builtin flows", report, ece, secs), flush=True)
        at0, _ = run(model, test, threshold=0.0, latency_sample=0)
        print(f"{'  pt, no threshold: accuracy':<28} {at0.accuracy:.3f}; suggested threshold "
              f"(max accuracy) {suggest_threshold([i for _, i in test], *_labels_confs(model, test), oos_label=OOS, min_oos_recall=0.0):.2f}")
        print("  sweep (th: accuracy / accuracy of accepted / escalation):")
        for r in at0.sweep[4:14]:
            acc_ok = "-" if r.accepted_accuracy is None else f"{r.accepted_accuracy:.3f}"
            print(f"    {r.threshold:.2f}: {r.accuracy:.3f} / {acc_ok} / {r.escalation_rate:.3f}")

    data = find_data_dir("clinc150")
    if data is None and only & {"full", "few"}:
        print("SKIP clinc150: no data (set DIRECTOR_DATA_DIR or put it in ../shared/data)")
    if data is not None:
        train_all = load_dataset(data, "clinc150", "train", oos_label=OOS)
        val = load_dataset(data, "clinc150", "val", oos_label=OOS)
        if "few" in only:
            in_acc, recs = [], []
            for seed in seeds:
                few, _ = sample_per_intent(train_all, 10, seed=seed)
                model, secs = train(few, settings)
                report, ece = run(model, val)
                in_acc.append(report.in_scope_accuracy)
                recs.append(report.oos_recall or 0.0)
                print(row(f"clinc150 10-shot seed={seed}", report, ece, secs), flush=True)
            print(f"{'  clinc150 10-shot mean':<28} {'':>5} {statistics.mean(in_acc):>7.3f} {statistics.mean(recs):>7.3f}")
        if "full" in only:
            model, secs = train(train_all, settings)
            report, ece = run(model, val)
            print(row("clinc150 full", report, ece, secs), flush=True)
            print("  sweep (th: in-acc / oos-recall / escalation):")
            for r in report.sweep[2:14]:
                print(f"    {r.threshold:.2f}: {r.in_scope_accuracy:.3f} / {r.oos_recall:.3f} / {r.escalation_rate:.3f}")

    if "banking" in only:
        bdata = find_data_dir("banking77")
        if bdata is None:
            print("SKIP banking77: no data")
        else:
            examples = load_dataset(bdata, "banking77", "train")
            accs = []
            for seed in seeds:
                few, rest = sample_per_intent(examples, 10, seed=seed)
                # Hold out at most 20 per intent of the remaining train examples as the test set.
                _, test = sample_per_intent(rest, 0, seed=seed)
                test, _ = sample_per_intent(test, 20, seed=seed + 100)
                model, secs = train(few, settings)
                report, ece = run(model, test, threshold=0.0)  # no out-of-scope class here
                accs.append(report.accuracy)
                print(row(f"banking77 10-shot seed={seed}", report, ece, secs), flush=True)
            print(f"{'  banking77 10-shot mean acc':<28} {'':>5} {statistics.mean(accs):>7.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
