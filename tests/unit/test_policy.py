"""verify-policy's library: the policy format, compiling, evaluating, and each default rule.

The inputs are built from lineage statements made as the steps make them (lineage.statement),
checked as the lineage store checks them; only the signatures are left out (a signed and
verified record is marked so), which the integration tests cover with real keys.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tekton_mlops.errors import ParameterError
from tekton_mlops.lineage import Artifact, statement
from tekton_mlops.lineage_store.attestations import Attestation, Checked, Status
from tekton_mlops.policy import cel
from tekton_mlops.policy.decide import Decision, compile_rules, decide
from tekton_mlops.policy.evidence import Evidence, ModelFacts
from tekton_mlops.policy.inputs import build_input
from tekton_mlops.policy.spec import (
    DEFAULT_POLICY,
    Policy,
    PolicyFileError,
    Source,
    parse_policy,
    read_policy,
)
from tests.conftest import REPO

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
REVISION = "0123456789abcdef0123456789abcdef01234567"
IMAGE = "ghcr.io/tekton-mlops/runtime:0.1.0@sha256:" + "a" * 64
CSV, FETCHED, ONNX, EVALUATION, ROOT = ("1" * 64, "2" * 64, "3" * 64, "4" * 64, "5" * 64)


def inline(text: str) -> Source:
    return Source("policy", "inline", text)


def policy_of(text: str, overrides: dict[str, Any] | None = None) -> Policy:
    return parse_policy(inline(text), overrides or {})


def default(overrides: dict[str, Any] | None = None) -> Policy:
    return parse_policy(read_policy("", ""), overrides or {})


# The format ------------------------------------------------------------------------------


def test_the_catalog_ships_the_default_policy_the_runtime_uses() -> None:
    shipped = REPO / "catalog/task/verify-policy/0.1/policy/default-policy.yaml"
    assert shipped.read_bytes() == DEFAULT_POLICY.read_bytes()
    policy = default()
    assert policy.name == "default"
    assert [r.name for r in policy.rules] == [
        "signed-and-verified", "lineage-of-this-model", "not-revoked", "evaluation-passed",
        "dataset-allowed", "source-revision", "images-pinned", "images-recorded",
        "attestations-fresh",
    ]  # fmt: skip
    assert {r.name: r.severity for r in policy.rules}["images-recorded"] == "warning"
    assert len(compile_rules(policy)) == len(policy.rules)


def test_every_schema_violation_is_named_by_its_place() -> None:
    text = """
kind: Policy
name: Team Policy
colour: blue
rules:
  - name: ok
    description: fine
    expression: "true"
    severity: fatal
  - description: no name, no expression
"""
    with pytest.raises(ParameterError) as raised:
        policy_of(text)
    message = str(raised.value)
    assert "verify-policy: 6 invalid parameter(s)" in message
    assert "kind: 'ModelPolicy' was expected" in message
    assert "--policy='(inline text)': name: must be lower case letters, digits and -" in message
    assert (
        "colour: unknown key; allowed: apiVersion, description, kind, name, params, rules"
        in message
    )
    assert "rules[0].severity: 'fatal' is not one of ['failure', 'warning']" in message
    assert "rules[1].name: is required" in message
    assert "rules[1].expression: is required" in message


def test_rule_names_are_unique_and_a_policy_is_a_mapping() -> None:
    twice = (
        'name: p\nrules:\n- {name: a, description: d, expression: "true"}\n'
        '- {name: a, description: d, expression: "false"}\n'
    )
    with pytest.raises(ParameterError, match=r"rules\[1\] \(a\)\.name: another rule has this"):
        policy_of(twice)
    with pytest.raises(ParameterError, match="must be a policy: a mapping with name and rules"):
        policy_of("- just\n- a list\n")
    with pytest.raises(ParameterError, match=r"not valid YAML or JSON \(.* at line 2, column 1\)"):
        policy_of("name: [unclosed\n")


def test_yaml_and_json_of_one_policy_have_one_digest() -> None:
    as_yaml = policy_of(
        'name: p\nparams: {n: 3}\nrules:\n- {name: a, description: d, expression: "true"}\n'
    )
    document = {"rules": [{"expression": "true", "description": "d", "name": "a"}],
                "params": {"n": 3}, "name": "p"}  # fmt: skip
    as_json = policy_of(json.dumps(document))
    assert as_yaml.digest == as_json.digest
    assert policy_of(json.dumps(document), {"n": 4}).digest != as_json.digest
    # A rule's message defaults to its description, its severity to failure.
    assert (as_yaml.rules[0].message, as_yaml.rules[0].severity) == ("d", "failure")


def test_policy_params_replace_declared_params_of_the_same_kind() -> None:
    policy = default({"max_age_days": 7, "allowed_branches": ["main", "release"]})
    assert policy.params["max_age_days"] == 7
    assert policy.params["allowed_branches"] == ["main", "release"]
    assert policy.params["unsigned_steps"] == ["verify-artifact", "push-model", "deploy-model"]
    with pytest.raises(ParameterError) as raised:
        default({"max_age_dayz": 7, "allowed_branches": "main"})
    message = str(raised.value)
    assert "max_age_dayz: not a param of policy default (its params: allowed_branches" in message
    assert "allowed_branches: must be a list, as the policy's is" in message


def test_policy_from_a_file_or_a_configmap_folder(tmp_path: Path) -> None:
    # A ConfigMap mounted as a workspace: one key file, and the ..data links kubelet adds.
    folder = tmp_path / "policy"
    (folder / "..2026_06_01").mkdir(parents=True)
    (folder / "..2026_06_01" / "policy.yaml").write_text(DEFAULT_POLICY.read_text())
    (folder / "..data").symlink_to("..2026_06_01")
    (folder / "policy.yaml").symlink_to("..data/policy.yaml")
    source = read_policy("", str(folder))
    assert (source.param, source.where) == ("policy-path", str(folder / "policy.yaml"))
    assert parse_policy(source, {}).digest == default().digest
    (folder / "other.json").write_text("{}")
    with pytest.raises(PolicyFileError, match="expected one policy file .* found other.json, "
                                              "policy.yaml"):  # fmt: skip
        read_policy("", str(folder))
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\x89PNG\x00\xff\xfe")
    with pytest.raises(PolicyFileError, match="binary.yaml: not a policy \\(not UTF-8 text\\)"):
        read_policy("", str(binary))
    with pytest.raises(PolicyFileError, match="absent.yaml: no such policy file or folder"):
        read_policy("", str(tmp_path / "absent.yaml"))
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(PolicyFileError, match="empty.yaml: must be a policy"):
        parse_policy(read_policy("", str(empty)), {})
    with pytest.raises(ParameterError, match="give policy or policy-path, not both"):
        read_policy("name: p", str(empty))
    assert PolicyFileError.exit_code == 2


# Compiling --------------------------------------------------------------------------------


def test_every_rule_that_does_not_compile_is_named() -> None:
    text = """
name: p
rules:
  - {name: fine, description: d, expression: "1.0 > 0.0"}
  - {name: broken, description: d, expression: "model.uri.startsWith("}
  - {name: bad-message, description: d, expression: "true", message: "x {{ 1 + }} y"}
"""
    with pytest.raises(ParameterError) as raised:
        compile_rules(policy_of(text))
    message = str(raised.value)
    assert "2 invalid parameter(s)" in message
    assert "rules[1] (broken).expression does not compile" in message
    assert "rules[2] (bad-message).message: a {{ }} does not compile" in message
    assert "fine" not in message


# Evaluating -------------------------------------------------------------------------------


def judge(text: str, document: dict[str, Any], seconds: float = 5) -> Decision:
    return decide(compile_rules(policy_of(text)), document, seconds)


def rule(expression: str, message: str = "no", severity: str = "failure") -> str:
    return json.dumps({"name": "p", "rules": [
        {"name": "r", "description": "d", "expression": expression, "message": message,
         "severity": severity}]})  # fmt: skip


def test_only_true_passes_and_errors_fail_with_their_reason() -> None:
    document = {"params": {"n": 3, "names": ["a", "b"]}}
    assert judge(rule("params.n == 3.0"), document).outcomes[0].passed
    # Numbers are doubles whether the policy wrote 3 or 3.0: CEL compares them alike.
    assert judge(rule("params.n > 2.5"), document).outcomes[0].passed
    not_bool = judge(rule("params.names"), document).outcomes[0]
    assert (not_bool.passed, not_bool.reason) == (
        False, "the expression must be true or false, not ['a', 'b']",
    )  # fmt: skip
    missing = judge(rule("params.m == 1.0"), document).outcomes[0]
    assert not missing.passed
    assert missing.reason.startswith("could not be evaluated: no such member")
    undeclared = judge(rule("nothing == 1.0"), document).outcomes[0]
    assert undeclared.reason == "could not be evaluated: undeclared reference to 'nothing'"


def test_the_message_shows_values_and_severity_decides_the_verdict() -> None:
    document = {"params": {"names": ["a", "b"], "n": 30}}
    failed = judge(rule("false", "names {{ params.names }}, n {{ params.n }}, {{ params.x }}"),
                   document).outcomes[0]  # fmt: skip
    assert failed.reason.startswith("names a, b, n 30, <params.x: no such member")
    assert failed.result == "fail"
    warned = judge(rule("false", severity="warning"), document)
    assert warned.outcomes[0].result == "warn"
    assert (len(warned.failures), len(warned.warnings)) == (0, 1)
    assert warned.passed(fail_on_warning=False)
    assert not warned.passed(fail_on_warning=True)


SLOW = "params.l.all(a, params.l.all(b, params.l.all(c, a + b + c >= 0.0)))"
#: 20**3 evaluations: seconds of work for cel-python, over a 0.3 s limit with room to spare,
#: and short enough that the thread left behind off the main thread ends soon after.
MANY = list(range(20))


def test_a_rule_over_its_time_limit_fails_and_the_next_one_runs() -> None:
    text = json.dumps({"name": "p", "rules": [
        {"name": "slow", "description": "d", "expression": SLOW},
        {"name": "quick", "description": "d", "expression": "size(params.l) > 0"}]})  # fmt: skip
    decision = judge(text, {"params": {"l": MANY}}, seconds=0.3)
    slow, quick = decision.outcomes
    assert (slow.passed, slow.reason) == (
        False, "could not be evaluated: did not finish within the time limit of 0.3 s",
    )  # fmt: skip
    assert slow.seconds < 2
    assert quick.passed


def test_a_dropped_alarm_does_not_let_the_evaluation_run_on() -> None:
    # Python reports and drops an exception raised in a finaliser or a garbage-collector
    # callback: the timer's first alarm can land there. The next one must still stop it.
    dropped: list[BaseException] = []

    def run() -> str:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                time.sleep(0.01)
            except BaseException as exc:  # noqa: BLE001 - as a finaliser's caller does
                if dropped:
                    raise
                dropped.append(exc)
        return "ran to its end"

    started = time.monotonic()
    with pytest.raises(cel.EvaluationError, match="time limit of 0.1 s"):
        cel._within(run, 0.1)
    assert len(dropped) == 1
    assert time.monotonic() - started < 1


def test_the_time_limit_holds_off_the_main_thread_too() -> None:
    program = cel.compile_expression(SLOW)
    bound = cel.activation({"params": {"l": MANY}})
    caught: list[str] = []

    def worker() -> None:
        try:
            cel.evaluate(program, bound, 0.3)
        except cel.EvaluationError as exc:
            caught.append(str(exc))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(10)
    assert caught == ["did not finish within the time limit of 0.3 s"]


# The input, from lineage records ----------------------------------------------------------


def record(
    step: str,
    inputs: list[Artifact],
    outputs: list[Artifact],
    params: dict[str, Any] | None = None,
    finished: datetime = NOW - DAY,
    image: str = IMAGE,
) -> dict[str, Any]:
    made = statement(step, params or {}, inputs, outputs, finished - DAY / 24, finished)
    made["predicate"]["buildDefinition"]["internalParameters"]["image"] = image
    return made


def checked(made: dict[str, Any], signed: bool = True, name: str = "") -> Checked:
    step = made["predicate"]["buildDefinition"]["externalParameters"]["step"]
    suffix = ".sigstore.json" if signed else ".intoto.json"
    attestation = Attestation.of(name or f"store/.mlops/lineage/{step}{suffix}", b"{}")
    return Checked(attestation, Status.VERIFIED if signed else Status.UNSIGNED, "", made)


def lineage(train_data: str = "s3://ml-data/iris.csv") -> list[Checked]:
    """A model's lineage as the Pipeline makes it: fetched from S3, trained, evaluated,
    signed, pushed (the push record unsigned)."""
    code = Artifact("source", "git+https://git.example/ml", REVISION, "gitCommit")
    fetch = record("fetch-data", [Artifact("source", "s3://ml-data/iris.csv", CSV)],
                   [Artifact("dataset", "file:///workspace/data", FETCHED)])  # fmt: skip
    train = record("train-model", [Artifact("dataset", train_data, FETCHED), code],
                   [Artifact("model", "file:///workspace/model/model.onnx", ONNX)],
                   {"estimator": "logistic-regression"})  # fmt: skip
    evaluate = record("evaluate-model", [Artifact("model", "file:///m/model.onnx", ONNX),
                                         Artifact("dataset", "s3://ml-data/iris.csv", FETCHED)],
                      [Artifact("evaluation", "file:///m/evaluation.json", EVALUATION)],
                      {"thresholds": {"accuracy": ">=0.9"}})  # fmt: skip
    sign = record("sign-artifact", [Artifact("model", "file:///m", ROOT)],
                  [Artifact("signature", "file:///m/model.sig", "6" * 64)])  # fmt: skip
    push = record("push-model", [Artifact("model", "file:///m", ROOT)],
                  [Artifact("pushed-model", "oci://r/m@sha256:" + "7" * 64, "7" * 64)])  # fmt: skip
    return [checked(fetch), checked(train), checked(evaluate), checked(sign),
            checked(push, signed=False)]  # fmt: skip


def evidence(
    checks: list[Checked] | None = None,
    report: dict[str, Any] | None = None,
    files: dict[str, str] | None = None,
) -> Evidence:
    model = ModelFacts(
        "oci://r.example/team/iris@sha256:" + "7" * 64,
        f"sha256:{ROOT}",
        files if files is not None else {"model.onnx": f"sha256:{ONNX}",
                                         "evaluation.json": f"sha256:{EVALUATION}"},
        "ab" * 32,
        "model.sig",
    )  # fmt: skip
    passed = {"passed": True, "metrics": {"accuracy": 0.95},
              "checks": [{"metric": "accuracy", "condition": ">=0.9", "value": 0.95,
                          "passed": True}]}  # fmt: skip
    documents = {f"sha256:{EVALUATION}": report if report is not None else passed}
    return Evidence(model, tuple(checks if checks is not None else lineage()), documents)


def test_the_input_names_the_data_origin_the_code_and_the_evaluation() -> None:
    document = build_input(evidence(), {"x": 1}, NOW)
    assert document["datasets"] == [{"name": "source", "uri": "s3://ml-data/iris.csv",
                                     "digest": f"sha256:{CSV}", "step": "fetch-data"}]  # fmt: skip
    assert document["source"] == {"uri": "git+https://git.example/ml", "revision": REVISION,
                                  "branch": ""}  # fmt: skip
    assert document["steps"]["train-model"]["params"] == {"estimator": "logistic-regression"}
    assert document["training"]["step"] == "train-model"
    assert document["evaluation"]["found"] is True
    assert document["evaluation"]["thresholds"] == {"accuracy": ">=0.9"}
    push = document["steps"]["push-model"]
    assert (push["signed"], push["verified"], push["status"]) == (False, False, "unsigned")
    train = document["steps"]["train-model"]
    assert train["subject"][0]["digest"] == f"sha256:{ONNX}"
    assert train["materials"][1]["digest"] == f"gitCommit:{REVISION}"
    assert train["age_days"] == pytest.approx(1.0)
    assert train["image"] == IMAGE
    assert document["model"]["digest"] == f"sha256:{ROOT}"


# Each default rule, passing and failing ----------------------------------------------------


def outcomes(
    ev: Evidence, overrides: dict[str, Any] | None = None, now: datetime = NOW
) -> dict[str, Any]:
    policy = default(overrides)
    decision = decide(compile_rules(policy), build_input(ev, policy.params, now), 5)
    return {o.name: o for o in decision.outcomes}


def test_a_good_model_passes_every_default_rule() -> None:
    results = outcomes(evidence())
    assert {name: o.result for name, o in results.items() if not o.passed} == {}


def test_signed_and_verified() -> None:
    checks = lineage()
    checks[1] = checked(checks[1].statement or {}, signed=False)  # train-model unsigned
    failed = outcomes(evidence(checks))["signed-and-verified"]
    assert failed.result == "fail"
    assert "train-model (store/.mlops/lineage/train-model.intoto.json)" in failed.reason
    assert "push-model" not in failed.reason  # push records are allowed unsigned
    strict = outcomes(evidence(), {"unsigned_steps": []})["signed-and-verified"]
    assert strict.result == "fail"
    assert "push-model" in strict.reason


def test_lineage_of_this_model() -> None:
    other = outcomes(evidence(files={"model.onnx": "sha256:" + "9" * 64}))["lineage-of-this-model"]
    assert other.result == "fail"
    assert other.reason == (
        "the training record store/.mlops/lineage/train-model.sigstore.json produced none "
        "of the model files"
    )
    untrained = outcomes(evidence([c for c in lineage() if c.step != "train-model"]))
    assert untrained["lineage-of-this-model"].reason == "the lineage has no training record"
    assert untrained["source-revision"].result == "fail"


def test_not_revoked() -> None:
    revoke = record("revoke-dataset", [Artifact("dataset", "s3://ml-data/iris.csv", CSV)], [])
    where = "store/.mlops/attestations/revoke-dataset-1234.intoto.json"
    failed = outcomes(evidence([*lineage(), checked(revoke, False, where)]))["not-revoked"]
    assert (failed.result, failed.reason) == ("fail", f"revoked by {where}")


def test_evaluation_passed() -> None:
    missing = outcomes(evidence(report={"unrelated": 1}))["evaluation-passed"]
    assert missing.result == "fail"
    # A report that is not the one the record names is not found: only its digest counts.
    gone = Evidence(evidence().model, evidence().attestations, {})
    assert outcomes(gone)["evaluation-passed"].reason.startswith(
        "no evaluation report in the model that a verified evaluate-model record names"
    )
    below = {"passed": False, "metrics": {"accuracy": 0.8}, "checks": [
        {"metric": "accuracy", "condition": ">=0.9", "value": 0.8, "passed": False}]}  # fmt: skip
    failed = outcomes(evidence(report=below))["evaluation-passed"]
    assert failed.reason == "thresholds not met; failed checks: accuracy 0.8 (needs >=0.9)"
    unchecked = outcomes(evidence(report={"passed": True, "metrics": {}, "checks": []}))
    assert unchecked["evaluation-passed"].reason.startswith("evaluate-model had no thresholds")


def test_dataset_allowed() -> None:
    narrowed = {"allowed_dataset_prefixes": ["s3://ml-data/approved/"]}
    failed = outcomes(evidence(), narrowed)["dataset-allowed"]
    assert failed.reason == (
        "dataset(s) not under s3://ml-data/approved/: s3://ml-data/iris.csv (read by fetch-data)"
    )
    assert outcomes(evidence(), {"allowed_dataset_prefixes": ["s3://ml-data/"]})[
        "dataset-allowed"].passed  # fmt: skip
    # Trained on a local file nobody fetched: that file is where the data came from.
    local = [c for c in lineage("file:///home/me/iris.csv") if c.step != "fetch-data"]
    assert outcomes(evidence(local))["dataset-allowed"].reason == (
        "dataset(s) not under s3://, https://, oci://: file:///home/me/iris.csv (read by "
        "train-model)"
    )
    nothing = [c for c in lineage() if c.step in ("sign-artifact", "push-model")]
    assert "the lineage names no dataset" in outcomes(evidence(nothing))["dataset-allowed"].reason


def test_source_revision_and_branch() -> None:
    def with_code(code: Artifact | dict[str, Any]) -> dict[str, Any]:
        checks = lineage()
        made = json.loads(json.dumps(checks[1].statement))
        deps = made["predicate"]["buildDefinition"]["resolvedDependencies"]
        deps[1] = code if isinstance(code, dict) else code.descriptor()
        checks[1] = checked(made)
        return outcomes(evidence(checks))

    git = {"name": "source", "uri": "git+https://git.example/ml",
           "digest": {"gitCommit": REVISION}}  # fmt: skip
    on_main = with_code({**git, "annotations": {"ref": "refs/heads/main"}})["source-revision"]
    assert on_main.passed
    feature = with_code({**git, "annotations": {"ref": "refs/heads/feature"}})["source-revision"]
    assert feature.result == "fail"
    assert "branch 'feature'" in feature.reason
    short = with_code({**git, "digest": {"gitCommit": "abc123"}})["source-revision"]
    assert "revision 'abc123'" in short.reason
    none = with_code({"name": "other", "uri": "file:///x", "digest": {"sha256": "8" * 64}})
    assert none["source-revision"].reason.startswith("training code (none recorded) at revision ''")


def test_images_pinned_and_recorded() -> None:
    checks = lineage()
    tagged = json.loads(json.dumps(checks[2].statement))
    tagged["predicate"]["buildDefinition"]["internalParameters"]["image"] = "runtime:latest"
    checks[2] = checked(tagged)
    failed = outcomes(evidence(checks))["images-pinned"]
    assert failed.reason == (
        "step(s) not run from an image pinned by digest: evaluate-model (runtime:latest)"
    )
    digest = "sha256:" + "a" * 64
    assert outcomes(evidence(), {"runtime_image_digest": digest})["images-pinned"].passed
    other = outcomes(evidence(), {"runtime_image_digest": "sha256:" + "b" * 64})["images-pinned"]
    assert other.result == "fail"
    assert other.reason.startswith(f"step(s) not run from the runtime image sha256:{'b' * 64}")
    unnamed = lineage()
    bare = json.loads(json.dumps(unnamed[0].statement))
    bare["predicate"]["buildDefinition"]["internalParameters"]["image"] = ""
    unnamed[0] = checked(bare)
    results = outcomes(evidence(unnamed))
    assert results["images-pinned"].passed  # what names no image cannot be unpinned
    assert results["images-recorded"].result == "warn"
    assert results["images-recorded"].reason == "record(s) that do not name their image: fetch-data"
    strict = outcomes(evidence(unnamed), {"runtime_image_digest": digest})["images-pinned"]
    assert "fetch-data (no image recorded)" in strict.reason


def test_attestations_fresh() -> None:
    assert outcomes(evidence(), now=NOW + 28 * DAY)["attestations-fresh"].passed
    stale = outcomes(evidence(), now=NOW + 31 * DAY)["attestations-fresh"]
    assert stale.result == "fail"
    assert stale.reason.startswith("record(s) older than 30 days or without a finish time: "
                                   "fetch-data (32 days)")  # fmt: skip
    assert outcomes(evidence(), {"max_age_days": 60}, now=NOW + 31 * DAY)[
        "attestations-fresh"].passed  # fmt: skip
    checks = lineage()
    timeless = json.loads(json.dumps(checks[0].statement))
    del timeless["predicate"]["runDetails"]["metadata"]["finishedOn"]
    checks[0] = checked(timeless)
    assert "fetch-data (no finish time)" in outcomes(evidence(checks))["attestations-fresh"].reason
