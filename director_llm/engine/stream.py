"""Typed streams on the engine: ``TextDelta`` chunks, then one ``StreamEnd``.

``Director.stream_response(messages)`` returns a ``ResponseStream``, an async iterator and
async context manager::

    async with director.stream_response(messages) as stream:
        async for chunk in stream:
            if isinstance(chunk, TextDelta): print(chunk.text, end="")
            else: chunk.usage, chunk.cost_usd, chunk.route   # StreamEnd, always last

It is the engine's loop (``engine.run``) whose attempt yields chunks:

* **Before the first token** any failure is invisible to the caller: a refused connection,
  an HTTP error, a broken or empty body, or no text within
  ``llm.first_token_timeout_seconds``; the stream moves to the next deployment of its plan
  (the rest of the tier, then the fallback chain), skipping deployments whose breaker is open.
* **After the first token** a failure raises ``StreamInterruptedError`` with
  ``partial_text`` (what the caller already received). With ``resume=True`` the stream
  instead continues on the next deployment, which is given the partial answer and asked to
  go on; the caller sees one answer.
* **Deadline**: the whole stream, first token to last, must end within
  ``llm.max_stream_seconds`` (default: ``llm.timeout_seconds``), and each chunk must follow
  the previous one within ``llm.attempt_timeout_seconds``; a stall or an endless stream is
  cut (``StreamInterruptedError`` keeping the text delivered).
* **Backpressure**: the next chunk is read from the provider only when the caller asks for
  it; a slow consumer throttles the provider through TCP flow control.
* **Cancellation**: ``aclose()`` (or leaving ``async with``), or cancelling the consuming
  task, closes the upstream connection at once and settles the attempt's budget hold by
  what was generated.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from director_llm.engine.run import PASSED_OVER, AttemptRejected, Run, Slot
from director_llm.errors import StreamInterruptedError
from director_llm.route import Route
from director_llm.router.dispatch import UpstreamError

if TYPE_CHECKING:
    from director_llm.engine.parts import Parts
    from director_llm.providers import DeploymentInfo
    from director_llm.request import Call

__all__ = ["RESUME_PROMPT", "ResponseStream", "StreamChunk", "StreamEnd", "TextDelta"]

RESUME_PROMPT = (
    "Your previous answer was cut off. Continue it exactly where it stopped, "
    "without repeating anything and without any preamble."
)


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer's text."""

    text: str


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The last chunk: the whole text, token usage, cost in USD and the route."""

    text: str
    usage: dict[str, int]
    cost_usd: float
    route: Route


StreamChunk = TextDelta | StreamEnd


class ResponseStream:
    """Async iterator of ``TextDelta`` ... ``StreamEnd``; an async context manager too."""

    def __init__(self, parts: Parts, call: Call, *, resume: bool = False) -> None:
        self._parts = parts
        self._call = call
        self._resume = resume
        self._gen = self._run()
        self._closed = False
        self._obs = parts.observer.request("stream", call)
        self._finished = False
        self._live: tuple[Run, Slot] | None = None  # the slot streaming now (telemetry of an early close)

    def __aiter__(self) -> ResponseStream:
        return self

    @property
    def deployment(self) -> DeploymentInfo | None:
        """The deployment streaming now (None before the first attempt). After the first
        chunk it is the one that produced it (with ``resume=True`` a later one may finish
        the answer: ``StreamEnd.route`` is final). A gateway names it in its headers."""
        live = self._live
        return live[1].deployment if live is not None else None

    async def __anext__(self) -> StreamChunk:
        try:
            chunk = await self._gen.__anext__()
        except asyncio.CancelledError:
            # The consuming task was cancelled: release the upstream connection now rather than
            # whenever the generator is garbage-collected.
            await asyncio.shield(self.aclose())
            raise
        except StopAsyncIteration:
            raise
        except BaseException as exc:
            self._finish(None, error=exc)
            raise
        if type(chunk) is StreamEnd:
            self._finish(chunk.route, output=chunk.text)
        return chunk

    def _finish(self, route: Route | None, **kwargs: Any) -> None:
        if not self._finished:
            self._finished = True
            self._obs.finish(route, **kwargs)

    async def aclose(self) -> None:
        """Stop the stream and close the upstream connection. Safe to call twice."""
        if not self._closed:
            self._closed = True
            if not self._finished:
                # Closed by the caller before the end: served (ok) if text was flowing.
                live = self._live
                if live is not None and live[1].got_text:
                    self._finish(live[0].route(live[1].deployment))
                else:
                    self._finish(None, error=asyncio.CancelledError("closed before the first token"))
            await self._gen.aclose()

    async def __aenter__(self) -> ResponseStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def text(self) -> str:
        """Consume the stream and return the whole text."""
        parts = [c.text async for c in self if isinstance(c, TextDelta)]
        return "".join(parts)

    async def _run(self) -> AsyncGenerator[StreamChunk, None]:
        parts, call, llm = self._parts, self._call, self._parts.llm
        plan = await parts.planner.plan(call)
        run = await Run.start(
            parts, call, plan, deadline_s=llm.max_stream_seconds or llm.timeout_seconds, obs=self._obs
        )
        messages = call.messages
        delivered: list[str] = []
        interrupted_on: str | None = None
        async with aclosing(run.slots()) as slots:
            async for slot in slots:
                self._live = (run, slot)
                try:
                    async with aclosing(
                        slot.stream(
                            messages,
                            call.params,
                            first_token_s=llm.first_token_timeout_seconds,
                            idle_s=llm.attempt_timeout_seconds,
                        )
                    ) as pieces:
                        async for text in pieces:
                            if run.first_token_at is None:
                                run.first_token_at = time.perf_counter()
                            delivered.append(text)
                            yield TextDelta(text)
                except (UpstreamError, AttemptRejected) as exc:
                    await run.failed(slot, exc)
                    if slot.got_text:
                        if not self._resume or getattr(exc, "error_class", "") == "StreamDeadline":
                            partial = "".join(delivered)
                            raise StreamInterruptedError(
                                f"the answer from {slot.name} broke after {len(partial)} characters: "
                                f"{getattr(exc, 'error_class', getattr(exc, 'outcome', ''))}: {exc}. `partial_text` "
                                "holds what was delivered; retry, or pass resume=True to continue on the next "
                                "deployment",
                                partial_text=partial,
                                deployment=slot.name,
                                attempts=list(run.attempts),
                                route=run.route(slot.deployment),
                            ) from None
                        interrupted_on = slot.name
                        messages = [
                            *call.messages,
                            {"role": "assistant", "content": "".join(delivered)},
                            {"role": "user", "content": RESUME_PROMPT},
                        ]
                    continue
                except PASSED_OVER as exc:  # budget, rate limit, breaker: not sent
                    run.passed_over(slot, exc)
                    continue
                route = await run.succeeded(slot)
                if interrupted_on is not None:
                    route = route.model_copy(update={"resumed": True})
                usage = {
                    "prompt_tokens": run.prompt_tokens_total,
                    "completion_tokens": run.completion_tokens_total,
                    "total_tokens": run.prompt_tokens_total + run.completion_tokens_total,
                }
                yield StreamEnd(text="".join(delivered), usage=usage, cost_usd=run.cost_usd, route=route)
                return
        raise run.exhausted(partial_text="".join(delivered), interrupted_on=interrupted_on)
