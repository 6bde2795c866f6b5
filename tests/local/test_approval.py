"""The approval gate: an ApprovalTask custom task run as a CustomRun, decided by `approve`.

Each pipeline runs in a real `tekton-mlops run` process; approvals come from the
`tekton-mlops approve` command (in this process, or from other processes), as a person
would give them from another terminal while the run waits.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tekton_mlops.cli import main
from tekton_mlops.local import approval_store
from tests.conftest import CLI, REPO
from tests.local.conftest import Finished

pytestmark = pytest.mark.integration

APPROVAL_REF = "{apiVersion: openshift-pipelines.org/v1alpha1, kind: ApprovalTask}"


def gated_pipeline(
    approvers: str = "[alice, bob, carol]",
    required: str = "2",
    timeout: str = "",
    param: str = "",
    run_timeout: str = "",
) -> str:
    """build -> approve (the gate) -> deploy, a side task that does not wait for the gate,
    and a finally task that reports what it saw of the gate. ``timeout`` is a line of the
    gate (``timeout: 2s``), ``param`` one more of its params, ``run_timeout`` the
    PipelineRun's ``timeouts.pipeline``."""
    return textwrap.dedent(
        f"""
        apiVersion: tekton.dev/v1
        kind: PipelineRun
        metadata: {{name: gate}}
        spec:
          timeouts: {{pipeline: {run_timeout or "1h"}}}
          pipelineSpec:
            results:
              - {{name: seen, value: $(finally.report.results.seen)}}
            tasks:
              - name: build
                taskSpec:
                  steps: [{{name: build, image: busybox, script: echo built}}]
              - name: approve
                runAfter: [build]
                taskRef: {APPROVAL_REF}
                {timeout}
                params:
                  - {{name: approvers, value: {approvers}}}
                  - {{name: numberOfApprovalsRequired, value: "{required}"}}
                  - {{name: description, value: ship the model}}
                  {param}
              - name: side
                taskSpec:
                  steps: [{{name: side, image: busybox, script: echo side}}]
              - name: deploy
                runAfter: [approve]
                taskSpec:
                  steps: [{{name: deploy, image: busybox, script: echo deployed}}]
            finally:
              - name: report
                params:
                  - {{name: gate, value: $(tasks.approve.status)}}
                  - {{name: reason, value: $(tasks.approve.reason)}}
                taskSpec:
                  params: [{{name: gate}}, {{name: reason}}]
                  results: [{{name: seen}}]
                  steps:
                    - name: report
                      image: busybox
                      env:
                        - {{name: GATE, value: $(params.gate)}}
                        - {{name: REASON, value: $(params.reason)}}
                      script: printf "%s %s" "$GATE" "$REASON" > $(results.seen.path)
        """
    )


class Run:
    """A `tekton-mlops run` process and its runs folder."""

    def __init__(self, tmp_path: Path, text: str, *args: str) -> None:
        self.runs = tmp_path / "runs"
        path = tmp_path / "run.yaml"
        path.write_text(textwrap.dedent(text))
        self.process = subprocess.Popen(
            [CLI, "run", str(path), "--run-dir", str(self.runs), "-o", "json", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def waiting(self, run: str = "gate", task: str = "approve", seconds: float = 60) -> Path:
        """The approval's folder, once its ApprovalTask waits for decisions."""
        deadline = time.monotonic() + seconds
        while True:
            if any(p.run == run and p.task == task for p in approval_store.pending(self.runs)):
                return approval_store.find(self.runs, run, task)
            assert self.process.poll() is None, self.process.communicate()[1]
            assert time.monotonic() < deadline, f"{task} did not wait for approval"
            time.sleep(0.1)  # a poll interval: what is waited for is the ApprovalTask file

    def approve(self, *args: str) -> Result:
        return CliRunner().invoke(main, ["approve", *args, "--run-dir", str(self.runs)])

    def finish(self, seconds: float = 60) -> Finished:
        out, err = self.process.communicate(timeout=seconds)
        return Finished(self.process.returncode, json.loads(out) if out.strip() else {}, err)


def custom_run(folder: Path) -> dict[str, Any]:
    return approval_store.read(folder / approval_store.RUN_FILE)


def approval_task(folder: Path) -> dict[str, Any]:
    return approval_store.read(folder / approval_store.TASK_FILE)


def test_distinct_approvers_pass_the_gate_and_the_next_task_runs(tmp_path: Path) -> None:
    run = Run(tmp_path, gated_pipeline())
    folder = run.waiting()
    waiting = custom_run(folder)
    assert waiting["apiVersion"] == "tekton.dev/v1beta1"
    assert waiting["spec"]["customRef"] == {
        "apiVersion": "openshift-pipelines.org/v1alpha1",
        "kind": "ApprovalTask",
    }
    assert approval_store.condition(waiting)["status"] == "Unknown"
    assert approval_store.condition(waiting)["reason"] == "Running"

    first = run.approve("gate", "approve", "--approve", "--user", "alice", "-m", "metrics ok")
    assert first.exit_code == 0, first.output
    assert "1 of 2 approvals" in first.output
    assert "still pending" in first.output
    # The task beside the gate does not wait for it.
    side = run.runs / "gate" / "gate-side" / "taskrun.yaml"
    deadline = time.monotonic() + 30
    while not side.is_file():
        assert time.monotonic() < deadline, "side never ran while the gate waited"
        time.sleep(0.1)
    assert run.process.poll() is None  # one approval of two: still waiting

    second = run.approve("gate", "approve", "--approve", "--user", "carol")
    assert second.exit_code == 0, second.output
    assert "approved: the run goes on" in second.output
    done = run.finish()
    assert done.exit_code == 0, done.log
    assert done.condition["reason"] == "Succeeded"
    children = {c["pipelineTaskName"]: c for c in done.object["status"]["childReferences"]}
    assert children["approve"] == {
        "apiVersion": "tekton.dev/v1beta1",
        "kind": "CustomRun",
        "name": "gate-approve",
        "pipelineTaskName": "approve",
    }
    assert children["deploy"]["kind"] == "TaskRun"
    ended = approval_store.condition(custom_run(folder))
    assert (ended["status"], ended["reason"]) == ("True", "Succeeded")
    assert done.results["seen"] == "Succeeded Succeeded"
    responses = approval_task(folder)["status"]["approversResponse"]
    assert {r["name"]: r.get("message") for r in responses} == {
        "alice": "metrics ok",
        "carol": None,
    }


def test_one_reject_fails_the_run_and_the_gated_task_never_runs(tmp_path: Path) -> None:
    run = Run(tmp_path, gated_pipeline())
    folder = run.waiting()
    assert run.approve("gate", "approve", "--approve", "--user", "alice").exit_code == 0
    rejected = run.approve(
        "gate", "approve", "--reject", "--user", "bob", "--message", "p99 too high"
    )
    assert rejected.exit_code == 0, rejected.output
    assert "rejected: the run fails" in rejected.output
    done = run.finish()
    assert done.exit_code == 1
    assert done.condition["reason"] == "Failed"
    ended = approval_store.condition(custom_run(folder))
    assert (ended["status"], ended["reason"], ended["message"]) == (
        "False",
        "Failed",
        "Approval Task denied",
    )
    assert done.skipped["deploy"] == "PipelineRun was stopping"
    assert not (run.runs / "gate" / "gate-deploy").exists()
    assert done.results["seen"] == "Failed Failed"  # what finally sees of the gate
    assert approval_task(folder)["status"]["state"] == "rejected"


@pytest.mark.parametrize(
    ("timeout", "param"),
    [("timeout: 2s", ""), ("", "- {name: timeout, value: 2s}")],
    ids=["pipeline-task-timeout", "timeout-param"],
)
def test_no_decision_before_the_timeout_rejects(tmp_path: Path, timeout: str, param: str) -> None:
    run = Run(tmp_path, gated_pipeline(required="1", timeout=timeout, param=param))
    started = time.monotonic()
    done = run.finish()
    assert 2 <= time.monotonic() - started < 30
    assert done.exit_code == 1
    folder = run.runs / "gate" / "gate-approve"
    ended = approval_store.condition(custom_run(folder))
    assert (ended["status"], ended["reason"], ended["message"]) == (
        "False",
        "Failed",
        "Approval task gate-approve is failed because of timeout",
    )
    assert approval_task(folder)["status"]["state"] == "rejected"
    assert "deploy" in done.skipped
    late = run.approve("gate", "approve", "--approve", "--user", "alice")
    assert late.exit_code == 1
    assert "has ended" in late.output


def test_an_approval_counts_once_per_user(tmp_path: Path) -> None:
    run = Run(tmp_path, gated_pipeline())
    folder = run.waiting()
    assert run.approve("gate", "approve", "--approve", "--user", "alice").exit_code == 0
    again = run.approve("gate", "approve", "--approve", "--user", "alice")
    assert again.exit_code == 1
    assert "alice has already approved gate-approve" in again.output
    assert approval_task(folder)["status"]["approvalsReceived"] == 1
    time.sleep(0.6)  # longer than the executor's poll: it would have seen a second approval
    assert run.process.poll() is None
    assert run.approve("gate", "approve", "--reject", "--user", "carol").exit_code == 0
    assert run.finish().exit_code == 1


def test_who_is_not_an_approver_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    run = Run(tmp_path, gated_pipeline(approvers='[alice, "group:ml-leads"]'))
    folder = run.waiting()
    before = (folder / approval_store.TASK_FILE).read_bytes()
    outsider = run.approve("gate", "approve", "--approve", "--user", "eve")
    assert outsider.exit_code == 1
    assert "eve is not among the approvers of gate-approve (alice, group:ml-leads)" in (
        outsider.output
    )
    assert "--group NAME" in outsider.output
    assert (folder / approval_store.TASK_FILE).read_bytes() == before
    # A member of a group approver says so, and counts as one user.
    member = run.approve("gate", "approve", "--approve", "--user", "dana", "--group", "ml-leads")
    assert member.exit_code == 0, member.output
    assert run.approve("gate", "approve", "--approve", "--user", "alice").exit_code == 0
    done = run.finish()
    assert done.exit_code == 0, done.log
    (group,) = [
        r for r in approval_task(folder)["status"]["approversResponse"] if r["type"] == "Group"
    ]
    assert group["groupMembers"] == [{"name": "dana", "response": "approved"}]


def test_a_finished_run_refuses_decisions(tmp_path: Path) -> None:
    run = Run(tmp_path, gated_pipeline(required="1"))
    folder = run.waiting()
    assert run.approve("gate", "approve", "--approve", "--user", "bob").exit_code == 0
    assert run.finish().exit_code == 0
    before = (folder / approval_store.TASK_FILE).read_bytes()
    late = run.approve("gate", "approve", "--reject", "--user", "alice")
    assert late.exit_code == 1
    assert "CustomRun gate-approve has ended (Succeeded: TaskRun succeeded)" in late.output
    assert (folder / approval_store.TASK_FILE).read_bytes() == before


def test_list_shows_what_waits_and_forgets_what_was_decided(tmp_path: Path) -> None:
    run = Run(tmp_path, gated_pipeline(required="1"))
    run.waiting()
    listed = run.approve("--list")
    assert listed.exit_code == 0, listed.output
    header, row = listed.output.splitlines()
    assert header.split()[:5] == ["RUN", "TASK", "APPROVALS", "APPROVERS", "EXPIRES"]
    assert row.split()[:4] == ["gate", "approve", "0/1", "alice,bob,carol"]
    assert row.endswith("ship the model")
    assert run.approve("gate", "approve", "--approve", "--user", "carol").exit_code == 0
    assert run.finish().exit_code == 0
    assert run.approve("--list").output == f"no approval is waiting in {run.runs}\n"


def test_approvers_deciding_at_once_all_count(tmp_path: Path) -> None:
    names = [f"user{i}" for i in range(10)]
    run = Run(tmp_path, gated_pipeline(approvers=json.dumps(names), required=str(len(names))))
    folder = run.waiting()
    start = threading.Barrier(len(names))
    failures: list[BaseException] = []

    def decide(user: str) -> None:
        start.wait()
        try:
            approval_store.decide(folder, user, approve=True)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=decide, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert approval_task(folder)["status"]["approvalsReceived"] == len(names)
    assert run.finish().exit_code == 0


def test_bad_requests_are_refused_with_the_reason(tmp_path: Path) -> None:
    run = Run(tmp_path, gated_pipeline())
    folder = run.waiting()
    before = (folder / approval_store.TASK_FILE).read_bytes()
    cases = [
        (["gate", "approve", "--approve"], 2, "--user NAME is required"),
        (["gate", "approve", "--user", "alice"], 2, "say --approve or --reject"),
        (["gate", "--approve", "--user", "alice"], 2, "RUN and TASK are required"),
        (["nope", "approve", "--approve", "--user", "alice"], 1, "no PipelineRun nope in"),
        (["gate", "deploy", "--approve", "--user", "alice"], 1, "has no task deploy waiting"),
        (["gate", "build", "--approve", "--user", "alice"], 1, "is a TaskRun, not an approval"),
        (["--list", "gate"], 2, "--list takes no RUN"),
    ]
    for args, code, message in cases:
        refused = run.approve(*args)
        assert (refused.exit_code, message in refused.output) == (code, True), (
            args,
            refused.output,
        )
    assert (folder / approval_store.TASK_FILE).read_bytes() == before
    assert run.approve("gate", "approve", "--reject", "--user", "alice").exit_code == 0
    assert run.finish().exit_code == 1


def test_invalid_approval_params_fail_the_custom_run(tmp_path: Path) -> None:
    run = Run(tmp_path, gated_pipeline(approvers="[]"))
    done = run.finish()
    assert done.exit_code == 1
    ended = approval_store.condition(custom_run(run.runs / "gate" / "gate-approve"))
    assert (ended["status"], ended["reason"]) == ("False", "ApprovalTaskValidationFailed")
    assert ended["message"] == (
        "ApprovalTask validation failed: no valid approvers found - at least one approver is "
        "required"
    )


def test_a_custom_task_without_a_controller_here_fails_clearly(tmp_path: Path) -> None:
    run = Run(
        tmp_path,
        """
        apiVersion: tekton.dev/v1
        kind: PipelineRun
        metadata: {name: other}
        spec:
          pipelineSpec:
            tasks:
              - name: wait
                taskSpec:
                  apiVersion: example.dev/v1
                  kind: Wait
                  spec: {duration: 1m}
        """,
    )
    done = run.finish()
    assert done.exit_code == 1
    saved = approval_store.read(run.runs / "other" / "other-wait" / approval_store.RUN_FILE)
    assert saved["spec"]["customSpec"] == {
        "apiVersion": "example.dev/v1",
        "kind": "Wait",
        "spec": {"duration": "1m"},
    }
    ended = approval_store.condition(saved)
    assert (ended["status"], ended["reason"]) == ("False", "Failed")
    assert ended["message"].startswith("no controller for example.dev/v1/Wait here")


def test_a_custom_task_reference_without_a_kind_is_refused_at_admission(tmp_path: Path) -> None:
    run = Run(
        tmp_path,
        """
        apiVersion: tekton.dev/v1
        kind: PipelineRun
        metadata: {name: nokind}
        spec:
          pipelineSpec:
            tasks:
              - name: gate
                taskRef: {apiVersion: openshift-pipelines.org/v1alpha1}
        """,
    )
    done = run.finish()
    assert done.exit_code == 2
    assert (
        "invalid value: custom task ref must specify kind: spec.pipelineSpec.tasks[0].taskRef.kind"
        in done.log
    )
    assert not (run.runs / "nokind").exists()


def test_a_pipeline_timeout_cancels_the_waiting_custom_run(tmp_path: Path) -> None:
    run = Run(tmp_path, gated_pipeline(run_timeout="2s"))
    done = run.finish()
    assert done.exit_code == 1
    assert done.condition["reason"] == "PipelineRunTimeout"
    ended = approval_store.condition(custom_run(run.runs / "gate" / "gate-approve"))
    assert (ended["status"], ended["reason"], ended["message"]) == (
        "False",
        "CustomRunCancelled",
        "CustomRun cancelled as the PipelineRun it belongs to has timed out.",
    )


TRAIN_AND_DEPLOY_RUN = """
    apiVersion: tekton.dev/v1
    kind: PipelineRun
    metadata: {name: gated}
    spec:
      pipelineRef: {name: train-and-deploy}
      params:
        - {name: catalog-revision, value: HEAD}
        - {name: target-column, value: species}
        - {name: deploy-target, value: local}
        - {name: model-name, value: iris}
        - {name: slo-requests, value: "50"}
      workspaces:
        - name: shared
          volumeClaimTemplate:
            spec:
              accessModes: [ReadWriteOnce]
              resources: {requests: {storage: 1Gi}}
        - {name: signing-key, secret: {secretName: model-signing-key}}
        - {name: verification-key, secret: {secretName: model-verification-key}}
"""


def train_and_deploy(tmp_path: Path, secrets: Path, *params: str) -> Run:
    """train-and-deploy as this checkout has it (its Tasks from git at HEAD, as the samples
    resolve them), deploying to a local server, on iris."""
    from tests.local.test_catalog_runs import PROJECT_URL, write_iris

    data = write_iris(tmp_path / "data" / "iris.csv")
    args = [f"dataset-uri={data.as_uri()}", f"model-destination={(tmp_path / 'models').as_uri()}"]
    return Run(
        tmp_path,
        TRAIN_AND_DEPLOY_RUN,
        "--catalog", str(REPO / "catalog" / "pipeline" / "train-and-deploy"),
        "--git-mirror", f"{PROJECT_URL}={REPO}",
        "--secrets-dir", str(secrets),
        "--host-path", str(tmp_path),
        *(part for param in [*args, *params] for part in ("--param", param)),
    )  # fmt: skip


def test_train_and_deploy_promotes_the_canary_once_approved(
    tmp_path: Path, cluster_secrets: Path
) -> None:
    from tests.local.test_catalog_runs import report_log, served, stop_local_servers

    run = train_and_deploy(tmp_path, cluster_secrets, "approvers=alice,bob", "approvals-required=2")
    try:
        folder = run.waiting("gated", "approve-promotion", seconds=300)
        assert custom_run(folder)["spec"]["params"][0] == {
            "name": "approvers",
            "value": ["alice", "bob"],
        }
        assert not (run.runs / "gated" / "gated-promote-model").exists()
        for user in ("alice", "bob"):
            given = subprocess.run(
                [CLI, "approve", "gated", "approve-promotion", "--approve", "--user", user,
                 "--run-dir", str(run.runs)],
                capture_output=True, text=True,
            )  # fmt: skip
            assert given.returncode == 0, given.stderr
        done = run.finish(seconds=300)
        assert done.exit_code == 0, done.log
        assert done.results["slo-passed"] == "true"
        assert "rollback-model" in done.skipped  # promoted: nothing to take back
        assert "deployment: canary promoted (every SLO met)" in report_log(run.runs)
        assert served(done.results["deployed-url"])
    finally:
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()
        stop_local_servers(run.runs)


def test_train_and_deploy_without_approvers_promotes_on_slos_alone(
    tmp_path: Path, cluster_secrets: Path
) -> None:
    from tests.local.test_catalog_runs import report_log, stop_local_servers

    run = train_and_deploy(tmp_path, cluster_secrets)
    try:
        done = run.finish(seconds=300)
    finally:
        stop_local_servers(run.runs)
    assert done.exit_code == 0, done.log
    assert done.skipped["approve-promotion"] == "When Expressions evaluated to false"
    assert done.results["slo-passed"] == "true"
    assert "deployment: canary promoted (every SLO met)" in report_log(run.runs)
    assert not list(run.runs.glob("*/*/customrun.yaml"))
