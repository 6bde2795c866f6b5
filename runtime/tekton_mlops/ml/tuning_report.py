"""What a finished study leaves behind: the trials table, importances and two plots.

trials.csv has one row per trial: number, state, value (the cross-validated
score, empty for a pruned or failed trial), params (JSON, sorted keys) and
duration in seconds. Everything but the duration is the same for the same
inputs and seed with one worker. A trial that failed stale (its worker died
mid-trial, see :mod:`study_storage`) is no row: it has no score, its ticket went
back to the budget and its parameters ran again; summary.json lists its number.

Parameter importance is Optuna's fANOVA (a random forest fitted on the
completed trials' parameters and scores, seeded, so the figures repeat); it
needs two completed trials with different scores, otherwise the plot says so.
Plots are drawn with matplotlib's Agg canvas, without pyplot's global state.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TRIALS_FILE = "trials.csv"
COLUMNS = ("number", "state", "value", "params", "duration")


@dataclass(frozen=True)
class TrialRow:
    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    duration: float | None


def rows(study: Any, leave_out: frozenset[int] | set[int] = frozenset()) -> list[TrialRow]:
    """The study's trials by number, but those numbered in ``leave_out``."""
    found = []
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if trial.number in leave_out:
            continue
        duration = trial.duration.total_seconds() if trial.duration is not None else None
        value = trial.value if trial.state.name == "COMPLETE" else None
        found.append(TrialRow(trial.number, trial.state.name, value, dict(trial.params), duration))
    return found


def trials_csv(table: Sequence[TrialRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in table:
        writer.writerow(
            [
                row.number,
                row.state,
                "" if row.value is None or math.isnan(row.value) else repr(row.value),
                json.dumps(row.params, sort_keys=True, separators=(",", ":")),
                "" if row.duration is None else f"{row.duration:.3f}",
            ]
        )
    return out.getvalue()


def read_trials_csv(path: Path) -> list[TrialRow]:
    """The rows :func:`trials_csv` wrote, read back (to log a finished search elsewhere)."""
    with path.open(newline="") as handle:
        return [
            TrialRow(
                int(row["number"]),
                row["state"],
                float(row["value"]) if row["value"] else None,
                json.loads(row["params"]),
                float(row["duration"]) if row["duration"] else None,
            )
            for row in csv.DictReader(handle)
        ]


def importances(study: Any, seed: int) -> dict[str, float]:
    """fANOVA importance per hyper-parameter, or {} when the trials cannot tell."""
    import optuna

    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if len({t.value for t in complete}) < 2:
        return {}
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    try:
        found = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError):  # e.g. no parameter varies between the trials
        return {}
    return {name: round(float(v), 6) for name, v in found.items()}


def _figure() -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def plot_history(table: Sequence[TrialRow], metric: str, minimize: bool, path: Path) -> None:
    """Each completed trial's score and the best so far, by trial number."""
    figure, axes = _figure()
    done = [r for r in table if r.value is not None and not math.isnan(r.value)]
    numbers = [r.number for r in done]
    values = [float(r.value) for r in done if r.value is not None]
    best: list[float] = []
    for v in values:
        best.append(v if not best else (min(best[-1], v) if minimize else max(best[-1], v)))
    axes.scatter(numbers, values, s=14, color="tab:blue", label="trial")
    axes.step(numbers, best, where="post", color="tab:red", label="best so far")
    axes.set_xlabel("trial")
    axes.set_ylabel(f"{metric} ({'lower' if minimize else 'higher'} is better)")
    axes.set_title("Optimization history")
    if done:
        axes.legend(loc="best")
    figure.tight_layout()
    figure.savefig(path, format="png", metadata={"Software": None})


def plot_importance(found: dict[str, float], path: Path) -> None:
    figure, axes = _figure()
    if found:
        names = list(reversed(found))
        axes.barh(names, [found[n] for n in names], color="tab:green")
        axes.set_xlabel("importance (fANOVA)")
    else:
        axes.text(0.5, 0.5, "not enough completed trials", ha="center", va="center")
        axes.set_axis_off()
    axes.set_title("Hyper-parameter importance")
    figure.tight_layout()
    figure.savefig(path, format="png", metadata={"Software": None})
