"""Time to flow vs total time of ``director.stream_intent`` against the local fake server.

The fake provider streams a realistic answer (flow first, then a reasoning of a few
sentences and entities) word by word at a given token rate; for each protocol we measure
when the first partial naming the right flow arrives and when the final, validated item
arrives, and print the ratio. Usage::

    .venv/bin/python scripts/bench_stream_intent.py [--rate 50] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from director_llm.config.loading import parse_config_text
from director_llm.director import Director
from director_llm.testing import FakeProviderServer, Reply

ANSWER = {
    "flow": "create_task",
    "confidence": 0.93,
    "reasoning": (
        "The user asks to be reminded to call Ana tomorrow morning. That is a request to create "
        "a reminder, which the create_task flow handles. No other flow fits better."
    ),
    "entities": {"person": "Ana", "when": "amanhã 9h", "action": "ligar"},
}
SECTIONS = {
    "openai": '[providers.openai]\nmodels=["gpt-4o-mini"]\nbase_url="{base}/v1"\napi_key_env="BENCH_KEY"\n',
    "anthropic": '[providers.anthropic]\nmodels=["claude-3-5-haiku-20241022"]\nbase_url="{base}"\napi_key_env="BENCH_KEY"\n',
    "ollama": '[providers.ollama]\nmodels=["llama3.2:1b"]\nbase_url="{base}"\n',
    "gemini": '[providers.gemini]\nmodels=["gemini-2.0-flash"]\nbase_url="{base}/v1beta"\napi_key_env="BENCH_KEY"\n',
}
FLOWS = """[intents.flows.create_task]
description = "The user wants to create a task or reminder"
[intents.flows.greeting]
description = "The user says hello"
"""


async def measure(director: Director) -> tuple[float, float]:
    started = time.perf_counter()
    flow_at = None
    async for item in director.stream_intent("me lembra de ligar pra Ana amanhã às 9h"):
        if flow_at is None and getattr(item, "partial_flow", None) == "create_task":
            flow_at = time.perf_counter() - started
        if getattr(item, "done", False):
            assert item.result.flow == "create_task"
    total = time.perf_counter() - started
    return (flow_at if flow_at is not None else total), total


async def main(rate: float, runs: int) -> None:
    os.environ["BENCH_KEY"] = "sk-bench-0123456789"
    server = FakeProviderServer()
    base = server.start()
    reply = Reply(json=ANSWER, token_delay=1.0 / rate)
    server.set_default(reply)
    tokens = len(reply.chunks())
    print(
        f"answer: {tokens} streamed tokens at {rate:g} tokens/s (~{tokens / rate:.2f} s of generation); "
        f"{runs} runs per protocol, median shown\n"
    )
    print("| protocol  | time to flow (ms) | total (ms) | flow known at | saved (ms) |")
    print("|-----------|------------------:|-----------:|--------------:|-----------:|")
    try:
        for protocol, section in SECTIONS.items():
            async with Director(parse_config_text(section.format(base=base) + FLOWS)) as director:
                await measure(director)  # warm-up: imports and connections
                samples = [await measure(director) for _ in range(runs)]
            flow = statistics.median(s[0] for s in samples) * 1000
            total = statistics.median(s[1] for s in samples) * 1000
            print(f"| {protocol:<9} | {flow:17.0f} | {total:10.0f} | {flow / total:12.0%} | {total - flow:10.0f} |")
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="streamed tokens per second")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.rate, args.runs))
