"""stream_response over real HTTP: typed chunks, cancellation closes upstream, backpressure."""

from __future__ import annotations

import asyncio
import gc

import psutil
import pytest

from director_llm.config.loading import parse_config_text
from director_llm.director import Director
from director_llm.streaming import StreamEnd, TextDelta
from director_llm.testing import Reply

MODEL = "gpt-4o-mini"


def _director(base: str) -> Director:
    cfg = parse_config_text(f"""
[llm]
timeout_seconds = 6
first_token_timeout_seconds = 4
attempt_timeout_seconds = 2
num_retries = 0
[providers.openai]
models = ["{MODEL}"]
base_url = "{base}/v1"
api_key_env = "TEST_STREAM_KEY"
[providers.openai.overrides."{MODEL}"]
input_price_per_million = 1.0
output_price_per_million = 2.0
""")
    return Director(cfg)


@pytest.fixture(autouse=True)
def _key(monkeypatch) -> None:
    monkeypatch.setenv("TEST_STREAM_KEY", "sk-stream-test-key-12345")


async def test_chunks_usage_cost_route(fake_provider) -> None:
    fake_provider.script(MODEL, Reply("alpha beta gamma", usage=(10, 3)))
    d = _director(fake_provider.base_url)
    chunks = [c async for c in d.stream_response([{"role": "user", "content": "hi"}])]
    assert [c.text for c in chunks if isinstance(c, TextDelta)] == ["alpha", " beta", " gamma"]
    end = chunks[-1]
    assert isinstance(end, StreamEnd)
    assert end.usage == {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
    assert end.cost_usd == pytest.approx(10 * 1e-6 + 3 * 2e-6)
    assert end.route.deployment == f"openai/{MODEL}" and end.route.fallbacks == 0
    await d.aclose()


async def test_break_and_aclose_disconnects_upstream(fake_provider) -> None:
    fake_provider.script(MODEL, Reply(" ".join(["w"] * 200), token_delay=0.02))
    d = _director(fake_provider.base_url)
    async with d.stream_response([{"role": "user", "content": "hi"}]) as stream:
        async for chunk in stream:
            assert isinstance(chunk, TextDelta)
            break
    [gone] = await fake_provider.await_disconnects(1, timeout=2)
    assert gone.chunks_sent < 200
    await d.aclose()


async def test_task_cancel_disconnects_upstream(fake_provider) -> None:
    fake_provider.script(MODEL, Reply(" ".join(["w"] * 200), token_delay=0.02))
    d = _director(fake_provider.base_url)
    got_first = asyncio.Event()

    async def consume() -> None:
        async for _ in d.stream_response([{"role": "user", "content": "hi"}]):
            got_first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_first.wait(), 3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [gone] = await fake_provider.await_disconnects(1, timeout=2)
    assert gone.chunks_sent < 200
    await d.aclose()


async def test_slow_consumer_memory_stays_flat(fake_provider) -> None:
    # ~2 MB answer sent as fast as the server can; the consumer sleeps between chunks.
    # (distinct chunks: LiteLLM aborts a stream that repeats the same chunk)
    text = "".join(f"{i:09d} " for i in range(200_000))
    fake_provider.script(MODEL, Reply(text, chunk_chars=4000))
    d = _director(fake_provider.base_url)
    proc = psutil.Process()
    gc.collect()
    rss_before = proc.memory_info().rss
    peak = rss_before
    n = 0
    async with d.stream_response([{"role": "user", "content": "hi"}]) as stream:
        async for chunk in stream:
            if isinstance(chunk, TextDelta):
                n += 1
                if n % 25 == 0:
                    peak = max(peak, proc.memory_info().rss)
                await asyncio.sleep(0.002)
                if n == 200:  # 0.8 MB consumed of 2 MB: the rest must not pile up in memory
                    break
    growth_mb = (peak - rss_before) / 1e6
    # The whole answer is 2 MB of text (more as Python objects); a buffering client would grow by
    # several MB. Reading on demand keeps growth to the socket buffers and chunk objects.
    assert growth_mb < 8, f"RSS grew {growth_mb:.1f} MB"
    await d.aclose()
