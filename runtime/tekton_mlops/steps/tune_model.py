"""tune-model: an Optuna search of an estimator's hyper-parameters, in one pod or many.

Roles: ``all`` runs the search with ``workers`` processes on one study (a SQLite
file in the output unless a storage is named) and writes the report;
``worker`` only runs trials against a shared storage, in as many pods as a
Pipeline fans out; ``summarize`` reads that study and writes the report.

The study holds ``n-trials`` trials that ran to an end: a trial whose worker died
(killed, out of memory) fails stale once its heartbeat is older than the grace
period, is left out of the report and is run again (see ``ml/study_storage.py``;
``TEKTON_MLOPS_TUNE_HEARTBEAT`` and ``TEKTON_MLOPS_TUNE_GRACE`` set the heartbeat).
A worker pod, or a pod whose worker process died, waits up to the grace period
for such a trial before it ends; summarize waits so for a trial still RUNNING.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tekton_mlops.contract import StepContext
from tekton_mlops.digests import as_digest, build_manifest, write_manifest
from tekton_mlops.errors import DataError, MlopsError, ParameterError, Violation
from tekton_mlops.lineage import Artifact
from tekton_mlops.results import ResultValue
from tekton_mlops.storage.publish import check_destination, staged_directory

BEST_PARAMS_FILE = "best-params.json"
SUMMARY_FILE = "summary.json"
HISTORY_PLOT = "plots/optimization-history.png"
IMPORTANCE_PLOT = "plots/param-importance.png"
DEFAULT_STUDY = "tune-model"


@dataclass(frozen=True)
class Params:
    data: str
    target_column: str
    output: str
    estimator: str
    search_space: dict[str, Any]
    sampler: str
    pruner: str
    metric: str
    cv_folds: int
    n_trials: int
    timeout: int
    workers: int
    seed: int
    storage: str
    study_name: str
    role: str
    worker_index: int
    data_digest: str
    overwrite: bool
    mlflow_tracking_uri: str
    mlflow_experiment: str


def _checked_space(params: Params) -> Any:
    """The search space, or exit 2 naming each problem, before anything is read or written."""
    from tekton_mlops.ml import search_space, study_storage

    space, violations = search_space.parse(params.estimator, params.search_space)
    if space is not None and params.sampler == "grid":
        violations += space.grid_problems()
    if params.role != "worker" and not params.output:
        violations.append(Violation("output", "", "is required unless role is worker"))
    if params.role != "all" and not params.study_name:
        violations.append(
            Violation("study-name", "", "is required for a shared study (role worker, summarize)")
        )
    if study_storage.has_password(params.storage):
        violations.append(
            Violation(
                "storage",
                study_storage.redact(params.storage),
                "must not carry a password: put the URL in the optuna-storage Secret "
                "or OPTUNA_STORAGE",
            )
        )
    if violations:
        raise ParameterError("tune-model", violations)
    return space


def _storage_url(params: Params, stage: Path | None) -> str:
    from tekton_mlops.ml import study_storage

    url, _origin = study_storage.resolve(params.storage, stage)
    if not url:
        raise ParameterError(
            "tune-model",
            [
                Violation(
                    "storage",
                    "",
                    f"role {params.role} needs a shared storage: the storage param, "
                    f"{study_storage.ENV_URL}, the optuna-storage workspace or the study workspace",
                )
            ],
        )
    return url


def run(params: Params, ctx: StepContext) -> dict[str, ResultValue]:
    from tekton_mlops.ml import estimators, tuning

    space = _checked_space(params)
    output = Path(params.output) if params.output else None
    if output is not None:
        check_destination(output, params.overwrite)
    spec = estimators.ESTIMATORS[params.estimator]
    metric = params.metric or tuning.DEFAULT_METRIC[spec.task]
    if params.role == "summarize":
        url = _storage_url(params, None)
        assert output is not None
        with _tracked(params, ctx) as tracked:
            results = _summarize(params, ctx, url, output, space.to_json())
            _log_study(tracked, output)
        return {**results, "mlflow-run-id": tracked.run_id}

    # The other worker processes start now: they import their libraries (a second or
    # more) while this one reads the data and prepares the study, instead of after.
    with tuning.worker_processes(params.workers - 1) as spare:
        return _search(params, ctx, space, output, metric, spare)


def _search(
    params: Params,
    ctx: StepContext,
    space: Any,
    output: Path | None,
    metric: str,
    spare: list[Any],
) -> dict[str, ResultValue]:
    """Roles all and worker: run the trials, in this process and the ``spare`` ones."""
    from tekton_mlops.ml import columns, estimators, study_storage, tabular, tuning

    spec = estimators.ESTIMATORS[params.estimator]
    source = tabular.locate(params.data, params.data_digest)
    # Read and split once here, so unusable data fails before a study or a file exists.
    table = columns.read_frame(
        source.csv, params.target_column, numeric_target=spec.task == "regression"
    )
    tuning.folds(table.target, params.cv_folds, params.seed, spec.task == "classification")
    config = tuning.StudyConfig(
        estimator=params.estimator,
        metric=metric,
        direction=tuning.direction(metric),
        space=space.to_json(),
        cv_folds=params.cv_folds,
        sampler=params.sampler,
        pruner=params.pruner,
        seed=params.seed,
        dataset_uri=source.uri,
        dataset_digest=as_digest(source.digest),
    )
    if params.pruner == "median" and not tuning.incremental(params.estimator):
        ctx.log.info("%s trains in one go: the median pruner has no effect", params.estimator)
    size = space.size()  # counted, not listed: a space may have thousands of points
    if params.sampler != "grid" and size is not None and size < params.n_trials:
        ctx.log.info(
            "the search space has %d points: trials past the %dth repeat points (and their "
            "scores); the grid sampler stops when every point is tried",
            size,
            size,
        )
    deadline = time.time() + params.timeout if params.timeout else None

    def tasks(url: str, name: str) -> list[tuning.WorkerTask]:
        return [
            tuning.WorkerTask(
                data=params.data,
                # The user's pin: each worker verifies the data itself, and a worker
                # whose data differs is refused by the study (its config names the digest).
                data_digest=params.data_digest,
                target_column=params.target_column,
                space=space,
                config=config,
                storage_url=url,
                study_name=name,
                n_trials=params.n_trials,
                deadline=deadline,
                seed_offset=params.worker_index * params.workers + i,
            )
            for i in range(params.workers)
        ]

    if params.role == "worker":
        url = _storage_url(params, None)
        ctx.log.info(
            "worker %d: %d process(es) on study %r in %s",
            params.worker_index,
            params.workers,
            params.study_name,
            study_storage.redact(url),
        )
        _prepare(url, params.study_name, params.n_trials, config, space)
        # Other pods share the study: one of them may die mid-trial.
        ran = sum(tuning.run_search(tasks(url, params.study_name), spare, wait_for_others=True))
        with study_storage.connect(url) as store:
            best = _best(tuning.load_study(store, params.study_name))
        ctx.log.info("worker %d ran %d trial(s)", params.worker_index, ran)
        return {
            "best-params": _compact(best.params) if best else "{}",
            "best-score": repr(best.value) if best else "",
            "trial-count": str(ran),
            "trials-digest": "",
            "mlflow-run-id": "",  # the summarize role tracks the study, once
        }

    assert output is not None
    name = params.study_name or DEFAULT_STUDY
    with _tracked(params, ctx) as tracked:
        results = _tune(params, ctx, output, name, config, space, tasks, spare)
        _log_study(tracked, output)
    return {**results, "mlflow-run-id": tracked.run_id}


def _tune(
    params: Params,
    ctx: StepContext,
    output: Path,
    name: str,
    config: Any,
    space: Any,
    tasks: Callable[[str, str], list[Any]],
    spare: list[Any],
) -> dict[str, ResultValue]:
    from tekton_mlops.ml import study_storage, tuning

    with staged_directory(output, overwrite=params.overwrite) as stage:
        url = _storage_url(params, stage)
        ctx.log.info(
            "tuning %s on %s: %s sampler, %d-fold cv, %s (%s), %d trial(s), %d process(es)",
            params.estimator,
            config.dataset_uri,
            params.sampler,
            params.cv_folds,
            config.metric,
            config.direction,
            params.n_trials,
            params.workers,
        )
        _prepare(url, name, params.n_trials, config, space)
        tuning.run_search(tasks(url, name), spare, wait_for_others=False)
        with study_storage.connect(url) as store:
            return _report(params, ctx, store, tuning.load_study(store, name), output, stage)


def _tracked(params: Params, ctx: StepContext) -> AbstractContextManager[Any]:
    """The MLflow run of the search (a no-op without a tracking URI)."""
    from tekton_mlops import tracking

    return tracking.run_for(
        params.mlflow_tracking_uri, params.mlflow_experiment, step="tune-model", params=ctx.params
    )


def _log_study(tracked: Any, output: Path) -> None:
    """The search as MLflow shows searches: the best trial on the parent run, each trial a
    child run. Read back from the report just written, so what MLflow holds is what the
    report's manifest pins."""
    if not tracked.active:
        return
    from tekton_mlops import tracking
    from tekton_mlops.ml import tuning_report

    summary = json.loads((output / SUMMARY_FILE).read_text())
    tracked.set_tags(
        {
            tracking.DATASET_URI: summary["dataset"]["uri"],
            tracking.DATASET_DIGEST: summary["dataset"]["digest"],
            "tekton-mlops.study": summary["study"],
        }
    )
    tracked.log_params(
        {
            "estimator": summary["estimator"],
            "sampler": summary["sampler"],
            "pruner": summary["pruner"],
            "cv_folds": summary["cv_folds"],
            "seed": summary["seed"],
            "search_space": summary["search_space"],
            **{f"best.{k}": v for k, v in summary["best"]["params"].items()},
        }
    )
    metric = summary["metric"]
    tracked.log_metrics(
        {f"best_{metric}": summary["best"]["score"], "trials": sum(summary["trials"].values())}
    )
    for row in tuning_report.read_trials_csv(output / tuning_report.TRIALS_FILE):
        with tracked.child(f"trial-{row.number}", {"tekton-mlops.trial.state": row.state}) as trial:
            trial.log_params(row.params)
            trial.log_metrics(
                {
                    **({metric: row.value} if row.value is not None else {}),
                    **({"duration_s": row.duration} if row.duration is not None else {}),
                }
            )
    tracked.log_artifacts(output, "tuning")


def _prepare(url: str, name: str, n_trials: int, config: Any, space: Any) -> None:
    """Create the study, its budget (and the schema) once, before workers race to do it."""
    from tekton_mlops.ml import study_storage, tuning

    tuning.quiet_optuna()
    with study_storage.connect(url) as store:  # the workers open their own connections
        tuning.open_study(
            store,
            name,
            config,
            tuning.sampler_for(
                config.sampler, space, config.seed, tuning.trial_budget(config, space, n_trials)
            ),
            tuning.pruner_for(config.pruner),
        )


def _best(study: Any) -> Any:
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not complete:
        return None
    return study.best_trial


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _summarize(
    params: Params, ctx: StepContext, url: str, output: Path, space: dict[str, Any]
) -> dict[str, ResultValue]:
    from tekton_mlops.ml import study_storage, tuning

    tuning.quiet_optuna()
    with study_storage.connect(url) as store:
        return _summarize_study(params, ctx, store, output, space)


def _summarize_study(
    params: Params, ctx: StepContext, store: Any, output: Path, space: dict[str, Any]
) -> dict[str, ResultValue]:
    from tekton_mlops.ml import study_storage, tabular, tuning

    study = tuning.load_study(store, params.study_name)
    config = tuning.study_config(study)
    if (config.estimator, config.space) != (params.estimator, space):
        raise MlopsError(
            f"study {params.study_name!r} searched {config.estimator} over "
            f"{json.dumps(config.space, sort_keys=True)[:200]}, not these params' search"
        )
    source = tabular.locate(params.data, params.data_digest)
    if as_digest(source.digest) != config.dataset_digest:
        raise DataError(
            f"{params.data}: dataset {as_digest(source.digest)} is not the one study "
            f"{params.study_name!r} was tuned on ({config.dataset_digest})"
        )
    # The workers are done (the Pipeline runs this after them): a trial still RUNNING
    # lost its worker, and fails stale once its heartbeat is older than the grace period.
    running = study_storage.settle(study, store.heartbeat)
    if running:
        ctx.log.warning("%d trial(s) still running: the report shows them so", running)
    with staged_directory(output, overwrite=params.overwrite) as stage:
        return _report(params, ctx, store, study, output, stage)


def _report(
    params: Params, ctx: StepContext, store: Any, study: Any, output: Path, stage: Path
) -> dict[str, ResultValue]:
    """Write the report into the stage; the results name the best trial. Trials that
    failed stale (their worker died; see study_storage) are left out and listed."""
    from tekton_mlops.ml import study_storage, tuning, tuning_report

    study_storage.fail_stale(study)
    config = tuning.study_config(study)
    stale = store.ledger.stale(study.study_name)
    table = tuning_report.rows(study, leave_out=set(stale))
    finished = [r for r in table if r.state in ("COMPLETE", "PRUNED", "FAIL")]
    best = _best(study)
    if best is None:
        raise MlopsError(
            f"no trial of {len(finished)} completed (see the failed trials above); "
            "nothing was written"
        )
    counts = {s: sum(1 for r in table if r.state == s) for s in sorted({r.state for r in table})}
    ctx.log.info(
        "study %r: %s%s; best trial %d: %s=%s %s",
        study.study_name,
        ", ".join(f"{n} {s.lower()}" for s, n in counts.items()),
        f" ({len(stale)} more failed stale, left out: {_compact(stale)})" if stale else "",
        best.number,
        config.metric,
        repr(best.value),
        _compact(best.params),
    )
    importance = tuning_report.importances(study, config.seed)
    (stage / tuning_report.TRIALS_FILE).write_text(tuning_report.trials_csv(table))
    (stage / BEST_PARAMS_FILE).write_text(json.dumps(best.params, indent=2, sort_keys=True) + "\n")
    summary = {
        "study": study.study_name,
        "dataset": {"uri": config.dataset_uri, "digest": config.dataset_digest},
        "estimator": config.estimator,
        "metric": config.metric,
        "direction": config.direction,
        "best": {"trial": best.number, "score": best.value, "params": best.params},
        "trials": counts,
        "failed_stale": stale,
        "search_space": config.space,
        "sampler": config.sampler,
        "pruner": config.pruner,
        "cv_folds": config.cv_folds,
        "seed": config.seed,
        "importance": {"method": "fanova", "values": importance},
    }
    (stage / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    (stage / "plots").mkdir()
    tuning_report.plot_history(
        table, config.metric, config.direction == "minimize", stage / HISTORY_PLOT
    )
    tuning_report.plot_importance(importance, stage / IMPORTANCE_PLOT)

    manifest = build_manifest(stage)
    write_manifest(stage, manifest)
    trials_entry = manifest.entry(tuning_report.TRIALS_FILE)
    assert trials_entry is not None
    ctx.write_lineage(
        stage,
        inputs=[Artifact("dataset", config.dataset_uri, config.dataset_digest.split(":")[-1])],
        outputs=[
            Artifact(
                "trials",
                (output / tuning_report.TRIALS_FILE).resolve().as_uri(),
                trials_entry.sha256,
            ),
            Artifact("tuning-dir", output.resolve().as_uri(), manifest.root_hex),
        ],
    )
    ctx.log.info("wrote %s (%s)", output, manifest.root)
    return {
        "best-params": _compact(best.params),
        "best-score": repr(best.value),
        "trial-count": str(len(finished)),
        "trials-digest": as_digest(trials_entry.sha256),
    }
