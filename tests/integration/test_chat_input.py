"""Chat input is validated before any provider is asked (issue 12): control characters, NUL,
a size over ``[llm] max_input_chars``, messages that are not a list, unknown roles, content that
is neither text nor content parts, bad fields -> ``InputError`` from every chat entry point,
with zero requests received by the (real HTTP) fake provider and the breaker untouched."""

from __future__ import annotations

import textwrap

import pytest

from director_llm.config.loading import parse_config_text
from director_llm.director import Director
from director_llm.errors import InputError
from director_llm.sync import SyncDirector
from director_llm.testing import Reply

KEY_ENV = "TEST_CHAT_INPUT_KEY"
OK = [{"role": "user", "content": "olá,\r\n\ttudo bem? 👍🏽"}]
TOOL_CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}

BAD: dict[str, object] = {
    "not a list (str)": "hello",
    "not a list (dict)": {"role": "user", "content": "hi"},
    "a generator": ({"role": "user", "content": "hi"} for _ in range(1)),
    "empty": [],
    "a message that is not a dict": ["hi"],
    "unknown role": [{"role": "robot", "content": "hi"}],
    "role not a string": [{"role": ["user"], "content": "hi"}],
    "missing content": [{"role": "user"}],
    "content a number": [{"role": "user", "content": 123}],
    "content bytes": [{"role": "user", "content": b"hi"}],
    "content part not a dict": [{"role": "user", "content": ["hi"]}],
    "NUL": [{"role": "user", "content": "nul\x00byte"}],
    "escape": [{"role": "user", "content": "\x1b[31mred"}],
    "C1 control": [{"role": "user", "content": "next\x85line"}],
    "lone surrogate": [{"role": "user", "content": "lone \ud800"}],
    "control char in a part": [{"role": "user", "content": [{"type": "text", "text": "a\x07"}]}],
    "NUL in name": [{"role": "user", "content": "hi", "name": "a\x00b"}],
    "NUL in tool arguments": [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{**TOOL_CALL, "function": {"name": "f", "arguments": "\x00"}}],
        }
    ],
    "tool_calls not a list": [{"role": "assistant", "content": None, "tool_calls": "f()"}],
    "non-string key": [{"role": "user", "content": "hi", 1: "x"}],
    "too big": [{"role": "user", "content": "x" * 101}],
    "too big over messages": [{"role": "user", "content": "x" * 60}, {"role": "assistant", "content": "y" * 60}],
    "too big in a field": [{"role": "user", "content": "hi", "name": "n" * 200}],
}


def config(base: str) -> str:
    return textwrap.dedent(f"""
        [llm]
        max_input_chars = 100
        [llm.circuit_breaker]
        failure_threshold = 1
        [providers.openai]
        models = ["chat-model"]
        base_url = "{base}/v1"
        api_key_env = "{KEY_ENV}"
        tier = "balanced"
        [providers.openai.overrides.chat-model]
        input_price_per_million = 1.0
        output_price_per_million = 2.0
    """)


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-chat-input-test-0123456789")


@pytest.mark.parametrize("case", list(BAD))
async def test_bad_chat_input_never_reaches_a_provider(fake_provider, case: str) -> None:
    fake_provider.set_default(Reply("fine"))
    bad = BAD[case]
    async with Director(parse_config_text(config(fake_provider.base_url))) as d:
        with pytest.raises(InputError) as caught:
            await d.acompletion(bad)  # type: ignore[arg-type]
        if not hasattr(bad, "__next__"):  # a generator is spent by the first call
            with pytest.raises(InputError):
                d.stream_response(bad)  # type: ignore[arg-type]
        assert fake_provider.requests == []  # zero requests reached the provider
        assert d.breaker.state("openai/chat-model") == "closed"
    assert "Traceback" not in str(caught.value) and len(str(caught.value)) < 400
    if case.startswith("too big"):
        assert "max_input_chars" in str(caught.value)


async def test_ordinary_text_still_goes_through(fake_provider) -> None:
    fake_provider.set_default(Reply("fine"))
    with_tools = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
        {"role": "tool", "content": "1", "tool_call_id": "c1"},
    ]
    async with Director(parse_config_text(config(fake_provider.base_url))) as d:
        assert (await d.acompletion(OK)).choices[0].message.content == "fine"
        assert (await d.acompletion(with_tools)).choices[0].message.content == "fine"
        chunks = [c async for c in d.stream_response(OK)]
    assert "".join(getattr(c, "text", "") for c in chunks[:-1]) == "fine"
    assert len(fake_provider.requests) == 3


def test_the_sync_facade_refuses_the_same(fake_provider) -> None:
    fake_provider.set_default(Reply("fine"))
    with SyncDirector(Director(parse_config_text(config(fake_provider.base_url)))) as d:
        with pytest.raises(InputError):
            d.complete([{"role": "user", "content": "a\x00"}])
        with pytest.raises(InputError):
            list(d.stream_response([{"role": "tool", "content": 5}]))
    assert fake_provider.requests == []
