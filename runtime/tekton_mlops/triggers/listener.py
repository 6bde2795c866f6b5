"""An EventListener on one machine: webhooks in, PipelineRuns out, with Triggers' semantics.

Each POST is one event with a fresh event ID. Every trigger of the listener runs
its interceptors in order; a trigger that passes them renders its template, and
each resource it creates (a PipelineRun) is written to the runs folder and, unless
``dry_run``, run by the local executor, in the order the events came, ``concurrency``
at a time. A rejected event creates nothing; the reason is logged. Deliveries are
idempotent: a redelivery with an ``X-GitHub-Delivery`` (or ``X-Gitlab-Event-UUID``)
already seen creates nothing new. The answer is an EventListener's: 202 with the event ID.

Nothing accepted is lost across a restart: an event's runs are written first, then one
line in ``events.jsonl`` commits the event (delivery, event ID, runs) before the 202 is
sent. A restarted listener runs every committed run that has not finished, in order, and
removes run files no committed event names (a crash before the commit: the sender got no
202 and will deliver again).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from tekton_mlops.httpjson import JsonHandler
from tekton_mlops.triggers.event import Event, canonical
from tekton_mlops.triggers.interceptors import json_body, run_interceptors
from tekton_mlops.triggers.resources import TriggerError, TriggerSet

log = logging.getLogger("tekton_mlops.listen")
DELIVERY_HEADERS = ("X-Github-Delivery", "X-Gitlab-Event-Uuid")
#: Set for each run the listener starts: the run ends if the listener dies (see local/cli.py),
#: so a restarted listener never races a leftover run of the same name.
DIE_WITH_PARENT = "TEKTON_MLOPS_DIE_WITH_PARENT"


@dataclass
class Outcome:
    event_id: str
    created: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    duplicate_of: str = ""


class Listener:
    """The EventListener ``name`` of ``triggers``; thread-safe."""

    def __init__(
        self,
        triggers: TriggerSet,
        name: str,
        secrets: Path,
        runs_dir: Path,
        dry_run: bool = False,
        run_args: Sequence[str] = (),
        concurrency: int = 1,
    ) -> None:
        if name not in triggers.listeners:
            known = ", ".join(sorted(triggers.listeners)) or "none"
            raise TriggerError(f"no EventListener {name!r} (found: {known})")
        self.triggers = triggers
        self.name = name
        self.spec = triggers.listeners[name].get("spec", {})
        self.secrets = secrets
        self.runs_dir = runs_dir
        self.dry_run = dry_run
        self.run_args = list(run_args)
        self._lock = threading.Lock()
        self._deliveries: dict[str, str] = {}  # delivery ID -> event ID
        self._queue: queue.Queue[Path | None] = queue.Queue()
        self._workers: list[threading.Thread] = []
        self.concurrency = max(1, concurrency)
        runs_dir.mkdir(parents=True, exist_ok=True)
        self._journal = runs_dir / "events.jsonl"
        self._recover()

    def _recover(self) -> None:
        """Read the journal: deliveries seen, and committed runs still to do (in order)."""
        committed: list[Path] = []
        if self._journal.is_file():
            for line in self._journal.read_text().splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a crash was never committed
                if record.get("delivery"):
                    self._deliveries[record["delivery"]] = record["event"]
                committed += [self.runs_dir / f"{name}.yaml" for name in record.get("runs", [])]
        names = {path.name for path in committed}
        for path in sorted(self.runs_dir.glob("*.yaml")):
            if path.name.endswith(".finished.yaml") or path.name in names:
                continue
            log.info("removing %s: its event was never committed (no 202 was sent)", path.name)
            path.unlink()
        pending = [p for p in committed if p.is_file() and not _finished(p).is_file()]
        if pending and not self.dry_run:
            log.info("resuming %d run(s) accepted before a restart", len(pending))
            self._start_workers()
            for path in pending:
                self._queue.put(path)

    def handle(self, raw: bytes, headers: dict[str, list[str]]) -> Outcome:
        outcome = Outcome(str(uuid.uuid4()))
        delivery = next((",".join(headers[h]) for h in DELIVERY_HEADERS if headers.get(h)), "")
        if delivery:
            with self._lock:
                if delivery in self._deliveries:
                    outcome.duplicate_of = self._deliveries[delivery]
                    log.info("event %s: delivery %s already processed as event %s",
                             outcome.event_id, delivery, outcome.duplicate_of)  # fmt: skip
                    return outcome
                self._deliveries[delivery] = outcome.event_id
        try:
            self._evaluate(raw, headers, outcome)
        finally:
            self._commit(delivery, outcome)
        return outcome

    def _evaluate(self, raw: bytes, headers: dict[str, list[str]], outcome: Outcome) -> None:
        try:
            body = json_body(raw)
        except ValueError as exc:
            outcome.rejected.append(f"*: {exc}")
            log.info("event %s: rejected: %s", outcome.event_id, exc)
            return
        for trigger in self.spec.get("triggers") or []:
            event = Event(body, raw, headers)
            name = trigger.get("name", "trigger")
            verdict = run_interceptors(event, trigger.get("interceptors") or [], self.secrets)
            if not verdict.proceed:
                outcome.rejected.append(f"{name}: {verdict.reason}")
                log.info(
                    "event %s: trigger %s: not run: %s", outcome.event_id, name, verdict.reason
                )
                continue
            try:
                resources = self.triggers.render(trigger, event)
            except TriggerError as exc:
                outcome.rejected.append(f"{name}: {exc}")
                log.info("event %s: trigger %s: %s", outcome.event_id, name, exc)
                continue
            for resource in resources:
                outcome.created.append(self._create(resource, outcome.event_id, name))

    def _commit(self, delivery: str, outcome: Outcome) -> None:
        """One journal line makes the event's runs real; then they are queued, in order."""
        record = {"delivery": delivery, "event": outcome.event_id, "runs": outcome.created}
        with self._lock:
            with self._journal.open("a") as journal:
                journal.write(json.dumps(record) + "\n")
                journal.flush()
                os.fsync(journal.fileno())
            if not self.dry_run:
                for name in outcome.created:
                    path = self.runs_dir / f"{name}.yaml"
                    if _is_run(path):
                        self._start_workers()
                        self._queue.put(path)

    def _create(self, resource: dict[str, Any], event_id: str, trigger: str) -> str:
        labels = resource.setdefault("metadata", {}).setdefault("labels", {})
        labels.update(
            {
                "triggers.tekton.dev/eventlistener": self.name,
                "triggers.tekton.dev/trigger": trigger,
                "triggers.tekton.dev/triggers-eventid": event_id,
            }
        )
        name = str(resource["metadata"]["name"])
        path = self.runs_dir / f"{name}.yaml"
        with self._lock:
            while path.exists():  # generateName collided: draw again, as the API server would
                name = f"{name[:-5]}{uuid.uuid4().hex[:5]}"
                resource["metadata"]["name"] = name
                path = self.runs_dir / f"{name}.yaml"
            path.write_text(yaml.safe_dump(resource, sort_keys=False))
        log.info(
            "event %s: trigger %s: created %s %s", event_id, trigger, resource.get("kind"), name
        )
        return name

    def _start_workers(self) -> None:
        if self._workers:
            return
        for number in range(self.concurrency):
            worker = threading.Thread(target=self._run_all, name=f"run-{number}", daemon=True)
            self._workers.append(worker)
            worker.start()

    def _run_all(self) -> None:
        while (path := self._queue.get()) is not None:
            log.info("%s started", path.stem)
            finished = _finished(path)
            # A run cut short by a crash starts again from nothing.
            shutil.rmtree(self.runs_dir / "runs" / path.stem, ignore_errors=True)
            with path.with_suffix(".log").open("w") as output:
                done = subprocess.run(
                    [sys.executable, "-m", "tekton_mlops", "run", str(path), "-o", "yaml",
                     "--run-dir", str(self.runs_dir / "runs"), *self.run_args],
                    stdout=subprocess.PIPE, stderr=output, text=True, check=False,
                    env={**os.environ, DIE_WITH_PARENT: str(os.getpid())},
                )  # fmt: skip
            temporary = finished.with_suffix(".partial")
            temporary.write_text(done.stdout)
            temporary.replace(finished)  # finished means the whole object, never half of it
            log.info("%s finished with exit code %d", path.stem, done.returncode)
            self._queue.task_done()

    def wait_idle(self) -> None:
        """Block until every queued run has finished (for tests and clean shutdown)."""
        self._queue.join()


def _finished(path: Path) -> Path:
    return path.with_suffix(".finished.yaml")


def _is_run(path: Path) -> bool:
    try:
        kind = (yaml.safe_load(path.read_text()) or {}).get("kind")
    except (OSError, yaml.YAMLError):
        return False
    return kind in ("PipelineRun", "TaskRun")


class ListenerServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], listener: Listener, max_body: int) -> None:
        super().__init__(address, _Handler)
        self.listener = listener
        self.max_body = max_body


class _Handler(JsonHandler):
    server: ListenerServer
    log = log

    def do_POST(self) -> None:  # noqa: N802
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            self.close_connection = True
            self.reply(411, {"error": "a Content-Length header is required"})
            return
        if int(length) > self.server.max_body:
            self.close_connection = True
            log.info("refused a body of %s bytes (limit %d)", length, self.server.max_body)
            self.reply(413, {"error": f"body over {self.server.max_body} bytes"})
            return
        raw = self.rfile.read(int(length))
        headers: dict[str, list[str]] = {}
        for key, value in self.headers.items():
            headers.setdefault(canonical(key), []).append(value)
        outcome = self.server.listener.handle(raw, headers)
        self.reply(
            202,
            {
                "eventListener": self.server.listener.name,
                "namespace": "default",
                "eventListenerUID": "",
                "eventID": outcome.duplicate_of or outcome.event_id,
            },
        )

    def do_GET(self) -> None:  # noqa: N802 - a liveness answer, as the EventListener's /live
        self.reply(
            200 if self.path in ("/live", "/ready") else 405,
            {"listener": self.server.listener.name},
        )
