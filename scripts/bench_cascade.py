"""Cost study of the cascade on CLINC150 validation, with SIMULATED remote tiers.

The local tier trains on the CLINC150 train split (or --k examples per intent); the remote
tiers are oracles on the fake provider server (accuracy given on the command line, priced
like gpt-4o-mini and gpt-4o from the real prompt size; see ``director_llm.evalsim``). Prints
cost per 1,000 classifications and accuracy of the cascade against always-gpt-4o, and the
lowest threshold giving >= 70% lower cost at equal or better accuracy, if one exists.

    .venv/bin/python scripts/bench_cascade.py [--every N] [--k 10] [--report DIR]
        [--simulate accuracy_mini=0.90,accuracy_4o=0.95]

Data: ``$DIRECTOR_DATA_DIR`` or ``../shared/data`` (never copied into the repository); the
script exits with a message when it is absent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--every", type=int, default=1, help="every Nth validation message (a spread subset)")
    ap.add_argument("--k", type=int, default=None, help="train on K examples per intent (default: all)")
    ap.add_argument("--simulate", default="accuracy_mini=0.90,accuracy_4o=0.95")
    ap.add_argument("--report", type=Path, default=None, help="write report.json and the plot here")
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "director.toml")
    args = ap.parse_args()

    from director_llm.local.datasets import find_data_dir, sample_per_intent

    data = find_data_dir("clinc150")
    if data is None:
        print("CLINC150 not found (set DIRECTOR_DATA_DIR or put it in ../shared/data/clinc150): skipped")
        return 0
    train = data / "clinc150" / "train.jsonl"
    val = data / "clinc150" / "val.jsonl"
    if args.every > 1:  # the file is grouped by intent: a stride keeps every intent and the oos share
        lines = val.read_text(encoding="utf-8").splitlines()[:: args.every]
        val = Path(tempfile.mkdtemp(prefix="bench-cascade-")) / f"val_every{args.every}.jsonl"
        val.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if args.k:
        from director_llm.local import load_training_file

        chosen, _ = sample_per_intent(load_training_file(train), args.k, seed=0)
        tmp = Path(tempfile.mkdtemp(prefix="bench-cascade-")) / f"train_k{args.k}.jsonl"
        tmp.write_text("".join(json.dumps({"text": t, "intent": i}) + "\n" for t, i in chosen), encoding="utf-8")
        train = tmp

    from director_llm.cli.cmd_eval import _run

    started = time.perf_counter()
    out = asyncio.run(_run(val, train, args.config, "cascade", None, None, args.simulate, 16))
    took = time.perf_counter() - started
    if args.report:
        from director_llm.cli.cmd_eval import _write_report

        _write_report(out, args.report)
    print_summary(out, took)
    return 0


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def print_summary(out: dict, took: float) -> None:
    print(f"\nCLINC150 val, {out['n']} messages, SIMULATED remote tiers ({took:.0f} s)")
    for note in out["notes"]:
        print(f"  note: {note}")
    lo = out["local"]
    print(
        f"\nlocal alone at the config's threshold {lo['threshold']:.2f}: accuracy {lo['accuracy']:.3f}, "
        f"in-scope {lo['in_scope_accuracy']:.3f}, OOS recall {_f(lo['oos_recall'])}, p50 {lo['p50_ms']:.2f} ms"
    )
    print("\n| tier | accuracy | in-scope | OOS recall | $ / 1k | p50 ms |")
    print("|---|---|---|---|---|---|")
    for g, t in out["tiers"].items():
        print(
            f"| always {g} | {t['accuracy']:.3f} | {t['in_scope_accuracy']:.3f} | {_f(t['oos_recall'])} | "
            f"{t['cost_per_1k']:.3f} | {t['p50_ms']:.0f} |"
        )
    strong = list(out["tiers"])[-1]
    always = out["tiers"][strong]
    print(f"\ncascade local -> {strong} across escalation thresholds:")
    print("| threshold | escalated | accuracy | in-scope | OOS recall | $ / 1k | cost cut vs always |")
    print("|---|---|---|---|---|---|---|")
    best = None
    for p in out["cascade"][strong]:
        cut = 1 - p["cost_per_1k"] / always["cost_per_1k"] if always["cost_per_1k"] else 0.0
        print(
            f"| {p['threshold']:.2f} | {p['escalation_rate']:.1%} | {p['accuracy']:.3f} | "
            f"{p['in_scope_accuracy']:.3f} | {_f(p['oos_recall'])} | {p['cost_per_1k']:.3f} | {cut:.0%} |"
        )
        if cut >= 0.70 and p["accuracy"] >= always["accuracy"] and best is None:
            best = (p, cut)
    if best:
        p, cut = best
        print(
            f"\n>= 70% cheaper at equal or better accuracy: threshold {p['threshold']:.2f} "
            f"({cut:.0%} cheaper, accuracy {p['accuracy']:.3f} vs {always['accuracy']:.3f})"
        )
    else:
        print("\nno threshold gives >= 70% lower cost at equal or better accuracy than always-" + strong)


if __name__ == "__main__":
    raise SystemExit(main())
