"""The dashboard's reading of a runs folder: run list, tasks, steps, children, artifacts.

The folders here are written by hand in the executor's layout (what `tekton-mlops run`
leaves: see tests/local/test_dashboard_live.py for the executor writing them for real),
so each state a run can be met in is set up exactly: finished, failed, going (a step
running, the PipelineRun not yet naming its newest TaskRun), a matrix, a CustomRun, a
standalone TaskRun, a file cut in half.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tekton_mlops.dashboard.runs import (
    LogTail,
    NotFound,
    RunsFolder,
    log_tail,
    status_of,
)
from tekton_mlops.tekton.durations import parse_time
from tekton_mlops.yamlio import dump

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def stamp(offset: float) -> str:
    from tekton_mlops.tekton.durations import timestamp

    return timestamp(T0 + offset)


def condition(status: str, reason: str, message: str = "") -> list[dict[str, str]]:
    return [{"type": "Succeeded", "status": status, "reason": reason, "message": message}]


def taskrun(
    run: str,
    task: str,
    steps: list[tuple[str, int]],
    start: float = 0,
    took: float = 2,
    results: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    name: str = "",
    going: bool = False,
) -> dict[str, Any]:
    """A TaskRun as the executor writes it: finished, or (going) at its start."""
    failed = any(code != 0 for _, code in steps)
    status: dict[str, Any] = {
        "startTime": stamp(start),
        "steps": [],
        "taskSpec": {"steps": [{"name": s, "image": "busybox"} for s, _ in steps]},
    }
    if going:
        status["conditions"] = condition("Unknown", "Running", "Not all Steps ...")
    else:
        status["completionTime"] = stamp(start + took)
        status["conditions"] = (
            condition("False", "Failed", f'"step-{steps[0][0]}" exited with code 1')
            if failed
            else condition("True", "Succeeded", "All Steps have completed executing")
        )
        after_failure = False
        for step, code in steps:
            entry: dict[str, Any] = {"name": step, "container": f"step-{step}"}
            if after_failure:
                entry |= {"terminated": {"exitCode": 1, "reason": "Error"}}
                entry["terminationReason"] = "Skipped"
            else:
                entry["terminated"] = {
                    "exitCode": code,
                    "reason": "Completed" if code == 0 else "Error",
                    "startedAt": stamp(start),
                    "finishedAt": stamp(start + took),
                }
                entry["terminationReason"] = "Completed" if code == 0 else "Error"
            status["steps"].append(entry)
            after_failure = after_failure or code != 0
        status["results"] = [{"name": k, "value": v} for k, v in (results or {}).items()]
    return {
        "apiVersion": "tekton.dev/v1",
        "kind": "TaskRun",
        "metadata": {
            "name": name or f"{run}-{task}",
            "labels": {"tekton.dev/pipelineRun": run, "tekton.dev/pipelineTask": task},
        },
        "spec": {"params": [{"name": k, "value": v} for k, v in (params or {}).items()]},
        "status": status,
    }


def write_child(run_dir: Path, document: dict[str, Any], logs: dict[str, str]) -> Path:
    folder = run_dir / document["metadata"]["name"]
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    (folder / "taskrun.yaml").write_text(json.dumps(document, indent=2))
    for step, text in logs.items():
        (folder / "logs" / f"{step}.log").write_text(text)
    return folder


def pipelinerun(
    name: str,
    tasks: list[dict[str, Any]],
    finally_: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, str]] | None = None,
    children: list[tuple[str, str]] = (),  # type: ignore[assignment]
    skipped: dict[str, str] | None = None,
    workspaces: list[dict[str, Any]] | None = None,
    took: float | None = 10,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "startTime": stamp(0),
        "pipelineSpec": {"tasks": tasks, **({"finally": finally_} if finally_ else {})},
        "childReferences": [
            {"kind": "TaskRun", "name": child, "pipelineTaskName": task} for child, task in children
        ],
        "conditions": conditions or condition("True", "Succeeded", "Tasks Completed: 2"),
    }
    if took is not None:
        status["completionTime"] = stamp(took)
    if skipped:
        status["skippedTasks"] = [{"name": k, "reason": v} for k, v in skipped.items()]
    return {
        "apiVersion": "tekton.dev/v1",
        "kind": "PipelineRun",
        "metadata": {"name": name},
        "spec": {
            "pipelineSpec": {"tasks": tasks},
            "params": [{"name": "model-name", "value": "cancer"}],
            "workspaces": workspaces or [],
        },
        "status": status,
    }


def write_run(root: Path, document: dict[str, Any], as_yaml: bool = True) -> Path:
    here = root / document["metadata"]["name"]
    here.mkdir(parents=True, exist_ok=True)
    text = dump(document) if as_yaml else json.dumps(document)
    (here / "pipelinerun.yaml").write_text(text)
    return here


TASKS = [
    {"name": "fetch", "taskRef": {"name": "fetch-data"}},
    {
        "name": "train",
        "taskRef": {"name": "train-model"},
        "params": [{"name": "digest", "value": "$(tasks.fetch.results.digest)"}],
    },
    {
        "name": "deploy",
        "runAfter": ["train"],
        "when": [{"input": "a", "operator": "in", "values": ["a"]}],
    },
]


def finished_run(root: Path) -> Path:
    here = write_run(
        root,
        pipelinerun(
            "done",
            TASKS,
            finally_=[{"name": "report", "taskRef": {"name": "report"}}],
            conditions=condition("True", "Completed", "Tasks Completed: 3, Skipped: 1"),
            children=[("done-fetch", "fetch"), ("done-train", "train"), ("done-report", "report")],
            skipped={"deploy": "When Expressions evaluated to false"},
        ),
    )
    write_child(
        here,
        taskrun("done", "fetch", [("get", 0)], 0, 1, {"digest": "sha256:ab"}),
        {"get": "got it\n"},
    )
    write_child(
        here,
        taskrun(
            "done",
            "train",
            [("fit", 0), ("export", 0)],
            1,
            5,
            {"metrics": {"f1": 0.9}},
            {"digest": "sha256:ab"},
        ),
        {"fit": "fitting\n", "export": "exported\n"},
    )
    write_child(here, taskrun("done", "report", [("say", 0)], 7, 1), {"say": "all good\n"})
    return here


def test_a_finished_run_reads_as_its_files_say(tmp_path: Path) -> None:
    finished_run(tmp_path)
    run = RunsFolder(tmp_path).run("done")
    assert run.summary.kind == "PipelineRun"
    assert (run.summary.status.state, run.summary.status.reason) == ("succeeded", "Completed")
    assert run.summary.started == T0
    assert run.summary.finished == T0 + 10
    assert run.summary.pipeline == "embedded spec"
    assert [t.name for t in run.tasks] == ["fetch", "train", "deploy", "report"]
    assert [t.is_finally for t in run.tasks] == [False, False, False, True]
    states = {t.name: (t.status.state, t.status.reason) for t in run.tasks}
    assert states == {
        "fetch": ("succeeded", "Succeeded"),
        "train": ("succeeded", "Succeeded"),
        "deploy": ("skipped", "Skipped"),
        "report": ("succeeded", "Succeeded"),
    }
    deploy = run.tasks[2]
    assert deploy.status.message == "When Expressions evaluated to false"
    assert deploy.when == ("a in [a]",)
    # runAfter, and a result reference, are both edges; nothing else is.
    assert {(e.source, e.target, e.via) for e in run.edges} == {
        ("fetch", "train", "results"),
        ("train", "deploy", "runAfter"),
    }
    train = run.tasks[1].runs[0]
    assert [s.name for s in train.steps] == ["fit", "export"]
    assert train.steps[0].log == "done-train/logs/fit.log"
    assert train.steps[0].exit_code == 0
    assert (train.started, train.finished) == (T0 + 1, T0 + 6)
    assert train.params == (("digest", "sha256:ab"),)
    assert train.results == (("metrics", '{"f1": 0.9}'),)  # objects shown as JSON
    assert run.params == (("model-name", "cancer"),)


def test_the_list_has_every_run_newest_first_and_skips_other_folders(tmp_path: Path) -> None:
    finished_run(tmp_path)
    later = pipelinerun("later", TASKS[:1], took=None, conditions=condition("Unknown", "Running"))
    later["status"]["startTime"] = stamp(100)
    write_run(tmp_path, later, as_yaml=False)
    (tmp_path / "pvcs" / "claim").mkdir(parents=True)  # the executor's claims: not a run
    (tmp_path / ".hidden").mkdir()
    summaries = RunsFolder(tmp_path).summaries()
    assert [(s.name, s.status.state) for s in summaries] == [
        ("later", "running"),
        ("done", "succeeded"),
    ]


def test_a_failed_run_names_the_failed_step_and_the_skipped_ones(tmp_path: Path) -> None:
    here = write_run(
        tmp_path,
        pipelinerun(
            "broke",
            TASKS[:2],
            conditions=condition("False", "Failed", "Tasks Completed: 1 (Failed: 1)"),
            children=[("broke-fetch", "fetch")],
            skipped={"train": "PipelineRun was stopping"},
        ),
    )
    write_child(
        here, taskrun("broke", "fetch", [("get", 2), ("after", 0)]), {"get": "no such bucket\n"}
    )
    run = RunsFolder(tmp_path).run("broke")
    assert run.summary.status.state == "failed"
    fetch = run.tasks[0]
    assert (fetch.status.state, fetch.status.reason) == ("failed", "Failed")
    get, after = fetch.runs[0].steps
    assert (get.status.state, get.status.reason, get.exit_code) == ("failed", "Error", 2)
    assert (after.status.state, after.status.reason) == ("skipped", "Skipped")
    assert run.tasks[1].status.state == "skipped"


def test_a_run_going_shows_the_taskrun_it_does_not_name_yet_and_the_step_running(
    tmp_path: Path,
) -> None:
    here = write_run(
        tmp_path,
        pipelinerun(
            "going",
            TASKS[:2],
            conditions=condition("Unknown", "Running", "Tasks Completed: 1, Incomplete: 1"),
            children=[("going-fetch", "fetch")],
            took=None,
        ),
        as_yaml=False,
    )
    write_child(here, taskrun("going", "fetch", [("get", 0)]), {"get": "ok\n"})
    # train started after pipelinerun.yaml was last written: only its own file says so.
    train = write_child(
        here, taskrun("going", "train", [("fit", 0), ("export", 0), ("push", 0)], going=True), {}
    )
    (train / "logs" / "fit.log").write_text("fitting\n")
    (train / "steps" / "step-fit").mkdir(parents=True)
    (train / "steps" / "step-fit" / "exitCode").write_text("0")
    (train / "logs" / "export.log").write_text("exporting ...\n")
    folder = RunsFolder(tmp_path)
    run = folder.run("going")
    assert run.summary.status.state == "running"
    assert not run.summary.status.finished
    task = run.tasks[1]
    assert (task.status.state, task.status.reason) == ("running", "Running")
    steps = {s.name: (s.status.state, s.exit_code) for s in task.runs[0].steps}
    assert steps == {
        "fit": ("succeeded", 0),
        "export": ("running", None),
        "push": ("pending", None),
    }
    fit, export, _ = task.runs[0].steps
    assert fit.started == T0
    assert fit.finished is not None
    assert export.started == fit.finished  # steps run one after the other
    # The fingerprint moves when a step ends, and stays when nothing changed.
    before = folder.fingerprint("going")
    assert folder.fingerprint("going") == before
    (train / "steps" / "step-export").mkdir()
    (train / "steps" / "step-export" / "exitCode").write_text("0")
    assert folder.fingerprint("going") != before


def test_a_task_waiting_on_others_is_pending_while_the_run_goes_and_not_run_after(
    tmp_path: Path,
) -> None:
    write_run(
        tmp_path,
        pipelinerun("wait", TASKS[:1], conditions=condition("Unknown", "Running"), took=None),
    )
    assert RunsFolder(tmp_path).run("wait").tasks[0].status.reason == "Pending"
    write_run(
        tmp_path, pipelinerun("ended", TASKS[:1], conditions=condition("False", "CouldntGetTask"))
    )
    assert RunsFolder(tmp_path).run("ended").tasks[0].status.reason == "Not run"


def test_a_matrix_task_has_a_taskrun_per_combination_and_the_worst_state(tmp_path: Path) -> None:
    here = write_run(
        tmp_path,
        pipelinerun(
            "fan",
            [{"name": "build", "taskRef": {"name": "b"}}],
            conditions=condition("False", "Failed"),
            children=[("fan-build-0", "build"), ("fan-build-1", "build")],
        ),
    )
    write_child(here, taskrun("fan", "build", [("go", 0)], name="fan-build-0"), {})
    write_child(here, taskrun("fan", "build", [("go", 1)], name="fan-build-1"), {})
    task = RunsFolder(tmp_path).run("fan").tasks[0]
    assert [c.name for c in task.runs] == ["fan-build-0", "fan-build-1"]
    assert (task.status.state, task.status.message) == ("failed", "1 of 2 TaskRuns")


def test_a_customrun_is_a_child_without_steps(tmp_path: Path) -> None:
    here = write_run(
        tmp_path,
        pipelinerun("gate", [{"name": "approve", "taskRef": {"apiVersion": "x/v1", "kind": "A"}}],
                    conditions=condition("Unknown", "Running"), took=None),
    )  # fmt: skip
    (here / "gate-approve").mkdir()
    (here / "gate-approve" / "customrun.yaml").write_text(
        json.dumps(
            {
                "kind": "CustomRun",
                "metadata": {
                    "name": "gate-approve",
                    "labels": {
                        "tekton.dev/pipelineRun": "gate",
                        "tekton.dev/pipelineTask": "approve",
                    },
                },
                "status": {
                    "startTime": stamp(1),
                    "conditions": condition("Unknown", "Running", "Waiting for 1 approval(s)"),
                },
            }
        )
    )
    task = RunsFolder(tmp_path).run("gate").tasks[0]
    assert task.runs[0].kind == "CustomRun"
    assert task.runs[0].steps == ()
    assert (task.status.state, task.status.message) == ("running", "Waiting for 1 approval(s)")


def test_a_standalone_taskrun_is_a_run_of_one_task(tmp_path: Path) -> None:
    here = tmp_path / "solo"
    document = taskrun("", "", [("hello", 0)], name="solo")
    document["metadata"]["labels"] = {}
    document["spec"]["taskRef"] = {"name": "greet"}
    (here / "solo" / "logs").mkdir(parents=True)
    (here / "solo" / "logs" / "hello.log").write_text("hello\n")
    (here / "solo" / "taskrun.yaml").write_text(json.dumps(document))
    (here / "taskrun.yaml").write_text(dump(document))
    folder = RunsFolder(tmp_path)
    assert [(s.name, s.kind, s.pipeline) for s in folder.summaries()] == [
        ("solo", "TaskRun", "greet")
    ]
    run = folder.run("solo")
    assert [t.name for t in run.tasks] == ["solo"]
    assert run.tasks[0].runs[0].steps[0].log == "solo/logs/hello.log"


def test_a_file_cut_in_half_reads_as_not_there_and_names_that_are_not_runs_are_not_found(
    tmp_path: Path,
) -> None:
    here = finished_run(tmp_path)
    (here / "done-train" / "taskrun.yaml").write_text('{"apiVersion": "tekton.dev/v1", "kin')
    run = RunsFolder(tmp_path).run("done")
    assert run.tasks[1].runs == ()  # only the PipelineRun's reference is left: not readable yet
    for name in ("..", ".", "", "a/b", "missing", "done/done-train"):
        with pytest.raises(NotFound):
            RunsFolder(tmp_path).run(name)


def test_artifacts_are_found_in_the_workspaces_the_run_made_only(tmp_path: Path) -> None:
    here = write_run(
        tmp_path,
        pipelinerun(
            "made",
            TASKS[:1],
            workspaces=[
                {"name": "shared", "volumeClaimTemplate": {"spec": {}}},
                {"name": "scratch", "emptyDir": {}},
                {"name": "signing-key", "secret": {"secretName": "k"}},
            ],
        ),
    )
    shared = here / "workspaces" / "shared"
    for relative in (
        "model/report/report.html",
        "model/report/roc.png",
        "drift/drift-report.html",
        "slo-report/slo-report.md",
        "model/.mlops/lineage/train-model.intoto.json",
        "dataset/data.csv",
    ):
        (shared / relative).parent.mkdir(parents=True, exist_ok=True)
        (shared / relative).write_text("x")
    (here / "workspaces" / "scratch" / "page.html").parent.mkdir(parents=True)
    (here / "workspaces" / "scratch" / "page.html").write_text("<p>hi</p>")
    (here / "workspaces" / "signing-key").mkdir()
    (here / "workspaces" / "signing-key" / "leak.html").write_text("secret")
    (shared / "outside.html").symlink_to(tmp_path / "elsewhere.html")
    runs = RunsFolder(tmp_path)
    run = runs.run("made")
    assert [(a.kind, a.path) for a in runs.artifacts(run)] == [
        ("page", "workspaces/scratch/page.html"),
        ("drift report", "workspaces/shared/drift/drift-report.html"),
        ("lineage", "workspaces/shared/model/.mlops/lineage"),
        ("evaluation report", "workspaces/shared/model/report/report.html"),
        ("SLO report", "workspaces/shared/slo-report/slo-report.md"),
    ]
    assert run.served == ("workspaces/shared", "workspaces/scratch")


def test_log_tail_keeps_the_end_from_a_line_start(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    log.write_text("".join(f"line {n}\n" for n in range(10000)))
    tail = log_tail(log, 1000)
    assert tail.size == log.stat().st_size
    assert tail.truncated
    assert tail.text.endswith("line 9999\n")
    assert tail.text.startswith("line ")  # cut at a line start
    assert len(tail.text) <= 1000
    assert log_tail(tmp_path / "none.log", 10) == LogTail("", 0)
    small = log_tail(log, 10**9)
    assert not small.truncated
    assert small.text.startswith("line 0\n")


def test_conditions_and_times_as_tekton_writes_them() -> None:
    assert status_of(None).state == "pending"
    assert (
        status_of({"status": {"conditions": condition("False", "TaskRunCancelled")}}).state
        == "cancelled"
    )
    assert (
        status_of({"status": {"conditions": condition("False", "PipelineRunTimeout")}}).state
        == "failed"
    )
    assert status_of({"status": {"conditions": condition("Unknown", "Pending")}}).state == "pending"
    assert parse_time("2027-01-15T08:00:00Z") == T0
    assert parse_time("2026-11-30T23:54:52.259+00:00") is not None  # lineage's milliseconds
    assert parse_time("") is None
    assert parse_time("yesterday") is None
    assert parse_time(3) is None
