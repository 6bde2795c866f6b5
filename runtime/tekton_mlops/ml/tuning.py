"""Hyper-parameter search: one study, cross-validated trials, workers that share it.

A trial draws hyper-parameters from the search space, trains the estimator on
each of k folds (stratified for classifiers; the same folds for every trial, so
trials compare fairly) and scores the held-out fold with the metrics
evaluate-model uses. The study's score is their mean.

Pruning: forests and gradient boosting train incrementally. With the median
pruner, such a trial grows ``n_estimators`` in four rungs (a quarter, half,
three quarters, all) with ``warm_start``, reports the cross-validated score at
each rung, and stops when it falls below the median of earlier trials at the
same rung. Logistic and linear regression fit in one go: the pruner changes
nothing for them.

Every worker is the same function: it opens the shared study and runs trials
until the study's trial budget (see :mod:`study_storage`), its wall-time
deadline, or, for a grid, the grid is spent. A process pool runs several in
one pod; pods run one each against a shared database.
"""

from __future__ import annotations

import logging
import math
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tekton_mlops.errors import DataError, MlopsError
from tekton_mlops.ml.search_space import SearchSpace

#: Metrics where lower is better; every other metric is maximized.
MINIMIZED = frozenset({"mae", "mse", "rmse"})
DEFAULT_METRIC = {"classification": "accuracy", "regression": "r2"}
RUNGS = 4
CONFIG_ATTR = "tekton-mlops:config"

log = logging.getLogger("tekton_mlops.tune-model")


@dataclass(frozen=True)
class StudyConfig:
    """What defines a study: workers joining it must agree on every field."""

    estimator: str
    metric: str
    direction: str
    space: dict[str, Any]
    cv_folds: int
    sampler: str
    pruner: str
    seed: int
    dataset_uri: str
    dataset_digest: str


@dataclass(frozen=True)
class WorkerTask:
    """Everything a worker process needs; picklable, so a spawned process gets it whole."""

    data: str
    data_digest: str
    target_column: str
    space: SearchSpace
    config: StudyConfig
    storage_url: str
    study_name: str
    n_trials: int
    deadline: float | None  # time.time() after which no trial starts
    seed_offset: int  # distinct per worker: the same seed would draw the same trials


def direction(metric: str) -> str:
    return "minimize" if metric in MINIMIZED else "maximize"


def quiet_optuna() -> None:
    """Optuna logs every trial with a timestamp and failures with tracebacks; the step
    logs one line per trial itself."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)


def sampler_for(kind: str, space: SearchSpace, seed: int, budget: int = 100) -> Any:
    import optuna

    if kind == "grid":
        return optuna.samplers.GridSampler(space.grid(), seed=seed)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # TPE starts from random trials before it models anything: Optuna's 10 are a fifth of a
    # 50-trial budget, the budgets a pipeline step runs. A tenth of the budget (4 to 10)
    # starts it sooner: on benchmarks/bench_tune.py's 48-point spaces TPE then reaches the
    # grid's best in 9 and 15 trials instead of 18 and 20.
    startup = max(4, min(10, budget // 10))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)


def pruner_for(kind: str) -> Any:
    import optuna

    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    return optuna.pruners.NopPruner()


def incremental(estimator: str) -> bool:
    """Whether trials of this estimator report rungs a pruner can stop."""
    from tekton_mlops.ml import estimators

    model = estimators.final_estimator(estimators.build(estimator, {}, 0))
    params = model.get_params()
    return "warm_start" in params and "n_estimators" in params


def open_study(storage: Any, name: str, config: StudyConfig, sampler: Any, pruner: Any) -> Any:
    """Create the study or join it; a study made for another search is refused."""
    import optuna

    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction=optuna.study.StudyDirection[config.direction.upper()],
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    wanted = asdict(config)
    found = study.user_attrs.get(CONFIG_ATTR)
    if found is None:
        study.set_user_attr(CONFIG_ATTR, wanted)
    elif found != wanted:
        differing = sorted(k for k in wanted if found.get(k) != wanted[k])
        raise MlopsError(
            f"study {name!r} was made for another search (differs in {', '.join(differing)}); "
            "use a new study-name"
        )
    return study


def load_study(storage: Any, name: str) -> Any:
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise MlopsError(f"no study {name!r} in the storage") from None


def study_config(study: Any) -> StudyConfig:
    found = study.user_attrs.get(CONFIG_ATTR)
    if not isinstance(found, dict):
        raise MlopsError(f"study {study.study_name!r} was not made by tune-model")
    return StudyConfig(**found)


def folds(target: Any, k: int, seed: int, classifier: bool) -> list[tuple[Any, Any]]:
    """The k train/validation index pairs every trial uses."""
    import numpy as np
    from sklearn.model_selection import KFold, StratifiedKFold

    if len(target) < 2 * k:
        raise DataError(f"{len(target)} rows are too few for {k}-fold cross-validation")
    if classifier:
        labels, counts = np.unique(target, return_counts=True)
        if len(labels) < 2:
            raise DataError("the target has a single class")
        if counts.min() < k:
            rare = labels[counts.argmin()]
            raise DataError(
                f"class {rare!r} has {counts.min()} rows, fewer than the {k} folds "
                "(each fold needs one); lower cv-folds"
            )
        splitter: Any = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    else:
        splitter = KFold(n_splits=k, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(target)), target))


def _score(model: Any, x: Any, y: Any, metric: str, classifier: bool) -> float:
    from tekton_mlops.ml import metrics

    if classifier:
        # Metrics of the classes the whole dataset has, as evaluate-model computes them.
        found = metrics.classification(y, model.predict(x), model.predict_proba(x), model.classes_)
    else:
        found = metrics.regression(y, model.predict(x))
    return float(found[metric])


class Objective:
    """Cross-validated score of one trial's hyper-parameters."""

    def __init__(self, task: WorkerTask, table: Any, classifier: bool, prune: bool):
        self.task = task
        self.x, self.y, self.plan = table.features, table.target, table.plan
        self.classifier = classifier
        self.prune = prune
        self.splits = folds(self.y, task.config.cv_folds, task.config.seed, classifier)
        self.ran = 0

    def __call__(self, trial: Any) -> float:
        import optuna
        from sklearn.exceptions import ConvergenceWarning

        self.ran += 1
        params = self.task.space.suggest(trial)
        started = time.monotonic()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            try:
                value = self._rungs(trial, params) if self.prune else self._plain(params)
            except optuna.TrialPruned:
                log.info("trial %d pruned %s", trial.number, _shown(params))
                raise
            except ValueError as exc:
                # Optuna records a NaN score as a failed trial; the study goes on.
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else "ValueError"
                log.info("trial %d failed %s: %s", trial.number, _shown(params), first)
                return math.nan
        if any(issubclass(w.category, ConvergenceWarning) for w in caught):
            log.info("trial %d: the estimator did not converge on some folds", trial.number)
        log.info(
            "trial %d %s=%.6g %s (%.1f s)",
            trial.number,
            self.task.config.metric,
            value,
            _shown(params),
            time.monotonic() - started,
        )
        return value

    def _fold_score(self, model: Any, fold: tuple[Any, Any]) -> float:
        train, test = fold
        return _score(model, self.x[test], self.y[test], self.task.config.metric, self.classifier)

    def _model(self, params: dict[str, Any]) -> Any:
        """The pipeline train-model would fit with these hyper-parameters."""
        from tekton_mlops.ml import preprocessing

        config = self.task.config
        return preprocessing.build(self.plan, config.estimator, params, config.seed)

    def _plain(self, params: dict[str, Any]) -> float:
        scores = []
        for train, test in self.splits:
            model = self._model(params)
            model.fit(self.x[train], self.y[train])
            scores.append(self._fold_score(model, (train, test)))
        return _mean(scores)

    def _rungs(self, trial: Any, params: dict[str, Any]) -> float:
        import optuna

        from tekton_mlops.ml import estimators

        models = [self._model(params) for _ in self.splits]
        finals = [estimators.final_estimator(m) for m in models]
        total = int(finals[0].get_params()["n_estimators"])
        sizes = sorted({max(1, math.ceil(total * (r + 1) / RUNGS)) for r in range(RUNGS)})
        value = math.nan
        for step, size in enumerate(sizes):
            scores = []
            for model, final, (train, test) in zip(models, finals, self.splits, strict=True):
                final.set_params(warm_start=True, n_estimators=size)
                model.fit(self.x[train], self.y[train])
                scores.append(self._fold_score(model, (train, test)))
            value = _mean(scores)
            trial.report(value, step)
            if step < len(sizes) - 1 and trial.should_prune():
                raise optuna.TrialPruned()
        return value


def _mean(scores: list[float]) -> float:
    # Rounded as the fold metrics are (6 digits), so 0.954321 is not 0.9543209999999999.
    return round(sum(scores) / len(scores), 9)


def _shown(params: dict[str, Any]) -> str:
    import json

    return json.dumps(params, sort_keys=True)


@dataclass(frozen=True)
class TrainingTable:
    """What a worker scores trials on: the rows as scikit-learn takes them, and the
    preprocessing train-model would put in front of the estimator for this table."""

    features: Any
    target: Any
    plan: Any  # preprocessing.Plan


def read_table(task: WorkerTask, classifier: bool) -> TrainingTable:
    """The dataset as train-model reads it: categorical columns and missing values are
    encoded and imputed inside each trial's pipeline, as they will be inside the model."""
    from tekton_mlops.ml import columns, preprocessing, tabular

    source = tabular.locate(task.data, task.data_digest)
    if f"sha256:{source.digest}" != task.config.dataset_digest:
        raise DataError(f"{task.data}: changed while the search ran (sha256:{source.digest})")
    frame = columns.read_frame(source.csv, task.target_column, numeric_target=not classifier)
    return TrainingTable(frame.matrix(), frame.target, preprocessing.plan_for(frame))


def run_worker(task: WorkerTask) -> int:
    """Run trials of the shared study until a budget is spent; return how many it ran."""
    import optuna

    from tekton_mlops.ml import estimators, study_storage

    quiet_optuna()
    config = task.config
    classifier = estimators.ESTIMATORS[config.estimator].task == "classification"
    objective = Objective(
        task,
        read_table(task, classifier),
        classifier,
        prune=config.pruner == "median" and incremental(config.estimator),
    )
    storage = study_storage.connect(task.storage_url, task.n_trials)
    study = open_study(
        storage,
        task.study_name,
        config,
        sampler_for(config.sampler, task.space, config.seed + task.seed_offset, task.n_trials),
        pruner_for(config.pruner),
    )
    timeout = None if task.deadline is None else max(0.0, task.deadline - time.time())
    if timeout == 0.0:
        return 0
    try:
        study.optimize(objective, n_trials=task.n_trials, timeout=timeout, gc_after_trial=False)
    except study_storage.TrialBudgetSpent:
        pass  # the other workers ran the rest of the budget
    except optuna.exceptions.StorageInternalError as exc:
        raise MlopsError(f"the study storage failed: {exc.__cause__ or exc}") from None
    return objective.ran


def _configure_child_logging(prefix: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"tune-model: {prefix}%(message)s"))
    root = logging.getLogger("tekton_mlops")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False


def _child(task: WorkerTask) -> int:
    """A worker in a process of its own (spawned: imports are fresh, no lock is inherited)."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    _configure_child_logging(f"process {task.seed_offset}: ")
    # One CPU per worker: BLAS or OpenMP threads in every process would oversubscribe them.
    with threadpool_limits(limits=1):
        return run_worker(task)


def run_parallel(tasks: Sequence[WorkerTask]) -> list[int]:
    """Run the tasks together: the first here, each other one in a process of its own.

    This process has its libraries loaded and starts trials at once, while the others
    import theirs. A failure here stops them all; theirs surfaces when this one is done.
    """
    import multiprocessing

    from threadpoolctl import threadpool_limits

    if len(tasks) == 1:
        return [run_worker(tasks[0])]
    context = multiprocessing.get_context("spawn")
    with context.Pool(len(tasks) - 1) as pool:  # leaving the block terminates every process
        others = pool.map_async(_child, tasks[1:], chunksize=1)
        with threadpool_limits(limits=1):
            here = run_worker(tasks[0])
        return [here, *others.get()]
