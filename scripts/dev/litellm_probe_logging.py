"""Probe item 13: LiteLLM's own log output and whether the API key leaks (logs, exceptions, SLO).

Usage: litellm_probe_logging.py [debug|default|quiet]
"""

import asyncio
import json
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
MODE = sys.argv[1] if len(sys.argv) > 1 else "default"
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
if MODE == "quiet":
    os.environ["LITELLM_LOG"] = "CRITICAL"  # read at import by litellm/_logging.py

import litellm
from litellm.integrations.custom_logger import CustomLogger
from litellm_probe_common import FAKE_KEY, MSGS, ProbeServer, deployment

if MODE == "debug":
    litellm._turn_on_debug()
if MODE == "quiet":
    litellm.suppress_debug_info = True
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


class Dump(CustomLogger):
    def __init__(self):
        super().__init__()
        self.blobs = []
        self.raw = []
        self.raw_keys = []

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self.blobs.append(json.dumps(kwargs["standard_logging_object"], default=str))

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self.blobs.append(json.dumps(kwargs["standard_logging_object"], default=str))
        self.raw.append(repr({k: v for k, v in kwargs.items() if k not in ("standard_logging_object",)}))
        self.raw_keys = [k for k, v in kwargs.items() if FAKE_KEY in repr(v)]


async def main() -> None:
    srv = await ProbeServer().start()
    dump = Dump()
    litellm.callbacks.append(dump)
    router = litellm.Router(
        model_list=[
            deployment("A", srv.base("ok-a"), input_cost_per_token=1e-6, output_cost_per_token=1e-6),
            deployment("X", srv.base("e401")),
        ],
        num_retries=0,
        timeout=5,
    )
    await router.acompletion(model="A", messages=MSGS)
    err = ""
    try:
        await router.acompletion(model="X", messages=MSGS)
    except Exception as e:
        err = str(e) + repr(e.__dict__ if hasattr(e, "__dict__") else "")
    await asyncio.sleep(0.3)
    print(
        f"[{MODE}] key in exception text: {FAKE_KEY in err}; key in standard_logging_object: {any(FAKE_KEY in b for b in dump.blobs)};"
        f" key in raw failure kwargs: {any(FAKE_KEY in b for b in dump.raw)} (under {dump.raw_keys})",
        file=sys.__stdout__,
    )
    await srv.stop()


asyncio.run(main())
