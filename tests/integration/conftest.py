"""What every integration test starts from."""

from __future__ import annotations

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
