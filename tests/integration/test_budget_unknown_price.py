"""Unknown prices are never free: under a budget an unpriced model is budgeted at the most
expensive configured price, or refused when nothing has a price (through the fake server)."""

from __future__ import annotations

import textwrap

import pytest

from director_llm.config.loading import parse_config_text
from director_llm.director import Director
from director_llm.errors import AttemptOverBudgetError, BudgetExceededError
from director_llm.testing import Reply

KEY_ENV = "TEST_OPENAI_KEY"
BIG = (150_000, 10)  # what the fake server reports: a 150k-token prompt
GPT4O = (2.5e-6, 10e-6)  # the most expensive configured price (LiteLLM's map for gpt-4o)
ASK = [{"role": "user", "content": "Summarise the attached report."}]


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test-unknown-price-0123456789")


def config(base: str, *, priced: bool, budget: str = "budget_per_hour = 0.001") -> str:
    models = '"mystery-model", "gpt-4o"' if priced else '"mystery-model"'
    return textwrap.dedent(f"""
        [llm]
        {budget}
        default_max_tokens = 10
        [providers.openai]
        models = [{models}]
        base_url = "{base}/v1"
        api_key_env = "{KEY_ENV}"
    """)


async def test_unpriced_model_is_budgeted_at_the_most_expensive_price(fake_provider) -> None:
    fake_provider.set_default(Reply(text="done", usage=BIG))
    cfg = parse_config_text(config(fake_provider.base_url, priced=True))
    served, refused = 0, []
    async with Director(cfg) as d:
        info = d.providers["openai/mystery-model"]
        assert info.price.assumed and (info.price.input_per_token, info.price.output_per_token) == GPT4O
        for _ in range(5):
            try:
                await d.acompletion(ASK, model="openai/mystery-model")
                served += 1
            except BudgetExceededError as exc:
                refused.append(exc)
            await d.budget.drain()
        report = await d.spend(by="model")
    assert served == 1 and len(refused) == 4
    assert len(fake_provider.requests_for("mystery-model")) == 1
    cost = BIG[0] * GPT4O[0] + BIG[1] * GPT4O[1]
    assert report.windows["hour"].spent_usd == pytest.approx(cost)
    assert report.usage["openai:mystery-model"].cost_usd == pytest.approx(cost)


async def test_unpriced_model_with_nothing_priced_is_refused_with_the_lines_to_add(fake_provider) -> None:
    fake_provider.set_default(Reply(text="done", usage=BIG))
    cfg = parse_config_text(config(fake_provider.base_url, priced=False))
    async with Director(cfg) as d:
        with pytest.raises(AttemptOverBudgetError) as info:
            await d.acompletion(ASK)
    message = str(info.value)
    assert "never free" in message and "[providers.openai.overrides.mystery-model]" in message
    assert "input_price_per_million" in message and "output_price_per_million" in message
    assert not fake_provider.requests_for("mystery-model")


async def test_without_a_budget_an_unpriced_model_is_served(fake_provider) -> None:
    fake_provider.set_default(Reply(text="done", usage=BIG))
    cfg = parse_config_text(config(fake_provider.base_url, priced=False, budget=""))
    async with Director(cfg) as d:
        await d.acompletion(ASK)
    assert len(fake_provider.requests_for("mystery-model")) == 1
