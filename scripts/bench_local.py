"""Latency of the embedded local tier, and how long it blocks the event loop.

    .venv/bin/python scripts/bench_local.py [--config configs/director.toml] [--calls 400]
        [--cache-dir DIR] [--texts tests/data/pt_builtin_flows.jsonl]

What it measures (a benchmark, not a test: run it on a quiet machine and read the load
average it prints next to the numbers):

1. ``director.classify_intent(text, cache=False)`` warm: ``--calls`` calls over the texts of
   ``--texts`` (cycled), after 20 warm-up calls; p50 / p99 / max in ms.
2. ``LocalTier.predict`` alone on the same texts (the model's share of 1.).
3. Event-loop lag while classifying: a ticker task sleeps 1 ms in a loop and records how
   late it wakes up, while another task runs the same classifications back to back, each
   started by a timer (``await asyncio.sleep(0.0001)``, like a request arriving from the
   network, rather than ``sleep(0)``, whose ready-queue slot would always run before the
   ticker's timer and make every lag two inferences long). The loop is "never blocked
   longer than one inference" when the worst lag is at most the slowest single inference
   (plus the ticker's own 1 ms).
4. The same lag during the first (cold) load, which runs in a worker thread.
5. ``--cli N``: the wall time of N ``director-llm classify "..."`` processes with the model
   already cached (what a user waits for), after one untimed call that trains and caches it;
   plus a one-process breakdown (imports, config, model load, first prediction).

The default config has only the local tier (no LLM tier), so every call is answered locally.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def pct(values: list[float], q: float) -> float:
    from director_llm.local.evaluation import percentile

    return percentile(values, q) or 0.0


def summary(name: str, values: list[float]) -> str:
    return (
        f"{name:<44} n={len(values):<4} p50 {pct(values, 50):7.3f} ms  p99 {pct(values, 99):7.3f} ms  "
        f"max {max(values):7.3f} ms  mean {statistics.fmean(values):7.3f} ms"
    )


async def ticker(lags: list[float], stop: asyncio.Event, period: float = 0.001) -> None:
    """Record how late each ``sleep(period)`` wakes up, in ms, until ``stop`` is set."""
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(period)
        lags.append(max(0.0, (time.perf_counter() - started - period) * 1000))


async def run(args: argparse.Namespace) -> int:
    from director_llm.director import Director
    from director_llm.local import load_training_file

    texts = [t for t, _ in load_training_file(args.texts)]
    director = Director.from_file(str(args.config))
    tier = director.local_tier
    if tier is None:
        print(f"{args.config} has no local tier")
        return 2
    async with director:
        # 4. cold load in a worker thread, with the ticker running.
        lags: list[float] = []
        stop = asyncio.Event()
        tick = asyncio.create_task(ticker(lags, stop))
        started = time.perf_counter()
        await tier.aload()
        load_s = time.perf_counter() - started
        stop.set()
        await tick
        from_cache = getattr(tier.model, "loaded_from_cache", False)
        print(
            f"first load: {load_s:.3f} s ({'from the disk cache' if from_cache else 'trained'}); "
            f"loop lag during it: max {max(lags or [0]):.2f} ms, p99 {pct(lags, 99):.2f} ms over {len(lags)} ticks"
        )

        for text in texts[:20]:  # warm-up
            await director.classify_intent(text, cache=False)
        calls = [texts[i % len(texts)] for i in range(args.calls)]

        # 1. classify_intent, warm, cache off.
        lat: list[float] = []
        flows: dict[str, int] = {}
        for text in calls:
            started = time.perf_counter()
            result = await director.classify_intent(text, cache=False)
            lat.append((time.perf_counter() - started) * 1000)
            flows[result.route.tier] = flows.get(result.route.tier, 0) + 1
        print(summary("director.classify_intent (warm, cache off)", lat))
        print(f"{'':<44} answered by tier: {flows}")

        # 2. predict alone.
        plat: list[float] = []
        for text in calls:
            started = time.perf_counter()
            tier.predict(text)
            plat.append((time.perf_counter() - started) * 1000)
        print(summary("LocalTier.predict", plat))

        # 3. loop lag while classifying.
        lags = []
        inf: list[float] = []
        stop = asyncio.Event()
        tick = asyncio.create_task(ticker(lags, stop))
        await asyncio.sleep(0.01)
        for text in calls:
            started = time.perf_counter()
            await director.classify_intent(text, cache=False)
            inf.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.0001)
        stop.set()
        await tick
        worst = max(inf)
        print(summary("event-loop lag while classifying", lags))
        verdict = "yes" if max(lags) <= worst + 1.0 else "NO"
        print(
            f"loop blocked at most one inference: {verdict} (worst lag {max(lags):.2f} ms, "
            f"slowest inference {worst:.2f} ms)"
        )
    return 0


CLI_TEXTS = ("quero criar uma tarefa para amanhã", "cancela a reunião", "oi, tudo bem?", "hmm")


def cli(args: argparse.Namespace) -> None:
    import subprocess

    exe = str(Path(sys.executable).with_name("director-llm"))
    cmd = [exe, "classify", CLI_TEXTS[0], "--config", str(args.config)]
    subprocess.run(cmd, check=True, capture_output=True)  # trains and caches the model once
    walls = []
    for i in range(args.cli):
        cmd[2] = CLI_TEXTS[i % len(CLI_TEXTS)]
        started = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        walls.append(time.perf_counter() - started)
    print(
        f"{'director-llm classify (model cached), wall':<44} n={len(walls):<4} p50 {pct(walls, 50):7.3f} s   "
        f"min {min(walls):7.3f} s   max {max(walls):7.3f} s"
    )
    floor = []
    for _ in range(args.cli):  # the same CLI start-up and config loading, no model: the floor
        started = time.perf_counter()
        subprocess.run([exe, "check-config", str(args.config)], check=True, capture_output=True)
        floor.append(time.perf_counter() - started)
    print(
        f"{'director-llm check-config (the floor), wall':<44} n={len(floor):<4} p50 {pct(floor, 50):7.3f} s   "
        f"min {min(floor):7.3f} s   max {max(floor):7.3f} s"
    )
    code = f"""
import time
t0 = time.perf_counter()
import director_llm.cli.app, director_llm.cli.cmd_classify
t1 = time.perf_counter()
from director_llm.director import Director
d = Director.from_file({str(args.config)!r})
t2 = time.perf_counter()
tier = d.local_tier
tier.model
t3 = time.perf_counter()
tier.predict("oi")
t4 = time.perf_counter()
print(f"imports {{t1 - t0:.3f}} s, Director.from_file (imports + config) {{t2 - t1:.3f}} s, "
      f"model + encoder load {{t3 - t2:.3f}} s, first prediction {{(t4 - t3) * 1000:.1f}} ms")
"""
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    print(f"{'one process, broken down':<44} {done.stdout.strip()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "director.toml")
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--texts", type=Path, default=ROOT / "tests" / "data" / "pt_builtin_flows.jsonl")
    ap.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="DIRECTOR_CACHE_DIR for the trained model (default: a fresh temp dir, "
        "so the first load trains; pass a dir twice to time a disk-cache load)",
    )
    ap.add_argument("--cli", type=int, default=0, help="also time N `director-llm classify` processes")
    args = ap.parse_args()
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="bench-local-"))
    os.environ["DIRECTOR_CACHE_DIR"] = str(cache)
    print(f"$ {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} on {os.cpu_count()} cores; "
        f"DIRECTOR_CACHE_DIR={cache}"
    )
    code = asyncio.run(run(args))
    if args.cli:
        cli(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
