"""The blocking facade (``director_llm.SyncDirector``) for scripts and notebooks, through
real HTTP: classify, complete, stream, spend, health; and it works where a loop is running."""

from __future__ import annotations

import asyncio
import textwrap

import pytest

from director_llm import Director, StreamEnd, SyncDirector, TextDelta
from director_llm.config.loading import parse_config_text
from director_llm.errors import DirectorClosedError
from director_llm.testing import Reply

KEY_ENV = "TEST_SYNC_KEY"


def config(base: str) -> str:
    return textwrap.dedent(f"""
        [providers.openai]
        models = ["sync-model"]
        base_url = "{base}/v1"
        api_key_env = "{KEY_ENV}"
        [providers.openai.overrides.sync-model]
        input_price_per_million = 1.0
        output_price_per_million = 2.0
        [caching]
        enabled = false
    """)


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-sync-test-0000000000")


def test_blocking_calls_classify_complete_stream_and_report(fake_provider) -> None:
    fake_provider.respond_with(
        "sync-model",
        lambda req: Reply(
            json={"flow": "greeting", "confidence": 0.9, "reasoning": "hi", "entities": {}}
            if "Classify" in str(req.body)
            else None,
            text="hello there",
            usage=(10, 4),
        ),
    )
    with SyncDirector(Director(parse_config_text(config(fake_provider.base_url)))) as d:
        assert d.classify_intent("oi").flow == "greeting"
        response = d.complete([{"role": "user", "content": "hi"}])
        assert response.choices[0].message.content == "hello there"
        assert Director.route_of(response).deployment == "openai/sync-model"
        chunks = list(d.stream_response([{"role": "user", "content": "hi"}]))
        assert (
            isinstance(chunks[-1], StreamEnd)
            and "".join(c.text for c in chunks if isinstance(c, TextDelta)) == "hello there"
        )
        report = d.spend(by="model")
        assert report.usage["openai:sync-model"].requests == 3
        assert "openai/sync-model" in d.health()
    with pytest.raises(DirectorClosedError):
        d.classify_intent("oi")


def test_it_works_inside_a_running_event_loop(fake_provider) -> None:
    # As in a notebook: the caller's thread already runs a loop.
    fake_provider.set_default(Reply("fine"))

    async def inside() -> str:
        with SyncDirector(Director(parse_config_text(config(fake_provider.base_url)))) as d:
            return d.complete([{"role": "user", "content": "hi"}]).choices[0].message.content  # type: ignore[no-any-return]

    assert asyncio.run(inside()) == "fine"
