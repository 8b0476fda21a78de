"""``director.stream_intent``: partial classifications parsed from the streamed tokens, and
routing events as they happen.

The first group is asked with ``stream=True``; every chunk is re-read with
``partial_json_parser`` and a ``IntentClassificationStream`` is yielded whenever the flow,
the confidence, the reasoning or the entities moved on, so the caller can act on the flow
long before the answer ends. The complete text then goes through the same validation as
``classify_intent`` (``Classifier.settle``): an invalid or cut answer gets the repair round
and the next deployment, non-streamed, and the routing events of that recovery are passed
on while it runs. The last item is always ``done=True`` with the validated ``result``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from director_llm.errors import BudgetExceededError, ProviderError, redact
from director_llm.intents.models import (
    CacheHitEvent,
    FallbackEvent,
    IntentClassification,
    IntentClassificationStream,
    UsageEvent,
)
from director_llm.intents.parsing import parse_partial, reasoning_steps

if TYPE_CHECKING:
    from director_llm.intents.classifier import Classifier, _Run


def _final(result: IntentClassification, started: float) -> IntentClassificationStream:
    return IntentClassificationStream(
        partial_flow=result.flow, confidence=result.confidence, reasoning_steps=reasoning_steps(result.reasoning),
        entities=result.entities, done=True, result=result, elapsed_ms=_ms(started))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


async def stream_classification(classifier: Classifier, text: str, history: list[Any] | None = None, *,
                                strategy: str | None = None) -> AsyncIterator[Any]:
    """Async iterator of ``StreamItem`` (see ``intents.models``). Raises like ``classify_intent``."""
    req = classifier.prepare(text, history, strategy=strategy)
    started = req.started
    hit = await classifier.run_pre_steps(req)
    if hit is not None:
        if hit.route.cache:
            yield CacheHitEvent(layer=hit.route.cache)
        yield _final(hit, started)
        return
    try:
        async for item in _stream_llm(classifier, req, started):
            yield item
    except (ProviderError, BudgetExceededError) as exc:
        # The same last resort as classify_intent (the local tier, when configured).
        rescued = await classifier.run_error_steps(req, exc)
        if rescued is None:
            raise
        attempts = getattr(exc, "attempts", None) or [("llm tiers", "", "")]
        yield FallbackEvent(from_deployment=attempts[-1][0], to=rescued.route.deployment, error_class=type(exc).__name__,
                            message=redact(str(exc)).split("\n")[0][:200])
        yield _final(rescued, started)


async def _stream_llm(classifier: Classifier, req: Any, started: float) -> AsyncIterator[Any]:
    """The LLM path of ``stream_classification``: partials and routing events, then the final item."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    run = classifier.start_run(req, emit=queue.put_nowait)
    try:
        while not queue.empty():
            yield queue.get_nowait()
        first: tuple[str, str] | None = None
        async for item in _stream_first_answer(classifier, run, started):
            if isinstance(item, tuple):
                first = item
            else:
                while not queue.empty():
                    yield queue.get_nowait()
                yield item
        while not queue.empty():
            yield queue.get_nowait()
        # Validation, and if needed repair / next deployment, while events keep flowing.
        task = asyncio.ensure_future(classifier.settle(run, first))
        try:
            while not task.done():
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                else:
                    getter.cancel()
            while not queue.empty():
                yield queue.get_nowait()
            result = task.result()
        finally:
            if not task.done():
                task.cancel()
        await classifier.run_post_steps(req, result)
        yield UsageEvent(prompt_tokens=run.prompt_tokens, completion_tokens=run.completion_tokens,
                         cost_usd=round(run.cost_usd, 10), deployment=result.route.deployment)
        yield _final(result, started)
    finally:
        classifier.finish_run(run)


async def _stream_first_answer(classifier: Classifier, run: _Run, started: float) -> AsyncIterator[Any]:
    """Partials from the first streamed answer, then one ``(deployment, full text)`` tuple."""
    group = run.group
    run.calls += 1
    try:
        stream = await classifier.director.acompletion(run.req.messages, **classifier.request_kwargs(run, group, stream=True))
    except ProviderError as exc:
        await classifier._collect_failures(run, wait=True)
        raise classifier._failed(run, exc) from exc
    deployment = classifier.deployment_of(stream, group)
    await classifier._collect_failures(run, wait=False, answered_by=deployment)
    text = ""
    prompt_tokens = completion_tokens = 0
    last: tuple[Any, ...] | None = None
    try:
        async for chunk in stream:
            usage = getattr(chunk, "usage", None)
            if usage is not None:
                prompt_tokens = getattr(usage, "prompt_tokens", 0) or prompt_tokens
                completion_tokens = getattr(usage, "completion_tokens", 0) or completion_tokens
            try:
                delta = chunk.choices[0].delta.content or ""
            except (AttributeError, IndexError):
                delta = ""
            if not delta:
                continue
            text += delta
            partial = parse_partial(text, classifier.flows)
            steps = reasoning_steps(partial.reasoning)
            key = (partial.flow, partial.confidence, len(steps), len(partial.entities))
            if key != last and (partial.flow is not None or steps):
                last = key
                yield IntentClassificationStream(partial_flow=partial.flow, confidence=partial.confidence,
                                                 reasoning_steps=steps, entities=partial.entities,
                                                 elapsed_ms=_ms(started))
    except Exception as exc:  # noqa: BLE001 - a broken stream: validate what arrived (repair/next)
        run.errors.append((deployment, type(exc).__name__, str(exc).split("\n")[0][:200]))
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):  # closing a finished stream may complain; nothing to do
                await aclose()
    if not completion_tokens and text:
        completion_tokens = max(1, len(text) // 4)  # some servers send no usage in streams
    classifier.account(run, deployment, prompt_tokens, completion_tokens, None)
    yield (deployment, text)
