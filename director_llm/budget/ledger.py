"""Budget ledger: reserve before a paid call, settle after it, never overspend.

Why reserve/settle: LiteLLM's own provider budgets add spend only *after* a call, so N
concurrent calls all see the same "remaining" and together overspend. Here a caller first
``reserve``\\s the worst-case cost of the call (see ``estimate_worst_case_cost``); the
reservation is granted only if, in every applicable window,

    spent + outstanding reservations + amount <= limit

and the check and the hold happen atomically. After the call, ``settle`` replaces the hold
by the actual cost (recorded truthfully, even when it is slightly above the estimate);
when the call failed, ``release`` gives the hold back.

Windows are UTC calendar periods: ``hour`` (key ``2026-11-25T20``), ``day``
(``2026-11-25``), and per provider ``provider:<name>:hour`` / ``provider:<name>:day``.
A reservation belongs to the periods in which it was *made*, and its settlement is
booked there too, so a call reserved at 20:59:59 and finished at 21:00:03 can never
push hour 21 past its limit (hour 20's check already admitted it). Amount 0 is always
granted without touching the store: a zero-cost local tier is served even when the
budget is exhausted or Redis is down.

Money is stored as integer nano-USD (``_UNITS_PER_USD``), never floats: additions are
exact, so totals do not drift however many requests are booked. Nano rather than micro
because one call to a cheap model costs only a few micro-dollars, and rounding each to a
whole micro-dollar would distort reports by several percent. Reservations round up,
actual costs to the nearest nano-USD.

The Redis store (crash safety, lost replies, event loops, round trips) is described in
``director_llm.budget.redis``.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import (
    Any,
    Literal,
    NamedTuple,
    Protocol,
    runtime_checkable,
)

from director_llm.errors import BudgetBackendError, BudgetExceededError, ReservationClosedError

__all__ = [
    "BudgetBackendError",
    "BudgetExceededError",
    "BudgetLedger",
    "BudgetLimits",
    "MemoryLedger",
    "ProviderLimits",
    "Reservation",
    "ReservationClosedError",
    "SpendReport",
    "UsageReport",
    "WindowReport",
    "estimate_worst_case_cost",
]

_UNITS_PER_USD = 1_000_000_000  # nano-USD
DEFAULT_RESERVATION_TTL_S = 300.0
DEFAULT_REDIS_PREFIX = "director:"
DEFAULT_REDIS_TIMEOUT_S = 2.0
# How long window data outlives its period: long enough for reports about "the last 24 h".
_HOUR_KEEP = timedelta(hours=2)
_DAY_KEEP = timedelta(days=2)
_STATS_KEEP = timedelta(hours=26)
_REPORT_HOURS = 24
# Pauses before each retry of a settle/release that failed on a dropped connection or a
# timeout: the first retry is immediate (a fresh connection), the pauses sum to 0.25 s.
_RETRY_DELAYS_S = (0.0, 0.05, 0.2)
# Reserve and status reads sit on the request path: one immediate retry on a dropped
# connection, none after a timeout (a hung Redis must fail the request within timeout_s).
_REQUEST_PATH_RETRY_DELAYS_S = (0.0,)

GroupBy = Literal["provider", "model", "hour"]


# --------------------------------------------------------------------------- limits


class ProviderLimits(NamedTuple):
    """Per-provider budget in USD; None means no limit for that window."""

    per_hour: float | None = None
    per_day: float | None = None


@dataclass(frozen=True)
class BudgetLimits:
    """Budget limits in USD (``[llm] budget_per_hour`` / ``budget_per_day`` and optional
    per-provider budgets). None means unlimited; 0 allows only zero-cost calls."""

    per_hour: float | None = None
    per_day: float | None = None
    per_provider: Mapping[str, ProviderLimits | tuple[float | None, float | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        provider = {name: ProviderLimits(*lim) for name, lim in self.per_provider.items()}
        object.__setattr__(self, "per_provider", provider)
        checks = [("per_hour", self.per_hour), ("per_day", self.per_day)]
        for name, lim in provider.items():
            _check_provider_name(name)
            checks += [(f"per_provider[{name}].per_hour", lim.per_hour), (f"per_provider[{name}].per_day", lim.per_day)]
        for label, value in checks:
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"budget limit {label} must be a finite number >= 0, got {value!r}")


def estimate_worst_case_cost(
    prompt_tokens: int,
    max_tokens: int,
    input_price_per_token: float,
    output_price_per_token: float,
) -> float:
    """The most a call can cost in USD: the whole prompt plus ``max_tokens`` of output.
    Reserve this amount; settle with the real cost afterwards."""
    values = (prompt_tokens, max_tokens, input_price_per_token, output_price_per_token)
    if any(v < 0 for v in values):
        raise ValueError(f"token counts and prices must be >= 0, got {values}")
    return prompt_tokens * input_price_per_token + max_tokens * output_price_per_token


# --------------------------------------------------------------------------- reports


@dataclass(frozen=True)
class WindowReport:
    """State of one budget window; ``remaining_usd`` is None when it has no limit."""

    window: str
    period: str
    limit_usd: float | None
    spent_usd: float
    reserved_usd: float
    remaining_usd: float | None
    resets_at: datetime


@dataclass(frozen=True)
class UsageReport:
    """Requests, tokens and cost summed over some group (settled calls only)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class SpendReport:
    """What ``snapshot`` returns. ``usage`` is grouped by ``by`` over the last 24 h
    (``provider`` keys are provider names, ``model`` keys ``provider:model``, ``hour`` keys
    hour periods); ``hourly`` holds the totals of each of the last 24 hours, oldest first."""

    generated_at: datetime
    windows: dict[str, WindowReport]
    by: GroupBy | None
    usage: dict[str, UsageReport]
    hourly: dict[str, UsageReport]
    total: UsageReport
    keys: dict[str, UsageReport] = field(default_factory=dict)
    """Calls answered per API key, by the key's variable NAME (``OPENAI_KEY_A``), never its
    value: this process's since it started (filled by ``director.spend()``)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO 8601 strings)."""
        out: dict[str, Any] = _jsonable(asdict(self))
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    return value


# --------------------------------------------------------------------------- reservation


@dataclass
class Reservation:
    """A hold on budget returned by ``reserve``; pass it to ``settle`` or ``release``."""

    id: str
    provider: str
    model: str
    amount_usd: float
    hour: str
    day: str
    created_at: datetime
    expires_at: datetime
    state: Literal["open", "settled", "released"] = "open"

    @property
    def windows(self) -> tuple[tuple[str, str], ...]:
        """(window, period) pairs this reservation is booked in."""
        return _window_periods(self.provider, self.hour, self.day)


@runtime_checkable
class BudgetLedger(Protocol):
    """What the Director and the selector need from a ledger."""

    async def reserve(self, *, amount_usd: float, provider: str, model: str) -> Reservation: ...
    async def settle(
        self, reservation: Reservation, *, actual_usd: float, prompt_tokens: int, completion_tokens: int
    ) -> None: ...
    async def release(self, reservation: Reservation) -> None: ...
    async def record_usage(
        self,
        *,
        provider: str,
        model: str,
        actual_usd: float,
        prompt_tokens: int,
        completion_tokens: int,
        requests: int = 1,
    ) -> None: ...
    async def can_afford(self, amount_usd: float, provider: str) -> bool: ...
    async def remaining(self) -> dict[str, float]: ...
    async def snapshot(self, *, by: GroupBy | None = None) -> SpendReport: ...
    async def aclose(self) -> None: ...


# --------------------------------------------------------------------------- windows


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    period: str
    limit: int | None  # nano-USD
    resets_at: datetime
    keep_until: datetime


def _check_provider_name(provider: str) -> None:
    # '|' separates the parts of a stats field; an empty name would make keys ambiguous.
    if not provider or "|" in provider:
        raise ValueError(f"provider name must be non-empty and contain no '|', got {provider!r}")


def to_units(usd: float, *, round_up: bool) -> int:
    if not math.isfinite(usd) or usd < 0:
        raise ValueError(f"amount must be a finite number >= 0 USD, got {usd!r}")
    # round(..., 3) first so 0.1 USD (= 100000000.00000001 nano) is not rounded up a unit.
    scaled = round(usd * _UNITS_PER_USD, 3)
    return math.ceil(scaled) if round_up else round(scaled)


def to_usd(units: float) -> float:
    return units / _UNITS_PER_USD


def hour_key(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H")


def _period_start(period: str) -> datetime:
    # fromisoformat reads both "2026-11-25T20" and "2026-11-25", 40x faster than strptime.
    return datetime.fromisoformat(period).replace(tzinfo=UTC)


def _window_periods(provider: str, hour: str, day: str) -> tuple[tuple[str, str], ...]:
    return (("hour", hour), ("day", day), (f"provider:{provider}:hour", hour), (f"provider:{provider}:day", day))


def _stats_increments(
    provider: str, model: str, actual: int, prompt_tokens: int, completion_tokens: int, requests: int = 1
) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for group in ("t", f"p|{provider}", f"m|{provider}|{model}"):
        out += [
            (f"{group}|requests", requests),
            (f"{group}|prompt_tokens", prompt_tokens),
            (f"{group}|completion_tokens", completion_tokens),
            (f"{group}|cost", actual),
        ]
    return out


def _usage(counters: Mapping[str, int], group: str) -> UsageReport:
    return UsageReport(
        requests=int(counters.get(f"{group}|requests", 0)),
        prompt_tokens=int(counters.get(f"{group}|prompt_tokens", 0)),
        completion_tokens=int(counters.get(f"{group}|completion_tokens", 0)),
        cost_usd=to_usd(int(counters.get(f"{group}|cost", 0))),
    )


class LedgerBase:
    """Window arithmetic, errors and reports shared by both stores. A store implements
    ``_hold`` / ``_book`` / ``_read_windows`` / ``_read_stats``."""

    def __init__(
        self,
        *,
        limits: BudgetLimits,
        clock: Callable[[], datetime] | None = None,
        reservation_ttl_s: float = DEFAULT_RESERVATION_TTL_S,
    ) -> None:
        if reservation_ttl_s <= 0:
            raise ValueError(f"reservation_ttl_s must be > 0, got {reservation_ttl_s!r}")
        self.limits = limits
        self._clock = clock or (lambda: datetime.now(UTC))
        self.reservation_ttl = timedelta(seconds=reservation_ttl_s)

    # ---- store interface
    async def _hold(
        self, res: Reservation, windows: Sequence[Window], amount: int, now: datetime
    ) -> tuple[int, int, int] | None:
        """Atomically check and hold; None if granted else (window index, spent, reserved)."""
        raise NotImplementedError

    async def _book(
        self,
        res: Reservation,
        windows: Sequence[Window],
        actual: int,
        stats: list[tuple[str, int]],
        stats_keep: datetime,
        kind: str,
    ) -> bool:
        """Drop the hold, add ``actual`` to spent and ``stats`` to the hour's counters
        (``kind``: ``s`` settle, ``r`` release). Returns whether the hold was still there.
        Must be idempotent per reservation id: it may be retried after a lost reply."""
        raise NotImplementedError

    async def _read_windows(self, windows: Sequence[Window], now: datetime) -> list[tuple[int, int]]:
        """(spent, reserved) per window, after purging expired holds."""
        raise NotImplementedError

    async def _read_stats(self, hours: Sequence[str]) -> list[dict[str, int]]:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release the store's connections (no-op for memory)."""

    # ---- helpers
    def new_reservation(
        self, provider: str, model: str, amount_usd: float, *, rid: str | None = None, held: bool = True
    ) -> Reservation:
        """A reservation named for the current hour and day windows; ``held``: it expires
        after ``reservation_ttl`` (a hold), else at once (usage booked without a hold)."""
        now = self.now_utc()
        return Reservation(
            id=rid or uuid.uuid4().hex,
            provider=provider,
            model=model,
            amount_usd=amount_usd,
            hour=hour_key(now),
            day=now.strftime("%Y-%m-%d"),
            created_at=now,
            expires_at=now + self.reservation_ttl if held else now,
        )

    def now_utc(self) -> datetime:
        now = self._clock()
        return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)

    def windows_for(self, provider: str, hour: str, day: str) -> list[Window]:
        hour_start, day_start = _period_start(hour), _period_start(day)
        hour_end, day_end = hour_start + timedelta(hours=1), day_start + timedelta(days=1)
        plim = ProviderLimits(*self.limits.per_provider.get(provider, ProviderLimits()))
        limits = (self.limits.per_hour, self.limits.per_day, plim.per_hour, plim.per_day)
        out = []
        for (name, period), limit, is_hour in zip(
            _window_periods(provider, hour, day), limits, (True, False, True, False), strict=False
        ):
            end = hour_end if is_hour else day_end
            out.append(
                Window(
                    name,
                    period,
                    None if limit is None else to_units(limit, round_up=False),
                    end,
                    end + (_HOUR_KEEP if is_hour else _DAY_KEEP),
                )
            )
        return out

    def windows_at(self, provider: str, now: datetime) -> list[Window]:
        return self.windows_for(provider, hour_key(now), now.strftime("%Y-%m-%d"))

    # ---- public API
    async def reserve(
        self, *, amount_usd: float, provider: str, model: str, reservation_id: str | None = None
    ) -> Reservation:
        """Hold ``amount_usd`` in every window that applies to ``provider``, or raise
        ``BudgetExceededError`` for the first window that cannot afford it. Sending the same
        ``reservation_id`` again (a retry after a lost reply) holds once."""
        _check_provider_name(provider)
        amount = to_units(amount_usd, round_up=True)
        res = self.new_reservation(provider, model, amount_usd, rid=reservation_id)
        now = res.created_at
        if amount == 0:  # always served, and needs no store
            return res
        windows = self.windows_for(provider, res.hour, res.day)
        refused = await self._hold(res, windows, amount, now)
        if refused is not None:
            index, spent, reserved = refused
            w = windows[index]
            assert w.limit is not None  # only limited windows can refuse
            raise BudgetExceededError(
                _exceeded_message(w, spent, reserved, amount_usd),
                window=w.name,
                limit_usd=to_usd(w.limit),
                spent_usd=to_usd(spent),
                reserved_usd=to_usd(reserved),
                requested_usd=amount_usd,
                resets_at=w.resets_at,
            )
        return res

    async def settle(
        self, reservation: Reservation, *, actual_usd: float, prompt_tokens: int, completion_tokens: int
    ) -> None:
        """Replace the hold by the actual cost and count the request and its tokens."""
        if reservation.state != "open":
            raise ReservationClosedError(
                f"reservation {reservation.id} is already {reservation.state}; settle each reservation exactly once"
            )
        if prompt_tokens < 0 or completion_tokens < 0:
            raise ValueError("token counts must be >= 0")
        actual = to_units(actual_usd, round_up=False)
        hour_start = _period_start(reservation.hour)
        stats = _stats_increments(reservation.provider, reservation.model, actual, prompt_tokens, completion_tokens)
        windows = self.windows_for(reservation.provider, reservation.hour, reservation.day)
        await self._book(reservation, windows, actual, stats, hour_start + _STATS_KEEP, "s")
        reservation.state = "settled"

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
        """Book spend that needed no reservation (no budget limit, or a zero-cost call): the
        usage of ``requests`` calls at once, in the current windows. One store operation."""
        _check_provider_name(provider)
        res = self.new_reservation(provider, model, 0.0, held=False)
        actual = to_units(actual_usd, round_up=False)
        stats = _stats_increments(provider, model, actual, prompt_tokens, completion_tokens, requests)
        windows = self.windows_for(provider, res.hour, res.day)
        await self._book(res, windows, actual, stats, _period_start(res.hour) + _STATS_KEEP, "s")
        res.state = "settled"

    async def rebook(
        self,
        reservation: Reservation,
        *,
        actual_usd: float,
        prompt_tokens: int,
        completion_tokens: int,
        requests: int = 1,
    ) -> None:
        """Book usage in ``reservation``'s own windows under its id, whatever its state, and drop
        the store's hold of that id if it still has one. Idempotent per id in Redis: this is how
        spend booked locally during a store outage is written back (``budget.outage``)."""
        actual = to_units(actual_usd, round_up=False)
        stats = _stats_increments(
            reservation.provider, reservation.model, actual, prompt_tokens, completion_tokens, requests
        )
        windows = self.windows_for(reservation.provider, reservation.hour, reservation.day)
        await self._book(reservation, windows, actual, stats, _period_start(reservation.hour) + _STATS_KEEP, "s")

    async def release(self, reservation: Reservation) -> None:
        """Give the hold back (the call failed). A no-op on a closed reservation, so it is
        safe in ``finally`` blocks after ``settle``."""
        if reservation.state != "open":
            return
        if to_units(reservation.amount_usd, round_up=True) > 0:
            windows = self.windows_for(reservation.provider, reservation.hour, reservation.day)
            await self._book(reservation, windows, 0, [], reservation.created_at, "r")
        reservation.state = "released"

    async def can_afford(self, amount_usd: float, provider: str) -> bool:
        """Would ``reserve(amount_usd, provider)`` succeed now? (No hold is taken, so a
        concurrent caller may still win the race; ``reserve`` is the real check.)"""
        amount = to_units(amount_usd, round_up=True)
        if amount == 0:
            return True
        now = self.now_utc()
        windows = self.windows_at(provider, now)
        states = await self._read_windows(windows, now)
        return all(
            w.limit is None or spent + reserved + amount <= w.limit
            for w, (spent, reserved) in zip(windows, states, strict=False)
        )

    async def remaining(self) -> dict[str, float]:
        """USD left in each limited window (global, and per configured provider)."""
        windows = await self._window_reports(self.now_utc(), ())
        return {name: w.remaining_usd for name, w in windows.items() if w.remaining_usd is not None}

    async def snapshot(self, *, by: GroupBy | None = None) -> SpendReport:
        """Windows (limit, spent, reserved, remaining, resets_at) and usage of the last 24 h."""
        if by not in (None, "provider", "model", "hour"):
            raise ValueError(f"by must be 'provider', 'model', 'hour' or None, got {by!r}")
        now = self.now_utc()
        hours = [hour_key(now - timedelta(hours=h)) for h in range(_REPORT_HOURS - 1, -1, -1)]
        stats = await self._read_stats(hours)
        merged: Counter[str] = Counter()
        for counters in stats:
            merged.update(counters)
        seen = {f.split("|")[1] for f in merged if f.startswith("p|")}
        windows = await self._window_reports(now, sorted(seen))
        hourly = {h: _usage(c, "t") for h, c in zip(hours, stats, strict=False)}
        usage: dict[str, UsageReport] = {}
        if by == "hour":
            usage = dict(hourly)
        elif by in ("provider", "model"):
            prefix = "p|" if by == "provider" else "m|"
            groups = sorted({f.rsplit("|", 1)[0] for f in merged if f.startswith(prefix)})
            for g in groups:
                key = g[2:] if by == "provider" else g[2:].replace("|", ":", 1)
                usage[key] = _usage(merged, g)
        return SpendReport(
            generated_at=now, windows=windows, by=by, usage=usage, hourly=hourly, total=_usage(merged, "t")
        )

    async def _window_reports(self, now: datetime, extra_providers: Sequence[str]) -> dict[str, WindowReport]:
        providers = sorted(set(self.limits.per_provider) | set(extra_providers))
        windows = self.windows_at("-", now)[:2]  # the global hour and day
        for provider in providers:
            windows += self.windows_at(provider, now)[2:]
        states = await self._read_windows(windows, now)
        out = {}
        for w, (spent, reserved) in zip(windows, states, strict=False):
            remaining = None if w.limit is None else to_usd(max(0, w.limit - spent - reserved))
            out[w.name] = WindowReport(
                window=w.name,
                period=w.period,
                limit_usd=None if w.limit is None else to_usd(w.limit),
                spent_usd=to_usd(spent),
                reserved_usd=to_usd(reserved),
                remaining_usd=remaining,
                resets_at=w.resets_at,
            )
        return out


def _exceeded_message(w: Window, spent: int, reserved: int, requested_usd: float) -> str:
    assert w.limit is not None
    left = max(0, w.limit - spent - reserved)
    where = (
        "[llm] budget_per_hour"
        if w.name == "hour"
        else "[llm] budget_per_day"
        if w.name == "day"
        else f"the {w.name.split(':')[1]} provider's budget"
    )
    return (
        f"Budget window '{w.name}' ({w.period}) cannot afford this request: it needs up to "
        f"${requested_usd:.6f} but only ${to_usd(left):.6f} of ${to_usd(w.limit):.6f} is left "
        f"(${to_usd(spent):.6f} spent, ${to_usd(reserved):.6f} held by calls in flight). "
        f"It resets at {w.resets_at.isoformat()}. Use a cheaper or local tier, lower "
        f"max_tokens, wait for the reset, or raise {where}."
    )


# --------------------------------------------------------------------------- memory


@dataclass
class _MemWindow:
    spent: int = 0
    reserved: int = 0
    holds: dict[str, tuple[int, datetime]] = field(default_factory=dict)  # id -> (units, expiry)
    keep_until: datetime | None = None

    def purge(self, now: datetime) -> None:
        for rid in [rid for rid, (_, exp) in self.holds.items() if exp <= now]:
            self.reserved -= self.holds.pop(rid)[0]


class MemoryLedger(LedgerBase):
    """Ledger for one process. Each operation runs without awaiting inside its critical
    section and under a thread lock, so it is atomic for asyncio tasks and threads alike."""

    def __init__(
        self,
        *,
        limits: BudgetLimits,
        clock: Callable[[], datetime] | None = None,
        reservation_ttl_s: float = DEFAULT_RESERVATION_TTL_S,
    ) -> None:
        super().__init__(limits=limits, clock=clock, reservation_ttl_s=reservation_ttl_s)
        self._lock = threading.Lock()
        self._windows_state: dict[tuple[str, str], _MemWindow] = {}
        self._stats: dict[str, tuple[Counter[str], datetime]] = {}

    def _state(self, w: Window) -> _MemWindow:
        state = self._windows_state.setdefault((w.name, w.period), _MemWindow())
        state.keep_until = w.keep_until
        return state

    def _forget_old(self, now: datetime) -> None:
        # Mirrors Redis key expiry so a long-lived process does not grow without bound.
        for key in [k for k, s in self._windows_state.items() if s.keep_until and s.keep_until <= now]:
            del self._windows_state[key]
        for hour in [h for h, (_, keep) in self._stats.items() if keep <= now]:
            del self._stats[hour]

    async def _hold(
        self, res: Reservation, windows: Sequence[Window], amount: int, now: datetime
    ) -> tuple[int, int, int] | None:
        with self._lock:
            self._forget_old(now)
            states = [self._state(w) for w in windows]
            for s in states:
                s.purge(now)
            for i, (w, s) in enumerate(zip(windows, states, strict=False)):
                if w.limit is not None and s.spent + s.reserved + amount > w.limit:
                    return i, s.spent, s.reserved
            for s in states:
                s.reserved += amount
                s.holds[res.id] = (amount, res.expires_at)
            return None

    async def _book(
        self,
        res: Reservation,
        windows: Sequence[Window],
        actual: int,
        stats: list[tuple[str, int]],
        stats_keep: datetime,
        kind: str,
    ) -> bool:
        # One critical section under a lock: no reply can be lost, so no retry and no
        # record of closed ids is needed (the Reservation's state guards double settles).
        live = False
        with self._lock:
            for w in windows:
                s = self._state(w)
                held = s.holds.pop(res.id, None)
                if held is not None:
                    live = True
                    s.reserved -= held[0]
                s.spent += actual
            if stats:
                counters, _ = self._stats.setdefault(res.hour, (Counter(), stats_keep))
                counters.update(dict(stats))
        return live

    async def _read_windows(self, windows: Sequence[Window], now: datetime) -> list[tuple[int, int]]:
        with self._lock:
            out = []
            for w in windows:
                s = self._windows_state.get((w.name, w.period))
                if s is None:
                    out.append((0, 0))
                else:
                    s.purge(now)
                    out.append((s.spent, s.reserved))
            return out

    async def _read_stats(self, hours: Sequence[str]) -> list[dict[str, int]]:
        with self._lock:
            return [dict(self._stats[h][0]) if h in self._stats else {} for h in hours]
