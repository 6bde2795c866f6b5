"""What every integration test starts from."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tekton_mlops.ml import study_storage


@pytest.fixture(autouse=True)
def no_shared_study_storage(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own Optuna storage (OPTUNA_STORAGE and the rest) must not reach a test."""
    for name in (
        study_storage.ENV_URL,
        study_storage.ENV_BOUND,
        study_storage.ENV_DIR,
        study_storage.ENV_STUDY_DIR,
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    """A deployments folder (deploy-model's state-dir); every server and router started
    in it, whatever the strategy, is stopped afterwards."""
    folder = tmp_path / "deployments"
    yield folder
    from tekton_mlops.deploy import local, local_routes

    for name in folder.iterdir() if folder.is_dir() else []:
        local_routes.stop(folder, name.name)
        for which in (local.CANARY, local.STABLE):
            local.stop(local.slot(folder, name.name, which))
