"""Tags that tie a run to where it ran: the Tekton run, the code revision, the step.

The TaskRun comes from ``TEKTON_MLOPS_INVOCATION_ID`` (``$(context.taskRun.name)`` in
every Task's stepTemplate), the PipelineRun from ``TEKTON_MLOPS_PIPELINE_RUN`` (the
pod's ``tekton.dev/pipelineRun`` label, through the downward API), the revision as the
lineage record finds it: the step's ``source-url``/``source-revision`` params, else
``TEKTON_MLOPS_SOURCE_URL``/``TEKTON_MLOPS_SOURCE_REVISION``. MLflow's own tag names are
used where it has them, so its UI shows them in place.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

#: MLflow's reserved tags (mlflow.utils.mlflow_tags) that its UI reads.
PARENT_RUN = "mlflow.parentRunId"
GIT_COMMIT = "mlflow.source.git.commit"
GIT_REPO = "mlflow.source.git.repoURL"
SOURCE_TYPE = "mlflow.source.type"
#: This runtime's own tags.
STEP = "tekton-mlops.step"
PIPELINE_RUN = "tekton.dev/pipelineRun"
TASK_RUN = "tekton.dev/taskRun"
DATASET_URI = "tekton-mlops.dataset.uri"
DATASET_DIGEST = "tekton-mlops.dataset.digest"
MODEL_DIGEST = "tekton-mlops.model.root-digest"


def context_tags(step: str, params: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The tags every run of ``step`` carries; empty values are left out."""
    params = params or {}
    found = {
        STEP: step,
        SOURCE_TYPE: "JOB",
        PIPELINE_RUN: os.environ.get("TEKTON_MLOPS_PIPELINE_RUN", ""),
        TASK_RUN: os.environ.get("TEKTON_MLOPS_INVOCATION_ID", ""),
        GIT_REPO: str(params.get("source_url") or os.environ.get("TEKTON_MLOPS_SOURCE_URL", "")),
        GIT_COMMIT: str(
            params.get("source_revision") or os.environ.get("TEKTON_MLOPS_SOURCE_REVISION", "")
        ),
    }
    return {key: value for key, value in found.items() if value}
