"""director.acompletion vs a bare litellm.Router.acompletion, same local server, same run.

    .venv/bin/python scripts/bench_router.py [--requests 300] [--concurrency 32] [--rounds 3]

Both send the same request to the same fake OpenAI-compatible server on 127.0.0.1. Rounds
alternate (bare, director, bare, director...) so machine noise hits both alike; during the
bare rounds our process-wide LiteLLM callback is detached, so the bare Router pays nothing of
ours. Prints c=1 latency (p50/p99) and c=N throughput with the ratio. Target: within 5%.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from director_llm import Director  # noqa: E402
from director_llm.config.loading import parse_config_text  # noqa: E402
from director_llm.testing import FakeProviderServer, Reply  # noqa: E402

MESSAGES = [{"role": "user", "content": "quero criar uma tarefa para amanhã"}]


async def latency(call, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await call()
        out.append(time.perf_counter() - t)
    return out


async def throughput(call, n: int, concurrency: int) -> float:
    sem = asyncio.Semaphore(concurrency)

    async def one():
        async with sem:
            await call()

    t = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return n / (time.perf_counter() - t)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


async def main(args: argparse.Namespace) -> None:
    with FakeProviderServer() as server:
        server.set_default(Reply(text="ok, tarefa criada", usage=(20, 5)))
        os.environ["BENCH_OPENAI_KEY"] = "sk-bench-000000000000"
        cfg = parse_config_text(
            f'[llm]\nnum_retries = 0\n[providers.openai]\nmodels = ["gpt-4o-mini"]\n'
            f'base_url = "{server.base_url}/v1"\napi_key_env = "BENCH_OPENAI_KEY"\n')
        director = Director(cfg)
        import litellm

        _ = director.router  # builds the Router and installs our callback
        ours = list(litellm.callbacks)
        info = director.providers["openai/gpt-4o-mini"]
        bare = litellm.Router(model_list=[{"model_name": "m", "litellm_params": info.litellm_params()}], num_retries=0)

        async def bare_call():
            return await bare.acompletion(model="m", messages=MESSAGES)

        async def director_call():
            return await director.acompletion(MESSAGES)

        def attach(on: bool) -> None:
            litellm.callbacks[:] = ours if on else [c for c in ours if type(c).__name__ != "DirectorCallbacks"]

        for on, call in ((False, bare_call), (True, director_call)):  # warm up both paths
            attach(on)
            await latency(call, 20)
        lat = {"bare": [], "director": []}
        tput = {"bare": [], "director": []}
        for _ in range(args.rounds):
            for name, on, call in (("bare", False, bare_call), ("director", True, director_call)):
                attach(on)
                lat[name] += await latency(call, args.requests // args.rounds)
                tput[name].append(await throughput(call, args.requests, args.concurrency))
        attach(True)
        await director.aclose()

    print(f"{'path':28} {'c=1 p50 ms':>11} {'c=1 p99 ms':>11} {f'c={args.concurrency} req/s':>12}")
    for name in ("bare", "director"):
        label = "litellm.Router.acompletion" if name == "bare" else "director.acompletion"
        print(f"{label:28} {pct(lat[name], .5):11.2f} {pct(lat[name], .99):11.2f} {statistics.median(tput[name]):12.1f}")
    r_lat = pct(lat["director"], .5) / pct(lat["bare"], .5)
    r_tput = statistics.median(tput["director"]) / statistics.median(tput["bare"])
    print(f"ratio director/bare: c=1 p50 latency x{r_lat:.3f} ({(r_lat - 1) * 100:+.1f}%), "
          f"c={args.concurrency} throughput x{r_tput:.3f} ({(r_tput - 1) * 100:+.1f}%)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(ap.parse_args()))
