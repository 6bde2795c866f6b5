"""The local executor: its overhead on the demo Pipeline, and parallel independent tasks."""

from __future__ import annotations

import re
import statistics
import subprocess
import time
from pathlib import Path

from harness import CLI, PYTHON, REPO, Row, ec_key, timed, workdir

ORDER = 60
RUNS = 3
PARALLEL = """
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: parallel}
spec:
  pipelineSpec:
    tasks:
      - name: a
        taskSpec: {steps: [{name: wait, image: alpine, script: sleep 3}]}
      - name: b
        taskSpec: {steps: [{name: wait, image: alpine, script: sleep 3}]}
"""
CANCER_CSV = (
    "import csv,sys\nfrom sklearn.datasets import load_breast_cancer\n"
    "d=load_breast_cancer()\nw=csv.writer(open(sys.argv[1],'w',newline=''))\n"
    "w.writerow([n.replace(' ','_') for n in d.feature_names]+['diagnosis'])\n"
    "w.writerows([*map(float,r),int(t)] for r,t in zip(d.data,d.target))"
)


def _stop_local_servers(runs: Path) -> None:
    """The demo Pipeline leaves its promoted model serving; a benchmark must not."""
    for state in runs.glob("*/workspaces/shared/deployments"):
        for name in state.iterdir():
            subprocess.run(
                [CLI, "deploy-model", "--target=local", "--stop", f"--name={name.name}",
                 f"--state-dir={state}", f"--results-dir={runs / 'stopped'}"],
                check=False, capture_output=True,
            )  # fmt: skip


def rows() -> list[Row]:
    with workdir("bench-executor-") as work:
        data = work / "cancer.csv"
        subprocess.run([PYTHON, "-c", CANCER_CSV, str(data)], check=True)
        sample = REPO / "catalog/pipeline/train-and-deploy/0.1/samples/run-locally.yaml"
        secrets = work / "secrets"
        (secrets / "model-signing-key").mkdir(parents=True)
        (secrets / "model-verification-key").mkdir()
        key = ec_key(secrets / "model-signing-key")
        subprocess.run(
            ["openssl", "ec", "-in", str(key), "-pubout", "-out",
             str(secrets / "model-verification-key" / "public.pem")],
            check=True, capture_output=True,
        )  # fmt: skip
        overheads, walls, steps_total = [], [], []
        for _ in range(RUNS):
            start = time.perf_counter()
            done = subprocess.run(
                [CLI, "run", str(sample), "-o", "none", "--run-dir", str(work / "runs"),
                 "--git-mirror", f"https://github.com/tekton-mlops/tekton-mlops.git={REPO}",
                 "--param", f"dataset-uri={data.as_uri()}",
                 "--param", f"model-destination={(work / 'models').as_uri()}",
                 "--host-path", str(work),
                 "--secrets-dir", str(secrets)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            wall = time.perf_counter() - start
            _stop_local_servers(work / "runs")
            # The pipeline is a chain, so its critical path is the sum of its steps.
            steps = sum(float(t) for t in re.findall(r"\(exit \d+, ([\d.]+) s\)", done.stderr))
            walls.append(wall)
            steps_total.append(steps)
            overheads.append(wall - steps)
        wall, steps, overhead = (statistics.median(v) for v in (walls, steps_total, overheads))
        parallel_file = work / "parallel.yaml"
        parallel_file.write_text(PARALLEL)
        parallel = statistics.median(
            timed([CLI, "run", str(parallel_file), "-o", "none", "--run-dir", str(work / "runs")])
            for _ in range(RUNS)
        )
    return [
        (
            "executor overhead on the train-and-deploy demo (wall - sum of step times)",
            f"{overhead:.2f} s of {wall:.2f} s",
            "the steps themselves",
            f"{steps:.2f} s",
            f"{100 * overhead / wall:.1f}% of wall time (goal < 5%)",
        ),
        (
            "two independent 3 s tasks",
            f"{parallel:.2f} s",
            "run one after the other",
            "6.00 s",
            f"{parallel / 6:.2f}x of serial (ideal 0.50x)",
        ),
    ]
