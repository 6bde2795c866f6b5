"""Release decisions in the model's signed lineage: check-golden and detect-drift attach their
record, results included, beside the stored model, and `tekton-mlops lineage show` verifies it.

One iris model is built as the Pipelines build it (fetch-data, train-model, sign-artifact with
its lineage attested) and served by `tekton-mlops serve`; each test pushes its own copy to a
folder store, the registry (docker-registry) or S3 (moto), so the attestations beside one model
are those its test attached. What is asserted is what a user reads: the step's results, the
tree and JSON of `lineage show` against the public key, and its exit code and message.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tekton_mlops.cli import main
from tests.conftest import KeyPair, refused_url
from tests.integration.tampering import rewritten
from tests.integration.test_serving import Server

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Built:
    model: Path  # trained and signed, its lineage attested
    served: str  # the URL of `tekton-mlops serve` of it


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def built(datasets, keys: KeyPair, tmp_path_factory) -> Iterator[Built]:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("decisions")
    for args in (
        ["fetch-data", f"--source={datasets['iris'].as_uri()}", f"--output={root}/data"],
        ["train-model", f"--data={root}/data", "--target-column=target", f"--output={root}/model",
         '--hyperparameters={"max_iter": 500}'],
        ["sign-artifact", f"--path={root}/model", f"--private-key={keys.private}"],
    ):  # fmt: skip
        done = invoke(*args, f"--results-dir={root}/results-{args[0]}")
        assert done.exit_code == 0, done.output
    server = Server(root / "model", "iris")
    try:
        yield Built(root / "model", server.url)
    finally:
        server.kill()


def push(model: Path, destination: str, *extra: str) -> str:
    """A copy of the model pushed to ``destination``; its model-uri."""
    copy = destination.replace("/", "_").replace(":", "_")
    results = model.parent / f"pushed-{copy}"
    done = invoke("push-model", f"--path={model}", f"--destination={destination}", *extra,
                  f"--results-dir={results}")  # fmt: skip
    assert done.exit_code == 0, done.output
    return (results / "model-uri").read_text()


def golden(built: Built, datasets, out: Path, *extra: str) -> tuple[Result, dict[str, str]]:  # type: ignore[no-untyped-def]
    """check-golden against the served model; its outcome and results (none on failure)."""
    results = out.parent / f"{out.name}-results"
    done = invoke(
        "check-golden", f"--url={built.served}", "--model=iris", f"--golden={datasets['iris']}",
        "--expected-column=target", "--min-agreement=0.9", f"--output={out}", *extra,
        f"--results-dir={results}",
    )  # fmt: skip
    found = {p.name: p.read_text() for p in results.iterdir()} if results.exists() else {}
    return done, found


def drift(built: Built, datasets, out: Path, *extra: str) -> tuple[Result, dict[str, str]]:  # type: ignore[no-untyped-def]
    """detect-drift of the iris rows against what the model was trained on (the same rows)."""
    results = out.parent / f"{out.name}-results"
    done = invoke("detect-drift", f"--model-path={built.model}", f"--current={datasets['iris']}",
                  f"--output={out}", *extra, f"--results-dir={results}")  # fmt: skip
    found = {p.name: p.read_text() for p in results.iterdir()} if results.exists() else {}
    return done, found


def show(uri: str, keys: KeyPair, *extra: str) -> Result:
    return invoke("lineage", "show", uri, f"--public-key={keys.public}", *extra)


def decisions(uri: str, keys: KeyPair, *extra: str) -> dict[str, tuple[str, dict[str, str]]]:
    """Each decision ``lineage show -o json`` lists: step -> (status, results)."""
    shown = show(uri, keys, "-o", "json", *extra)
    assert shown.exit_code == 0, shown.output
    return {
        run["step"]: (run["status"], product["annotations"])
        for run in json.loads(shown.stdout)["steps"]
        for product in run["byproducts"]
        if product["name"] == "decision"
    }


def without_report(results: dict[str, str]) -> dict[str, str]:
    """The results as a decision holds them: the report's local path and empty ones aside."""
    return {k: v for k, v in results.items() if k != "report" and v}


# Signed, attached, shown ---------------------------------------------------------------------


def test_signed_decisions_beside_a_folder_store_model(built, datasets, keys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    uri = push(built.model, (tmp_path / "store").as_uri())
    signing = [f"--model-uri={uri}", f"--signing-key={keys.private}"]

    checked, results = golden(built, datasets, tmp_path / "golden", *signing)
    assert checked.exit_code == 0, checked.output
    assert results["passed"] == "true"
    assert "decision signed attached" in checked.output
    drifted, drift_results = drift(built, datasets, tmp_path / "drift", *signing)
    assert drifted.exit_code == 0, drifted.output
    assert drift_results["drifted"] == "false"
    # The bundle is beside the record in the output too, and verifies there with the key.
    assert (tmp_path / "golden/.mlops/lineage/check-golden.sigstore.json").is_file()

    found = decisions(uri, keys)
    assert found["check-golden"] == ("verified", without_report(results))
    assert found["detect-drift"] == ("verified", without_report(drift_results))
    tree = show(uri, keys)
    assert tree.exit_code == 0, tree.output
    report = (tmp_path / "golden" / "golden-report.json").as_uri()
    assert "── check-golden  [verified]" in tree.stdout
    assert (
        f"decision {report} (agreement {results['agreement']}, "
        f"disagreements {results['disagreements']}, passed true, rows 150)"
    ) in tree.stdout
    assert "── detect-drift  [verified]" in tree.stdout
    assert "drifted false" in tree.stdout
    assert "── train-model  [verified]" in tree.stdout  # the model's own lineage, still whole


def test_signed_decision_beside_a_registry_model(built, datasets, keys, registry, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tekton_mlops.storage.oci import Registry

    uri = push(built.model, f"oci://{registry}/decisions/iris:1")
    checked, results = golden(built, datasets, tmp_path / "golden", f"--model-uri={uri}",
                              f"--signing-key={keys.private}")  # fmt: skip
    assert checked.exit_code == 0, checked.output
    # A referrer of the model, as cosign lays out a bundle (the fallback tag's index here).
    digest = uri.rpartition("@")[2]
    index = Registry(registry).find_manifest(
        "decisions/iris", digest.replace(":", "-"), "application/vnd.oci.image.index.v1+json"
    )
    assert index is not None
    steps = {
        d["annotations"]["dev.tekton-mlops.lineage.step"]: d["artifactType"]
        for d in json.loads(index[0])["manifests"]
    }
    assert steps["check-golden"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert decisions(uri, keys)["check-golden"] == ("verified", without_report(results))


def test_signed_decision_beside_an_s3_model(
    built, datasets, keys, bucket, s3_server, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    endpoint = f"--endpoint-url={s3_server.endpoint}"
    uri = push(built.model, f"s3://{bucket}/models/iris", endpoint)
    done, results = drift(built, datasets, tmp_path / "drift", f"--model-uri={uri}",
                          f"--signing-key={keys.private}", endpoint)  # fmt: skip
    assert done.exit_code == 0, done.output
    found = decisions(uri, keys, endpoint)
    assert found["detect-drift"] == ("verified", without_report(results))


# Unsigned, tampered ---------------------------------------------------------------------------


def test_without_a_key_the_decision_is_attached_unsigned(built, datasets, keys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    uri = push(built.model, (tmp_path / "store").as_uri())
    # An earlier signed run into the same report folder leaves no bundle that would vouch for
    # the new record.
    golden(built, datasets, tmp_path / "golden", f"--signing-key={keys.private}")
    checked, results = golden(built, datasets, tmp_path / "golden", f"--model-uri={uri}")
    assert checked.exit_code == 0, checked.output
    assert "decision unsigned attached" in checked.output
    assert not (tmp_path / "golden/.mlops/lineage/check-golden.sigstore.json").exists()

    assert decisions(uri, keys)["check-golden"] == ("unsigned", without_report(results))
    assert "── check-golden  [unsigned]" in show(uri, keys).stdout
    strict = show(uri, keys, "--require-signed")
    assert strict.exit_code == 1
    assert "unsigned (check-golden)" in strict.stderr


def forged(bundle: bytes) -> bytes:
    """The bundle with its decision changed (passed false) and the signature kept."""

    def failed(statement: dict[str, Any]) -> None:
        (decision,) = statement["predicate"]["runDetails"]["byproducts"]
        decision["annotations"]["passed"] = "false"

    return rewritten(bundle, failed)


def test_a_tampered_decision_fails_lineage_show_naming_it(built, datasets, keys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    uri = push(built.model, (tmp_path / "store").as_uri())
    checked, _ = golden(built, datasets, tmp_path / "golden", f"--model-uri={uri}",
                        f"--signing-key={keys.private}")  # fmt: skip
    assert checked.exit_code == 0, checked.output
    folder = Path(uri.removeprefix("file://")) / ".mlops" / "attestations"
    (attached,) = folder.glob("check-golden-*.sigstore.json")
    attached.write_bytes(forged(attached.read_bytes()))

    failed = show(uri, keys)
    assert failed.exit_code == 1
    assert f"{attached}: NOT VERIFIED (the signature does not verify" in failed.stderr
    assert "[NOT VERIFIED]" in failed.stdout
    # What the forged record claims is not taken: no decision of check-golden is shown.
    graph = json.loads(show(uri, keys, "-o", "json").stdout)
    assert graph["verified"] is False
    assert not [s for s in graph["steps"] if s["step"] == "check-golden"]


# A model-uri that is not a stored model ------------------------------------------------------


def nothing_written(out: Path) -> None:
    assert not out.exists()
    assert not out.parent.joinpath(f"{out.name}-results").exists()


def test_a_model_uri_that_holds_no_model_fails_before_the_check(  # type: ignore[no-untyped-def]
    built, datasets, keys, registry, tmp_path
) -> None:
    (tmp_path / "empty").mkdir()
    with refused_url() as refused:
        down = refused.replace("http://", "oci://") + "/decisions/iris:1"
        cases = {
            (
                tmp_path / "absent"
            ).as_uri(): f"{(tmp_path / 'absent').as_uri()}: no such model folder",
            (tmp_path / "empty").as_uri(): "an empty folder, no stored model",
            f"oci://{registry}/decisions/none:1": f"oci://{registry}/decisions/none:1: no such "
            f"model in registry {registry}",
            down: f"cannot reach registry {down.removeprefix('oci://').split('/')[0]}",
        }
        for number, (uri, message) in enumerate(cases.items()):
            out = tmp_path / f"golden-{number}"
            done, results = golden(built, datasets, out, f"--model-uri={uri}",
                                   f"--signing-key={keys.private}")  # fmt: skip
            assert done.exit_code == 1, done.output
            assert message in done.stderr
            assert len(done.stderr.strip().splitlines()) == 1, done.stderr
            nothing_written(out)

    not_a_store = tmp_path / "golden-https"
    done, _ = golden(built, datasets, not_a_store, "--model-uri=https://models.example/iris")
    assert done.exit_code == 2
    assert "--model-uri='https://models.example/iris': must be an oci://, s3:// or file://" in (
        done.stderr
    )
    nothing_written(not_a_store)


def test_an_empty_s3_prefix_holds_no_model(built, datasets, bucket, s3_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    uri = f"s3://{bucket}/models/iris/sha256-{'0' * 64}/"
    out = tmp_path / "drift"
    done, _ = drift(built, datasets, out, f"--model-uri={uri}",
                    f"--endpoint-url={s3_server.endpoint}")  # fmt: skip
    assert done.exit_code == 1
    assert f"{uri}: no stored model there" in done.stderr
    nothing_written(out)


def test_a_store_that_refuses_the_record_fails_the_step_after_the_reports(  # type: ignore[no-untyped-def]
    built, datasets, keys, tmp_path
) -> None:
    uri = push(built.model, (tmp_path / "store").as_uri())
    # Where the attestations go, a file: the store takes no record (as read-only storage would).
    blocked = Path(uri.removeprefix("file://")) / ".mlops" / "attestations"
    kept = blocked.rename(blocked.with_name("kept"))  # push-model's record
    blocked.write_text("not a folder")
    out = tmp_path / "golden"
    done, results = golden(built, datasets, out, f"--model-uri={uri}",
                           f"--signing-key={keys.private}")  # fmt: skip
    assert done.exit_code == 1
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert f"decision not recorded beside {uri}" in line
    assert "cannot attach attestations" in line
    # The check ran: its reports and its signed record are there; no result says passed.
    assert results == {}
    assert json.loads((out / "golden-report.json").read_text())["passed"] is True
    assert (out / ".mlops/lineage/check-golden.intoto.json").is_file()
    assert (out / ".mlops/lineage/check-golden.sigstore.json").is_file()
    assert blocked.read_text() == "not a folder"

    # Once the store takes it, running the check again puts the decision on record.
    blocked.unlink()
    kept.rename(blocked)
    again, _ = golden(built, datasets, out, f"--model-uri={uri}", f"--signing-key={keys.private}")
    assert again.exit_code == 0, again.output
    assert decisions(uri, keys)["check-golden"][0] == "verified"
