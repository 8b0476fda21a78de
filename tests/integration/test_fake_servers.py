"""The test harness itself: every fake protocol through real LiteLLM, every fault, Redis fixtures.

LiteLLM talks to the fake servers over real HTTP on 127.0.0.1, so these tests also pin down
what LiteLLM 1.110.2 raises for each kind of provider failure, which the routing,
fallback and breaker tests rely on.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import litellm
import pytest
import redis
from litellm.exceptions import MidStreamFallbackError

from director_llm.testing import (
    FakeProviderServer,
    Fault,
    RecordedRequest,
    RedisServer,
    RedisUnavailableError,
    Reply,
)
from director_llm.testing.pytest_plugin import delete_prefix, require_redis
from director_llm.testing.servers import load_scenario

litellm.suppress_debug_info = True
API_KEY = "sk-fake-test-key-0000"
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Case:
    """One protocol as LiteLLM is told to reach it."""

    protocol: str
    litellm_model: str
    base_suffix: str
    server_model: str
    path: str
    stream_path: str

    def kwargs(self, base: str) -> dict[str, object]:
        return {
            "model": self.litellm_model,
            "api_base": base + self.base_suffix,
            "api_key": API_KEY,
        }


CASES = [
    Case(
        "openai",
        "openai/gpt-4o",
        "/v1",
        "gpt-4o",
        "/v1/chat/completions",
        "/v1/chat/completions",
    ),
    Case(
        "anthropic",
        "anthropic/claude-3-5-sonnet-20241022",
        "",
        "claude-3-5-sonnet-20241022",
        "/v1/messages",
        "/v1/messages",
    ),
    Case("ollama", "ollama_chat/llama3.2:1b", "", "llama3.2:1b", "/api/chat", "/api/chat"),
    Case(
        "gemini",
        "gemini/gemini-2.0-flash",
        "/v1beta",
        "gemini-2.0-flash",
        "/v1beta/models/gemini-2.0-flash:generateContent",
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent",
    ),
    Case(
        "gemini_openai",
        "openai/gemini-2.0-flash",
        "/v1beta/openai",
        "gemini-2.0-flash",
        "/v1beta/openai/chat/completions",
        "/v1beta/openai/chat/completions",
    ),
]
OPENAI = CASES[0]
MESSAGES = [{"role": "user", "content": "what is the weather in Paris today"}]


async def complete(
    base: str,
    case: Case,
    *,
    stream: bool,
    messages: list[dict[str, str]] = MESSAGES,
    **kwargs: object,
) -> tuple[str, tuple[int, int] | None]:
    """Call LiteLLM once; return the text and (prompt, completion) usage."""
    params = {
        "messages": messages,
        "timeout": 5,
        "max_retries": 0,
        **case.kwargs(base),
        **kwargs,
    }
    if not stream:
        response = await litellm.acompletion(**params)
        usage = (response.usage.prompt_tokens, response.usage.completion_tokens)
        return response.choices[0].message.content or "", usage
    stream_response = await litellm.acompletion(stream=True, stream_options={"include_usage": True}, **params)
    text, usage = "", None
    async for chunk in stream_response:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if getattr(chunk, "usage", None):
            usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
    return text, usage


# -- every protocol, streamed and not ----------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("case", CASES, ids=[c.protocol for c in CASES])
async def test_protocol_round_trip(fake_provider: FakeProviderServer, case: Case, stream: bool) -> None:
    reply = f"Sunny and mild in Paris via {case.protocol}"
    fake_provider.script(case.server_model, Reply(text=reply, usage=(11, 7)), protocol=case.protocol)

    text, usage = await complete(fake_provider.base_url, case, stream=stream)

    assert text == reply
    assert usage == (11, 7)
    [request] = fake_provider.requests
    assert request.protocol == case.protocol
    assert request.model == case.server_model
    assert request.path == (case.stream_path if stream else case.path)
    assert request.stream is stream
    assert request.api_key == API_KEY
    assert "weather in Paris" in json.dumps(request.messages)
    if case.protocol == "gemini" and stream:
        assert request.query == {"alt": "sse"}


@pytest.mark.parametrize("case", CASES, ids=[c.protocol for c in CASES])
async def test_usage_is_computed_when_not_scripted(fake_provider: FakeProviderServer, case: Case) -> None:
    fake_provider.set_default(Reply(text="one two three"))
    _, usage = await complete(fake_provider.base_url, case, stream=False)
    # The fake tokeniser counts words: the prompt has 7, the reply 3.
    assert usage == (7, 3)


def test_ollama_model_info_lookup_is_served(fake_provider: FakeProviderServer) -> None:
    # ollama_chat asks /api/show for models missing from its price map (cached per model).
    from litellm.llms.ollama.common_utils import OllamaModelInfo

    info = OllamaModelInfo().get_model_info("ollama_chat/fake-local-model", api_base=fake_provider.base_url)
    assert info is not None and info["max_input_tokens"] == 8192
    [show] = fake_provider.meta_requests
    assert (show.path, show.model) == ("/api/show", "fake-local-model")
    tags = httpx.get(fake_provider.base_url + "/api/tags").json()
    assert [m["name"] for m in tags["models"]] == ["llama3.2:1b"]
    assert fake_provider.requests == []  # model-info lookups are not chat requests


def test_gemini_key_in_query_and_json_array_stream(
    fake_provider: FakeProviderServer,
) -> None:
    fake_provider.set_default(Reply(text="a b c"))
    url = fake_provider.base_url + "/v1beta/models/gemini-2.0-flash:streamGenerateContent?key=AIza-test"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    response = httpx.post(url, json=body)
    events = response.json()  # without alt=sse Gemini streams one JSON array
    assert "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events) == "a b c"
    assert events[-1]["usageMetadata"]["candidatesTokenCount"] == 3
    [request] = fake_provider.requests
    assert request.query == {"key": "AIza-test"}
    assert request.api_key == "AIza-test"


async def test_response_format_is_recorded_and_json_reply_parses(
    fake_provider: FakeProviderServer,
) -> None:
    fake_provider.set_default(Reply(json={"flow": "weather", "confidence": 0.9}))
    text, _ = await complete(
        fake_provider.base_url,
        OPENAI,
        stream=False,
        response_format={"type": "json_object"},
    )
    assert json.loads(text) == {"flow": "weather", "confidence": 0.9}
    assert fake_provider.requests[0].body["response_format"] == {"type": "json_object"}


# -- scripting ---------------------------------------------------------------------------


async def test_script_sequence_then_default(fake_provider: FakeProviderServer) -> None:
    fake_provider.set_default(Reply(text="default"))
    fake_provider.script("gpt-4o", [Fault.status(500), Reply(text="ok")])

    with pytest.raises(litellm.InternalServerError):
        await complete(fake_provider.base_url, OPENAI, stream=False)
    assert (await complete(fake_provider.base_url, OPENAI, stream=False))[0] == "ok"
    assert (await complete(fake_provider.base_url, OPENAI, stream=False))[0] == "default"
    assert len(fake_provider.requests_for("gpt-4o")) == 3


async def test_script_then_and_repeat(fake_provider: FakeProviderServer) -> None:
    fake_provider.script("gpt-4o", [Reply(text="first")], then=Reply(text="after"))
    fake_provider.script("gpt-4o-mini", [Reply(text="a"), Reply(text="b")], repeat=True)
    base = fake_provider.base_url
    mini = Case("openai", "openai/gpt-4o-mini", "/v1", "gpt-4o-mini", "", "")
    got = [(await complete(base, OPENAI, stream=False))[0] for _ in range(3)]
    got_mini = [(await complete(base, mini, stream=False))[0] for _ in range(3)]
    assert got == ["first", "after", "after"]
    assert got_mini == ["a", "b", "a"]


async def test_protocol_specific_rule_beats_model_rule(
    fake_provider: FakeProviderServer,
) -> None:
    fake_provider.script("gemini-2.0-flash", Reply(text="any protocol"), repeat=True)
    fake_provider.script("gemini-2.0-flash", Reply(text="native only"), protocol="gemini", repeat=True)
    native, compat = CASES[3], CASES[4]
    assert (await complete(fake_provider.base_url, native, stream=False))[0] == "native only"
    assert (await complete(fake_provider.base_url, compat, stream=False))[0] == "any protocol"


async def test_respond_with_sees_the_request(fake_provider: FakeProviderServer) -> None:
    def oracle(request: RecordedRequest) -> Reply | Fault:
        last = request.messages[-1]["content"]
        if "weather" in last:
            return Reply(json={"flow": "weather"})
        return Fault.status(400, "unknown intent")

    fake_provider.respond_with("gpt-4o", oracle)
    text, _ = await complete(fake_provider.base_url, OPENAI, stream=False)
    assert json.loads(text) == {"flow": "weather"}
    with pytest.raises(litellm.BadRequestError):
        await complete(
            fake_provider.base_url,
            OPENAI,
            stream=False,
            messages=[{"role": "user", "content": "hm"}],
        )


@pytest.mark.parametrize("case", CASES, ids=[c.protocol for c in CASES])
async def test_last_user_text_for_every_protocol(fake_provider: FakeProviderServer, case: Case) -> None:
    fake_provider.respond_with(None, lambda request: Reply(text=request.last_user_text.upper()))
    messages = [
        {"role": "system", "content": "classify the intent"},
        {"role": "user", "content": "book a table"},
    ]
    text, _ = await complete(fake_provider.base_url, case, stream=False, messages=messages)
    # LiteLLM's gemini/ provider folds the system prompt into the user message's parts.
    expected = "BOOK A TABLE"
    if case.protocol == "gemini":
        expected = "CLASSIFY THE INTENT\nBOOK A TABLE"
    assert text == expected


async def test_concurrent_requests_follow_the_script_exactly_once(
    fake_provider: FakeProviderServer,
) -> None:
    fake_provider.script("gpt-4o", [Fault.status(500)] * 3, then=Reply(text="ok"))
    results = await asyncio.gather(
        *(complete(fake_provider.base_url, OPENAI, stream=False) for _ in range(8)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, litellm.InternalServerError) for r in results) == 3
    assert sum(isinstance(r, tuple) and r[0] == "ok" for r in results) == 5


def test_scenario_validation() -> None:
    server = FakeProviderServer()
    load_scenario(
        server,
        {"scripts": [{"model": "m", "steps": [{"fault": "rate_limited", "retry_after": 1}]}]},
    )
    with pytest.raises(ValueError, match="unknown fault"):
        load_scenario(server, {"default": {"fault": "explode"}})
    with pytest.raises(ValueError, match="unknown scenario keys"):
        load_scenario(server, {"defaults": {}})
    with pytest.raises(TypeError):
        server.script("m", ["not a behaviour"])  # type: ignore[list-item]


async def test_failing_responder_answers_500_and_is_reported(
    fake_provider: FakeProviderServer,
) -> None:
    fake_provider.respond_with(None, lambda request: 1 / 0)
    with pytest.raises(litellm.InternalServerError):
        await complete(fake_provider.base_url, OPENAI, stream=False)
    assert fake_provider.errors == ["ZeroDivisionError: division by zero"]


def test_reset_clears_scripts_and_records(fake_provider: FakeProviderServer) -> None:
    fake_provider.script(None, Fault.status(500), repeat=True)
    assert httpx.post(fake_provider.base_url + "/v1/chat/completions", json={"model": "m"}).status_code == 500
    fake_provider.reset()
    assert fake_provider.requests == []
    assert httpx.post(fake_provider.base_url + "/v1/chat/completions", json={"model": "m"}).status_code == 200


# -- faults ------------------------------------------------------------------------------

STATUS_FAULTS = [
    (Fault.status(500), litellm.InternalServerError),
    (Fault.status(503), litellm.ServiceUnavailableError),
    (Fault.status(401), litellm.AuthenticationError),
    (Fault.context_length_exceeded(), litellm.ContextWindowExceededError),
    (Fault.rate_limited(), litellm.RateLimitError),
    (Fault.rate_limited(retry_after=2), litellm.RateLimitError),
]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(("fault", "expected"), STATUS_FAULTS, ids=lambda v: getattr(v, "__name__", None))
async def test_status_faults_map_to_litellm_errors(
    fake_provider: FakeProviderServer,
    fault: Fault,
    expected: type[Exception],
    stream: bool,
) -> None:
    fake_provider.set_default(fault)
    with pytest.raises(expected) as info:
        await complete(fake_provider.base_url, OPENAI, stream=stream)
    assert info.value.status_code == fault.status_code


@pytest.mark.parametrize("case", CASES[1:4], ids=[c.protocol for c in CASES[1:4]])
async def test_status_faults_use_each_providers_error_shape(fake_provider: FakeProviderServer, case: Case) -> None:
    fake_provider.set_default(Fault.status(503, "overloaded upstream"))
    with pytest.raises(litellm.ServiceUnavailableError, match="overloaded upstream"):
        await complete(fake_provider.base_url, case, stream=False)


def test_retry_after_header_is_sent_only_when_asked(
    fake_provider: FakeProviderServer,
) -> None:
    fake_provider.script("m", [Fault.rate_limited(retry_after=2), Fault.rate_limited()])
    url = fake_provider.base_url + "/v1/chat/completions"
    first = httpx.post(url, json={"model": "m"})
    second = httpx.post(url, json={"model": "m"})
    assert (first.status_code, first.headers.get("retry-after")) == (429, "2")
    assert (second.status_code, second.headers.get("retry-after")) == (429, None)
    assert first.json()["error"]["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_hang_times_out_and_server_sees_the_client_leave(fake_provider: FakeProviderServer, stream: bool) -> None:
    fake_provider.set_default(Fault.hang())
    started = time.monotonic()
    with pytest.raises(litellm.Timeout):
        await complete(fake_provider.base_url, OPENAI, stream=stream, timeout=0.5)
    assert 0.4 < time.monotonic() - started < 3
    [disconnect] = await fake_provider.await_disconnects(1)
    assert (disconnect.model, disconnect.chunks_sent) == ("gpt-4o", 0)


def test_connection_reset_is_a_real_tcp_reset(
    fake_provider: FakeProviderServer,
) -> None:
    fake_provider.set_default(Fault.connection_reset())
    body = b'{"model": "gpt-4o", "messages": []}'
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    with socket.create_connection(("127.0.0.1", fake_provider.port), timeout=2) as sock:
        sock.sendall(request)
        with pytest.raises(ConnectionResetError):
            data = sock.recv(1024)
            # A FIN would give b"" instead; anything else is an HTTP response.
            pytest.fail(f"expected a TCP reset, got {data!r}")


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_connection_reset_through_litellm(fake_provider: FakeProviderServer, stream: bool) -> None:
    fake_provider.set_default(Fault.connection_reset())
    with pytest.raises(litellm.InternalServerError, match="Connection error"):
        await complete(fake_provider.base_url, OPENAI, stream=stream)
    assert len(fake_provider.requests) == 1


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_malformed_json(fake_provider: FakeProviderServer, stream: bool) -> None:
    fake_provider.set_default(Fault.malformed_json())
    # LiteLLM wraps stream failures after the call returned in MidStreamFallbackError.
    expected = MidStreamFallbackError if stream else litellm.InternalServerError
    with pytest.raises(expected):
        await complete(fake_provider.base_url, OPENAI, stream=stream)


async def test_cut_stream_delivers_some_chunks_then_fails(
    fake_provider: FakeProviderServer,
) -> None:
    fake_provider.script("gpt-4o", [Fault.cut_stream(after_chunks=2)])
    stream = await litellm.acompletion(
        stream=True,
        messages=MESSAGES,
        max_retries=0,
        **OPENAI.kwargs(fake_provider.base_url),
    )
    received = []
    with pytest.raises(MidStreamFallbackError):
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert "".join(received) == "This is"  # the first two words of the default reply


@pytest.mark.parametrize("case", CASES[1:4], ids=[c.protocol for c in CASES[1:4]])
async def test_cut_stream_each_protocol(fake_provider: FakeProviderServer, case: Case) -> None:
    fake_provider.set_default(Fault.cut_stream(after_chunks=1, reset=True))
    with pytest.raises(MidStreamFallbackError):
        await complete(fake_provider.base_url, case, stream=True)


async def test_cut_non_streamed_body(fake_provider: FakeProviderServer) -> None:
    fake_provider.set_default(Fault.cut_stream())
    with pytest.raises(litellm.InternalServerError):
        await complete(fake_provider.base_url, OPENAI, stream=False)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_invalid_utf8(fake_provider: FakeProviderServer, stream: bool) -> None:
    fake_provider.set_default(Fault.invalid_utf8())
    expected = MidStreamFallbackError if stream else litellm.InternalServerError
    with pytest.raises(expected, match="utf-8"):
        await complete(fake_provider.base_url, OPENAI, stream=stream)


def test_invalid_utf8_bytes_are_on_the_wire(fake_provider: FakeProviderServer) -> None:
    fake_provider.set_default(Fault.invalid_utf8())
    raw = httpx.post(fake_provider.base_url + "/api/chat", json={"model": "m", "stream": False}).content
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")


async def test_empty_choices(fake_provider: FakeProviderServer) -> None:
    fake_provider.set_default(Fault.empty_choices())
    response = await litellm.acompletion(messages=MESSAGES, max_retries=0, **OPENAI.kwargs(fake_provider.base_url))
    assert response.choices == []
    with pytest.raises(MidStreamFallbackError, match="finish_reason"):
        await complete(fake_provider.base_url, OPENAI, stream=True)


# -- timing and disconnects --------------------------------------------------------------


async def test_slow_first_token_and_token_rate(
    fake_provider: FakeProviderServer,
) -> None:
    fake_provider.set_default(Reply(text="w1 w2 w3 w4 w5 w6", first_token_delay=0.3, token_delay=0.05))
    started = time.monotonic()
    stream = await litellm.acompletion(
        stream=True,
        messages=MESSAGES,
        max_retries=0,
        **OPENAI.kwargs(fake_provider.base_url),
    )
    arrivals = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - started)
    assert len(arrivals) == 6
    assert arrivals[0] >= 0.28
    assert arrivals[-1] - arrivals[0] >= 5 * 0.05 * 0.8


async def test_delay_before_headers(fake_provider: FakeProviderServer) -> None:
    fake_provider.set_default(Reply(text="late", delay=0.3))
    started = time.monotonic()
    assert (await complete(fake_provider.base_url, OPENAI, stream=False))[0] == "late"
    assert time.monotonic() - started >= 0.28


def test_chunk_chars_splits_fixed_size() -> None:
    assert Reply(text="abcdefg", chunk_chars=3).chunks() == ["abc", "def", "g"]
    assert Reply(text="hello big world").chunks() == ["hello", " big", " world"]


@pytest.mark.parametrize("case", CASES, ids=[c.protocol for c in CASES])
async def test_cancelled_stream_is_seen_as_a_disconnect(fake_provider: FakeProviderServer, case: Case) -> None:
    words = " ".join(f"w{i}" for i in range(40))
    fake_provider.set_default(Reply(text=words, token_delay=0.05))
    stream = await litellm.acompletion(
        stream=True,
        messages=MESSAGES,
        max_retries=0,
        **case.kwargs(fake_provider.base_url),
    )
    received = 0
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            received += 1
            if received == 2:
                break
    await stream.aclose()
    [disconnect] = await fake_provider.await_disconnects(1, timeout=3)
    assert disconnect.protocol == case.protocol
    assert 2 <= disconnect.chunks_sent < 40


async def test_finished_stream_is_not_a_disconnect(
    fake_provider: FakeProviderServer,
) -> None:
    await complete(fake_provider.base_url, OPENAI, stream=True)
    await asyncio.sleep(0.1)
    assert fake_provider.disconnects == []


# -- lifecycle ---------------------------------------------------------------------------


def test_two_servers_are_independent() -> None:
    with FakeProviderServer() as one, FakeProviderServer() as two:
        assert one.port != two.port
        two.set_default(Reply(text="from two"))
        answer = httpx.post(two.base_url + "/v1/chat/completions", json={"model": "m"}).json()
        assert answer["choices"][0]["message"]["content"] == "from two"
        assert (len(one.requests), len(two.requests)) == (0, 1)


def test_stop_and_restart_on_the_same_port() -> None:
    server = FakeProviderServer()
    base = server.start()
    server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.post(base + "/v1/chat/completions", json={"model": "m"})
    assert server.start() == base
    try:
        assert httpx.post(base + "/v1/chat/completions", json={"model": "m"}).status_code == 200
    finally:
        server.stop()


def test_stop_releases_hanging_requests() -> None:
    server = FakeProviderServer()
    base = server.start()
    server.set_default(Fault.hang())

    def call() -> None:
        with pytest.raises(httpx.HTTPError):
            httpx.post(base + "/v1/chat/completions", json={"model": "m"}, timeout=5)

    import threading

    caller = threading.Thread(target=call)
    caller.start()
    server.wait_for_requests(1)
    started = time.monotonic()
    server.stop()
    caller.join(5)
    assert not caller.is_alive()
    assert time.monotonic() - started < 3


def test_cli_serves_a_scenario_and_exposes_records(tmp_path: Path) -> None:
    scenario = {
        "default": {"reply": {"text": "from the scenario"}},
        "scripts": [{"model": "gpt-4o", "steps": [{"fault": "status", "status_code": 503}]}],
    }
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(scenario))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [
        sys.executable,
        "-m",
        "director_llm.testing.servers",
        "--port",
        "0",
        "--scenario",
        str(path),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert line.startswith("LISTENING http://127.0.0.1:"), line
        base = line.split()[1]
        url = base + "/v1/chat/completions"
        assert httpx.post(url, json={"model": "gpt-4o"}).status_code == 503
        reply = httpx.post(url, json={"model": "gpt-4o"}).json()
        assert reply["choices"][0]["message"]["content"] == "from the scenario"
        records = httpx.get(base + "/_fake/requests").json()
        assert [r["model"] for r in records] == ["gpt-4o", "gpt-4o"]
        assert httpx.post(base + "/_fake/reset").json() == {"ok": True}
        assert httpx.get(base + "/_fake/requests").json() == []
    finally:
        process.terminate()
        assert process.wait(5) == 0


# -- Redis fixtures ----------------------------------------------------------------------


def test_redis_url_and_prefix(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set(redis_prefix + "a", "1")
    client.set(redis_prefix + "b", "2")
    assert sorted(client.scan_iter(match=redis_prefix + "*")) == [(redis_prefix + k).encode() for k in "ab"]
    assert delete_prefix(redis_url, redis_prefix) == 2
    assert client.exists(redis_prefix + "a") == 0
    client.close()


@pytest.mark.parametrize("run", [1, 2])
def test_redis_prefix_is_fresh_per_test(redis_url: str, redis_prefix: str, run: int) -> None:
    # Both runs write the same key name; each must start from an empty prefix.
    client = redis.Redis.from_url(redis_url)
    assert client.incr(redis_prefix + "counter") == 1
    client.close()


def test_redis_server_stop_and_restart(redis_server: RedisServer) -> None:
    url = redis_server.url
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    client.set("k", "v")
    redis_server.stop()
    with pytest.raises(redis.ConnectionError):
        client.get("k")
    assert redis_server.start() == url
    assert client.ping()
    assert client.get("k") is None  # no persistence: a restart is an empty cache
    client.close()


def test_require_redis_skips_or_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIRECTOR_REQUIRE_REDIS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no redis here"):
        require_redis("no redis here")
    monkeypatch.setenv("DIRECTOR_REQUIRE_REDIS", "1")
    with pytest.raises(pytest.fail.Exception, match="no redis here"):
        require_redis("no redis here")


def test_redis_server_without_binary_is_a_clear_error() -> None:
    with pytest.raises(RedisUnavailableError, match="redis-server not found"):
        RedisServer(binary="/nonexistent/redis-server").start()
