"""The retrain-on-schedule trigger: a CronJob's signed schedule event in, a monitor-and-retrain
PipelineRun out.

`tekton-mlops listen --dry-run` serves the catalog's EventListener (github interceptor, cel
filter, binding from body.params) and writes the PipelineRuns it creates; `tekton-mlops
post-event` is what the CronJob runs. The CronJob itself is decoded strictly against the
Kubernetes API's own models (the kubernetes client's) and its container's command is run here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import CLI, REPO, announced_port, refused_url, wait_http

pytestmark = pytest.mark.integration
FOLDER = REPO / "catalog" / "trigger" / "retrain-on-schedule" / "0.1"
DOCUMENTS = [d for d in yaml.safe_load_all((FOLDER / "retrain-on-schedule.yaml").read_text()) if d]
SECRET = "schedule-hook-secret-1"
PARAMS = {
    "current-data-uri": "s3://datasets/iris/2026-06.csv",
    "target-column": "species",
    "model-name": "iris",
    "deploy-target": "kserve",
    "live-url": "http://iris-predictor.models.svc.cluster.local",
    "live-model-uri": "s3://models/iris/sha256-" + "1" * 64 + "/",
    "training-data-destination": "s3://datasets/iris/training",
    "model-destination": "s3://models/iris",
}


def document(kind: str) -> dict[str, Any]:
    return next(d for d in DOCUMENTS if d["kind"] == kind)


@dataclass
class Listening:
    url: str
    runs: Path
    log: Path

    def created(self) -> list[dict[str, Any]]:
        return [yaml.safe_load(p.read_text()) for p in sorted(self.runs.glob("*.yaml"))]


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    """The webhook Secret as the listener reads it and the CronJob mounts it."""
    path = tmp_path / "secrets" / "schedule-webhook-secret" / "token"
    path.parent.mkdir(parents=True)
    path.write_text(SECRET)
    return path


@pytest.fixture
def listener(tmp_path: Path, secret_file: Path) -> Iterator[Listening]:
    runs, log = tmp_path / "triggered", tmp_path / "listen.log"
    # Port 0: the listener binds a free port itself and logs which one.
    process = subprocess.Popen(
        [CLI, "listen", str(FOLDER), "--port=0", "--dry-run",
         f"--secrets-dir={secret_file.parent.parent}", f"--runs-dir={runs}"],
        stdout=subprocess.DEVNULL, stderr=log.open("wb"),
    )  # fmt: skip
    try:
        port = announced_port(process, log, r"EventListener \S+ on http://127\.0\.0\.1:(\d+)")
        wait_http(f"http://127.0.0.1:{port}/live")
        yield Listening(f"http://127.0.0.1:{port}/", runs, log)
    finally:
        process.terminate()
        process.wait(timeout=10)


def post_event(
    url: str, secret: Path, *extra: str, **params: str
) -> subprocess.CompletedProcess[str]:
    pairs = [f"--param={name}={value}" for name, value in (params or PARAMS).items()]
    return subprocess.run(
        [CLI, "post-event", url, f"--secret-file={secret}", *extra, *pairs],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip


def test_a_signed_schedule_event_creates_one_monitor_and_retrain_run(
    listener: Listening, secret_file: Path
) -> None:
    posted = post_event(listener.url, secret_file, "--schedule=retrain-on-schedule")
    assert posted.returncode == 0, posted.stderr
    answer = json.loads(posted.stdout)
    assert answer["status"] == 202
    [run] = listener.created()
    assert run["kind"] == "PipelineRun"
    assert run["metadata"]["labels"]["tekton-mlops.dev/schedule"] == "retrain-on-schedule"
    labels = run["metadata"]["labels"]
    assert labels["triggers.tekton.dev/triggers-eventid"] == answer["answer"]["eventID"]
    reference = {p["name"]: p["value"] for p in run["spec"]["pipelineRef"]["params"]}
    assert reference["pathInRepo"] == (
        "catalog/pipeline/monitor-and-retrain/0.1/monitor-and-retrain.yaml"
    )
    params = {p["name"]: p["value"] for p in run["spec"]["params"]}
    assert params == {**PARAMS, "catalog-url": reference["url"], "catalog-revision": "main"}
    deployments = next(w for w in run["spec"]["workspaces"] if w["name"] == "deployments")
    assert deployments["persistentVolumeClaim"]["claimName"] == "model-deployments"


def test_the_created_run_is_valid_tekton_for_the_pipeline(
    listener: Listening, secret_file: Path
) -> None:
    from tekton_mlops.tekton.admission import admit
    from tekton_mlops.tekton.schema import decode_errors

    assert post_event(listener.url, secret_file, "--schedule=retrain-on-schedule").returncode == 0
    [run] = listener.created()
    assert decode_errors(run) == []
    assert admit(run) == []
    # Every param it passes is one the Pipeline declares, and every required one is passed.
    pipeline = yaml.safe_load(
        (REPO / "catalog/pipeline/monitor-and-retrain/0.1/monitor-and-retrain.yaml").read_text()
    )
    declared = {p["name"]: p for p in pipeline["spec"]["params"]}
    passed = {p["name"] for p in run["spec"]["params"]}
    assert passed <= set(declared)
    assert {n for n, p in declared.items() if "default" not in p} <= passed
    bound = {w["name"] for w in run["spec"]["workspaces"]}
    assert {w["name"] for w in pipeline["spec"]["workspaces"] if not w.get("optional")} <= bound


def test_a_wrong_secret_another_event_or_schedule_starts_nothing(
    listener: Listening, secret_file: Path, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-secret")
    # An EventListener answers 202 to every event it reads, as Triggers does: a refused event
    # shows only in its log and in the run that does not appear.
    assert post_event(listener.url, wrong, "--schedule=retrain-on-schedule").returncode == 0
    assert post_event(listener.url, secret_file, "--schedule=another-schedule").returncode == 0
    partial = {k: v for k, v in PARAMS.items() if k != "current-data-uri"}
    schedule = "--schedule=retrain-on-schedule"
    assert post_event(listener.url, secret_file, schedule, **partial).returncode == 0
    body = json.dumps({"kind": "tekton-mlops.dev/schedule", "schedule": "retrain-on-schedule",
                       "params": PARAMS}).encode()  # fmt: skip
    assert send(listener.url, body, event="push") == 202  # signed, but not a schedule event
    assert send(listener.url, body, event="schedule", secret=None) == 202  # unsigned
    assert listener.created() == []
    log = listener.log.read_text()
    assert "payload signature check failed" in log
    assert "did not return true" in log  # the schedule filter
    assert "no 'current-data-uri' in the event" in log
    assert "event type push is not allowed" in log
    assert "no X-Hub-Signature-256 header set" in log


def test_post_event_fails_when_no_listener_answers(secret_file: Path) -> None:
    with refused_url() as url:
        posted = post_event(url, secret_file, "--schedule=retrain-on-schedule")
    assert posted.returncode == 1
    assert posted.stderr.strip().splitlines() == [
        f"Error: {url}: cannot post the event ([Errno 111] Connection refused)"
    ]


def test_post_event_refuses_bad_arguments_before_posting(secret_file: Path, tmp_path: Path) -> None:
    with refused_url() as url:  # nothing is posted: a post would fail with exit 1
        bad_pair = post_event(url, secret_file, "--schedule=s", "--param=no-equals-sign")
        empty = tmp_path / "empty"
        empty.write_text("\n")
        no_secret = post_event(url, empty, "--schedule=s")
    assert bad_pair.returncode == 2
    assert "'no-equals-sign': expected NAME=VALUE" in bad_pair.stderr
    assert no_secret.returncode == 2
    assert f"{empty} is empty" in no_secret.stderr


# --- the CronJob ---------------------------------------------------------------------------


def test_the_cronjob_decodes_strictly_as_a_kubernetes_batch_v1_cronjob() -> None:
    cronjob = document("CronJob")
    assert (cronjob["apiVersion"], cronjob["kind"]) == ("batch/v1", "CronJob")
    assert kubernetes_errors(cronjob, "V1CronJob") == []
    spec = cronjob["spec"]
    assert len(spec["schedule"].split()) == 5  # minute hour day-of-month month day-of-week
    assert spec["concurrencyPolicy"] == "Forbid"
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == (REPO / "catalog" / "runtime-image.txt").read_text().strip()
    assert container["command"] == ["tekton-mlops", "post-event"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 65532}
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    # The decoding catches what the API server refuses: a misspelt field, a missing name.
    broken = json.loads(json.dumps(cronjob))
    wrong = broken["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    wrong["imagePullPolicyy"] = wrong.pop("name")
    assert kubernetes_errors(broken, "V1CronJob") == [
        ".spec.jobTemplate.spec.template.spec.containers[0].imagePullPolicyy: unknown field "
        "of V1Container",
        ".spec.jobTemplate.spec.template.spec.containers[0]: Invalid value for `name`, must "
        "not be `None`",
    ]


def test_the_cronjob_posts_to_its_listener_with_the_secret_the_interceptor_checks() -> None:
    cronjob, listener = document("CronJob"), document("EventListener")
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    url, *options = container["args"]
    assert re.fullmatch(
        rf"http://el-{listener['metadata']['name']}\.[a-z0-9-]+\.svc\.cluster\.local:8080", url
    )
    secret_ref = next(
        p["value"] for p in listener["spec"]["triggers"][0]["interceptors"][0]["params"]
        if p["name"] == "secretRef"
    )  # fmt: skip
    [mount] = container["volumeMounts"]
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == secret_ref["secretName"]
    assert f"--secret-file={mount['mountPath']}/{secret_ref['secretKey']}" in options
    assert "--schedule=retrain-on-schedule" in options


def test_the_cronjobs_command_run_here_starts_the_run_it_configures(
    listener: Listening, secret_file: Path
) -> None:
    """The container's command and args as written, with the Service URL and the mounted
    Secret's path mapped to this machine: the PipelineRun carries the CronJob's params."""
    pod = document("CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    _, *options = container["args"]
    options = [
        f"--secret-file={secret_file}" if o.startswith("--secret-file=") else o for o in options
    ]
    command = [CLI if part == "tekton-mlops" else part for part in container["command"]]
    posted = subprocess.run(
        [*command, listener.url, *options], capture_output=True, text=True, timeout=60
    )
    assert posted.returncode == 0, posted.stderr
    [run] = listener.created()
    configured = dict(o.removeprefix("--param=").split("=", 1) for o in options if "--param=" in o)
    params = {p["name"]: p["value"] for p in run["spec"]["params"]}
    assert {name: params[name] for name in configured} == configured


def send(url: str, body: bytes, event: str, secret: str | None = SECRET) -> int:
    headers = {"Content-Type": "application/json", "X-GitHub-Event": event,
               "X-GitHub-Delivery": str(uuid.uuid4())}  # fmt: skip
    if secret is not None:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers["X-Hub-Signature-256"] = f"sha256={digest}"
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def kubernetes_errors(value: Any, kind: str, at: str = "") -> list[str]:
    """Decode ``value`` as the API server would: every field known to the Kubernetes API
    model ``kind`` (the kubernetes client's, generated from the API's OpenAPI), of its type,
    the required ones present. Returns what is wrong, empty when it decodes."""
    import kubernetes.client as models

    if kind.startswith("list["):
        if not isinstance(value, list):
            return [f"{at}: not a list"]
        return [
            e for i, v in enumerate(value) for e in kubernetes_errors(v, kind[5:-1], f"{at}[{i}]")
        ]
    if kind.startswith("dict("):
        inner = kind[5:-1].split(", ", 1)[1]
        if not isinstance(value, dict):
            return [f"{at}: not an object"]
        return [e for k, v in value.items() for e in kubernetes_errors(v, inner, f"{at}.{k}")]
    primitives: dict[str, type | tuple[type, ...]] = {
        "str": str, "int": int, "bool": bool, "float": (int, float), "object": object,
    }  # fmt: skip
    if kind in primitives:
        wrong = not isinstance(value, primitives[kind]) or (
            kind == "int" and isinstance(value, bool)
        )
        return [f"{at}: {value!r} is not {kind}"] if wrong else []
    model = getattr(models, kind)
    if not isinstance(value, dict):
        return [f"{at}: not an object ({kind})"]
    fields = {json_name: name for name, json_name in model.attribute_map.items()}
    errors = [f"{at}.{key}: unknown field of {kind}" for key in value if key not in fields]
    for key, item in value.items():
        if key in fields:
            errors += kubernetes_errors(item, model.openapi_types[fields[key]], f"{at}.{key}")
    try:  # the models refuse a missing required field when they are built
        model(**{fields[k]: True for k in value if k in fields})
    except ValueError as exc:
        errors.append(f"{at}: {exc}")
    except TypeError:
        pass
    return errors
