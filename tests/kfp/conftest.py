"""KFP pipelines compiled with the pinned SDK, admitted, and run by the local executor.

``kfp_run`` compiles a ``@dsl.pipeline`` function with the kfp SDK, compiles the IR to
Tekton (every document must pass Tekton's admission and strict decoding), then runs
``tekton-mlops kfp run`` on the IR file as a user would: steps run in the process
runner, confined, with the run's store in the kfp workspace under the test's folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need

CLI = str(Path(sys.executable).with_name("tekton-mlops"))


def kfp_installed() -> bool:
    try:
        import kfp  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(autouse=True)
def _needs_kfp() -> None:
    need(kfp_installed(), "the kfp SDK (pip install 'tekton-mlops[kfp]')")


def compile_ir(pipeline: Any) -> str:
    from tekton_mlops.kfp.sdk import compile_function

    return compile_function(pipeline)


def tekton_documents(ir_text: str) -> list[dict[str, Any]]:
    """The compiled documents, checked as the API server and Tekton's webhook check them."""
    from tekton_mlops.kfp import ir
    from tekton_mlops.kfp.compiler import compile_spec
    from tekton_mlops.tekton.admission import admit, rejection
    from tekton_mlops.tekton.schema import decode_errors

    compiled = compile_spec(ir.load(ir_text))
    for document in compiled.documents():
        assert decode_errors(document) == [], document["kind"]
        problems = admit(document)
        assert not problems, rejection(problems)
    return compiled.documents()


@dataclass
class Run:
    code: int
    pipeline_run: dict[str, Any]
    outputs: dict[str, Any]
    stderr: str
    run_dir: Path
    documents: list[dict[str, Any]]

    @property
    def reason(self) -> str:
        return str(self.pipeline_run["status"]["conditions"][0]["reason"])

    @property
    def succeeded(self) -> bool:
        return bool(self.pipeline_run["status"]["conditions"][0]["status"] == "True")

    @property
    def name(self) -> str:
        return str(self.pipeline_run["metadata"]["name"])

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.outputs.get("parameters") or {})

    @property
    def artifacts(self) -> dict[str, Any]:
        return dict(self.outputs.get("artifacts") or {})

    @property
    def skipped(self) -> dict[str, str]:
        status = self.pipeline_run["status"]
        return {s["name"]: s["reason"] for s in status.get("skippedTasks") or []}

    @property
    def store(self) -> Path:
        """The run's folder in the kfp workspace, as the steps left it."""
        return self.run_dir / self.name / "workspaces" / "kfp" / self.name

    def record(self, task: str, key: str = "") -> dict[str, Any] | None:
        path = (
            self.store / task / key / "outputs.json" if key else self.store / task / "outputs.json"
        )
        return json.loads(path.read_text()) if path.is_file() else None

    def value(self, task: str, output: str = "Output", key: str = "") -> Any:
        record = self.record(task, key)
        assert record is not None, f"{task} {key} has no outputs: {self.stderr[-2000:]}"
        return record["parameters"][output]

    def logs(self, task: str) -> str:
        """Every log of the TaskRuns of a pipeline task (all matrix instances)."""
        texts = []
        for folder in sorted((self.run_dir / self.name).glob(f"{self.name}-{task}*")):
            for log in sorted((folder / "logs").glob("*.log")):
                texts.append(log.read_text(errors="replace"))
        return "\n".join(texts)


RunPipeline = Callable[..., Run]


@pytest.fixture
def kfp_run(tmp_path: Path) -> RunPipeline:
    def run(
        pipeline: Any,
        params: dict[str, str] | None = None,
        extra: list[str] | None = None,
    ) -> Run:
        text = pipeline if isinstance(pipeline, str) else compile_ir(pipeline)
        documents = tekton_documents(text)
        ir_file = tmp_path / "pipeline.yaml"
        ir_file.write_text(text)
        command = [
            CLI,
            "kfp",
            "run",
            str(ir_file),
            "-o",
            "json",
            "--run-dir",
            str(tmp_path / "runs"),
        ]
        for name, value in (params or {}).items():
            command += ["--param", f"{name}={value}"]
        command += extra or []
        done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=600)
        try:
            shown = json.loads(done.stdout)
        except ValueError:
            raise AssertionError(  # noqa: B904 - the run's own stderr says more than the parse
                f"kfp run printed no JSON (exit {done.returncode}): {done.stderr[-3000:]}"
            )
        return Run(
            done.returncode,
            shown["pipelineRun"],
            shown["outputs"],
            done.stderr,
            tmp_path / "runs",
            documents,
        )

    return run
