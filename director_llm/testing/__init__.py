"""Test helpers users can reuse: fake LLM provider servers and a real Redis launcher.

* :class:`FakeProviderServer` speaks the OpenAI, Anthropic, Ollama and Gemini wire
  protocols on 127.0.0.1, scripted per request with :class:`Reply` and :class:`Fault`,
  and records what it received (:class:`RecordedRequest`, :class:`Disconnect`).
* :class:`RedisServer` runs a private ``redis-server`` that a test can stop and restart.
* ``pytest_plugins = ["director_llm.testing.pytest_plugin"]`` gives the ``fake_provider``,
  ``redis_url``, ``redis_prefix`` and ``redis_server`` fixtures.

This package imports aiohttp; nothing in ``director_llm`` proper imports it.
"""

from director_llm.testing.recording import Disconnect, RecordedRequest
from director_llm.testing.redis import RedisServer, RedisUnavailableError
from director_llm.testing.script import Fault, FaultKind, Reply, Responder
from director_llm.testing.servers import FakeProviderServer, load_scenario

__all__ = [
    "Disconnect",
    "FakeProviderServer",
    "Fault",
    "FaultKind",
    "RecordedRequest",
    "RedisServer",
    "RedisUnavailableError",
    "Reply",
    "Responder",
    "load_scenario",
]
