"""Time to first token and total time: Director.stream_response vs the OpenAI SDK, same server, same run.

.venv/bin/python scripts/bench_streaming.py [-n 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("BENCH_KEY", "sk-bench-key-1234567")

from director_llm.config.loading import parse_config_text
from director_llm.director import Director
from director_llm.streaming import TextDelta
from director_llm.testing import FakeProviderServer, Reply

MSG = [{"role": "user", "content": "hi"}]
TEXT = " ".join(f"word{i}" for i in range(50))


async def measure(fn, n: int) -> tuple[float, float]:
    await fn()
    ttft, total = [], []
    for _ in range(n):
        t = time.perf_counter()
        first = await fn()
        total.append(time.perf_counter() - t)
        ttft.append(first - t)
    return statistics.median(ttft) * 1000, statistics.median(total) * 1000


async def main(n: int) -> None:
    import openai

    srv = FakeProviderServer()
    srv.start()
    srv.set_default(Reply(TEXT, token_delay=0.001))
    d = Director(
        parse_config_text(f"""
[llm]
num_retries = 0
[providers.openai]
models = ["gpt-4o-mini"]
base_url = "{srv.base_url}/v1"
api_key_env = "BENCH_KEY"
""")
    )
    client = openai.AsyncOpenAI(base_url=srv.base_url + "/v1", api_key=os.environ["BENCH_KEY"])

    async def via_director() -> float:
        first = None
        async with d.stream_response(MSG, model="openai/gpt-4o-mini") as s:
            async for c in s:
                if first is None and isinstance(c, TextDelta):
                    first = time.perf_counter()
        return first

    async def via_sdk() -> float:
        first = None
        stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
        async for c in stream:
            if first is None and c.choices and c.choices[0].delta.content:
                first = time.perf_counter()
        return first

    sdk = await measure(via_sdk, n)
    dire = await measure(via_director, n)
    print(f"| path (n={n}, 50 chunks, 1 ms apart) | TTFT median ms | total median ms |")
    print("| --- | --- | --- |")
    print(f"| OpenAI SDK direct | {sdk[0]:.2f} | {sdk[1]:.2f} |")
    print(f"| Director.stream_response | {dire[0]:.2f} | {dire[1]:.2f} |")
    print(f"| ratio Director / SDK | {dire[0] / sdk[0]:.2f}x | {dire[1] / sdk[1]:.2f}x |")
    await d.aclose()
    await client.close()
    srv.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=50)
    asyncio.run(main(ap.parse_args().n))
