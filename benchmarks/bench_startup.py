"""Step start-up: `tekton-mlops <step> --help` against the floor of any click CLI."""

from __future__ import annotations

import sys

from harness import CLI, PYTHON, REPO, Row, alternate, timed

ORDER = 10
RUNS = 21


def rows() -> list[Row]:
    sys.path.insert(0, str(REPO / "runtime"))
    from tekton_mlops.params import step_names

    def click_floor() -> float:
        return timed([PYTHON, "-c", "import click"])

    table: list[Row] = []
    for step in step_names():

        def ours(step: str = step) -> float:
            return timed([CLI, step, "--help"])

        mine, peer = alternate(RUNS, ours, click_floor, label=f"start-up {step}")
        table.append(
            (
                f"start-up `tekton-mlops {step} --help`",
                f"{mine * 1000:.0f} ms",
                "`python -c 'import click'`",
                f"{peer * 1000:.0f} ms",
                f"{mine / peer:.2f}x (goal <= 2x)",
            )
        )
    return table
