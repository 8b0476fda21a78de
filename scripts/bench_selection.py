"""Benchmark the budget hooks and the adaptive strategy.

1. Hook overhead: N sequential ``director.acompletion`` calls against a local fake OpenAI
   server with a Redis ledger; time spent in the selector (``plan_route``) and in the budget
   filter / guard / settlement per request (p50, p99), and ledger round trips per request.
2. Cost of a mixed workload, adaptive vs always-strongest, at the same success rate.
   Quality model (stated, not measured): a tier succeeds on a request iff its capability
   (small=1, balanced=2, strong=3) >= the request's true difficulty (simple=1, medium=2,
   complex=3, the label of the generated prompt, NOT the estimator's guess). A failed answer
   is escalated to the strong tier and both calls are paid, so both arms reach 100%.
   Prices per 1M tokens: gpt-4o $2.50/$10, gpt-4o-mini $0.15/$0.60, local $0.

Run: ``.venv/bin/python scripts/bench_selection.py [--requests 300] [--redis redis://127.0.0.1:6379/0]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
import uuid

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

PRICES = {"small": (0.0, 0.0), "balanced": (0.15e-6, 0.6e-6), "strong": (2.5e-6, 10e-6)}
CAPABILITY = {"small": 1, "balanced": 2, "strong": 3}
DIFFICULTY = {"simple": 1, "medium": 2, "complex": 3}
OUTPUT_TOKENS = {"simple": 40, "medium": 250, "complex": 700}

SIMPLE = ["hi", "thanks!", "ok, bye", "What time is it in Lisbon?", "Oi, tudo bem?", "Is the build green?"]
MEDIUM = [
    "Summarize this paragraph about the printing press and explain why it mattered.",
    "Translate this sentence into French and explain the grammar: the cat sat on the mat.",
    "Write a short polite email declining a meeting next Tuesday and propose Thursday instead.",
    "Compare Python lists and tuples for a beginner.",
]
COMPLEX = [
    "Explain step by step why this function leaks memory and compare two fixes:\n```python\n"
    "def f(xs):\n    cache = {}\n    for x in xs:\n        cache[x] = list(range(x))\n    return cache\n```\n"
    "1. What is the leak?\n2. How would you refactor it?\n3. How would you test it?",
    "Design an architecture for a multi-region event pipeline. Analyze the trade-offs between "
    "exactly-once and at-least-once delivery, explain schema evolution, compare Kafka with Pulsar? "
    "What would you monitor? How would you plan the migration from the batch system?",
]


def workload(n: int, seed: int = 7) -> list[tuple[str, str]]:
    """(true difficulty, text): 50% simple, 35% medium, 15% complex (an assistant's mix)."""
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        r = rnd.random()
        kind, pool = ("simple", SIMPLE) if r < 0.5 else ("medium", MEDIUM) if r < 0.85 else ("complex", COMPLEX)
        out.append((kind, rnd.choice(pool)))
    return out


def call_cost(tier: str, prompt_tokens: int, output_tokens: int) -> float:
    pin, pout = PRICES[tier]
    return prompt_tokens * pin + output_tokens * pout


def simulate(strategy: str, requests: list[tuple[str, str]]) -> dict[str, float]:
    from director_llm.complexity import estimate_complexity
    from director_llm.selection import TierOption, select

    options = [TierOption("small", 0.0), TierOption("balanced", 0.001), TierOption("strong", 0.01)]
    total = first_ok = 0.0
    for kind, text in requests:
        pt, ct = len(text) // 4 + 20, OUTPUT_TOKENS[kind]
        if strategy == "strongest":
            tier = "strong"
        else:
            tier = select(strategy, options, complexity=estimate_complexity(text), remaining_usd=1.0).tier
        total += call_cost(tier, pt, ct)
        if CAPABILITY[tier] >= DIFFICULTY[kind]:
            first_ok += 1
        else:  # escalate to the strongest tier: same final success rate, both calls paid
            total += call_cost("strong", pt, ct)
    return {"cost": total, "first_try_success": first_ok / len(requests)}


async def hook_overhead(n: int, redis_url: str | None) -> dict[str, float]:
    from director_llm import selection
    from director_llm.config.loading import parse_config_text
    from director_llm.director import Director
    from director_llm.testing import FakeProviderServer, Reply

    os.environ["BENCH_OPENAI_KEY"] = "sk-bench-0123456789"
    server = FakeProviderServer()
    base = server.start()
    server.set_default(Reply(text="fine", usage=(100, 50)))
    cfg = parse_config_text(f"""
[llm]
num_retries = 0
budget_per_hour = 1000.0
default_strategy = "adaptive"
{f'state_redis_url = "{redis_url}"' if redis_url else ""}
[providers.openai]
models = ["gpt-4o", "gpt-4o-mini"]
base_url = "{base}/v1"
api_key_env = "BENCH_OPENAI_KEY"
[providers.openai.overrides.gpt-4o]
tier = "strong"
[providers.openai.overrides.gpt-4o-mini]
tier = "balanced"
""")
    spent: list[float] = []
    current = [0.0]
    d = Director(cfg, state_prefix=f"bench-selection-{uuid.uuid4().hex[:8]}:")

    def timed(fn):  # type: ignore[no-untyped-def]
        async def wrapper(*a, **k):  # type: ignore[no-untyped-def]
            t0 = time.perf_counter()
            try:
                return await fn(*a, **k)
            finally:
                current[0] += time.perf_counter() - t0

        return wrapper

    d.hooks.filters[d.hooks.filters.index(d.budget.filter)] = timed(d.budget.filter)
    d.hooks.guards[d.hooks.guards.index(d.budget.guard)] = timed(d.budget.guard)
    settle = d.budget.attempt_succeeded
    d.budget.attempt_succeeded = timed(settle)  # type: ignore[method-assign]
    plan = selection.plan_route
    selection.plan_route = timed(plan)  # type: ignore[assignment]
    msgs = [{"role": "user", "content": "Explain step by step why TCP and UDP differ, and compare them?"}]
    try:
        for i in range(n + 20):
            current[0] = 0.0
            await d.acompletion(msgs)
            await d.budget.drain()
            if i >= 20:  # warm-up excluded (first calls import and connect)
                spent.append(current[0] * 1000)
        trips = d.budget.round_trips
    finally:
        selection.plan_route = plan  # type: ignore[assignment]
        await d.aclose()
        server.stop()
    q = statistics.quantiles(spent, n=100)
    return {"p50_ms": statistics.median(spent), "p99_ms": q[98], "round_trips": trips / (n + 20)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="'' for the in-memory ledger")
    args = ap.parse_args()
    h = asyncio.run(hook_overhead(args.requests, args.redis or None))
    print(
        f"budget hooks + selector per request ({'Redis' if args.redis else 'memory'} ledger, "
        f"{args.requests} requests): p50 {h['p50_ms']:.2f} ms, p99 {h['p99_ms']:.2f} ms, "
        f"{h['round_trips']:.2f} ledger round trips"
    )
    reqs = workload(2000)
    strongest = simulate("strongest", reqs)
    for strategy in ("adaptive", "cost"):
        r = simulate(strategy, reqs)
        print(
            f"{strategy}: cost ${r['cost']:.4f} vs always-strongest ${strongest['cost']:.4f} -> ratio "
            f"{r['cost'] / strongest['cost']:.3f} ({(1 - r['cost'] / strongest['cost']) * 100:.1f}% saved); "
            f"first-try success {r['first_try_success']:.1%}, final 100% (failures escalated to strong)"
        )


if __name__ == "__main__":
    main()
