"""What a dead primary costs per request: bare LiteLLM Router vs Director (breaker closed / open).

    .venv/bin/python scripts/bench_breaker.py [-n 100]

Dead primary = connection refused (a closed port), fallback = a healthy local fake server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("BENCH_KEY", "sk-bench-key-1234567")

from director_llm.config.loading import parse_config_text
from director_llm.director import Director
from director_llm.routing import import_litellm
from director_llm.testing import FakeProviderServer, Reply

MSG = [{"role": "user", "content": "hi"}]


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def timed(fn, n: int) -> tuple[float, float, float]:
    first = time.perf_counter()
    await fn()
    first = time.perf_counter() - first
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - t)
    samples.sort()
    return first * 1000, statistics.median(samples) * 1000, samples[int(len(samples) * 0.95) - 1] * 1000


def director(base: str, dead: str, threshold: int) -> Director:
    return Director(
        parse_config_text(f"""
[llm]
num_retries = 0
timeout_seconds = 5
attempt_timeout_seconds = 5
[llm.circuit_breaker]
failure_threshold = {threshold}
cooldown_seconds = 600
[llm.fallbacks]
"ollama/llama3.2:1b" = ["openai/gpt-4o-mini"]
[providers.ollama]
models = ["llama3.2:1b"]
base_url = "{dead}"
[providers.openai]
models = ["gpt-4o-mini"]
base_url = "{base}/v1"
api_key_env = "BENCH_KEY"
""")
    )


async def main(n: int) -> None:
    srv = FakeProviderServer()
    srv.start()
    srv.set_default(Reply("ok"))
    dead = f"http://127.0.0.1:{closed_port()}"
    litellm = import_litellm()
    rows = []
    healthy = director(srv.base_url, dead, 10**6)
    rows.append(
        (
            "Director, healthy deployment (baseline)",
            *await timed(lambda: healthy.acompletion(MSG, model="openai/gpt-4o-mini"), n),
        )
    )
    closed = director(srv.base_url, dead, 10**6)  # breaker never opens
    rows.append(
        (
            "Director, dead primary, breaker closed",
            *await timed(lambda: closed.acompletion(MSG, model="ollama/llama3.2:1b"), n),
        )
    )
    opened = director(srv.base_url, dead, 1)
    rows.append(
        (
            "Director, dead primary, breaker open",
            *await timed(lambda: opened.acompletion(MSG, model="ollama/llama3.2:1b"), n),
        )
    )
    bare = litellm.Router(
        model_list=[
            {
                "model_name": "dead",
                "litellm_params": {"model": "ollama_chat/llama3.2:1b", "api_base": dead, "timeout": 5},
            },
            {
                "model_name": "ok",
                "litellm_params": {
                    "model": "openai/gpt-4o-mini",
                    "api_base": srv.base_url + "/v1",
                    "api_key": os.environ["BENCH_KEY"],
                    "timeout": 5,
                },
            },
        ],
        fallbacks=[{"dead": ["ok"]}],
        num_retries=0,
    )
    rows.append(
        (
            "bare LiteLLM Router, dead primary, num_retries=0",
            *await timed(lambda: bare.acompletion(model="dead", messages=MSG), n),
        )
    )
    base = rows[0][2]
    print(f"| path (n={n}) | first request ms | median ms | p95 ms | median over healthy ms |")
    print("| --- | --- | --- | --- | --- |")
    for label, first, med, p95 in rows:
        print(f"| {label} | {first:.1f} | {med:.2f} | {p95:.2f} | {med - base:+.2f} |")
    for d in (healthy, closed, opened):
        await d.aclose()
    srv.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=100)
    asyncio.run(main(ap.parse_args().n))
