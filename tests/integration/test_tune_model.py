"""tune-model: Optuna searches on scikit-learn's bundled datasets, in one pod and across pods."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import itertools
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import CLI
from tests.integration.postgres import postgres_server

pytestmark = pytest.mark.integration

LOGISTIC_SPACE = {"C": {"low": 0.01, "high": 100, "log": True}, "max_iter": {"choices": [500]}}


def tune(run_step, data: Path, out: Path, space: dict, *extra: str):  # type: ignore[no-untyped-def]
    return run_step(
        "tune-model",
        f"--data={data}",
        "--target-column=target",
        f"--output={out}",
        f"--search-space={json.dumps(space)}",
        *extra,
    )


def summarize(
    command: list[str], tmp_path: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """The study's summarize role: report to tmp_path/report, results to tmp_path/rs."""
    return subprocess.run(
        [
            *command,
            "--role=summarize",
            f"--output={tmp_path}/report",
            f"--results-dir={tmp_path}/rs",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def read_trials(out: Path) -> list[dict[str, str]]:
    with (out / "trials.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize(
    ("space", "extra", "named", "rule"),
    [
        ({"gamma": {"low": 1, "high": 2}}, [], "--search-space['gamma']", "has no hyper-parameter"),
        ({"C": {"low": 0, "high": 1}}, [], "--search-space['C'].low=0.0", "not accepted"),
        (
            {"max_iter": {"low": 10, "high": 200000}},
            [],
            "--search-space['max_iter'].high=200000",
            "200000 is greater than the maximum of 100000",
        ),
        (
            {"n_estimators": {"low": 10, "high": 20.5}},
            ["--estimator=random-forest-classifier"],
            "--search-space['n_estimators'].high",
            "is an integer",
        ),
        (
            {"solver": {"choices": ["lbfgs", "adam"]}},
            [],
            "--search-space['solver'].choices[1]='adam'",
            "not accepted by logistic-regression",
        ),
        ({"C": {"low": 1, "high": 10}}, ["--sampler=grid"], "--search-space['C']", "needs a step"),
        ({"C": {"low": 0, "high": 1, "log": True}}, [], "--search-space['C'].low", "low > 0"),
        ({"C": {"low": 1, "high": 2}}, ["--metric=r2"], "--metric='r2'", "must be one of"),
        (
            {"C": {"low": 1, "high": 2}},
            ["--storage=postgresql://u:hunter2@db/optuna"],
            "--storage='postgresql://u:***@db/optuna'",
            "must not carry a password",
        ),
        ({"C": {"low": 1, "high": 2}}, ["--role=worker"], "--study-name=''", "is required"),
    ],
)
def test_invalid_search_exits_2_naming_the_field(  # type: ignore[no-untyped-def]
    run_step, datasets, tmp_path, space, extra, named, rule
) -> None:
    outcome = tune(run_step, datasets["iris"], tmp_path / "out", space, *extra)
    assert outcome.exit_code == 2, outcome.output
    line = next((x for x in outcome.output.splitlines() if named in x), None)
    assert line is not None, outcome.output
    assert rule in line
    assert "hunter2" not in outcome.output
    assert not (tmp_path / "out").exists()
    assert outcome.results == {}


def test_every_problem_is_reported_at_once(run_step, datasets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    space = {"gamma": {"low": 1, "high": 2}, "C": {"low": -1, "high": 1}, "tol": {"choices": []}}
    outcome = tune(run_step, datasets["iris"], tmp_path / "out", space, "--sampler=grid")
    assert outcome.exit_code == 2
    assert "3 invalid parameter(s)" in outcome.output
    for named in ("['gamma']", "['C'].low", "['tol'].choices"):
        assert f"--search-space{named}" in outcome.output


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_samplers_stay_inside_the_space(run_step, datasets, tmp_path, sampler) -> None:  # type: ignore[no-untyped-def]
    space = {
        "C": {"low": 0.05, "high": 20, "log": True},
        "max_iter": {"low": 200, "high": 400, "step": 100},
    }
    out = tmp_path / "out"
    outcome = tune(
        run_step,
        datasets["iris"],
        out,
        space,
        f"--sampler={sampler}",
        "--n-trials=5",
        "--cv-folds=3",
    )
    assert outcome.exit_code == 0, outcome.output
    rows = read_trials(out)
    assert [r["number"] for r in rows] == ["0", "1", "2", "3", "4"]
    for row in rows:
        params = json.loads(row["params"])
        assert 0.05 <= params["C"] <= 20
        assert params["max_iter"] in (200, 300, 400)
        assert 0.5 < float(row["value"]) <= 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sampler"] == sampler
    assert summary["best"]["score"] == max(float(r["value"]) for r in rows)
    assert json.loads(outcome.results["best-params"]) == summary["best"]["params"]
    assert outcome.results["trial-count"] == "5"


def test_grid_visits_every_point_once_and_stops(run_step, datasets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    space = {
        "C": {"low": 0.5, "high": 1.5, "step": 0.5},
        "fit_intercept": {"choices": [True, False]},
    }
    out = tmp_path / "out"
    outcome = tune(
        run_step, datasets["iris"], out, space, "--sampler=grid", "--n-trials=50", "--cv-folds=3"
    )
    assert outcome.exit_code == 0, outcome.output
    assert outcome.results["trial-count"] == "6"
    visited = sorted(
        (p["C"], p["fit_intercept"])
        for p in map(json.loads, (r["params"] for r in read_trials(out)))
    )
    assert visited == sorted(itertools.product([0.5, 1.0, 1.5], [True, False]))


@pytest.mark.parametrize("folds", [3, 7])
def test_score_is_the_stratified_k_fold_mean(run_step, datasets, tmp_path, folds) -> None:  # type: ignore[no-untyped-def]
    """The best score equals scikit-learn's own cross-validation of the best params."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    from tekton_mlops.ml.estimators import build

    out = tmp_path / "out"
    outcome = tune(
        run_step,
        datasets["iris"],
        out,
        LOGISTIC_SPACE,
        "--n-trials=2",
        f"--cv-folds={folds}",
        "--seed=3",
    )
    assert outcome.exit_code == 0, outcome.output
    table = np.genfromtxt(datasets["iris"], delimiter=",", skip_header=1)
    x, y = table[:, :-1], table[:, -1].astype(np.int64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=3)
    model = build("logistic-regression", json.loads(outcome.results["best-params"]), 3)
    expected = cross_val_score(model, x, y, cv=splitter, scoring="accuracy").mean()
    assert float(outcome.results["best-score"]) == pytest.approx(expected, abs=1e-6)
    assert json.loads((out / "summary.json").read_text())["cv_folds"] == folds


def test_folds_a_class_cannot_fill_fail_before_writing(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "d.csv"
    data.write_text("a,target\n" + "".join(f"{i},{'x' if i < 3 else 'y'}\n" for i in range(30)))
    outcome = tune(run_step, data, tmp_path / "out", LOGISTIC_SPACE, "--cv-folds=5")
    assert outcome.exit_code == 1
    assert "class 'x' has 3 rows, fewer than the 5 folds" in outcome.output
    assert not (tmp_path / "out").exists()


def test_budget_by_trials_and_by_time(run_step, datasets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    counted = tune(
        run_step, datasets["iris"], tmp_path / "n", LOGISTIC_SPACE, "--n-trials=3", "--cv-folds=3"
    )
    assert counted.exit_code == 0, counted.output
    assert len(read_trials(tmp_path / "n")) == 3

    started = time.monotonic()
    timed = tune(
        run_step,
        datasets["iris"],
        tmp_path / "t",
        LOGISTIC_SPACE,
        "--n-trials=10000",
        "--timeout=2",
        "--cv-folds=3",
        "--sampler=random",
    )
    elapsed = time.monotonic() - started
    assert timed.exit_code == 0, timed.output
    ran = int(timed.results["trial-count"])
    assert 1 <= ran < 10000
    assert elapsed < 20  # 10000 trials would take many minutes: the deadline stopped them


def test_parallel_workers_share_one_budget(run_step, datasets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    outcome = tune(
        run_step,
        datasets["iris"],
        out,
        LOGISTIC_SPACE,
        "--n-trials=5",
        "--workers=2",
        "--cv-folds=3",
    )
    assert outcome.exit_code == 0, outcome.output
    numbers = sorted(int(r["number"]) for r in read_trials(out))
    assert numbers == list(range(5))


def test_one_worker_repeats_for_a_seed(run_step, datasets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    space = {
        "C": {"low": 0.01, "high": 100, "log": True},
        "tol": {"low": 1e-5, "high": 1e-2, "log": True},
    }

    def search(name: str, seed: int, trials: int) -> list[tuple[str, str, str, str]]:
        out = tmp_path / name
        outcome = tune(
            run_step,
            datasets["iris"],
            out,
            space,
            f"--n-trials={trials}",
            "--cv-folds=3",
            f"--seed={seed}",
        )
        assert outcome.exit_code == 0, outcome.output
        rows = [(r["number"], r["state"], r["value"], r["params"]) for r in read_trials(out)]
        assert outcome.results["best-params"] == json.dumps(
            json.loads((out / "best-params.json").read_text()), separators=(",", ":")
        )
        return rows

    # 11 trials: the last one is TPE's own, past its 10 random start-up trials.
    first = search("a", 5, 11)
    assert search("b", 5, 11) == first
    assert search("c", 6, 1)[0][3] != first[0][3]  # another seed, other draws


def test_best_params_train_a_model(run_step, datasets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    space = {
        "n_estimators": {"low": 10, "high": 30, "step": 10},
        "max_depth": {"choices": [3, None]},
    }
    out = tmp_path / "out"
    tuned = tune(
        run_step,
        datasets["cancer"],
        out,
        space,
        "--estimator=random-forest-classifier",
        "--n-trials=4",
        "--cv-folds=3",
        "--pruner=median",
    )
    assert tuned.exit_code == 0, tuned.output
    assert json.loads((out / "best-params.json").read_text()) == json.loads(
        tuned.results["best-params"]
    )
    trained = run_step(
        "train-model",
        f"--data={datasets['cancer']}",
        "--target-column=target",
        f"--output={tmp_path}/model",
        "--estimator=random-forest-classifier",
        f"--hyperparameters={tuned.results['best-params']}",
    )
    assert trained.exit_code == 0, trained.output
    metadata = json.loads((tmp_path / "model" / "metadata.json").read_text())
    assert metadata["hyperparameters"] == json.loads(tuned.results["best-params"])
    assert json.loads(trained.results["metrics"])["accuracy"] > 0.85


def test_median_pruner_sees_forests_grow(run_step, datasets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import optuna

    space = {"n_estimators": {"low": 8, "high": 24, "step": 8}}
    out = tmp_path / "out"
    outcome = tune(
        run_step,
        datasets["cancer"],
        out,
        space,
        "--estimator=random-forest-classifier",
        "--n-trials=7",
        "--cv-folds=3",
        "--pruner=median",
    )
    assert outcome.exit_code == 0, outcome.output
    study = optuna.load_study(study_name="tune-model", storage=f"sqlite:///{out / 'study.db'}")
    for trial in study.trials:
        steps = sorted(trial.intermediate_values)
        if trial.state.name == "COMPLETE":
            assert steps == [0, 1, 2, 3]  # a quarter, half, three quarters, all the trees
            assert trial.intermediate_values[3] == trial.value
        else:
            assert trial.state.name == "PRUNED"
            assert 0 < len(steps) < 4


def test_every_trial_failing_writes_nothing(run_step, datasets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # The exponential loss takes two classes; iris has three: every fit raises.
    space = {"loss": {"choices": ["exponential"]}, "n_estimators": {"low": 5, "high": 10}}
    outcome = tune(
        run_step,
        datasets["iris"],
        tmp_path / "out",
        space,
        "--estimator=gradient-boosting-classifier",
        "--n-trials=2",
        "--cv-folds=3",
    )
    assert outcome.exit_code == 1
    assert "trial 0 failed" in outcome.output
    assert "error: no trial of 2 completed" in outcome.output
    assert "Traceback" not in outcome.output
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.glob(".out.partial-*")) == []


def test_tampered_data_fails_before_any_trial(run_step, datasets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    outcome = tune(
        run_step, datasets["iris"], tmp_path / "out", LOGISTIC_SPACE, f"--data-digest={'b' * 64}"
    )
    assert outcome.exit_code == 1
    assert "does not match the pinned" in outcome.output
    assert "trial 0" not in outcome.output
    assert not (tmp_path / "out").exists()


def test_lineage_names_data_space_and_outputs(run_step, datasets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    outcome = tune(
        run_step,
        datasets["iris"],
        out,
        LOGISTIC_SPACE,
        "--n-trials=2",
        "--cv-folds=3",
        "--sampler=random",
    )
    assert outcome.exit_code == 0, outcome.output
    record = json.loads((out / ".mlops/lineage/tune-model.intoto.json").read_text())
    build = record["predicate"]["buildDefinition"]
    data_sha = hashlib.sha256(datasets["iris"].read_bytes()).hexdigest()
    assert build["resolvedDependencies"][0]["digest"] == {"sha256": data_sha}
    assert build["externalParameters"]["params"]["search_space"] == LOGISTIC_SPACE
    assert build["externalParameters"]["params"]["sampler"] == "random"
    subjects = {s["name"]: s["digest"]["sha256"] for s in record["subject"]}
    trials_sha = hashlib.sha256((out / "trials.csv").read_bytes()).hexdigest()
    assert subjects["trials"] == trials_sha
    assert outcome.results["trials-digest"] == f"sha256:{trials_sha}"
    manifest = json.loads((out / ".mlops/manifest.json").read_text())
    assert {f["path"] for f in manifest["files"]} >= {
        "trials.csv",
        "best-params.json",
        "summary.json",
        "study.db",
        "plots/optimization-history.png",
        "plots/param-importance.png",
    }
    for name in ("plots/optimization-history.png", "plots/param-importance.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_worker_role_needs_a_shared_storage(run_step, datasets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    outcome = tune(
        run_step,
        datasets["iris"],
        tmp_path / "out",
        LOGISTIC_SPACE,
        "--role=worker",
        "--study-name=s",
    )
    assert outcome.exit_code == 2
    assert "--storage='': role worker needs a shared storage" in outcome.output


def test_four_pods_share_one_postgres_study(datasets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Four worker processes against one PostgreSQL study run exactly n-trials between them."""
    import optuna

    with postgres_server(tmp_path) as pg:
        url = pg.create_database("optuna")
        env = {**os.environ, "OPTUNA_STORAGE": url}  # the password travels as a Secret would
        common = [
            f"--data={datasets['iris']}",
            "--target-column=target",
            f"--search-space={json.dumps(LOGISTIC_SPACE)}",
            "--study-name=iris-search",
            "--n-trials=20",
            "--cv-folds=2",
        ]
        workers = [
            subprocess.Popen(
                [
                    CLI,
                    "tune-model",
                    *common,
                    "--role=worker",
                    f"--worker-index={i}",
                    f"--results-dir={tmp_path}/r{i}",
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for i in range(4)
        ]
        logs = [w.communicate(timeout=300)[0] for w in workers]
        assert [w.returncode for w in workers] == [0, 0, 0, 0], logs
        assert all(pg.password not in log for log in logs)
        ran = [int((tmp_path / f"r{i}" / "trial-count").read_text()) for i in range(4)]
        assert sum(ran) == 20

        study = optuna.load_study(study_name="iris-search", storage=url)
        numbers = sorted(t.number for t in study.trials)
        assert numbers == list(range(20))  # exactly the budget, no number twice
        assert {t.state.name for t in study.trials} == {"COMPLETE"}

        summary = summarize([CLI, "tune-model", *common], tmp_path, env)
        assert summary.returncode == 0, summary.stderr
        best = study.best_trial
        assert json.loads((tmp_path / "rs" / "best-params").read_text()) == best.params
        assert float((tmp_path / "rs" / "best-score").read_text()) == best.value
        assert (tmp_path / "rs" / "trial-count").read_text() == "20"
        assert len(read_trials(tmp_path / "report")) == 20
        assert not (tmp_path / "report" / "study.db").exists()


def test_a_table_with_categories_and_gaps_is_tuned_as_train_model_will_fit_it(  # type: ignore[no-untyped-def]
    run_step, tmp_path
) -> None:
    """Each trial scores the pipeline train-model exports (imputation and one-hot inside),
    so the best score equals scikit-learn's cross-validation of that pipeline."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    from tests.integration import test_categorical as mixed

    rows = mixed._cells(np.random.default_rng(11))
    data = mixed.write(tmp_path / "mixed.csv", rows)
    out = tmp_path / "out"
    outcome = tune(run_step, data, out, LOGISTIC_SPACE, "--n-trials=2", "--cv-folds=3", "--seed=3")
    assert outcome.exit_code == 0, outcome.output
    assert all(r["state"] == "COMPLETE" for r in read_trials(out))
    x, y = mixed.as_sklearn(rows, float32=False)
    best = json.loads(outcome.results["best-params"])
    model = mixed.reference("logistic-regression", best, "one-hot")
    model.named_steps["estimator"].set_params(random_state=3)
    splitter = StratifiedKFold(n_splits=3, shuffle=True, random_state=3)
    expected = cross_val_score(model, x, y, cv=splitter, scoring="accuracy").mean()
    assert float(outcome.results["best-score"]) == pytest.approx(expected, abs=1e-6)
    trained = run_step(
        "train-model",
        f"--data={data}",
        "--target-column=target",
        f"--output={tmp_path}/model",
        f"--hyperparameters={outcome.results['best-params']}",
    )
    assert trained.exit_code == 0, trained.output


def test_parallel_workers_walk_a_grid_once(run_step, datasets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The grid's size is the budget: a worker finishing while the other runs the last
    point does not start that point again."""
    space = {
        "C": {"choices": [0.1, 0.3, 1, 3, 10, 30]},
        "fit_intercept": {"choices": [True, False]},
    }
    out = tmp_path / "out"
    outcome = tune(
        run_step,
        datasets["iris"],
        out,
        space,
        "--sampler=grid",
        "--n-trials=50",
        "--workers=2",
        "--cv-folds=3",
    )
    assert outcome.exit_code == 0, outcome.output
    rows = read_trials(out)
    assert sorted(int(r["number"]) for r in rows) == list(range(12))
    visited = sorted((p["C"], p["fit_intercept"]) for p in (json.loads(r["params"]) for r in rows))
    assert visited == sorted(itertools.product([0.1, 0.3, 1, 3, 10, 30], [True, False]))


# Trials of a few seconds each: long enough to be killed in the middle of one.
SLOW_SPACE = {"n_estimators": {"choices": [400]}, "max_depth": {"low": 2, "high": 8}}
QUICK_HEARTBEAT = {"TEKTON_MLOPS_TUNE_HEARTBEAT": "1", "TEKTON_MLOPS_TUNE_GRACE": "3"}


def beating_trials(db: Path) -> int:
    """RUNNING trials that recorded a heartbeat, read from Optuna's tables in ``db``."""
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as found:
            (count,) = found.execute(
                "SELECT count(*) FROM trials JOIN trial_heartbeats USING (trial_id)"
                " WHERE trials.state = 'RUNNING'"
            ).fetchone()
    except sqlite3.Error:  # not made yet, or locked for a moment
        return 0
    return int(count)


def wait_until(done, process: subprocess.Popen, what: str) -> None:  # type: ignore[no-untyped-def,type-arg]
    deadline = time.monotonic() + 120
    while not done():
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, f"no {what} in 120 s"
        time.sleep(0.1)


def test_a_killed_workers_trial_fails_stale_and_the_study_still_runs_n_trials(  # type: ignore[no-untyped-def]
    datasets, tmp_path
) -> None:
    """A worker pod SIGKILLed mid-trial: the next worker fails its trial once the heartbeat
    is older than the grace period, gets its ticket back and runs its parameters again."""
    import optuna

    db = tmp_path / "study.db"
    env = {**os.environ, **QUICK_HEARTBEAT}
    common = [
        CLI,
        "tune-model",
        f"--data={datasets['cancer']}",
        "--target-column=target",
        "--estimator=random-forest-classifier",
        f"--search-space={json.dumps(SLOW_SPACE)}",
        f"--storage=sqlite:///{db}",
        "--study-name=s",
        "--n-trials=3",
        "--cv-folds=3",
    ]
    doomed = subprocess.Popen(
        [*common, "--role=worker", f"--results-dir={tmp_path}/r0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_until(lambda: beating_trials(db) == 1, doomed, "running trial")
    time.sleep(0.5)  # into its training (a trial takes seconds), past drawing its point
    doomed.kill()
    doomed.communicate()
    assert beating_trials(db) == 1  # left RUNNING by the dead worker

    after = subprocess.run(
        [*common, "--role=worker", "--worker-index=1", f"--results-dir={tmp_path}/r1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert after.returncode == 0, after.stderr
    assert "trial 0 failed stale" in after.stderr
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{db}")
    states = {t.number: t.state.name for t in study.trials}
    assert sorted(states.values()) == ["COMPLETE"] * 3 + ["FAIL"]
    assert states[0] == "FAIL"
    retried = [t for t in study.trials if t.user_attrs.get("tekton-mlops:retry-of") == 0]
    assert [t.params for t in retried] == [study.trials[0].params]  # its point, run again
    assert (tmp_path / "r1" / "trial-count").read_text() == "3"

    summary = summarize(common, tmp_path, env)
    assert summary.returncode == 0, summary.stderr
    assert "1 more failed stale" in summary.stderr
    assert (tmp_path / "rs" / "trial-count").read_text() == "3"
    report = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert report["failed_stale"] == [0]
    assert report["trials"] == {"COMPLETE": 3}
    rows = read_trials(tmp_path / "report")
    assert [r["state"] for r in rows] == ["COMPLETE"] * 3
    assert "0" not in [r["number"] for r in rows]


def _worker_processes(pid: int) -> list[int]:
    """The spawned worker processes of ``pid`` (not multiprocessing's resource tracker)."""
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        command = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        if b"spawn_main" in command:
            found.append(int(child))
    return found


def test_a_killed_worker_process_neither_hangs_the_step_nor_costs_a_trial(  # type: ignore[no-untyped-def]
    datasets, tmp_path
) -> None:
    """--workers=2 and the second process is SIGKILLed mid-trial (the OOM killer's way):
    the step goes on, fails that trial stale and runs it again itself."""
    out = tmp_path / "out"
    step = subprocess.Popen(
        [
            CLI,
            "tune-model",
            f"--data={datasets['cancer']}",
            "--target-column=target",
            "--estimator=random-forest-classifier",
            f"--search-space={json.dumps(SLOW_SPACE)}",
            "--sampler=random",
            "--n-trials=4",
            "--cv-folds=3",
            "--workers=2",
            f"--output={out}",
            f"--results-dir={tmp_path}/r",
        ],
        env={**os.environ, **QUICK_HEARTBEAT},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def both_in_a_trial() -> bool:
        return any(beating_trials(db) == 2 for db in tmp_path.glob(".out.partial-*/study.db"))

    wait_until(both_in_a_trial, step, "two running trials")
    (child,) = _worker_processes(step.pid)
    os.kill(child, signal.SIGKILL)
    log = step.communicate(timeout=300)[0]
    assert step.returncode == 0, log
    assert "worker process 1 killed by SIGKILL" in log
    report = json.loads((out / "summary.json").read_text())
    assert len(report["failed_stale"]) == 1
    assert report["trials"] == {"COMPLETE": 4}
    assert (tmp_path / "r" / "trial-count").read_text() == "4"
