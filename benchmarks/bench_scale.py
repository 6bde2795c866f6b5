"""The executor under load: chains, fan-outs, a matrix and a deep DAG of trivial tasks.

Each shape runs REPEATS times (BENCH_SCALE_REPEATS to change it); a run that fails any
TaskRun is a spurious failure (every task is `true`). Reported per shape: failures, wall
time, overhead per task (for a chain: (wall - sum of step times) / tasks, since a chain's
critical path is all of its steps) and the executor's peak memory (its own RSS; the steps
are separate processes). Goals from the load issue: 0 failures, under 10 ms of overhead a
task on a chain, under 200 MB for 1000 tasks.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time

from harness import CLI, REPO, Row, workdir

sys.path.insert(0, str(REPO / "runtime"))
from tekton_mlops.local import generate  # noqa: E402

ORDER = 62
REPEATS = int(os.environ.get("BENCH_SCALE_REPEATS", "20"))
SHAPES = [
    ("chain", 10, generate.chain),
    ("chain", 100, generate.chain),
    ("chain", 1000, generate.chain),
    ("fan-out", 10, generate.fan_out),
    ("fan-out", 100, generate.fan_out),
    ("fan-out", 1000, generate.fan_out),
    ("matrix", 256, generate.matrix),
    ("20-level DAG", 40, lambda _: generate.layered(20)),
]


def _one(text: str, work: str) -> tuple[bool, float, float, int]:
    """Run once in a fresh process: (succeeded, wall s, sum of step times s, peak RSS kB)."""
    path = f"{work}/run.yaml"
    with open(path, "w") as handle:
        handle.write(text)
    script = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stderr.write(done.stderr)\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(done.returncode, peak)\n"
    )
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", script, CLI, "run", path, "-o", "none",
         "--run-dir", f"{work}/runs"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - start
    code, peak = done.stdout.split()
    steps = sum(float(t) for t in re.findall(r"\(exit \d+, ([\d.]+) s\)", done.stderr))
    subprocess.run(["rm", "-rf", f"{work}/runs"], check=True)
    return code == "0", wall, steps, int(peak)


def rows() -> list[Row]:
    table: list[Row] = []
    with workdir("bench-scale-") as work:
        # The executor's own start-up (a one-task chain minus its step) is paid once a run,
        # not once a task: it is taken out of the per-task overhead.
        ones = [_one(generate.chain(1), str(work)) for _ in range(5)]
        startup = statistics.median(wall - steps for _, wall, steps, _ in ones)
        for shape, size, make in SHAPES:
            text = make(size)
            outcomes = [_one(text, str(work)) for _ in range(REPEATS)]
            failures = sum(1 for ok, *_ in outcomes if not ok)
            wall = statistics.median(o[1] for o in outcomes)
            steps = statistics.median(o[2] for o in outcomes)
            peak_mb = max(o[3] for o in outcomes) / 1024
            per_task = (
                (wall - steps - startup) / size * 1000 if shape == "chain" else wall / size * 1000
            )
            label = "overhead a task" if shape == "chain" else "wall a task"
            goal = " (goal < 10 ms)" if shape == "chain" else ""
            table.append(
                (
                    f"executor: {shape} of {size} ({REPEATS} runs)",
                    f"{failures} failed; {wall:.2f} s; {per_task:.1f} ms {label}{goal}",
                    "peak memory of the executor",
                    f"{peak_mb:.0f} MB" + (" (goal < 200 MB)" if size >= 1000 else ""),
                    f"{failures}/{REPEATS} spurious failures (goal 0)",
                )
            )
    return table
