"""Helpers shared by the benchmarks: a fake provider in another process, timers, percentiles.

The fake server runs in its own process (``python -m director_llm.testing.servers`` or a
small launcher with responders), so its CPU is not charged to the client being measured.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

LAUNCHER = """
import random, signal, sys, threading, time
from director_llm.testing import FakeProviderServer, Fault, Reply
server = FakeProviderServer({port})
server.set_default(Reply("ok, tarefa criada", usage=(20, 5)))
{setup}
base = server.start()
print("LISTENING " + base, flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
signal.signal(signal.SIGINT, lambda *_: stop.set())
stop.wait()
server.stop()
"""


@contextmanager
def fake_server(setup: str = "", *, port: int = 0) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A fake provider server in a child process; ``setup`` is Python run with ``server``,
    ``Fault``, ``Reply`` and ``random`` in scope (e.g. ``server.respond_with(...)``)."""
    code = LAUNCHER.format(port=port, setup=textwrap.dedent(setup))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("LISTENING "):
            raise RuntimeError(f"fake server did not start: {line!r}")
        yield line.split()[1], proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


def pct(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def latencies(call: Callable[[], Awaitable[object]], n: int) -> list[float]:
    """Seconds per call, ``n`` sequential calls."""
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await call()
        out.append(time.perf_counter() - t)
    return out


async def throughput(call: Callable[[], Awaitable[object]], n: int, concurrency: int) -> float:
    """Calls per second for ``n`` calls with at most ``concurrency`` in flight."""
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            await call()

    t = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return n / (time.perf_counter() - t)


def cpu_per_call(run: Callable[[], None], n: int) -> float:
    """Process CPU seconds per call of ``run`` (which makes ``n`` calls)."""
    t = time.process_time()
    run()
    return (time.process_time() - t) / n
