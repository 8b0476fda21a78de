"""Probe items 9-10: streaming (usage, fallback before/after first token, aclose) and timeouts."""

import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

import litellm
from litellm.integrations.custom_logger import CustomLogger
from litellm_probe_common import MSGS, ProbeServer, deployment


class Cap(CustomLogger):
    def __init__(self):
        super().__init__()
        self.events = []

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        slo = kwargs["standard_logging_object"]
        self.events.append(("ok", slo["model_id"], slo["response_cost"], slo["completion_tokens"], slo["stream"]))

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        slo = kwargs["standard_logging_object"]
        self.events.append(("fail", slo["model_id"], (slo.get("error_information") or {}).get("error_class")))


CAP = Cap()
litellm.callbacks.append(CAP)


async def consume(s, limit=None):
    parts, last, n = [], None, 0
    async for ch in s:
        last = ch
        n += 1
        if ch.choices and ch.choices[0].delta.content:
            parts.append(ch.choices[0].delta.content)
        if limit and n >= limit:
            break
    return parts, last


async def case(label, coro_fn, srv):
    CAP.events.clear()
    srv.hits.clear()
    t0 = time.monotonic()
    try:
        out = await coro_fn()
    except Exception as e:
        out = f"RAISED {type(e).__module__}.{type(e).__name__}: {str(e)[:150]!r}"
    dt = time.monotonic() - t0
    await asyncio.sleep(0.3)
    print(f"--- {label} ({dt:.2f}s): {out}; hits {dict(srv.hits)}")
    for e in CAP.events:
        print("      ", e)


async def main() -> None:
    srv = await ProbeServer().start()
    P = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}
    router = litellm.Router(
        model_list=[
            deployment("S", srv.base("ok-s"), **P),
            deployment("E", srv.base("stream-e500"), **P),
            deployment("K", srv.base("stream-break"), **P),
            deployment("B", srv.base("ok-b"), **P),
            deployment("SL", srv.base("stream-slow"), **P),
        ],
        fallbacks=[{"E": ["B"]}, {"K": ["B"]}],
        num_retries=0,
        timeout=5,
    )

    async def plain():
        s = await router.acompletion(model="S", messages=MSGS, stream=True)
        parts, last = await consume(s)
        return f"{type(s).__module__}.{type(s).__name__} parts={parts} last.usage={getattr(last, 'usage', None)} hidden model_id={s._hidden_params.get('model_id')} cost={s._hidden_params.get('response_cost')}"

    await case("stream, no include_usage", plain, srv)

    async def usage():
        s = await router.acompletion(model="S", messages=MSGS, stream=True, stream_options={"include_usage": True})
        parts, last = await consume(s)
        return f"last chunk usage={last.usage.prompt_tokens}/{last.usage.completion_tokens} choices={last.choices}"

    await case("stream, include_usage", usage, srv)

    async def fb_before():
        s = await router.acompletion(model="E", messages=MSGS, stream=True)
        parts, _ = await consume(s)
        return f"parts={parts} model_id={s._hidden_params.get('model_id')}"

    await case("stream: E returns 500 before first token -> B", fb_before, srv)

    async def fb_after():
        s = await router.acompletion(model="K", messages=MSGS, stream=True)
        parts = []
        try:
            async for ch in s:
                if ch.choices and ch.choices[0].delta.content:
                    parts.append(ch.choices[0].delta.content)
        except Exception as e:
            return f"got {parts} then RAISED {type(e).__module__}.{type(e).__name__}: {str(e)[:120]!r}"
        return f"completed parts={parts} (no error!)"

    await case("stream: K cuts connection after first token", fb_after, srv)

    async def cancel():
        srv.open_streams = srv.closed_streams = 0
        s = await router.acompletion(model="SL", messages=MSGS, stream=True)
        parts, _ = await consume(s, limit=3)
        has_aclose = hasattr(s, "aclose")
        if has_aclose:
            await s.aclose()
        await asyncio.sleep(0.5)
        return f"read 3 chunks, aclose exists={has_aclose}; server: open={srv.open_streams} closed(ConnectionReset/Cancelled)={srv.closed_streams}"

    await case("stream: aclose after 3 of 50 chunks (server writes every 50 ms)", cancel, srv)

    # 10. timeouts against a hanging server
    trouter = litellm.Router(
        model_list=[
            deployment("H", srv.base("hang"), timeout=1.0, stream_timeout=0.5),
            deployment("B", srv.base("ok-b")),
        ],
        fallbacks=[{"H": ["B"]}],
        num_retries=2,
        timeout=30,
    )

    async def hang_fb():
        r = await trouter.acompletion(model="H", messages=MSGS)
        return f"answered by {r._hidden_params['model_id']}"

    await case("hang, deployment timeout=1.0, num_retries=2 -> B", hang_fb, srv)

    async def hang_req_timeout():
        r = await trouter.acompletion(model="H", messages=MSGS, timeout=0.3, fallbacks=[])
        return f"answered by {r._hidden_params['model_id']}"

    await case("hang, per-request timeout=0.3, no fallbacks", hang_req_timeout, srv)

    async def hang_stream():
        s = await trouter.acompletion(model="H", messages=MSGS, stream=True)
        parts, _ = await consume(s)
        return f"stream answered by {s._hidden_params.get('model_id')} parts={parts}"

    await case("hang stream, stream_timeout=0.5, num_retries=2 -> B", hang_stream, srv)
    trouter0 = litellm.Router(
        model_list=[deployment("H", srv.base("hang"), timeout=1.0), deployment("B", srv.base("ok-b"))],
        fallbacks=[{"H": ["B"]}],
        num_retries=0,
        timeout=30,
    )

    async def hang_fb0():
        r = await trouter0.acompletion(model="H", messages=MSGS)
        return f"answered by {r._hidden_params['model_id']}"

    await case("hang, deployment timeout=1.0, num_retries=0 -> B", hang_fb0, srv)

    async def deadline():
        r = await asyncio.wait_for(trouter.acompletion(model="H", messages=MSGS), timeout=1.5)
        return f"answered by {r._hidden_params['model_id']}"

    await case("total deadline via asyncio.wait_for(1.5)", deadline, srv)
    from litellm.litellm_core_utils.total_deadline import total_deadline

    async def litellm_deadline():
        async with total_deadline(2.5, from_body=False):
            r = await trouter.acompletion(model="H", messages=MSGS)
        return f"answered by {r._hidden_params['model_id']}"

    await case(
        "LiteLLM's own total_deadline(2.5) around router.acompletion (num_retries=2, fallback B)", litellm_deadline, srv
    )
    await srv.stop()


asyncio.run(main())
