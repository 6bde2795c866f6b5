"""push-model to the real registry (docker-registry) and S3 (moto), and back by digest."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import CLI, KeyPair, RegistryServer, start_registry

pytestmark = pytest.mark.integration
SECRET = "n0t-in-any-log-7Qz"


@pytest.fixture
def signed_model(tmp_path: Path, run_step, keys: KeyPair) -> Path:  # type: ignore[no-untyped-def]
    root = tmp_path / "model"
    root.mkdir()
    (root / "model.onnx").write_bytes(os.urandom(300_000))
    (root / "metadata.json").write_text('{"estimator": "random-forest-classifier"}\n')
    (root / "evaluation.json").write_text('{"metrics": {"accuracy": 0.97}, "passed": true}\n')
    signed = run_step("sign-artifact", f"--path={root}", f"--private-key={keys.private}")
    assert signed.exit_code == 0, signed.output
    (tmp_path / "signed-root").write_text(signed.results["root-digest"])
    return root


def signed_root(model: Path) -> str:
    """sign-artifact's root-digest of the signed_model fixture."""
    return (model.parent / "signed-root").read_text()


def content_root(model: Path) -> str:
    """The root digest of what push-model stores, computed here: every file but the
    runtime's metadata, the signature included (so a fetch of the push can pin it), as
    sha256 over the files' sha256 digests in path order."""
    files = sorted(
        p.relative_to(model).as_posix()
        for p in model.rglob("*")
        if p.is_file() and ".mlops" not in p.relative_to(model).parts
    )
    digests = b"".join(hashlib.sha256((model / f).read_bytes()).digest() for f in files)
    return "sha256:" + hashlib.sha256(digests).hexdigest()


def push_record(model: Path) -> dict:  # type: ignore[type-arg]
    """push-model's lineage record, beside the model it pushed."""
    path = model / ".mlops" / "lineage" / "push-model.intoto.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def assert_push_record(model: Path, pushed_digest: str) -> None:
    record = push_record(model)
    root = content_root(model).removeprefix("sha256:")
    assert record["predicate"]["buildDefinition"]["resolvedDependencies"] == [
        {"name": "model", "uri": model.resolve().as_uri(), "digest": {"sha256": root}}
    ]
    assert record["subject"] == [
        {"name": "pushed-model", "digest": {"sha256": pushed_digest.removeprefix("sha256:")}}
    ]


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.relative_to(root).as_posix().startswith(".mlops/")
    }


def fetch_verified(run_step, uri: str, out: Path, keys: KeyPair, *extra: str):  # type: ignore[no-untyped-def]
    return run_step(
        "fetch-data", f"--source={uri}", f"--output={out}", f"--public-key={keys.public}", *extra
    )


def test_oci_round_trip_by_digest(run_step, registry, signed_model, keys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pushed = run_step(
        "push-model", f"--path={signed_model}", f"--destination=oci://{registry}/team/iris:1.0"
    )
    assert pushed.exit_code == 0, pushed.output
    digest = pushed.results["MODEL_IMAGE_DIGEST"]
    assert pushed.results["MODEL_IMAGE_URL"] == f"{registry}/team/iris:1.0"
    assert pushed.results["model-uri"] == f"oci://{registry}/team/iris@{digest}"
    chains = json.loads(pushed.results["model_ARTIFACT_OUTPUTS"])
    assert chains == {
        "uri": f"{registry}/team/iris:1.0",
        "digest": digest,
        "isBuildArtifact": "true",
    }
    # The tag resolves to the digest the results pin, which is the sha256 of the manifest's
    # bytes as the registry serves them.
    from tekton_mlops.storage.oci import Registry

    manifest, by_tag = Registry(registry).manifest("team/iris", "1.0")
    assert by_tag == digest
    request = urllib.request.Request(
        f"http://{registry}/v2/team/iris/manifests/1.0",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    with urllib.request.urlopen(request) as response:
        assert "sha256:" + hashlib.sha256(response.read()).hexdigest() == digest
    # The root digest of the files pushed, and the push recorded beside the model. (It
    # covers model.sig too, which sign-artifact's root, over the signed files, cannot.)
    assert pushed.results["root-digest"] == content_root(signed_model)
    assert_push_record(signed_model, digest)
    assert manifest["artifactType"] == "application/vnd.tekton-mlops.model.v1"
    notes = manifest["annotations"]
    assert notes["dev.tekton-mlops.model.metrics"] == '{"accuracy":0.97}'
    assert notes["dev.tekton-mlops.model.root-digest"] == pushed.results["root-digest"]
    titles = {
        layer["annotations"]["org.opencontainers.image.title"] for layer in manifest["layers"]
    }
    assert {"model.onnx", "model.sig", "metadata.json", "evaluation.json"} <= titles
    # A record of this push cannot be part of what it pushed.
    assert ".mlops/lineage/push-model.intoto.json" not in titles

    out = tmp_path / "pulled"
    fetched = fetch_verified(run_step, pushed.results["model-uri"], out, keys)
    assert fetched.exit_code == 0, fetched.output
    assert "signature verified" in fetched.output
    assert tree(out) == tree(signed_model)
    assert fetched.results["dataset-digest"] == pushed.results["root-digest"]


def test_oci_push_is_idempotent(run_step, registry, signed_model) -> None:  # type: ignore[no-untyped-def]
    args = [f"--path={signed_model}", f"--destination=oci://{registry}/team/idem:1"]
    first = run_step("push-model", *args)
    again = run_step("push-model", *args)
    assert first.exit_code == again.exit_code == 0
    assert int(first.results["uploaded-bytes"]) > 300_000
    assert again.results["uploaded-bytes"] == "0"
    assert again.results["MODEL_IMAGE_DIGEST"] == first.results["MODEL_IMAGE_DIGEST"]


def test_a_model_changed_after_signing_is_not_pushed(run_step, registry, signed_model) -> None:  # type: ignore[no-untyped-def]
    (signed_model / "model.onnx").write_bytes(os.urandom(1000))
    failed = run_step(
        "push-model", f"--path={signed_model}", f"--destination=oci://{registry}/team/changed:1"
    )
    assert failed.exit_code == 1
    assert "model.onnx: its bytes are not sha256:" in failed.output
    assert "changed since it was signed?" in failed.output
    from tekton_mlops.errors import SourceError
    from tekton_mlops.storage.oci import Registry

    with pytest.raises(SourceError, match="404"):
        Registry(registry).manifest("team/changed", "1")


def test_a_model_signed_with_another_key_is_not_published_on_pull(  # type: ignore[no-untyped-def]
    run_step, registry, tmp_path, keys, other_keys
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.onnx").write_bytes(os.urandom(5000))
    assert (
        run_step(
            "sign-artifact", f"--path={model}", f"--private-key={other_keys.private}"
        ).exit_code
        == 0
    )
    pushed = run_step(
        "push-model", f"--path={model}", f"--destination=oci://{registry}/team/other:1"
    )
    assert pushed.exit_code == 0
    out = tmp_path / "pulled"
    fetched = fetch_verified(run_step, pushed.results["model-uri"], out, keys)
    assert fetched.exit_code == 1
    assert "signed with another key" in fetched.output
    assert not out.exists()


def test_corrupted_blob_in_the_registry_is_refused(run_step, tmp_path, signed_model, keys) -> None:  # type: ignore[no-untyped-def]
    server = start_registry(tmp_path / "registry")
    try:
        pushed = run_step(
            "push-model", f"--path={signed_model}", f"--destination=oci://{server.host}/m/c:1"
        )
        hexdigest = json.loads(pushed.results["model_ARTIFACT_OUTPUTS"])["digest"]
        assert hexdigest
        onnx = next(
            p
            for p in (server.data / "docker/registry/v2/blobs/sha256").rglob("data")
            if p.stat().st_size == 300_000
        )
        data = bytearray(onnx.read_bytes())
        data[5] ^= 0xFF
        onnx.write_bytes(bytes(data))
        out = tmp_path / "pulled"
        fetched = fetch_verified(run_step, pushed.results["model-uri"], out, keys)
        assert fetched.exit_code == 1
        assert "arrived with another digest" in fetched.output
        assert not out.exists()
    finally:
        server.stop()


def test_unsigned_model_is_not_pushed(run_step, registry, signed_model) -> None:  # type: ignore[no-untyped-def]
    (signed_model / "model.sig").unlink()
    failed = run_step(
        "push-model", f"--path={signed_model}", f"--destination=oci://{registry}/team/unsigned:1"
    )
    assert failed.exit_code == 1
    assert "no signature; sign the model first" in failed.output
    from tekton_mlops.errors import SourceError
    from tekton_mlops.storage.oci import Registry

    with pytest.raises(SourceError, match="404"):
        Registry(registry).manifest("team/unsigned", "1")


def _largest_upload(uploads: Path) -> int:
    """Bytes of the biggest upload in progress; a finished upload's folder vanishes meanwhile."""
    sizes = [0]
    for folder, _, files in os.walk(uploads):  # unlike rglob, walk skips what vanishes
        if "data" in files:
            try:
                sizes.append((Path(folder) / "data").stat().st_size)
            except FileNotFoundError:
                continue
    return max(sizes)


def test_registry_stopped_mid_push_fails_cleanly_and_a_rerun_succeeds(  # type: ignore[no-untyped-def]
    tmp_path, keys, run_step
) -> None:
    model = tmp_path / "big"
    model.mkdir()
    with (model / "model.onnx").open("wb") as handle:
        for _ in range(768):
            handle.write(os.urandom(1 << 20))
    assert (
        run_step("sign-artifact", f"--path={model}", f"--private-key={keys.private}").exit_code == 0
    )
    server = start_registry(tmp_path / "registry")
    push: subprocess.Popen[str] | None = None
    try:
        destination = f"--destination=oci://{server.host}/team/big:1"
        push = subprocess.Popen(
            [CLI, "push-model", f"--path={model}", destination, f"--results-dir={tmp_path / 'r'}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        uploads = server.data / "docker/registry/v2/repositories/team/big/_uploads"
        deadline = time.monotonic() + 60
        while _largest_upload(uploads) <= 64 << 20:
            assert push.poll() is None, "the push ended before the registry could be stopped"
            assert time.monotonic() < deadline, "no upload started"
            time.sleep(0.01)
        server.stop()
        output, _ = push.communicate(timeout=60)
        assert push.returncode == 1, output
        errors = [line for line in output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, output
        assert f"registry {server.host}" in errors[0]
        assert "Traceback" not in output
        assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())
        server.start()  # the same storage (and its half upload), on a port of its own
        from tekton_mlops.errors import SourceError
        from tekton_mlops.storage.oci import Registry

        with pytest.raises(SourceError, match="404"):  # no tag points at half a model
            Registry(server.host).manifest("team/big", "1")
        destination = f"--destination=oci://{server.host}/team/big:1"
        rerun = run_step("push-model", f"--path={model}", destination)
        assert rerun.exit_code == 0, rerun.output
        Registry(server.host).manifest("team/big", rerun.results["MODEL_IMAGE_DIGEST"])
    finally:  # a failed assertion must not leave the registry or the push running
        if push is not None and push.poll() is None:
            push.kill()
        server.stop()


@pytest.fixture
def auth_registry(tmp_path: Path):  # type: ignore[no-untyped-def]
    import bcrypt

    htpasswd = tmp_path / "htpasswd"
    hashed = bcrypt.hashpw(SECRET.encode(), bcrypt.gensalt(rounds=4)).decode()
    htpasswd.write_text(f"pusher:{hashed}\n")
    server: RegistryServer = start_registry(
        tmp_path / "auth-registry", htpasswd, ("pusher", SECRET)
    )
    try:
        yield server
    finally:
        server.stop()


def docker_config_secret(folder: Path, host: str, password: str) -> Path:
    """A kubernetes.io/dockerconfigjson Secret as a workspace mounts it."""
    folder.mkdir(parents=True)
    auth = base64.b64encode(f"pusher:{password}".encode()).decode()
    (folder / ".dockerconfigjson").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return folder


def test_credentials_from_a_dockerconfigjson_secret_never_reach_the_logs(  # type: ignore[no-untyped-def]
    run_step, auth_registry, signed_model, keys, tmp_path
) -> None:
    host = auth_registry.host
    secret = docker_config_secret(tmp_path / "creds", host, SECRET)
    destination = f"--destination=oci://{host}/team/private:1"
    anonymous = run_step("push-model", f"--path={signed_model}", destination)
    assert anonymous.exit_code == 1
    assert "unauthorized (no credentials given)" in anonymous.output
    wrong = docker_config_secret(tmp_path / "wrong", host, "not-the-password")
    refused = run_step(
        "push-model", f"--path={signed_model}", destination, f"--registry-auth={wrong}"
    )
    assert refused.exit_code == 1
    assert "HTTP 401" in refused.output

    pushed = run_step(
        "push-model", f"--path={signed_model}", destination, f"--registry-auth={secret}", "--debug"
    )
    assert pushed.exit_code == 0, pushed.output
    fetched = fetch_verified(
        run_step, pushed.results["model-uri"], tmp_path / "out", keys,
        f"--registry-auth={secret}", "--debug",
    )  # fmt: skip
    assert fetched.exit_code == 0, fetched.output
    encoded = base64.b64encode(f"pusher:{SECRET}".encode()).decode()
    for run in (anonymous, refused, pushed, fetched):
        assert SECRET not in run.output
        assert encoded not in run.output
        assert SECRET not in json.dumps(run.results)
        assert encoded not in json.dumps(run.results)
    for record in (tmp_path / "out" / ".mlops" / "lineage").glob("*.json"):
        assert SECRET not in record.read_text()
        assert encoded not in record.read_text()


def test_s3_round_trip_by_root_digest(
    run_step, s3, bucket, s3_server, signed_model, keys, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    endpoint = f"--endpoint-url={s3_server.endpoint}"
    pushed = run_step(
        "push-model", f"--path={signed_model}", f"--destination=s3://{bucket}/iris/v1", endpoint
    )
    assert pushed.exit_code == 0, pushed.output
    root = pushed.results["root-digest"]
    uri = f"s3://{bucket}/iris/v1/sha256-{root.removeprefix('sha256:')}/"
    assert pushed.results["model-uri"] == uri
    chains = json.loads(pushed.results["model_ARTIFACT_OUTPUTS"])
    assert chains == {
        "uri": uri,
        "digest": pushed.results["root-digest"],
        "isBuildArtifact": "true",
    }
    assert pushed.results["MODEL_IMAGE_DIGEST"] == ""
    assert root == content_root(signed_model)
    assert_push_record(signed_model, root)
    key = uri.removeprefix(f"s3://{bucket}/") + "model.onnx"
    head = s3.head_object(Bucket=bucket, Key=key)

    assert (
        head["Metadata"]["sha256"]
        == hashlib.sha256((signed_model / "model.onnx").read_bytes()).hexdigest()
    )

    again = run_step(
        "push-model", f"--path={signed_model}", f"--destination=s3://{bucket}/iris/v1", endpoint
    )
    assert again.exit_code == 0
    assert again.results["uploaded-bytes"] == "0"

    out = tmp_path / "pulled"
    fetched = fetch_verified(
        run_step, uri, out, keys, endpoint, f"--sha256={pushed.results['root-digest']}"
    )
    assert fetched.exit_code == 0, fetched.output
    assert tree(out) == tree(signed_model)


def test_s3_folder_holding_other_content_is_refused_untouched(  # type: ignore[no-untyped-def]
    run_step, s3, bucket, s3_server, signed_model
) -> None:
    endpoint = f"--endpoint-url={s3_server.endpoint}"
    args = [f"--path={signed_model}", f"--destination=s3://{bucket}/iris", endpoint]
    first = run_step("push-model", *args)
    assert first.exit_code == 0, first.output
    key = first.results["model-uri"].removeprefix(f"s3://{bucket}/") + "model.onnx"
    s3.put_object(Bucket=bucket, Key=key, Body=b"another model")
    listing_before = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    failed = run_step("push-model", *args)
    assert failed.exit_code == 1
    assert f"already holds other content ({key})" in failed.output
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == listing_before
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"another model"


def test_s3_tampered_after_push_is_refused_on_pull(  # type: ignore[no-untyped-def]
    run_step, s3, bucket, s3_server, signed_model, keys, tmp_path
) -> None:
    endpoint = f"--endpoint-url={s3_server.endpoint}"
    pushed = run_step(
        "push-model", f"--path={signed_model}", f"--destination=s3://{bucket}/m", endpoint
    )
    assert pushed.exit_code == 0
    uri = pushed.results["model-uri"]
    key = uri.removeprefix(f"s3://{bucket}/") + "metadata.json"
    s3.put_object(Bucket=bucket, Key=key, Body=b'{"estimator": "evil"}')
    out = tmp_path / "pulled"
    fetched = fetch_verified(run_step, uri, out, keys, endpoint)
    assert fetched.exit_code == 1
    assert "changed file(s): metadata.json" in fetched.output
    assert not out.exists()


def test_bad_destination_is_a_parameter_error(run_step, signed_model) -> None:  # type: ignore[no-untyped-def]
    failed = run_step("push-model", f"--path={signed_model}", "--destination=ftp://x/y")
    assert failed.exit_code == 2
    assert "must be oci://host/repository[:tag], s3://bucket/prefix or file:///folder" in (
        failed.output
    )


def test_folder_store_round_trip_is_idempotent_and_immutable(  # type: ignore[no-untyped-def]
    run_step, signed_model, keys, tmp_path
) -> None:
    store = tmp_path / "store"
    args = [f"--path={signed_model}", f"--destination={store.as_uri()}"]
    pushed = run_step("push-model", *args)
    assert pushed.exit_code == 0, pushed.output
    root = pushed.results["root-digest"].removeprefix("sha256:")
    assert pushed.results["model-uri"] == f"{store.as_uri()}/sha256-{root}/"
    assert pushed.results["root-digest"] == content_root(signed_model)
    assert_push_record(signed_model, root)
    assert run_step("push-model", *args).results["uploaded-bytes"] == "0"
    folder = store / f"sha256-{root}"
    out = tmp_path / "pulled"
    fetched = fetch_verified(run_step, pushed.results["model-uri"], out, keys)
    assert fetched.exit_code == 0, fetched.output
    assert tree(out) == tree(signed_model)
    (folder / "metadata.json").write_text("{}")
    refused = run_step("push-model", *args)
    assert refused.exit_code == 1
    assert "already holds other content" in refused.output
    assert (folder / "metadata.json").read_text() == "{}"


def test_an_unusable_verification_key_fails_before_the_pull(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # The registry named here does not exist: the key is refused before it would be asked.
    out = tmp_path / "pulled"
    failed = run_step(
        "fetch-data", "--source=oci://127.0.0.1:9/m@sha256:" + "a" * 64, f"--output={out}",
        f"--public-key={tmp_path / 'absent.pem'}",
    )  # fmt: skip
    assert failed.exit_code == 1
    assert "absent.pem: no such public key file" in failed.output
    assert not out.exists()
