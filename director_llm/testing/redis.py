"""A private, real ``redis-server`` for tests, which a test may stop and restart.

    with RedisServer() as server:          # free port, temp dir, no persistence
        client = redis.Redis.from_url(server.url)
        server.stop()                      # simulate an outage
        server.start()                     # back on the same port (and URL)

``RedisCluster`` starts a private 3-node Redis Cluster the same way.

Talks to Redis over a raw socket (``PING``), so this module needs no Redis client library.
"""

from __future__ import annotations

import functools
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self
from urllib.parse import quote

from director_llm.errors import RedisUnavailableError

__all__ = ["RedisCluster", "RedisServer", "RedisUnavailableError", "ping"]

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


def _free_cluster_port(host: str, *, taken: list[int]) -> int:
    """A free port P <= 55535 whose cluster bus port P + 10000 is free too (a cluster node
    listens on both)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20_000, 45_000)
        if port in taken or port + 10_000 in taken:
            continue
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind((host, port))
                b.bind((host, port + 10_000))
        except OSError:
            continue
        return port
    raise RedisUnavailableError("no free port pair (P, P + 10000) for a Redis Cluster node")


class RedisCluster:
    """A private Redis Cluster for tests: ``nodes`` ``redis-server --cluster-enabled yes`` processes
    on free ports, no replicas, joined with ``redis-cli --cluster create``.

        with RedisCluster() as cluster:     # waits until ``cluster_state:ok`` on every node
            url = cluster.url                # redis+cluster://127.0.0.1:PORT (a seed node)
    """

    def __init__(self, nodes: int = 3, *, binary: str | None = None, cli: str | None = None) -> None:
        self.host = DEFAULT_HOST
        self.size = nodes
        self.ports: list[int] = []
        self._binary = binary or shutil.which("redis-server")
        self._cli = cli or shutil.which("redis-cli")
        self._processes: list[subprocess.Popen[bytes]] = []
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        """``redis+cluster://127.0.0.1:PORT`` of the first node (the client finds the others)."""
        return f"redis+cluster://{self.host}:{self.ports[0]}"

    def start(self) -> str:
        """Start the nodes, create the cluster and wait until it serves. Returns the URL."""
        if self._binary is None or shutil.which(self._binary) is None:
            raise RedisUnavailableError(f"redis-server not found ({self._binary or 'not on PATH'})")
        if self._cli is None or shutil.which(self._cli) is None:
            raise RedisUnavailableError(f"redis-cli not found ({self._cli or 'not on PATH'})")
        self._dir = tempfile.TemporaryDirectory(prefix="director-redis-cluster-")
        root = Path(self._dir.name)
        try:
            for _ in range(self.size):
                port = _free_cluster_port(self.host, taken=self.ports)
                self.ports.append(port)
                command = [
                    self._binary,
                    "--port", str(port),
                    "--bind", self.host,
                    "--dir", str(root),
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", str(root / f"nodes-{port}.conf"),
                    "--save", "",
                    "--appendonly", "no",
                    "--daemonize", "no",
                    "--logfile", str(root / f"redis-{port}.log"),
                ]  # fmt: skip
                self._processes.append(subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
            for port in self.ports:
                self._wait(functools.partial(ping, self.host, port, timeout=0.2), f"node {port} to answer PING")
            create = [self._cli, "--cluster", "create", *(f"{self.host}:{p}" for p in self.ports)]
            done = subprocess.run(
                [*create, "--cluster-replicas", "0", "--cluster-yes"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=START_TIMEOUT_S * 3,
                check=False,
            )
            if done.returncode != 0:
                raise RedisUnavailableError(f"redis-cli --cluster create failed: {done.stdout[-500:]!r}")
            for port in self.ports:
                self._wait(functools.partial(self._cluster_ok, port), f"node {port} to report cluster_state:ok")
        except BaseException:
            self.close()
            raise
        return self.url

    def _cluster_ok(self, port: int) -> bool:
        assert self._cli is not None
        out = subprocess.run(
            [self._cli, "-h", self.host, "-p", str(port), "cluster", "info"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=STOP_TIMEOUT_S,
            check=False,
        )
        return b"cluster_state:ok" in out.stdout

    def _wait(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S * 2
        while not ready():
            dead = [p.args for p in self._processes if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RedisUnavailableError(f"Redis Cluster did not start: waited for {what}")
            time.sleep(0.05)

    def close(self) -> None:
        """Stop every node and remove the temporary directory."""
        processes, self._processes = self._processes, []
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT_S)
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
