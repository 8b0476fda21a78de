"""``director_llm.serve`` with the official ``openai`` client against a real uvicorn server on
a free loopback port, talking to the fake provider servers: complete, stream, model = tier /
deployment / auto, /v1/models, classify (JSON and SSE), errors, auth, disconnect."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from director_llm.config.loading import parse_config_text
from director_llm.director import Director
from director_llm.intents.models import IntentClassification
from director_llm.serve import create_app
from director_llm.serve.thread import ServerThread
from director_llm.testing import Fault, Reply

KEY_ENV = "TEST_SERVE_KEY"
KEY_VALUE = "sk-serve-test-0123456789abcdef"
SMALL, STRONG = "gpt-4o-mini", "gpt-4o"
FLOWS = """
[intents]
fallback_flow = "out_of_scope"
confidence_threshold = 0.6
[intents.flows.greeting]
description = "The user says hello"
examples = ["oi", "bom dia", "hello"]
[intents.flows.create_task]
description = "The user wants to create a task or reminder"
examples = ["cria uma tarefa para amanhã", "remind me to call Ana"]
"""
HI = [{"role": "user", "content": "hi"}]


def config_text(base: str, *, llm: str = "", extra: str = "") -> str:
    return f"""
[llm]
timeout_seconds = 8
attempt_timeout_seconds = 3
first_token_timeout_seconds = 3
{llm}
[providers.openai]
models = ["{SMALL}", "{STRONG}"]
base_url = "{base}/v1"
api_key_env = "{KEY_ENV}"
[providers.openai.overrides."{SMALL}"]
tier = "small"
input_price_per_million = 1.0
output_price_per_million = 2.0
[providers.openai.overrides."{STRONG}"]
tier = "strong"
input_price_per_million = 5.0
output_price_per_million = 10.0
{extra}
{FLOWS}
"""


@pytest.fixture(autouse=True)
def _key(monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY_VALUE)


class Served:
    def __init__(self, server: ServerThread, director: Director) -> None:
        self.server = server
        self.director = director
        self.url = server.url
        self.client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=20)


def serve(base: str, log_level: str = "warning", **kwargs: str) -> Iterator[Served]:
    director = Director(parse_config_text(config_text(base, **kwargs)))
    server = ServerThread(create_app(director), log_level=log_level)
    server.start()
    try:
        yield Served(server, director)
    finally:
        server.run(director.aclose())
        server.stop()


@pytest.fixture
def served(fake_provider) -> Iterator[Served]:
    yield from serve(fake_provider.base_url)


# -- completions --------------------------------------------------------------------------------
def test_complete_with_route_headers(served, fake_provider) -> None:
    fake_provider.script(SMALL, Reply("hello there", usage=(10, 2)))
    raw = served.client.chat.completions.with_raw_response.create(model="small", messages=HI)
    completion = raw.parse()
    assert completion.choices[0].message.content == "hello there"
    assert completion.usage.prompt_tokens == 10 and completion.usage.completion_tokens == 2
    assert raw.headers["x-director-deployment"] == f"openai/{SMALL}"
    assert raw.headers["x-director-tier"] == "small"
    assert raw.headers["x-director-cache"] == "none"
    assert float(raw.headers["x-director-cost-usd"]) == pytest.approx(10 * 1e-6 + 2 * 2e-6)


@pytest.mark.parametrize(
    ("model", "upstream"),
    [("small", SMALL), ("strong", STRONG), (f"openai/{STRONG}", STRONG), (f"openai/{SMALL}", SMALL)],
)
def test_model_names_a_tier_or_a_deployment(served, fake_provider, model, upstream) -> None:
    raw = served.client.chat.completions.with_raw_response.create(model=model, messages=HI)
    assert raw.parse().choices[0].message.content
    assert [r.model for r in fake_provider.requests] == [upstream]
    assert raw.headers["x-director-deployment"] == f"openai/{upstream}"


def test_model_auto_lets_the_strategy_choose(served, fake_provider) -> None:
    raw = served.client.chat.completions.with_raw_response.create(model="auto", messages=HI)
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-director-tier"] in ("small", "strong")
    # A short greeting is simple: the cheap tier.
    cheap = served.client.chat.completions.with_raw_response.create(
        model="auto", messages=HI, extra_body={"strategy": "cost"}
    )
    assert cheap.headers["x-director-tier"] == "small"


def test_parameters_reach_the_provider(served, fake_provider) -> None:
    served.client.chat.completions.create(
        model="small", messages=HI, temperature=0.2, max_completion_tokens=7, stop=["x"], user="someone"
    )
    [sent] = fake_provider.requests
    assert sent.body["temperature"] == 0.2 and sent.body["max_tokens"] == 7 and sent.body["stop"] == ["x"]
    assert "user" not in sent.body


def test_models_lists_auto_tiers_and_deployments(served) -> None:
    ids = [m.id for m in served.client.models.list()]
    assert ids[0] == "auto"
    assert {"small", "strong", f"openai/{SMALL}", f"openai/{STRONG}"} <= set(ids)
    listing = httpx.get(f"{served.url}/v1/models").json()
    small = next(m for m in listing["data"] if m["id"] == "small")
    assert small["director"] == {"kind": "tier", "deployments": [f"openai/{SMALL}"]}


# -- streams ------------------------------------------------------------------------------------
def test_stream_usage_in_the_last_chunk_and_route(served, fake_provider) -> None:
    fake_provider.script(SMALL, Reply("alpha beta gamma", usage=(10, 3)))
    with served.client.chat.completions.with_streaming_response.create(
        model="small", messages=HI, stream=True, stream_options={"include_usage": True}
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-director-deployment"] == f"openai/{SMALL}"
        assert response.headers["x-director-tier"] == "small"
        assert "x-director-cost-usd" not in response.headers  # unknown before the first byte
        chunks = list(response.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "alpha beta gamma"
    assert chunks[0].choices[0].delta.role == "assistant"
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.usage.prompt_tokens == 10 and last.usage.completion_tokens == 3
    route = last.model_extra["director"]["route"]
    assert route["deployment"] == f"openai/{SMALL}"
    assert last.model_extra["director"]["cost_usd"] == pytest.approx(10e-6 + 3 * 2e-6)


def test_stream_falls_back_before_the_first_token(served, fake_provider) -> None:
    fake_provider.script(SMALL, Fault.status(500))
    fake_provider.script(STRONG, Reply("from strong"))
    stream = served.client.chat.completions.create(model="small", messages=HI, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "from strong"


def test_stream_broken_after_the_first_token_is_an_error_frame(served, fake_provider) -> None:
    fake_provider.script(None, Fault.cut_stream(after_chunks=2), repeat=True)
    stream = served.client.chat.completions.create(model=f"openai/{SMALL}", messages=HI, stream=True)
    got = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            got.append(chunk.choices[0].delta.content)
    assert got  # text came first
    assert "broke" in str(caught.value.message)


def test_stream_failing_before_the_first_token_is_an_http_error(served, fake_provider) -> None:
    fake_provider.script(None, Fault.status(500), repeat=True)
    with pytest.raises(openai.APIStatusError) as caught:
        served.client.chat.completions.create(model="small", messages=HI, stream=True)
    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "upstream_failed"


# -- classify -----------------------------------------------------------------------------------
GREETING = {"flow": "greeting", "confidence": 0.93, "reasoning": "says hi", "entities": {}}


def test_classify_json_is_what_the_cli_prints(served, fake_provider) -> None:
    fake_provider.script(None, Reply(json=GREETING))
    r = httpx.post(f"{served.url}/v1/classify", json={"text": "olá, tudo bem?", "history": ["oi"]}, timeout=20)
    assert r.status_code == 200, r.text
    result = IntentClassification.model_validate_json(r.text)
    assert result.flow == "greeting" and result.confidence == pytest.approx(0.93)
    assert r.headers["x-director-deployment"] == result.route.deployment
    assert set(r.json()) == set(json.loads(result.model_dump_json()))


def test_classify_stream_sends_the_typed_items(served, fake_provider) -> None:
    fake_provider.script(None, Reply(json=GREETING, token_delay=0.005))
    with httpx.stream(
        "POST", f"{served.url}/v1/classify?stream=true", json={"text": "olá, tudo bem?"}, timeout=20
    ) as r:
        assert r.status_code == 200
        frames = [line[len("data: ") :] for line in r.iter_lines() if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    items = [json.loads(f) for f in frames[:-1]]
    assert {"tier_chosen", "partial"} <= {i["type"] for i in items}
    assert items[-1]["done"] is True and items[-1]["result"]["flow"] == "greeting"


def test_classify_bad_input_is_400(served) -> None:
    r = httpx.post(f"{served.url}/v1/classify", json={"history": []})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.post(f"{served.url}/v1/classify?stream=true", json={"text": ""})
    assert r.status_code == 400


# -- errors -------------------------------------------------------------------------------------
def _no_traceback(body: str) -> None:
    assert "Traceback" not in body and 'File "' not in body


def test_input_errors_are_400(served) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        served.client.chat.completions.create(model="small", messages=[{"role": "robot", "content": "x"}])
    assert caught.value.body["code"] == "invalid_input"
    with pytest.raises(openai.BadRequestError):
        served.client.chat.completions.create(model="small", messages=HI, temperature=7)
    with pytest.raises(openai.NotFoundError) as missing:
        served.client.chat.completions.create(model="gpt-5-imaginary", messages=HI)
    assert missing.value.body["code"] == "model_not_found"
    nan = b'{"model": "small", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}'
    for raw in (b"{not json", b"", b"[1, 2]", b'{"messages": "hi"}', nan):
        r = httpx.post(f"{served.url}/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 400, raw
        assert set(r.json()["error"]) == {"message", "type", "code", "param"}
        _no_traceback(r.text)
    huge = b'{"model": "small", "messages": [{"role": "user", "content": "' + b"x" * 3_000_000 + b'"}]}'
    r = httpx.post(f"{served.url}/v1/chat/completions", content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    r = httpx.get(f"{served.url}/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_every_deployment_failing_is_502_without_secrets(served, fake_provider) -> None:
    fake_provider.script(None, Fault.status(500, f"boom with key {KEY_VALUE}"), repeat=True)
    with pytest.raises(openai.InternalServerError) as caught:
        served.client.chat.completions.create(model="small", messages=HI)
    assert caught.value.status_code == 502
    text = caught.value.response.text
    assert KEY_VALUE not in text
    _no_traceback(text)


def test_upstream_rate_limit_is_429_with_retry_after(served, fake_provider) -> None:
    fake_provider.script(None, Fault.status(429, "slow down", headers={"Retry-After": "7"}), repeat=True)
    with pytest.raises(openai.RateLimitError) as caught:
        served.client.chat.completions.create(model="small", messages=HI)
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.body["code"] == "rate_limit_exceeded"


def test_our_own_rate_limit_is_429_with_retry_after(fake_provider) -> None:
    """[llm.rate_limits]: the gateway answers 429 with when the limit frees up, not a 5xx."""
    fake_provider.script(None, Reply("ok"), repeat=True)
    for s in serve(fake_provider.base_url, llm="[llm.rate_limits]\nrpm = 1\nmax_wait_seconds = 0"):
        assert s.client.chat.completions.create(model="small", messages=HI).choices[0].message.content == "ok"
        with pytest.raises(openai.RateLimitError) as caught:
            s.client.chat.completions.create(model="small", messages=HI)
        assert caught.value.status_code == 429 and caught.value.body["code"] == "rate_limit_exceeded"
        assert 0 < int(caught.value.response.headers["retry-after"]) <= 61
        assert len(fake_provider.requests) == 1


def test_open_breakers_are_503(fake_provider) -> None:
    fake_provider.script(None, Fault.status(500), repeat=True)
    for s in serve(fake_provider.base_url, llm="[llm.circuit_breaker]\nfailure_threshold = 1\ncooldown_seconds = 60"):
        with pytest.raises(openai.InternalServerError) as first:
            s.client.chat.completions.create(model="small", messages=HI)
        assert first.value.status_code == 502
        calls = len(fake_provider.requests)
        with pytest.raises(openai.InternalServerError) as second:
            s.client.chat.completions.create(model="small", messages=HI)
        assert second.value.status_code == 503 and second.value.body["code"] == "no_deployment_available"
        assert len(fake_provider.requests) == calls  # nothing was called


def test_budget_exceeded_is_402_with_retry_after(fake_provider) -> None:
    for s in serve(fake_provider.base_url, llm="budget_per_hour = 0.0000001"):
        with pytest.raises(openai.APIStatusError) as caught:
            s.client.chat.completions.create(model="small", messages=HI)
        assert caught.value.status_code == 402
        assert caught.value.body["type"] == "insufficient_quota"
        assert 1 <= int(caught.value.response.headers["retry-after"]) <= 3600
        assert fake_provider.requests == []


# -- auth ---------------------------------------------------------------------------------------
def test_bearer_tokens(fake_provider, monkeypatch, caplog) -> None:
    monkeypatch.setenv("TEST_SERVE_TOKENS", "tok-alpha-123456, tok-beta-654321")
    caplog.set_level(logging.DEBUG)
    for s in serve(fake_provider.base_url, "debug", extra='[serve]\napi_keys_env = "TEST_SERVE_TOKENS"'):
        for name in ("uvicorn.access", "uvicorn.error"):  # they do not propagate to the root logger
            logging.getLogger(name).addHandler(caplog.handler)
        with pytest.raises(openai.AuthenticationError):
            s.client.chat.completions.create(model="small", messages=HI)
        for token in ("tok-alpha-123456", "tok-beta-654321"):
            ok = openai.OpenAI(base_url=f"{s.url}/v1", api_key=token, max_retries=0)
            assert ok.chat.completions.create(model="small", messages=HI).choices[0].message.content
        r = httpx.get(f"{s.url}/v1/models")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert httpx.get(f"{s.url}/v1/models", headers={"Authorization": "Basic tok-alpha-123456"}).status_code == 401
        assert httpx.get(f"{s.url}/metrics").status_code == 401
        assert httpx.get(f"{s.url}/health").status_code == 200  # load balancers have no token
        assert len(fake_provider.requests) == 2  # refused requests never reached a provider
        for name in ("uvicorn.access", "uvicorn.error"):
            logging.getLogger(name).removeHandler(caplog.handler)
    assert "POST /v1/chat/completions" in caplog.text  # the access log was on...
    assert "tok-alpha" not in caplog.text and "tok-beta" not in caplog.text  # ...and holds no token


def test_api_keys_env_without_tokens_refuses_to_start(fake_provider, monkeypatch) -> None:
    from director_llm.errors import ConfigError

    monkeypatch.delenv("TEST_SERVE_TOKENS", raising=False)
    director = Director(
        parse_config_text(config_text(fake_provider.base_url, extra='[serve]\napi_keys_env = "TEST_SERVE_TOKENS"'))
    )
    with pytest.raises(ConfigError, match="TEST_SERVE_TOKENS"):
        create_app(director)


# -- disconnect ---------------------------------------------------------------------------------
def test_client_disconnect_cancels_upstream_and_settles_the_hold(fake_provider) -> None:
    fake_provider.script(SMALL, Reply(" ".join(f"w{i}" for i in range(400)), token_delay=0.02))
    for s in serve(fake_provider.base_url, llm="budget_per_hour = 5.0"):
        with httpx.stream(
            "POST", f"{s.url}/v1/chat/completions", json={"model": "small", "messages": HI, "stream": True}
        ) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith("data: "):
                    break  # the first chunk, then hang up
        [gone] = fake_provider.wait_for_disconnects(1, timeout=5)
        assert gone.model == SMALL and gone.chunks_sent < 400
        deadline = time.monotonic() + 5
        while True:
            report = s.server.run(s.director.spend())
            hour = report.windows["hour"]
            if hour.reserved_usd == 0 and hour.spent_usd > 0:
                break
            assert time.monotonic() < deadline, f"hold left: {hour}"
            time.sleep(0.05)
        # Settled by what was generated: far less than the full answer.
        assert hour.spent_usd < 400 * 2e-6


def test_health_and_metrics(served, fake_provider) -> None:
    served.client.chat.completions.create(model="small", messages=HI)
    health = httpx.get(f"{served.url}/health").json()
    assert health["status"] == "ok" and health["deployments"][f"openai/{SMALL}"]["requests"] == 1
    metrics = httpx.get(f"{served.url}/metrics")
    assert metrics.status_code == 200
    assert 'director_requests_total{entry="complete"' in metrics.text or "director_requests_total{" in metrics.text


# -- hot reload ---------------------------------------------------------------------------------
def test_reload_config_picks_up_an_edited_file_and_keeps_serving_on_a_bad_one(fake_provider, tmp_path) -> None:
    """``serve --reload-config``: an edited file swaps in (a new deployment appears in /v1/models
    and answers); an invalid one is refused and the running config keeps serving."""
    path = tmp_path / "director.toml"
    path.write_text(config_text(fake_provider.base_url), encoding="utf-8")
    server = ServerThread(create_app(path, reload_config=True), log_level="warning")
    server.start()
    try:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=20)

        def model_ids() -> set[str]:
            return {m.id for m in client.models.list().data}

        def wait_for(predicate, what: str) -> None:
            deadline = time.monotonic() + 60  # watchfiles debounce + a rebuild, on a busy box
            while not predicate():
                assert time.monotonic() < deadline, f"timed out waiting for {what}"
                time.sleep(0.2)

        assert "openai/o1" not in model_ids()
        time.sleep(0.5)  # the watcher starts with the lifespan; give it a moment to arm
        extra = '[providers.openai.overrides."o1"]\ntier = "balanced"\ninput_price_per_million = 9.0\n'
        extra += "output_price_per_million = 9.0\n"
        path.write_text(
            config_text(fake_provider.base_url).replace(f'"{STRONG}"]', f'"{STRONG}", "o1"]', 1) + extra,
            encoding="utf-8",
        )
        wait_for(lambda: "openai/o1" in model_ids(), "the reloaded config")
        fake_provider.script("o1", Reply("from the new deployment"))
        answer = client.chat.completions.create(model="openai/o1", messages=HI)
        assert answer.choices[0].message.content == "from the new deployment"

        path.write_text("[llm\nthis is not toml", encoding="utf-8")
        time.sleep(2.0)  # past the debounce: the bad file was seen and refused
        assert "openai/o1" in model_ids()
        fake_provider.script(SMALL, Reply("still serving"))
        assert client.chat.completions.create(model="small", messages=HI).choices[0].message.content == "still serving"
    finally:
        server.stop()
