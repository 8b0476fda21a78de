"""Probe items 7-8: latency tracking, CustomLLM provider through the Router (cost, overhead)."""

import asyncio
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

import litellm
from litellm import CustomLLM
from litellm.types.utils import GenericStreamingChunk, ModelResponse
from litellm_probe_common import MSGS, ProbeServer, deployment


class IntentLLM(CustomLLM):
    """Answers instantly; what a local classifier provider would look like."""

    async def acompletion(
        self, model, messages, api_base, custom_prompt_dict, model_response: ModelResponse, *args, **kwargs
    ):
        model_response.choices[0].message.content = '{"intent": "greet"}'  # type: ignore[union-attr]
        model_response.model = model
        model_response.usage = litellm.Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15)  # type: ignore[attr-defined]
        return model_response

    async def astreaming(self, model, messages, api_base, custom_prompt_dict, model_response, *args, **kwargs):
        for i, piece in enumerate(["hel", "lo"]):
            yield GenericStreamingChunk(
                text=piece, is_finished=False, finish_reason="", usage=None, index=0, tool_use=None
            )
        yield GenericStreamingChunk(
            text="",
            is_finished=True,
            finish_reason="stop",
            usage={"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
            index=0,
            tool_use=None,
        )


def fmt(xs):
    xs = sorted(xs)
    return f"median {statistics.median(xs) * 1000:.2f} ms, p95 {xs[int(len(xs) * 0.95)] * 1000:.2f} ms"


async def main() -> None:
    litellm.custom_provider_map = [{"provider": "director_local", "custom_handler": IntentLLM()}]
    router = litellm.Router(
        model_list=[
            {
                "model_name": "intent",
                "litellm_params": {
                    "model": "director_local/intent",
                    "input_cost_per_token": 0,
                    "output_cost_per_token": 0,
                },
                "model_info": {"id": "intent-local"},
            },
            {
                "model_name": "intent-unpriced",
                "litellm_params": {"model": "director_local/intent"},
                "model_info": {"id": "intent-unpriced"},
            },
        ],
        num_retries=0,
        timeout=5,
    )
    r = await router.acompletion(model="intent", messages=MSGS)
    print(
        "custom acompletion:",
        r.choices[0].message.content,
        "model_id",
        r._hidden_params.get("model_id"),
        "cost",
        r._hidden_params.get("response_cost"),
        "provider",
        r._hidden_params.get("custom_llm_provider"),
    )
    r = await router.acompletion(model="intent-unpriced", messages=MSGS)
    print("custom, no prices given: cost", r._hidden_params.get("response_cost"))
    s = await router.acompletion(model="intent", messages=MSGS, stream=True, stream_options={"include_usage": True})
    parts, last = [], None
    async for ch in s:
        last = ch
        if ch.choices and ch.choices[0].delta.content:
            parts.append(ch.choices[0].delta.content)
    print("custom astreaming:", type(s).__name__, parts, "last usage:", getattr(last, "usage", None))
    for _ in range(20):
        await router.acompletion(model="intent", messages=MSGS)
    t = []
    for _ in range(300):
        t0 = time.perf_counter()
        await router.acompletion(model="intent", messages=MSGS)
        t.append(time.perf_counter() - t0)
    print("router -> CustomLLM (instant) c=1:", fmt(t))
    t = []
    for _ in range(300):
        t0 = time.perf_counter()
        await litellm.acompletion(model="director_local/intent", messages=MSGS)
        t.append(time.perf_counter() - t0)
    print("litellm.acompletion -> CustomLLM (instant) c=1:", fmt(t))

    # 7. latency-based routing: what does the router record?
    srv = await ProbeServer().start()
    lrouter = litellm.Router(
        model_list=[
            deployment("L", srv.base("ok-fast"), model="openai/fast"),
            deployment("L", srv.base("slow"), model="openai/slow"),
        ],
        routing_strategy="latency-based-routing",
        routing_strategy_args={"ttl": 60},
        num_retries=0,
        timeout=5,
    )
    from collections import Counter

    picks = Counter()
    for _ in range(12):
        r = await lrouter.acompletion(model="L", messages=MSGS)
        picks[r._hidden_params["model_id"]] += 1
    await asyncio.sleep(0.3)
    print("latency-based picks over 12 calls:", dict(picks))
    print("health().latency:", dict(lrouter.health().latency))
    print("settings routing_strategy_args:", lrouter.settings().as_dict().get("routing_strategy_args"))
    info = lrouter.get_model_group_info("L")
    print(
        "get_model_group_info:",
        type(info).__name__,
        {k: v for k, v in (info.model_dump() if info else {}).items() if v not in (None, [], {}, False)}
        if info
        else None,
    )
    store = lrouter.health().store
    for mid in ("L-ok-fast", "L-slow"):
        pass
    # the latency strategy keeps its samples in the router cache under "<group>_map"
    cached = await store.async_get_cache(key="L_map")
    if cached:
        for dep_id, v in cached.items():
            lat = v.get("latency", [])
            print(
                f"  cache L_map[{dep_id}]: n={len(lat)} mean={statistics.mean(lat) if lat else None}",
                {k: v[k] for k in v if k != "latency"},
            )
    else:
        print("  cache L_map: None")
    await srv.stop()


asyncio.run(main())
