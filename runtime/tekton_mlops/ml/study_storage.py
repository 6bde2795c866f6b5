"""Where a tuning study lives, the trial budget it holds across processes and pods,
and what becomes of a trial whose worker died.

The storage is an Optuna RDB URL (SQLAlchemy's form: ``postgresql://user@host/db``,
read with psycopg 3, or ``sqlite:////abs/study.db``). Its credentials never travel
as a parameter: a URL given as a param may not carry a password; the full URL comes
from ``OPTUNA_STORAGE`` or from a Secret mounted as the ``optuna-storage`` workspace
(key ``url``). Without any of them, workers that share a folder (the ``study``
workspace: pods on one node, or a local run) share a SQLite file in it. Logs and
records show it with the password masked.

Budget: several workers (processes in one pod, or pods) share one study, and
together they run ``n-trials`` trials. A trial needs a ticket, taken before the
worker asks Optuna for the trial, by one conditional UPDATE of a table of ours
(``tekton_mlops_trial_budget``, made with SQLAlchemy in the study's database)::

    UPDATE tekton_mlops_trial_budget SET taken = taken + 1
     WHERE study_name = :study AND taken < :budget

committed on its own; an UPDATE that changed no row means the budget is spent and
the worker stops. The database serializes these UPDATEs (the row lock on
PostgreSQL, which re-reads ``taken`` after the lock wait; the write lock on
SQLite), so no two workers hold the same ticket and no more than the budget are
ever taken: the study gets no trial past its budget and no trial number twice.
Only public interfaces are used (Optuna's study and RDBStorage, SQLAlchemy);
Optuna is pinned as any dependency is, not for a private hook.

A ticket is spent when it is taken, not when its trial is created. A worker
killed between the two (one statement apart) takes its ticket with it: the study
ends with one trial fewer than ``n-trials``, never one more, and the report's
counts show it. Telling such a lost ticket from one whose trial is about to be
created would need a lease and a clock, and a wrong guess would run a trial past
the budget; a missing trial is the safe side of that race.

Heartbeats: a worker records a heartbeat for its running trial every
``TEKTON_MLOPS_TUNE_HEARTBEAT`` seconds (default 10; Optuna's RDBStorage
heartbeat), in a thread of its own. A RUNNING trial whose last heartbeat is
older than ``TEKTON_MLOPS_TUNE_GRACE`` seconds (default six heartbeats, 60 s;
it must exceed the interval) lost its worker (killed, evicted, out of memory):
the next worker to start a trial, or the end-of-study read (role all after its
processes, role summarize), marks it FAIL. (A trial's first heartbeat is written
as it starts; a worker killed in between keeps it RUNNING, as Optuna only fails
trials that had one.) Such a trial *failed stale*, and it does not count
against the budget: the worker that fails it returns its ticket and records its
number (``tekton_mlops_stale_trial``) in one transaction, having first enqueued
its hyper-parameters to run again. The study so still ends with ``n-trials``
trials that ran to an end. A retry is made once: a retry that fails stale too
gets its ticket back but its parameters are not tried a third time (they may be
what kills workers, e.g. memory), a fresh draw runs instead. Reports leave failed
stale trials out (trials.csv, best params, counts) and list their numbers.
"""

from __future__ import annotations

import logging
import os
import random
import time
import urllib.parse
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tekton_mlops.errors import MlopsError, SourceError

ENV_URL = "OPTUNA_STORAGE"
ENV_BOUND = "OPTUNA_STORAGE_BOUND"  # $(workspaces.optuna-storage.bound)
ENV_DIR = "OPTUNA_STORAGE_DIR"  # $(workspaces.optuna-storage.path)
#: $(workspaces.study.path): a folder every worker mounts (pods on one node, a local run),
#: where a shared SQLite study lives when no storage is named; empty when unbound.
ENV_STUDY_DIR = "OPTUNA_STUDY_DIR"
SECRET_KEY = "url"
DEFAULT_FILE = "study.db"

#: Seconds between a running trial's heartbeats.
ENV_HEARTBEAT = "TEKTON_MLOPS_TUNE_HEARTBEAT"
#: Seconds without a heartbeat after which a running trial failed stale (default: 6 beats).
ENV_GRACE = "TEKTON_MLOPS_TUNE_GRACE"
DEFAULT_HEARTBEAT = 10
GRACE_BEATS = 6

BUDGET_TABLE = "tekton_mlops_trial_budget"
STALE_TABLE = "tekton_mlops_stale_trial"
#: User attribute of a trial that retries one that failed stale: the stale trial's number.
RETRY_OF = "tekton-mlops:retry-of"

log = logging.getLogger("tekton_mlops.tune-model")


def has_password(url: str) -> bool:
    return bool(urllib.parse.urlsplit(url).password)


def redact(url: str) -> str:
    """The URL as logs may show it: the password replaced by ***."""
    parts = urllib.parse.urlsplit(url)
    if not parts.password:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def resolve(param: str, default_dir: Path | None) -> tuple[str, str]:
    """The storage URL and where it came from: the param, the env, the Secret, or a default.

    ``default_dir`` is where a SQLite study file goes when nothing names a storage; None
    when the caller needs a shared one: the URL is then empty when nothing names one.
    """
    if param:
        return param, "param"
    if url := os.environ.get(ENV_URL, "").strip():
        return url, ENV_URL
    if os.environ.get(ENV_BOUND, "") == "true":
        secret = Path(os.environ.get(ENV_DIR, "")) / SECRET_KEY
        try:
            url = secret.read_text().strip()
        except OSError as exc:
            raise SourceError(
                f"optuna-storage workspace: cannot read {secret} ({exc.strerror or exc})"
            ) from None
        if not url:
            raise SourceError(f"optuna-storage workspace: {secret} is empty")
        return url, "optuna-storage workspace"
    if study_dir := os.environ.get(ENV_STUDY_DIR, "").strip():
        return f"sqlite:///{(Path(study_dir) / DEFAULT_FILE).resolve()}", "study workspace"
    if default_dir is None:
        return "", "none"
    return f"sqlite:///{(default_dir / DEFAULT_FILE).resolve()}", "default"


@dataclass(frozen=True)
class Heartbeat:
    """How often a running trial says it is alive, and how long its silence is allowed."""

    interval: int
    grace: int


def heartbeat() -> Heartbeat:
    """The heartbeat settings, from the environment (see the module's docstring)."""

    def seconds(name: str, default: int) -> int:
        raw = os.environ.get(name, "").strip()
        if not raw:
            return default
        if not raw.isdigit() or int(raw) < 1:
            raise MlopsError(f"{name}={raw!r}: must be a whole number of seconds, at least 1")
        return int(raw)

    interval = seconds(ENV_HEARTBEAT, DEFAULT_HEARTBEAT)
    grace = seconds(ENV_GRACE, GRACE_BEATS * interval)
    if grace <= interval:
        raise MlopsError(
            f"{ENV_GRACE}={grace} must exceed {ENV_HEARTBEAT}={interval}: "
            "a live trial would fail stale between two heartbeats"
        )
    return Heartbeat(interval, grace)


class Ledger:
    """Our two tables in the study's database: tickets taken per study, trials failed stale."""

    def __init__(self, engine: Any) -> None:
        import sqlalchemy as sa

        self.engine = engine
        meta = sa.MetaData()
        self.budget = sa.Table(
            BUDGET_TABLE,
            meta,
            sa.Column("study_name", sa.String(512), primary_key=True),
            # Optuna's id of the study: a study deleted and made anew under the name
            # starts with a budget of its own.
            sa.Column("study_id", sa.Integer, nullable=False),
            sa.Column("taken", sa.Integer, nullable=False),
        )
        self.stale_trials = sa.Table(
            STALE_TABLE,
            meta,
            sa.Column("study_name", sa.String(512), primary_key=True),
            sa.Column("number", sa.Integer, primary_key=True),
        )
        meta.create_all(engine)

    def open(self, study: str, study_id: int, trials: int) -> None:
        """Make the study's row, counting the ``trials`` it already holds as taken."""
        import sqlalchemy as sa

        table = self.budget
        for _ in range(2):  # a worker inserting the same row first: then it exists
            try:
                with self.engine.begin() as db:
                    row = db.execute(
                        sa.select(table.c.study_id).where(table.c.study_name == study)
                    ).first()
                    if row is None:
                        db.execute(
                            sa.insert(table).values(
                                study_name=study, study_id=study_id, taken=trials
                            )
                        )
                    elif row.study_id != study_id:
                        # Only the first to see the old id resets the row (and its stale list).
                        reset = db.execute(
                            sa.update(table)
                            .where(table.c.study_name == study, table.c.study_id == row.study_id)
                            .values(study_id=study_id, taken=trials)
                        )
                        if reset.rowcount:
                            db.execute(
                                sa.delete(self.stale_trials).where(
                                    self.stale_trials.c.study_name == study
                                )
                            )
                return
            except sa.exc.IntegrityError:
                continue
        raise MlopsError(f"study {study!r}: cannot make its trial budget")

    def take(self, study: str, budget: int) -> bool:
        """Take one of the study's ``budget`` tickets; False when every one is taken."""
        import sqlalchemy as sa

        table = self.budget
        with self.engine.begin() as db:
            taken = db.execute(
                sa.update(table)
                .where(table.c.study_name == study, table.c.taken < budget)
                .values(taken=table.c.taken + 1)
            )
            return bool(taken.rowcount == 1)

    def give_back(self, study: str, number: int) -> bool:
        """Record trial ``number`` as failed stale and return its ticket, once."""
        import sqlalchemy as sa

        table = self.budget
        try:
            with self.engine.begin() as db:
                db.execute(sa.insert(self.stale_trials).values(study_name=study, number=number))
                db.execute(
                    sa.update(table)
                    .where(table.c.study_name == study, table.c.taken > 0)
                    .values(taken=table.c.taken - 1)
                )
        except sa.exc.IntegrityError:  # recorded already: its ticket came back then
            return False
        return True

    def taken(self, study: str) -> int:
        import sqlalchemy as sa

        with self.engine.connect() as db:
            found = db.execute(
                sa.select(self.budget.c.taken).where(self.budget.c.study_name == study)
            ).scalar()
        return int(found or 0)

    def stale(self, study: str) -> list[int]:
        """The numbers of the study's trials that failed stale."""
        import sqlalchemy as sa

        column = self.stale_trials.c.number
        with self.engine.connect() as db:
            rows = db.execute(
                sa.select(column).where(self.stale_trials.c.study_name == study).order_by(column)
            )
            return [int(n) for (n,) in rows]


class _FailedStale:
    """Optuna's heartbeat-stale callback: called once, by the worker that failed the trial."""

    def __init__(self, grace: int) -> None:
        # The ledger shares the storage's engine, so it is set once the storage exists.
        self.ledger: Ledger | None = None
        self.grace = grace

    def __call__(self, study: Any, trial: Any) -> None:
        retry = bool(trial.params) and RETRY_OF not in trial.user_attrs
        if retry:
            # Enqueued before the ticket comes back, so the next trial asked for runs it.
            study.enqueue_trial(dict(trial.params), user_attrs={RETRY_OF: trial.number})
        assert self.ledger is not None, "set by connect() before any trial runs"
        if self.ledger.give_back(study.study_name, trial.number):
            log.warning(
                "trial %d failed stale (no heartbeat for %d s: its worker died); its ticket "
                "is back in the budget%s",
                trial.number,
                self.grace,
                ", its parameters run again" if retry else "",
            )


@dataclass
class Store:
    """A study storage: Optuna's RDBStorage with heartbeats, and our ledger beside it."""

    storage: Any  # optuna.storages.RDBStorage
    ledger: Ledger
    heartbeat: Heartbeat

    def close(self) -> None:
        self.storage.remove_session()
        self.storage.engine.dispose()  # the ledger's engine too: they share it

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(url: str, attempts: int = 6) -> Store:
    """The storage on ``url``, with heartbeats on and the budget tables made.

    Workers starting together race to create the schema on an empty database; the loser
    gets an error from the database and simply tries again, once the winner is done.
    """
    import optuna

    beat = heartbeat()
    if url.startswith(("postgresql://", "postgres://")):
        # The driver the runtime ships (psycopg 3), whatever SQLAlchemy's default for a
        # bare postgresql:// is in the installed version (psycopg2 before 2.1).
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    engine: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # Processes queue on SQLite's write lock; wait for it rather than fail at 5 s.
        engine["connect_args"] = {"timeout": 120}
    else:
        engine["pool_pre_ping"] = True
    for attempt in range(1, attempts + 1):
        try:
            on_stale = _FailedStale(beat.grace)
            with warnings.catch_warnings():
                # The heartbeat is "experimental" in Optuna's terms since 2.9.
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine,
                    heartbeat_interval=beat.interval,
                    grace_period=beat.grace,
                    heartbeat_stale_trial_callback=on_stale,
                )
            # One connection pool per process: the ledger's statements go through Optuna's
            # engine (a second pool on one SQLite file would only queue on its lock).
            on_stale.ledger = ledger = Ledger(storage.engine)
            return Store(storage, ledger, beat)
        except ImportError as exc:
            raise MlopsError(f"storage {redact(url)}: database driver missing ({exc})") from None
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy's or Optuna's, retried then named
            if attempt == attempts or not _transient(exc):
                detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise SourceError(
                    f"storage {redact(url)}: cannot open ({type(exc).__name__}: "
                    f"{detail.replace(url, redact(url))})"
                ) from None
            time.sleep(0.2 * attempt + random.random() * 0.3)
    raise AssertionError("not reached")


def fail_stale(study: Any) -> None:
    """Mark FAIL the study's RUNNING trials whose heartbeat is older than the grace period
    (their tickets come back, see the module's docstring)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def settle(study: Any, beat: Heartbeat, wait: float | None = None) -> int:
    """Fail stale trials until none is RUNNING, or for at most ``wait`` seconds (by
    default long enough for a dead worker's trial to go stale); the number still RUNNING."""
    import optuna

    running = optuna.trial.TrialState.RUNNING
    end = time.monotonic() + (beat.grace + beat.interval + 1 if wait is None else wait)
    while True:
        fail_stale(study)
        left = len(study.get_trials(deepcopy=False, states=(running,)))
        if not left or time.monotonic() >= end:
            return left
        time.sleep(min(1.0, beat.interval / 2))


def _transient(exc: Exception) -> bool:
    """Errors a concurrent schema creation causes (duplicate objects, a lock lost)."""
    text = f"{type(exc).__name__} {exc}".lower()
    return any(
        word in text
        for word in ("duplicate", "already exists", "unique", "locked", "deadlock", "integrity")
    )
