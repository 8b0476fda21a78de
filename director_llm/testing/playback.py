"""Playing one scripted Reply or Fault onto one HTTP request of the fake provider server.

Timing (delays, token rate), streaming and every fault's wire behaviour live here; the
protocol classes say what the bytes are, :mod:`director_llm.testing.servers` routes and records.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Awaitable, Callable

from aiohttp import web

from director_llm.testing.protocols import Protocol, count_tokens, with_invalid_utf8
from director_llm.testing.recording import RecordedRequest
from director_llm.testing.script import Fault, FaultKind, Reply

__all__ = ["ClientGone", "Player", "abandon", "client_gone", "reset_connection"]

Wait = Callable[[web.Request, "float | None"], Awaitable[None]]
"""Sleeps the given seconds (None: until the server stops), raising ClientGone if the client leaves."""


class ClientGone(Exception):
    """The client closed the connection while a handler was waiting or writing."""


class Player:
    """Plays one Reply or Fault onto one HTTP request."""

    def __init__(self, request: web.Request, proto: Protocol, recorded: RecordedRequest, wait: Wait):
        self.wait = wait
        self.request = request
        self.proto = proto
        self.recorded = recorded
        self.model = recorded.model or "fake-model"
        self.chunks_sent = 0

    def _usage(self, reply: Reply) -> tuple[int, int]:
        if reply.usage is not None:
            return reply.usage
        return count_tokens(self.proto.prompt_text(self.recorded.body)), count_tokens(reply.content)

    async def reply(self, reply: Reply) -> web.StreamResponse:
        await self.wait(self.request, reply.delay)
        usage = self._usage(reply)
        if not self.recorded.stream:
            await self.wait(self.request, reply.first_token_delay)
            return self._json(self.proto.complete(self.model, reply.content, usage, reply.finish_reason))
        response = await self._open_stream(usage)
        await self.wait(self.request, reply.first_token_delay)
        for index, chunk in enumerate(reply.chunks()):
            if index:
                await self.wait(self.request, reply.token_delay)
            await self._write(response, self.proto.stream_text(self.model, chunk))
            self.chunks_sent += 1
        for event in self.proto.stream_close(self.model, usage, reply.finish_reason, self.recorded.body):
            await self._write(response, event)
        await response.write_eof()
        return response

    async def fault(self, fault: Fault) -> web.StreamResponse:
        await self.wait(self.request, fault.delay)
        kind = fault.kind
        if kind is FaultKind.STATUS:
            message = fault.message
            if fault.echo_credentials:
                message = f"{message}: {json.dumps(self.recorded.credentials)}"
            body = (
                fault.body if fault.body is not None else self.proto.error(fault.status_code, message, fault.error_type)
            )
            return web.Response(
                status=fault.status_code,
                body=body.encode() if isinstance(body, str) else body,
                headers={"Content-Type": "application/json", **dict(fault.headers)},
            )
        if kind is FaultKind.HANG:
            await self.wait(self.request, None)
            return abandon(self.request)
        if kind is FaultKind.RESET:
            reset_connection(self.request)
            return abandon(self.request)
        default = Reply()
        usage = self._usage(default)
        if kind is FaultKind.CUT_STREAM:
            return await self._cut(fault, default, usage)
        if not self.recorded.stream:
            body = {
                FaultKind.MALFORMED_JSON: lambda: self.proto.malformed(),
                FaultKind.INVALID_UTF8: lambda: with_invalid_utf8(
                    self.proto.complete(
                        self.model,
                        self.proto.invalid_text(default.content),
                        usage,
                        "stop",
                    )
                ),
                FaultKind.EMPTY_CHOICES: lambda: self.proto.empty(self.model, usage),
            }[kind]()
            return self._json(body)
        if kind is FaultKind.EMPTY_CHOICES:
            response = await self._open_stream(usage, with_opening_events=False)
            events = self.proto.stream_empty(self.model)
        else:
            response = await self._open_stream(usage)
            if kind is FaultKind.MALFORMED_JSON:
                events = [self.proto.stream_malformed(self.model)]
            else:
                text = self.proto.invalid_text(default.content)
                events = [with_invalid_utf8(self.proto.stream_text(self.model, text))]
            events += self.proto.stream_close(self.model, usage, "stop", self.recorded.body)
        for event in events:
            await self._write(response, event)
        await response.write_eof()
        return response

    async def _cut(self, fault: Fault, reply: Reply, usage: tuple[int, int]) -> web.StreamResponse:
        if self.recorded.stream:
            response = await self._open_stream(usage)
            for chunk in reply.chunks()[: fault.after_chunks]:
                await self._write(response, self.proto.stream_text(self.model, chunk))
                self.chunks_sent += 1
        else:
            # Promise the whole body, deliver half of it.
            body = self.proto.complete(self.model, reply.content, usage, "stop")
            response = web.StreamResponse(headers={"Content-Type": self.proto.json_content_type})
            response.content_length = len(body)
            await response.prepare(self.request)
            await self._write(response, body[: len(body) // 2])
        if fault.reset:
            reset_connection(self.request)
        elif self.request.transport is not None:
            self.request.transport.close()
        return response

    def _json(self, body: bytes) -> web.Response:
        return web.Response(body=body, headers={"Content-Type": self.proto.json_content_type})

    async def _open_stream(self, usage: tuple[int, int], *, with_opening_events: bool = True) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": self.proto.stream_content_type,
                "Cache-Control": "no-cache",
            }
        )
        if client_gone(self.request):
            raise ClientGone
        await response.prepare(self.request)
        if with_opening_events:
            for event in self.proto.stream_open(self.model, usage, self.recorded.body):
                await self._write(response, event)
        return response

    async def _write(self, response: web.StreamResponse, data: bytes) -> None:
        if client_gone(self.request):
            raise ClientGone
        try:
            await response.write(data)
        except (ConnectionError, RuntimeError) as exc:
            # aiohttp raises ClientConnectionResetError (a ConnectionResetError) or, on
            # older versions, RuntimeError when the peer has gone.
            raise ClientGone from exc


def client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def abandon(request: web.Request) -> web.StreamResponse:
    """Finish a handler whose connection is already closed, without writing anything.

    aiohttp skips sending a response whose connection is gone; closing the transport
    makes sure a half-open connection does not linger either.
    """
    transport = request.transport
    if transport is not None and not transport.is_closing():
        transport.close()
    return web.Response(status=499)


def reset_connection(request: web.Request) -> None:
    """Close the client's TCP connection with an RST (SO_LINGER 0), sending no response."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
