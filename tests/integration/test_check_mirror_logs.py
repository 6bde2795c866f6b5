"""check-mirror on KServe: the payload logs of both versions, paired by x-request-id.

A real ``tekton-mlops log-sink`` on 127.0.0.1 receives the CloudEvents KServe's agents would
post for the live InferenceService (iris-blue) and the mirrored one (iris-green): each
request's x-request-id in the events' metadata, each agent's own event ids, the times the
agents stamp (tests/integration/kserve_logger.py). check-mirror reads the files the sink
wrote (or uploaded to the moto S3 server) and judges the candidate as the router's records.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tekton_mlops.digests import root_hex
from tests.integration.kserve_logger import Sink, answer, log_exchange
from tests.integration.routing import infer_body
from tests.kube_api_double import KubeApiDouble

pytestmark = pytest.mark.integration

LIVE, CANDIDATE = "iris-blue", "iris-green"
ALIKE = [0.8, 0.15, 0.05]
WITHIN_TOLERANCE = [0.8 + 4e-7, 0.15 - 4e-7, 0.05]  # floats within 1e-6 agree
UNLIKE = [0.6, 0.3, 0.1]


@pytest.fixture
def sink(tmp_path: Path) -> Any:
    started = Sink(str(tmp_path / "payloads"), "--rotate-seconds=0.3")
    yield started
    started.kill()


def mirror(
    sink: Sink, count: int, candidate: list[float] | None, start: float, prefix: str = "req"
) -> None:
    """``count`` requests as Istio mirrors them: the live version answers in 2 ms, the copy
    reaches the candidate, which answers ``candidate`` in 3 ms (None: no 200 answer)."""
    for i in range(count):
        rid, at = f"{prefix}-{i}", start + i * 0.05
        log_exchange(sink.url, LIVE, rid, infer_body(i), answer(ALIKE, 0), at, 2.0)
        reply = None if candidate is None else answer(candidate, 0)
        log_exchange(sink.url, CANDIDATE, rid, infer_body(i), reply, at + 0.001, 3.0)


def check(run_step, folder: Path | str, out: Path, *args: str):  # type: ignore[no-untyped-def]
    return run_step(
        "check-mirror", f"--payload-logs={folder}", "--name=iris", "--version=green",
        f"--output={out}", "--wait-seconds=10", *args,
    )  # fmt: skip


def report(out: Path) -> dict[str, Any]:
    return json.loads((out / "mirror-report.json").read_text())  # type: ignore[no-any-return]


def test_alike_answers_pair_by_request_id_and_pass(run_step, sink, tmp_path) -> None:  # type: ignore[no-untyped-def]
    start = time.time() - 120
    mirror(sink, 40, WITHIN_TOLERANCE, start)
    # What pairing must leave out, counted: live requests whose copy never came (mirroring
    # 90%), a copy whose live events were lost, requests without an x-request-id, and the
    # events of another model logging to the same sink.
    for i in range(5):
        log_exchange(sink.url, LIVE, f"alone-{i}", infer_body(i), answer(ALIKE, 0), start, 2.0)
    log_exchange(sink.url, CANDIDATE, "orphan", infer_body(), answer(ALIKE, 0), start, 3.0)
    log_exchange(sink.url, LIVE, "", infer_body(), answer(ALIKE, 0), start, 2.0)
    log_exchange(sink.url, CANDIDATE, "", infer_body(), answer(ALIKE, 0), start, 3.0)
    log_exchange(sink.url, "wine-v1", "wine-0", infer_body(), answer(UNLIKE, 1), start, 9.0)

    out = tmp_path / "report"
    # The sink is still running: check-mirror waits for its files to close.
    done = check(run_step, sink_folder(tmp_path), out, "--min-requests=40",
                 "--max-latency-ratio=2")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert done.results["passed"] == "true"
    assert (done.results["agreement"], done.results["requests"]) == ("1", "40")
    assert done.results["mirror-error-rate"] == "0"
    summary = json.loads(done.results["summary"])
    assert (summary["version"], summary["live_p50_ms"], summary["mirror_p50_ms"]) == (
        "green", 2.0, 3.0,
    )  # fmt: skip
    assert summary["latency_ratio_p50"] == 1.5
    judged = report(out)
    assert judged["summary"]["live_versions"] == [LIVE]  # found by the shared request ids
    assert judged["summary"]["mirror_versions"] == [CANDIDATE]
    assert judged["pairing"] == {
        "live_requests": 46, "candidate_requests": 42, "paired": 40, "pending": 0,
        "unpaired_live": 5, "unpaired_candidate": 1, "unidentified": 2,
    }  # fmt: skip
    assert "5 live request(s) without a copy" in (out / "mirror-report.md").read_text()
    # The lineage names the logs by the root digest of the files read.
    assert sink.stop() == 143
    files = sorted(sink_folder(tmp_path).glob("*.jsonl"))
    expected = root_hex({f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files})
    assert judged["records"]["digest"] == expected
    statement = json.loads((out / ".mlops/lineage/check-mirror.intoto.json").read_text())
    dependency = statement["predicate"]["buildDefinition"]["resolvedDependencies"][0]
    assert (dependency["name"], dependency["digest"]) == ("payload-logs", {"sha256": expected})


def sink_folder(tmp_path: Path) -> Path:
    return tmp_path / "payloads"


def test_unlike_answers_fail_naming_agreement(run_step, sink, tmp_path) -> None:  # type: ignore[no-untyped-def]
    mirror(sink, 20, UNLIKE, time.time() - 120)
    assert sink.stop() == 143
    reported = check(run_step, sink_folder(tmp_path), tmp_path / "report", "--min-requests=20")
    assert reported.exit_code == 0, reported.output
    assert (reported.results["passed"], reported.results["agreement"]) == ("false", "0")
    assert reported.results["mirror-error-rate"] == "0"  # it answered, differently
    failing = check(run_step, sink_folder(tmp_path), tmp_path / "failing", "--min-requests=20",
                    "--fail-on-mismatch")  # fmt: skip
    assert failing.exit_code == 1
    assert "error: mirrored version green failed: agreement 0 fails >=0.99" in failing.output


def test_copies_left_unanswered_are_errors_once_no_answer_can_come(  # type: ignore[no-untyped-def]
    run_step, sink, tmp_path
) -> None:
    mirror(sink, 16, ALIKE, time.time() - 120)
    mirror(sink, 4, None, time.time() - 60, prefix="failed")  # a 500 is never logged
    mirror(sink, 3, None, time.time(), prefix="in-flight")  # an answer may still come
    assert sink.stop() == 143
    out = tmp_path / "report"
    done = check(run_step, sink_folder(tmp_path), out, "--min-requests=20",
                 "--max-error-rate=0.1", "--wait-seconds=0")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert (done.results["requests"], done.results["mirror-error-rate"]) == ("20", "0.2")
    assert done.results["agreement"] == "0.8"  # a failed copy disagrees with a live answer
    assert done.results["passed"] == "false"
    assert report(out)["pairing"]["pending"] == 3
    assert "mirror_error_rate 0.2 fails <=0.1" in done.output


def test_too_few_pairs_fail_with_what_was_not_paired_and_write_nothing(  # type: ignore[no-untyped-def]
    run_step, sink, tmp_path
) -> None:
    start = time.time() - 120
    mirror(sink, 5, ALIKE, start)
    for i in range(7):
        log_exchange(sink.url, LIVE, f"alone-{i}", infer_body(i), answer(ALIKE, 0), start, 2.0)
    assert sink.stop() == 143
    out = tmp_path / "report"
    done = check(run_step, sink_folder(tmp_path), out, "--min-requests=10", "--wait-seconds=1.5")
    assert done.exit_code == 1
    assert f"only 5 mirrored request(s) of green recorded in {sink_folder(tmp_path)}" in done.output
    assert "7 live request(s) without a copy, 0 copies without a live request" in done.output
    assert not out.exists()
    assert done.results == {}


def test_an_earlier_candidate_of_the_same_name_does_not_count(  # type: ignore[no-untyped-def]
    run_step, sink, tmp_path
) -> None:
    # green was mirrored once before, answered unlike the live version and was rolled back.
    mirror(sink, 10, UNLIKE, time.time() - 3600, prefix="before")
    double = KubeApiDouble(ready_after_reads=1).start()
    try:
        kube = ["--target=kserve", "--name=iris", "--namespace=models", "--allow-unverified",
                f"--kubeconfig={double.kubeconfig(tmp_path)}", "--timeout=5",
                f"--state-dir={tmp_path / 'deployments'}"]  # fmt: skip
        blue = run_step("deploy-model", *kube, "--model-uri=s3://models/iris/sha256-1/",
                        "--strategy=blue-green", "--version=blue",
                        "--deployment-mode=RawDeployment")  # fmt: skip
        assert blue.exit_code == 0, blue.output
        green = run_step("deploy-model", *kube, "--model-uri=s3://models/iris/sha256-2/",
                         "--strategy=mirror", "--version=green", "--deployment-mode=RawDeployment",
                         f"--payload-log-url={sink.url}")  # fmt: skip
        assert green.exit_code == 0, green.output
    finally:
        double.stop()
    mirror(sink, 10, ALIKE, time.time())  # the green deployed now answers alike
    assert sink.stop() == 143
    every = check(run_step, sink_folder(tmp_path), tmp_path / "all", "--min-requests=10")
    assert every.exit_code == 0, every.output
    assert (every.results["requests"], every.results["agreement"]) == ("20", "0.5")
    since = check(run_step, sink_folder(tmp_path), tmp_path / "since", "--min-requests=10",
                  f"--state-dir={tmp_path / 'deployments'}")  # fmt: skip
    assert since.exit_code == 0, since.output
    assert (since.results["requests"], since.results["agreement"]) == ("10", "1")


def test_logs_uploaded_to_s3_are_read_there(  # type: ignore[no-untyped-def]
    run_step, s3, s3_server, bucket, monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    uploader = Sink(f"s3://{bucket}/payloads/kserve", "--rotate-bytes=2000")
    try:
        mirror(uploader, 12, ALIKE, time.time() - 120)
        assert uploader.stop() == 143
    finally:
        uploader.kill()
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # the step's own param names the endpoint
    out = tmp_path / "report"
    done = check(run_step, f"s3://{bucket}/payloads/kserve", out, "--min-requests=12",
                 f"--endpoint-url={s3_server.endpoint}", "--addressing-style=path",
                 f"--candidate-service={CANDIDATE}", f"--live-service={LIVE}")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert (done.results["passed"], done.results["requests"]) == ("true", "12")
    assert report(out)["records"]["uri"] == f"s3://{bucket}/payloads/kserve"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--records={logs}"], "--records"),  # records and payload logs: one of the two
        (["--version="], "--candidate-service"),  # whose events are judged?
        ([f"--live-service={CANDIDATE}"], "--live-service"),
        (["--payload-logs=gs://bucket/logs"], "--payload-logs"),
        (["--payload-logs=", "--state-dir={logs}", f"--live-service={LIVE}"], "--live-service"),
        (["--state-dir={logs}", "--version=", f"--candidate-service={CANDIDATE}"], "--version"),
        (["--candidate-service=Iris_Green"], "--candidate-service"),
    ],
)
def test_bad_params_exit_2_naming_them_and_write_nothing(  # type: ignore[no-untyped-def]
    run_step, tmp_path, args, named
) -> None:
    logs = tmp_path / "payloads"
    logs.mkdir()
    out = tmp_path / "report"
    done = check(run_step, logs, out, *(a.format(logs=logs) for a in args))
    assert done.exit_code == 2, done.output
    assert "check-mirror: 1 invalid parameter(s)" in done.output
    assert named in done.output
    assert not out.exists()
    assert done.results == {}


def test_a_log_line_that_is_not_a_record_is_named(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    logs = tmp_path / "payloads"
    logs.mkdir()
    (logs / "payloads-1.jsonl").write_text('{"type": "org.kubeflow.serving.inference.request"}\n')
    out = tmp_path / "report"
    done = check(run_step, logs, out)
    assert done.exit_code == 1
    assert f"{logs / 'payloads-1.jsonl'}:1: not a payload-log record (no id)" in done.output
    assert not out.exists()
