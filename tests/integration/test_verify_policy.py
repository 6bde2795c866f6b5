"""verify-policy on a real model: trained, evaluated, signed with its lineage, pushed to a folder
store, the registry (docker-registry) and S3 (moto); real keys, real signatures.

The model is built once as the Pipeline builds it: fetch-data, train-model (with its code
revision), evaluate-model (its report into the model), sign-artifact; each step's record
names the pinned image it ran from (TEKTON_MLOPS_IMAGE).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tekton_mlops.cli import main
from tests.conftest import KeyPair
from tests.integration.tampering import forged, swap_referrer

pytestmark = pytest.mark.integration

REVISION = "0123456789abcdef0123456789abcdef01234567"
DIGEST = "sha256:" + "c" * 64
RUN_ENV = {
    "TEKTON_MLOPS_SOURCE_URL": "https://git.example/ml/models",
    "TEKTON_MLOPS_SOURCE_REVISION": REVISION,
    "TEKTON_MLOPS_IMAGE": f"ghcr.io/tekton-mlops/runtime:0.1.0@{DIGEST}",
}


def step(*args: str) -> dict[str, str]:
    results = Path(args[-1])
    outcome = CliRunner().invoke(main, [*args[:-1], f"--results-dir={results}"], env=RUN_ENV)
    assert outcome.exit_code == 0, outcome.output
    return {p.name: p.read_text() for p in results.iterdir()}


@pytest.fixture(scope="module")
def model(datasets, keys: KeyPair, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("policy")
    step("fetch-data", f"--source={datasets['iris'].as_uri()}", f"--output={root}/data",
         f"{root}/r1")  # fmt: skip
    step("train-model", f"--data={root}/data", "--target-column=target",
         f"--output={root}/model", '--hyperparameters={"max_iter": 500}', f"{root}/r2")  # fmt: skip
    step("evaluate-model", f"--model-path={root}/model", f"--data={root}/data",
         f"--output={root}/model", '--thresholds={"accuracy": ">=0.9"}', f"{root}/r3")  # fmt: skip
    step("sign-artifact", f"--path={root}/model", f"--private-key={keys.private}", f"{root}/r4")
    return root / "model"


def copy_of(model: Path, tmp_path: Path) -> Path:
    target = tmp_path / "built" / "model"
    shutil.copytree(model, target)
    return target


def push(model: Path, destination: str, *extra: str) -> str:
    return step("push-model", f"--path={model}", f"--destination={destination}", *extra,
                str(model.parent / "pushed"))["model-uri"]  # fmt: skip


def allowed(datasets: dict[str, Path]) -> str:
    """policy-params that allow this test's data (a local file) and pin the runtime image."""
    prefix = datasets["iris"].parent.as_uri() + "/"
    return json.dumps({"allowed_dataset_prefixes": [prefix], "runtime_image_digest": DIGEST})


def verify(run_step, keys: KeyPair, out: Path, *args: str):  # type: ignore[no-untyped-def]
    return run_step("verify-policy", f"--public-key={keys.public}", f"--output={out}", *args)


def read_report(out: Path) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((out / "policy-report.json").read_text())
    return found


def test_folder_store_passes_and_the_decision_has_its_lineage(model, datasets, keys, run_step,
                                                              tmp_path) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    # As train-and-deploy does: signed, verified (verify-artifact adds its unsigned record), pushed.
    copy = copy_of(model, tmp_path)
    step("verify-artifact", f"--path={copy}", f"--public-key={keys.public}", str(tmp_path / "v"))
    uri = push(copy, (tmp_path / "store").as_uri())
    out = tmp_path / "report"
    done = verify(run_step, keys, out, f"--model-uri={uri}", f"--policy-params={allowed(datasets)}")
    assert done.exit_code == 0, done.output
    assert done.results == {"passed": "true", "failures": "0", "warnings": "0",
                            "report": str(out / "policy-report.json")}  # fmt: skip
    report = read_report(out)
    assert report["passed"] is True
    assert [r["result"] for r in report["rules"]] == ["pass"] * 9
    steps = sorted(a["step"] for a in report["attestations"])
    assert steps == ["evaluate-model", "fetch-data", "push-model", "sign-artifact", "train-model",
                     "verify-artifact"]  # fmt: skip
    signed_root = (model.parent / "r4" / "root-digest").read_text()  # sign-artifact's result
    assert report["model"]["digest"] == signed_root
    # What the rules saw: the data's origin, the code, the evaluation inside the model.
    seen = json.loads((out / "policy-input.json").read_text())
    assert [d["uri"] for d in seen["datasets"]] == [datasets["iris"].as_uri()]
    assert seen["source"]["revision"] == REVISION
    assert seen["evaluation"]["checks"][0]["metric"] == "accuracy"
    # The decision's record: the policy as applied and the model in, the reports out.
    from tekton_mlops.digests import sha256_file

    record = json.loads((out / ".mlops/lineage/verify-policy.intoto.json").read_text())
    inputs = {d["name"]: d for d in record["predicate"]["buildDefinition"]["resolvedDependencies"]}
    applied = out / "policy-applied.json"
    assert inputs["policy"]["digest"]["sha256"] == sha256_file(applied)
    assert report["policy"]["digest"] == f"sha256:{sha256_file(applied)}"
    assert json.loads(applied.read_text())["params"][
        "runtime_image_digest"] == DIGEST  # fmt: skip
    assert inputs["model"]["digest"]["sha256"] == signed_root.removeprefix("sha256:")
    assert inputs["verification-key"]["digest"]["sha256"] == sha256_file(keys.public)
    subjects = {s["name"]: s["digest"]["sha256"] for s in record["subject"]}
    assert subjects["policy-report.json"] == sha256_file(out / "policy-report.json")


def test_oci_model_a_failing_rule_names_itself(model, datasets, keys, registry, run_step,
                                               tmp_path) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    uri = push(copy_of(model, tmp_path), f"oci://{registry}/policy/iris:1")
    out = tmp_path / "report"
    # The default policy allows s3://, https:// and oci:// data only: this model read a file.
    refused = verify(run_step, keys, out, f"--model-uri={uri}")
    assert refused.exit_code == 1
    errors = [line for line in refused.output.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {uri} does not pass policy default: 1 rule(s) did not pass: dataset-allowed: "
        f"dataset(s) not under s3://, https://, oci://: {datasets['iris'].as_uri()} (read by "
        f"fetch-data) (report {out / 'policy-report.md'})"
    ]
    assert refused.results == {}
    report = read_report(out)
    assert {r["name"]: r["result"] for r in report["rules"]}["dataset-allowed"] == "fail"
    assert "| dataset-allowed | failure | fail |" in (out / "policy-report.md").read_text()
    # Reported, not enforced: the verdict is a result for a when expression.
    audit = verify(run_step, keys, tmp_path / "audit", f"--model-uri={uri}", "--enforce=false")
    assert audit.exit_code == 0, audit.output
    assert (audit.results["passed"], audit.results["failures"]) == ("false", "1")
    passed = verify(run_step, keys, tmp_path / "ok", f"--model-uri={uri}",
                    f"--policy-params={allowed(datasets)}")  # fmt: skip
    assert passed.exit_code == 0, passed.output


def test_oci_tampered_referrer_fails_naming_it(model, keys, registry, run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    uri = push(copy_of(model, tmp_path), f"oci://{registry}/policy/tamper:1")
    replaced = swap_referrer(registry, "policy/tamper", uri)

    out = tmp_path / "report"
    done = verify(run_step, keys, out, f"--model-uri={uri}")
    assert done.exit_code == 1
    name = f"oci://{registry}/policy/tamper@{replaced}"
    assert (
        f"{name}: NOT VERIFIED (the signature does not verify with this public key)" in done.output
    )
    assert "no rule was evaluated" in done.output
    assert done.results == {}
    assert not out.exists()  # evidence that does not verify is not judged: nothing written


def test_folder_store_tampered_attestation_fails_naming_it(model, datasets, keys, run_step,
                                                           tmp_path) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    uri = push(copy_of(model, tmp_path), (tmp_path / "store").as_uri())
    folder = Path(uri.removeprefix("file://"))
    upstream = next((folder / ".mlops/lineage/upstream").glob("fetch-data-*.sigstore.json"))
    upstream.write_bytes(forged(upstream.read_bytes()))
    done = verify(run_step, keys, tmp_path / "report", f"--model-uri={uri}",
                  f"--policy-params={allowed(datasets)}")  # fmt: skip
    assert done.exit_code == 1
    errors = [line for line in done.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert f"{upstream}: NOT VERIFIED (the signature does not verify" in errors[0]
    assert done.results == {}


def test_model_directory_and_another_key(model, datasets, keys, other_keys, run_step,
                                         tmp_path) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    ok = verify(run_step, keys, tmp_path / "ok", f"--model-path={model}",
                f"--policy-params={allowed(datasets)}")  # fmt: skip
    assert ok.exit_code == 0, ok.output
    another = verify(run_step, other_keys, tmp_path / "other", f"--model-path={model}")
    assert another.exit_code == 1
    assert f"{model / 'model.sig'}: signed with another key" in another.output
    assert "train-model.sigstore.json: NOT VERIFIED (signed with another key" in another.output
    assert not (tmp_path / "other").exists()
    # A changed model file is named too.
    changed = copy_of(model, tmp_path)
    (changed / "evaluation.json").write_text('{"passed": true}')
    done = verify(run_step, keys, tmp_path / "changed", f"--model-path={changed}")
    assert done.exit_code == 1
    assert "does not match its signature: changed file(s): evaluation.json" in done.output


def test_s3_model_passes(model, datasets, keys, s3, bucket, s3_server, run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    endpoint = f"--endpoint-url={s3_server.endpoint}"
    uri = push(copy_of(model, tmp_path), f"s3://{bucket}/models/iris", endpoint)
    done = verify(run_step, keys, tmp_path / "report", f"--model-uri={uri}", endpoint,
                  f"--policy-params={allowed(datasets)}")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert read_report(tmp_path / "report")["model"]["uri"] == uri


BROKEN_RULE = """
name: team
rules:
  - name: fine
    description: d
    expression: model.verified
  - name: half-written
    description: d
    expression: "datasets.all(d, d.uri.startsWith("
"""


def test_bad_policies_exit_2_naming_the_problem_with_nothing_written(model, keys, run_step,
                                                                     tmp_path) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    out = tmp_path / "report"
    broken = verify(run_step, keys, out, f"--model-path={model}", f"--policy={BROKEN_RULE}")
    assert broken.exit_code == 2
    assert "error: verify-policy: 1 invalid parameter(s)" in broken.output
    assert "rules[1] (half-written).expression does not compile" in broken.output
    schema = tmp_path / "policy.yaml"
    schema.write_text(BROKEN_RULE.replace("description: d\n    expression: model.verified",
                                          "description: d\n    severity: fatal\n"
                                          "    expression: model.verified"))  # fmt: skip
    breaking = verify(run_step, keys, out, f"--model-path={model}", f"--policy-path={schema}")
    assert breaking.exit_code == 2
    assert f"--policy-path='{schema}': rules[0].severity: 'fatal' is not one of" in breaking.output
    unknown = verify(run_step, keys, out, f"--model-path={model}",
                     '--policy-params={"max_age": 3}')  # fmt: skip
    assert unknown.exit_code == 2
    assert "max_age: not a param of policy default" in unknown.output
    twice = verify(run_step, keys, out, f"--model-path={model}", "--model-uri=file:///m")
    assert twice.exit_code == 2
    assert "give model-uri or model-path (the model workspace), not both" in twice.output
    for outcome in (broken, breaking, unknown, twice):
        assert outcome.results == {}
    assert not out.exists()
