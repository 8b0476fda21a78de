"""Budget store outage mode ``local`` (``[llm] budget_store_failure = "local"``, the default).

``LocalFallbackLedger`` wraps the shared ``RedisLedger``. While Redis answers it is a pass
through (and remembers the remaining budget of each window from every ``remaining()`` read,
which the planner makes once per request). When a ledger operation fails because Redis is
unreachable:

* each process spends from a **local allowance** per window and period: the last remaining
  budget it read, divided by ``expected_processes`` (the window's whole limit divided by it
  when this process never reached Redis in that period). Reservations are checked and held
  against it in memory; a request it cannot afford is refused (``BudgetExceededError``, so
  the engine moves on to a cheaper or zero-cost deployment);
* every settlement, release and usage record made meanwhile is **booked in memory** and
  written to Redis when it answers again (a background task started by the first successful
  operation) and at ``aclose()``. Each booking keeps its reservation id and its own hour and
  day, and the ledger's scripts are idempotent per id, so a write retried after a lost reply
  books once; a reservation that Redis still holds is settled by the same write;
* Redis is tried again ``retry_after_s`` after the last failure (one request pays for the
  probe); until then no socket is touched.

Bound (documented in docs/limits-and-keys.md): with at most ``expected_processes`` processes,
the spend of a window exceeds its limit by at most what was in flight or spent since each
process's last ledger read when Redis went away (with fresh reads, about one request per
process); with ``P`` processes, by up to ``(P / expected_processes - 1)`` x the remaining budget
more. Redis that comes back *empty* (restarted without persistence) has lost what was booked
before the outage; what was booked during it is written back.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from director_llm.budget.ledger import (
    BudgetBackendError,
    BudgetExceededError,
    BudgetLimits,
    GroupBy,
    LedgerBase,
    Reservation,
    ReservationClosedError,
    SpendReport,
    Window,
    hour_key,
    to_units,
    to_usd,
)

if TYPE_CHECKING:
    from datetime import datetime

__all__ = ["DEFAULT_EXPECTED_PROCESSES", "LocalFallbackLedger"]

log = logging.getLogger("director_llm.budget")

DEFAULT_EXPECTED_PROCESSES = 4
DEFAULT_RETRY_AFTER_S = 1.0
BUSY_WINDOW_S = 2.0
BUSY_RETRIES = 2
"""A failure within this long of a reply from Redis is a busy moment, not an outage."""


@dataclass(slots=True)
class _Allowance:
    """This process's share of one window period while Redis is unreachable (nano-USD)."""

    allowance: int
    used: int  # held + spent locally
    created: float  # monotonic


@dataclass(slots=True)
class _Pending:
    """A booking made while Redis was unreachable, to be written back."""

    reservation: Reservation
    actual_usd: float
    prompt_tokens: int
    completion_tokens: int
    requests: int
    at: float  # monotonic


class LocalFallbackLedger:
    """A ``BudgetLedger`` that keeps serving from a local allowance while its Redis ledger is
    unreachable, and writes what it booked back when Redis returns (module docstring)."""

    def __init__(
        self,
        primary: LedgerBase,
        *,
        expected_processes: int = DEFAULT_EXPECTED_PROCESSES,
        retry_after_s: float = DEFAULT_RETRY_AFTER_S,
    ) -> None:
        if expected_processes < 1:
            raise ValueError(f"expected_processes must be >= 1, got {expected_processes!r}")
        self.primary = primary
        self.expected_processes = expected_processes
        self.retry_after_s = retry_after_s
        self._down_until = 0.0
        self._outage_since: float | None = None
        self._known: dict[tuple[str, str], tuple[int, float]] = {}  # (window, period) -> (remaining, read at)
        self._local: dict[tuple[str, str], _Allowance] = {}
        self._holds: dict[str, list[tuple[_Allowance, int]]] = {}
        self._pending: deque[_Pending] = deque()
        self._lock = threading.Lock()
        self._reconciling = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.outages = 0
        """Outages seen by this process."""
        self.local_reservations = 0
        """Reservations granted from the local allowance."""
        self.reconciled = 0
        """Bookings written back to Redis after an outage."""
        self.busy = 0
        """Operations served locally because Redis was slow while answering others (not an outage)."""

    def _busy(self, exc: BudgetBackendError) -> bool:
        from director_llm.redis_clients import RedisClients

        last = getattr(self.primary, "last_reply", 0.0)
        slow = exc.__cause__ is not None and RedisClients.is_slow(exc.__cause__)
        return slow and bool(last) and time.monotonic() - last < BUSY_WINDOW_S

    @property
    def limits(self) -> BudgetLimits:
        return self.primary.limits

    @limits.setter
    def limits(self, limits: BudgetLimits) -> None:  # a config reload
        self.primary.limits = limits

    @property
    def down(self) -> bool:
        """Whether Redis is skipped now (an outage, until the next probe is due)."""
        return time.monotonic() < self._down_until

    @property
    def pending(self) -> int:
        """Bookings made during an outage and not yet written to Redis."""
        return len(self._pending)

    # -- outage state ----------------------------------------------------------------------
    def _mark_down(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self.retry_after_s
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            self.outages += 1
            log.warning(
                "budget store unreachable (%s); spending from this process's local allowance "
                "(last known remaining / %d expected processes) until it is back",
                str(exc).split(";")[0][:200],
                self.expected_processes,
            )

    def _mark_up(self) -> None:
        self._down_until = 0.0
        if self._outage_since is not None:
            log.info(
                "budget store reachable again after %.1f s; writing back %d bookings",
                time.monotonic() - self._outage_since,
                len(self._pending),
            )
            self._outage_since = None
        if self._pending and not self._reconciling:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            task = loop.create_task(self.reconcile())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _try(self, op: Callable[[], Awaitable[Any]]) -> tuple[bool, Any]:
        """``(True, await op())`` from Redis, or ``(False, None)`` when it is unreachable."""
        if self.down:
            return False, None
        for attempt in range(BUSY_RETRIES + 1):
            try:
                result = await op()
            except BudgetBackendError as exc:
                if attempt < BUSY_RETRIES and self._busy(exc):
                    # Redis answered moments ago: a burst or a starved event loop, not an
                    # outage. Send it again (same reservation id: a hold granted without its
                    # reply arriving is held once).
                    self.busy += 1
                    continue
                self._mark_down(exc)
                return False, None
            break
        self._mark_up()
        return True, result

    # -- the local allowance -----------------------------------------------------------------
    def _state(self, w: Window) -> _Allowance | None:
        if w.limit is None:
            return None
        key = (w.name, w.period)
        known = self._known.get(key)
        state = self._local.get(key)
        if state is not None and (known is None or known[1] <= state.created):
            return state
        now = time.monotonic()
        base = known[0] if known is not None else w.limit
        since = known[1] if known is not None else 0.0
        # This process's bookings not yet in Redis and not in the read the allowance comes
        # from, and its local holds still open (they move to the new allowance).
        unwritten = sum(
            to_units(p.actual_usd, round_up=True)
            for p in self._pending
            if p.at > since and (w.name, w.period) in p.reservation.windows
        )
        fresh = self._local[key] = _Allowance(base // self.expected_processes, unwritten, now)
        if state is not None:
            for held in self._holds.values():
                for i, (st, amount) in enumerate(held):
                    if st is state:
                        held[i] = (fresh, amount)
                        fresh.used += amount
        return fresh

    def _local_reserve(self, amount_usd: float, provider: str, model: str, rid: str) -> Reservation:
        primary = self.primary
        res = primary.new_reservation(provider, model, amount_usd, rid=rid)
        amount = to_units(amount_usd, round_up=True)
        if amount == 0:
            return res
        windows = primary.windows_for(provider, res.hour, res.day)
        with self._lock:
            states = [(w, self._state(w)) for w in windows]
            for w, st in states:
                if st is not None and st.used + amount > st.allowance:
                    raise _local_refusal(w, st, amount_usd, self.expected_processes)
            held = []
            for _, st in states:
                if st is not None:
                    st.used += amount
                    held.append((st, amount))
            self._holds[res.id] = held
            self.local_reservations += 1
        return res

    def _count_locally(self, reservation: Reservation, actual_usd: float) -> None:
        """Spend booked in memory for a reservation Redis granted: charge it to the allowance."""
        units = to_units(actual_usd, round_up=True)
        with self._lock:
            for w in self.primary.windows_for(reservation.provider, reservation.hour, reservation.day):
                st = self._state(w)
                if st is not None:
                    st.used += units

    def _local_remaining(self) -> dict[str, float]:
        now = self.primary.now_utc()
        out: dict[str, float] = {}
        providers = sorted(self.limits.per_provider)
        windows = self.primary.windows_at("-", now)[:2]
        for provider in providers:
            windows += self.primary.windows_at(provider, now)[2:]
        with self._lock:
            for w in windows:
                st = self._state(w)
                if st is not None:
                    out[w.name] = to_usd(max(0, st.allowance - st.used))
        return out

    def _remember(self, remaining: dict[str, float], now: datetime) -> None:
        hour, day, read_at = hour_key(now), now.strftime("%Y-%m-%d"), time.monotonic()
        for name, usd in remaining.items():
            period = hour if name.endswith("hour") else day
            self._known[(name, period)] = (to_units(usd, round_up=False), read_at)
        if len(self._known) > 256:  # old periods
            for key in list(self._known)[:-64]:
                del self._known[key]
        if len(self._local) > 256:
            for key in list(self._local)[:-64]:
                del self._local[key]

    # -- BudgetLedger ------------------------------------------------------------------------
    async def reserve(self, *, amount_usd: float, provider: str, model: str) -> Reservation:
        # One id for every try and for the local fallback: a hold Redis granted without the
        # reply arriving is held once, and dropped by the write-back of the local booking.
        rid = uuid.uuid4().hex
        ok, res = await self._try(
            lambda: self.primary.reserve(amount_usd=amount_usd, provider=provider, model=model, reservation_id=rid)
        )
        if ok:
            assert isinstance(res, Reservation)
            return res
        return self._local_reserve(amount_usd, provider, model, rid)

    async def settle(
        self, reservation: Reservation, *, actual_usd: float, prompt_tokens: int, completion_tokens: int
    ) -> None:
        if reservation.state != "open":
            raise ReservationClosedError(
                f"reservation {reservation.id} is already {reservation.state}; settle each reservation exactly once"
            )
        held = self._holds.pop(reservation.id, None)
        if held is not None:  # granted locally: book it, in Redis when it answers
            units = to_units(actual_usd, round_up=True)
            with self._lock:
                for st, amount in held:
                    st.used += units - amount
            reservation.state = "settled"
            await self._write(_Pending(replace(reservation), actual_usd, prompt_tokens, completion_tokens, 1, 0.0))
            return
        ok, _ = await self._try(
            lambda: self.primary.settle(
                reservation, actual_usd=actual_usd, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
            )
        )
        if not ok:
            # Redis holds this reservation (or lost it in a restart): the write-back settles it.
            self._count_locally(reservation, actual_usd)
            self._queue(_Pending(replace(reservation), actual_usd, prompt_tokens, completion_tokens, 1, 0.0))
            reservation.state = "settled"

    async def release(self, reservation: Reservation) -> None:
        if reservation.state != "open":
            return
        held = self._holds.pop(reservation.id, None)
        if held is not None:
            with self._lock:
                for st, amount in held:
                    st.used -= amount
            reservation.state = "released"
            # Redis may hold this id (granted as it went away): the write-back drops it.
            await self._write(_Pending(replace(reservation), 0.0, 0, 0, 0, 0.0))
            return
        ok, _ = await self._try(lambda: self.primary.release(reservation))
        if not ok:  # Redis's hold, if Redis kept it, expires with its TTL
            reservation.state = "released"

    async def record_usage(
        self,
        *,
        provider: str,
        model: str,
        actual_usd: float,
        prompt_tokens: int,
        completion_tokens: int,
        requests: int = 1,
    ) -> None:
        res = self.primary.new_reservation(provider, model, 0.0, held=False)
        await self._write(_Pending(res, actual_usd, prompt_tokens, completion_tokens, requests, 0.0))

    async def can_afford(self, amount_usd: float, provider: str) -> bool:
        ok, result = await self._try(lambda: self.primary.can_afford(amount_usd, provider))
        if ok:
            return bool(result)
        amount = to_units(amount_usd, round_up=True)
        now = self.primary.now_utc()
        with self._lock:
            states = [self._state(w) for w in self.primary.windows_at(provider, now)]
            return all(st is None or st.used + amount <= st.allowance for st in states)

    async def remaining(self) -> dict[str, float]:
        now = self.primary.now_utc()
        ok, result = await self._try(self.primary.remaining)
        if ok:
            self._remember(result, now)
            return dict(result)
        return self._local_remaining()

    async def snapshot(self, *, by: GroupBy | None = None) -> SpendReport:
        """From Redis (``BudgetBackendError`` while it is unreachable: a report needs it)."""
        report = await self.primary.snapshot(by=by)
        self._mark_up()
        return report

    async def aclose(self) -> None:
        """Write back what was booked during an outage (if Redis answers), then close."""
        for _ in range(500):  # a write-back running in the background: let it finish
            if not self._reconciling:
                break
            await asyncio.sleep(0.01)
        self._down_until = 0.0  # one last try, even right after a failure
        await self.reconcile()
        if self._pending:
            lost = sum(p.actual_usd for p in self._pending)
            log.warning(
                "budget store still unreachable at close: %d bookings ($%.6f) made during the outage "
                "could not be written to Redis",
                len(self._pending),
                lost,
            )
        await self.primary.aclose()

    # -- write-back --------------------------------------------------------------------------
    def _queue(self, item: _Pending) -> None:
        item.at = time.monotonic()
        self._pending.append(item)

    async def _write(self, item: _Pending) -> None:
        if self._pending or self.down:  # keep the order: older bookings first
            self._queue(item)
            if not self.down:
                self._mark_up()  # starts the write-back
            return
        ok, _ = await self._try(lambda: self._rebook(item))
        if not ok:
            self._queue(item)

    def _rebook(self, item: _Pending) -> Any:
        return self.primary.rebook(
            item.reservation,
            actual_usd=item.actual_usd,
            prompt_tokens=item.prompt_tokens,
            completion_tokens=item.completion_tokens,
            requests=item.requests,
        )

    async def reconcile(self) -> int:
        """Write the bookings made during an outage to Redis, oldest first; stops at the first
        failure (Redis down again). Returns how many were written."""
        if self._reconciling:
            return 0
        self._reconciling = True
        written = 0
        try:
            while self._pending:
                item = self._pending[0]
                ok, _ = await self._try(functools.partial(self._rebook, item))
                if not ok:
                    break
                self._pending.popleft()
                written += 1
        finally:
            self._reconciling = False
        self.reconciled += written
        if written:
            log.info("budget store: %d bookings made during the outage written back", written)
        return written


def _local_refusal(w: Window, st: _Allowance, amount_usd: float, processes: int) -> BudgetExceededError:
    assert w.limit is not None
    left = max(0, st.allowance - st.used)
    return BudgetExceededError(
        f"Budget window '{w.name}' ({w.period}): the budget store (Redis) is unreachable and this "
        f"process's share of the remaining budget during the outage (${to_usd(st.allowance):.6f}: the "
        f"last known remaining / expected_processes = {processes}) has ${to_usd(left):.6f} left; this "
        f"request needs up to ${amount_usd:.6f}. Priced deployments are served again from the shared "
        "budget when Redis is back (zero-cost tiers serve meanwhile).",
        window=w.name,
        limit_usd=to_usd(w.limit),
        spent_usd=to_usd(st.used),
        requested_usd=amount_usd,
        resets_at=w.resets_at,
    )
