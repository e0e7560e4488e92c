"""Shared pieces of the HTTP benchmarks: a gunicorn server, a wrk run, signed session cookies.

The load generator is ``wrk`` (``apt-get install -y wrk``); its Lua scripts live in
``bench/wrk/``. Every script prints one ``WRK_JSON {...}`` line from its ``done`` hook with the
request count, the duration and the latency percentiles, which :func:`run_wrk` parses.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
WRK_DIR = BENCH_DIR / "wrk"
USER_AGENT = "reviewapp-bench/1.0"
SECRET_KEY = "bench-only-secret-key"  # noqa: S105 - the benchmark servers' signing key


@dataclass
class WrkResult:
    """One wrk run: latencies in milliseconds, throughput in requests per second."""

    requests: int
    seconds: float
    p50: float
    p95: float
    p99: float
    non_2xx: int
    socket_errors: int
    extra: dict[str, Any]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        return (
            f"{self.rps:8.1f} req/s  p50 {self.p50:7.1f} ms  p95 {self.p95:7.1f} ms  "
            f"p99 {self.p99:7.1f} ms  ({self.requests:,} requests, {self.non_2xx} non-2xx, "
            f"{self.socket_errors} socket errors)"
        )


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Gunicorn:
    """A gunicorn server running ``target`` (``module:callable``) with ``workers`` sync workers."""

    def __init__(self, target: str, *, workers: int, env: dict[str, str], chdir: Path = ROOT):
        self.target, self.workers, self.env, self.chdir = target, workers, env, chdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server and wait until every worker has booted (raises RuntimeError)."""
        gunicorn = Path(sys.executable).with_name("gunicorn")
        self.process = subprocess.Popen(  # noqa: S603 - fixed argument list
            [
                str(gunicorn),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.workers),
                "--worker-class",
                "sync",
                "--backlog",
                "2048",
                "--log-level",
                "warning",
                # import the app once in the arbiter (the usual production setting); the
                # engine opens no connection before the fork
                "--preload",
                "--chdir",
                str(self.chdir),
                self.target,
            ],
            env={**os.environ, **self.env},
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn {self.target} exited with {self.process.returncode}")
            if len(self.worker_pids()) == self.workers and self._answers():
                return
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn {self.target} did not start within 60 s")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def worker_pids(self) -> list[int]:
        """Process ids of the worker processes (children of the arbiter)."""
        if self.process is None:
            return []
        try:
            return [c.pid for c in psutil.Process(self.process.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def worker_rss_mb(self) -> list[float]:
        """Resident set size of each worker, in MiB."""
        sizes = []
        for pid in self.worker_pids():
            try:
                sizes.append(psutil.Process(pid).memory_info().rss / 2**20)
            except psutil.NoSuchProcess:
                pass
        return sizes

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def gunicorn(
    target: str, *, workers: int, env: dict[str, str], chdir: Path = ROOT
) -> Iterator[Gunicorn]:
    """Run a :class:`Gunicorn` for the duration of the ``with`` block."""
    server = Gunicorn(target, workers=workers, env=env, chdir=chdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def require_wrk() -> str:
    """Path of the wrk binary; exits with a message when it is missing."""
    path = shutil.which("wrk")
    if path is None:
        sys.exit("error: wrk is not installed (apt-get install -y wrk)")
    return path


def run_wrk(
    url: str,
    *,
    connections: int,
    seconds: int,
    script: str = "report.lua",
    threads: int | None = None,
    headers: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    timeout: int = 10,
) -> WrkResult:
    """Load ``url`` with wrk for ``seconds``; ``threads`` defaults to min(2, connections);
    a request unanswered after ``timeout`` seconds counts as a socket error.

    Raises RuntimeError when wrk fails or prints no WRK_JSON line.
    """
    args = [
        require_wrk(),
        "--latency",
        "-t",
        str(threads or min(2, connections)),
        "-c",
        str(connections),
        "-d",
        f"{seconds}s",
        "--timeout",
        f"{timeout}s",
        "-s",
        str(WRK_DIR / script),
        "-H",
        f"User-Agent: {USER_AGENT}",
    ]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    done = subprocess.run(  # noqa: S603 - fixed argument list
        [*args, url], capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False
    )
    for line in done.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            data = json.loads(line.removeprefix("WRK_JSON "))
            return WrkResult(
                requests=data.pop("requests"),
                seconds=data.pop("duration_us") / 1e6,
                p50=data.pop("p50") / 1000,
                p95=data.pop("p95") / 1000,
                p99=data.pop("p99") / 1000,
                non_2xx=data.pop("non2xx"),
                socket_errors=data.pop("errors"),
                extra=data,
            )
    raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")


def session_cookie(app: Any, user: Any, remote_addr: str = "127.0.0.1") -> str:
    """The value of a signed Flask session cookie in which Flask-Login has logged ``user`` in,
    valid for requests from ``remote_addr`` with the benchmark's User-Agent (so it passes the
    "strong" session protection of the default settings)."""
    from flask import session
    from flask_login import login_user

    with app.test_request_context(
        "/", environ_base={"REMOTE_ADDR": remote_addr}, headers={"User-Agent": USER_AGENT}
    ):
        login_user(user)
        serializer = app.session_interface.get_signing_serializer(app)
        return str(serializer.dumps(dict(session)))


def server_env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """Environment of a reviewapp gunicorn server (embedded default settings, PostgreSQL and
    Redis, a fixed secret so the benchmark can sign session cookies)."""
    return {
        "REVIEWAPP_CONFIG": "default",
        "REVIEWAPP_DATABASE_URL": database_url,
        "REVIEWAPP_REDIS_URL": redis_url,
        "REVIEWAPP_SECRET_KEY": SECRET_KEY,
        **extra,
    }


def percent(value: float, ceiling: float) -> str:
    """``value`` as a percentage of ``ceiling`` (text)."""
    return f"{100 * value / ceiling:.0f} %" if ceiling else "n/a"


#: API rate limits of the benchmark servers: one client address sends every request
UNLIMITED = "1000000 per minute"


def api_server_env(database_url: str, redis_url: str) -> dict[str, str]:
    """:func:`server_env` with the API rate limits raised to :data:`UNLIMITED` (the limiter
    still counts every request in Redis)."""
    return server_env(
        database_url,
        redis_url,
        REVIEWAPP_RATELIMIT_API=UNLIMITED,
        REVIEWAPP_RATELIMIT_API_IP=UNLIMITED,
    )


def load_api(
    *,
    database_url: str,
    redis_url: str,
    workers: int,
    clients: int,
    seconds: int,
    script: str,
    wrk_env: dict[str, str],
) -> WrkResult:
    """Run the real app (``wsgi:app``) under gunicorn with the API rate limits raised, warm it
    up for 15 s with the same wrk ``script`` (every worker imports, compiles templates and
    the ruleset, fills its connection pool), then measure ``seconds`` of it; wrk runs one
    thread and one connection per client, each with its own API token from ``wrk_env``."""
    env = api_server_env(database_url, redis_url)
    with gunicorn("wsgi:app", workers=workers, env=env) as server:
        for length, timeout in ((15, 60), (seconds, 10)):
            result = run_wrk(
                server.url + "/",
                connections=clients,
                threads=clients,
                seconds=length,
                script=script,
                env=wrk_env,
                timeout=timeout,
            )
    return result
