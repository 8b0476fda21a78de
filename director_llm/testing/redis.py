"""A private, real ``redis-server`` for tests, which a test may stop and restart.

    with RedisServer() as server:          # free port, temp dir, no persistence
        client = redis.Redis.from_url(server.url)
        server.stop()                      # simulate an outage
        server.start()                     # back on the same port (and URL)

Talks to Redis over a raw socket (``PING``), so this module needs no Redis client library.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self
from urllib.parse import quote

from director_llm.errors import RedisUnavailableError

__all__ = ["RedisServer", "RedisUnavailableError", "ping"]

DEFAULT_HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


def ping(host: str = DEFAULT_HOST, port: int = 6379, *, timeout: float = 0.5, password: str | None = None) -> bool:
    """Whether a Redis server answers ``PING`` at ``host:port`` (after ``AUTH password``)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            if password is not None:
                secret = password.encode()
                sock.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(secret), secret))
                if not sock.recv(64).startswith(b"+OK"):
                    return False
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """Runs ``redis-server`` on 127.0.0.1 in a temporary directory, without persistence.

    Args:
        port: Port to use; 0 picks a free one on first start and keeps it for restarts.
        binary: The ``redis-server`` executable (looked up on PATH by default).
        password: Require this password (``requirepass``); ``url`` then carries it.
        persistent: Keep the data across :meth:`stop` / :meth:`start` (an append-only file,
            synced on every write), as a production Redis would; off by default (a restart
            then models an outage of a cache, starting empty).
    """

    def __init__(
        self, port: int = 0, *, binary: str | None = None, password: str | None = None, persistent: bool = False
    ):
        self.host = DEFAULT_HOST
        self.port = port
        self.password = password
        self.persistent = persistent
        self._binary = binary or shutil.which("redis-server")
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0`` (``redis://:PASSWORD@127.0.0.1:PORT/0`` with a password)."""
        auth = f":{quote(self.password, safe='')}@" if self.password is not None else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> str:
        """Start (or restart, on the same port) and wait until it answers PING. Returns the URL."""
        if self.running:
            return self.url
        if self._binary is None or shutil.which(self._binary) is None:
            raise RedisUnavailableError(f"redis-server not found ({self._binary or 'not on PATH'})")
        if self.port == 0:
            self.port = free_port(self.host)
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="director-redis-")
        log_path = Path(self._dir.name) / "redis.log"
        # Persistence off by default: a restart models an outage of a cache, starting empty.
        command = [
            self._binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", self._dir.name,
            "--save", "",
            "--appendonly", "yes" if self.persistent else "no",
            "--appendfsync", "always",
            "--daemonize", "no",
            "--logfile", str(log_path),
        ]  # fmt: skip
        if self.password is not None:
            command += ["--requirepass", self.password]
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ping(self.host, self.port, timeout=0.2, password=self.password):
            if self._process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-500:] if log_path.exists() else ""
                self.stop()
                raise RedisUnavailableError(f"redis-server on port {self.port} did not start: {tail.strip()}")
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        """Stop the process (keeps the port and temp dir for a later :meth:`start`)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_S)

    def close(self) -> None:
        """Stop and remove the temporary directory."""
        self.stop()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
