"""Probe item 3: retries and fallbacks per error kind (500, refused, 401, 400 ctx, 429)."""

import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

from litellm.integrations.custom_logger import CustomLogger
from litellm_probe_common import MSGS, ProbeServer, deployment


class Cap(CustomLogger):
    def __init__(self):
        super().__init__()
        self.events = []

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        slo = kwargs.get("standard_logging_object") or {}
        self.events.append(("ok", slo.get("model_group"), slo.get("model_id")))

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        slo = kwargs.get("standard_logging_object") or {}
        ei = slo.get("error_information") or {}
        self.events.append(
            (
                "fail",
                slo.get("model_group"),
                slo.get("model_id"),
                ei.get("error_class"),
                ei.get("error_code"),
                type(kwargs.get("exception")).__name__,
            )
        )


CAP = Cap()


async def run_case(srv, label, a_base, router_kwargs, call_kwargs=None):
    import litellm

    cap = CAP
    cap.events.clear()
    if cap not in litellm.callbacks:
        litellm.callbacks.append(cap)
    srv.hits.clear()
    srv.times.clear()
    router = litellm.Router(
        model_list=[deployment("A", a_base), deployment("B", srv.base("ok-b"))],
        fallbacks=[{"A": ["B"]}],
        **router_kwargs,
    )
    t0 = time.monotonic()
    try:
        r = await router.acompletion(model="A", messages=MSGS, **(call_kwargs or {}))
        outcome = f"OK from {r._hidden_params.get('model_id')} ({r.choices[0].message.content!r}); headers attempted_retries={r._hidden_params['additional_headers'].get('x-litellm-attempted-retries')} attempted_fallbacks={r._hidden_params['additional_headers'].get('x-litellm-attempted-fallbacks')}"
    except Exception as e:
        outcome = (
            f"RAISED {type(e).__module__}.{type(e).__name__}: {str(e)[:160]!r} status={getattr(e, 'status_code', None)}"
        )
    dt = time.monotonic() - t0
    await asyncio.sleep(0.3)
    a_times = [round(t - t0, 2) for t in srv.times.get(a_base.rsplit("/", 2)[-2], [])]
    b_times = [round(t - t0, 2) for t in srv.times.get("ok-b", [])]
    print(f"--- {label}: {dt:.2f}s; A hits at {a_times}; B hits at {b_times}")
    print("    ", outcome)
    for ev in cap.events:
        print("     event:", ev)
    # second call: is A cooled down?
    srv.hits.clear()
    try:
        r = await router.acompletion(model="A", messages=MSGS, **(call_kwargs or {}))
        second = f"OK from {r._hidden_params.get('model_id')}"
    except Exception as e:
        second = f"RAISED {type(e).__name__}"
    print(
        f"     2nd call: {second}; A hits={sum(v for k, v in srv.hits.items() if k != 'ok-b')} B hits={srv.hits.get('ok-b', 0)}"
    )


async def main() -> None:
    srv = await ProbeServer().start()
    base = dict(num_retries=2, timeout=5)
    await run_case(srv, "500 -> B (num_retries=2)", srv.base("e500"), base)
    await run_case(srv, "500, no retries (num_retries=0)", srv.base("e500"), dict(num_retries=0, timeout=5))
    await run_case(srv, "connection refused -> B", "http://127.0.0.1:1/v1", base)
    await run_case(srv, "401 -> B", srv.base("e401"), base)
    await run_case(srv, "400 context length, fallbacks only", srv.base("ctx400"), base)
    await run_case(
        srv,
        "400 context length with context_window_fallbacks",
        srv.base("ctx400"),
        dict(num_retries=2, timeout=5, context_window_fallbacks=[{"A": ["B"]}]),
    )
    await run_case(srv, "429 Retry-After:2 -> B", srv.base("e429"), base)
    await run_case(
        srv,
        "429 Retry-After:2, no fallback group (A only)",
        srv.base("e429"),
        dict(num_retries=2, timeout=5),
        call_kwargs={"fallbacks": []},
    )
    await run_case(
        srv,
        "500, retry_policy InternalServerErrorRetries=0",
        srv.base("e500"),
        dict(num_retries=2, timeout=5, retry_policy={"InternalServerErrorRetries": 0}),
    )
    await run_case(
        srv,
        "500, allowed_fails=0 cooldown_time=30",
        srv.base("e500"),
        dict(num_retries=2, timeout=5, allowed_fails=0, cooldown_time=30),
    )
    await srv.stop()


if not os.environ.get("PROBE_CTX_ONLY"):
    asyncio.run(main())


async def context_window_only() -> None:
    """context_window_fallbacks alone (no plain fallbacks): used for ctx errors, not for 500s?"""
    import litellm

    srv = await ProbeServer().start()
    for label, a in (("ctx400", srv.base("ctx400")), ("e500", srv.base("e500"))):
        srv.hits.clear()
        router = litellm.Router(
            model_list=[deployment("A", a), deployment("C", srv.base("ok-c"))],
            context_window_fallbacks=[{"A": ["C"]}],
            num_retries=0,
            timeout=5,
        )
        try:
            r = await router.acompletion(model="A", messages=MSGS)
            out = f"OK from {r._hidden_params['model_id']}"
        except Exception as e:
            out = f"RAISED {type(e).__name__}"
        print(f"--- context_window_fallbacks only, A fails with {label}: {out}; hits {dict(srv.hits)}")
    await srv.stop()


if os.environ.get("PROBE_CTX_ONLY"):
    asyncio.run(context_window_only())
