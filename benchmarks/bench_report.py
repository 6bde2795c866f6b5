"""evaluate-model with its HTML report against the same evaluation without one.

Both sides are whole processes on the same model and data (a random forest on 5000
synthetic rows of 20 features, binary and multi-class), so the figure is what the report
adds to a step's wall time: importing matplotlib, the figures, permutation importance
through onnxruntime and the staged, hashed report directory.
"""

from __future__ import annotations

import csv
from pathlib import Path

from harness import CLI, Row, paired, timed, workdir

ORDER = 45
RUNS = 11
ROWS = 5000
FEATURES = 20


def _data(path: Path, classes: int) -> Path:
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=ROWS, n_features=FEATURES, n_informative=8, n_classes=classes, random_state=7
    )
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*(f"f{i}" for i in range(FEATURES)), "target"])
        writer.writerows(
            [*(repr(float(v)) for v in row), int(t)] for row, t in zip(x, y, strict=True)
        )
    return path


def rows() -> list[Row]:
    table: list[Row] = []
    with workdir("bench-report-") as work:
        for label, classes in (("binary", 2), ("5 classes", 5)):
            data = _data(work / f"data-{classes}.csv", classes)
            model = work / f"model-{classes}"
            timed(
                [CLI, "train-model", f"--data={data}", "--target-column=target",
                 f"--output={model}", "--estimator=random-forest-classifier",
                 f"--results-dir={work / 'results'}"]
            )  # fmt: skip
            base = [CLI, "evaluate-model", f"--model-path={model}", f"--data={data}",
                    f"--output={work / 'eval'}", f"--results-dir={work / 'results'}"]  # fmt: skip

            def without(base: list[str] = base) -> float:
                return timed(base)

            def with_report(base: list[str] = base) -> float:
                return timed([*base, f"--report={work / 'report'}"])

            plain, reported, ratio = paired(RUNS, without, with_report, label=f"report {label}")
            overhead = ratio - 1
            table.append(
                (f"evaluate-model with `--report`, {ROWS} rows x {FEATURES} features, {label} "
                 "random forest", f"{reported:.2f} s", "the same evaluation without a report",
                 f"{plain:.2f} s",
                 f"+{overhead:.0%} wall time, median of {RUNS} paired runs (goal < 10%)")
            )  # fmt: skip
    return table
