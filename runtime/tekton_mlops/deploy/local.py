"""Local deployments: ``tekton-mlops serve`` processes in the background, stable and canary.

A deployment is a folder ``<state>/<name>/`` with up to two slots, ``stable``
and ``canary``, each holding the verified model, the server's URL and its pid.
This is KServe's traffic model on one machine: a canary runs beside the stable
server until it is promoted (it replaces the stable one) or rolled back (it is
stopped and the stable one keeps serving). Later steps and ``finally`` tasks
find the servers through the same state folder.

Example::

    slot = start(Path("/tmp/state"), "iris", model_dir, canary=True)
    slot.url        # 'http://127.0.0.1:40123'
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tekton_mlops.deploy.kserve import DeployError

STABLE, CANARY = "stable", "canary"


@dataclass(frozen=True)
class Slot:
    folder: Path

    @property
    def url(self) -> str:
        path = self.folder / "url"
        return path.read_text().strip() if path.is_file() else ""

    @property
    def pid(self) -> int:
        path = self.folder / "pid"
        return int(path.read_text()) if path.is_file() else 0

    @property
    def running(self) -> bool:
        if not self.pid:
            return False
        try:
            # Reap it if it is our own child that exited (a zombie still answers kill 0).
            if os.waitpid(self.pid, os.WNOHANG)[0]:
                return False
        except ChildProcessError:
            pass
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def slot(state: Path, name: str, which: str) -> Slot:
    return Slot(state / name / which)


def ready(url: str, model: str) -> bool:
    """Whether the server at ``url`` answers that ``model`` is ready."""
    try:
        with urllib.request.urlopen(f"{url}/v2/models/{model}/ready", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def start(state: Path, name: str, model_dir: Path, canary: bool, port: int = 0) -> Slot:
    """Copy the verified model into a slot and start a server on it; wait until it is ready."""
    # A canary is never the stable deployment until promoted, even the first one: rolling
    # back a first canary leaves nothing serving rather than a model that failed its SLOs.
    return launch(slot(state, name, CANARY if canary else STABLE), name, model_dir, port)


def launch(target: Slot, name: str, model_dir: Path, port: int = 0, version: str = "") -> Slot:
    """Copy the model into ``target``'s folder (replacing what was there) and start a server
    on it, serving ``name`` (``version`` in its metadata); wait until it is ready."""
    stop(target)
    shutil.rmtree(target.folder, ignore_errors=True)
    target.folder.mkdir(parents=True)
    shutil.copytree(model_dir, target.folder / "model", ignore=shutil.ignore_patterns(".partial-*"))
    ready_file = target.folder / "url.partial"
    log = (target.folder / "server.log").open("wb")
    command = [
        sys.executable, "-m", "tekton_mlops", "serve",
        f"--model-path={target.folder / 'model'}", f"--model-name={name}",
        f"--model-version={version}", f"--port={port}", f"--ready-file={ready_file}",
    ]  # fmt: skip
    # A session of its own: the server outlives this step, as a deployment should.
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    (target.folder / "pid").write_text(str(process.pid))
    deadline = time.monotonic() + 60
    while not (ready_file.is_file() and ready(ready_file.read_text().strip(), name)):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(target)
            tail = (target.folder / "server.log").read_text(errors="replace").strip()[-400:]
            raise DeployError(f"the local server for {name} did not become ready: {tail}")
        time.sleep(0.05)
    ready_file.rename(target.folder / "url")
    return target


def stop(target: Slot, grace: float = 10.0) -> bool:
    """SIGTERM the slot's server and wait for it to drain; True if one was running."""
    if not target.running:
        return False
    os.kill(target.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while target.running and time.monotonic() < deadline:
        time.sleep(0.05)
    if target.running:
        os.kill(target.pid, signal.SIGKILL)
    (target.folder / "pid").unlink(missing_ok=True)
    return True


def promote(state: Path, name: str) -> Slot:
    """The canary becomes the stable deployment; the old stable server stops."""
    canary, stable = slot(state, name, CANARY), slot(state, name, STABLE)
    if not canary.running:
        raise DeployError(f"{name}: no canary is running to promote")
    stop(stable)
    shutil.rmtree(stable.folder, ignore_errors=True)
    canary.folder.rename(stable.folder)
    return slot(state, name, STABLE)


def rollback(state: Path, name: str) -> Slot:
    """Stop the canary; the stable server keeps (or goes back to) all traffic."""
    canary = slot(state, name, CANARY)
    stop(canary)
    shutil.rmtree(canary.folder, ignore_errors=True)
    return slot(state, name, STABLE)
