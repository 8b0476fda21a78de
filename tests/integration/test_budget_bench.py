"""The benchmark script runs, and a reserve+settle costs exactly two Redis round trips."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_budget.py"


def test_bench_reports_two_round_trips_per_request(redis_url: str) -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--url", redis_url, "-n", "200", "--warmup", "5", "--concurrency", "4", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(out.stdout)
    # One EVALSHA for reserve, one for settle: never read-then-write.
    assert result["round_trips_per_request_client"] == 2.0
    assert result["requests"] == 200
    assert 0 < result["redis_p50_ms"] <= result["redis_p99_ms"]
