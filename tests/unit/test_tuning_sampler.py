"""tune-model's samplers over a finite search space: each point is tried once (a trial's
score is a function of its point), TPE's preference kept when it proposes a repeat."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from tekton_mlops.ml import search_space, tuning


def parsed(estimator: str, raw: dict[str, Any]) -> search_space.SearchSpace:
    space, problems = search_space.parse(estimator, raw)
    assert space is not None, problems
    return space


SMALL = parsed(
    "logistic-regression",
    {
        "C": {"choices": [0.1, 1, 10]},
        "fit_intercept": {"choices": [True, False]},
        "max_iter": {"choices": [500]},  # one value: not a dimension to draw
    },
)


def score(params: dict[str, Any]) -> float:
    return params["C"] / 10 + (0.5 if params["fit_intercept"] else 0.0)


@pytest.fixture(autouse=True)
def quiet() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)


@pytest.mark.parametrize("kind", ["tpe", "random"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_point_is_tried_twice_until_every_one_is(kind: str, seed: int) -> None:
    sampler = tuning.sampler_for(kind, SMALL, seed, budget=8)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda trial: score(SMALL.suggest(trial)), n_trials=8)
    points = [(t.params["C"], t.params["fit_intercept"]) for t in study.trials]
    assert len(set(points[:6])) == 6  # the space has 6 points: each once
    assert set(points[6:]) <= set(points[:6])  # then repeats, as asked
    assert {t.params["max_iter"] for t in study.trials} == {500}


def test_a_worker_does_not_draw_a_point_another_runs_or_waits_to_retry() -> None:
    study = optuna.create_study(sampler=tuning.sampler_for("random", SMALL, 0, budget=6))
    running = study.ask()
    SMALL.suggest(running)  # another worker's trial, not finished
    study.enqueue_trial({"C": 10, "fit_intercept": True, "max_iter": 500})
    retried = study.ask()  # the enqueued point, as a retry of a trial failed stale
    assert SMALL.suggest(retried)["C"] == 10
    taken = {(running.params["C"], running.params["fit_intercept"]), (10, True)}
    for _ in range(4):
        trial = study.ask()
        params = SMALL.suggest(trial)
        point = (params["C"], params["fit_intercept"])
        assert point not in taken
        taken.add(point)
        study.tell(trial, 0.0)


class Stubborn(optuna.samplers.RandomSampler):
    """A base sampler that always proposes the same point, as TPE does when it is sure."""

    def __init__(self, point: dict[str, Any]) -> None:
        super().__init__(seed=0)
        self.point = point

    def sample_relative(self, study: Any, trial: Any, search_space: Any) -> dict[str, Any]:
        return dict(self.point)


def test_a_proposal_already_tried_gives_way_to_the_nearest_untried_point() -> None:
    space = parsed(
        "random-forest-classifier",
        {"n_estimators": {"low": 10, "high": 40, "step": 10}, "max_depth": {"low": 1, "high": 4}},
    )
    points = space.points()
    assert points is not None
    assert len(points) == 16
    favourite = {"n_estimators": 20, "max_depth": 2}
    sampler = tuning.untried_sampler(Stubborn(favourite), space, points, seed=0)
    study = optuna.create_study(sampler=sampler)
    first = study.ask()
    assert space.suggest(first) == favourite  # untried: the base sampler's choice stands
    study.tell(first, 1.0)
    neighbours = [
        {"n_estimators": 10, "max_depth": 2},
        {"n_estimators": 30, "max_depth": 2},
        {"n_estimators": 20, "max_depth": 1},
        {"n_estimators": 20, "max_depth": 3},
    ]
    seen = []
    for _ in range(4):
        trial = study.ask()
        seen.append(space.suggest(trial))
        study.tell(trial, 0.5)
    assert sorted(seen, key=str) == sorted(neighbours, key=str)  # one step away, each once
    trial = study.ask()
    assert space.distance(space.suggest(trial), favourite) == pytest.approx(2 / 3)


def test_only_a_finite_space_of_tracked_size_has_points() -> None:
    assert parsed("logistic-regression", {"C": {"low": 0.1, "high": 10}}).points() is None
    stepped = parsed("logistic-regression", {"C": {"low": 0.1, "high": 0.3, "step": 0.1}})
    assert stepped.points() == [{"C": 0.1}, {"C": 0.2}, {"C": 0.3}]
    wide = parsed(
        "random-forest-classifier",
        {"n_estimators": {"low": 1, "high": 1000}, "max_depth": {"low": 1, "high": 100}},
    )
    assert wide.points() is None  # 100,000 points: past MAX_TRACKED_POINTS
    # Counted without listing them, for the grid's budget and the log.
    assert wide.size() == 100_000
    assert stepped.size() == 3
    assert parsed("logistic-regression", {"C": {"low": 0.1, "high": 10}}).size() is None
    assert tuning.sampler_for("tpe", wide, 0).__class__ is optuna.samplers.TPESampler
    assert isinstance(tuning.sampler_for("grid", stepped, 0), optuna.samplers.GridSampler)


def test_a_point_read_back_from_the_storage_has_the_same_key() -> None:
    assert search_space.point_key({"b": 0.30000000000000004, "a": None}) == search_space.point_key(
        {"a": None, "b": 0.3}
    )
    assert search_space.point_key({"a": True}) != search_space.point_key({"a": 1})
