"""tune-model's study storage: the trial budget as tickets in a table of ours, and the
heartbeat that fails the trial of a worker that died, giving its ticket back."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tekton_mlops.errors import MlopsError
from tekton_mlops.ml import study_storage

HEARTBEAT = {study_storage.ENV_HEARTBEAT: "1", study_storage.ENV_GRACE: "2"}


@pytest.fixture
def quick_heartbeat(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in HEARTBEAT.items():
        monkeypatch.setenv(name, value)


def python(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    import os

    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env={**os.environ, **HEARTBEAT, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def open_study(url: str, name: str = "s") -> tuple[study_storage.Store, object]:
    import optuna

    store = study_storage.connect(url)
    study = optuna.create_study(storage=store.storage, study_name=name, load_if_exists=True)
    study_id = store.storage.get_study_id_from_name(name)
    store.ledger.open(name, study_id, len(study.get_trials(deepcopy=False)))
    return store, study


TAKER = """
import sys
from tekton_mlops.ml import study_storage

store = study_storage.connect(sys.argv[1])
taken = 0
while store.ledger.take("s", int(sys.argv[2])):
    taken += 1
print(taken)
"""


def test_workers_racing_for_tickets_take_exactly_the_budget(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    store, _ = open_study(url)
    store.close()
    racers = [python(TAKER, url, "200") for _ in range(4)]
    outputs = [r.communicate(timeout=120) for r in racers]
    assert [r.returncode for r in racers] == [0, 0, 0, 0], outputs
    counts = [int(out) for out, _ in outputs]
    assert sum(counts) == 200
    store = study_storage.connect(url)
    assert store.ledger.taken("s") == 200
    assert not store.ledger.take("s", 200)
    assert store.ledger.take("s", 201)  # a worker asked for more: one more ticket, no other
    assert not store.ledger.take("s", 201)
    store.close()


# A worker that takes a ticket, starts its trial and is killed in the middle of it.
DIES_MID_TRIAL = """
import os, signal, sys, time
import optuna
from tekton_mlops.ml import study_storage

optuna.logging.set_verbosity(optuna.logging.ERROR)
store = study_storage.connect(sys.argv[1])
study = optuna.load_study(study_name="s", storage=store.storage)
assert store.ledger.take("s", 5)

def objective(trial):
    trial.suggest_float("x", 0, 1)
    trial.suggest_categorical("kind", ["a", "b", None])
    print(trial.number, flush=True)
    # Past the first heartbeat (interval 1 s): a worker killed before its trial's first
    # heartbeat leaves a trial nobody can tell from a live one (the documented window).
    time.sleep(1.5)
    os.kill(os.getpid(), signal.SIGKILL)

study.optimize(objective, n_trials=1)
"""


def die_mid_trial(url: str) -> int:
    dying = python(DIES_MID_TRIAL, url)
    out, err = dying.communicate(timeout=120)
    assert dying.returncode == -9, err
    return int(out)


def test_a_dead_workers_trial_fails_stale_gives_its_ticket_back_and_runs_again_once(
    tmp_path: Path, quick_heartbeat: None
) -> None:
    import optuna

    url = f"sqlite:///{tmp_path / 'study.db'}"
    store, study = open_study(url)
    assert die_mid_trial(url) == 0
    assert [t.state.name for t in study.get_trials()] == ["RUNNING"]
    assert store.ledger.taken("s") == 1

    assert study_storage.settle(study, store.heartbeat, wait=15) == 0
    dead, retry = study.get_trials()
    assert (dead.state.name, retry.state.name) == ("FAIL", "WAITING")
    assert retry.system_attrs["fixed_params"] == dead.params  # run as they are, once asked for
    assert dead.params["kind"] in ("a", "b", None)
    assert retry.user_attrs == {study_storage.RETRY_OF: 0}
    assert store.ledger.stale("s") == [0]
    assert store.ledger.taken("s") == 0  # its ticket is back

    # The retry is the next trial asked for; when it kills its worker too, its ticket
    # comes back but its parameters are not tried a third time.
    assert die_mid_trial(url) == 1
    assert study_storage.settle(study, store.heartbeat, wait=15) == 0
    assert [t.state.name for t in study.get_trials()] == ["FAIL", "FAIL"]
    assert study.get_trials()[1].params == dead.params
    assert store.ledger.stale("s") == [0, 1]
    assert store.ledger.taken("s") == 0

    # A heartbeat-less settle on a finished study returns at once.
    assert study_storage.settle(study, store.heartbeat, wait=0) == 0
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    store.close()


def test_a_stale_trial_gives_its_ticket_back_once(tmp_path: Path) -> None:
    store, _ = open_study(f"sqlite:///{tmp_path / 'study.db'}")
    assert store.ledger.take("s", 1)
    assert store.ledger.give_back("s", 0)
    assert not store.ledger.give_back("s", 0)  # recorded already
    assert store.ledger.taken("s") == 0
    store.close()


def test_a_study_made_anew_under_its_name_gets_a_budget_of_its_own(tmp_path: Path) -> None:
    import optuna

    url = f"sqlite:///{tmp_path / 'study.db'}"
    store, _ = open_study(url, "again")
    optuna.create_study(storage=store.storage, study_name="other")  # the next id is not reused
    for _ in range(3):
        assert store.ledger.take("again", 3)
    store.ledger.give_back("again", 1)
    optuna.delete_study(study_name="again", storage=store.storage)
    store.close()
    store, _ = open_study(url, "again")
    assert store.ledger.taken("again") == 0
    assert store.ledger.stale("again") == []
    store.close()


def test_heartbeat_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(study_storage.ENV_HEARTBEAT, raising=False)
    monkeypatch.delenv(study_storage.ENV_GRACE, raising=False)
    assert study_storage.heartbeat() == study_storage.Heartbeat(10, 60)
    monkeypatch.setenv(study_storage.ENV_HEARTBEAT, "3")
    assert study_storage.heartbeat() == study_storage.Heartbeat(3, 18)
    monkeypatch.setenv(study_storage.ENV_GRACE, "4")
    assert study_storage.heartbeat() == study_storage.Heartbeat(3, 4)
    for interval, grace, rule in (
        ("0", "4", "at least 1"),
        ("x", "4", "whole number"),
        ("3", "3", "must exceed"),
    ):
        monkeypatch.setenv(study_storage.ENV_HEARTBEAT, interval)
        monkeypatch.setenv(study_storage.ENV_GRACE, grace)
        with pytest.raises(MlopsError, match=rule):
            study_storage.heartbeat()
