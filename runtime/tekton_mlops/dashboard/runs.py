"""A runs folder (``tekton-mlops run --run-dir``) read into typed views.

The executor keeps each run in ``<runs>/<name>/``: ``pipelinerun.yaml`` (written when
the run starts, rewritten as each TaskRun ends, and last as the finished object), one
folder per TaskRun or CustomRun with its ``taskrun.yaml`` (written at its start and its
end), ``logs/<step>.log``, ``steps/step-<name>/exitCode`` and ``results/``, and the
run's workspaces in ``workspaces/<name>/``. A standalone TaskRun keeps its pod in
``<runs>/<name>/<name>/``. Nothing here writes: every view is what the files say now,
and a file half written or missing reads as "not there yet".

Example::

    folder = RunsFolder(Path(".tekton-mlops/runs"))
    for summary in folder.summaries():
        print(summary.name, summary.status.reason)
    run = folder.run("train-and-deploy-local-x1y2z")
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from tekton_mlops.errors import MlopsError
from tekton_mlops.tekton.defaults import step_name
from tekton_mlops.tekton.durations import parse_time
from tekton_mlops.tekton.pipeline_rules import dependencies

#: The states a run, task or step is in; each page shows its reason as text beside it.
SUCCEEDED, FAILED, RUNNING, PENDING, SKIPPED, CANCELLED, UNKNOWN = (
    "succeeded",
    "failed",
    "running",
    "pending",
    "skipped",
    "cancelled",
    "unknown",
)
_CANCELLED_REASONS = {"Cancelled", "CancelledRunFinally", "StoppedRunFinally", "TaskRunCancelled"}
#: Workspace bindings whose folders hold what the run made; secrets and configMaps are
#: copies of cluster objects and never shown or served.
_MADE_BY_THE_RUN = ("emptyDir", "volumeClaimTemplate")
#: How deep and how wide the artifact search looks into a workspace (datasets can be big).
_WALK_DEPTH, _WALK_ENTRIES = 8, 20000
#: Parsed object files kept (a few MB); past it the cache starts again.
_CACHED_FILES = 20000


class NotFound(MlopsError):
    """No such run, TaskRun, step or file in the runs folder."""


@dataclass(frozen=True)
class Status:
    """A state (one of the constants above) and the words Tekton gives it."""

    state: str
    reason: str
    message: str = ""

    @property
    def finished(self) -> bool:
        return self.state not in (RUNNING, PENDING)


@dataclass(frozen=True)
class Step:
    """One step (or sidecar) of a TaskRun; ``log`` is relative to the run folder."""

    name: str
    status: Status
    exit_code: int | None
    started: float | None
    finished: float | None
    log: str
    sidecar: bool = False


@dataclass(frozen=True)
class ChildRun:
    """A TaskRun or CustomRun of a pipeline task; ``folder`` is relative to the run folder."""

    name: str
    kind: str
    folder: str
    status: Status
    started: float | None
    finished: float | None
    steps: tuple[Step, ...]
    params: tuple[tuple[str, str], ...]
    results: tuple[tuple[str, str], ...]
    retries: int = 0


@dataclass(frozen=True)
class Task:
    """A pipeline task: its runs (several for a matrix), or why it has none."""

    name: str
    is_finally: bool
    status: Status
    runs: tuple[ChildRun, ...]
    when: tuple[str, ...] = ()
    display_name: str = ""

    @property
    def started(self) -> float | None:
        times = [r.started for r in self.runs if r.started is not None]
        return min(times) if times else None

    @property
    def finished(self) -> float | None:
        times = [r.finished for r in self.runs]
        return None if not times or None in times else max(t for t in times if t is not None)


@dataclass(frozen=True)
class Edge:
    """``target`` runs after ``source``: by ``runAfter``, or because it reads its results."""

    source: str
    target: str
    via: str  # "runAfter" or "results"


@dataclass(frozen=True)
class Artifact:
    """Something a run made that is worth opening; ``path`` is relative to the run folder."""

    kind: str
    path: str


@dataclass(frozen=True)
class RunSummary:
    """One line of the run list."""

    name: str
    kind: str
    pipeline: str
    status: Status
    started: float | None
    finished: float | None


@dataclass(frozen=True)
class Run:
    """Everything the run page shows."""

    summary: RunSummary
    tasks: tuple[Task, ...]
    edges: tuple[Edge, ...]
    params: tuple[tuple[str, str], ...]
    results: tuple[tuple[str, str], ...]
    served: tuple[str, ...]  # folders (relative to the run folder) whose files may be served
    now: float  # when it was read: the end of what is still running

    @property
    def name(self) -> str:
        return self.summary.name

    def child(self, name: str) -> ChildRun:
        for task in self.tasks:
            for child in task.runs:
                if child.name == name:
                    return child
        raise NotFound(f"run {self.name} has no TaskRun {name}")


@dataclass(frozen=True)
class LogTail:
    """The end of a log: ``text`` is its last ``len(text)`` bytes of ``size``."""

    text: str
    size: int

    @property
    def truncated(self) -> bool:
        return len(self.text.encode()) < self.size


def text_of(value: object) -> str:
    """A param or result value as shown: strings as they are, arrays and objects as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def status_of(document: Mapping[str, Any] | None) -> Status:
    """The Succeeded condition of a Tekton object as a Status."""
    conditions = ((document or {}).get("status") or {}).get("conditions") or []
    found = next((c for c in conditions if c.get("type") == "Succeeded"), None)
    if found is None:
        return Status(PENDING, "Pending")
    reason, message = str(found.get("reason") or ""), str(found.get("message") or "")
    if found.get("status") == "True":
        return Status(SUCCEEDED, reason or "Succeeded", message)
    if found.get("status") == "False":
        state = CANCELLED if reason in _CANCELLED_REASONS else FAILED
        return Status(state, reason or "Failed", message)
    state = PENDING if reason in ("Pending", "PipelineRunPending") else RUNNING
    return Status(state, reason or "Running", message)


def log_tail(path: Path, limit: int) -> LogTail:
    """The last ``limit`` bytes of a log (cut at a line start when one is near)."""
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(max(0, size - limit))
            data = handle.read(limit)
    except OSError:
        return LogTail("", 0)
    if len(data) < size:
        newline = data.find(b"\n", 0, 4096)
        data = data[newline + 1 :] if newline >= 0 else data
    return LogTail(data.decode(errors="replace"), size)


class RunsFolder:
    """The runs under ``root``, read on demand; parsed files are kept until they change.

    Safe to share between threads (the server answers requests in several).
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._cache: dict[Path, tuple[tuple[int, int], dict[str, Any] | None]] = {}
        self._lock = threading.Lock()

    # --- files --------------------------------------------------------------------------

    def read(self, path: Path) -> dict[str, Any] | None:
        """A Tekton object file, or None while it is missing or unreadable."""
        try:
            info = path.stat()
        except OSError:
            return None
        key = (info.st_mtime_ns, info.st_size)
        with self._lock:
            cached = self._cache.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        document = _parse(path)
        with self._lock:
            if len(self._cache) > _CACHED_FILES:  # runs removed meanwhile leave entries
                self._cache.clear()
            self._cache[path] = (key, document)
        return document

    def folder(self, name: str) -> Path:
        """The folder of run ``name``; NotFound for anything that is not a run's name."""
        if not name or name.startswith(".") or "/" in name or "\\" in name or "\0" in name:
            raise NotFound(f"no run {name!r}")
        here = self.root / name
        if here.is_symlink() or not self._kind(here):  # a link would lead out of the folder
            raise NotFound(f"no run {name} in {self.root}")
        return here

    def _kind(self, here: Path) -> str:
        if (here / "pipelinerun.yaml").is_file():
            return "PipelineRun"
        if (here / "taskrun.yaml").is_file() or (here / here.name / "taskrun.yaml").is_file():
            return "TaskRun"
        return ""

    # --- the list -----------------------------------------------------------------------

    def names(self) -> list[str]:
        try:
            entries = list(os.scandir(self.root))
        except OSError:
            return []
        return sorted(
            e.name
            for e in entries
            if e.is_dir(follow_symlinks=False)
            and not e.name.startswith(".")
            and self._kind(Path(e.path))
        )

    def summaries(self) -> list[RunSummary]:
        """Every run, the newest first."""
        found = []
        for name in self.names():
            try:
                found.append(self.summary(name))
            except NotFound:
                continue  # removed while we looked
        return sorted(found, key=lambda s: (-(s.started or 0), s.name))

    def summary(self, name: str) -> RunSummary:
        here = self.folder(name)
        if self._kind(here) == "TaskRun":
            document = self.read(here / "taskrun.yaml") or self.read(here / name / "taskrun.yaml")
            kind, pipeline = "TaskRun", _reference_name((document or {}).get("spec") or {}, "task")
        else:
            document = self.read(here / "pipelinerun.yaml")
            kind = "PipelineRun"
            pipeline = _reference_name((document or {}).get("spec") or {}, "pipeline")
        status = (document or {}).get("status") or {}
        return RunSummary(
            name=name,
            kind=kind,
            pipeline=pipeline,
            status=status_of(document) if document else Status(UNKNOWN, "Unreadable"),
            started=parse_time(status.get("startTime")),
            finished=parse_time(status.get("completionTime")),
        )

    def fingerprint(self, name: str | None = None) -> str:
        """Changes whenever what a page shows may have changed: the object files, and in
        a run still going the steps' progress files (and the clock, every 5 s, which moves
        the end of the running bars)."""
        digest = hashlib.sha1(usedforsecurity=False)
        names = [name] if name is not None else self.names()
        for each in names:
            here = self.folder(each)
            own = (here / "pipelinerun.yaml", here / "taskrun.yaml", here / each / "taskrun.yaml")
            for path in own:
                digest.update(_stat_key(path))
            if not self.summary(each).status.finished:
                digest.update(str(int(time.time() // 5)).encode())
            if name is None:
                continue  # the list shows only what the runs' own files say
            for child in _child_folders(here):
                digest.update(_stat_key(child / "taskrun.yaml"))
                digest.update(_stat_key(child / "customrun.yaml"))
                if (child / "taskrun.yaml").is_file():
                    document = self.read(child / "taskrun.yaml")
                    if not status_of(document).finished:
                        digest.update(_progress_key(child))
        return digest.hexdigest()[:16]

    # --- one run ------------------------------------------------------------------------

    def run(self, name: str) -> Run:
        here = self.folder(name)
        summary = self.summary(name)
        now = time.time()
        if summary.kind == "TaskRun":
            return self._taskrun(here, summary, now)
        document = self.read(here / "pipelinerun.yaml") or {}
        spec = document.get("spec") or {}
        status = document.get("status") or {}
        pipeline = status.get("pipelineSpec") or spec.get("pipelineSpec") or {}
        children = self._children(here, name, status.get("childReferences") or [])
        skipped = {str(s.get("name")): s for s in status.get("skippedTasks") or []}
        tasks = []
        declared = [(t, False) for t in pipeline.get("tasks") or []]
        declared += [(t, True) for t in pipeline.get("finally") or []]
        for task, is_finally in declared:
            task_name = str(task.get("name"))
            runs = tuple(children.pop(task_name, []))
            tasks.append(
                Task(
                    name=task_name,
                    is_finally=is_finally,
                    status=_task_status(runs, skipped.get(task_name), summary.status),
                    runs=runs,
                    when=tuple(_when_text(w) for w in task.get("when") or []),
                    display_name=str(task.get("displayName") or ""),
                )
            )
        for task_name, found in children.items():  # a spec we could not read names none
            listed = tuple(found)
            tasks.append(Task(task_name, False, _task_status(listed, None, summary.status), listed))
        known = {t.name for t in tasks}
        edges = []
        for task, _ in declared:
            after = {str(n) for n in task.get("runAfter") or []}
            for source in dependencies(task):
                if source in known:
                    via = "runAfter" if source in after else "results"
                    edges.append(Edge(source, str(task.get("name")), via))
        served = _served_workspaces(spec.get("workspaces") or [])
        return Run(
            summary=summary,
            tasks=tuple(tasks),
            edges=tuple(edges),
            params=_pairs(spec.get("params")),
            results=_pairs(status.get("results")),
            served=served,
            now=now,
        )

    def artifacts(self, run: Run) -> tuple[Artifact, ...]:
        """What the run's served workspaces hold that a page can show: a walk of up to
        thousands of entries, so only the run page and its lineage ask for it."""
        return tuple(_artifacts(self.folder(run.name), run.served))

    def _taskrun(self, here: Path, summary: RunSummary, now: float) -> Run:
        pod = here / here.name
        document = self.read(here / "taskrun.yaml") or self.read(pod / "taskrun.yaml") or {}
        child = _child_run(pod, here, document)
        spec = document.get("spec") or {}
        task = Task(here.name, False, child.status, (child,))
        served = _served_workspaces(spec.get("workspaces") or [])
        return Run(
            summary=summary,
            tasks=(task,),
            edges=(),
            params=child.params,
            results=child.results,
            served=served,
            now=now,
        )

    def _children(
        self, here: Path, run: str, references: list[dict[str, Any]]
    ) -> dict[str, list[ChildRun]]:
        """TaskRuns and CustomRuns by pipeline task: those the PipelineRun names, and those
        started since it was last written (their own files say whose they are)."""
        by_name: dict[str, str] = {
            str(r.get("name")): str(r.get("pipelineTaskName")) for r in references
        }
        found: dict[str, list[ChildRun]] = {}
        for folder in _child_folders(here):
            document = self.read(folder / "taskrun.yaml") or self.read(folder / "customrun.yaml")
            if document is None:
                continue
            labels = (document.get("metadata") or {}).get("labels") or {}
            if labels.get("tekton.dev/pipelineRun") not in (None, run):
                continue
            task = by_name.get(folder.name) or labels.get("tekton.dev/pipelineTask")
            if not task:
                continue
            found.setdefault(str(task), []).append(_child_run(folder, here, document))
        order = list(by_name)
        for runs in found.values():
            runs.sort(
                key=lambda c: (order.index(c.name) if c.name in order else len(order), c.name)
            )
        return found


# --- helpers ---------------------------------------------------------------------------------


def _parse(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    try:
        document = json.loads(text)  # files written while a run goes are JSON (also YAML)
    except ValueError:
        import yaml

        from tekton_mlops.yamlio import load

        try:
            document = load(text)
        except yaml.YAMLError:
            return None
    return document if isinstance(document, dict) else None


def _stat_key(path: Path) -> bytes:
    try:
        info = path.stat()
    except OSError:
        return b"-"
    return f"{path.name}:{info.st_mtime_ns}:{info.st_size};".encode()


def _progress_key(child: Path) -> bytes:
    """What moves while a TaskRun's steps run: log files appear, exit codes are written."""
    parts = []
    for sub in ("logs", "steps"):
        try:
            parts += sorted(f"{e.name}:{e.stat().st_mtime_ns}" for e in os.scandir(child / sub))
        except OSError:
            continue
    return ";".join(parts).encode()


def _child_folders(here: Path) -> Iterator[Path]:
    try:
        entries = sorted(os.scandir(here), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if entry.name != "workspaces" and entry.is_dir(follow_symlinks=False):
            yield Path(entry.path)


def _reference_name(spec: Mapping[str, Any], what: str) -> str:
    """What a run runs: the referenced Task or Pipeline's name, the file a resolver reads,
    or "embedded" for an inline spec."""
    reference = spec.get(f"{what}Ref") or {}
    if reference.get("name"):
        return str(reference["name"])
    params = {str(p.get("name")): p.get("value") for p in reference.get("params") or []}
    for key in ("pathInRepo", "name", "url", "bundle"):
        if isinstance(params.get(key), str) and params[key]:
            return str(PurePosixPath(str(params[key])).stem)
    return "embedded spec" if spec.get(f"{what}Spec") else ""


def _pairs(entries: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(entries, list):
        return ()
    return tuple(
        (str(e.get("name")), text_of(e.get("value"))) for e in entries if isinstance(e, dict)
    )


def _when_text(expression: Mapping[str, Any]) -> str:
    if "cel" in expression:
        return f"cel: {expression['cel']}"
    values = ", ".join(str(v) for v in expression.get("values") or [])
    return f"{expression.get('input', '')} {expression.get('operator', 'in')} [{values}]"


def _task_status(
    runs: tuple[ChildRun, ...], skipped: Mapping[str, Any] | None, run: Status
) -> Status:
    if skipped is not None:
        return Status(SKIPPED, "Skipped", str(skipped.get("reason") or ""))
    if not runs:
        if run.finished:
            return Status(UNKNOWN, "Not run", "the PipelineRun ended before this task started")
        return Status(PENDING, "Pending", "waiting for the tasks it runs after")
    for state in (FAILED, CANCELLED, RUNNING, PENDING, UNKNOWN):
        for child in runs:
            if child.status.state == state:
                if len(runs) > 1:
                    count = sum(1 for c in runs if c.status.state == state)
                    return Status(state, child.status.reason, f"{count} of {len(runs)} TaskRuns")
                return child.status
    return (
        runs[0].status
        if len(runs) == 1
        else Status(SUCCEEDED, "Succeeded", f"{len(runs)} TaskRuns")
    )


def _child_run(folder: Path, run_folder: Path, document: Mapping[str, Any]) -> ChildRun:
    status = document.get("status") or {}
    spec = document.get("spec") or {}
    own = status_of(document)
    relative = folder.relative_to(run_folder).as_posix()
    started = parse_time(status.get("startTime"))
    finished = parse_time(status.get("completionTime"))
    if document.get("kind") == "CustomRun":
        steps: tuple[Step, ...] = ()
    elif own.finished:
        steps = _finished_steps(status.get("steps") or [], relative)
    else:
        task_spec = status.get("taskSpec") or spec.get("taskSpec") or {}
        steps = _steps_going(folder, relative, task_spec.get("steps") or [], started)
    steps += _sidecars(folder, relative)
    return ChildRun(
        name=str((document.get("metadata") or {}).get("name") or folder.name),
        kind=str(document.get("kind") or "TaskRun"),
        folder=relative,
        status=own,
        started=started,
        finished=finished,
        steps=steps,
        params=_pairs(spec.get("params")),
        results=_pairs(status.get("results")),
        retries=len(status.get("retriesStatus") or []),
    )


def _finished_steps(entries: list[dict[str, Any]], folder: str) -> tuple[Step, ...]:
    steps = []
    for entry in entries:
        name = str(entry.get("name"))
        ended = entry.get("terminated") or {}
        code = ended.get("exitCode")
        why = str(entry.get("terminationReason") or ended.get("reason") or "")
        if "running" in entry:
            state = Status(RUNNING, "Running")
        elif "waiting" in entry:
            state = Status(PENDING, "Waiting")
        elif why == "Skipped":
            state = Status(SKIPPED, "Skipped", "an earlier step failed")
        elif code == 0:
            state = Status(SUCCEEDED, "Completed")
        else:
            state = Status(FAILED, why or "Error", f"exit code {code}")
        steps.append(
            Step(
                name=name,
                status=state,
                exit_code=code if isinstance(code, int) else None,
                started=parse_time(ended.get("startedAt")),
                finished=parse_time(ended.get("finishedAt")),
                log=f"{folder}/logs/{name}.log",
            )
        )
    return tuple(steps)


def _steps_going(
    folder: Path, relative: str, declared: list[dict[str, Any]], started: float | None
) -> tuple[Step, ...]:
    """The steps of a TaskRun still running, from what its folder shows: a step has
    started when its log exists and ended when its exit code is written. Steps run one
    after the other, so one starts when the one before it ends."""
    steps = []
    previous_end = started
    blocked = False
    for index, raw in enumerate(declared):
        name = step_name(raw, index)
        code_file = folder / "steps" / f"step-{name}" / "exitCode"
        log = folder / "logs" / f"{name}.log"
        code = None
        try:
            code = int(code_file.read_text().strip())
            ended: float | None = code_file.stat().st_mtime
        except (OSError, ValueError):
            ended = None
        if blocked:
            state, begin = Status(SKIPPED, "Skipped", "an earlier step failed"), None
        elif code is not None:
            ok = code == 0 or raw.get("onError") == "continue"
            state = Status(SUCCEEDED, "Completed") if code == 0 else Status(FAILED, "Error")
            blocked = not ok
            begin = previous_end
        elif log.exists():
            state, begin = Status(RUNNING, "Running"), previous_end
        else:
            state, begin = Status(PENDING, "Waiting"), None
        steps.append(Step(name, state, code, begin, ended, f"{relative}/logs/{name}.log"))
        previous_end = ended if ended is not None else previous_end
    return tuple(steps)


def _sidecars(folder: Path, relative: str) -> tuple[Step, ...]:
    try:
        names = sorted(p.name for p in (folder / "logs").glob("sidecar-*.log"))
    except OSError:
        return ()
    return tuple(
        Step(
            name=name.removeprefix("sidecar-").removesuffix(".log"),
            status=Status(UNKNOWN, "Sidecar"),
            exit_code=None,
            started=None,
            finished=None,
            log=f"{relative}/logs/{name}",
            sidecar=True,
        )
        for name in names
    )


def _served_workspaces(bindings: list[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(
        f"workspaces/{b['name']}"
        for b in bindings
        if isinstance(b, dict) and b.get("name") and any(k in b for k in _MADE_BY_THE_RUN)
    )


#: Files a run makes that a person opens, by name: what each is.
_KNOWN = {
    "report.html": "evaluation report",
    "drift-report.html": "drift report",
    "slo-report.html": "SLO report",
    "slo-report.md": "SLO report",
    "evaluation.md": "evaluation summary",
}


def _artifacts(here: Path, served: tuple[str, ...]) -> list[Artifact]:
    """Reports, other HTML pages and lineage folders in the workspaces the run made, by path."""
    return sorted(_walk(here, served), key=lambda a: a.path)


def _walk(here: Path, served: tuple[str, ...]) -> Iterator[Artifact]:
    seen = 0
    for top in served:
        stack = [(here / top, 0)]
        while stack:
            folder, depth = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                seen += 1
                if seen > _WALK_ENTRIES:
                    return
                path = Path(entry.path)
                relative = path.relative_to(here).as_posix()
                if entry.is_symlink():
                    continue  # a link may lead out of the run: never followed
                if entry.is_dir():
                    if entry.name == ".mlops":
                        lineage = path / "lineage"
                        if any(lineage.glob("*.intoto.json")):
                            yield Artifact("lineage", f"{relative}/lineage")
                    elif depth < _WALK_DEPTH:
                        stack.append((path, depth + 1))
                elif entry.name in _KNOWN:
                    yield Artifact(_KNOWN[entry.name], relative)
                elif entry.name.endswith(".html"):
                    yield Artifact("page", relative)
