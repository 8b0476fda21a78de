"""How fast is `director-llm check-config` next to `python -c "import litellm"`? (same run)

    .venv/bin/python scripts/bench_check_config.py [--runs 5] [--config configs/examples/seed.toml]

Each command runs as a fresh subprocess (what a user pays), best and median wall time printed
with the ratio. check-config must stay well under 0.5 s: it never imports LiteLLM.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def wall(cmd: list[str], runs: int) -> list[float]:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True)
        times.append(time.perf_counter() - t)
        if proc.returncode != 0:
            sys.exit(f"{cmd} failed: {proc.stderr.decode()[-500:]}")
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--config", default="configs/examples/seed.toml")
    args = ap.parse_args()
    exe = Path(sys.executable).with_name("director-llm")
    rows = {
        "director-llm check-config": wall([str(exe), "check-config", args.config], args.runs),
        "director-llm check-config --json": wall([str(exe), "check-config", args.config, "--json"], args.runs),
        'python -c "import litellm"': wall([sys.executable, "-c", "import litellm"], max(2, args.runs // 2)),
    }
    base = statistics.median(rows['python -c "import litellm"'])
    print(f"{'command':38} {'best s':>8} {'median s':>9} {'x import litellm':>17}")
    for name, t in rows.items():
        print(f"{name:38} {min(t):8.3f} {statistics.median(t):9.3f} {statistics.median(t) / base:17.3f}")


if __name__ == "__main__":
    main()
