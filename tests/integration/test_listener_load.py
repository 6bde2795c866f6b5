"""A burst of deliveries, the listener killed in the middle and started again.

Every delivery that got its 202 makes exactly one run, and every such run is executed,
in the order the events came, never more at once than --concurrency. Deliveries sent again
after the restart (the sender saw no answer, or retries anyway) create nothing new.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests.conftest import CLI, announced_port, wait_http

pytestmark = pytest.mark.integration
SECRET = "burst-secret"
TRIGGER = """
apiVersion: triggers.tekton.dev/v1beta1
kind: EventListener
metadata: {name: burst}
spec:
  triggers:
    - name: on-push
      interceptors:
        - ref: {name: github}
          params:
            - {name: secretRef, value: {secretName: hook, secretKey: token}}
            - {name: eventTypes, value: [push]}
      bindings:
        - {name: revision, value: $(body.after)}
      template: {ref: trivial}
---
apiVersion: triggers.tekton.dev/v1beta1
kind: TriggerTemplate
metadata: {name: trivial}
spec:
  params: [{name: revision}]
  resourcetemplates:
    - apiVersion: tekton.dev/v1
      kind: TaskRun
      metadata: {generateName: build-}
      spec:
        params: [{name: revision, value: $(tt.params.revision)}]
        taskSpec:
          params: [{name: revision}]
          results: [{name: seen}]
          steps:
            - name: s
              image: bash
              args: ["$(params.revision)"]
              script: printf "$1" > $(results.seen.path)
"""
DELIVERIES = 60
CONCURRENCY = 3


def post(url: str, number: int) -> int:
    body = json.dumps({"ref": "refs/heads/main", "after": f"{number:040d}"}).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.UUID(int=number)),
        "X-Hub-Signature-256": signature,
    }
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0


def start(
    folder: Path, secrets: Path, runs: Path, log: Path, concurrency: int = CONCURRENCY
) -> tuple[subprocess.Popen[bytes], str]:
    # Port 0: the listener binds a free port itself and logs which one; a restart appends
    # to the same log, so only what this run wrote is searched.
    offset = log.stat().st_size if log.exists() else 0
    process = subprocess.Popen(
        [CLI, "listen", str(folder), "--port=0", f"--secrets-dir={secrets}",
         f"--runs-dir={runs}", f"--concurrency={concurrency}"],
        stdout=subprocess.DEVNULL, stderr=log.open("ab"),
    )  # fmt: skip
    port = announced_port(process, log, r"EventListener \S+ on http://127\.0\.0\.1:(\d+)", offset)
    try:
        wait_http(f"http://127.0.0.1:{port}/live")
    except BaseException:
        process.kill()
        process.wait(timeout=10)
        raise
    return process, f"http://127.0.0.1:{port}/"


def test_a_burst_survives_a_restart_without_loss_or_duplicates(tmp_path: Path) -> None:
    folder = tmp_path / "trigger"
    folder.mkdir()
    (folder / "burst.yaml").write_text(TRIGGER)
    secrets = tmp_path / "secrets"
    (secrets / "hook").mkdir(parents=True)
    (secrets / "hook" / "token").write_text(SECRET)
    runs, log = tmp_path / "runs", tmp_path / "listen.log"
    process, url = start(folder, secrets, runs, log)
    answered: dict[int, int] = {}
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            first = list(pool.map(lambda n: (n, post(url, n)), range(DELIVERIES // 2)))
            answered.update(first)
            # Killed without warning while runs are queued and running.
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            rest = list(pool.map(lambda n: (n, post(url, n)), range(DELIVERIES // 2, DELIVERIES)))
            assert all(code == 0 for _, code in rest)  # nobody listens: no 202
        process, url = start(folder, secrets, runs, log)
        with ThreadPoolExecutor(max_workers=16) as pool:
            # The sender delivers again everything it sent (answered or not).
            again = dict(pool.map(lambda n: (n, post(url, n)), range(DELIVERIES)))
        assert set(again.values()) == {202}
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            pending = [p for p in runs.glob("build-*.yaml") if not p.name.endswith(".finished.yaml")
                       and not p.with_suffix(".finished.yaml").is_file()]  # fmt: skip
            if not pending and len(list(runs.glob("*.finished.yaml"))) >= DELIVERIES:
                break
            time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=30)
    created = [p for p in runs.glob("build-*.yaml") if not p.name.endswith(".finished.yaml")]
    revisions = sorted(yaml.safe_load(p.read_text())["spec"]["params"][0]["value"] for p in created)
    assert revisions == [f"{n:040d}" for n in range(DELIVERIES)]  # one run per delivery
    for path in created:
        finished = yaml.safe_load(path.with_suffix(".finished.yaml").read_text())
        condition = finished["status"]["conditions"][0]
        assert condition["reason"] == "Succeeded", finished["metadata"]["name"]
        assert "results" in finished["status"], (path.name, finished["status"])
        result = finished["status"]["results"][0]["value"]
        assert result == finished["spec"]["params"][0]["value"]
    # Never more than --concurrency runs at once.
    running, peak = 0, 0
    for line in log.read_text().splitlines():
        if re.search(r"listen: build-\w+ started$", line):
            running += 1
            peak = max(peak, running)
        elif re.search(r"listen: build-\w+ finished with exit code", line):
            running -= 1
        elif "resuming" in line:
            running = 0  # the restarted listener: the killed one's runs died with it
    assert 1 < peak <= CONCURRENCY
