"""``director-llm serve`` as a user runs it (real subprocess): the missing extra, a bad config
and missing tokens exit 2 without a traceback; ``--workers 2`` serves the openai client."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from director_llm.testing import Reply

KEY_ENV = "TEST_SERVE_CLI_KEY"
CLI = os.path.join(os.path.dirname(sys.executable), "director-llm")


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, KEY_ENV: "sk-serve-cli-0123456789", "LITELLM_LOCAL_MODEL_COST_MAP": "True", **extra}


def _config(tmp_path: Path, base: str, extra: str = "") -> Path:
    path = tmp_path / "director.toml"
    path.write_text(f"""
[llm]
timeout_seconds = 10
[providers.openai]
models = ["gpt-4o-mini"]
base_url = "{base}/v1"
api_key_env = "{KEY_ENV}"
{extra}
""")
    return path


def _no_traceback(text: str) -> None:
    assert "Traceback" not in text


def test_without_the_extra_it_says_what_to_install(tmp_path, fake_provider) -> None:
    blocker = tmp_path / "blocked"
    (blocker / "uvicorn").mkdir(parents=True)
    (blocker / "uvicorn" / "__init__.py").write_text("raise ImportError('No module named uvicorn')\n")
    path = os.pathsep.join(p for p in (str(blocker), os.environ.get("PYTHONPATH", "")) if p)
    r = subprocess.run(
        [CLI, "serve", "--config", str(_config(tmp_path, fake_provider.base_url))],
        capture_output=True,
        text=True,
        env=_env(PYTHONPATH=path),
        timeout=60,
    )
    assert r.returncode == 2
    assert "pip install 'director-llm[serve]'" in r.stderr
    _no_traceback(r.stderr + r.stdout)


def test_bad_config_and_missing_tokens_exit_2(tmp_path, fake_provider) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[llm]\ntimeout_seconds = -1\n")
    r = subprocess.run([CLI, "serve", "--config", str(bad)], capture_output=True, text=True, env=_env(), timeout=60)
    assert r.returncode == 2 and "timeout_seconds" in r.stderr
    _no_traceback(r.stderr)
    cfg = _config(tmp_path, fake_provider.base_url, '[serve]\napi_keys_env = "TEST_SERVE_CLI_TOKENS"')
    env = _env()
    env.pop("TEST_SERVE_CLI_TOKENS", None)
    r = subprocess.run([CLI, "serve", "--config", str(cfg)], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2 and "TEST_SERVE_CLI_TOKENS" in r.stderr
    _no_traceback(r.stderr)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_workers_serve_the_openai_client(tmp_path, fake_provider, redis_url, redis_prefix) -> None:
    fake_provider.script("gpt-4o-mini", Reply("from a worker", usage=(3, 3)), repeat=True)
    cfg = _config(tmp_path, fake_provider.base_url, f'[caching]\nredis_url = "{redis_url}"')
    port = _free_port()
    proc = subprocess.Popen(
        [CLI, "serve", "--config", str(cfg), "--port", str(port), "--workers", "2", "--state-prefix", redis_prefix],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.3)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0, timeout=30)
        for _ in range(4):
            answer = client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
            assert answer.choices[0].message.content == "from a worker"
        stream = client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}], stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "from a worker"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            _, err = proc.communicate()
    assert proc.returncode == 0, err
    _no_traceback(err)
