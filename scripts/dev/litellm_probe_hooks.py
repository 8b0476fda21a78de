"""Probe items 4-6: CustomLogger filter / hooks, Router(plugins=[...]), fallback checks, register_plugin."""

import asyncio
import os
import sys
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(__file__))
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

import litellm
from litellm.integrations.custom_logger import CustomLogger
from litellm_probe_common import MSGS, ProbeServer, deployment


class Director(CustomLogger):
    """Filters by request metadata; records every hook call."""

    def __init__(self):
        super().__init__()
        self.calls = []

    async def async_filter_deployments(
        self, model, healthy_deployments, messages, request_kwargs=None, parent_otel_span=None
    ):
        md = (request_kwargs or {}).get("metadata") or {}
        director = md.get("director") or {}
        ids = [d["model_info"]["id"] for d in healthy_deployments]
        self.calls.append(("filter", model, ids, sorted((request_kwargs or {}).keys())[:12], director))
        if director.get("empty") or model in director.get("empty_groups", ()):
            return []
        drop = set(director.get("drop", ()))
        kept = [d for d in healthy_deployments if d["model_info"]["id"] not in drop]
        if director.get("reverse"):
            kept = list(reversed(kept))
        return kept

    async def async_pre_call_hook(self, user_api_key_dict, cache, data, call_type):
        self.calls.append(("pre_call_hook", call_type))

    async def async_pre_call_deployment_hook(self, kwargs, call_type):
        self.calls.append(("pre_call_deployment_hook", kwargs.get("model"), call_type))
        return None

    async def async_pre_routing_hook(self, model, request_kwargs, messages=None, input=None, specific_deployment=False):
        self.calls.append(("pre_routing_hook", model))
        return None

    async def async_log_pre_api_call(self, model, messages, kwargs):
        self.calls.append(("log_pre_api_call", model))

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        slo = kwargs["standard_logging_object"]
        self.calls.append(
            (
                "success",
                slo["model_group"],
                slo["model_id"],
                slo["response_cost"],
                (slo.get("metadata") or {}).get("requester_metadata"),
                "litellm_params.metadata.director=",
                ((kwargs.get("litellm_params") or {}).get("metadata") or {}).get("director"),
            )
        )

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        slo = kwargs["standard_logging_object"]
        self.calls.append(
            (
                "failure",
                slo["model_group"],
                slo["model_id"],
                slo["error_str"][:60] if slo.get("error_str") else None,
                slo.get("error_information"),
            )
        )

    async def log_success_fallback_event(self, original_model_group, kwargs, original_exception):
        self.calls.append(("success_fallback", original_model_group, type(original_exception).__name__))

    async def log_failure_fallback_event(self, original_model_group, kwargs, original_exception):
        self.calls.append(("failure_fallback", original_model_group, type(original_exception).__name__))


class TierPlugin:
    """A RoutingPlugin: narrows candidate_models (litellm_params.model strings) from metadata."""

    def __init__(self):
        self.seen = []

    async def run(self, context):
        director = context.metadata.get("director") or {}
        self.seen.append((list(context.candidate_models), director))
        keep = director.get("plugin_keep")
        if keep is not None:
            context.candidate_models = [m for m in context.candidate_models if m in keep]
        context.signals["director_tier"] = director.get("tier")
        return context


async def show(label, coro, srv, log):
    log.calls.clear()
    srv.hits.clear()
    t0 = time.monotonic()
    try:
        r = await coro
        out = f"OK model_id={r._hidden_params.get('model_id')}"
    except Exception as e:
        out = f"RAISED {type(e).__name__}: {str(e)[:200]!r}"
    await asyncio.sleep(0.2)
    print(f"--- {label} ({time.monotonic() - t0:.2f}s): {out}; server hits {dict(srv.hits)}")
    for c in log.calls:
        print("     ", c)


async def main() -> None:
    srv = await ProbeServer().start()
    log = Director()
    litellm.callbacks.append(log)
    plugin = TierPlugin()
    checks = []

    async def budget_check(*, model, request_kwargs, ctx):
        md = request_kwargs.get("metadata") or {}
        checks.append(("budget", model, (md.get("director") or {}), type(ctx).__name__))
        return not (md.get("director") or {}).get("deny_budget")

    async def access_check(*, model, request_kwargs, ctx):
        checks.append(("access", model))
        return True

    model_list = [
        deployment("A", srv.base("ok-a1"), model="openai/m-a1"),
        deployment("A", srv.base("ok-a2"), model="openai/m-a2"),
        deployment("B", srv.base("ok-b"), model="openai/m-b"),
        deployment("E", srv.base("e500"), model="openai/m-e"),
    ]
    router = litellm.Router(
        model_list=model_list,
        fallbacks=[{"A": ["B"]}, {"E": ["B"]}],
        num_retries=0,
        plugins=[plugin],
        fallback_budget_check=budget_check,
        fallback_access_check=access_check,
    )
    await show(
        "plain call, metadata passed",
        router.acompletion(model="A", messages=MSGS, metadata={"director": {"flow": "greet"}}),
        srv,
        log,
    )
    print("     plugin saw:", plugin.seen[-1])
    await show(
        "filter drops A-ok-a1",
        router.acompletion(model="A", messages=MSGS, metadata={"director": {"drop": ["A-ok-a1"]}}),
        srv,
        log,
    )
    # order: does the core take the filter's first?
    picks = Counter()
    for _ in range(20):
        r = await router.acompletion(model="A", messages=MSGS, metadata={"director": {"reverse": True}})
        picks[r._hidden_params["model_id"]] += 1
    print("--- filter returns reversed order, 20 calls, picks:", dict(picks))
    await show(
        "filter returns [] for A (fallback A->B configured)",
        router.acompletion(model="A", messages=MSGS, metadata={"director": {"empty": True}}),
        srv,
        log,
    )
    print("     fallback checks:", checks)
    checks.clear()
    await show(
        "filter returns [], fallbacks disabled per request",
        router.acompletion(model="A", messages=MSGS, fallbacks=[], metadata={"director": {"empty": True}}),
        srv,
        log,
    )
    await show(
        "filter returns [] for A only -> fallback B",
        router.acompletion(model="A", messages=MSGS, metadata={"director": {"empty_groups": ["A"]}}),
        srv,
        log,
    )
    await show(
        "plugin keeps nothing, fallbacks on",
        router.acompletion(model="A", messages=MSGS, metadata={"director": {"plugin_keep": []}}),
        srv,
        log,
    )
    await show(
        "plugin keeps only openai/m-a2",
        router.acompletion(model="A", messages=MSGS, metadata={"director": {"plugin_keep": ["openai/m-a2"]}}),
        srv,
        log,
    )
    await show(
        "plugin keeps nothing",
        router.acompletion(model="A", messages=MSGS, fallbacks=[], metadata={"director": {"plugin_keep": []}}),
        srv,
        log,
    )
    await show(
        "E 500 -> B, budget check allows",
        router.acompletion(model="E", messages=MSGS, metadata={"director": {}}),
        srv,
        log,
    )
    print("     fallback checks:", checks)
    checks.clear()
    await show(
        "E 500 -> B, budget check denies",
        router.acompletion(model="E", messages=MSGS, metadata={"director": {"deny_budget": True}}),
        srv,
        log,
    )
    print("     fallback checks:", checks)

    # select(): pick without calling
    sel = Counter()
    for _ in range(10):
        picked = await router.select("A", {"metadata": {"director": {"drop": ["A-ok-a2"]}}}, messages=MSGS)
        sel[picked["model_info"]["id"]] += 1
    print("--- select(pick) x10 with filter dropping A-ok-a2:", dict(sel), "server hits:", dict(srv.hits))
    healthy = await router.select("A", {}, kind="healthy", messages=MSGS)
    print("--- select(healthy):", [d["model_info"]["id"] for d in healthy])
    print(
        "--- settings():",
        type(router.settings()).__name__,
        {
            k: router.settings().as_dict().get(k)
            for k in ("num_retries", "timeout", "allowed_fails", "cooldown_time", "routing_strategy", "fallbacks")
        },
    )
    print("--- health():", type(router.health()).__name__, "latency map:", dict(router.health().latency))
    print("--- registry().deployment('B-ok-b'):", router.registry().deployment("B-ok-b").litellm_params.model)

    # register_plugin: a CustomRoutingStrategyBase replaces the pick
    from litellm.types.router import CustomRoutingStrategyBase

    class AlwaysSecond(CustomRoutingStrategyBase):
        async def async_get_available_deployment(
            self, model, messages=None, input=None, specific_deployment=False, request_kwargs=None
        ):
            deps = (
                router.registry().deployments(model_name=model)
                if False
                else [d for d in router.registry().all() if d["model_name"] == model]
            )
            return deps[-1]

        def get_available_deployment(
            self, model, messages=None, input=None, specific_deployment=False, request_kwargs=None
        ):
            return [d for d in router.registry().all() if d["model_name"] == model][-1]

    router2 = litellm.Router(model_list=model_list, num_retries=0)
    router2.register_plugin(AlwaysSecond())
    picks = Counter()
    for _ in range(10):
        r = await router2.acompletion(model="A", messages=MSGS)
        picks[r._hidden_params["model_id"]] += 1
    print("--- register_plugin(AlwaysSecond) picks:", dict(picks))
    await srv.stop()


asyncio.run(main())
