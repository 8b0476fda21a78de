"""One attempt against one deployment: the engine's only door to LiteLLM.

``Dispatcher.complete`` and ``Dispatcher.stream`` send one request to one deployment with
``litellm.acompletion`` (the deployment's ``litellm_params``, no retries: LiteLLM's, the
OpenAI SDK's and the Router's are all off, since the engine decides what happens after a
failure) and hand back plain data: the text, whether tool calls came back, the usage.
Reading LiteLLM's objects (``choices``, ``usage``, ``_hidden_params``) happens here and in
``director_llm.router.build``, nowhere else.

Every exception leaves this module as ``UpstreamError``, classified by ``kind``:

==========  ===========================================================  ==============
kind        what happened                                                feeds breaker
==========  ===========================================================  ==============
provider    the deployment failed: 5xx, 429, timeout, refused/reset      yes
            connection, malformed or empty body
credential  401/403 with the deployment's own key                        yes, at once
caller      401/403 with a key the caller passed per call                no
request     400/404/413/422: the request's fault (context too long...)   no
local       LiteLLM failed before any HTTP exchange (a shape it cannot   no
            send); the next deployment may still take it
==========  ===========================================================  ==============

The message is redacted (``errors.redact``: the live Directors' configured secrets, key
shapes, URL credentials) before it is cut short, and the ``UpstreamError`` is raised outside
the ``except`` block: no ``__cause__`` nor ``__context__`` leads back to LiteLLM's exception,
which holds the request headers with the key. A key variable holding a URL or DSN
(``api_key_env = "DATABASE_URL"``) is refused before any HTTP (kind ``credential``).

Why not ``litellm.Router.acompletion``: the engine already chose the deployment, so the
Router's selection, retries, fallbacks and callbacks would be dead weight (measured ~1.4 ms
per call in ``docs/dev/litellm-notes.md``). ``director.router`` is still built from the same
deployments for callers who want LiteLLM's Router itself.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from director_llm.config.secrets import key_value_problem
from director_llm.errors import redact
from director_llm.providers import DeploymentInfo
from director_llm.resilience.retry_after import retry_after_of

__all__ = ["Dispatcher", "Reply", "ReplyStream", "UpstreamError", "import_litellm", "model_response"]

FailureKind = Literal["provider", "credential", "caller", "request", "local"]

_REQUEST_STATUSES = frozenset({400, 404, 413, 422})
_CREDENTIAL_STATUSES = frozenset({401, 403})
# Exceptions in a cause chain that mean the network or the server failed.
_NETWORK_NAMES = frozenset(
    {
        "ConnectError",
        "ConnectTimeout",
        "ReadTimeout",
        "WriteTimeout",
        "PoolTimeout",
        "ReadError",
        "WriteError",
        "RemoteProtocolError",
        "NetworkError",
        "TransportError",
        "TimeoutException",
        "ClientConnectorError",
        "ClientOSError",
        "ServerDisconnectedError",
        "ClientPayloadError",
        "ServerTimeoutError",
        "APIConnectionError",
        "APITimeoutError",
        "JSONDecodeError",
        "IncompleteRead",
        "ContentLengthError",
    }
)
# Python errors raised while LiteLLM was still building the request.
_LOCAL_TYPES: tuple[type[BaseException], ...] = (
    AttributeError,
    TypeError,
    KeyError,
    IndexError,
    UnicodeError,
    NotImplementedError,
    RecursionError,
)


# Modules LiteLLM 1.110 imports lazily during its first call (per provider): imported in
# ``Dispatcher.load``'s worker thread instead, so the first request neither blocks the event
# loop on them nor spends its attempt timeout importing. Best effort: a missing name is skipped.
_WARM_MODULES = (
    "litellm.litellm_core_utils.logging_callback_manager",
    "litellm.litellm_core_utils.default_encoding",
    "litellm.litellm_core_utils.duration_parser",
    "litellm.proxy._types",
    "litellm.llms.openai_like.dynamic_config",
    "litellm.types.litellm_core_utils.streaming_chunk_builder_utils",
    "tiktoken_ext.openai_public",
    "anyio._backends._asyncio",
    "httpcore",
    "h11",
    "h2.connection",
    "litellm.llms.anthropic.completion.transformation",
    "litellm.llms.ollama.chat.transformation",
    "litellm.llms.gemini.chat.transformation",
    "litellm.llms.vertex_ai.context_caching.vertex_ai_context_caching",
)


def import_litellm(*, warm: bool = False) -> Any:
    """Import LiteLLM quietly and offline (its cost map from the package, not the network);
    ``warm`` also imports what its first call would (``_WARM_MODULES``)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_TELEMETRY", "False")
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    if warm:
        import importlib

        for name in _WARM_MODULES:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - another LiteLLM version: nothing to warm there
                continue
        try:  # the tokenizer's encoding file is read on first use
            litellm.token_counter(model="gpt-4o", text="warm")
        except Exception:  # noqa: BLE001
            pass
    return litellm


class UpstreamError(Exception):
    """One attempt failed (internal to the engine; callers see ``ProviderError``)."""

    def __init__(
        self,
        kind: FailureKind,
        error_class: str,
        message: str,
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind: FailureKind = kind
        self.error_class = error_class
        self.message = message
        self.status_code = status_code
        self.retry_after = retry_after

    @property
    def feeds_breaker(self) -> bool:
        return self.kind in ("provider", "credential")


@dataclass(slots=True)
class Reply:
    """A non-streamed answer."""

    response: Any
    """LiteLLM's ``ModelResponse`` (what ``director.acompletion`` returns)."""
    text: str
    has_tool_calls: bool
    prompt_tokens: int
    completion_tokens: int

    @property
    def empty(self) -> bool:
        """No text and no tool calls: a failure of the deployment, not an answer."""
        return not (self.text or self.has_tool_calls)


@dataclass(slots=True)
class ReplyStream:
    """A streamed answer: ``async for text in stream``; usage is filled as it arrives."""

    _chunks: Any
    prompt_tokens: int = 0
    completion_tokens: int = 0
    received: int = 0
    """Chunks read so far (text or not)."""
    _closed: bool = field(default=False, repr=False)

    def __aiter__(self) -> AsyncIterator[str]:
        return self._texts()

    async def _texts(self) -> AsyncIterator[str]:
        failure: UpstreamError | None = None
        try:
            async for chunk in self._chunks:
                self.received += 1
                self._take_usage(chunk)
                text = _delta_text(chunk)
                if text:
                    yield text
        except (UpstreamError, asyncio.CancelledError, GeneratorExit):
            raise
        except Exception as exc:  # noqa: BLE001 - the body broke after the stream opened: translated
            failure = translate(exc)
        if failure is not None:
            raise failure  # outside the handler: no __context__ pointing at LiteLLM's exception

    def _take_usage(self, chunk: Any) -> None:
        usage = getattr(chunk, "usage", None)
        if usage is None:
            return
        pt = getattr(usage, "prompt_tokens", None)
        ct = getattr(usage, "completion_tokens", None)
        if isinstance(pt, int) and pt:
            self.prompt_tokens = pt
        if isinstance(ct, int) and ct:
            self.completion_tokens = ct

    async def aclose(self) -> None:
        """Close the upstream connection (LiteLLM closes an ``openai/`` stream only here)."""
        if self._closed:
            return
        self._closed = True
        close = getattr(self._chunks, "aclose", None)
        if close is not None:
            try:
                await asyncio.shield(close())
            except Exception:  # noqa: BLE001 - the connection is being dropped anyway
                pass


DEFAULT_MAX_RESPONSE_BYTES = 16 * 2**20


class Dispatcher:
    """Sends one attempt to one deployment (see the module docstring). Responses larger than
    ``max_response_bytes`` fail the attempt (``router.transport``)."""

    def __init__(self, *, max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> None:
        self._litellm: Any = None
        self.max_response_bytes = max_response_bytes
        self._clients: Any = None

    @property
    def loaded(self) -> bool:
        """Whether LiteLLM is imported already (the first import takes seconds)."""
        return self._litellm is not None

    async def load(self) -> Any:
        """Import LiteLLM off the event loop (a worker thread), once."""
        if self._litellm is None:
            self._litellm = await asyncio.to_thread(import_litellm, warm=True)
        return self._litellm

    def _request(
        self,
        deployment: DeploymentInfo,
        messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
        timeout: float,
        key: str | None = None,
    ) -> dict[str, Any]:
        request = deployment.litellm_params(with_key=key is None)
        if key is not None and "api_key" not in params:
            request["api_key"] = key  # chosen by the key pool for this attempt
        value = request.get("api_key")
        env_name = deployment.api_key_env or " / ".join(deployment.api_key_envs or ())
        problem = key_value_problem(env_name, value) if value and "api_key" not in params else None
        if problem:  # e.g. api_key_env = "DATABASE_URL": refused before any HTTP, never sent
            raise UpstreamError("credential", "UnusableKey", f"{deployment.name}: {problem}")
        for unused in ("rpm", "tpm"):
            request.pop(unused, None)
        request.update(params)
        request["messages"] = messages
        request["timeout"] = max(0.01, timeout)
        request["num_retries"] = 0
        request["max_retries"] = 0  # the OpenAI SDK retries twice by default
        if "api_key" not in params:  # a caller's own key gets LiteLLM's default client
            if self._clients is None:
                from director_llm.router.transport import Clients

                self._clients = Clients(self.max_response_bytes)
            request["client"] = self._clients.for_call(deployment, request)
        return request

    async def aclose(self) -> None:
        """Close the HTTP clients of the running event loop."""
        if self._clients is not None:
            await self._clients.aclose()

    async def complete(
        self,
        deployment: DeploymentInfo,
        messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
        *,
        timeout: float,
        key: str | None = None,
    ) -> Reply:
        """One non-streamed call; ``key`` is the API key value to send (the key pool's choice;
        None: the deployment's first key set in the environment)."""
        litellm = self._litellm or await self.load()
        caller_key = "api_key" in params
        try:
            response = await litellm.acompletion(**self._request(deployment, messages, params, timeout, key))
        except (asyncio.CancelledError, UpstreamError):
            raise
        except Exception as exc:  # noqa: BLE001 - every failure of an attempt is translated, typed
            failure = translate(exc, caller_key=caller_key)
        else:
            return _reply(response)
        raise failure  # outside the handler: no __context__ pointing at LiteLLM's exception

    async def stream(
        self,
        deployment: DeploymentInfo,
        messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
        *,
        timeout: float,
        key: str | None = None,
    ) -> ReplyStream:
        """Open a stream (``stream_options.include_usage`` on, so the last chunk has usage)."""
        litellm = self._litellm or await self.load()
        caller_key = "api_key" in params
        request = self._request(deployment, messages, params, timeout, key)
        request["stream"] = True
        request["stream_options"] = {"include_usage": True}
        try:
            chunks = await litellm.acompletion(**request)
        except (asyncio.CancelledError, UpstreamError):
            raise
        except Exception as exc:  # noqa: BLE001 - every failure of an attempt is translated, typed
            failure = translate(exc, caller_key=caller_key)
        else:
            return ReplyStream(chunks)
        raise failure  # outside the handler: no __context__ pointing at LiteLLM's exception


def model_response(data: dict[str, Any]) -> Any:
    """A LiteLLM ``ModelResponse`` rebuilt from its JSON form (a cached chat completion)."""
    return import_litellm().ModelResponse(**data)


def _reply(response: Any) -> Reply:
    choices = getattr(response, "choices", None) or []
    message = getattr(choices[0], "message", None) if choices else None
    text = getattr(message, "content", None) or "" if message is not None else ""
    tools = bool(
        message is not None and (getattr(message, "tool_calls", None) or getattr(message, "function_call", None))
    )
    usage = getattr(response, "usage", None)
    return Reply(
        response=response,
        text=text if isinstance(text, str) else json.dumps(text),
        has_tool_calls=tools,
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
    )


def _delta_text(chunk: Any) -> str:
    choices = getattr(chunk, "choices", None) or []
    if not choices:
        return ""
    delta = getattr(choices[0], "delta", None)
    text = getattr(delta, "content", None) if delta is not None else None
    return text if isinstance(text, str) else ""


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(out) < 8:
        out.append(current)
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return out


def translate(exc: BaseException, *, caller_key: bool = False) -> UpstreamError:
    """Classify a LiteLLM (or transport) exception; see the table in the module docstring."""
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    message = redact(str(exc)).split("\n")[0][:300]
    name = type(exc).__name__
    chain = _chain(exc)
    names = {type(e).__name__ for e in chain}
    retry_after = retry_after_of(exc)
    if "ResponseTooLarge" in names:
        too_big = next(e for e in chain if type(e).__name__ == "ResponseTooLarge")
        return UpstreamError("provider", "ResponseTooLarge", str(too_big))
    if isinstance(exc, TimeoutError) or "Timeout" in names:
        return UpstreamError("provider", "Timeout", message or "no answer within the attempt timeout", status_code=408)
    if status in _CREDENTIAL_STATUSES:
        return UpstreamError("caller" if caller_key else "credential", name, message, status_code=status)
    if status in _REQUEST_STATUSES and not names & _NETWORK_NAMES:
        return UpstreamError("request", name, message, status_code=status)
    if not names & _NETWORK_NAMES and any(isinstance(e, _LOCAL_TYPES) for e in chain):
        return UpstreamError("local", name, message, status_code=None)
    return UpstreamError("provider", name, message, status_code=status, retry_after=retry_after)
