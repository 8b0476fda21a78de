"""Probe items 1-2: Router construction, per-deployment cost, _hidden_params, overhead."""

import asyncio
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

from litellm_probe_common import FAKE_KEY, MSGS, ProbeServer


async def main() -> None:
    import httpx
    import litellm
    from litellm.integrations.custom_logger import CustomLogger

    srv = await ProbeServer().start()

    class Cap(CustomLogger):
        def __init__(self):
            super().__init__()
            self.success = []

        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
            self.success.append(kwargs.get("standard_logging_object"))

    cap = Cap()
    litellm.callbacks.append(cap)

    router = litellm.Router(
        model_list=[
            {
                "model_name": "groupA",
                "litellm_params": {
                    "model": "openai/mistral-director",
                    "api_base": srv.base("ok-a"),
                    "api_key": FAKE_KEY,
                    "timeout": 10,
                    "stream_timeout": 5,
                    "rpm": 600,
                    "tpm": 100000,
                    "input_cost_per_token": 0.000001,
                    "output_cost_per_token": 0.000002,
                    "max_tokens": 256,
                },
                "model_info": {"id": "a-1", "director_tier": "cheap"},
            },
            {
                "model_name": "groupB",
                "litellm_params": {"model": "openai/other-model", "api_base": srv.base("ok-b"), "api_key": FAKE_KEY},
                "model_info": {"id": "b-1"},
            },
        ],
        fallbacks=[{"groupA": ["groupB"]}],
        num_retries=1,
        timeout=10,
        allowed_fails=1,
        cooldown_time=5,
        retry_policy={"InternalServerErrorRetries": 1, "AuthenticationErrorRetries": 0},
    )
    r = await router.acompletion(model="groupA", messages=MSGS)
    hp = r._hidden_params
    print("content:", r.choices[0].message.content)
    print("usage:", r.usage.prompt_tokens, r.usage.completion_tokens)
    print("hidden keys:", sorted(hp))
    for k in ("model_id", "api_base", "response_cost", "litellm_model_name", "custom_llm_provider", "litellm_call_id"):
        print(f"  hidden[{k}] =", hp.get(k))
    print("  hidden[additional_headers] keys =", sorted(hp.get("additional_headers") or {})[:8])
    print(
        "max_tokens sent upstream:",
        srv.bodies["ok-a"].get("max_tokens"),
        "model sent:",
        srv.bodies["ok-a"].get("model"),
    )
    print("auth header seen by server:", srv.headers["ok-a"].get("Authorization", "")[:10] + "...")
    await asyncio.sleep(0.3)
    slo = cap.success[-1]
    print("SLO keys:", sorted(slo))
    for k in (
        "model_id",
        "response_cost",
        "api_base",
        "model",
        "model_group",
        "custom_llm_provider",
        "status",
        "error_str",
        "response_time",
        "prompt_tokens",
        "completion_tokens",
        "hidden_params",
    ):
        v = slo.get(k)
        if k == "hidden_params":
            v = {kk: v.get(kk) for kk in ("model_id", "api_base", "response_cost", "litellm_model_name")}
        print(f"  slo[{k}] =", v)
    print("completion_cost(response):", litellm.completion_cost(completion_response=r))
    r2 = await router.acompletion(model="groupB", messages=MSGS)
    print("groupB (no per-deployment price, unknown model) response_cost:", r2._hidden_params.get("response_cost"))

    # overhead, c=1
    N = 200
    async with httpx.AsyncClient() as client:
        payload = {"model": "mistral-director", "messages": MSGS}
        for _ in range(20):
            await client.post(
                srv.base("ok-a") + "/chat/completions", json=payload, headers={"Authorization": "Bearer x"}
            )
        t = []
        for _ in range(N):
            t0 = time.perf_counter()
            resp = await client.post(
                srv.base("ok-a") + "/chat/completions", json=payload, headers={"Authorization": "Bearer x"}
            )
            resp.json()
            t.append(time.perf_counter() - t0)
    for _ in range(20):
        await router.acompletion(model="groupA", messages=MSGS)
    tr = []
    for _ in range(N):
        t0 = time.perf_counter()
        await router.acompletion(model="groupA", messages=MSGS)
        tr.append(time.perf_counter() - t0)
    tl = []
    for _ in range(N):
        t0 = time.perf_counter()
        await litellm.acompletion(
            model="openai/mistral-director", api_base=srv.base("ok-a"), api_key=FAKE_KEY, messages=MSGS
        )
        tl.append(time.perf_counter() - t0)

    def fmt(xs):
        xs = sorted(xs)
        return f"median {statistics.median(xs) * 1000:.2f} ms, p95 {xs[int(len(xs) * 0.95)] * 1000:.2f} ms"

    print(f"bare httpx: {fmt(t)}")
    print(f"litellm.acompletion: {fmt(tl)}")
    print(f"router.acompletion: {fmt(tr)}")
    await srv.stop()


asyncio.run(main())
