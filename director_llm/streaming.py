"""Typed streams: ``TextDelta`` chunks then one ``StreamEnd``, with fallback before the first token.

``Director.stream_response(messages)`` returns a :class:`ResponseStream`, an async iterator
that is also an async context manager::

    async with director.stream_response(messages) as stream:
        async for chunk in stream:
            if isinstance(chunk, TextDelta):
                print(chunk.text, end="")
            else:  # StreamEnd: usage, cost, which deployment answered
                print(chunk.route.deployment, chunk.cost_usd)

Semantics:

* **Before the first token** every failure is invisible to the caller: a refused connection,
  an HTTP error, a broken body, an empty answer, or no text within
  ``llm.first_token_timeout_seconds``; the stream moves to the next deployment (the rest of
  the group, then the group's fallback chain), skipping deployments whose breaker is open.
  All of this happens within the request deadline (``llm.timeout_seconds``), after which a
  ``ProviderError`` listing every attempt is raised.
* **After the first token** a failure raises ``StreamInterruptedError`` with
  ``partial_text`` (what the caller already received). With ``resume=True`` the stream
  instead continues on the next deployment, giving it the partial answer as context and
  asking it to go on; the caller sees one answer. Once text flows, the deadline no longer
  applies (a long answer is not an error); each chunk must arrive within
  ``llm.attempt_timeout_seconds`` of the previous one.
* **Backpressure**: the next chunk is read from the provider only when the caller asks for
  it, so the only buffers are the socket's; a slow consumer throttles the provider through
  TCP flow control and memory stays flat.
* **Cancellation**: ``aclose()`` (or leaving ``async with``), or cancelling the consuming
  task, closes the upstream HTTP connection at once (LiteLLM only closes an ``openai/``
  stream on ``aclose()``, so it is always called).
* **Budget**: LiteLLM reports no outcome for an attempt that was closed early, cancelled or
  given up at a timeout, so its reservation is settled here (``BudgetHooks.abandon``: by the
  usage seen, else by the tokens of the text delivered, else the prompt), never leaked.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from director_llm.errors import (
    DirectorError,
    ProviderError,
    StreamInterruptedError,
    redact,
)

if TYPE_CHECKING:
    from director_llm.director import Director

RESUME_PROMPT = ("Your previous answer was cut off. Continue it exactly where it stopped, "
                 "without repeating anything and without any preamble.")


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer's text."""

    text: str


@dataclass(frozen=True, slots=True)
class Attempt:
    """One deployment tried by a stream: ``outcome`` is ``ok``, ``skipped`` (breaker open)
    or the error class; ``message`` is redacted."""

    deployment: str
    outcome: str
    message: str = ""
    elapsed_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Route:
    """How a stream was served."""

    deployment: str
    group: str
    reason: str
    attempts: tuple[Attempt, ...]
    first_token_s: float
    total_s: float
    resumed: bool = False

    @property
    def fallbacks(self) -> int:
        """Deployments tried (not skipped) before the one that answered."""
        return sum(1 for a in self.attempts[:-1] if a.outcome != "skipped")


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The last chunk: the whole text, token usage, cost in USD and the route."""

    text: str
    usage: dict[str, int]
    cost_usd: float
    route: Route


StreamChunk = TextDelta | StreamEnd


class _NoText(Exception):
    """A stream that ended without any text (empty choices, empty answer)."""


@dataclass
class _Plan:
    group: str
    reason: str
    candidates: list[str]
    deadline_s: float
    first_token_s: float
    idle_s: float
    resume: bool
    kwargs: dict[str, Any] = field(default_factory=dict)


class ResponseStream:
    """Async iterator of ``TextDelta`` ... ``StreamEnd``; an async context manager too."""

    def __init__(self, director: Director, messages: list[dict[str, Any]], plan: _Plan) -> None:
        self._director = director
        self._messages = messages
        self._plan = plan
        self._gen = self._run()
        self._closed = False

    def __aiter__(self) -> ResponseStream:
        return self

    async def __anext__(self) -> StreamChunk:
        try:
            return await self._gen.__anext__()
        except asyncio.CancelledError:
            # The consuming task was cancelled: release the upstream connection now rather than
            # whenever the generator is garbage-collected.
            await asyncio.shield(self.aclose())
            raise

    async def aclose(self) -> None:
        """Stop the stream and close the upstream connection. Safe to call twice."""
        if not self._closed:
            self._closed = True
            await self._gen.aclose()

    async def __aenter__(self) -> ResponseStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def text(self) -> str:
        """Consume the stream and return the whole text."""
        parts = [c.text async for c in self if isinstance(c, TextDelta)]
        return "".join(parts)

    def _abandon(self, request_id: str, usage: dict[str, int], text: list[str]) -> None:
        """Settle the budget hold of an attempt that will not finish (see ``BudgetHooks.abandon``)."""
        budget = getattr(self._director, "budget", None)
        if budget is not None:
            budget.abandon(request_id, usage=usage, delivered_text="".join(text))

    # -- the work ---------------------------------------------------------------------------
    async def _run(self) -> Any:
        plan = self._plan
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + plan.deadline_s
        attempts: list[Attempt] = []
        messages = self._messages
        delivered: list[str] = []
        first_token_at: float | None = None
        interrupted_on: str | None = None
        breaker = getattr(self._director, "breaker", None)
        for name in plan.candidates:
            if breaker is not None and breaker.is_open(name):
                attempts.append(Attempt(name, "skipped", "circuit open"))
                continue
            remaining = deadline - loop.time()
            if first_token_at is None and remaining <= 0:
                break
            t0 = loop.time()
            upstream = None
            got_text = False
            completed = False  # the stream ended normally: LiteLLM's success event settles it
            reported = False  # LiteLLM raised, so its failure event releases the hold
            usage: dict[str, int] = {}
            attempt_text: list[str] = []
            metadata = self._director._metadata({"group": plan.group, "reason": plan.reason, "stream": True})
            request_id = metadata["director"]["request_id"]
            try:
                budget = plan.first_token_s if first_token_at is not None else min(plan.first_token_s, remaining)
                async with asyncio.timeout(budget):
                    upstream = await self._director.router.acompletion(
                        model=name, messages=messages, stream=True, fallbacks=[], num_retries=0,
                        timeout=max(0.05, budget), stream_options={"include_usage": True},
                        metadata=metadata, **plan.kwargs)
                    it = upstream.__aiter__()
                    chunk, text = await _next_text(it)
                if chunk is None:
                    raise _NoText("the stream ended without any text")
                while chunk is not None:
                    _merge_usage(usage, chunk)
                    if text:
                        if first_token_at is None:
                            first_token_at = loop.time()
                        got_text = True
                        delivered.append(text)
                        attempt_text.append(text)
                        yield TextDelta(text)
                    async with asyncio.timeout(plan.idle_s):
                        chunk, text = await _next_raw(it)
                if not got_text:
                    raise _NoText("the stream ended without any text")
                completed = True
            except Exception as exc:  # noqa: BLE001 - every attempt failure is recorded, then typed
                if attempt_text or usage or isinstance(exc, TimeoutError):
                    # Before any await, so ahead of LiteLLM's deferred failure event, which would
                    # release the hold although the text delivered was generated (and billed).
                    # After our own timeout LiteLLM was cancelled and reports nothing at all.
                    self._abandon(request_id, usage, attempt_text)
                else:  # an error before any output (HTTP error, refused, empty answer)
                    reported = True
                outcome, message = _describe(exc, first_token_at is None and not got_text)
                attempts.append(Attempt(name, outcome, message, round(loop.time() - t0, 4)))
                if outcome == "FirstTokenTimeout" and breaker is not None:
                    from director_llm.resilience.breaker import FirstTokenTimeoutError

                    await breaker.record_failure(name, FirstTokenTimeoutError(message))
                if delivered and got_text:
                    if not plan.resume:
                        raise StreamInterruptedError(
                            f"the answer from {name} broke after {len(''.join(delivered))} characters: "
                            f"{outcome}: {message}. `partial_text` holds what was delivered; retry, or "
                            "pass resume=True to continue on the next deployment",
                            partial_text="".join(delivered), deployment=name,
                            attempts=[(a.deployment, a.outcome, a.message) for a in attempts]) from None
                    interrupted_on = name
                    messages = [*self._messages, {"role": "assistant", "content": "".join(delivered)},
                                {"role": "user", "content": RESUME_PROMPT}]
                continue
            finally:
                if not (completed or reported):  # closed early or cancelled: LiteLLM never reports it
                    self._abandon(request_id, usage, attempt_text)
                if upstream is not None and hasattr(upstream, "aclose"):
                    try:
                        await asyncio.shield(upstream.aclose())
                    except Exception:  # noqa: BLE001 - the connection is being dropped anyway
                        pass
            attempts.append(Attempt(name, "ok", "", round(loop.time() - t0, 4)))
            info = self._director.providers.get(name)
            prompt, completion = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
            cost = info.price.cost(prompt, completion) if info is not None else 0.0
            end = loop.time()
            route = Route(deployment=name, group=plan.group, reason=plan.reason, attempts=tuple(attempts),
                          first_token_s=round((first_token_at or end) - start, 4), total_s=round(end - start, 4),
                          resumed=interrupted_on is not None)
            yield StreamEnd(text="".join(delivered),
                            usage={"prompt_tokens": prompt, "completion_tokens": completion,
                                   "total_tokens": prompt + completion},
                            cost_usd=cost, route=route)
            return
        raise _all_failed(plan, attempts, "".join(delivered), interrupted_on, loop.time() - start)


async def _next_raw(it: Any) -> tuple[Any, str]:
    try:
        chunk = await it.__anext__()
    except StopAsyncIteration:
        return None, ""
    return chunk, _text_of(chunk)


async def _next_text(it: Any) -> tuple[Any, str]:
    """Read until a chunk with text (role-only and empty chunks come first on some providers)."""
    while True:
        chunk, text = await _next_raw(it)
        if chunk is None or text:
            return chunk, text


def _text_of(chunk: Any) -> str:
    choices = getattr(chunk, "choices", None) or []
    if not choices:
        return ""
    delta = getattr(choices[0], "delta", None)
    return (getattr(delta, "content", None) or "") if delta is not None else ""


def _merge_usage(usage: dict[str, int], chunk: Any) -> None:
    u = getattr(chunk, "usage", None)
    if u is None:
        return
    for k in ("prompt_tokens", "completion_tokens"):
        v = getattr(u, k, None)
        if isinstance(v, int) and v:
            usage[k] = v


def _describe(exc: BaseException, before_first_token: bool) -> tuple[str, str]:
    if isinstance(exc, TimeoutError):
        if before_first_token:
            return "FirstTokenTimeout", "no token within the first-token timeout"
        return "IdleTimeout", "no chunk within the attempt timeout"
    if isinstance(exc, _NoText):
        return "EmptyAnswer", str(exc)
    if isinstance(exc, DirectorError):
        return type(exc).__name__, str(exc)
    return type(exc).__name__, redact(str(exc)).split("\n")[0][:300]


def _all_failed(plan: _Plan, attempts: list[Attempt], partial: str, interrupted_on: str | None,
                elapsed: float) -> ProviderError:
    tried = [(a.deployment, a.outcome, a.message) for a in attempts]
    summary = "; ".join(f"{a.deployment}: {a.outcome}" for a in attempts) or "no deployment could be tried"
    if interrupted_on is not None:
        return StreamInterruptedError(
            f"the answer broke on {interrupted_on} and no deployment could resume it ({summary})",
            partial_text=partial, deployment=interrupted_on, attempts=tried)
    why = (f"no answer within the request deadline of {plan.deadline_s:g}s"
           if elapsed >= plan.deadline_s else "every deployment failed before the first token")
    return ProviderError(f"{why} (group {plan.group}: {summary}); check `director-llm health`", attempts=tried)


def candidates_for(director: Director, group: str) -> list[str]:
    """Deployments a stream for ``group`` may try, in order: the group's own deployments,
    then those of each group in its fallback chain (no duplicates)."""
    built = director.built
    order: list[str] = []
    for g in (group, *built.fallbacks.get(group, ())):
        for name in built.groups.get(g, ()):
            if name not in order:
                order.append(name)
    return order


def open_stream(director: Director, messages: list[dict[str, Any]], *, group: str, reason: str,
                resume: bool = False, **kwargs: Any) -> ResponseStream:
    """Build the stream for ``group`` (used by ``Director.stream_response``)."""
    llm = director.config.llm
    kwargs.pop("stream", None)
    kwargs.pop("metadata", None)
    plan = _Plan(group=group, reason=reason, candidates=candidates_for(director, group),
                 deadline_s=llm.timeout_seconds, first_token_s=llm.first_token_timeout_seconds,
                 idle_s=llm.attempt_timeout_seconds, resume=resume, kwargs=kwargs)
    return ResponseStream(director, messages, plan)
