"""Load `director-llm serve --workers N` on loopback while a deployment dies and comes back.

    PYTHONPATH=. .venv/bin/python scripts/load_serve.py [--seconds 30] [--concurrency 16] [--workers 4]

Set-up (every part real, on this machine): a private redis-server shared by the workers; two
fake provider servers (`python -m director_llm.testing.servers`), one per deployment of the
`small` tier (`a/alpha`, `b/beta`); `director-llm serve --workers N` with
`[llm] state_redis_url` and an hourly budget; clients sending OpenAI requests (75 % JSON,
25 % `stream: true`) at a fixed concurrency for `--seconds`.

Faults: at 1/3 of the run the process serving `b/beta` is killed (connection refused); at
2/3 it is started again on the same port (the breaker's half-open trial lets it back).

Reported: p50/p99 latency, throughput, error rate by status, settled spend vs the budget
(and what is still held), failed attempts on the dead deployment before every worker skipped
it (the breaker's shared counter in Redis, sampled every 20 ms) and how long that took,
against the targets (0 failed requests another deployment could serve, spend <= budget, the
dead deployment skipped by all workers within `failure_threshold` failures in total).
Prints a markdown table and, with --json, one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from director_llm.testing.redis import RedisServer, free_port

PY = sys.executable
PREFIX = "load:"
THRESHOLD = 3
COOLDOWN_S = 4.0


def config_text(redis_url: str, port_a: int, port_b: int, budget: float) -> str:
    return f"""
[llm]
budget_per_hour = {budget}
timeout_seconds = 30
attempt_timeout_seconds = 10
first_token_timeout_seconds = 10
state_redis_url = "{redis_url}"
[llm.circuit_breaker]
failure_threshold = {THRESHOLD}
cooldown_seconds = {COOLDOWN_S}
[providers.a]
kind = "openai"
models = ["alpha"]
base_url = "http://127.0.0.1:{port_a}/v1"
api_key_env = "LOAD_KEY"
tier = "small"
[providers.a.overrides.alpha]
input_price_per_million = 100.0
output_price_per_million = 200.0
[providers.b]
kind = "openai"
models = ["beta"]
base_url = "http://127.0.0.1:{port_b}/v1"
api_key_env = "LOAD_KEY"
tier = "small"
[providers.b.overrides.beta]
input_price_per_million = 100.0
output_price_per_million = 200.0
"""


SCENARIO = {"default": {"reply": {"text": "a fake answer of about ten words for the load run", "delay": 0.01}}}


def start_fake(port: int, scenario: Path, env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen(
        [PY, "-m", "director_llm.testing.servers", "--port", str(port), "--scenario", str(scenario)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("LISTENING"):
        raise RuntimeError(f"fake server on {port} did not start: {line!r}")
    return proc


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Results:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: dict[str, int] = {}
        self.served_by: dict[str, int] = {}
        self.failures: list[tuple[float, str, str]] = []


async def client_loop(
    client: httpx.AsyncClient, url: str, until: float, started: float, results: Results, rng: random.Random
) -> None:
    n = 0
    while time.monotonic() < until:
        n += 1
        stream = rng.random() < 0.25
        body = {
            "model": "small",
            "messages": [{"role": "user", "content": f"question {rng.random():.6f}: what is the answer?"}],
            "max_tokens": 16,
            "stream": stream,
        }
        t0 = time.monotonic()
        key = "error"
        detail = ""
        try:
            if stream:
                async with client.stream("POST", url, json=body) as r:
                    text = "".join([line async for line in r.aiter_lines()])
                    key = str(r.status_code)
                    if r.status_code == 200 and ("[DONE]" not in text or '"error"' in text):
                        key = "stream_error"
                    if key != "200":
                        detail = text[-300:]
                    served = r.headers.get("x-director-deployment", "-")
            else:
                r = await client.post(url, json=body)
                key = str(r.status_code)
                if key != "200":
                    detail = r.text[:300]
                served = r.headers.get("x-director-deployment", "-")
        except httpx.HTTPError as exc:
            key = type(exc).__name__
            served = "-"
        elapsed = time.monotonic() - t0
        results.statuses[key] = results.statuses.get(key, 0) + 1
        if key == "200":
            results.latencies.append(elapsed)
            results.served_by[served] = results.served_by.get(served, 0) + 1
        else:
            results.failures.append((round(t0 - started, 2), key, detail))


async def sample_breaker(redis_url: str, name: str, until: float, started: float, out: list) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        while time.monotonic() < until:
            row = await client.hmget(f"{PREFIX}breaker:{name}", "failures", "opens", "until")
            out.append((time.time(), *(None if v is None else float(v) for v in row)))
            await asyncio.sleep(0.02)
    finally:
        await client.aclose()


async def spend(cfg: Path) -> dict:
    from director_llm.director import Director

    async with Director.from_file(cfg, state_prefix=PREFIX) as d:
        report = await d.spend()
    hour = report.windows["hour"]
    return {
        "limit": hour.limit_usd,
        "spent": hour.spent_usd,
        "held": hour.reserved_usd,
        "requests": report.total.requests,
    }


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def run(args: argparse.Namespace) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="load_serve_"))
    env = {**os.environ, "LOAD_KEY": "sk-load-0123456789", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    scenario = tmp / "scenario.json"
    scenario.write_text(json.dumps(SCENARIO))
    redis = RedisServer()
    redis.start()
    port_a, port_b, port = free_port(), free_port(), free_port()
    fake_a = start_fake(port_a, scenario, env)
    fake_b = start_fake(port_b, scenario, env)
    cfg = tmp / "director.toml"
    cfg.write_text(config_text(redis.url, port_a, port_b, args.budget))
    serve = subprocess.Popen(
        [
            PY,
            "-m",
            "director_llm",
            "serve",
            "--config",
            str(cfg),
            "--port",
            str(port),
            "--workers",
            str(args.workers),
            "--state-prefix",
            PREFIX,
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "serve.log", "w"),
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=args.concurrency * 2)) as client:
            deadline = time.monotonic() + 180
            while True:  # every worker warmed up: a few health checks in a row
                try:
                    ok = all([(await client.get(f"{base}/health")).status_code == 200 for _ in range(args.workers * 2)])
                    if ok:
                        break
                except httpx.HTTPError:
                    pass
                if serve.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"serve did not come up; see {tmp / 'serve.log'}")
                await asyncio.sleep(0.5)
            await asyncio.sleep(3)  # workers started after the first healthy one finish warming up
            results = Results()
            samples: list = []
            b_requests: list[dict] = []
            started = time.monotonic()
            until = started + args.seconds
            rng = random.Random(7)
            tasks = [
                asyncio.create_task(
                    client_loop(
                        client, f"{base}/v1/chat/completions", until, started, results, random.Random(rng.random())
                    )
                )
                for _ in range(args.concurrency)
            ]
            tasks.append(asyncio.create_task(sample_breaker(redis.url, "b/beta", until, started, samples)))
            control = f"http://127.0.0.1:{port_b}/_fake/scenario"
            await asyncio.sleep(args.seconds / 3)
            died_wall = time.time()
            died_at = time.monotonic() - started
            if args.fault == "kill":
                stop(fake_b, signal.SIGKILL)
            else:
                await client.post(control, json={"default": {"fault": "status", "status_code": 503}})
            await asyncio.sleep(args.seconds / 3)
            back_at = time.monotonic() - started
            if args.fault == "kill":
                fake_b = start_fake(port_b, scenario, env)
            else:
                b_requests = (await client.get(f"http://127.0.0.1:{port_b}/_fake/requests")).json()
                await client.post(control, json=SCENARIO)
            await asyncio.gather(*tasks)
            elapsed = time.monotonic() - started
        await asyncio.sleep(1.5)  # batched usage flushed by the workers
        money = await spend(cfg)
    finally:
        stop(serve, signal.SIGINT)
        stop(fake_a)
        stop(fake_b)
        redis.close()
    breaker = breaker_story(samples, died_wall, b_requests if args.fault == "503" else None)
    total = sum(results.statuses.values())
    ok = results.statuses.get("200", 0)
    budget_refused = results.statuses.get("402", 0)
    failed_servable = total - ok - budget_refused
    return {
        "workers": args.workers,
        "concurrency": args.concurrency,
        "seconds": round(elapsed, 1),
        "requests": total,
        "ok": ok,
        "throughput_rps": round(ok / elapsed, 1),
        "p50_ms": round(pct(results.latencies, 0.50) * 1000, 1),
        "p99_ms": round(pct(results.latencies, 0.99) * 1000, 1),
        "statuses": results.statuses,
        "served_by": results.served_by,
        "error_rate": round((total - ok) / total, 4) if total else 0.0,
        "failed_servable": failed_servable,
        "budget_refused": budget_refused,
        "spend": money,
        "b_died_at_s": round(died_at, 2),
        "b_back_at_s": round(back_at, 2),
        "fault": args.fault,
        "failure_threshold": THRESHOLD,
        **breaker,
        "first_failures": [f for f in results.failures if f[1] != "402"][:10],
    }


def breaker_story(samples: list, died: float, arrivals: list[dict] | None) -> dict:
    """What the shared breaker of b/beta did after it died. ``samples``: (wall time, failures,
    opens, open_until) read from Redis every 20 ms; ``arrivals``: the requests b received
    (503 mode). The window ends when the first cool-down does (then the half-open trial is
    one deliberate attempt per cool-down)."""
    opened = next((s for s in samples if s[2] and s[2] >= 1), None)
    if opened is None:
        return {"b_opened_after_s": None}
    t_open = opened[3] - COOLDOWN_S  # the Lua script set until = now + cooldown when it opened
    window_end = t_open + COOLDOWN_S - 0.05
    in_window = [s for s in samples if s[0] <= window_end and s[1] is not None]
    story = {
        "b_opened_after_s": round(t_open - died, 3),
        "b_failures_when_opened": int(opened[1]),
        "b_failures_recorded_before_trial": int(max(s[1] for s in in_window)),
    }
    if arrivals is not None:
        times = sorted(r["received_at"] for r in arrivals if died <= r["received_at"] <= window_end)
        after_open = [t for t in times if t > t_open]
        # The first sample (every 20 ms) that shows a failure: what arrived later was admitted
        # while b was known to be failing (one at a time), the rest was in flight already.
        failing = next((s[0] for s in samples if s[0] >= died and s[1]), None)
        if failing is not None:
            story["b_requests_after_first_failure_seen"] = len([t for t in times if t > failing])
        story.update(
            {
                "b_requests_until_skipped": len(times),
                "b_requests_before_open": len(times) - len(after_open),
                "b_requests_after_open": len(after_open),
                "b_last_request_after_open_s": round(after_open[-1] - t_open, 3) if after_open else 0.0,
            }
        )
    return story


def table(r: dict) -> str:
    spend = r["spend"]
    rows = [
        ("workers x client concurrency", f"{r['workers']} x {r['concurrency']}, {r['seconds']} s"),
        ("requests (ok)", f"{r['requests']} ({r['ok']})"),
        ("throughput (answered)", f"{r['throughput_rps']} req/s"),
        ("latency p50 / p99", f"{r['p50_ms']} ms / {r['p99_ms']} ms"),
        ("error rate", f"{r['error_rate']:.2%} ({', '.join(f'{k}: {v}' for k, v in sorted(r['statuses'].items()))})"),
        ("failed requests another deployment could serve", f"{r['failed_servable']} (target 0)"),
        ("refused for budget (402)", str(r["budget_refused"])),
        ("served by", ", ".join(f"{k}: {v}" for k, v in sorted(r["served_by"].items()))),
        (
            "settled spend vs budget",
            f"${spend['spent']:.4f} of ${spend['limit']:.4f}, ${spend['held']:.4f} still held (target spend <= budget)",
        ),
        (
            "b/beta dies / comes back at",
            f"{r['b_died_at_s']} s / {r['b_back_at_s']} s",
        ),
        ("how b/beta died", "answers 503" if r["fault"] == "503" else "process killed (connection refused)"),
        (
            "shared breaker opened, after the death",
            f"{r['b_opened_after_s']} s, at {r.get('b_failures_when_opened')} failures",
        ),
        (
            "failures recorded on b/beta before its first half-open trial",
            f"{r.get('b_failures_recorded_before_trial')} (target <= failure_threshold = {r['failure_threshold']})",
        ),
    ]
    if "b_requests_until_skipped" in r:
        rows += [
            (
                "requests b/beta received: before the breaker opened / after (stale workers)",
                f"{r['b_requests_before_open']} / {r['b_requests_after_open']}, the last "
                f"{r['b_last_request_after_open_s']} s after it opened",
            ),
            (
                "requests b/beta received after its first failure was seen (sampled every 20 ms)",
                f"{r.get('b_requests_after_first_failure_seen')} (one at a time; the rest were in flight)",
            ),
        ]
    lines = ["| measure | value |", "| --- | --- |"] + [f"| {a} | {b} |" for a, b in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--budget", type=float, default=3.0, help="[llm] budget_per_hour in USD")
    parser.add_argument(
        "--fault",
        choices=("503", "kill"),
        default="503",
        help="how b/beta dies: answers 503 (scripted; its arrivals are recorded) or its process is killed",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(table(result))
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
