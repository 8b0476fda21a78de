"""Framework cost per request: the same JSON endpoint on Starlette and on FastAPI, called
in-process through httpx's ASGI transport (no sockets, so the machine's load matters less).

    PYTHONPATH=. .venv/bin/python scripts/bench_serve_stack.py [--requests 3000]

The numbers are CPU per request of the framework + the ASGI client, not of director-llm.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx
from fastapi import FastAPI, Request
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

BODY = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}


async def handler(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"id": "x", "echo": len(body["messages"])})


def starlette_app() -> Starlette:
    return Starlette(routes=[Route("/v1/chat/completions", handler, methods=["POST"])])


def fastapi_app() -> FastAPI:
    app = FastAPI()
    app.post("/v1/chat/completions")(handler)
    return app


async def per_request_us(app: object, n: int) -> float:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for _ in range(200):  # warm-up
            await client.post("/v1/chat/completions", json=BODY)
        best = float("inf")
        for _ in range(3):
            t0 = time.process_time()
            for _ in range(n):
                await client.post("/v1/chat/completions", json=BODY)
            best = min(best, (time.process_time() - t0) / n * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    for name, factory in (("starlette", starlette_app), ("fastapi", fastapi_app)):
        us = asyncio.run(per_request_us(factory(), args.requests))
        print(f"| {name} | {us:.0f} µs |")


if __name__ == "__main__":
    main()
