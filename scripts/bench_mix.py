"""Why use Director at all: a realistic mix, bare ``litellm.Router`` vs Director, same run.

    .venv/bin/python scripts/bench_mix.py [--requests 10000] [--rate 60] [--prompts 25000]

Three deployments of one model group, each on a fake OpenAI-compatible server in its own
process, answering after ~20 ms: ``alpha`` is healthy, ``beta`` fails 20 % of its calls
(HTTP 500), ``gamma`` dies (its process is killed: connection refused) when 20 % of the
requests are done and comes back 10 s later. Prompts are drawn from a Zipf distribution
over ``--prompts`` distinct texts (about 30 % of the requests repeat an earlier prompt), at
temperature 0, so a cache can answer repeats. Requests arrive open-loop at ``--rate`` per
second (Poisson), below what the client can serve, so latency shows the request path
(retries, cool-downs, dead deployments), not a queue in front of a saturated CPU.

Each system is configured as a user would:
* bare Router: the three deployments in one group, ``num_retries=2``, its in-memory response
  cache (``cache_responses=True``), its cooldowns (``allowed_fails=3``, ``cooldown_time=10``);
* Director: the three deployments in one tier, the memory cache, the circuit breaker
  (3 failures, 30 s), every deployment of the tier tried before giving up.

The bare Router's response cache imports parts of ``litellm.proxy`` that need packages the
core install lacks: ``pip install '.[litellm-cache]'`` (in the ``test`` extra).

Prints p50 / p99 latency, throughput, failed requests and cache hits for both.
Goal: Director's p99 <= 1/3 of the Router's, and 0 failed requests.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from benchlib import fake_server, pct

SETUP = """
server.set_default(Reply("the answer", usage=(30, 8), delay=0.02))
server.respond_with("beta", lambda req: Fault.status(500) if random.random() < 0.2
                    else Reply("the answer", usage=(30, 8), delay=0.02))
"""
KEY = "sk-bench-mix-00000000000"
ERRORS: Counter[str] = Counter()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def zipf_prompts(n: int, distinct: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    weights = [1 / (k + 1) ** 0.6 for k in range(distinct)]
    picks = rng.choices(range(distinct), weights=weights, k=n)
    return [f"question {k}: what should I do about task number {k}?" for k in picks]


async def drive(
    call: Callable[[str], Awaitable[object]], prompts: list[str], rate: float, on_progress: Callable[[int], None]
) -> tuple[list[float], int, float]:
    """Send ``prompts`` open-loop at ``rate`` per second; latency of each, failures, wall time."""
    rng = random.Random(11)
    latencies: list[float] = []
    failed = 0
    done = 0

    async def one(prompt: str) -> None:
        nonlocal failed, done
        t = time.perf_counter()
        try:
            await call(prompt)
        except Exception as exc:
            failed += 1
            ERRORS[f"{type(exc).__name__}: {str(exc)[:90]}"] += 1
        latencies.append(time.perf_counter() - t)
        done += 1
        on_progress(done)

    started = time.perf_counter()
    tasks = []
    due = started
    for prompt in prompts:
        due += rng.expovariate(rate)
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(prompt)))
    await asyncio.gather(*tasks)
    return latencies, failed, time.perf_counter() - started


class Killer:
    """Kills gamma's server when a share of the requests is done; restarts it 10 s later."""

    def __init__(self, port: int, total: int, proc: subprocess.Popen[str]) -> None:
        self.port, self.total, self.proc = port, total, proc
        self.killed_at: float | None = None
        self.restart: asyncio.Task[None] | None = None

    def progress(self, done: int) -> None:
        if self.killed_at is None and done >= self.total * 0.2:
            self.killed_at = time.perf_counter()
            self.proc.send_signal(signal.SIGKILL)
            self.restart = asyncio.ensure_future(self._restart())

    async def _restart(self) -> None:
        await asyncio.sleep(10)
        from benchlib import LAUNCHER

        code = LAUNCHER.format(port=self.port, setup=SETUP)
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)

    def stop(self) -> None:
        self.proc.terminate()


async def run_one(name: str, args: argparse.Namespace, prompts: list[str]) -> dict[str, float]:
    from benchlib import LAUNCHER

    gamma_port = free_port()
    code = LAUNCHER.format(port=gamma_port, setup=SETUP)
    gamma = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert gamma.stdout is not None and gamma.stdout.readline().startswith("LISTENING")
    killer = Killer(gamma_port, len(prompts), gamma)
    try:
        with fake_server(SETUP) as (base, _):
            gamma_base = f"http://127.0.0.1:{gamma_port}"
            bases = {"alpha": base, "beta": base, "gamma": gamma_base}
            call, close, hits = await build(name, bases)
            for _ in range(20):  # warm up
                await call("warm up")
            latencies, failed, elapsed = await drive(call, prompts, args.rate, killer.progress)
            cache_hits = hits()
            await close()
    finally:
        if killer.restart is not None:
            killer.restart.cancel()
        killer.stop()
    return {
        "p50": pct(latencies, 0.5) * 1000,
        "p99": pct(latencies, 0.99) * 1000,
        "rps": len(prompts) / elapsed,
        "failed": failed,
        "hits": cache_hits,
    }


async def build(
    name: str, bases: dict[str, str]
) -> tuple[Callable[[str], Awaitable[object]], Callable[[], Awaitable[None]], Callable[[], int]]:
    os.environ["BENCH_MIX_KEY"] = KEY
    if name == "router":
        import litellm

        model_list = [
            {
                "model_name": "m",
                "litellm_params": {
                    "model": f"openai/{m}",
                    "api_base": f"{b}/v1",
                    "api_key": KEY,
                    "timeout": 5,
                    "input_cost_per_token": 1e-6,
                    "output_cost_per_token": 2e-6,
                },
            }
            for m, b in bases.items()
        ]
        router = litellm.Router(
            model_list=model_list, num_retries=2, allowed_fails=3, cooldown_time=10, cache_responses=True, timeout=5
        )
        hits = [0]

        async def router_call(prompt: str) -> object:
            r = await router.acompletion(
                model="m", messages=[{"role": "user", "content": prompt}], temperature=0, caching=True
            )
            if (getattr(r, "_hidden_params", None) or {}).get("cache_hit"):
                hits[0] += 1
            return r

        async def router_close() -> None:
            return None

        return router_call, router_close, lambda: hits[0]
    from director_llm import Director
    from director_llm.config.loading import parse_config_text

    sections = "".join(
        f'[providers.{m}]\nkind = "openai_compatible"\nmodels = ["{m}"]\nbase_url = "{b}/v1"\n'
        f'api_key_env = "BENCH_MIX_KEY"\ntier = "balanced"\n[providers.{m}.overrides.{m}]\n'
        f"input_price_per_million = 1.0\noutput_price_per_million = 2.0\n"
        for m, b in bases.items()
    )
    director = Director(
        parse_config_text(
            "[llm]\ntimeout_seconds = 15\nattempt_timeout_seconds = 5\n" + sections + "[caching]\nmemory_size_mb = 64\n"
        )
    )
    await director.warmup()

    async def director_call(prompt: str) -> object:
        return await director.acompletion([{"role": "user", "content": prompt}], temperature=0)

    def director_hits() -> int:
        stats = director.cache_stats()
        return int(stats.layers["memory"].hits) if stats is not None else 0

    return director_call, director.aclose, director_hits


async def main(args: argparse.Namespace) -> None:
    prompts = zipf_prompts(args.requests, args.prompts)
    repeats = 1 - len(set(prompts)) / len(prompts)
    print(
        f"{len(prompts)} requests, {len(set(prompts))} distinct prompts ({repeats:.0%} repeats), "
        f"open-loop at {args.rate:g} req/s"
    )
    results = {}
    logging.getLogger("director_llm").setLevel(logging.ERROR)  # the breaker logs each opening
    for name in ("router", "director"):
        ERRORS.clear()
        results[name] = await run_one(name, args, prompts)
        r = results[name]
        print(
            f"{name:9} p50 {r['p50']:8.1f} ms  p99 {r['p99']:8.1f} ms  {r['rps']:7.1f} req/s  "
            f"failed {int(r['failed']):5d}  cache hits {int(r['hits'])}",
            flush=True,
        )
        for err, n in ERRORS.most_common(3):
            print(f"          {n:5d} x {err}")
    ratio = results["director"]["p99"] / results["router"]["p99"]
    print(
        f"Director p99 / Router p99 = {ratio:.3f} (goal <= 0.333); Director failed: {int(results['director']['failed'])} "
        "(goal 0)"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--rate", type=float, default=60.0, help="arrivals per second (Poisson)")
    ap.add_argument("--prompts", type=int, default=25_000)
    asyncio.run(main(ap.parse_args()))
