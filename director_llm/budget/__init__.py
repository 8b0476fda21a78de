"""Budgets: the ledger (memory or Redis) that reserves before a paid call and settles after.

``director_llm.budget.ledger`` holds the arithmetic and the in-memory store,
``director_llm.budget.redis`` the store shared through Redis (its Lua scripts in
``director_llm.budget.lua``), and ``director_llm.budget.guard`` the engine's side: what a
request reserves, settles or releases. The names below stay importable from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from director_llm.budget.ledger import (
    BudgetBackendError,
    BudgetExceededError,
    BudgetLedger,
    BudgetLimits,
    MemoryLedger,
    ProviderLimits,
    Reservation,
    ReservationClosedError,
    SpendReport,
    UsageReport,
    WindowReport,
    estimate_worst_case_cost,
)

if TYPE_CHECKING:
    from director_llm.budget.redis import RedisLedger

__all__ = [
    "BudgetBackendError",
    "BudgetExceededError",
    "BudgetLedger",
    "BudgetLimits",
    "MemoryLedger",
    "ProviderLimits",
    "RedisLedger",
    "Reservation",
    "ReservationClosedError",
    "SpendReport",
    "UsageReport",
    "WindowReport",
    "estimate_worst_case_cost",
]


def __getattr__(name: str) -> Any:
    # RedisLedger imports redis-py; load it only when asked for.
    if name == "RedisLedger":
        from director_llm.budget.redis import RedisLedger

        return RedisLedger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
