"""The request engine: validate -> plan -> for each deployment: reserve, attempt, settle,
record -> answer with one ``Route``. Every entry point runs on it.

``Engine.complete`` serves a chat completion, ``Engine.stream`` a typed stream, and
``Engine.run`` any attempt function: classification is a completion with its own prompt,
schema and parser (``director_llm.intents``), the cascade a candidate order that puts the
local tier last. The parts arrive ready-made (``Director`` builds them from the config):
the engine knows them only through the small interfaces it calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, TypeVar

from director_llm.engine.parts import Parts
from director_llm.engine.run import PASSED_OVER, AttemptRejected, Run, Slot
from director_llm.engine.stream import ResponseStream
from director_llm.route import Attempt, Route
from director_llm.router.dispatch import Reply, UpstreamError

if TYPE_CHECKING:
    from director_llm.observability.observer import RequestObserver
    from director_llm.request import Call
    from director_llm.selection.planner import Plan

__all__ = ["Engine"]

T = TypeVar("T")
AttemptFn = Callable[[Slot], Awaitable[T]]


class Engine:
    """Runs requests over a plan (see the module docstring)."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.planner = parts.planner
        self.dispatcher = parts.dispatcher
        self.budget = parts.budget
        self.breaker = parts.breaker
        self.metrics = parts.metrics
        self.llm = parts.llm

    async def plan(self, call: Call, **kwargs: Any) -> Plan:
        """The deployments ``call`` will try, in order (``Planner.plan``)."""
        return await self.planner.plan(call, **kwargs)

    async def run(
        self,
        call: Call,
        plan: Plan,
        attempt: AttemptFn[T],
        *,
        prior: Sequence[Attempt] = (),
        observer: Callable[[Attempt], None] | None = None,
        obs: RequestObserver | None = None,
    ) -> tuple[T, Route]:
        """Try ``attempt`` on each deployment of ``plan`` until one returns; ``prior`` are
        attempts made before the plan (the local tier's escalation), ``observer`` sees each
        attempt as it is recorded, ``obs`` is the request's telemetry (attempts and usage)."""
        run = await Run.start(self.parts, call, plan, prior=prior, observer=observer, obs=obs)
        async with aclosing(run.slots()) as slots:
            async for slot in slots:
                try:
                    value = await attempt(slot)
                except (UpstreamError, AttemptRejected) as exc:
                    await run.failed(slot, exc)
                    continue
                except PASSED_OVER as exc:  # budget, rate limit, breaker: not sent
                    run.passed_over(slot, exc)
                    continue
                return value, await run.succeeded(slot)
        raise run.exhausted()

    async def complete(
        self, call: Call, plan: Plan | None = None, *, obs: RequestObserver | None = None
    ) -> tuple[Reply, Route]:
        """A chat completion: the first deployment that gives a non-empty answer."""
        plan = plan or await self.plan(call)

        async def attempt(slot: Slot) -> Reply:
            reply = await slot.call(call.messages, call.params)
            if reply.empty:
                raise AttemptRejected(
                    "EmptyAnswer", "no choices, or a message with no text and no tool calls", feeds_breaker=True
                )
            return reply

        return await self.run(call, plan, attempt, obs=obs)

    def stream(self, call: Call, *, resume: bool = False) -> ResponseStream:
        """A typed stream of ``TextDelta`` then one ``StreamEnd`` (see ``engine.stream``)."""
        return ResponseStream(self.parts, call, resume=resume)

    async def warmup(self) -> None:
        """Import LiteLLM now, off the event loop (the first call would otherwise pay ~4 s)."""
        if not self.planner.topology.empty:
            await self.dispatcher.load()
