"""Single flight: identical work in flight at the same time runs once, its result shared.

``SingleFlight.run(key, work)`` awaits ``work()`` for the first caller of a key; callers
that arrive while it runs wait for that result instead (errors are shared too). If the
first caller is cancelled, a waiting caller runs the work itself rather than failing.
Used by the cache (identical misses make one upstream call) and by classification.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["SingleFlight"]

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Coalesce concurrent calls by key (one instance per event loop and kind of work)."""

    def __init__(self) -> None:
        self._in_flight: dict[Hashable, asyncio.Future[T]] = {}

    def __len__(self) -> int:
        return len(self._in_flight)

    async def run(self, key: Hashable, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """``(result, shared)``: ``shared`` is True when another caller's run produced it."""
        while True:
            leader = self._in_flight.get(key)
            if leader is None:
                break
            try:
                return await asyncio.shield(leader), True
            except asyncio.CancelledError:
                if not leader.cancelled():
                    raise  # this caller was cancelled
                # the leader was cancelled: loop and run the work ourselves (or join a new leader)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            result = await work()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        else:
            future.set_result(result)
            return result, False
        finally:
            if self._in_flight.get(key) is future:
                del self._in_flight[key]
