"""HTTP clients for the dispatcher: LiteLLM's own transport, with the response size capped.

A provider (or anything answering on its URL) can send a body of any size; LiteLLM reads a
non-streamed answer whole, so a 100 MiB body became +300 MB of memory. Every client the
dispatcher hands LiteLLM goes through ``CappedTransport``: a ``Content-Length`` over the cap
is refused before reading, and a body (streamed or not) is cut as soon as it passes the cap
(``ResponseTooLarge``, a failure of that deployment: the request moves on).

One client per event loop and deployment (and credential), built lazily: connections are
reused across requests, and a client never crosses event loops.
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from director_llm.providers import DeploymentInfo

__all__ = ["CappedTransport", "Clients", "ResponseTooLarge"]


class ResponseTooLarge(Exception):
    """A provider's response passed ``[llm] max_response_bytes``."""


class _CappedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, max_bytes: int) -> None:
        self._inner = inner
        self._max = max_bytes

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._inner:
            seen += len(chunk)
            if seen > self._max:
                raise ResponseTooLarge(f"the response passed {self._max} bytes ([llm] max_response_bytes)")
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class CappedTransport(httpx.AsyncBaseTransport):
    """Wraps a transport; responses larger than ``max_bytes`` raise ``ResponseTooLarge``."""

    def __init__(self, inner: httpx.AsyncBaseTransport, max_bytes: int) -> None:
        self._inner = inner
        self.max_bytes = max_bytes

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await response.aclose()
            raise ResponseTooLarge(
                f"the response declares {declared} bytes, more than {self.max_bytes} ([llm] max_response_bytes)"
            )
        if isinstance(response.stream, httpx.AsyncByteStream):
            response.stream = _CappedStream(response.stream, self.max_bytes)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class Clients:
    """LiteLLM client objects per (event loop, deployment, credential)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], Any]] = (
            weakref.WeakKeyDictionary()
        )

    def for_call(self, deployment: DeploymentInfo, request: dict[str, Any]) -> Any:
        """The ``client=`` to pass LiteLLM for this request (built on first use)."""
        key = request.get("api_key") or ""
        ident = (deployment.name, hashlib.sha256(str(key).encode()).hexdigest()[:16])
        clients = self._by_loop.setdefault(asyncio.get_running_loop(), {})
        client = clients.get(ident)
        if client is None:
            client = clients[ident] = self._build(deployment, request)
        return client

    def _transport(self) -> CappedTransport:
        from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler

        inner = AsyncHTTPHandler.create_async_transport() or httpx.AsyncHTTPTransport()
        return CappedTransport(inner, self.max_bytes)

    def _build(self, deployment: DeploymentInfo, request: dict[str, Any]) -> Any:
        if deployment.litellm_model.startswith(("openai/", "litellm_proxy/")):  # OpenAI SDK clients
            from openai import AsyncOpenAI

            return AsyncOpenAI(
                api_key=request.get("api_key") or "not-needed",
                base_url=request.get("api_base"),
                max_retries=0,
                timeout=request.get("timeout"),
                # The OpenAI SDK types its client as httpx2's; LiteLLM hands it httpx clients too.
                http_client=httpx.AsyncClient(transport=self._transport(), follow_redirects=True),  # type: ignore[arg-type]
            )
        from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler

        return AsyncHTTPHandler(timeout=request.get("timeout"), transport=self._transport())

    async def aclose(self) -> None:
        """Close the running loop's clients."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        for client in (self._by_loop.pop(loop, None) or {}).values():
            close = getattr(client, "close", None) or getattr(client, "aclose", None)
            if close is not None:
                try:
                    result = close()
                    if asyncio.iscoroutine(result):
                        await result
                except Exception:  # noqa: BLE001 - closing a dead connection is not an error
                    pass
