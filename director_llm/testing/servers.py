"""A fake LLM provider server speaking the real wire protocols over HTTP on 127.0.0.1.

One :class:`FakeProviderServer` serves every protocol on one port, told apart by path. Give
LiteLLM these ``api_base`` values (``BASE`` is what :meth:`FakeProviderServer.start` returns,
e.g. ``http://127.0.0.1:41234``):

====================  ==============================  ===============================  =============================
protocol              LiteLLM model                   api_base                         path served
====================  ==============================  ===============================  =============================
OpenAI                ``openai/<model>``              ``BASE + "/v1"``                 ``POST /v1/chat/completions``
Anthropic             ``anthropic/<model>``           ``BASE``                         ``POST /v1/messages``
Ollama                ``ollama_chat/<model>``         ``BASE``                         ``POST /api/chat`` (+ ``/api/show``, ``/api/tags``)
Gemini (native)       ``gemini/<model>``              ``BASE + "/v1beta"``             ``POST /v1beta/models/<model>:generateContent`` / ``:streamGenerateContent?alt=sse``
Gemini (OpenAI API)   ``openai/<model>``              ``BASE + "/v1beta/openai"``      ``POST /v1beta/openai/chat/completions``
====================  ==============================  ===============================  =============================

(``POST /chat/completions`` is accepted as OpenAI too. LiteLLM builds the Gemini URL as
``join(api_base, "models/<model>:<method>")`` and sends the key in ``x-goog-api-key``.)

Scripting (see :mod:`director_llm.testing.script`)::

    server = FakeProviderServer()
    base = server.start()
    server.script("gpt-4o", [Fault.status(500), Reply(text="ok")])
    server.respond_with("oracle", lambda req: Reply(json={"flow": "weather"}))
    ...
    assert server.requests_for("gpt-4o")[0].body["messages"]
    server.stop()

To check that a cancelled stream released its upstream connection, close the LiteLLM
stream with ``await stream.aclose()`` and then ``await server.await_disconnects(1)``. (With
LiteLLM 1.110.2, merely breaking out of the loop and dropping an ``openai/`` stream leaves
the connection open; the Anthropic, Ollama and Gemini streams are closed on garbage
collection.)

The server runs its own event loop in a daemon thread, so it serves sync and async tests
alike. For other processes, run ``python -m director_llm.testing.servers --port N
[--scenario FILE.json]``; it prints ``LISTENING <base url>`` and exposes its records at
``GET /_fake/requests`` and ``GET /_fake/disconnects`` (``POST /_fake/reset`` and ``POST
/_fake/scenario`` control it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Self

from aiohttp import web

from director_llm.testing.playback import ClientGone, Player, abandon, client_gone
from director_llm.testing.protocols import PROTOCOLS, GeminiProtocol, OllamaProtocol, Protocol
from director_llm.testing.recording import Disconnect, RecordedRequest
from director_llm.testing.script import Behaviour, Fault, Responder, ScriptBook, behaviour_from_dict

__all__ = ["FakeProviderServer", "load_scenario", "main"]

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
_POLL_S = 0.02
"""How often a waiting handler checks whether its client went away."""


class FakeProviderServer:
    """Local provider server for OpenAI, Anthropic, Ollama and Gemini protocols.

    Args:
        port: Port to listen on; 0 picks a free one on first start and keeps it for
            later restarts (so a test can stop the "provider" and bring it back).
        host: Interface to bind; loopback by default.
        ollama_models: Names listed by ``GET /api/tags``.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = DEFAULT_HOST,
        ollama_models: Iterable[str] = ("llama3.2:1b",),
    ):
        self.host = host
        self.port = port
        self.ollama_models = list(ollama_models)
        self.requests: list[RecordedRequest] = []
        """Every chat request received, in arrival order."""
        self.disconnects: list[Disconnect] = []
        """Clients that hung up before their answer was complete."""
        self.meta_requests: list[RecordedRequest] = []
        """Ollama ``/api/show`` and ``/api/tags`` requests (kept apart from chat requests)."""
        self.errors: list[str] = []
        """Exceptions raised by responders (each also answered with HTTP 500)."""
        self.in_flight: dict[str | None, int] = {}
        """Chat requests being answered now, by model."""
        self.peak_in_flight: dict[str | None, int] = {}
        """The most chat requests answered at once, by model (since the last reset)."""
        self._book = ScriptBook()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (valid once started)."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server thread is serving."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> str:
        """Start serving in a background thread and return the base URL."""
        if self.running:
            return self.base_url
        sock = _bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        ready = threading.Event()
        failure: list[BaseException] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._serve,
            args=(sock, ready, failure),
            name=f"fake-provider-{self.port}",
            daemon=True,
        )
        self._thread.start()
        if not ready.wait(START_TIMEOUT_S):
            raise RuntimeError(f"fake provider on port {self.port} did not start in {START_TIMEOUT_S}s")
        if failure:
            raise RuntimeError(f"fake provider on port {self.port} failed to start") from failure[0]
        return self.base_url

    def stop(self) -> None:
        """Stop serving; hanging requests are released and open connections closed."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        try:
            future.result(STOP_TIMEOUT_S)
        except Exception:
            log.warning(
                "fake provider on port %s did not shut down cleanly",
                self.port,
                exc_info=True,
            )
        loop.call_soon_threadsafe(loop.stop)
        thread.join(STOP_TIMEOUT_S)
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _serve(self, sock: socket.socket, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._startup(sock))
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            failure.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _startup(self, sock: socket.socket) -> None:
        self._stopping = asyncio.Event()
        # A short shutdown timeout: hanging handlers watch _stopping and end promptly.
        self._runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def _shutdown(self) -> None:
        assert self._stopping is not None and self._runner is not None
        self._stopping.set()
        await self._runner.cleanup()

    # -- scripting -----------------------------------------------------------------------
    def script(
        self,
        model: str | None,
        steps: Behaviour | Iterable[Behaviour],
        *,
        protocol: str | None = None,
        then: Behaviour | None = None,
        repeat: bool = False,
        api_key: str | None = None,
    ) -> None:
        """Answer matching requests with ``steps`` in order, then ``then`` (or the default).

        ``model=None`` matches any model; ``protocol`` narrows the rule to one protocol
        (``"openai"``, ``"anthropic"``, ``"ollama"``, ``"gemini"``, ``"gemini_openai"``);
        ``api_key`` to requests carrying that key (``Authorization: Bearer``, ``x-api-key``,
        ``x-goog-api-key`` or ``?key=``), e.g. ``server.script(None, Fault.status(401),
        api_key="sk-a", repeat=True)``. ``repeat=True`` cycles through the steps forever.
        """
        self._book.script(model, steps, protocol=protocol, then=then, repeat=repeat, api_key=api_key)

    def respond_with(
        self, model: str | None, responder: Responder, *, protocol: str | None = None, api_key: str | None = None
    ) -> None:
        """Answer matching requests with ``responder(request)`` (a Reply or Fault)."""
        self._book.respond_with(model, responder, protocol=protocol, api_key=api_key)

    def requests_with_key(self, api_key: str) -> list[RecordedRequest]:
        """Chat requests that carried ``api_key``."""
        return [r for r in self.requests if r.api_key == api_key]

    def set_default(self, behaviour: Behaviour | Responder) -> None:
        """What requests matching no rule get (initially ``Reply()``)."""
        self._book.set_default(behaviour)

    def reset(self) -> None:
        """Forget scripts, the default, and everything recorded."""
        self._book.clear()
        self.requests.clear()
        self.disconnects.clear()
        self.meta_requests.clear()
        self.errors.clear()
        self.in_flight.clear()
        self.peak_in_flight.clear()

    # -- inspection ----------------------------------------------------------------------
    def requests_for(self, model: str, *, protocol: str | None = None) -> list[RecordedRequest]:
        """Chat requests for ``model`` (optionally only one protocol)."""
        return [r for r in self.requests if r.model == model and (protocol is None or r.protocol == protocol)]

    def wait_for_disconnects(self, count: int = 1, timeout: float = 2.0) -> list[Disconnect]:
        """Block until at least ``count`` disconnects are recorded; raise TimeoutError if not.

        The server notices a hang-up asynchronously, so tests should wait rather than
        assert right after cancelling a stream. In async code use
        :meth:`await_disconnects`: asyncio only closes a client socket when its loop
        runs, so blocking that loop here would wait for a disconnect that cannot happen.
        """
        _wait_until(lambda: len(self.disconnects) >= count, timeout, f"{count} disconnect(s)")
        return list(self.disconnects)

    async def await_disconnects(self, count: int = 1, timeout: float = 2.0) -> list[Disconnect]:
        """Async :meth:`wait_for_disconnects`, letting the caller's event loop run meanwhile."""
        await _await_until(lambda: len(self.disconnects) >= count, timeout, f"{count} disconnect(s)")
        return list(self.disconnects)

    def wait_for_requests(self, count: int = 1, timeout: float = 2.0) -> list[RecordedRequest]:
        """Block until at least ``count`` chat requests are recorded; raise TimeoutError if not."""
        _wait_until(lambda: len(self.requests) >= count, timeout, f"{count} request(s)")
        return list(self.requests)

    async def await_requests(self, count: int = 1, timeout: float = 2.0) -> list[RecordedRequest]:
        """Async :meth:`wait_for_requests`."""
        await _await_until(lambda: len(self.requests) >= count, timeout, f"{count} request(s)")
        return list(self.requests)

    # -- HTTP ----------------------------------------------------------------------------
    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024**2)

        def chat(protocol: str) -> Any:
            return lambda request: self._handle_chat(request, protocol)

        app.router.add_post("/v1/chat/completions", chat("openai"))
        app.router.add_post("/chat/completions", chat("openai"))
        app.router.add_post("/v1beta/openai/chat/completions", chat("gemini_openai"))
        app.router.add_post("/v1/messages", chat("anthropic"))
        app.router.add_post("/api/chat", chat("ollama"))
        app.router.add_post("/v1beta/models/{target:[^/]+}", chat("gemini"))
        app.router.add_post("/api/show", self._handle_ollama_show)
        app.router.add_get("/api/tags", self._handle_ollama_tags)
        app.router.add_get("/_fake/requests", self._handle_list_requests)
        app.router.add_get("/_fake/disconnects", self._handle_list_disconnects)
        app.router.add_post("/_fake/reset", self._handle_reset)
        app.router.add_post("/_fake/scenario", self._handle_scenario)
        return app

    async def _record(
        self, request: web.Request, protocol: str, path_model: str | None
    ) -> tuple[Protocol, RecordedRequest]:
        raw = await request.read()
        body = _parse_json(raw)
        proto = PROTOCOLS[protocol]()
        query = dict(request.query)
        if isinstance(proto, GeminiProtocol):
            proto.sse = proto.is_sse(query)
        recorded = RecordedRequest(
            protocol=protocol,
            path=request.path,
            model=proto.model(body, path_model),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            query=query,
            received_at=time.time(),
            stream=proto.wants_stream(body, query, request.path),
        )
        return proto, recorded

    async def _handle_chat(self, request: web.Request, protocol: str) -> web.StreamResponse:
        path_model = None
        if protocol == "gemini":
            target = request.match_info["target"]
            path_model, _, method = target.partition(":")
            if method not in ("generateContent", "streamGenerateContent"):
                raise web.HTTPNotFound(text=f"fake gemini does not serve :{method}")
        proto, recorded = await self._record(request, protocol, path_model)
        self.requests.append(recorded)
        model = recorded.model
        self.in_flight[model] = self.in_flight.get(model, 0) + 1
        self.peak_in_flight[model] = max(self.peak_in_flight.get(model, 0), self.in_flight[model])
        try:
            return await self._answer(request, protocol, proto, recorded)
        finally:
            self.in_flight[model] = max(0, self.in_flight.get(model, 0) - 1)

    async def _answer(
        self, request: web.Request, protocol: str, proto: Protocol, recorded: RecordedRequest
    ) -> web.StreamResponse:
        try:
            behaviour = self._book.choose(recorded)
        except Exception as exc:
            log.exception("fake provider responder failed")
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return web.Response(status=500, body=proto.error(500, f"responder failed: {exc}", None))
        player = Player(request, proto, recorded, self._wait)
        try:
            if isinstance(behaviour, Fault):
                return await player.fault(behaviour)
            return await player.reply(behaviour)
        except ClientGone:
            self.disconnects.append(
                Disconnect(
                    protocol,
                    recorded.model,
                    request.path,
                    player.chunks_sent,
                    time.time(),
                )
            )
            return abandon(request)

    async def _handle_ollama_show(self, request: web.Request) -> web.Response:
        body = _parse_json(await request.read()) or {}
        model = body.get("model") or body.get("name") or ""
        self.meta_requests.append(_meta_record(request, model, body))
        return web.Response(body=OllamaProtocol.show(model), content_type="application/json")

    async def _handle_ollama_tags(self, request: web.Request) -> web.Response:
        self.meta_requests.append(_meta_record(request, None, None))
        return web.Response(
            body=OllamaProtocol.tags(self.ollama_models),
            content_type="application/json",
        )

    async def _handle_list_requests(self, request: web.Request) -> web.Response:
        return web.json_response([r.to_dict() for r in self.requests])

    async def _handle_list_disconnects(self, request: web.Request) -> web.Response:
        return web.json_response([d.to_dict() for d in self.disconnects])

    async def _handle_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def _handle_scenario(self, request: web.Request) -> web.Response:
        try:
            load_scenario(self, await request.json())
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"ok": True})

    async def _wait(self, request: web.Request, seconds: float | None) -> None:
        """Sleep ``seconds`` (None: until stopped), raising ClientGone if the client leaves."""
        assert self._stopping is not None
        deadline = None if seconds is None else time.monotonic() + seconds
        while True:
            if client_gone(request):
                raise ClientGone
            if self._stopping.is_set():
                return
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            await asyncio.sleep(_POLL_S if remaining is None else min(_POLL_S, remaining))


def _parse_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _meta_record(request: web.Request, model: str | None, body: Any) -> RecordedRequest:
    return RecordedRequest(
        protocol="ollama",
        path=request.path,
        model=model,
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
        query=dict(request.query),
        received_at=time.time(),
    )


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Allows restarting on the same port while old connections sit in TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"fake provider: waited {timeout}s for {what}")
        time.sleep(_POLL_S)


async def _await_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"fake provider: waited {timeout}s for {what}")
        await asyncio.sleep(_POLL_S)


def load_scenario(server: FakeProviderServer, scenario: dict[str, Any]) -> None:
    """Apply a JSON scenario to ``server``.

    Format::

        {
          "default": {"reply": {"text": "hello"}},
          "scripts": [
            {"model": "gpt-4o", "protocol": "openai",
             "steps": [{"fault": "status", "status_code": 500}, {"reply": {"text": "ok"}}],
             "then": {"reply": {"text": "later"}}, "repeat": false},
            {"api_key": "sk-revoked", "steps": [{"fault": "status", "status_code": 401}], "repeat": true}
          ]
        }

    Behaviours are written as documented in :func:`~director_llm.testing.script.behaviour_from_dict`.
    """
    if not isinstance(scenario, dict):
        raise TypeError("a scenario must be a JSON object")
    unknown = set(scenario) - {"default", "scripts"}
    if unknown:
        raise ValueError(f"unknown scenario keys: {sorted(unknown)}")
    if "default" in scenario:
        server.set_default(behaviour_from_dict(scenario["default"]))
    for rule in scenario.get("scripts", []):
        server.script(
            rule.get("model"),
            [behaviour_from_dict(step) for step in rule.get("steps", [])],
            protocol=rule.get("protocol"),
            then=behaviour_from_dict(rule["then"]) if rule.get("then") else None,
            repeat=bool(rule.get("repeat", False)),
            api_key=rule.get("api_key"),
        )


def main(argv: list[str] | None = None) -> int:
    """CLI: serve until SIGINT/SIGTERM, printing ``LISTENING <base url>`` once ready."""
    parser = argparse.ArgumentParser(
        prog="python -m director_llm.testing.servers",
        description=__doc__.split("\n")[0],
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: pick a free one)")
    parser.add_argument("--host", default=DEFAULT_HOST, help="interface to bind (default: loopback)")
    parser.add_argument("--scenario", type=Path, help="JSON scenario file (see load_scenario)")
    args = parser.parse_args(argv)
    server = FakeProviderServer(args.port, host=args.host)
    if args.scenario is not None:
        load_scenario(server, json.loads(args.scenario.read_text()))
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    base = server.start()
    print(f"LISTENING {base}", flush=True)
    try:
        stop.wait()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
