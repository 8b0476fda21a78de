"""Director's request engine vs a bare ``litellm.Router``, same fake server, same run.

    .venv/bin/python scripts/bench_router.py [--requests 400] [--concurrency 32] [--rounds 3] [--profile]

The fake OpenAI-compatible server runs in another process. Rounds alternate (bare Router,
bare ``litellm.acompletion``, Director, ...) so machine noise hits all alike. Prints, per
path: c=1 median and p99 latency, c=N throughput, CPU per request; the ratios
Director/Router (targets: latency <= 1.05, throughput >= 0.95); the CPU Director adds per
request over a bare ``litellm.acompletion`` (what the engine costs); and the p50 of a
classification served from the memory cache (target <= 50 us). ``--profile`` prints the
top of a cProfile of Director's calls.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import statistics
import time

from benchlib import fake_server, latencies, pct, throughput

MESSAGES = [{"role": "user", "content": "quero criar uma tarefa para amanhã"}]


async def main(args: argparse.Namespace) -> None:
    os.environ["BENCH_OPENAI_KEY"] = "sk-bench-000000000000"
    from director_llm import Director
    from director_llm.config.loading import parse_config_text

    setup = (
        'server.respond_with("intent-model", lambda r: Reply(json={"flow": "create_task", "confidence": 0.9, '
        '"reasoning": "asks for a task", "entities": {}}))'
    )
    with fake_server(setup) as (base, _):
        cfg = parse_config_text(
            f'[llm]\nnum_retries = 0\n[providers.openai]\nmodels = ["gpt-4o-mini"]\n'
            f'base_url = "{base}/v1"\napi_key_env = "BENCH_OPENAI_KEY"\n[caching]\nenabled = false\n'
        )
        director = Director(cfg)
        await director.warmup()
        import litellm

        info = director.providers["openai/gpt-4o-mini"]
        params = info.litellm_params()
        bare = litellm.Router(model_list=[{"model_name": "m", "litellm_params": dict(params)}], num_retries=0)

        async def router_call() -> object:
            return await bare.acompletion(model="m", messages=MESSAGES)

        async def litellm_call() -> object:
            return await litellm.acompletion(messages=MESSAGES, num_retries=0, max_retries=0, **params)

        async def director_call() -> object:
            return await director.acompletion(MESSAGES)

        paths = {
            "litellm.Router.acompletion": router_call,
            "litellm.acompletion": litellm_call,
            "director.acompletion": director_call,
        }
        for call in paths.values():  # warm up every path (clients, lazy imports)
            await latencies(call, 30)
        lat: dict[str, list[float]] = {k: [] for k in paths}
        tput: dict[str, list[float]] = {k: [] for k in paths}
        cpu: dict[str, list[float]] = {k: [] for k in paths}
        per_round = max(1, args.requests // args.rounds)
        for _ in range(args.rounds):
            for name, call in paths.items():
                c0 = time.process_time()
                lat[name] += await latencies(call, per_round)
                cpu[name].append((time.process_time() - c0) / per_round)
                tput[name].append(await throughput(call, args.requests, args.concurrency))

        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            await latencies(director_call, 300)
            prof.disable()
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
            print(out.getvalue())

        # Classification from the memory cache (L1): the engine's cache path end to end.
        cached = Director(
            parse_config_text(
                f'[providers.openai]\nmodels = ["intent-model"]\nbase_url = "{base}/v1"\napi_key_env = "BENCH_OPENAI_KEY"\n'
                "[providers.openai.overrides.intent-model]\ninput_price_per_million = 0.1\noutput_price_per_million = 0.4\n"
                "[caching]\nmemory_size_mb = 16\n"
            )
        )
        await cached.classify_intent("quero criar uma tarefa para amanhã")
        l1 = await latencies(lambda: cached.classify_intent("quero criar uma tarefa para amanhã"), 2000)
        await cached.aclose()
        await director.aclose()

    print(f"{'path':30} {'c=1 p50 ms':>11} {'c=1 p99 ms':>11} {f'c={args.concurrency} req/s':>12} {'CPU us/req':>11}")
    for name in paths:
        print(
            f"{name:30} {pct(lat[name], 0.5) * 1000:11.2f} {pct(lat[name], 0.99) * 1000:11.2f} "
            f"{statistics.median(tput[name]):12.1f} {statistics.median(cpu[name]) * 1e6:11.0f}"
        )
    router, director_name = "litellm.Router.acompletion", "director.acompletion"
    r_lat = pct(lat[director_name], 0.5) / pct(lat[router], 0.5)
    r_tput = statistics.median(tput[director_name]) / statistics.median(tput[router])
    added = (statistics.median(cpu[director_name]) - statistics.median(cpu["litellm.acompletion"])) * 1e6
    print(
        f"director/Router: c=1 p50 latency x{r_lat:.3f} (target <= 1.05), "
        f"c={args.concurrency} throughput x{r_tput:.3f} (target >= 0.95)"
    )
    print(f"CPU Director adds per request over a bare litellm.acompletion: {added:.0f} us")
    print(
        f"classify_intent from the memory cache: p50 {pct(l1, 0.5) * 1e6:.1f} us, p99 {pct(l1, 0.99) * 1e6:.1f} us "
        "(target p50 <= 50 us)"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    asyncio.run(main(ap.parse_args()))
