"""resilience.keys.KeyPool on its own (no sockets): spread, drop, cool-down with a fake clock,
the last key left to the breaker, reload, and no value in any report."""

from __future__ import annotations

import json

from director_llm.resilience.keys import KeyPool

ENV = {"K_A": "sk-value-a-000", "K_B": "sk-value-b-000", "K_C": "sk-value-c-000"}
DEP = "openai/m"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pool(env: dict[str, str] | None = None, clock: Clock | None = None) -> KeyPool:
    return KeyPool("openai", ["K_A", "K_B", "K_C"], environ=env or ENV, clock=clock or Clock(), max_cooldown_s=60)


def test_round_robin_and_fewest_in_flight() -> None:
    p = pool()
    names = []
    for _ in range(6):
        lease = p.take(DEP)
        assert lease is not None
        names.append(lease.name)
        lease.release()
    assert names == ["K_A", "K_B", "K_C"] * 2
    held = p.take(DEP), p.take(DEP)
    third = p.take(DEP)
    assert third is not None and third.name not in {h.name for h in held if h}  # the idle key


def test_drop_keeps_the_last_key_and_reload_brings_a_changed_one_back() -> None:
    p = pool()
    for name in ("K_A", "K_B"):
        lease = p.take(DEP, name=name)
        assert lease is not None and p.drop(lease, 401) is True
    last = p.take(DEP)
    assert last is not None and last.name == "K_C"
    assert p.drop(last, 403) is False  # the last one: the breaker decides
    assert {n: d["state"] for n, d in p.describe().items()} == {"K_A": "dropped", "K_B": "dropped", "K_C": "rejected"}
    changes = p.reload({**ENV, "K_A": "sk-rotated", "K_C": ""})
    assert changes == {"K_A": "changed", "K_B": "unchanged", "K_C": "removed"}
    assert {n: d["state"] for n, d in p.describe().items()} == {"K_A": "ok", "K_B": "dropped", "K_C": "missing"}
    lease = p.take(DEP)
    assert lease is not None and lease.value == "sk-rotated"


def test_cool_down_by_retry_after_capped_and_per_deployment() -> None:
    clock = Clock()
    p = pool(clock=clock)
    lease = p.take(DEP, name="K_A")
    assert lease is not None and p.cool(lease, 2.0) is True
    assert p.available(DEP) == 2 and p.available("openai/other") == 3
    assert all(p.take(DEP, name="K_A") is None for _ in range(3))
    assert p.free_in(DEP) == 2.0
    clock.now += 2.01
    assert p.available(DEP) == 3
    lease = p.take(DEP, name="K_B")
    assert lease is not None and p.cool(lease, 10_000) is True
    assert p.describe()["K_B"]["cooling_s"] == {DEP: 60.0}  # capped by max_cooldown_s


def test_usage_and_reports_hold_names_never_values() -> None:
    p = pool(env={"K_A": ENV["K_A"]})
    lease = p.take(DEP)
    assert lease is not None
    lease.settle(10, 5, 0.25)
    lease.settle(10, 5, 0.25)  # once only
    assert p.usage()["K_A"].requests == 1 and p.usage()["K_A"].cost_usd == 0.25
    assert p.describe()["K_B"]["state"] == "missing"
    text = json.dumps(p.describe()) + repr(p) + repr(lease) + repr(p.usage()) + json.dumps(p.states())
    assert all(v not in text for v in ENV.values())
