"""Every file or directory a step reads or writes, given the wrong thing, fails cleanly.

For each step's path params (found from its schema: the ones bound to a workspace, and
the URIs and repository paths that name local files), the step gets a binary file, an
empty file, an empty directory and a path that does not exist, and must answer as a pod
log should: exit 1 (or 2 for a parameter problem), one line on stderr naming the path,
no "internal error", no traceback, and nothing written anywhere (no output directory,
no results, no staging left behind, temp files included).

A kind a param legitimately accepts is not a hostile input for it and is listed in
``accepts`` with the reason (any bytes can be fetched or signed; an output directory may
exist or not yet).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tekton_mlops.params import load_schema, step_names
from tests.conftest import CLI, REPO, KeyPair

pytestmark = pytest.mark.integration

KINDS = ("binary", "empty", "directory", "missing")
#: Not UTF-8, with NUL bytes and no line structure: what a stray model or archive looks like.
BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\xfd" + bytes(range(256)) * 4


@dataclass(frozen=True)
class Paths:
    """What a case may point at besides the hostile path, all inside the test's sandbox."""

    data: Path  # a good CSV
    model: Path  # a good, signed model directory (a copy per test)
    keys: KeyPair
    out: Path  # where an output goes when it is not the param under test


@dataclass(frozen=True)
class Case:
    step: str
    param: str
    args: Callable[[Path, Paths], list[str]]
    accepts: dict[str, str] = field(default_factory=dict)  # kind -> why it is not hostile


def _file_uri(path: Path) -> str:
    return path.as_uri()  # the sandbox is absolute: file:///…/hostile-<kind>


OUTPUT_DIR = {
    "directory": "an output directory may exist (it must be empty, or is the model's own)",
    "missing": "an output directory is created",
}

CASES = [
    Case(
        "fetch-data", "source",
        lambda p, s: [f"--source={_file_uri(p)}", f"--output={s.out}"],
        {"binary": "fetch-data copies any object", "empty": "fetch-data copies any object"},
    ),
    Case(
        "fetch-data", "public-key",
        lambda p, s: [f"--source={_file_uri(s.model)}", f"--output={s.out}", f"--public-key={p}"],
    ),
    Case(
        "fetch-data", "output",
        lambda p, s: [f"--source={_file_uri(s.data)}", f"--output={p}"],
        OUTPUT_DIR | {"directory": "an empty output directory takes the dataset"},
    ),
    Case(
        "train-model", "data",
        lambda p, s: [f"--data={p}", "--target-column=target", f"--output={s.out}"],
    ),
    Case(
        "train-model", "output",
        lambda p, s: [f"--data={s.data}", "--target-column=target", f"--output={p}"],
        OUTPUT_DIR,
    ),
    Case(
        "prepare-data", "data",
        lambda p, s: [f"--data={p}", f"--output={s.out}", "--spec={}"],
    ),
    Case(
        "prepare-data", "output",
        lambda p, s: [f"--data={s.data}", f"--output={p}", "--spec={}"],
        OUTPUT_DIR,
    ),
    Case(
        "tune-model", "data",
        lambda p, s: [f"--data={p}", "--target-column=target", f"--output={s.out}",
                      '--search-space={"C": {"low": 1, "high": 2}}'],
    ),
    Case(
        "tune-model", "output",
        lambda p, s: [f"--data={s.data}", "--target-column=target", f"--output={p}",
                      '--search-space={"C": {"low": 1, "high": 2}}'],
        OUTPUT_DIR,
    ),
    Case(
        "evaluate-model", "model-path",
        lambda p, s: [f"--model-path={p}", f"--data={s.data}", f"--output={s.out}"],
    ),
    Case(
        "evaluate-model", "data",
        lambda p, s: [f"--model-path={s.model}", f"--data={p}", f"--output={s.out}"],
    ),
    Case(
        "evaluate-model", "output",
        lambda p, s: [f"--model-path={s.model}", f"--data={s.data}", f"--output={p}"],
        OUTPUT_DIR,
    ),
    Case(
        "evaluate-model", "baseline-path",
        lambda p, s: [f"--model-path={s.model}", f"--data={s.data}", f"--output={s.out}",
                      "--report=report", f"--baseline-path={p}"],
    ),
    Case(
        "sign-artifact", "path",
        lambda p, s: [f"--path={p}", f"--private-key={s.keys.private}", f"--signature={s.out}.sig"],
        {"binary": "any file can be signed", "empty": "any file can be signed"},
    ),
    Case(
        "sign-artifact", "private-key",
        lambda p, s: [f"--path={s.model}", f"--private-key={p}"],
    ),
    Case(
        "sign-artifact", "signature",
        lambda p, s: [f"--path={s.model}", f"--private-key={s.keys.private}", f"--signature={p}"],
        {
            "binary": "an existing signature file is replaced",
            "empty": "an existing signature file is replaced",
            "missing": "the signature file is created",
        },
    ),
    Case(
        "verify-artifact", "path",
        lambda p, s: [f"--path={p}", f"--public-key={s.keys.public}"],
    ),
    Case(
        "verify-artifact", "public-key",
        lambda p, s: [f"--path={s.model}", f"--public-key={p}"],
    ),
    Case(
        "verify-artifact", "signature",
        lambda p, s: [f"--path={s.model}", f"--public-key={s.keys.public}", f"--signature={p}"],
    ),
    Case(
        "push-model", "path",
        lambda p, s: [f"--path={p}", f"--destination={_file_uri(s.out)}"],
    ),
    Case(
        "push-model", "destination",
        lambda p, s: [f"--path={s.model}", f"--destination={_file_uri(p)}"],
        {"directory": "a model store is a directory", "missing": "a model store is created"},
    ),
    Case(
        "deploy-model", "model-uri",
        lambda p, s: [
            "--target=local", "--name=hostile", f"--model-uri={_file_uri(p)}",
            f"--public-key={s.keys.public}", f"--state-dir={s.out}",
        ],
    ),
    Case(
        "deploy-model", "public-key",
        lambda p, s: [
            "--target=local", "--name=hostile", f"--model-uri={_file_uri(s.model)}",
            f"--public-key={p}", f"--state-dir={s.out}",
        ],
    ),
    Case(
        "deploy-model", "state-dir",
        lambda p, s: [
            "--target=local", "--name=hostile", f"--model-uri={_file_uri(s.model)}",
            f"--public-key={s.keys.public}", f"--state-dir={p}",
        ],
        {"directory": "deployments are tracked in a directory", "missing": "it is created"},
    ),
    Case(
        "check-slo", "output",
        # Nothing listens on port 9: the report path must be refused before any load.
        lambda p, s: ["--url=http://127.0.0.1:9", "--model=m", "--requests=1", f"--output={p}"],
        OUTPUT_DIR,
    ),
    Case(
        "check-slo", "dataset",
        # Nothing listens on port 9: the dataset must be refused before the model is asked.
        lambda p, s: ["--url=http://127.0.0.1:9", "--model=m", f"--dataset={p}",
                      "--target-column=target", f"--output={s.out}"],
    ),
    Case(
        "check-golden", "golden",
        # Nothing listens on port 9: the golden set must be refused before the model is asked.
        lambda p, s: ["--url=http://127.0.0.1:9", "--model=m", f"--golden={p}",
                      "--expected-column=target", f"--output={s.out}"],
    ),
    Case(
        "check-golden", "output",
        lambda p, s: ["--url=http://127.0.0.1:9", "--model=m", f"--golden={s.data}",
                      "--expected-column=target", f"--output={p}"],
        OUTPUT_DIR,
    ),
    Case(
        "check-mirror", "state-dir",
        lambda p, s: [f"--state-dir={p}", "--name=iris", f"--output={s.out}"],
    ),
    Case(
        "check-mirror", "records",
        lambda p, s: [f"--records={p}", "--name=iris", f"--output={s.out}"],
    ),
    Case(
        "check-mirror", "payload-logs",
        lambda p, s: [f"--payload-logs={p}", "--name=iris", "--version=v2", f"--output={s.out}"],
    ),
    Case(
        "check-mirror", "output",
        # The records are not read before the report folder is found writable.
        lambda p, s: [f"--records={s.data}", "--name=iris", f"--output={p}"],
        OUTPUT_DIR,
    ),
    Case(
        "detect-drift", "model-path",
        lambda p, s: [f"--model-path={p}", f"--current={s.data}", f"--output={s.out}"],
    ),
    Case(
        "detect-drift", "current",
        lambda p, s: [f"--model-path={s.model}", f"--current={p}", f"--output={s.out}"],
    ),
    Case(
        "detect-drift", "reference",
        lambda p, s: [f"--model-path={s.model}", f"--current={s.data}", f"--reference={p}",
                      f"--output={s.out}"],
    ),
    Case(
        "detect-drift", "output",
        lambda p, s: [f"--model-path={s.model}", f"--current={s.data}", f"--output={p}"],
        OUTPUT_DIR,
    ),
    # The checks' decision records: the key and the stored model are refused before anything
    # is measured or read.
    Case(
        "check-slo", "signing-key",
        lambda p, s: ["--url=http://127.0.0.1:9", "--model=m", "--requests=1",
                      f"--output={s.out}", f"--signing-key={p}"],
    ),
    Case(
        "check-golden", "signing-key",
        lambda p, s: ["--url=http://127.0.0.1:9", "--model=m", f"--golden={s.data}",
                      "--expected-column=target", f"--output={s.out}", f"--signing-key={p}"],
    ),
    Case(
        "check-golden", "model-uri",
        lambda p, s: ["--url=http://127.0.0.1:9", "--model=m", f"--golden={s.data}",
                      "--expected-column=target", f"--output={s.out}",
                      f"--model-uri={_file_uri(p)}"],
    ),
    Case(
        "check-mirror", "signing-key",
        lambda p, s: [f"--records={s.data}", "--name=iris", f"--output={s.out}",
                      f"--signing-key={p}"],
    ),
    Case(
        "detect-drift", "signing-key",
        lambda p, s: [f"--model-path={s.model}", f"--current={s.data}", f"--output={s.out}",
                      f"--signing-key={p}"],
    ),
    Case(
        "read-config", "repo-url",
        lambda p, s: [f"--repo-url={p}", "--dataset-uri=file:///d.csv", "--target-column=t"],
    ),
    Case(
        "read-config", "output",
        # This checkout is a git repository: the output folder must be refused before the read.
        lambda p, s: [f"--repo-url={REPO}", "--revision=HEAD", "--dataset-uri=file:///d.csv",
                      "--target-column=t", f"--output={p}"],
        OUTPUT_DIR,
    ),
    Case(
        "cut-out", "state-dir",
        lambda p, s: ["--target=local", "--name=iris", "--reason=r", f"--state-dir={p}"],
    ),
    Case(
        "cut-out", "signing-key",
        lambda p, s: ["--target=local", "--name=iris", "--reason=r", f"--state-dir={s.out}",
                      f"--signing-key={p}"],
    ),
    *(
        Case("revoke-dataset", param, lambda p, s, param=param: [
            f"--digests=sha256:{'0' * 64}", "--reason=r", f"--signing-key={s.keys.private}",
            f"--store={s.model}", f"--output={s.out}", f"--{param}={p}"], accepts)
        for param, accepts in (
            ("signing-key", {}),
            ("public-key", {}),
            ("output", OUTPUT_DIR),
            ("state-dir", {"directory": "an empty deployments folder holds no deployment",
                           "missing": "no deployment was ever made there"}),
            ("store", {"directory": "an empty store holds no model; the report says so"}),
        )
    ),
    Case(
        "prepare-training", "data",
        lambda p, s: [f"--data={p}", "--target-column=target", f"--image=t@sha256:{'0' * 64}",
                      '--command=["python3"]', f"--work-dir={s.out}"],
    ),
    Case(
        "prepare-training", "work-dir",
        lambda p, s: [f"--data={s.data}", "--target-column=target", f"--image=t@sha256:{'0' * 64}",
                      '--command=["python3"]', f"--work-dir={p}"],
        OUTPUT_DIR | {"directory": "an empty work-dir takes the layout"},
    ),
    Case(
        "finish-training", "data",
        lambda p, s: [f"--data={p}", "--target-column=target", f"--image=t@sha256:{'0' * 64}",
                      '--command=["python3"]', f"--work-dir={s.out}", f"--output={s.out}"],
    ),
    Case(
        "finish-training", "work-dir",
        lambda p, s: [f"--data={s.data}", "--target-column=target", f"--image=t@sha256:{'0' * 64}",
                      '--command=["python3"]', f"--work-dir={p}", f"--output={s.out}"],
    ),
    Case(
        "finish-training", "output",
        lambda p, s: [f"--data={s.data}", "--target-column=target", f"--image=t@sha256:{'0' * 64}",
                      '--command=["python3"]', f"--work-dir={s.out}", f"--output={p}"],
        OUTPUT_DIR,
    ),
    Case(
        "verify-policy", "model-path",
        lambda p, s: [f"--model-path={p}", f"--public-key={s.keys.public}", f"--output={s.out}"],
    ),
    Case(
        "verify-policy", "model-uri",
        lambda p, s: [f"--model-uri={_file_uri(p)}", f"--public-key={s.keys.public}",
                      f"--output={s.out}"],
    ),
    Case(
        "verify-policy", "public-key",
        lambda p, s: [f"--model-path={s.model}", f"--public-key={p}", f"--output={s.out}"],
    ),
    Case(
        "verify-policy", "policy-path",
        # The policy is read and compiled before the model: a hostile one changes nothing.
        lambda p, s: [f"--model-path={s.model}", f"--public-key={s.keys.public}",
                      f"--policy-path={p}", f"--output={s.out}"],
    ),
    Case(
        "verify-policy", "output",
        lambda p, s: [f"--model-path={s.model}", f"--public-key={s.keys.public}", f"--output={p}"],
        OUTPUT_DIR,
    ),
]  # fmt: skip


def test_every_step_is_covered() -> None:
    """Each step with a path param has cases, and each workspace-bound param is one of them."""
    covered = {(c.step, c.param) for c in CASES}
    assert {c.step for c in CASES} == set(step_names())
    for step in step_names():
        for name, prop in load_schema(step).properties.items():
            if "x-workspace" in prop and name != "registry-auth":  # oci:// only; no local case
                assert (step, name) in covered, f"{step} --{name} has no hostile-input case"


def hostile(kind: str, sandbox: Path) -> Path:
    path = sandbox / f"hostile-{kind}"
    if kind == "binary":
        path.write_bytes(BINARY)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "directory":
        path.mkdir()
    return path


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root``: kind and content digest, to see that nothing changed."""
    seen = {}
    for here, dirs, files in os.walk(root):
        for name in dirs:
            seen[os.path.relpath(os.path.join(here, name), root)] = "dir"
        for name in files:
            path = os.path.join(here, name)
            with open(path, "rb") as handle:
                seen[os.path.relpath(path, root)] = hashlib.file_digest(
                    handle, "sha256"
                ).hexdigest()
    return seen


@pytest.fixture(scope="module")
def signed_model(datasets, keys, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    model = tmp_path_factory.mktemp("hostile") / "model"
    for argv in (
        [
            "train-model",
            f"--data={datasets['iris']}",
            "--target-column=target",
            f"--output={model}",
        ],
        ["sign-artifact", f"--path={model}", f"--private-key={keys.private}"],
    ):
        done = subprocess.run(
            [CLI, *argv, f"--results-dir={model.parent / 'results'}"],
            capture_output=True, text=True, check=False, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    return model


@pytest.mark.parametrize(
    ("case", "kind"),
    [
        pytest.param(case, kind, id=f"{case.step}--{case.param}-{kind}")
        for case in CASES
        for kind in KINDS
        if kind not in case.accepts
    ],
)
def test_hostile_path_is_refused_cleanly(
    case, kind, signed_model, datasets, keys, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    sandbox = tmp_path / "sandbox"
    (sandbox / "tmp").mkdir(parents=True)
    paths = Paths(datasets["iris"], sandbox / "model", keys, sandbox / "out")
    shutil.copytree(signed_model, paths.model)
    target = hostile(kind, sandbox)
    results = tmp_path / "results"
    before = snapshot(sandbox)

    done = subprocess.run(
        [CLI, case.step, *case.args(target, paths), f"--results-dir={results}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=sandbox,
        env={**os.environ, "TMPDIR": str(sandbox / "tmp")},  # leftovers would show up here
    )

    assert done.returncode in (1, 2), done.stderr
    assert "internal error" not in done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert str(target) in lines[0], f"the message does not name {target}: {lines[0]}"
    assert not results.exists(), f"results written: {os.listdir(results)}"
    assert snapshot(sandbox) == before, "the step wrote or removed something"
