"""fetch-data against a real S3 server (moto standalone on 127.0.0.1)."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.conftest import CLI, start_moto

pytestmark = pytest.mark.integration


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def root_of(files: dict[str, bytes]) -> str:
    """The root digest as model signing defines it: file digests in path order."""
    ordered = (hashlib.sha256(files[path]).digest() for path in sorted(files))
    return hashlib.sha256(b"".join(ordered)).hexdigest()


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir())


def test_single_object(run_step, s3, bucket, s3_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    body = b"sepal,petal,species\n5.1,1.4,0\n"
    s3.put_object(Bucket=bucket, Key="iris/iris.csv", Body=body)
    out = tmp_path / "data"
    outcome = run_step(
        "fetch-data",
        f"--source=s3://{bucket}/iris/iris.csv",
        f"--output={out}",
        f"--endpoint-url={s3_server.endpoint}",
        f"--sha256=sha256:{sha(body)}",
    )
    assert outcome.exit_code == 0, outcome.output
    assert (out / "iris.csv").read_bytes() == body
    root = "sha256:" + root_of({"iris.csv": body})
    assert outcome.results["dataset-digest"] == root
    assert outcome.results["file-count"] == "1"
    assert outcome.results["total-bytes"] == str(len(body))
    hint = json.loads(outcome.results["dataset_ARTIFACT_OUTPUTS"])
    assert hint == {
        "uri": f"s3://{bucket}/iris/iris.csv",
        "digest": root,
        "isBuildArtifact": "false",
    }
    manifest = json.loads((out / ".mlops" / "manifest.json").read_text())
    assert manifest["files"] == [{"path": "iris.csv", "sha256": sha(body), "size": len(body)}]
    lineage = json.loads((out / ".mlops" / "lineage" / "fetch-data.intoto.json").read_text())
    assert lineage["subject"][0]["digest"]["sha256"] == root.removeprefix("sha256:")
    assert lineage["predicate"]["buildDefinition"]["resolvedDependencies"][0]["digest"] == {
        "sha256": sha(body)
    }


def test_prefix_with_nested_keys_and_root_pin(run_step, s3, bucket, s3_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    objects = {"ds/train.csv": b"a\n1\n", "ds/eval/test.csv": b"a\n2\n", "ds/empty.txt": b""}
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    s3.put_object(Bucket=bucket, Key="ds/folder/", Body=b"")  # console-made "folder" marker
    s3.put_object(Bucket=bucket, Key="other/x.csv", Body=b"not mine")
    expected_root = root_of({k.removeprefix("ds/"): b for k, b in objects.items()})
    out = tmp_path / "data"
    outcome = run_step(
        "fetch-data",
        f"--source=s3://{bucket}/ds/",
        f"--output={out}",
        f"--endpoint-url={s3_server.endpoint}",
        f"--sha256={expected_root}",
    )
    assert outcome.exit_code == 0, outcome.output
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert [f for f in files if not f.startswith(".mlops")] == [
        "empty.txt",
        "eval/test.csv",
        "train.csv",
    ]
    assert outcome.results["dataset-digest"] == f"sha256:{expected_root}"
    assert outcome.results["file-count"] == "3"


def test_multipart_download_is_whole_and_hashed(run_step, s3, bucket, s3_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    body = os.urandom((3 << 20) + 12345)  # 4 ranged parts of 1 MiB
    s3.put_object(Bucket=bucket, Key="big.bin", Body=body)
    out = tmp_path / "data"
    outcome = run_step(
        "fetch-data",
        f"--source=s3://{bucket}/big.bin",
        f"--output={out}",
        f"--endpoint-url={s3_server.endpoint}",
        "--part-size-mib=1",
        "--max-concurrency=3",
        f"--sha256={sha(body)}",
        "--request-checksum=when_required",
        "--addressing-style=path",
    )
    assert outcome.exit_code == 0, outcome.output
    assert (out / "big.bin").read_bytes() == body


@pytest.mark.parametrize(
    ("call", "code"),
    [("mmap", errno.ENODEV), ("posix_fallocate", errno.EOPNOTSUPP)],
)
def test_multipart_download_where_files_cannot_be_mapped(  # type: ignore[no-untyped-def]
    run_step, s3, bucket, s3_server, tmp_path, monkeypatch, call, code
) -> None:
    # Some file systems (network ones, FUSE) cannot preallocate or map a file: parts are then
    # written from buffers at their offsets, and the file is as whole as through the mapping.
    import mmap

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(mmap if call == "mmap" else os, call, refuse)
    body = os.urandom((3 << 20) + 777)
    s3.put_object(Bucket=bucket, Key="big.bin", Body=body)
    out = tmp_path / "data"
    outcome = run_step(
        "fetch-data",
        f"--source=s3://{bucket}/big.bin",
        f"--output={out}",
        f"--endpoint-url={s3_server.endpoint}",
        "--part-size-mib=1",
        f"--sha256={sha(body)}",
    )
    assert outcome.exit_code == 0, outcome.output
    assert (out / "big.bin").read_bytes() == body


def test_full_disk_is_one_clear_error(
    run_step, s3, bucket, s3_server, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    # Space is reserved before the first byte lands, so a full workspace is an error line,
    # not a SIGBUS when a mapped page is first written.
    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    s3.put_object(Bucket=bucket, Key="big.bin", Body=os.urandom(2 << 20))
    outcome = run_step(
        "fetch-data",
        f"--source=s3://{bucket}/big.bin",
        f"--output={tmp_path}/w/data",
        f"--endpoint-url={s3_server.endpoint}",
    )
    assert outcome.exit_code == 1, outcome.output
    assert "big.bin: no space left for 2.0 MiB" in outcome.output
    assert "Traceback" not in outcome.output
    assert leftovers(tmp_path / "w") == []


def test_checksum_mismatch_writes_nothing(run_step, s3, bucket, s3_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="d.csv", Body=b"a\n1\n")
    outcome = run_step(
        "fetch-data",
        f"--source=s3://{bucket}/d.csv",
        f"--output={tmp_path}/data",
        f"--endpoint-url={s3_server.endpoint}",
        f"--sha256={'0' * 64}",
    )
    assert outcome.exit_code == 1
    assert f"does not match the expected {'0' * 64}; nothing was written" in outcome.output
    assert leftovers(tmp_path) == [p for p in leftovers(tmp_path) if p.startswith("results")]
    assert outcome.results == {}


@pytest.mark.parametrize(
    ("key", "message"),
    [("missing.csv", "404"), ("ds/", "no objects under this prefix")],
)
def test_missing_object_or_prefix(run_step, bucket, s3_server, tmp_path, key, message) -> None:  # type: ignore[no-untyped-def]
    outcome = run_step(
        "fetch-data",
        f"--source=s3://{bucket}/{key}",
        f"--output={tmp_path}/data",
        f"--endpoint-url={s3_server.endpoint}",
    )
    assert outcome.exit_code == 1
    assert message in outcome.output
    assert not (tmp_path / "data").exists()


def test_missing_bucket_and_bad_credentials(run_step, s3_server, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    outcome = run_step(
        "fetch-data",
        "--source=s3://no-such-bucket-here/",
        f"--output={tmp_path}/data",
        f"--endpoint-url={s3_server.endpoint}",
    )
    assert outcome.exit_code == 1
    assert "NoSuchBucket" in outcome.output
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    outcome = run_step(
        "fetch-data",
        "--source=s3://b/k.csv",
        f"--output={tmp_path}/data",
        f"--endpoint-url={s3_server.endpoint}",
    )
    assert outcome.exit_code == 1
    assert "no AWS credentials found" in outcome.output


def test_unreachable_endpoint(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import refused_url

    with refused_url() as endpoint:
        outcome = run_step(
            "fetch-data",
            "--source=s3://b/k.csv",
            f"--output={tmp_path}/data",
            f"--endpoint-url={endpoint}",
        )
    assert outcome.exit_code == 1
    assert "cannot reach the S3 endpoint" in outcome.output
    assert not (tmp_path / "data").exists()


def test_credentials_from_mounted_files(
    run_step, s3, bucket, s3_server, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    # The Task points AWS_SHARED_CREDENTIALS_FILE at a Secret mounted as a workspace.
    s3.put_object(Bucket=bucket, Key="d.csv", Body=b"a\n1\n")
    credentials = tmp_path / "secret" / "credentials"
    credentials.parent.mkdir()
    credentials.write_text(
        "[default]\naws_access_key_id = fromfile\naws_secret_access_key = fromfile-secret\n"
    )
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    outcome = run_step(
        "fetch-data",
        f"--source=s3://{bucket}/d.csv",
        f"--output={tmp_path}/data",
        env={"AWS_ENDPOINT_URL": s3_server.endpoint},
    )
    assert outcome.exit_code == 0, outcome.output
    assert "fromfile-secret" not in outcome.output


def test_key_escaping_the_destination_is_refused(run_step, s3, bucket, s3_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="ds/ok.csv", Body=b"a\n")
    s3.put_object(Bucket=bucket, Key="ds/../../escape.csv", Body=b"evil")
    outcome = run_step(
        "fetch-data",
        f"--source=s3://{bucket}/ds/",
        f"--output={tmp_path}/w/data",
        f"--endpoint-url={s3_server.endpoint}",
    )
    assert outcome.exit_code == 1
    assert "escapes the destination" in outcome.output
    assert not (tmp_path / "escape.csv").exists()
    assert not (tmp_path / "w" / "data").exists()


@pytest.mark.parametrize(
    ("tag", "prefix", "first", "second"),
    [
        ("dot", "p/", "p/x", "p/x/."),  # one path once "." is dropped
        ("marker", "p/", "p/x", "p/x/"),  # a file and a "folder" marker of the same name
        ("double", "", "p/x", "p//x"),  # one path once "//" is one "/"
        ("folder", "p/", "p/x", "p/x/y"),  # x would be a file and a folder
        ("deep", "p/", "p/a/x", "p/a/x/b/c"),
    ],
)
def test_keys_landing_on_one_path_are_refused(  # type: ignore[no-untyped-def]
    run_step, s3, bucket, s3_server, tmp_path, tag, prefix, first, second
) -> None:
    # A bucket per case: the shared fixture's name is cut to 40 characters.
    name = f"{bucket[:40]}-{tag}"
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="p/ok.csv", Body=b"a\n1\n")
    s3.put_object(Bucket=name, Key=first, Body=b"first")
    s3.put_object(Bucket=name, Key=second, Body=b"" if second.endswith("/") else b"second")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=name)["Contents"]}
    assert {first, second} <= keys, keys  # the server kept both keys as they were given
    out = tmp_path / "w" / "data"
    outcome = run_step(
        "fetch-data",
        f"--source=s3://{name}/{prefix}",
        f"--output={out}",
        f"--endpoint-url={s3_server.endpoint}",
        "--addressing-style=path",
    )
    assert outcome.exit_code == 1, outcome.output
    error = next(line for line in outcome.output.splitlines() if line.startswith("error:"))
    assert repr(first) in error, error
    assert repr(second) in error, error
    assert "Traceback" not in outcome.output
    assert leftovers(tmp_path / "w") == []  # no output, no staging directory
    assert outcome.results == {}


def test_archive_is_extracted(run_step, s3, bucket, s3_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, body in (("iris/train.csv", b"a\n1\n"), ("iris/test.csv", b"a\n2\n")):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    s3.put_object(Bucket=bucket, Key="iris.tgz", Body=buffer.getvalue())
    out = tmp_path / "data"
    outcome = run_step(
        "fetch-data",
        f"--source=s3://{bucket}/iris.tgz",
        f"--output={out}",
        "--extract=true",
        f"--endpoint-url={s3_server.endpoint}",
        f"--sha256={sha(buffer.getvalue())}",
    )
    assert outcome.exit_code == 0, outcome.output
    assert (out / "iris" / "test.csv").read_bytes() == b"a\n2\n"
    assert not (out / "iris.tgz").exists()
    assert outcome.results["dataset-digest"] == "sha256:" + root_of(
        {"iris/train.csv": b"a\n1\n", "iris/test.csv": b"a\n2\n"}
    )


def test_extract_needs_an_archive_source(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    outcome = run_step(
        "fetch-data", "--source=s3://b/data.csv", f"--output={tmp_path}/data", "--extract"
    )
    assert outcome.exit_code == 2
    assert "--extract='true': the source must be a single .tar" in outcome.output


def interrupt_a_slow_fetch(
    endpoint: str, bucket: str, tmp_path: Path, interrupt
) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    """Fetch a 24 MiB object part by part; call ``interrupt(process)`` once data flows.

    Returns the step's exit code and its log.
    """
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="big.bin", Body=os.urandom(24 << 20))
    process = subprocess.Popen(
        [
            CLI,
            "fetch-data",
            f"--source=s3://{bucket}/big.bin",
            f"--output={tmp_path}/data",
            f"--endpoint-url={endpoint}",
            "--part-size-mib=1",
            "--max-concurrency=1",
            f"--results-dir={tmp_path}/results",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TEKTON_MLOPS_PROGRESS_INTERVAL": "0"},
    )
    assert process.stderr is not None
    log = []
    for line in process.stderr:
        log.append(line)
        if "downloading" in line and "%" in line:
            interrupt(process)  # mid-transfer: some parts are in, most are not
            break
    log.extend(process.stderr)
    return process.wait(timeout=120), "".join(log)


def test_server_stopped_mid_download_leaves_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = start_moto()  # a server of its own: this test kills it
    try:
        code, log = interrupt_a_slow_fetch(
            server.endpoint, "fault", tmp_path, lambda process: server.stop()
        )
    finally:
        server.stop()  # idempotent: kills and reaps it if the lambda did not
    assert code == 1, log
    errors = [line for line in log.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, log
    assert "s3://fault/big.bin" in errors[0]
    assert "Traceback" not in log
    assert leftovers(tmp_path) == []  # no output, no staging directory, no results


def test_sigterm_mid_download_leaves_nothing(s3_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Tekton stops a timed-out or cancelled step with SIGTERM.
    code, log = interrupt_a_slow_fetch(
        s3_server.endpoint, "interrupt", tmp_path, lambda process: process.terminate()
    )
    assert code == 130, log
    assert "error: interrupted; partial output was removed" in log
    assert leftovers(tmp_path) == []
