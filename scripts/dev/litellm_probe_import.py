"""Probe items 12-13: import cost, network at import/use, logging noise and key leakage.

Run as: .venv/bin/python scripts/dev/litellm_probe_import.py
It spawns child interpreters so each measurement starts cold.
"""

import os
import subprocess
import sys
import textwrap

PY = sys.executable


def child(code: str, env_extra: dict | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITELLM")}
    env.update(env_extra or {})
    out = subprocess.run([PY, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=300)
    return out.stdout + ("\nSTDERR:\n" + out.stderr if out.stderr.strip() else "")


# 12a. wall time + RSS + module count
print(
    child("""
    import os, time, resource, sys
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    t = time.perf_counter(); import litellm; dt = time.perf_counter() - t
    print(f"import litellm: {dt:.2f}s, maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024:.0f} MiB, modules {len(sys.modules)}")
    t = time.perf_counter(); litellm.Router(model_list=[{"model_name": "x", "litellm_params": {"model": "openai/x", "api_key": "k"}}]); dt = time.perf_counter() - t
    print(f"first Router(...): {dt:.2f}s, maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024:.0f} MiB, modules {len(sys.modules)}")
""")
)

# 12b. -X importtime total
r = subprocess.run(
    [PY, "-X", "importtime", "-c", "import litellm"],
    capture_output=True,
    text=True,
    env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
)
lines = [ln for ln in r.stderr.splitlines() if ln.startswith("import time:") and "|" in ln]
top = [ln for ln in lines if ln.split("|")[2].rstrip() in (" litellm",)]
print(
    "-X importtime, cumulative for 'litellm':",
    top[-1].split("|")[1].strip() if top else "?",
    "us;",
    len(lines),
    "modules",
)

# 12c. network attempts: record every socket connect / getaddrinfo during import, Router build and helpers
NET = """
    import os, socket
    {env}
    calls = []
    _orig_connect = socket.socket.connect
    def connect(self, addr):
        calls.append(("connect", addr)); return _orig_connect(self, addr)
    socket.socket.connect = connect
    _orig_gai = socket.getaddrinfo
    def gai(*a, **k):
        calls.append(("getaddrinfo", a[0], a[1])); return _orig_gai(*a, **k)
    socket.getaddrinfo = gai
    import litellm
    print("after import:", calls)
    litellm.Router(model_list=[{{"model_name": "x", "litellm_params": {{"model": "openai/x", "api_key": "k"}}}}])
    print("after Router:", calls)
    litellm.token_counter(model="gpt-4o", messages=[{{"role": "user", "content": "hi"}}])
    litellm.get_model_info("ollama_chat/llama3.2:1b")
    print("after token_counter/get_model_info(ollama):", calls)
"""
print(
    "with LITELLM_LOCAL_MODEL_COST_MAP=True:",
    child(NET.format(env='os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"')).strip()[:1500],
)
print("WITHOUT the env var:", child(NET.format(env="")).strip()[:1500])
