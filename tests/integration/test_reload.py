"""Hot reload: ``Director.reload``, SIGHUP and the watchfiles watcher, against the fake servers.

Valid (a new deployment answers), invalid (the located error of check-config, the old config
still serving), in flight (a slow request finishes on the old deployment while new ones use the
new config) and state carry-over (an open breaker stays open, spend is kept).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import textwrap
from pathlib import Path

import pytest

from director_llm import ConfigError, Director, ProviderError
from director_llm.config.loading import load_config
from director_llm.reloader import watch_and_reload
from director_llm.testing import Fault, Reply

HI = [{"role": "user", "content": "hi"}]


def write(path: Path, base: str, models: list[str], extra: str = "") -> None:
    sections = "".join(
        textwrap.dedent(f"""
            [providers.p_{m.replace("-", "_")}]
            kind = "openai_compatible"
            base_url = "{base}/v1"
            models = ["{m}"]
            [providers.p_{m.replace("-", "_")}.overrides."{m}"]
            tier = "balanced"
            input_price_per_million = 1
            output_price_per_million = 2
        """)
        for m in models
    )
    text = (
        "[llm]\nbudget_per_day = 10.0\nattempt_timeout_seconds = 8\n"
        + extra  # more [llm] keys
        + "[llm.circuit_breaker]\nfailure_threshold = 1\ncooldown_seconds = 120\n"
        + sections
    )
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # as deploy tools do: a rename over the old file


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    return tmp_path / "director.toml"


async def test_a_valid_reload_swaps_in_a_new_deployment(fake_provider, cfg):
    write(cfg, fake_provider.base_url, ["old-model"])
    fake_provider.script("old-model", [Reply(text="old")], repeat=True)
    fake_provider.script("new-model", [Reply(text="new")], repeat=True)
    async with Director.from_file(cfg) as d:
        r = await d.acompletion(HI)
        assert r.choices[0].message.content == "old"
        write(cfg, fake_provider.base_url, ["new-model"])
        changes = await d.reload()
        assert changes == {"added": ["p_new_model/new-model"], "removed": ["p_old_model/old-model"], "kept": []}
        r = await d.acompletion(HI)
        assert r.choices[0].message.content == "new"
        assert d.route_of(r).deployment == "p_new_model/new-model"
        assert list(d.providers) == ["p_new_model/new-model"] and d.source == str(cfg)
        assert d.router.model_list  # the LiteLLM Router is rebuilt from the new config


async def test_an_invalid_reload_is_the_check_config_error_and_the_old_config_keeps_serving(fake_provider, cfg):
    write(cfg, fake_provider.base_url, ["old-model"])
    fake_provider.script("old-model", [Reply(text="old")], repeat=True)
    async with Director.from_file(cfg) as d:
        for broken in ('[llm]\nbudget_per_hour = "ten"\n', "[llm\n", '[providers.x]\nkind = "openai_compatible"\n'):
            cfg.write_text(broken, encoding="utf-8")
            with pytest.raises(ConfigError) as info:
                await d.reload()
            with pytest.raises(ConfigError) as expected:
                load_config(cfg)  # what check-config reports
            assert str(info.value) == str(expected.value) and str(cfg) in str(info.value)
            r = await d.acompletion(HI)
            assert r.choices[0].message.content == "old"
            assert list(d.providers) == ["p_old_model/old-model"]


async def test_a_request_in_flight_finishes_on_the_old_config(fake_provider, cfg):
    write(cfg, fake_provider.base_url, ["old-model"])
    fake_provider.script("old-model", [Reply(text="old, slow", delay=1.0)])
    fake_provider.script("new-model", [Reply(text="new")], repeat=True)
    async with Director.from_file(cfg) as d:
        slow = asyncio.create_task(d.acompletion(HI))
        for _ in range(200):  # until the old deployment has the request
            if fake_provider.requests_for("old-model"):
                break
            await asyncio.sleep(0.02)
        assert fake_provider.requests_for("old-model")
        # The new config also changes the response cap, so the old HTTP clients are retired.
        write(cfg, fake_provider.base_url, ["new-model"], extra="max_response_bytes = 1000000\n")
        await d.reload()
        r = await d.acompletion(HI)
        assert r.choices[0].message.content == "new"
        assert not slow.done()
        old = await slow
        assert old.choices[0].message.content == "old, slow"
        assert d.route_of(old).deployment == "p_old_model/old-model"
        assert len(fake_provider.requests_for("old-model")) == 1


async def test_breaker_and_spend_carry_over_by_deployment_name(fake_provider, cfg):
    write(cfg, fake_provider.base_url, ["a-model", "b-model"])
    fake_provider.script("a-model", [Fault.status(500)], repeat=True)
    fake_provider.script("b-model", [Reply(text="b", usage=(1000, 1000))], repeat=True)
    fake_provider.script("c-model", [Reply(text="c", usage=(1000, 1000))], repeat=True)
    async with Director.from_file(cfg) as d:
        with pytest.raises(ProviderError):
            await d.acompletion(HI, model="p_a_model/a-model")  # one failure opens it (threshold 1)
        assert d.breaker.is_open("p_a_model/a-model")
        await d.acompletion(HI, model="p_b_model/b-model")
        await d.budget.drain()  # settlements are booked in the background
        spent = (await d.spend()).windows["day"].spent_usd
        assert spent == pytest.approx(1000 * 1e-6 + 1000 * 2e-6)
        write(cfg, fake_provider.base_url, ["a-model", "b-model", "c-model"])
        changes = await d.reload()
        assert changes["added"] == ["p_c_model/c-model"] and changes["removed"] == []
        assert d.breaker.is_open("p_a_model/a-model")
        calls = len(fake_provider.requests_for("a-model"))
        with pytest.raises(ProviderError) as info:
            await d.acompletion(HI, model="p_a_model/a-model")  # still open: skipped, not called
        assert len(fake_provider.requests_for("a-model")) == calls
        assert [a.outcome for a in info.value.attempts] == ["skipped"]
        await d.acompletion(HI, model="p_c_model/c-model")
        await d.budget.drain()
        report = await d.spend()
        assert report.windows["day"].spent_usd == pytest.approx(2 * spent)
        # New limits apply to the carried-over ledger.
        write(cfg, fake_provider.base_url, ["b-model"], extra="budget_per_hour = 0.5\n")
        await d.reload()
        assert (await d.spend()).windows["hour"].limit_usd == 0.5


async def test_sighup_reloads_and_a_bad_file_is_logged(fake_provider, cfg, caplog):
    write(cfg, fake_provider.base_url, ["old-model"])
    async with Director.from_file(cfg) as d:
        d.install_reload_signal()
        try:
            write(cfg, fake_provider.base_url, ["new-model"])
            os.kill(os.getpid(), signal.SIGHUP)
            for _ in range(500):
                if "p_new_model/new-model" in d.providers:
                    break
                await asyncio.sleep(0.02)
            assert list(d.providers) == ["p_new_model/new-model"]
            cfg.write_text("[llm]\nbudget_per_hour = -1\n", encoding="utf-8")
            with caplog.at_level(logging.WARNING, logger="director_llm"):
                os.kill(os.getpid(), signal.SIGHUP)
                for _ in range(500):
                    if "reload rejected" in caplog.text:
                        break
                    await asyncio.sleep(0.02)
            assert "llm.budget_per_hour" in caplog.text and str(cfg) in caplog.text
            assert list(d.providers) == ["p_new_model/new-model"]
        finally:
            d.remove_reload_signal()


async def test_the_watcher_reloads_on_file_changes(fake_provider, cfg):
    write(cfg, fake_provider.base_url, ["old-model"])
    fake_provider.script("new-model", [Reply(text="new")], repeat=True)
    outcomes: list[object] = []
    stop = asyncio.Event()
    async with Director.from_file(cfg) as d:
        watcher = asyncio.create_task(watch_and_reload(d, stop_event=stop, debounce_ms=50, on_reload=outcomes.append))
        try:
            # The watch starts when the task first runs: write until a reload is seen (wide margin).
            for _ in range(100):
                write(cfg, fake_provider.base_url, ["new-model"])
                await asyncio.sleep(0.2)
                if outcomes:
                    break
            assert isinstance(outcomes[0], dict) and "p_new_model/new-model" in d.providers
            r = await d.acompletion(HI)
            assert r.choices[0].message.content == "new"
            seen = len(outcomes)
            cfg.write_text("[llm\n", encoding="utf-8")
            for _ in range(100):
                await asyncio.sleep(0.1)
                if len(outcomes) > seen:
                    break
            assert isinstance(outcomes[-1], ConfigError) and str(cfg) in str(outcomes[-1])
            assert "p_new_model/new-model" in d.providers
        finally:
            stop.set()
            await asyncio.wait_for(watcher, timeout=10)


async def test_reload_needs_a_file(fake_provider):
    from director_llm.config.loading import parse_config_text

    text = f'[providers.x]\nkind = "openai_compatible"\nbase_url = "{fake_provider.base_url}/v1"\nmodels = ["m"]\n'
    async with Director(parse_config_text(text)) as d:
        with pytest.raises(ConfigError, match="reload\\(path\\)"):
            await d.reload()


async def test_the_cache_carries_over_when_answers_cannot_change(fake_provider, cfg):
    cache = "[caching]\nmemory_size_mb = 4\n"
    write(cfg, fake_provider.base_url, ["old-model"])
    cfg.write_text(cfg.read_text(encoding="utf-8") + cache, encoding="utf-8")
    fake_provider.script("old-model", [Reply(text="cached answer")], repeat=True)
    async with Director.from_file(cfg) as d:
        await d.acompletion(HI, temperature=0)
        # A new budget cannot change an answer: the same namespace, the memory layer kept.
        write(cfg, fake_provider.base_url, ["old-model"], extra="budget_per_hour = 3.0\n")
        cfg.write_text(cfg.read_text(encoding="utf-8") + cache, encoding="utf-8")
        await d.reload()
        r = await d.acompletion(HI, temperature=0)
        assert d.route_of(r).cache == "memory" and len(fake_provider.requests_for("old-model")) == 1
        # A new deployment can: a new namespace, so the next call goes upstream.
        write(cfg, fake_provider.base_url, ["old-model", "new-model"])
        cfg.write_text(cfg.read_text(encoding="utf-8") + cache, encoding="utf-8")
        fake_provider.script("new-model", [Reply(text="cached answer")], repeat=True)
        await d.reload()
        r = await d.acompletion(HI, temperature=0, model="p_old_model/old-model")
        assert d.route_of(r).cache is None


async def test_moving_shared_state_to_redis_starts_fresh_parts_there(fake_provider, cfg, redis_url, redis_prefix):
    write(cfg, fake_provider.base_url, ["old-model"])
    fake_provider.script("old-model", [Reply(text="old", usage=(1000, 1000))], repeat=True)
    async with Director.from_file(cfg, state_prefix=redis_prefix) as d:
        await d.acompletion(HI)
        assert not d.breaker.shared
        memory_budget = d.budget
        write(cfg, fake_provider.base_url, ["old-model"], extra=f'state_redis_url = "{redis_url}"\n')
        await d.reload()
        assert d.breaker.shared and d.budget is not memory_budget
        await d.acompletion(HI)
        await d.budget.drain()
        report = await d.spend()
        assert report.windows["day"].spent_usd == pytest.approx(1000 * 1e-6 + 1000 * 2e-6)  # the Redis ledger's own


def test_the_sync_facade_reloads(fake_provider, cfg):
    from director_llm import SyncDirector

    write(cfg, fake_provider.base_url, ["old-model"])
    with SyncDirector.from_file(cfg) as d:
        write(cfg, fake_provider.base_url, ["new-model"])
        assert d.reload()["added"] == ["p_new_model/new-model"]
        assert list(d.director.providers) == ["p_new_model/new-model"]


async def test_rate_limits_keep_counting_across_a_reload(fake_provider, cfg):
    """A reload never resets a limit: the requests counted before it still count after it."""
    from director_llm import RateLimitedError

    limits = "[llm.rate_limits]\nrpm = 2\nmax_wait_seconds = 0\n"
    write(cfg, fake_provider.base_url, ["old-model"], extra="timeout_seconds = 20\n" + limits)
    fake_provider.script("old-model", [Reply(text="old")], repeat=True)
    async with Director.from_file(cfg) as d:
        for _ in range(2):
            await d.acompletion(HI)
        write(cfg, fake_provider.base_url, ["old-model"], extra="timeout_seconds = 21\n" + limits)
        assert (await d.reload())["kept"] == ["p_old_model/old-model"]
        with pytest.raises(RateLimitedError):
            await d.acompletion(HI)
    assert len(fake_provider.requests_for("old-model")) == 2


async def test_reloading_a_config_on_redis_keeps_the_outage_ledger_and_takes_new_limits(
    fake_provider, cfg, redis_url, redis_prefix
):
    """The default ``budget_store_failure = "local"`` wraps the Redis ledger: a reload on the same
    Redis keeps it (spend included) and applies the new limits and ``expected_processes``."""
    state = f'state_redis_url = "{redis_url}"\n'
    write(cfg, fake_provider.base_url, ["old-model"], extra=state)
    fake_provider.script("old-model", [Reply(text="old", usage=(1000, 1000))], repeat=True)
    async with Director.from_file(cfg, state_prefix=redis_prefix) as d:
        await d.acompletion(HI)
        ledger = d.budget
        write(cfg, fake_provider.base_url, ["old-model"], extra=state + "expected_processes = 8\n")
        assert (await d.reload())["kept"] == ["p_old_model/old-model"]
        assert d.budget is ledger and d.budget.ledger.limits.per_day == 10.0
        assert d.budget.ledger.expected_processes == 8  # the outage wrapper, kept
        await d.acompletion(HI)
        await d.budget.drain()
        report = await d.spend()
        assert report.windows["day"].spent_usd == pytest.approx(2 * (1000 * 1e-6 + 1000 * 2e-6))
