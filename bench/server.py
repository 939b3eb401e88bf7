"""The production HTTP setup for the benchmarks: gunicorn serving the real app, and a keep-alive client.

Server: ``gunicorn --workers 2 --worker-class gthread --threads 4 'api.app:create_app()'``, the setup
``docs/performance.md`` documents, configured through the same ``OPSFLOW_*`` variables as in
production. Tokens come from the embedded issuer (:func:`auth.issuer.issue_token`) with the server's
own signing keys, so every request is authenticated and authorised exactly as in production.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from auth.issuer import Identity, issue_token
from auth.keys import KeyStore
from auth.settings import AuthSettings
from engine.settings import PROJECT_ROOT

PRODUCTION_APP = "api.app:create_app()"
APP_WITHOUT_AUDIT = "bench.wsgi:app_without_audit()"
WORKERS = 2
THREADS = 4
SCOPES = ("tasks:read", "tasks:write", "instances:read", "instances:write")
UNIT = "Bench"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def issue_tokens(key_dir: Path, port: int, count: int) -> list[str]:
    """``count`` access tokens for distinct officers who hold both roles of the two-task process."""
    settings = AuthSettings(public_url=f"http://127.0.0.1:{port}", key_dir=key_dir)
    keystore = KeyStore(key_dir, token_lifetime=settings.token_lifetime)
    tokens = []
    for n in range(1, count + 1):
        identity = Identity(
            subject=f"bench.officer{n}",
            name=f"Bench officer {n}",
            roles=("investigator", "supervisor"),
            units=(UNIT,),
            rank="sergeant",
            clearance="SECRET",
        )
        issued = issue_token(
            keystore, settings, identity, client_id="opsflow-bench", scopes=SCOPES, grant="bench"
        )
        tokens.append(issued.access_token)
    return tokens


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def worker_pids(self) -> list[int]:
        from bench.common import children

        return children(self.process.pid)


@contextmanager
def gunicorn(
    url: str,
    key_dir: Path,
    port: int,
    *,
    app: str = PRODUCTION_APP,
    workers: int = WORKERS,
    threads: int = THREADS,
) -> Iterator[Server]:
    """Run gunicorn on ``port`` against the database ``url`` until the block ends."""
    env = {
        **os.environ,
        "OPSFLOW_DATABASE_URL": url,
        "OPSFLOW_KEY_DIR": str(key_dir),
        "OPSFLOW_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "OPSFLOW_EMBEDDED_WORKER": "false",
    }
    log = key_dir / f"gunicorn-{port}.log"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "gthread",
        "--threads",
        str(threads),
        "--log-level",
        "warning",
        app,
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
    server = Server(port, process, log)
    try:
        _wait_until_live(server, workers)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _wait_until_live(server: Server, workers: int) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {server.log.read_text(errors='replace')[-2000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            connection.request("GET", "/api/v1/health/live")
            if connection.getresponse().status == 200 and len(server.worker_pids()) >= workers:
                connection.close()
                return
            connection.close()
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError("gunicorn did not answer within 90 s")


class RequestError(RuntimeError):
    pass


@dataclass
class Client:
    """One user's keep-alive connection; records each request's latency by kind, in milliseconds."""

    port: int
    token: str
    samples: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    lifecycles: list[float] = field(default_factory=list)
    finished_at: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        self.headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}

    def call(self, kind: str, method: str, path: str, body: Any = None, *, expect: int = 200) -> Any:
        payload = None if body is None else json.dumps(body)
        started = time.perf_counter()
        self.connection.request(method, path, body=payload, headers=self.headers)
        response = self.connection.getresponse()
        raw = response.read()
        self.samples[kind].append((time.perf_counter() - started) * 1000)
        if response.status != expect:
            raise RequestError(f"{method} {path}: {response.status} {raw[:500]!r}")
        return json.loads(raw) if raw else None

    def _inbox_task(self, instance_id: str) -> dict[str, Any]:
        page = self.call("GET /tasks (inbox)", "GET", "/api/v1/tasks?process_key=two_tasks&limit=20")
        mine = [task for task in page["items"] if task["instance_id"] == instance_id]
        if len(mine) != 1:
            raise RequestError(f"the inbox shows {len(mine)} open tasks of instance {instance_id}")
        return mine[0]

    def lifecycle(self, key: str) -> float:
        """Start, list the inbox, complete the first task, list the inbox, complete the second."""
        started = time.perf_counter()
        instance = self.call(
            "POST /process-instances (start)",
            "POST",
            "/api/v1/process-instances",
            {
                "process_key": "two_tasks",
                "business_key": key,
                "unit": UNIT,
                "classification": "OFFICIAL",
                "variables": {},
            },
            expect=201,
        )
        for element in ("first", "second"):
            task = self._inbox_task(instance["id"])
            if task["element_id"] != element:
                raise RequestError(f"expected task {element}, the inbox shows {task['element_id']}")
            self.call(
                "POST /tasks/{id}/complete",
                "POST",
                f"/api/v1/tasks/{quote(task['id'])}/complete",
                {"data": {"note": "done"}},
            )
        elapsed = (time.perf_counter() - started) * 1000
        self.lifecycles.append(elapsed)
        self.finished_at.append(time.monotonic())
        return elapsed

    def probe(self) -> None:
        self.call("GET /health/live", "GET", "/api/v1/health/live")

    def close(self) -> None:
        self.connection.close()
