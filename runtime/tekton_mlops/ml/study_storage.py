"""Where a tuning study lives, and the trial budget it enforces across processes and pods.

The storage is an Optuna RDB URL (SQLAlchemy's form: ``postgresql://user@host/db``,
read with psycopg 3, or ``sqlite:////abs/study.db``). Its credentials never travel
as a parameter: a URL given as a param may not carry a password; the full URL comes
from ``OPTUNA_STORAGE`` or from a Secret mounted as the ``optuna-storage`` workspace
(key ``url``). Without any of them, workers that share a folder (the ``study``
workspace: pods on one node, or a local run) share a SQLite file in it. Logs and
records show it with the password masked.

Budget: several workers (processes in one pod, or pods) share one study, and
together they must run no more than ``n-trials``. A check of the trial count
before asking for a trial races with the other workers; the check here is made
where Optuna numbers a new trial, inside the transaction that creates it and
while it holds the lock that serializes creation (the study row ``FOR UPDATE``
on PostgreSQL, the database write lock on SQLite). A trial numbered past the
budget is rolled back, never created, and the worker stops. This overrides a
private hook of Optuna's RDBStorage, so Optuna is pinned and the distributed
tests count the trials.
"""

from __future__ import annotations

import os
import random
import time
import urllib.parse
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


class TrialBudgetSpent(Exception):
    """The study already holds its budget of trials: this worker is done."""


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


def _budgeted_storage_class() -> type:
    import optuna

    class BudgetedStorage(optuna.storages.RDBStorage):
        """An RDBStorage that refuses to create a study's trial number ``budget``."""

        budget: int | None = None

        def _get_prepared_new_trial(self, study_id: int, template_trial: Any, session: Any) -> Any:
            trial = super()._get_prepared_new_trial(study_id, template_trial, session)
            # trial.number counts the study's earlier trials, read under the creation lock.
            if self.budget is not None and trial.number >= self.budget:
                raise TrialBudgetSpent(f"the study holds its {self.budget} trials")
            return trial

    return BudgetedStorage


def connect(url: str, budget: int | None, attempts: int = 6) -> Any:
    """An RDB storage on ``url`` enforcing ``budget`` trials per study (None: no budget).

    Workers starting together race to create the schema on an empty database; the loser
    gets an error from the database and simply tries again, once the winner is done.
    """
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
    storage_class = _budgeted_storage_class()
    for attempt in range(1, attempts + 1):
        try:
            storage = storage_class(url, engine_kwargs=engine)
            storage.budget = budget
            return storage
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


def _transient(exc: Exception) -> bool:
    """Errors a concurrent schema creation causes (duplicate objects, a lock lost)."""
    text = f"{type(exc).__name__} {exc}".lower()
    return any(
        word in text
        for word in ("duplicate", "already exists", "unique", "locked", "deadlock", "integrity")
    )
