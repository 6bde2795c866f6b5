"""tune-model: TPE against the full grid, and two worker processes against one.

(a) On each dataset, the same finite search space is walked whole by the grid sampler
(the peer: every combination once, so its best is the space's best) and searched by TPE
for as many trials as the grid has; the figure is the number of trials TPE needs before
its best reaches the grid's best cross-validated score (a seed that never reaches it
counting as the whole grid), and the time those trials took. The folds and the
estimator's seed stay the same (``--seed``); the sampler's seed moves with
``--worker-index``, so every side scores a point of the space alike.

The figure is the median over REPLAYED_SEEDS sampler seeds. Three seeds run as whole
processes; the median of three swings from 0.2x to 0.5x with the seeds alone (the
spread of one seed's count is most of the grid), so all of them are also replayed: the
step's own sampler (``tuning.sampler_for``, seeded as its worker seeds it) proposes each
point, and the grid run's score for that point is its score. That is exact, because a
trial's score is a function of its point; the whole-process runs check it, seed by seed.
Goal: at most a third of the grid's trials.

(b) The same search, a random forest on breast_cancer with a fixed number of trees (so
every trial costs about the same), run with ``--workers=2`` and ``--workers=1``; whole
processes, start-up and report included, on this machine's two cores. Goal: 1.7x.
"""

from __future__ import annotations

import csv
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from harness import CLI, Row, alternate, timed, workdir

ORDER = 48
SAMPLER_SEEDS = (0, 1, 2)  # --worker-index: offsets the sampler's seed only
REPLAYED_SEEDS = 100  # worker indexes 0..99, replayed against the grid's scores
PARALLEL_RUNS = 3
PARALLEL_TRIALS = 60

# Each space is finite (choices, integer ranges) and the same for both samplers.
SEARCHES = {
    "breast_cancer": (
        "load_breast_cancer",
        "logistic-regression",
        {
            "C": {"choices": [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100, 300]},
            "class_weight": {"choices": ["balanced", None]},
            "fit_intercept": {"choices": [True, False]},
        },
    ),
    "wine": (
        "load_wine",
        "random-forest-classifier",
        {
            "n_estimators": {"low": 10, "high": 40, "step": 10},
            "max_depth": {"low": 1, "high": 4},
            "min_samples_leaf": {"low": 1, "high": 7, "step": 2},
        },
    ),
    "diabetes": (
        "load_diabetes",
        "gradient-boosting-regressor",
        {
            "learning_rate": {"choices": [0.01, 0.03, 0.1, 0.3]},
            "max_depth": {"low": 1, "high": 4},
            "n_estimators": {"low": 50, "high": 150, "step": 50},
        },
    ),
}


def _write(path: Path, loader: str) -> Path:
    from sklearn import datasets

    data = getattr(datasets, loader)()
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*(f"f{i}" for i in range(data.data.shape[1])), "target"])
        writer.writerows(
            [*(repr(float(v)) for v in row), t]
            for row, t in zip(data.data, data.target, strict=True)
        )
    return path


def _tune(work: Path, data: Path, estimator: str, space: dict, *extra: str) -> Path:  # type: ignore[type-arg]
    out = work / f"out-{len(list(work.glob('out-*')))}"
    timed(
        [CLI, "tune-model", f"--data={data}", "--target-column=target", f"--output={out}",
         f"--estimator={estimator}", f"--search-space={json.dumps(space)}", "--cv-folds=5",
         f"--results-dir={work / 'results'}", *extra]
    )  # fmt: skip
    return out


def _trials(out: Path) -> list[tuple[dict[str, Any], float, float]]:
    """(params, value, duration) of each trial, by number."""
    with (out / "trials.csv").open(newline="") as handle:
        found = sorted(csv.DictReader(handle), key=lambda r: int(r["number"]))
    return [(json.loads(r["params"]), float(r["value"]), float(r["duration"])) for r in found]


def _reached(values: list[float], best: float, minimize: bool) -> int:
    """Trials until a value equals the best, or all of them (the whole grid) if none does."""
    return next(
        (
            i + 1
            for i, v in enumerate(values)
            if (v <= best + 1e-12 if minimize else v >= best - 1e-12)
        ),
        len(values),
    )


def _replay(
    estimator: str,
    space: dict[str, Any],
    grid: list[tuple[dict[str, Any], float, float]],
    summary: dict[str, Any],
    index: int,
) -> tuple[list[float], list[float]]:
    """The scores and durations TPE's trials would have with ``--worker-index=index``: the
    step's sampler proposes, the grid's trial of the same point answers."""
    import optuna

    from tekton_mlops.ml import search_space, tuning

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    parsed, problems = search_space.parse(estimator, space)
    assert parsed is not None, problems
    known = {search_space.point_key(p): (v, d) for p, v, d in grid}
    study = optuna.create_study(
        direction=summary["direction"],
        # As run_worker makes it: the study's seed plus the worker's offset, one worker.
        sampler=tuning.sampler_for("tpe", parsed, summary["seed"] + index, len(grid)),
    )
    values, seconds = [], []
    for _ in grid:
        trial = study.ask()
        value, duration = known[search_space.point_key(parsed.suggest(trial))]
        study.tell(trial, value)
        values.append(value)
        seconds.append(duration)
    return values, seconds


def _compare(work: Path, name: str) -> Row:
    loader, estimator, space = SEARCHES[name]
    data = _write(work / f"{name}.csv", loader)
    walked = _tune(work, data, estimator, space, "--sampler=grid", "--n-trials=10000")
    grid = _trials(walked)
    summary = json.loads((walked / "summary.json").read_text())
    minimize = summary["direction"] == "minimize"
    size = len(grid)
    best = min(v for _, v, _ in grid) if minimize else max(v for _, v, _ in grid)
    whole: list[int] = []
    for index in SAMPLER_SEEDS:
        tpe = _trials(
            _tune(
                work,
                data,
                estimator,
                space,
                "--sampler=tpe",
                f"--n-trials={size}",
                f"--worker-index={index}",
            )
        )
        whole.append(_reached([v for _, v, _ in tpe], best, minimize))
    needed: list[int] = []
    seconds: list[float] = []
    for index in range(REPLAYED_SEEDS):
        values, durations = _replay(estimator, space, grid, summary, index)
        needed.append(_reached(values, best, minimize))
        seconds.append(sum(durations[: needed[-1]]))
    if needed[: len(SAMPLER_SEEDS)] != whole:
        raise RuntimeError(
            f"{name}: the replayed trials {needed[: len(SAMPLER_SEEDS)]} are not the "
            f"step's {whole}: the replay no longer samples as the step does"
        )
    trials = statistics.median(needed)
    grid_seconds = sum(d for _, _, d in grid)
    print(
        f"  {name}: grid {size} trials best {best}; TPE reached it after {whole} (whole runs),"
        f" quartiles {statistics.quantiles(needed, n=4)} of {REPLAYED_SEEDS} seeds",
        file=sys.stderr,
    )
    return (
        f"tune-model TPE vs full grid, {name} ({estimator}, {size}-point space, 5-fold cv): "
        "trials to reach the grid's best score",
        f"{trials:g} trials, {statistics.median(seconds):.1f} s (median of {REPLAYED_SEEDS} "
        f"seeds; whole runs of 3: {whole})",
        "grid sampler, every point once",
        f"{size} trials, {grid_seconds:.1f} s",
        f"{trials / size:.2f}x trials (goal <= 0.33x)",
    )


def _parallel(work: Path) -> Row:
    data = _write(work / "parallel.csv", "load_breast_cancer")
    space = {"n_estimators": {"choices": [60]}, "min_samples_leaf": {"low": 1, "high": 4}}
    base = [CLI, "tune-model", f"--data={data}", "--target-column=target",
            "--estimator=random-forest-classifier", f"--search-space={json.dumps(space)}",
            "--sampler=random", f"--n-trials={PARALLEL_TRIALS}", "--cv-folds=5",
            f"--results-dir={work / 'results'}", "--overwrite=true"]  # fmt: skip

    def one() -> float:
        return timed([*base, f"--output={work / 'p1'}", "--workers=1"])

    def two() -> float:
        return timed([*base, f"--output={work / 'p2'}", "--workers=2"])

    single, double = alternate(PARALLEL_RUNS, one, two, label="tune workers")
    return (
        f"tune-model {PARALLEL_TRIALS} trials, random forest (60 trees) on breast_cancer, "
        "5-fold cv, `--workers=2` on 2 cores, whole process",
        f"{double:.1f} s",
        "the same search with `--workers=1`",
        f"{single:.1f} s",
        f"{single / double:.2f}x speed-up (goal >= 1.7x)",
    )


def rows() -> list[Row]:
    with workdir("bench-tune-") as work:
        table = [_compare(work, name) for name in SEARCHES]
        table.append(_parallel(work))
    return table
