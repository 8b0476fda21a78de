"""Benchmark the tiered cache against LiteLLM's own caches; prints tables (not a test).

    .venv/bin/python scripts/bench_cache.py [--redis-url redis://127.0.0.1:6379/0]
        [--n 3000] [--no-litellm] [--json results.json]

Sections:

1. Hit latency (p50/p99, microseconds, measured around one ``await``) from our memory,
   Redis and disk layers, and from LiteLLM 1.110.2's ``Cache(type="local")`` (the
   completion-cache entry point), ``InMemoryCache`` and ``RedisCache`` async gets, with
   the ratio ours/theirs.
2. Hit rate of the memory layer alone on a Zipf-distributed stream (10k requests over 1k
   distinct keys, values 100 B-4 kB) at several ``memory_size_mb`` limits, and the bytes
   the layer then holds.
3. End to end through a ``Director`` (fake provider on loopback): ``classify_intent`` served
   from memory, Redis and disk (each layer alone), a cached ``acompletion``, uncached calls,
   and LiteLLM Router's own response cache (``cache_responses=True`` with
   ``litellm.cache = Cache(type="local"|"redis")``), with ratios; then the hit rate of a
   Zipf stream of classify_intent calls (10k over 1k texts) at ``--e2e-memory-mb``.
   LiteLLM's cache-hit path imports its proxy package: it needs ``fastapi``, ``orjson``
   and ``soundfile`` installed (``--no-litellm`` skips it).

Extending it (e.g. an end-to-end ``classify_intent`` section): the building blocks take
async callables, so a new section is a coroutine returning rows, appended to
``SECTIONS``::

    async def bench_director(args):
        director = ...
        lat = await measure_latency(lambda: director.classify_intent("quero cancelar"), n=args.n)
        return Table("classify_intent end to end", ["path", "p50 us", "p99 us"], [["cached", *lat.row()]])

    SECTIONS.append(bench_director)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# LiteLLM fetches a price map over the network at import unless told not to.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from director_llm.cache import TieredCache

#: A classification result as the Director caches it (~150 bytes of JSON).
CLASSIFICATION = {
    "flow": "cancel_subscription",
    "confidence": 0.93,
    "reasoning": "user explicitly asks to cancel the plan",
    "tier": "local",
    "model": "ollama_chat/llama3.2:1b",
}


# --------------------------------------------------------------------------- building blocks
@dataclass
class Latency:
    """Percentiles of one measured callable, in microseconds."""

    name: str
    n: int
    p50_us: float
    p99_us: float
    mean_us: float

    def row(self) -> list[str]:
        return [f"{self.p50_us:,.1f}", f"{self.p99_us:,.1f}", f"{self.mean_us:,.1f}"]


@dataclass
class Table:
    """A titled table of strings; ``render`` aligns the columns."""

    title: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        widths = [max(len(str(r[i])) for r in [self.header, *self.rows]) for i in range(len(self.header))]
        line = "  ".join("-" * w for w in widths)
        out = [f"\n{self.title}", line, "  ".join(h.ljust(w) for h, w in zip(self.header, widths, strict=False)), line]
        out += [
            "  ".join(
                str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=False))
            )
            for r in self.rows
        ]
        out += [line, *self.notes]
        return "\n".join(out)


async def measure_latency(
    call: Callable[[], Awaitable[Any]],
    *,
    n: int,
    name: str = "",
    warmup: int = 200,
    check: Callable[[Any], bool] | None = None,
) -> Latency:
    """Await ``call()`` ``n`` times (after ``warmup``); percentiles of the wall time of each await.

    ``check`` validates each result (a benchmark of misses would flatter anyone).
    """
    for _ in range(warmup):
        await call()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(n):
        start = clock()
        result = await call()
        samples.append(clock() - start)
        if check is not None and not check(result):
            raise AssertionError(f"{name}: unexpected result {result!r:.200}")
    samples.sort()
    return Latency(
        name=name,
        n=n,
        p50_us=samples[n // 2] / 1e3,
        p99_us=samples[min(n - 1, int(n * 0.99))] / 1e3,
        mean_us=statistics.fmean(samples) / 1e3,
    )


def cycling(keys: Sequence[str]) -> Callable[[], str]:
    """A function returning the next key of a shuffled cycle (fair across keys)."""
    order = list(keys)
    random.Random(7).shuffle(order)
    state = {"i": 0}

    def next_key() -> str:
        state["i"] = (state["i"] + 1) % len(order)
        return order[state["i"]]

    return next_key


def zipf_stream(*, requests: int, distinct: int, s: float = 1.0, seed: int = 42) -> list[int]:
    """``requests`` key ranks drawn from a Zipf(s) law over ``distinct`` keys (rank 0 most popular)."""
    weights = [1.0 / (rank + 1) ** s for rank in range(distinct)]
    return random.Random(seed).choices(range(distinct), weights=weights, k=requests)


async def measure_hit_rate(call: Callable[[int], Awaitable[tuple[Any, str | None]]], stream: Sequence[int]) -> float:
    """Run ``call(rank)`` for each rank of ``stream``; return the share served from cache.

    ``call`` returns ``(value, layer)`` like ``TieredCache.get_or_compute`` (layer None = computed).
    """
    hits = 0
    for rank in stream:
        _, layer = await call(rank)
        hits += layer is not None
    return hits / len(stream)


# --------------------------------------------------------------------------- sections
async def bench_our_layers(args: argparse.Namespace) -> tuple[Table, dict[str, Latency]]:
    ns = f"bench-{uuid.uuid4().hex[:8]}"
    keys = [f"k{i}" for i in range(args.keys)]
    results: dict[str, Latency] = {}
    with tempfile.TemporaryDirectory(prefix="director-bench-") as tmp:
        layouts = {
            "memory": dict(memory_bytes=100 * 2**20, redis_url=None, disk_path=None),
            "redis": dict(memory_bytes=None, redis_url=args.redis_url, disk_path=None),
            "disk": dict(memory_bytes=None, redis_url=None, disk_path=Path(tmp) / "disk"),
        }
        for layer, layout in layouts.items():
            async with TieredCache(ttl_seconds=600, namespace=ns, **layout) as cache:  # type: ignore[arg-type]
                for key in keys:
                    await cache.set(key, CLASSIFICATION)
                await cache.flush()
                next_key = cycling(keys)
                results[layer] = await measure_latency(
                    lambda: cache.get(next_key()),
                    n=args.n,
                    name=f"ours {layer}",
                    check=lambda hit, layer=layer: hit is not None and hit.layer == layer,
                )
                if layer == "memory":

                    async def compute() -> dict[str, Any]:
                        raise AssertionError("must be a hit")

                    results["memory get_or_compute"] = await measure_latency(
                        lambda: cache.get_or_compute(next_key(), compute),
                        n=args.n,
                        name="ours memory get_or_compute",
                        check=lambda r: r[1] == "memory",
                    )
                if layer == "redis":
                    await cache.clear()
                    if cache.stats().redis_state != "up":
                        raise SystemExit(f"Redis at {args.redis_url} is not reachable")
    table = Table(
        "Our layers: get() hit latency (us), value = classification dict",
        ["layer", "p50", "p99", "mean"],
        [[name.removeprefix("ours "), *lat.row()] for name, lat in results.items()],
    )
    table.notes.append("targets: memory p50 < 50 us, Redis p50 < 1000 us, disk p50 < 2000 us")
    return table, results


async def bench_litellm(args: argparse.Namespace, ours: dict[str, Latency]) -> Table:
    t0 = time.perf_counter()
    from urllib.parse import urlsplit

    from litellm.caching.caching import Cache
    from litellm.caching.in_memory_cache import InMemoryCache
    from litellm.caching.redis_cache import RedisCache

    import_s = time.perf_counter() - t0
    keys = [f"k{i}" for i in range(args.keys)]
    results: dict[str, Latency] = {}

    # Its default bound is 200 *items* (not bytes); size it for our key set.
    in_memory = InMemoryCache(max_size_in_memory=2 * len(keys))
    for key in keys:
        await in_memory.async_set_cache(key, dict(CLASSIFICATION), ttl=600)
    next_key = cycling(keys)
    results["InMemoryCache.async_get_cache"] = await measure_latency(
        lambda: in_memory.async_get_cache(next_key()),
        n=args.n,
        name="litellm InMemoryCache",
        check=lambda v: v is not None,
    )

    # The completion-cache front door: key lookup + ttl/max-age logic around InMemoryCache.
    # Cache(type="local") builds InMemoryCache() with that 200-item default and no way to
    # change it, so this run uses 150 keys.
    local = Cache(type="local")
    local_keys = keys[:150]
    for key in local_keys:
        await local.async_add_cache(dict(CLASSIFICATION), cache_key=key)
    next_local_key = cycling(local_keys)
    results["Cache(local).async_get_cache"] = await measure_latency(
        lambda: local.async_get_cache(cache_key=next_local_key()),
        n=args.n,
        name="litellm Cache(local)",
        check=lambda v: v is not None,
    )

    parts = urlsplit(args.redis_url)
    ns = f"bench-litellm-{uuid.uuid4().hex[:8]}"
    redis_cache = RedisCache(host=parts.hostname, port=parts.port or 6379, namespace=ns)
    try:
        for key in keys:
            await redis_cache.async_set_cache(key, dict(CLASSIFICATION), ttl=600)
        results["RedisCache.async_get_cache"] = await measure_latency(
            lambda: redis_cache.async_get_cache(next_key()),
            n=args.n,
            name="litellm RedisCache",
            check=lambda v: v is not None,
        )
    finally:
        client = redis_cache.init_async_client()
        for key in keys:
            await client.delete(f"{ns}:{key}")
        await redis_cache.disconnect()

    pairs = {
        "InMemoryCache.async_get_cache": "memory",
        "Cache(local).async_get_cache": "memory",
        "RedisCache.async_get_cache": "redis",
    }
    rows = []
    for name, lat in results.items():
        mine = ours[pairs[name]]
        rows.append([name, *lat.row(), f"ours {pairs[name]}", f"{mine.p50_us / lat.p50_us:.2f}"])
    table = Table(
        "LiteLLM 1.110.2 caches: async get hit latency (us), same value",
        ["cache", "p50", "p99", "mean", "compared with", "ours/theirs p50"],
        rows,
    )
    table.notes.append(f"import litellm.caching: {import_s:.1f} s (paid once, at first use)")
    table.notes.append(
        "InMemoryCache returns the stored object itself (shared, mutable); ours decodes a private "
        "copy from bytes on every hit, which is most of its ~2 us."
    )
    table.notes.append("LiteLLM's local cache is bounded by item count: Cache(type='local') keeps 200 entries.")
    table.notes.append("LiteLLM has no disk layer any more (disk_cache_dir is ignored), so disk has no peer.")
    return table


async def bench_hit_rate(args: argparse.Namespace) -> Table:
    distinct, requests = 1000, 10_000
    stream = zipf_stream(requests=requests, distinct=distinct, s=args.zipf_s)
    # Value sizes vary (100 B to 4 kB, larger ones rarer) so that the byte bound matters.
    sizes = [int(100 * (40 ** random.Random(rank).random())) for rank in range(distinct)]
    total_kib = sum(sizes) / 1024
    # Upper bound: every first request of a key misses.
    ceiling = 1 - len(set(stream)) / requests
    rows = []
    for mb in args.memory_mb:
        cache = TieredCache(
            memory_bytes=int(mb * 2**20), redis_url=None, disk_path=None, ttl_seconds=600, namespace="hitrate"
        )

        async def call(rank: int, cache: TieredCache = cache) -> tuple[Any, str | None]:
            async def compute() -> dict[str, str]:
                return {"answer": "x" * sizes[rank]}

            return await cache.get_or_compute(f"key{rank}", compute)

        rate = await measure_hit_rate(call, stream)
        stats = cache.stats()
        rows.append(
            [
                f"{mb:g}",
                f"{rate:.1%}",
                f"{stats.memory_bytes / 1024:,.0f}",
                f"{stats.layers['memory'].entries}",
                f"{stats.memory_bytes / stats.memory_max_bytes:.0%}",
            ]
        )
        await cache.aclose()
    table = Table(
        f"Memory layer hit rate: Zipf(s={args.zipf_s}) stream, {requests:,} requests over {distinct:,} keys",
        ["memory_size_mb", "hit rate", "L1 KiB used", "entries", "of limit"],
        rows,
    )
    table.notes.append(
        f"values 100 B-4 kB, {total_kib:,.0f} KiB in all; "
        f"{len(set(stream))} distinct keys requested, so the hit-rate ceiling is {ceiling:.1%}"
    )
    return table


# --------------------------------------------------------------------------- end to end
E2E_ANSWER = {"flow": "cancel", "confidence": 0.93, "reasoning": "wants to cancel", "entities": {}}
E2E_KEY_ENV = "BENCH_OPENAI_KEY"


def _e2e_config(
    base: str, *, token: str, memory_mb: float | None = None, redis_url: str | None = None, disk: Path | None = None
) -> Any:
    from director_llm.config.loading import parse_config_text

    caching = [
        f"memory_size_mb = {memory_mb}" if memory_mb else "",
        f'redis_url = "{redis_url}"' if redis_url else "",
        f'disk_cache_path = "{disk}"' if disk else "",
    ]
    return parse_config_text(
        f'[llm]\nnum_retries = 0\n[providers.openai]\nmodels = ["gpt-4o-mini"]\nbase_url = "{base}/v1"\n'
        f'api_key_env = "{E2E_KEY_ENV}"\n[intents]\nsystem_prompt = "bench {token}"\n'
        "[caching]\n" + "\n".join(c for c in caching if c) + "\n"
    )


async def _litellm_router_hits(base: str, args: argparse.Namespace, n: int) -> dict[str, Latency]:
    """LiteLLM Router's own response cache (``cache_responses=True``): hit latency, local and Redis."""
    from urllib.parse import urlsplit

    import litellm
    from litellm.caching.caching import Cache

    results: dict[str, Latency] = {}
    messages = [{"role": "user", "content": "quero cancelar minha assinatura"}]
    parts = urlsplit(args.redis_url)
    for kind in ("local", "redis"):
        # The Router uses the process-wide ``litellm.cache`` (it only creates one when unset).
        if kind == "local":
            litellm.cache = Cache(type="local")
        else:
            litellm.cache = Cache(
                type="redis",
                host=parts.hostname,
                port=str(parts.port or 6379),
                namespace=f"bench-litellm-{uuid.uuid4().hex[:8]}",
                ttl=120,
            )
        router = litellm.Router(
            model_list=[
                {
                    "model_name": "g",
                    "litellm_params": {
                        "model": "openai/gpt-4o-mini",
                        "api_base": f"{base}/v1",
                        "api_key": "sk-bench-0123456789",
                    },
                }
            ],
            cache_responses=True,
            num_retries=0,
            timeout=10,
        )
        await router.acompletion(model="g", messages=messages, temperature=0)
        await asyncio.sleep(0.2)  # LiteLLM writes its cache from a background task

        def hit_check(r: Any) -> bool:
            return bool((getattr(r, "_hidden_params", None) or {}).get("cache_hit"))

        results[kind] = await measure_latency(
            lambda router=router: router.acompletion(model="g", messages=messages, temperature=0),
            n=n,
            name=f"litellm {kind}",
            warmup=50,
            check=hit_check,
        )
    litellm.cache = None
    return results


async def bench_end_to_end(args: argparse.Namespace) -> Table:
    """``classify_intent`` and ``acompletion`` through a Director, each cache layer vs LiteLLM."""
    os.environ.setdefault(E2E_KEY_ENV, "sk-bench-0123456789")
    from director_llm import Director
    from director_llm.testing import FakeProviderServer, Reply

    server = FakeProviderServer()
    base = server.start()
    server.set_default(Reply(json=E2E_ANSWER))
    token = uuid.uuid4().hex[:8]
    texts = [f"quero cancelar minha assinatura numero {i}" for i in range(args.e2e_keys)]
    chat = [{"role": "user", "content": "quero cancelar minha assinatura"}]
    n = args.e2e_n
    lat: dict[str, Latency] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="director-bench-e2e-") as tmp:
            disk = Path(tmp) / "disk"
            # Fill Redis and disk once (one model call per text), then read each layer alone.
            async with Director(
                _e2e_config(base, token=token, memory_mb=64, redis_url=args.redis_url, disk=disk)
            ) as filler:
                for text in texts:
                    await filler.classify_intent(text)
                await filler.acompletion(chat, temperature=0)
                namespace = filler.cache.namespace
            layouts = {"memory": {"memory_mb": 64}, "redis": {"redis_url": args.redis_url}, "disk": {"disk": disk}}
            for layer, layout in layouts.items():
                async with Director(_e2e_config(base, token=token, **layout)) as d:
                    if layer == "memory":
                        for text in texts:  # L1 is per process: fill it (from the model)
                            await d.classify_intent(text)
                    next_text = cycling(texts)
                    lat[f"classify_intent from {layer}"] = await measure_latency(
                        lambda d=d, next_text=next_text: d.classify_intent(next_text()),
                        n=n,
                        name=f"classify {layer}",
                        check=lambda r, layer=layer: r.route.cache == layer,
                    )
                    if layer == "memory":
                        await d.acompletion(chat, temperature=0)
                        lat["acompletion (chat) from memory"] = await measure_latency(
                            lambda: d.acompletion(chat, temperature=0),
                            n=n,
                            name="chat memory",
                            check=lambda r: r._hidden_params["director_route"]["cache"] == "memory",
                        )
                        lat["classify_intent uncached (fake provider)"] = await measure_latency(
                            lambda d=d, next_text=next_text: d.classify_intent(next_text(), cache=False),
                            n=max(50, n // 10),
                            name="classify uncached",
                            warmup=20,
                            check=lambda r: r.route.cache is None,
                        )
                        lat["acompletion uncached (fake provider)"] = await measure_latency(
                            lambda: d.acompletion(chat, temperature=0, cache=False),
                            n=max(50, n // 10),
                            name="chat uncached",
                            warmup=20,
                        )
                    if layer == "redis":
                        await d.cache.clear()
            if not args.no_litellm:
                theirs = await _litellm_router_hits(base, args, n)
                lat["LiteLLM Router cache hit, local"] = theirs["local"]
                lat["LiteLLM Router cache hit, redis"] = theirs["redis"]
            zipf = await _e2e_hit_rate(base, token, args)
    finally:
        server.stop()
        from director_llm.testing.pytest_plugin import delete_prefix

        delete_prefix(args.redis_url, f"director:v1:{namespace}:")

    uncached = lat["classify_intent uncached (fake provider)"].p50_us
    targets = {"memory": 50, "redis": 1000, "disk": 2000}
    rows = []
    for name, l in lat.items():
        layer = next((k for k in targets if name == f"classify_intent from {k}"), None)
        verdict = ("ok" if l.p50_us < targets[layer] else "SLOW") + f" (< {targets[layer]:,})" if layer else ""
        peer = ""
        if name.startswith("classify_intent from") and not args.no_litellm:
            litellm_peer = lat["LiteLLM Router cache hit, " + ("redis" if layer == "redis" else "local")]
            peer = f"{l.p50_us / litellm_peer.p50_us:.2f}"
        rows.append([name, *l.row(), f"{l.p50_us / uncached:.4f}", peer, verdict])
    table = Table(
        f"End to end through Director (n={n}, {len(texts)} distinct texts), latency in us",
        ["path", "p50", "p99", "mean", "/ uncached classify", "/ LiteLLM Router hit", "target p50"],
        rows,
    )
    table.notes.append(
        f"uncached = a real HTTP call to the local fake provider (no model time): "
        f"the saving against a real provider is larger. Latency saved by an L1 hit: "
        f"{1 - lat['classify_intent from memory'].p50_us / uncached:.1%} of the uncached call."
    )
    table.notes.append(zipf)
    return table


async def _e2e_hit_rate(base: str, token: str, args: argparse.Namespace) -> str:
    """Zipf stream of classify_intent calls through a memory-only Director: hit rate, L1 bytes."""
    from director_llm import Director

    stream = zipf_stream(requests=args.e2e_zipf_requests, distinct=args.e2e_zipf_distinct, s=args.zipf_s)
    mb = args.e2e_memory_mb
    async with Director(_e2e_config(base, token=token + "z", memory_mb=mb)) as d:
        hits = 0
        for rank in stream:
            hits += (await d.classify_intent(f"mensagem numero {rank}: quero cancelar")).route.cache is not None
        stats = d.cache_stats()
    ceiling = 1 - len(set(stream)) / len(stream)
    return (
        f"Zipf(s={args.zipf_s}) {len(stream):,} classify_intent calls over {args.e2e_zipf_distinct:,} texts, "
        f"memory_size_mb={mb:g}: hit rate {hits / len(stream):.1%} (ceiling {ceiling:.1%}), "
        f"L1 {stats.memory_bytes / 1024:,.0f} KiB in {stats.layers['memory'].entries} entries "
        f"({stats.memory_bytes / stats.memory_max_bytes:.0%} of the limit)."
    )


#: Extra sections (coroutines taking the parsed args and returning a Table); see docstring.
SECTIONS: list[Callable[[argparse.Namespace], Awaitable[Table]]] = [bench_end_to_end]


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--n", type=int, default=3000, help="timed gets per cache")
    parser.add_argument("--keys", type=int, default=1000, help="distinct keys in the latency runs")
    parser.add_argument("--memory-mb", type=float, nargs="+", default=[0.1, 0.25, 0.5, 1, 100])
    parser.add_argument("--zipf-s", type=float, default=1.0)
    parser.add_argument("--no-litellm", action="store_true", help="skip LiteLLM (its import takes seconds)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--e2e-n", type=int, default=2000, help="timed calls per end-to-end path")
    parser.add_argument("--e2e-keys", type=int, default=200, help="distinct texts in the end-to-end latency runs")
    parser.add_argument("--e2e-zipf-requests", type=int, default=10_000)
    parser.add_argument("--e2e-zipf-distinct", type=int, default=1_000)
    parser.add_argument("--e2e-memory-mb", type=float, default=1.0, help="L1 limit of the end-to-end Zipf run")
    parser.add_argument("--no-e2e", action="store_true", help="skip the end-to-end Director section")
    args = parser.parse_args(argv)

    tables = []
    table, ours = await bench_our_layers(args)
    tables.append(table)
    print(table.render(), flush=True)
    if not args.no_litellm:
        tables.append(await bench_litellm(args, ours))
        print(tables[-1].render(), flush=True)
    for section in (bench_hit_rate, *(sec for sec in SECTIONS if not (args.no_e2e and sec is bench_end_to_end))):
        tables.append(await section(args))
        print(tables[-1].render(), flush=True)
    if args.json:
        args.json.write_text(json.dumps([asdict(t) for t in tables], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
