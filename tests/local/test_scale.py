"""The executor under load, small: wide fan-outs, long chains, a big matrix, a deep DAG.

Every TaskRun must succeed every time (no step may fail because another is starting), the
results must come out right, and the summary stays readable. ``make bench`` runs the same
generated shapes at 1000 tasks and measures overhead per task and memory.
"""

from __future__ import annotations

import pytest

from tekton_mlops.local import generate

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("attempt", range(3))
def test_a_wide_fan_out_never_fails_spuriously(tekton, attempt: int) -> None:  # type: ignore[no-untyped-def]
    run = tekton(generate.fan_out(100), "--parallelism", "16")
    assert run.exit_code == 0, run.log[-3000:]
    assert run.condition["message"] == "Tasks Completed: 100 (Failed: 0, Cancelled 0), Skipped: 0"
    # The summary folds: no hundred rows, a count instead.
    assert "... and 100 Succeeded" in run.log
    assert "pending (16 running, --parallelism 16)" in run.log


def test_a_long_chain_runs_in_order(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(generate.chain(100))
    assert run.exit_code == 0, run.log[-3000:]
    lines = [line.split("] ", 1)[-1] for line in run.log.splitlines()]
    started = [line.split()[1] for line in lines if line.startswith("task ") and "started" in line]
    assert started == [f"t{i}" for i in range(100)]


def test_a_matrix_of_256_combinations(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(generate.matrix(256))
    assert run.exit_code == 0, run.log[-3000:]
    assert run.results["all"] == [str(i) for i in range(256)]
    assert len(run.object["status"]["childReferences"]) == 256


def test_a_twenty_level_dag_passes_results_down(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(generate.layered(20))
    assert run.exit_code == 0, run.log[-3000:]
    assert run.results["depth"] == "20"


def test_parallelism_one_runs_one_taskrun_at_a_time(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(generate.fan_out(6), "--parallelism", "1")
    assert run.exit_code == 0, run.log
    events = [
        line.split("] ", 1)[1].split()
        for line in run.log.splitlines()
        if "] " in line and line.split("] ", 1)[1].startswith("  step ")
    ]
    # step <taskrun>/s started, then that same step's end, before the next one starts
    pairs = [(words[1], words[2]) for words in events]
    assert len(pairs) == 12
    for (started, what), (ended, how) in zip(pairs[::2], pairs[1::2], strict=True):
        assert what == "started"
        assert ended == started
        assert how == "completed"
