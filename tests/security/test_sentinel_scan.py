"""The sentinel scan (issue 12, "Redaction"): no configured secret value is printed anywhere.

Sentinel values (every one contains ``SENTINEL-<tag>``) are put where secrets live: API keys
under variable names with and without KEY/TOKEN in them (``ACME_TENANT``, ``TENANT_CRED``), a Redis password
in ``redis_url`` (a private ``redis-server`` with ``requirepass``), a DSN in a key variable
(``api_key_env = "SCAN_DB_URL"``). The fake upstream answers the failing deployments with
401 bodies echoing the credentials it received (``Fault.echo_credentials_error``: the
``Authorization`` / ``x-api-key`` headers). Then everything a user or an operator sees is
scanned: the CLI as users run it (check-config table and --json, classify --json and
--stream, chat --once, health --probe and --json, costs, cache stats; LiteLLM at DEBUG),
errors' str/repr and their whole cause/context chain formatted as a traceback, every log
record at DEBUG (ours and LiteLLM's), every Redis key and value, every file of the disk cache.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import subprocess
import sys
import textwrap
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from director_llm import Director
from director_llm.errors import ConfigError, DirectorError, ProviderError, redact
from director_llm.testing import FakeProviderServer, Fault, Reply
from director_llm.testing.redis import RedisServer, RedisUnavailableError

TAG = secrets.token_hex(6)
MARK = f"SENTINEL-{TAG}"
KEYS = {
    "ACME_TENANT": f"tc-{MARK}-openai-0f1e2d3c",  # nothing secret-looking in the name, no key shape
    "SCAN_ANTHROPIC_CRED": f"sk-ant-{MARK}-anthropic",
    "TENANT_CRED": f"gk-{MARK}-good-9a8b7c",
}
DSN = f"postgres://app:db-{MARK}@db.internal:5432/app"
REDIS_PASSWORD = f"rp-{MARK}"
PRICES = "input_price_per_million = 1.0\noutput_price_per_million = 2.0"


def oracle(request: Any) -> Reply | Fault:
    if request.model in ("bad-model", "claude-bad"):
        return Fault.echo_credentials_error(401)
    text = request.last_user_text
    flow = "greeting" if "hello" in text.lower() else "help"
    if request.body.get("response_format") or "user_message" in text:
        return Reply(json={"flow": flow, "confidence": 0.9, "reasoning": "scan", "entities": {}}, usage=(50, 10))
    return Reply(text="a fine answer", usage=(5, 3))


def config_text(base: str, redis_url: str, cache_dir: Path) -> str:
    return textwrap.dedent(f"""
        [llm]
        num_retries = 0
        timeout_seconds = 20
        attempt_timeout_seconds = 8
        first_token_timeout_seconds = 8
        default_strategy = "cost"
        budget_per_day = 50
        [llm.circuit_breaker]
        cooldown_seconds = 0.01
        max_cooldown_seconds = 0.01

        [providers.bad]
        kind = "openai_compatible"
        models = ["bad-model"]
        base_url = "{base}/v1"
        api_key_env = "ACME_TENANT"
        tier = "balanced"
        [providers.bad.overrides.bad-model]
        {PRICES}

        [providers.anthropic]
        models = ["claude-bad"]
        base_url = "{base}"
        api_key_env = "SCAN_ANTHROPIC_CRED"
        tier = "balanced"
        [providers.anthropic.overrides.claude-bad]
        {PRICES}

        [providers.dsn]
        kind = "openai_compatible"
        models = ["dsn-model"]
        base_url = "{base}/v1"
        api_key_env = "SCAN_DB_URL"
        tier = "balanced"
        [providers.dsn.overrides.dsn-model]
        {PRICES}

        [providers.good]
        kind = "openai_compatible"
        models = ["good-model"]
        base_url = "{base}/v1"
        api_key_env = "TENANT_CRED"
        tier = "strong"
        [providers.good.overrides.good-model]
        input_price_per_million = 5.0
        output_price_per_million = 10.0

        [caching]
        redis_url = "{redis_url}"
        disk_cache_path = "{cache_dir}"
        memory_size_mb = 1
    """)


class World:
    def __init__(self, tmp: Path, server: FakeProviderServer, redis_server: RedisServer) -> None:
        self.tmp = tmp
        self.server = server
        self.redis_server = redis_server
        self.cache_dir = tmp / "cache"
        self.config = tmp / "director.toml"
        self.config.write_text(config_text(server.base_url, redis_server.url, self.cache_dir))
        self.env = {
            **os.environ,
            **KEYS,
            "SCAN_DB_URL": DSN,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_LOG": "DEBUG",  # LiteLLM's own debug output on stderr: scanned too
            "DIRECTOR_CONFIG": str(self.config),
        }


def run_batch(commands: list[tuple[str, ...]], env: dict[str, str]) -> dict[str, Run]:
    """Run every command in ONE subprocess (one LiteLLM import) through the real entry point
    with real stdout/stderr, as ``director-llm`` runs them; a marker line ends each."""
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(commands)], capture_output=True, text=True, env=env, timeout=240
    )
    assert "=== END" in proc.stdout, proc.stderr[-3000:]
    outs = re.split(r"^=== CMD \d+ EXIT (-?\d+)\n", proc.stdout, flags=re.M)
    errs = re.split(r"^=== CMD \d+\n", proc.stderr, flags=re.M)
    return {" ".join(c): Run(int(outs[2 * i + 1]), outs[2 * i], errs[i]) for i, c in enumerate(commands)}


class Run:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


DRIVER = """
import json, sys
from director_llm.cli.app import main
for i, command in enumerate(json.loads(sys.argv[1])):
    sys.argv = ["director-llm", *command]
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    sys.stdout.flush(); sys.stderr.flush()
    print(f"=== CMD {i} EXIT {code}", flush=True)
    print(f"=== CMD {i}", file=sys.stderr, flush=True)
print("=== END", flush=True)
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    server = FakeProviderServer()
    server.start()
    server.respond_with(None, oracle)
    redis_server = RedisServer(password=REDIS_PASSWORD)
    try:
        redis_server.start()
    except RedisUnavailableError as exc:
        server.stop()
        pytest.skip(str(exc))
    try:
        yield World(tmp_path_factory.mktemp("sentinel"), server, redis_server)
    finally:
        redis_server.close()
        server.stop()


def leaks(text: str) -> list[str]:
    """Lines of ``text`` holding a sentinel (or a recognisable piece of one)."""
    return [line[:300] for line in text.splitlines() if TAG in line]


def scan(where: str, text: str) -> None:
    found = leaks(text)
    assert not found, f"sentinel found in {where}:\n" + "\n".join(found[:10])


def redis_dump(url: str) -> str:
    client = redis.Redis.from_url(url)
    parts: list[str] = []
    for key in client.scan_iter(count=500):
        kind = client.type(key).decode()
        value: Any
        if kind == "string":
            value = client.get(key)
        elif kind == "hash":
            value = client.hgetall(key)
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "set":
            value = client.smembers(key)
        elif kind == "zset":
            value = client.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            value = client.xrange(key)
        else:
            value = kind
        parts.append(f"{key!r} {value!r}")
    client.close()
    return "\n".join(parts)


def files_dump(root: Path) -> str:
    return "\n".join(
        p.read_bytes().decode("latin-1") for p in sorted(root.rglob("*")) if p.is_file() and p.stat().st_size < 2**26
    )


def test_the_cli_prints_no_secret(world: World) -> None:
    commands = [
        ("check-config",),
        ("check-config", "--json"),
        ("classify", "--json", "hello, this is a scan"),
        ("classify", "--stream", "--json", "please help me with the scan"),
        ("classify", "--stream", "hello again"),
        ("chat", "--once", "say something", "--model", "bad/bad-model"),
        ("chat", "--once", "say something", "--json"),
        ("health", "--probe"),
        ("health", "--probe", "--json"),
        ("health", "--json"),
        ("costs",),
        ("costs", "--json"),
        ("cache", "stats"),
        ("cache", "stats", "--json"),
    ]
    outputs = run_batch(commands, world.env)
    for name, r in outputs.items():
        assert "Traceback" not in r.stderr, f"{name}: {r.stderr[-2000:]}"
        scan(f"`director-llm {name}` stdout", r.stdout)
        scan(f"`director-llm {name}` stderr", r.stderr)
    # The scan saw something worth scanning: the upstream echoed the keys, and we redacted them.
    assert any(MARK in (r.api_key or "") for r in world.server.requests_for("bad-model"))
    assert any(MARK in (r.api_key or "") for r in world.server.requests_for("claude-bad"))
    assert not world.server.requests_for("dsn-model")  # a DSN in a key variable is never sent
    everything = "\n".join(r.stdout + r.stderr for r in outputs.values())
    assert "[REDACTED]" in everything
    assert "holds a postgres:// URL, not an API key" in outputs["check-config"].stdout + outputs["check-config"].stderr
    report = json.loads(outputs["check-config --json"].stdout)
    assert any("SCAN_DB_URL" in p["message"] for p in report["problems"])
    assert outputs["chat --once say something --model bad/bad-model"].returncode == 1
    answer = json.loads(outputs["classify --json hello, this is a scan"].stdout)
    assert answer["flow"] == "greeting" and answer["route"]["deployment"] == "good/good-model"
    assert any(a["outcome"] != "ok" for a in answer["route"]["attempts"])  # the 401s were on the way
    scan("Redis keys and values", redis_dump(world.redis_server.url))
    scan("the disk cache", files_dump(world.cache_dir))


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def chain_text(exc: BaseException) -> str:
    """str, repr and the formatted traceback of ``exc`` and of every exception reachable from it
    (``__cause__`` and ``__context__``, suppressed or not)."""
    out: list[str] = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        out += [str(e), repr(e), repr(getattr(e, "attempts", "")), repr(getattr(e, "route", ""))]
        stack += [e.__cause__, e.__context__]
    return "\n".join(out)


def test_errors_and_debug_logs_hold_no_secret(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**KEYS, "SCAN_DB_URL": DSN}.items():
        monkeypatch.setenv(name, value)
    capture = Capture()
    names = ["", "director_llm", "LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "httpx", "httpcore", "openai"]
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    for lg in loggers[:1] + loggers[2:5]:  # LiteLLM's loggers may not propagate
        lg.addHandler(capture)
    texts: list[str] = []

    async def scenario() -> None:
        async with Director.from_file(world.config, state_prefix="scan-in-process:") as director:
            result = await director.classify_intent("hello from the in-process scan")
            texts.append(repr(result))
            try:
                await director.acompletion([{"role": "user", "content": "hi"}], model="bad/bad-model")
            except ProviderError as exc:
                logging.getLogger("director_llm.scan").exception("the call failed")
                texts.append(chain_text(exc))
                assert "[REDACTED]" in repr(exc.attempts)  # the echo was there, and was redacted
            else:
                raise AssertionError("bad/bad-model answered")
            try:
                await director.acompletion([{"role": "user", "content": "hi"}], model="dsn/dsn-model")
            except ProviderError as exc:
                texts.append(chain_text(exc))
                assert "SCAN_DB_URL holds a postgres:// URL" in str(exc)
            async with director.stream_response([{"role": "user", "content": "stream it"}]) as stream:
                async for chunk in stream:
                    texts.append(repr(chunk))
            texts.append(json.dumps(await director.health(probe=True), default=str))
            texts.append(repr(await director.spend()) + repr(director.cache_stats()) + repr(director))

    try:
        asyncio.run(scenario())
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
            lg.removeHandler(capture)
    assert len(capture.lines) > 20  # DEBUG really was on
    scan("log records", "\n".join(capture.lines))
    scan("errors, results and reprs", "\n".join(texts))
    assert not world.server.requests_for("dsn-model")
    scan("Redis keys and values", redis_dump(world.redis_server.url))
    scan("the disk cache", files_dump(world.cache_dir))


def test_config_errors_and_the_redaction_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A wrong-scheme redis_url: a located error, no traceback, no password, from any command.
    path = tmp_path / "bad.toml"
    path.write_text(f'[providers.local]\nkind = "local"\n[caching]\nredis_url = "http://u:{REDIS_PASSWORD}@h:1/0"\n')
    env = {**os.environ, "DIRECTOR_CONFIG": str(path)}
    commands = [("check-config",), ("check-config", "--json"), ("classify", "--json", "hi"), ("costs",), ("health",)]
    for command, r in run_batch(commands, env).items():
        assert r.returncode == 2, (command, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr and "caching.redis_url" in r.stdout + r.stderr, command
        scan(f"`director-llm {command}`", r.stdout + r.stderr)
    # A key pasted into api_key_env (a valid variable name, so only its shape gives it away).
    pasted = f"sk_live_{TAG}Sentinel0123456789"
    path.write_text(f'[providers.openai]\nmodels = ["gpt-4o"]\napi_key_env = "{pasted}"\n')
    from director_llm.config.loading import load_config

    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "providers.openai.api_key_env" in str(info.value) and "not shown" in str(info.value)
    scan("the ConfigError", chain_text(info.value) + repr(info.value.problems))
    # Free-text redaction: registered values whatever the name; URL credentials; query secrets.
    from director_llm.config.loading import parse_config_text
    from director_llm.config.secrets import SecretScope

    monkeypatch.setenv("ACME_TENANT", KEYS["ACME_TENANT"])
    cfg = parse_config_text(
        '[providers.x]\nkind = "openai_compatible"\nmodels = ["m"]\napi_key_env = "ACME_TENANT"\n'
        f'base_url = "https://u:pw-{MARK}@x.example/v1?sig={MARK}x"\n'
    )
    message = f"key {KEYS['ACME_TENANT']} at https://u:pw-{MARK}@x.example/v1?sig={MARK}x"
    assert TAG in redact(f"{KEYS['ACME_TENANT']}")  # nothing registered: an unknown name is not guessed
    litellm_log, capture = logging.getLogger("LiteLLM"), Capture()
    litellm_log.addHandler(capture)
    level, litellm_log.level = litellm_log.level, logging.DEBUG
    scope = SecretScope(cfg)
    try:
        assert not leaks(redact(message))
        assert not leaks(str(DirectorError(message)))
        try:
            raise RuntimeError(message)
        except RuntimeError:  # a record with args and a traceback, as LiteLLM logs them
            litellm_log.debug("request: %s", message, exc_info=True)
        assert capture.lines and "[REDACTED]" in capture.lines[0]
        scan("a LiteLLM log record", "\n".join(capture.lines))
    finally:
        scope.close()
        litellm_log.removeHandler(capture)
        litellm_log.setLevel(level)
    assert TAG in redact(KEYS["ACME_TENANT"])  # closed: forgotten
    assert redact("https://u:hunter2@h/x?api_key=abc123456&q=1") == "https://u:[REDACTED]@h/x?api_key=[REDACTED]&q=1"
    assert re.search(r"\[REDACTED\]", redact("redis://:pw@h:6379/0"))
