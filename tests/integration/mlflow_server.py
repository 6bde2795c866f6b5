"""A real MLflow tracking server on 127.0.0.1, and MLflow's own client to read it back.

MLflow's pins (pandas, graphql-core, ...) would change the project's venv, so it lives in
its own, ``.venv-mlflow`` (``make test`` creates it; ``TEKTON_MLOPS_MLFLOW_VENV`` points
elsewhere). The server keeps runs in SQLite and serves artifacts through its proxy
(``--artifacts-destination``), as a cluster's would. What the runtime logged is read back
with ``MlflowClient`` in a subprocess of that venv (tests/integration/mlflow_read.py), so
the tests check what MLflow itself sees, not what our client believes it sent.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import REPO, need, wait_http

MLFLOW_VENV = Path(os.environ.get("TEKTON_MLOPS_MLFLOW_VENV", REPO / ".venv-mlflow"))
READER = Path(__file__).with_name("mlflow_read.py")


@dataclass
class MlflowServer:
    """``mlflow server`` with a SQLite store and proxied artifacts under ``root``."""

    uri: str
    root: Path
    process: subprocess.Popen[bytes]

    def read(self, query: str, **args: Any) -> Any:
        """Ask MLflow's client (mlflow_read.py) ``query``; its JSON answer."""
        done = subprocess.run(
            [str(MLFLOW_VENV / "bin" / "python"), str(READER), self.uri, query, json.dumps(args)],
            capture_output=True,
            check=False,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        return json.loads(done.stdout)

    def stop(self) -> None:
        # The server forks workers: the whole process group goes.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.process.poll() is not None:
                break
            with_group(self.process.pid, sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                continue
        with_group(self.process.pid, signal.SIGKILL)  # workers left behind by the leader
        self.process.wait(timeout=10)


def with_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group has ended already
        os.killpg(pgid, sig)


def start_mlflow(root: Path) -> MlflowServer:
    mlflow = MLFLOW_VENV / "bin" / "mlflow"
    need(mlflow.exists(), f"no MLflow server at {mlflow} (make test creates {MLFLOW_VENV.name})")
    root.mkdir(parents=True, exist_ok=True)
    command = [
        str(mlflow), "server",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
        "--host", "127.0.0.1", "--port", "0", "--workers", "1",
    ]  # fmt: skip
    # No job runner (huey workers): nothing here runs server-side jobs.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,  # its own process group, stopped whole
    )
    lines: deque[str] = deque(maxlen=40)
    found: queue.Queue[int | None] = queue.Queue()
    announces = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")

    def read() -> None:
        assert process.stderr is not None
        for raw in process.stderr:
            line = raw.decode(errors="replace").rstrip()
            lines.append(line)
            if (match := announces.search(line)) is not None:
                found.put(int(match.group(1)))
        found.put(None)

    threading.Thread(target=read, daemon=True).start()
    server = MlflowServer("", root, process)
    try:
        port = found.get(timeout=90)
        if port is None:
            raise TimeoutError(f"mlflow server did not start: {' | '.join(lines)}")
        server.uri = f"http://127.0.0.1:{port}"
        wait_http(f"{server.uri}/health", seconds=60)  # ready when it answers, not when bound
    except BaseException:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def running_mlflow(root: Path) -> Iterator[MlflowServer]:
    """A server for a block (a test module's fixture): stopped, workers and all, after it."""
    server = start_mlflow(root)
    try:
        yield server
    finally:
        server.stop()
