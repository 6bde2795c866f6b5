"""tekton-mlops listen with the catalog's train-on-push trigger: git pushes in, PipelineRuns out.

A bare git repository's post-receive hook sends a signed GitHub push event for every
pushed ref, as GitHub would; the listener serves catalog/trigger/train-on-push.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import CLI, REPO, announced_port, make_key_pair, wait_http

pytestmark = pytest.mark.integration
TRIGGER = REPO / "catalog" / "trigger" / "train-on-push" / "0.1" / "train-on-push.yaml"
PROJECT_URL = "https://github.com/tekton-mlops/tekton-mlops.git"
GITHUB_SECRET = "github-hook-secret-1"
GITLAB_SECRET = "gitlab-hook-token-1"
ZERO = "0" * 40

HOOK = """#!{python}
# post-receive: one signed GitHub push event per pushed ref, as GitHub sends them.
import hashlib, hmac, json, sys, urllib.request, uuid
for line in sys.stdin:
    before, after, ref = line.split()
    body = json.dumps({{"ref": ref, "before": before, "after": after,
                       "deleted": after == "0" * 40, "created": before == "0" * 40,
                       "repository": {{"clone_url": {repo!r}, "full_name": "acme/iris"}}}}).encode()
    signature = "sha256=" + hmac.new({secret!r}.encode(), body, hashlib.sha256).hexdigest()
    request = urllib.request.Request({url!r}, data=body, method="POST", headers={{
        "Content-Type": "application/json", "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": signature}})
    urllib.request.urlopen(request, timeout=30).read()
"""


@dataclass
class Listening:
    url: str
    runs: Path
    process: subprocess.Popen[bytes]

    def created(self) -> list[dict]:  # type: ignore[type-arg]
        return [
            yaml.safe_load(p.read_text())
            for p in sorted(self.runs.glob("*.yaml"))
            if not p.name.endswith(".finished.yaml")
        ]


def trigger_folder(tmp_path: Path) -> Path:
    """The catalog trigger, its Pipeline resolved from this checkout's HEAD (committed)."""
    folder = tmp_path / "trigger"
    folder.mkdir()
    text = TRIGGER.read_text().replace("      default: main\n", "      default: HEAD\n")
    (folder / "train-on-push.yaml").write_text(text)
    return folder


@pytest.fixture
def secrets(tmp_path: Path) -> Path:
    root = tmp_path / "secrets"
    for name, value in (("github-webhook-secret", GITHUB_SECRET),
                        ("gitlab-webhook-secret", GITLAB_SECRET)):  # fmt: skip
        (root / name).mkdir(parents=True)
        (root / name / "token").write_text(value)
    pair = make_key_pair(tmp_path / "keys")
    for name, source in (("model-signing-key", pair.private),
                         ("model-verification-key", pair.public)):  # fmt: skip
        (root / name).mkdir()
        (root / name / source.name).write_bytes(source.read_bytes())
    return root


def start_listener(tmp_path: Path, secrets: Path, *extra: str) -> Listening:
    runs = tmp_path / "triggered"
    log = tmp_path / "listen.log"
    # Port 0: the listener binds a free port itself and logs which one.
    process = subprocess.Popen(
        [CLI, "listen", str(trigger_folder(tmp_path)), "--port=0",
         f"--secrets-dir={secrets}", f"--runs-dir={runs}",
         # The session's data and each test's repositories live under pytest's base folder.
         f"--git-mirror={PROJECT_URL}={REPO}", f"--host-path={tmp_path.parent.parent}",
         *extra],
        stdout=subprocess.DEVNULL, stderr=log.open("wb"),
    )  # fmt: skip
    port = announced_port(process, log, r"EventListener \S+ on http://127\.0\.0\.1:(\d+)")
    try:
        wait_http(f"http://127.0.0.1:{port}/live")
    except BaseException:
        process.kill()
        process.wait(timeout=10)
        raise
    return Listening(f"http://127.0.0.1:{port}/", runs, process)


@pytest.fixture
def dry_listener(tmp_path: Path, secrets: Path) -> Iterator[Listening]:
    listening = start_listener(tmp_path, secrets, "--dry-run", "--listener=train-on-push")
    yield listening
    listening.process.terminate()
    listening.process.wait(timeout=10)


def push_event(ref: str = "refs/heads/main", after: str = "a" * 40, **extra: object) -> bytes:
    body = {"ref": ref, "before": "b" * 40, "after": after, "deleted": after == ZERO,
            "repository": {"clone_url": "https://git.example/acme/iris.git"}, **extra}  # fmt: skip
    return json.dumps(body).encode()


def send(
    url: str,
    body: bytes,
    event: str = "push",
    secret: str | None = GITHUB_SECRET,
    delivery: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict]:  # type: ignore[type-arg]
    sent = {"Content-Type": "application/json", "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4())}  # fmt: skip
    if secret is not None:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        sent["X-Hub-Signature-256"] = f"sha256={digest}"
    sent.update(headers or {})
    request = urllib.request.Request(url, data=body, method="POST", headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=ci", "-c", "user.email=ci@example.com", *args],
        cwd=cwd, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip


def test_a_push_to_main_trains_from_the_pushed_revision(tmp_path, secrets, datasets) -> None:  # type: ignore[no-untyped-def]
    listening = start_listener(tmp_path, secrets, "--listener=train-on-push")
    try:
        bare = tmp_path / "iris.git"
        git(tmp_path, "init", "--bare", "-q", "-b", "main", str(bare))
        hook = bare / "hooks" / "post-receive"
        hook.write_text(HOOK.format(python=sys.executable, repo=str(bare),
                                    secret=GITHUB_SECRET, url=listening.url))  # fmt: skip
        hook.chmod(0o755)
        work = tmp_path / "work"
        git(tmp_path, "clone", "-q", str(bare), str(work))
        config = {"dataset-uri": datasets["iris"].as_uri(), "target-column": "target",
                  "estimator": "logistic-regression", "hyperparameters": {"max_iter": 500},
                  "thresholds": {"accuracy": ">=0.8"}}  # fmt: skip
        (work / ".tekton-mlops.yaml").write_text(yaml.safe_dump(config))
        git(work, "add", ".")
        git(work, "commit", "-qm", "train iris")
        git(work, "push", "-q", "origin", "HEAD:main")
        pushed = git(work, "rev-parse", "HEAD")

        deadline = time.monotonic() + 180
        while not list(listening.runs.glob("*.finished.yaml")):
            assert time.monotonic() < deadline, (tmp_path / "listen.log").read_text()
            time.sleep(0.5)
        # Everything that must start nothing, through the real hook and by hand.
        git(work, "tag", "v1")
        git(work, "push", "-q", "origin", "v1")  # a tag
        git(work, "push", "-q", "origin", ":refs/tags/v1")  # a tag deletion
        git(work, "push", "-q", "origin", "HEAD:refs/heads/dev")  # another branch
        git(work, "push", "-q", "origin", ":refs/heads/dev")  # a branch deletion
        assert send(listening.url, push_event(), secret="forged")[0] == 202
        assert send(listening.url, push_event(), secret=None)[0] == 202
        assert send(listening.url, push_event(), event="ping")[0] == 202

        created = listening.created()
        assert len(created) == 1
        run = created[0]
        assert run["kind"] == "PipelineRun"
        params = {p["name"]: p["value"] for p in run["spec"]["params"]}
        assert params["config-revision"] == pushed
        assert params["config-repo-url"] == str(bare)
        name = run["metadata"]["name"]
        finished = yaml.safe_load((listening.runs / f"{name}.finished.yaml").read_text())
        results = {r["name"]: r["value"] for r in finished["status"]["results"]}
        assert finished["status"]["conditions"][0]["status"] == "True"
        assert results["config-commit"] == pushed
        assert results["passed"] == "true"
        lineage = listening.runs / "runs" / name / "workspaces" / "shared" / "model" / ".mlops"
        record = json.loads((lineage / "lineage" / "train-model.intoto.json").read_text())
        source = next(d for d in record["predicate"]["buildDefinition"]["resolvedDependencies"]
                      if d["name"] == "source")  # fmt: skip
        assert source == {"name": "source", "uri": f"git+{bare}", "digest": {"gitCommit": pushed}}
        log = (tmp_path / "listen.log").read_text()
        assert "did not return true" in log  # the branch filter
        assert "payload signature check failed" in log
        assert "no X-Hub-Signature-256 header set" in log
        assert "event type ping is not allowed" in log
    finally:
        listening.process.terminate()
        listening.process.wait(timeout=10)


def test_200_concurrent_deliveries_give_exactly_the_valid_runs(dry_listener) -> None:  # type: ignore[no-untyped-def]
    valid = [(str(uuid.uuid4()), f"{i + 1:040x}") for i in range(80)]
    deliveries = [dict(body=push_event(after=sha), delivery=d) for d, sha in valid]
    deliveries += [dict(body=push_event(after=sha), delivery=d) for d, sha in valid[:20]]  # again
    deliveries += [dict(body=push_event(), secret="forged") for _ in range(40)]
    deliveries += [dict(body=push_event(ref="refs/heads/dev")) for _ in range(20)]
    deliveries += [dict(body=push_event(ref="refs/tags/v1")) for _ in range(10)]
    deliveries += [dict(body=push_event(), event="issues") for _ in range(20)]
    deliveries += [dict(body=push_event(after=ZERO)) for _ in range(10)]  # deleted main
    assert len(deliveries) == 200
    with ThreadPoolExecutor(max_workers=32) as pool:
        statuses = list(pool.map(lambda d: send(dry_listener.url, **d)[0], deliveries))
    assert statuses == [202] * 200
    created = dry_listener.created()
    revisions = sorted(
        next(p["value"] for p in run["spec"]["params"] if p["name"] == "config-revision")
        for run in created
    )
    assert revisions == sorted(sha for _, sha in valid)  # none lost, none duplicated
    assert len({run["metadata"]["name"] for run in created}) == 80


def test_a_redelivery_answers_with_the_first_event_id(dry_listener) -> None:  # type: ignore[no-untyped-def]
    delivery = str(uuid.uuid4())
    first = send(dry_listener.url, push_event(), delivery=delivery)[1]["eventID"]
    again = send(dry_listener.url, push_event(), delivery=delivery)[1]["eventID"]
    assert first == again
    assert len(dry_listener.created()) == 1
    run = dry_listener.created()[0]
    assert run["metadata"]["labels"]["triggers.tekton.dev/triggers-eventid"] == first
    assert run["metadata"]["labels"]["tekton-mlops.dev/commit"] == "aaaaaaa"


def test_bodies_over_the_limit_are_refused(tmp_path, secrets) -> None:  # type: ignore[no-untyped-def]
    listening = start_listener(
        tmp_path, secrets, "--dry-run", "--listener=train-on-push", "--max-body-bytes=2048"
    )
    try:
        big = push_event(padding="x" * 4096)
        assert send(listening.url, big)[0] == 413
        assert send(listening.url, push_event())[0] == 202
        assert len(listening.created()) == 1
    finally:
        listening.process.terminate()
        listening.process.wait(timeout=10)


def test_gitlab_push_hook_with_its_token(tmp_path, secrets) -> None:  # type: ignore[no-untyped-def]
    listening = start_listener(tmp_path, secrets, "--dry-run", "--listener=train-on-push-gitlab")
    try:
        body = json.dumps({"ref": "refs/heads/main", "before": "b" * 40, "after": "c" * 40,
                           "project": {"git_http_url": "https://gitlab.example/acme/iris.git"}}
                          ).encode()  # fmt: skip
        gitlab = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": GITLAB_SECRET}
        assert send(listening.url, body, secret=None, headers=gitlab)[0] == 202
        wrong = {**gitlab, "X-Gitlab-Token": "not-it"}
        assert send(listening.url, body, secret=None, headers=wrong)[0] == 202
        tag = {**gitlab, "X-Gitlab-Event": "Tag Push Hook"}
        assert send(listening.url, body, secret=None, headers=tag)[0] == 202
        created = listening.created()
        assert len(created) == 1
        params = {p["name"]: p["value"] for p in created[0]["spec"]["params"]}
        assert params["config-repo-url"] == "https://gitlab.example/acme/iris.git"
        assert params["config-revision"] == "c" * 40
    finally:
        listening.process.terminate()
        listening.process.wait(timeout=10)


def test_rendered_pipeline_runs_are_valid_tekton(dry_listener) -> None:  # type: ignore[no-untyped-def]
    from tekton_mlops.tekton.admission import admit

    assert send(dry_listener.url, push_event())[0] == 202
    created = dry_listener.created()
    assert created
    for run in created:
        assert admit(run) == []
