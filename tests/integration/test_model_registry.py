"""push-model registers versions, deploy-model moves aliases: against a real MLflow server,
read back with MLflow's own client."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tekton_mlops import tracking
from tests.conftest import KeyPair, refused_url
from tests.integration.mlflow_server import MlflowServer, running_mlflow
from tests.integration.test_deploy import train_and_sign

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with running_mlflow(tmp_path_factory.mktemp("mlflow")) as server:
        yield server


@pytest.fixture(scope="module")
def signed_models(datasets, keys, tmp_path_factory) -> dict[str, tuple[Path, str]]:  # type: ignore[no-untyped-def]
    """Two different signed iris models: name -> (folder, sign-artifact's root-digest)."""
    root = tmp_path_factory.mktemp("registry-models")
    found = {}
    for name, hyper in (("a", '{"max_iter": 500}'), ("b", '{"max_iter": 500, "C": 0.25}')):
        model = root / name / "model"
        found[name] = (
            model,
            train_and_sign(datasets["iris"], keys, model, "logistic-regression", hyper),
        )
    assert found["a"][1] != found["b"][1]
    return found


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    """The deployments folder; every local server started in it is stopped afterwards."""
    folder = tmp_path / "deployments"
    yield folder
    from tekton_mlops.deploy import local

    for name in folder.iterdir() if folder.is_dir() else []:
        for which in (local.CANARY, local.STABLE):
            local.stop(local.slot(folder, name.name, which))


def push(run_step, model: Path, destination: str, uri: str, *extra: str):  # type: ignore[no-untyped-def]
    return run_step(
        "push-model", f"--path={model}", f"--destination={destination}",
        f"--mlflow-tracking-uri={uri}", *extra,
    )  # fmt: skip


def deploy(run_step, state: Path, uri: str, keys: KeyPair, *extra: str):  # type: ignore[no-untyped-def]
    return run_step(
        "deploy-model", "--target=local", "--name=iris", f"--state-dir={state}",
        f"--public-key={keys.public}", f"--mlflow-tracking-uri={uri}", *extra,
    )  # fmt: skip


def test_each_push_is_a_new_version_with_its_source_and_digests(  # type: ignore[no-untyped-def]
    run_step, registry, s3_server, bucket, signed_models, mlflow_server: MlflowServer
) -> None:
    (model_a, signed_a), (model_b, signed_b) = signed_models["a"], signed_models["b"]
    with tracking.run_for(mlflow_server.uri, "registry", step="train-model") as training:
        pass
    # To a registry, the name taken from the repository (no --mlflow-model-name).
    first = push(run_step, model_a, f"oci://{registry}/models/fraud-detector:1", mlflow_server.uri,
                 f"--mlflow-run-id={training.run_id}")  # fmt: skip
    assert first.exit_code == 0, first.output
    assert first.results["mlflow-model-version"] == "1"
    # To S3, the name given.
    endpoint = f"--endpoint-url={s3_server.endpoint}"
    second = push(run_step, model_b, f"s3://{bucket}/models", mlflow_server.uri,
                  "--mlflow-model-name=fraud-detector", endpoint)  # fmt: skip
    assert second.exit_code == 0, second.output
    assert second.results["mlflow-model-version"] == "2"

    versions = mlflow_server.read("versions", name="fraud-detector")
    assert [(v["version"], v["source"], v["run_id"]) for v in versions] == [
        ("1", first.results["model-uri"], training.run_id),
        ("2", second.results["model-uri"], ""),
    ]
    for version, model, signed, pushed in ((versions[0], model_a, signed_a, first),
                                           (versions[1], model_b, signed_b, second)):  # fmt: skip
        signature = hashlib.sha256((model / "model.sig").read_bytes()).hexdigest()
        assert version["tags"] == {
            "tekton-mlops.model-digest": signed,  # what deploy-model verifies and reports
            "tekton-mlops.pushed-root-digest": pushed.results["root-digest"],
            "tekton-mlops.signature-digest": f"sha256:{signature}",
        }


def test_aliases_follow_canary_promote_and_rollback(  # type: ignore[no-untyped-def]
    run_step, registry, signed_models, keys, state, mlflow_server: MlflowServer
) -> None:
    uri = mlflow_server.uri
    pushed = {}
    for name in ("a", "b"):
        destination = f"oci://{registry}/models/iris:{name}"  # MLflow refuses file:// sources
        done = push(run_step, signed_models[name][0], destination, uri)
        assert done.exit_code == 0, done.output
        pushed[name] = done.results
    assert (pushed["a"]["mlflow-model-version"], pushed["b"]["mlflow-model-version"]) == ("1", "2")

    def aliases() -> dict[str, str]:
        return mlflow_server.read("aliases", name="iris")  # type: ignore[no-any-return]

    stable = deploy(run_step, state, uri, keys, f"--model-uri={pushed['a']['model-uri']}")
    assert stable.exit_code == 0, stable.output
    # Found by the digest the deploy verified, not given.
    assert stable.results["mlflow-model-version"] == "1"
    assert aliases() == {"champion": "1"}

    canary = deploy(run_step, state, uri, keys, f"--model-uri={pushed['b']['model-uri']}",
                    "--canary-traffic-percent=30")  # fmt: skip
    assert canary.exit_code == 0, canary.output
    assert canary.results["mlflow-model-version"] == "2"
    assert aliases() == {"champion": "1", "challenger": "2"}

    promoted = deploy(run_step, state, uri, keys, "--promote")
    assert promoted.exit_code == 0, promoted.output
    assert promoted.results["mlflow-model-version"] == "2"
    assert aliases() == {"champion": "2"}

    again = deploy(run_step, state, uri, keys, f"--model-uri={pushed['a']['model-uri']}",
                   "--canary-traffic-percent=10")  # fmt: skip
    assert again.exit_code == 0, again.output
    assert aliases() == {"champion": "2", "challenger": "1"}
    rolled = deploy(run_step, state, uri, keys, "--rollback")
    assert rolled.exit_code == 0, rolled.output
    assert rolled.results["mlflow-model-version"] == "1"
    assert aliases() == {"champion": "2"}

    # A promote that fails (no canary left) moves no alias.
    nothing = deploy(run_step, state, uri, keys, "--promote")
    assert nothing.exit_code == 1
    assert "error: iris: no canary is running to promote" in nothing.output
    assert aliases() == {"champion": "2"}


def test_deploy_of_an_unregistered_model_deploys_nothing(  # type: ignore[no-untyped-def]
    run_step,
    signed_models,
    keys,
    state,
    mlflow_server: MlflowServer,
) -> None:
    model = signed_models["a"][0].as_uri()
    done = deploy(run_step, state, mlflow_server.uri, keys, f"--model-uri={model}",
                  "--mlflow-model-name=ghost")  # fmt: skip
    assert done.exit_code == 1
    assert f"error: MLflow tracking server {mlflow_server.uri}: no registered model 'ghost'" in (
        done.output
    )
    assert not state.exists() or not any(state.iterdir())  # no server was started


def tags_of(registry: str, repository: str) -> int:
    """The HTTP status of the repository's tag list: 404 while nothing was ever pushed."""
    try:
        with urllib.request.urlopen(f"http://{registry}/v2/{repository}/tags/list", timeout=5):
            return 200
    except urllib.error.HTTPError as exc:
        return exc.code


def test_push_to_a_down_or_failing_server_pushes_nothing(  # type: ignore[no-untyped-def]
    run_step, registry, signed_models, mlflow_server: MlflowServer, monkeypatch
) -> None:
    monkeypatch.setenv("TEKTON_MLOPS_MLFLOW_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "s3cr3t-t0ken-never-shown")
    destination = f"oci://{registry}/models/untracked:1"
    with refused_url() as url:
        down = push(run_step, signed_models["a"][0], destination, url)
    assert down.exit_code == 1
    errors = [line for line in down.output.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: MLflow tracking server {url}: GET registered-models/get got no answer "
        "(Connection refused)"
    ]
    failing = push(run_step, signed_models["a"][0], destination, f"{mlflow_server.uri}/nope")
    assert failing.exit_code == 1
    assert (
        f"error: MLflow tracking server {mlflow_server.uri}/nope: GET registered-models/get "
        "answered HTTP 404" in failing.output
    )
    for run in (down, failing):
        assert "s3cr3t-t0ken-never-shown" not in run.output
        assert run.results == {}
    assert tags_of(registry, "models/untracked") == 404  # nothing was pushed


def test_invalid_tracking_params_change_nothing(run_step, signed_models, tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = tmp_path / "store"
    done = run_step(
        "push-model", f"--path={signed_models['a'][0]}", "--destination=s3://bucket/models",
        "--mlflow-tracking-uri=ftp://mlflow.example", "--mlflow-run-id=not-a-run",
        "--mlflow-model-name=it's",
    )  # fmt: skip
    assert done.exit_code == 2
    assert "3 invalid parameter(s)" in done.output
    for name in ("mlflow-tracking-uri", "mlflow-run-id", "mlflow-model-name"):
        assert f"--{name}=" in done.output
    assert done.results == {}
    # MLflow refuses a local path as a version's source: refused before the push, not after.
    local = run_step(
        "push-model", f"--path={signed_models['a'][0]}", f"--destination={store.as_uri()}",
        "--mlflow-tracking-uri=http://127.0.0.1:9",
    )  # fmt: skip
    assert local.exit_code == 2
    assert "--mlflow-tracking-uri='http://127.0.0.1:9': registers oci:// and s3:// pushes" in (
        local.output
    )
    assert not store.exists()
    assert local.results == {}
