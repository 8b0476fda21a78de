"""Probe (item 3 detail): which failures cool a deployment down, single- vs multi-deployment groups."""

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ["LITELLM_LOG"] = "CRITICAL"

import litellm
from litellm.integrations.custom_logger import CustomLogger
from litellm_probe_common import MSGS, ProbeServer, deployment


class Who(CustomLogger):
    def __init__(self):
        super().__init__()
        self.fails = []

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self.fails.append(kwargs["standard_logging_object"]["model_id"])


WHO = Who()
litellm.callbacks.append(WHO)


async def run(label, bases, **kw):
    router = litellm.Router(model_list=[deployment("G", b) for b in bases], num_retries=0, timeout=2, **kw)
    seq = []
    WHO.fails.clear()
    for _ in range(6):
        try:
            r = await router.acompletion(model="G", messages=MSGS)
            seq.append("ok:" + r._hidden_params["model_id"])
        except Exception as e:
            seq.append(type(e).__name__)
    await asyncio.sleep(0.2)
    try:
        healthy = await router.select("G", {}, kind="healthy", messages=MSGS)
        healthy_ids = [d["model_info"]["id"] for d in healthy]
    except Exception as e:
        healthy_ids = f"{type(e).__name__}: {str(e)[-60:]}"
    print(f"{label}: {seq}\n    failed attempts on: {WHO.fails}\n    healthy after: {healthy_ids}")


async def main():
    srv = await ProbeServer().start()
    refused = "http://127.0.0.1:1/v1"
    await run("single deployment, 500 (defaults)", [srv.base("e500")])
    await run("single deployment, refused (defaults)", [refused])
    await run("single deployment, 401 (defaults)", [srv.base("e401")])
    await run("single deployment, 429 (defaults)", [srv.base("e429")])
    await run("single deployment, 500, allowed_fails=0", [srv.base("e500")], allowed_fails=0)
    await run("two deployments (500 + ok), defaults", [srv.base("e500"), srv.base("ok-2")])
    await run("two deployments (refused + ok), defaults", [refused, srv.base("ok-2")])
    await srv.stop()


asyncio.run(main())
