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

Every worker is the same function: it opens the shared study and runs trials,
one ticket of the study's budget each (see :mod:`study_storage`), until the
tickets or its wall-time deadline are spent. A grid's budget is at most its
number of points, so a grid is walked once. Processes run several workers in one
pod; pods run their own against a shared database. A worker process that dies
(killed, out of memory) leaves a RUNNING trial: the pod waits for it to fail
stale and runs the trial it owed itself.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from tekton_mlops.errors import DataError, MlopsError
from tekton_mlops.ml.search_space import SearchSpace

#: Metrics where lower is better; every other metric is maximized.
MINIMIZED = frozenset({"mae", "mse", "rmse"})
DEFAULT_METRIC = {"classification": "accuracy", "regression": "r2"}
RUNGS = 4
CONFIG_ATTR = "tekton-mlops:config"
#: Added to a worker's seed offset when it runs again after a death: another stream of draws.
RERUN_OFFSET = 7919

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
    """The study's sampler. TPE and random search over a finite space try each point once
    (see :func:`untried_sampler`)."""
    import optuna

    if kind == "grid":
        return optuna.samplers.GridSampler(space.grid(), seed=seed)
    if kind == "random":
        base: Any = optuna.samplers.RandomSampler(seed=seed)
    else:
        # TPE starts from random trials before it models anything: Optuna's 10 are a fifth
        # of a 50-trial budget, the budgets a pipeline step runs. A tenth of the budget (4 to
        # 10) starts it sooner: on benchmarks/bench_tune.py's 48- and 64-point spaces, over
        # 200 seeds, TPE needs a tenth fewer trials to reach the grid's best with 4 to 6
        # start-up trials than with 10.
        startup = max(4, min(10, budget // 10))
        base = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    points = space.points()
    if points is None:
        return base
    return untried_sampler(base, space, points, seed)


def untried_sampler(base: Any, space: SearchSpace, points: list[dict[str, Any]], seed: int) -> Any:
    """``base`` over a finite space, never proposing a point a trial of the study already
    has (finished, running in another worker, or waiting to be retried) while one is left.

    A trial's score is a function of its point (the same folds, the same estimator seed),
    so a repeat is a trial wasted: TPE repeated 3 to 5 of its first 20 trials, on average,
    on the 48- and 64-point spaces of benchmarks/bench_tune.py; random search more. When
    the base sampler proposes a point already tried, the untried point nearest to it is
    drawn instead (:meth:`SearchSpace.distance`, ties drawn at random): TPE's preference
    is kept, the repeat is not. Random search and TPE's random start-up draw uniformly
    among the untried points. Once every point is tried, the base sampler's proposal
    stands. Public Optuna interfaces only: the proposal is a relative sample over the
    whole space, which Optuna's Trial uses for every suggest.
    """
    return _untried_class()(base, space, points, seed)


@functools.cache
def _untried_class() -> type:
    import random

    import optuna

    from tekton_mlops.ml.search_space import point_key

    class UntriedSampler(optuna.samplers.BaseSampler):
        def __init__(
            self, base: Any, space: SearchSpace, points: list[dict[str, Any]], seed: int
        ) -> None:
            self._base = base
            self._space = space
            self._points = points
            self._keys = [point_key(p) for p in points]
            self._names = sorted(points[0])
            every = space.distributions()
            self._distributions = {name: every[name] for name in self._names}
            self._rng = random.Random(seed)

        def _key(self, params: dict[str, Any]) -> str | None:
            if not all(name in params for name in self._names):
                return None  # a trial still drawing its point
            return point_key({name: params[name] for name in self._names})

        def reseed_rng(self) -> None:
            self._base.reseed_rng()
            self._rng.seed()

        def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
            return dict(self._distributions)

        def sample_relative(
            self, study: Any, trial: Any, search_space: dict[str, Any]
        ) -> dict[str, Any]:
            if not search_space:
                return {}
            tried = set()
            for other in study.get_trials(deepcopy=False):
                params = other.params or other.system_attrs.get("fixed_params") or {}
                if other.number != trial.number and (key := self._key(params)):
                    tried.add(key)
            proposal = self._base.sample_relative(study, trial, search_space)
            key = self._key(proposal)
            if key is not None and key not in tried:
                return dict(proposal)
            free = [i for i, k in enumerate(self._keys) if k not in tried]
            if not free:
                return dict(proposal)  # every point tried: a repeat, or the base's own draw
            if key is not None:
                distances = [self._space.distance(proposal, self._points[i]) for i in free]
                closest = min(distances)
                free = [i for i, d in zip(free, distances, strict=True) if d == closest]
            return dict(self._points[self._rng.choice(free)])

        def sample_independent(
            self, study: Any, trial: Any, param_name: str, param_distribution: Any
        ) -> Any:
            return self._base.sample_independent(study, trial, param_name, param_distribution)

        def before_trial(self, study: Any, trial: Any) -> None:
            self._base.before_trial(study, trial)

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            self._base.after_trial(study, trial, state, values)

    return UntriedSampler


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


def trial_budget(config: StudyConfig, space: SearchSpace, n_trials: int) -> int:
    """The study's tickets: n-trials, or a grid's number of points when it has fewer."""
    size = space.size()
    if config.sampler == "grid" and size is not None:
        return min(n_trials, size)
    return n_trials


def open_study(store: Any, name: str, config: StudyConfig, sampler: Any, pruner: Any) -> Any:
    """Create the study or join it; a study made for another search is refused."""
    import optuna

    study = optuna.create_study(
        storage=store.storage,
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
    study_id = store.storage.get_study_id_from_name(name)
    store.ledger.open(name, study_id, len(study.get_trials(deepcopy=False)))
    return study


def load_study(store: Any, name: str) -> Any:
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=store.storage)
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
        self.number: int | None = None  # the trial being run

    def __call__(self, trial: Any) -> float:
        import optuna
        from sklearn.exceptions import ConvergenceWarning

        self.ran += 1
        self.number = trial.number
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
    """Run trials of the shared study, a ticket each, until the tickets or the time are
    spent; return how many it ran."""
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
    budget = trial_budget(config, task.space, task.n_trials)
    store = study_storage.connect(task.storage_url)
    try:
        study = open_study(
            store,
            task.study_name,
            config,
            sampler_for(config.sampler, task.space, config.seed + task.seed_offset, budget),
            pruner_for(config.pruner),
        )
        # A dead worker's trial, stale by now, gives its ticket back before this one counts.
        study_storage.fail_stale(study)
        while task.deadline is None or time.time() < task.deadline:
            if not store.ledger.take(task.study_name, budget):
                break  # the other workers run (or ran) the rest of the budget
            before = objective.ran
            try:
                # One trial per ticket; Optuna fails stale trials and beats the heart.
                study.optimize(objective, n_trials=1, gc_after_trial=False)
            except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
                number = objective.number if objective.ran > before else None
                if number is None or number not in store.ledger.stale(task.study_name):
                    raise
                # Its heartbeat was late (a stalled node, a lost connection) and another
                # worker failed it stale; its retry runs elsewhere.
                log.warning(
                    "trial %d was failed stale by another worker; its result is dropped", number
                )
    except optuna.exceptions.StorageInternalError as exc:
        raise MlopsError(f"the study storage failed: {exc.__cause__ or exc}") from None
    finally:
        store.close()
    return objective.ran


def run_search(
    tasks: Sequence[WorkerTask], spare: Sequence[Spare], wait_for_others: bool
) -> list[int]:
    """Run the tasks (:func:`run_parallel`); how many trials each ran.

    A worker process that died left its trial RUNNING: once no other worker here runs,
    wait for it to fail stale (the grace period), which gives its ticket back, and run
    what came back here. With ``wait_for_others`` (a worker pod among others), wait so
    for every RUNNING trial of the study: one may be another pod's that died.
    """
    from tekton_mlops.ml import study_storage

    ran, died = run_parallel(tasks, spare)
    for death in died:
        log.warning("%s; its trial fails stale and runs again", death)
    if not (died or wait_for_others):
        return ran
    first = tasks[0]
    with study_storage.connect(first.storage_url) as store:
        study = load_study(store, first.study_name)
        running = study_storage.settle(study, store.heartbeat)
        budget = trial_budget(first.config, first.space, first.n_trials)
        owed = store.ledger.taken(first.study_name) < budget
    if running:
        log.info("%d trial(s) still running in other workers", running)
    if owed and (first.deadline is None or time.time() < first.deadline):
        ran.append(run_worker(replace(first, seed_offset=first.seed_offset + RERUN_OFFSET)))
    return ran


def _configure_child_logging(prefix: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"tune-model: {prefix}%(message)s"))
    root = logging.getLogger("tekton_mlops")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False


@dataclass(frozen=True)
class Spare:
    """A worker process started ahead of its task, and its end of their pipe."""

    process: Any  # multiprocessing's SpawnProcess
    pipe: Any  # multiprocessing.connection.Connection: the task goes in, the outcome out


@contextlib.contextmanager
def worker_processes(count: int) -> Iterator[list[Spare]]:
    """``count`` worker processes, spawned now to import their libraries while the caller
    reads the data and prepares the study; each waits for its task (:func:`run_parallel`).
    Leaving the block stops every one still running."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    spare: list[Spare] = []
    try:
        for _ in range(count):
            here, there = context.Pipe()
            process = context.Process(target=_child, args=(there,), daemon=True)
            process.start()
            there.close()  # the child holds the only other end: its death ends the pipe
            spare.append(Spare(process, here))
        yield spare
    finally:
        for one in spare:
            if one.process.is_alive():
                one.process.terminate()
            one.process.join()
            one.pipe.close()


def _warm_up() -> None:
    """Import what a worker needs, ahead of its task (spawned: imports are fresh)."""
    import optuna  # noqa: F401
    import sklearn.ensemble  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    import sklearn.model_selection  # noqa: F401
    import sqlalchemy  # noqa: F401

    from tekton_mlops.ml import estimators, preprocessing  # noqa: F401


def _child(pipe: Any) -> None:
    """A worker in a process of its own: warm up, take the task, send back how many trials
    it ran, or its error."""
    import pickle

    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    _warm_up()
    try:
        task = pipe.recv()
    except EOFError:  # the step ended before it had a task for this process
        return
    _configure_child_logging(f"process {task.seed_offset}: ")
    outcome: tuple[str, Any]
    try:
        # One CPU per worker: BLAS or OpenMP threads in every process would oversubscribe them.
        with threadpool_limits(limits=1):
            outcome = ("ran", run_worker(task))
    except Exception as exc:  # noqa: BLE001 - raised again in the parent
        outcome = ("error", exc)
    try:
        pipe.send(outcome)
    except (pickle.PicklingError, TypeError, AttributeError):
        pipe.send(("error", MlopsError(f"{type(outcome[1]).__name__}: {outcome[1]}")))
    pipe.close()
    sys.stderr.flush()
    # Nothing is left to do: skip the interpreter's teardown (a few tenths of a second with
    # scikit-learn loaded), which the step would wait for.
    os._exit(0)


def _death(task: WorkerTask, exitcode: int | None) -> str:
    import signal

    if exitcode is not None and exitcode < 0:
        try:
            how = f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            how = f"killed by signal {-exitcode}"
    else:
        how = f"exited with code {exitcode} without a result"
    return f"worker process {task.seed_offset} {how}"


def run_parallel(
    tasks: Sequence[WorkerTask], spare: Sequence[Spare]
) -> tuple[list[int], list[str]]:
    """Run the tasks together: the first here, each other one in a ``spare`` process;
    how many trials each ran (those that finished), and the processes that died.

    A failure here stops them all (the caller leaves :func:`worker_processes`); theirs
    surfaces when this one is done. A process that dies (a signal, the OOM killer) is
    reported, not waited for forever.
    """
    from threadpoolctl import threadpool_limits

    if len(tasks) == 1:
        return [run_worker(tasks[0])], []
    others = list(zip(tasks[1:], spare, strict=True))
    for task, one in others:
        one.pipe.send(task)
    with threadpool_limits(limits=1):
        ran = [run_worker(tasks[0])]
    died: list[str] = []
    errors: list[BaseException] = []
    for task, one in others:
        try:
            kind, value = one.pipe.recv()
        except EOFError:
            kind, value = "died", None
        one.process.join()
        if kind == "ran":
            ran.append(value)
        elif kind == "error":
            errors.append(value)
        else:
            died.append(_death(task, one.process.exitcode))
    if errors:
        raise errors[0]
    return ran, died
