"""Benchmark the budget ledger: reserve+settle latency and Redis round trips per request.

    .venv/bin/python scripts/bench_budget.py                 # private redis-server, 2000 requests
    .venv/bin/python scripts/bench_budget.py --url redis://127.0.0.1:6379/0 -n 5000
    .venv/bin/python scripts/bench_budget.py --concurrency 32 --json

Round trips are counted twice, independently: on the client (every packed command a
connection sends, via a counting ``Connection`` subclass) and on the server (EVALSHA calls in
``INFO commandstats``; exact only on a private server, which is the default, because other
clients of a shared Redis add to it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis.asyncio as aioredis

from director_llm.budget import BudgetLimits, MemoryLedger, RedisLedger


class CountingConnection(aioredis.Connection):
    """Counts requests written to the socket; one per command or pipeline batch."""

    sent = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sent += 1
        await super().send_packed_command(command, check_health)


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _run(ledger: Any, n: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            start = time.perf_counter()
            res = await ledger.reserve(amount_usd=0.0001, provider="bench", model="m")
            await ledger.settle(res, actual_usd=0.00008, prompt_tokens=100, completion_tokens=20)
            latencies.append((time.perf_counter() - start) * 1000)

    await asyncio.gather(*(one() for _ in range(n)))
    return latencies


async def _evalsha_calls(client: aioredis.Redis) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def bench(url: str, n: int, concurrency: int, warmup: int) -> dict[str, Any]:
    prefix = f"bench-budget:{uuid.uuid4().hex[:8]}:"
    pool = aioredis.ConnectionPool.from_url(url, decode_responses=True, connection_class=CountingConnection)
    client = aioredis.Redis(connection_pool=pool)
    limits = BudgetLimits(per_hour=1e6, per_day=1e7, per_provider={"bench": (1e6, None)})
    ledger = RedisLedger(client=client, prefix=prefix, limits=limits)
    try:
        await _run(ledger, warmup, concurrency)  # connect, load scripts
        CountingConnection.sent = 0
        evalsha_before = await _evalsha_calls(client)
        sent_before = CountingConnection.sent  # the INFO call itself
        latencies = await _run(ledger, n, concurrency)
        sent = CountingConnection.sent - sent_before
        evalsha = await _evalsha_calls(client) - evalsha_before
        mem = MemoryLedger(limits=limits)
        mem_latencies = await _run(mem, n, concurrency)
        return {
            "requests": n,
            "concurrency": concurrency,
            "redis_p50_ms": round(statistics.median(latencies), 4),
            "redis_p99_ms": round(_percentile(latencies, 0.99), 4),
            "redis_throughput_rps": round(n / (sum(latencies) / 1000 / concurrency), 1),
            "round_trips_per_request_client": sent / n,
            "evalsha_per_request_server": evalsha / n,
            "memory_p50_ms": round(statistics.median(mem_latencies), 4),
            "memory_p99_ms": round(_percentile(mem_latencies, 0.99), 4),
        }
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="Redis URL (default: start a private redis-server)")
    parser.add_argument("-n", "--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    server = None
    url = args.url
    if url is None:
        from director_llm.testing.redis import RedisServer

        server = RedisServer()
        url = server.start()
    try:
        result = asyncio.run(bench(url, args.requests, args.concurrency, args.warmup))
    finally:
        if server is not None:
            server.close()
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:32} {value}")


if __name__ == "__main__":
    main()
