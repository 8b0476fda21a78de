"""pytest fixtures for fake providers and real Redis. Enable with, in a ``conftest.py``::

    pytest_plugins = ["director_llm.testing.pytest_plugin"]

Fixtures:

* ``fake_provider`` - a started :class:`FakeProviderServer`, shared by the session and reset
  (scripts and records) before each test. ``fake_provider.base_url`` is its address.
* ``redis_url`` - a Redis URL: 127.0.0.1:6379 when it answers PING, else a private
  ``redis-server`` started once for the session.
* ``redis_prefix`` - a unique key prefix for one test; its keys are deleted afterwards.
* ``redis_server`` - a private :class:`RedisServer` for one test, which it may stop and
  restart (outage tests).

When Redis cannot be had the Redis fixtures skip, unless ``DIRECTOR_REQUIRE_REDIS=1``
(CI sets it), in which case they fail: a CI run must never pass by skipping them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from director_llm.testing.redis import RedisServer, RedisUnavailableError, ping
from director_llm.testing.servers import FakeProviderServer

__all__ = [
    "delete_prefix",
    "fake_provider",
    "fake_provider_session",
    "redis_prefix",
    "redis_server",
    "redis_url",
    "require_redis",
]

REQUIRE_REDIS_ENV = "DIRECTOR_REQUIRE_REDIS"
SHARED_REDIS_PORT = 6379
KEY_PREFIX_ROOT = "director-test"


def require_redis(reason: str) -> None:
    """Skip the current test because Redis is missing, or fail under ``DIRECTOR_REQUIRE_REDIS=1``."""
    if os.environ.get(REQUIRE_REDIS_ENV) == "1":
        pytest.fail(
            f"{reason} ({REQUIRE_REDIS_ENV}=1, so this fails instead of skipping)",
            pytrace=False,
        )
    pytest.skip(f"{reason}; set up Redis or install redis-server to run this test")


@pytest.fixture(scope="session")
def fake_provider_session() -> Iterator[FakeProviderServer]:
    """The session's fake provider server (prefer ``fake_provider``, which resets it)."""
    server = FakeProviderServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake_provider(fake_provider_session: FakeProviderServer) -> FakeProviderServer:
    """A started fake provider with no scripts and no records."""
    fake_provider_session.reset()
    if not fake_provider_session.running:
        # A test may have stopped it to simulate an outage; bring it back on its port.
        fake_provider_session.start()
    return fake_provider_session


@pytest.fixture(scope="session")
def _session_redis() -> Iterator[str | RedisUnavailableError]:
    if ping(port=SHARED_REDIS_PORT):
        yield f"redis://127.0.0.1:{SHARED_REDIS_PORT}/0"
        return
    server = RedisServer()
    try:
        server.start()
    except RedisUnavailableError as exc:
        # Reported per test by redis_url, so each test skips or fails with the reason.
        yield exc
        return
    yield server.url
    server.close()


@pytest.fixture
def redis_url(_session_redis: str | RedisUnavailableError) -> str:
    """URL of a running Redis (shared; isolate keys with ``redis_prefix``)."""
    if isinstance(_session_redis, RedisUnavailableError):
        require_redis(f"no Redis at 127.0.0.1:{SHARED_REDIS_PORT} and {_session_redis.reason}")
    assert isinstance(_session_redis, str)
    if not ping(*_host_port(_session_redis)):
        require_redis(f"Redis at {_session_redis} stopped answering")
    return _session_redis


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix unique to this test, e.g. ``director-test:3f2a9c1b0d4e:``; its keys are
    deleted after the test."""
    prefix = f"{KEY_PREFIX_ROOT}:{uuid.uuid4().hex[:12]}:"
    yield prefix
    delete_prefix(redis_url, prefix)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private, started ``redis-server`` on its own port, closed after the test."""
    server = RedisServer()
    try:
        server.start()
    except RedisUnavailableError as exc:
        require_redis(exc.reason)
    yield server
    server.close()


def _host_port(url: str) -> tuple[str, int]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or SHARED_REDIS_PORT


def delete_prefix(url: str, prefix: str) -> int:
    """Delete every key starting with ``prefix`` at ``url``; returns how many were deleted.

    A Redis that went away (an outage test) is not an error: there is nothing to clean.
    """
    import redis  # deferred: only Redis tests pay for the client import

    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        # Escape glob characters so the prefix matches literally.
        pattern = "".join("\\" + ch if ch in "*?[]\\" else ch for ch in prefix) + "*"
        keys = list(client.scan_iter(match=pattern, count=500))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        return len(keys)
    except redis.RedisError:
        return 0
    finally:
        client.close()
