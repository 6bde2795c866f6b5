"""Each row of the mapping, run end to end: KFP SDK -> IR -> Tekton -> local executor.

Every expected value comes from calling the components' own Python functions
(``component.python_func``), so a test checks the run against KFP's semantics, not
against numbers copied from an earlier run.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.kfp import pipelines as p
from tests.kfp.conftest import RunPipeline, compile_ir

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def f(component):  # type: ignore[no-untyped-def]
    """The Python function of a lightweight component."""
    return component.python_func


# Parameters ---------------------------------------------------------------------------------


def test_parameter_types_cross_tekton_as_their_text_forms(kfp_run: RunPipeline) -> None:
    run = kfp_run(p.params_types, {"count": "4", "flag": "true", "items": '["q", "r", "s"]'})
    assert run.succeeded, run.stderr[-3000:]
    assert run.parameters["Output"] == f(p.describe)(
        "a b", 4, 0.25, True, ["q", "r", "s"], {"b": 1, "a": 2}
    )
    expected = f(p.types_out)()
    assert run.value("types-in") == f(p.types_in)(*expected)


def test_optional_inputs_absent_default_and_given(kfp_run: RunPipeline) -> None:
    run = kfp_run(p.optional_pipeline)
    assert run.succeeded, run.stderr[-3000:]
    assert run.value("optional-inputs") == f(p.optional_inputs)("g")
    assert run.parameters["Output"] == f(p.optional_inputs)("h", None, 5)
    given = kfp_run(p.optional_pipeline, {"maybe": "here", "number": "9"})
    assert given.parameters["Output"] == f(p.optional_inputs)("h", "here", 9)


def test_output_parameter_files_are_read_by_type(kfp_run: RunPipeline) -> None:
    run = kfp_run(p.output_paths)
    assert run.succeeded, run.stderr[-3000:]
    assert run.parameters["Output"] == f(p.combine)("from a file", 12, True)


def test_container_placeholders_concat_if_present_and_executor_input(
    kfp_run: RunPipeline,
) -> None:
    run = kfp_run(p.container_placeholders, {"word": "yo"})
    assert run.succeeded, run.stderr[-3000:]
    assert run.parameters["with_suffix"] == "w=yo! 3 [1, 2] s"
    assert run.parameters["without"] == "w=yo! 4 [] no-suffix"
    assert run.parameters["executor"] == "yo/out"


# Artifacts ----------------------------------------------------------------------------------


def test_artifact_types_and_metadata_travel_by_path(kfp_run: RunPipeline) -> None:
    run = kfp_run(p.artifact_types, {"rows": "6"})
    assert run.succeeded, run.stderr[-3000:]
    read = run.parameters["read"].split("|")
    assert read[0] == "6:6"
    assert read[1] == "w=1:none"
    assert read[2] == "0.75"
    assert read[3] == "[3, 1]"
    assert read[4:] == ["# report", "<p>page</p>", "0.1,0.2:Artifact"]
    lines, uri, rows = run.parameters["shell"].split(" ")
    assert (lines, rows) == ("5", "6")  # wc -l counts newlines: six rows, five newlines
    assert uri.startswith("uri-ok:/")
    assert uri.endswith("/artifacts/data")
    data = Path(run.artifacts["data"])
    assert data.read_text().splitlines() == [str(i) for i in range(6)]
    record = run.record("make-artifacts")
    assert record is not None
    assert record["artifacts"]["metrics"][0]["metadata"] == {"accuracy": 0.75}
    assert record["artifacts"]["data"][0]["digest"].startswith("sha256:")
    assert record["artifacts"]["model"][0]["type"]["schemaTitle"] == "system.Model"


def test_pythonic_artifacts_and_artifact_lists(kfp_run: RunPipeline) -> None:
    run = kfp_run(p.pythonic_artifacts)
    assert run.succeeded, run.stderr[-3000:]
    assert run.parameters["Output"] == "abcdef:6"


def test_importer_fetches_a_file_uri(kfp_run: RunPipeline, tmp_path: Path) -> None:
    shared = tmp_path / "data"
    shared.mkdir()
    (shared / "rows.txt").write_text("imported rows")
    run = kfp_run(
        p.importer_file,
        {"uri": (shared / "rows.txt").as_uri()},
        ["--host-path", str(shared)],
    )
    assert run.succeeded, run.stderr[-3000:]
    assert run.parameters["Output"] == "imported rows|a test"
    record = run.record("importer")
    assert record is not None
    artifact = record["artifacts"]["artifact"][0]
    assert artifact["uri"].endswith("/rows.txt")
    assert artifact["metadata"]["source_uri"] == (shared / "rows.txt").as_uri()
    assert [s["name"] for s in run.documents[0]["spec"]["tasks"][0]["taskSpec"]["steps"]] == [
        "resolve",
        "fetch",
        "publish",
    ]


def test_a_changed_artifact_fails_its_consumer(kfp_run: RunPipeline) -> None:
    """The producer records a sha256 digest; a consumer verifies it before use."""
    from tekton_mlops.kfp.launcher import LaunchError, verify

    with pytest.raises(LaunchError, match="changed since it was produced"):
        verify({"uri": __file__, "digest": "sha256:" + "0" * 64})


# Control flow -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "ran"), [(3, "say"), (50, "say-2"), (500, "say-3")], ids=["if", "elif", "else"]
)
def test_if_elif_else_runs_one_branch(kfp_run: RunPipeline, number: int, ran: str) -> None:
    run = kfp_run(p.if_elif_else, {"number": str(number)})
    assert run.succeeded, run.stderr[-3000:]
    word = {"small": "few", "medium": "some", "large": "many"}[f(p.classify)(number)]
    assert run.parameters["Output"] == f(p.say)(word)
    assert set(run.skipped) == {"say", "say-2", "say-3"} - {ran}


def test_nested_conditions(kfp_run: RunPipeline) -> None:
    run = kfp_run(p.nested_conditions, {"x": "5", "y": "20"})
    assert run.succeeded, run.stderr[-3000:]
    assert run.value("add-2") == 25
    assert run.value("add-3") == 125
    assert run.record("add-4") is None
    assert "add-4" in run.skipped
    low = kfp_run(p.nested_conditions, {"x": "2"})
    assert low.succeeded
    assert {"add-2", "add-3", "add-4"} <= set(low.skipped)


def test_a_false_condition_skips_only_its_tasks(kfp_run: RunPipeline) -> None:
    run = kfp_run(p.condition_false, {"x": "1"})
    assert run.succeeded, run.stderr[-3000:]
    assert run.parameters["Output"] == 12
    assert run.skipped == {"add-2": "When Expressions evaluated to false"}


def test_parallel_for_static_items_and_collected_fan_in(kfp_run: RunPipeline) -> None:
    run = kfp_run(p.loop_static)
    assert run.succeeded, run.stderr[-3000:]
    doubled = [f(p.double)(n) for n in [1, 2, 3, 4]]
    assert run.parameters == {"sum": f(p.total)(doubled), "doubled": doubled}
    loop = next(t for t in run.documents[0]["spec"]["tasks"] if t["name"] == "double")
    assert loop["matrix"]["params"][0]["value"] == ["0", "1", "2", "3"]


def test_parallel_for_over_a_pipeline_param_with_a_chain_inside(kfp_run: RunPipeline) -> None:
    run = kfp_run(p.loop_param, {"numbers": "[1, 2, 7]", "offset": "10"})
    assert run.succeeded, run.stderr[-3000:]
    assert run.parameters["Output"] == sum(f(p.double)(n) + 10 for n in [1, 2, 7])


def test_parallel_for_over_a_task_output_with_item_fields(kfp_run: RunPipeline) -> None:
    run = kfp_run(p.loop_task_output)
    assert run.succeeded, run.stderr[-3000:]
    assert run.parameters["Output"] == sum(r["a"] + r["b"] for r in f(p.make_rows)())


def test_nested_loops_collect_lists_of_lists(kfp_run: RunPipeline) -> None:
    run = kfp_run(p.nested_loops, {"outer": "[1, 2, 3]"})
    assert run.succeeded, run.stderr[-3000:]
    nested = [[o + i for i in [10, 20, 30]] for o in [1, 2, 3]]
    assert run.parameters["Output"] == f(p.nested_total)(nested)


def test_a_condition_inside_a_loop_filters_iterations(kfp_run: RunPipeline) -> None:
    run = kfp_run(p.condition_in_loop, {"threshold": "3"})
    assert run.succeeded, run.stderr[-3000:]
    assert run.parameters["Output"] == sum(f(p.double)(n) for n in [1, 2, 3, 4, 5] if n >= 3)
    # Only the iterations that pass ran: 3 instances of double.
    assert sorted(k.name for k in (run.store / "double").iterdir()) == ["2", "3", "4"]
    none = kfp_run(p.condition_in_loop, {"threshold": "99"})
    assert none.succeeded
    assert none.parameters["Output"] == 0
    assert none.skipped["double"] == "Matrix Parameters have an empty array"


def test_nested_conditions_inside_nested_loops(kfp_run: RunPipeline) -> None:
    run = kfp_run(p.nested_conditions_in_loops, {"limit": "25"})
    assert run.succeeded, run.stderr[-3000:]
    big, small = [], []
    for o in [1, 2, 3]:
        big_row, small_row = [], []
        for i in [5, 10]:
            prod = o + i
            if prod > 6:
                d = f(p.double)(prod)
                if d > 25:
                    big_row.append(d + 1000)
                else:
                    small_row.append(d)
        big.append(big_row)
        small.append(small_row)
    assert run.parameters == {"big": f(p.nested_total)(big), "small": f(p.nested_total)(small)}


def _intervals(folder: Path) -> list[tuple[float, float]]:
    """(start, end) of each iteration, as the components recorded them."""
    found = []
    for path in sorted(folder.iterdir()):
        start, end = path.read_text().split()
        found.append((float(start), float(end)))
    return found


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The most intervals running at one instant (one ending as another starts: apart)."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


def test_parallel_for_parallelism_bounds_the_iterations_running_at_once(
    kfp_run: RunPipeline,
) -> None:
    # The executor could run all ten TaskRuns at once: only the loops' limits hold them.
    run = kfp_run(p.limited_loops, extra=["--parallelism", "12"])
    assert run.succeeded, run.stderr[-3000:]
    root = run.store.parent  # {{$.pipeline_root}}: the kfp workspace
    python, shell = _intervals(root / "python"), _intervals(root / "shell")
    assert (len(python), len(shell)) == (6, 4)
    assert most_at_once(python) <= 2, python
    assert most_at_once(shell) <= 2, shell
    assert "(ParallelFor parallelism): waiting" in run.logs("timed-sleep")
    tasks = {t["name"]: t for t in run.documents[0]["spec"]["tasks"]}
    assert [s["name"] for s in tasks["shell-timed"]["taskSpec"]["sidecars"]] == ["slots"]
    assert "waiting for a ParallelFor slot" in run.logs("shell-timed")


def test_parallel_for_without_parallelism_runs_iterations_side_by_side(
    kfp_run: RunPipeline,
) -> None:
    run = kfp_run(p.unlimited_loop, extra=["--parallelism", "12"])
    assert run.succeeded, run.stderr[-3000:]
    python = _intervals(run.store.parent / "python")
    assert len(python) == 6
    assert most_at_once(python) > 2, python


def test_artifact_fan_in_and_a_loop_over_artifacts(kfp_run: RunPipeline) -> None:
    run = kfp_run(p.artifact_fan_in)
    assert run.succeeded, run.stderr[-3000:]
    assert run.parameters["fan_in"] == "15:[4, 5, 6]"
    assert run.parameters["looped"] == sum(n * 10 for n in [4, 5, 6])


# Exit handlers and failures ---------------------------------------------------------------------


def test_exit_handler_reads_a_success(kfp_run: RunPipeline) -> None:
    run = kfp_run(p.exit_handler_ok)
    assert run.succeeded, run.stderr[-3000:]
    assert run.value("record-status") == "SUCCEEDED|guarded|done|False"
    finally_names = [t["name"] for t in run.documents[0]["spec"]["finally"]]
    assert finally_names == ["record-status"]


def test_exit_handler_runs_after_a_failure_and_reads_it(kfp_run: RunPipeline) -> None:
    run = kfp_run(p.exit_handler_failure)
    assert run.code == 1
    assert run.reason == "Failed"
    assert run.value("record-status") == "FAILED|guarded|cleanup|True"
    assert run.record("add-2") is None  # after the failure: never ran
    assert "boom" in run.logs("fail")


def test_a_failure_propagates_and_stops_dependents(kfp_run: RunPipeline) -> None:
    run = kfp_run(p.failure_propagates)
    assert run.code == 1
    assert run.reason == "Failed"
    assert run.record("add") is None
    assert run.record("add-2") is None
    assert run.outputs == {}
    assert "component fail exited with code 3" in run.stderr


def test_ignore_upstream_failure_runs_with_the_default(kfp_run: RunPipeline) -> None:
    run = kfp_run(p.ignore_upstream_failure)
    assert run.code == 1
    assert run.value("fallback") == f(p.fallback)()
    assert [t["name"] for t in run.documents[0]["spec"]["finally"]] == ["fallback"]


def test_a_pipeline_as_exit_task_runs_its_steps_in_order(kfp_run: RunPipeline) -> None:
    run = kfp_run(p.exit_pipeline)
    assert run.code == 1
    assert run.value("notify-get-state") == "FAILED"
    assert run.value("notify-alert") == f(p.alert)("FAILED")


# Nested pipelines, ordering, retries, caching, settings ----------------------------------------


def test_nested_pipelines_are_flattened(kfp_run: RunPipeline) -> None:
    run = kfp_run(p.nested_pipelines, {"x": "3"})
    assert run.succeeded, run.stderr[-3000:]
    first = f(p.add)(3, 100)
    second = f(p.add)(first, 1)
    middle = second * 10
    assert run.parameters["Output"] == f(p.add)(middle, f(p.add)(3, 100))
    names = {t["name"] for t in run.documents[0]["spec"]["tasks"]}
    assert {"middle-inner-add", "middle-inner-2-add", "inner-add", "add"} <= names


def test_after_orders_tasks(kfp_run: RunPipeline, tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    run = kfp_run(p.after_ordering, {"folder": str(folder)}, ["--host-path", str(folder)])
    assert run.succeeded, run.stderr[-3000:]
    assert (folder / "order.txt").read_text().split() == ["a", "b", "c"]
    tasks = {t["name"]: t for t in run.documents[0]["spec"]["tasks"]}
    assert tasks["stamp-3"]["runAfter"] == ["stamp", "stamp-2"]


def test_retries_rerun_a_failed_task(kfp_run: RunPipeline, tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    run = kfp_run(p.retries, {"folder": str(folder)}, ["--host-path", str(folder)])
    assert run.succeeded, run.stderr[-3000:]
    assert run.parameters["Output"] == 3
    task = run.documents[0]["spec"]["tasks"][0]
    assert task["retries"] == 2


def test_retry_backoff_waits_before_the_retry(kfp_run: RunPipeline) -> None:
    run = kfp_run(p.retry_backoff)
    assert run.succeeded, run.stderr[-3000:]
    events = [line.split() for line in run.parameters["Output"].splitlines()]
    assert [kind for kind, _ in events] == ["start", "fail", "start"]
    # From the failure to the retry's start: the backoff, and the new pod's start on top.
    gap = float(events[2][1]) - float(events[1][1])
    assert gap >= 1.0, gap
    assert "retry 1 waits 1s before the component runs" in run.logs("flaky-timed")
    task = run.documents[0]["spec"]["tasks"][0]
    assert task["retries"] == 2


def test_caching_is_off_every_run_executes(kfp_run: RunPipeline, tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    first = kfp_run(p.no_caching, {"folder": str(folder)}, ["--host-path", str(folder)])
    second = kfp_run(p.no_caching, {"folder": str(folder)}, ["--host-path", str(folder)])
    assert (first.parameters["Output"], second.parameters["Output"]) == (1, 2)


def test_env_and_resources(kfp_run: RunPipeline) -> None:
    run = kfp_run(p.env_and_resources)
    assert run.succeeded, run.stderr[-3000:]
    assert run.parameters == {"python": "MODE=fast,LEVEL=3", "shell": "hello there"}
    tasks = {t["name"]: t for t in run.documents[0]["spec"]["tasks"]}
    step = tasks["read-env"]["taskSpec"]["steps"][0]
    assert step["computeResources"] == {
        "requests": {"cpu": "100m"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }
    main = tasks["shell-env"]["taskSpec"]["steps"][1]
    assert main["computeResources"] == {"limits": {"nvidia.com/gpu": "1"}}


def test_kubernetes_secrets_and_config_maps(kfp_run: RunPipeline, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    for name, key, value in [
        ("db", "password", "s3cret"),
        ("api", "token", "tok"),
        ("settings", "region", "eu"),
    ]:
        (secrets / name).mkdir(parents=True)
        (secrets / name / key).write_text(value)
    run = kfp_run(p.kubernetes_secrets, extra=["--secrets-dir", str(secrets)])
    assert run.succeeded, run.stderr[-3000:]
    assert run.parameters["Output"] == "PASSWORD=s3cret,REGION=eu|token:tok"
    pipeline_run = next(d for d in run.documents if d["kind"] == "PipelineRun")
    assert pipeline_run["spec"]["taskRunSpecs"] == [
        {"pipelineTaskName": "read-secret", "podTemplate": {"nodeSelector": {"disk": "ssd"}}}
    ]


def test_run_level_placeholders_and_f_strings(kfp_run: RunPipeline) -> None:
    run = kfp_run(p.run_placeholders, {"name": "tekton"})
    assert run.succeeded, run.stderr[-3000:]
    assert run.parameters["fstring"] == f(p.show)(f"{f(p.say)('hello tekton')}, again", "fixed")
    assert run.parameters["task"] == f"show-2|{run.name}"
    job_uid = run.parameters["job"].split("|")[0]
    assert str(uuid.UUID(job_uid)) == job_uid


def test_packages_to_install_come_from_the_image(kfp_run: RunPipeline) -> None:
    run = kfp_run(p.packages_ok, {"n": "6"})
    assert run.succeeded, run.stderr[-3000:]
    assert run.parameters["Output"] == 15.0
    missing = kfp_run(p.packages_missing)
    assert missing.code == 1
    assert "lacks surely-not-installed-package==1.0 (packages_to_install)" in missing.stderr


def test_a_custom_artifact_type_passes_through(kfp_run: RunPipeline) -> None:
    """A type outside KFP's system.* names (an IR edited as a third-party SDK writes it)."""
    text = compile_ir(p.artifact_types).replace("system.HTML", "acme.Page")
    run = kfp_run(text)
    assert run.succeeded, run.stderr[-3000:]
    record = run.record("make-artifacts")
    assert record is not None
    assert record["artifacts"]["page"][0]["type"]["schemaTitle"] == "acme.Page"
    assert "<p>page</p>" in run.parameters["read"]


def test_tasks_share_files_through_the_pipeline_workspace(kfp_run: RunPipeline) -> None:
    run = kfp_run(p.shared_workspace, {"text": "kept between tasks"})
    assert run.succeeded, run.stderr[-3000:]
    assert run.parameters["python"] == "kept between tasks"
    assert run.parameters["shell"] == "kept between tasks"
    # {{$.workspace_path}} is one folder of the run's store, the same in every task.
    assert run.parameters["path"] == f"/workspace/kfp/{run.name}/.workspace"
    assert (run.store / ".workspace" / "note.txt").read_text() == "kept between tasks"
    assert "note: the pipeline workspace (PipelineConfig size 1Gi) is a folder" in run.stderr


def test_pipeline_outputs_as_results(kfp_run: RunPipeline) -> None:
    run = kfp_run(p.loop_static)
    results = {r["name"]: r["value"] for r in run.pipeline_run["status"]["results"]}
    assert json.loads(results["doubled"]) == [2, 4, 6, 8]
    assert results["sum"] == "20"
