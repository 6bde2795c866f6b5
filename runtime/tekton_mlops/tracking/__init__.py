"""Experiment tracking and the model registry in MLflow, over its REST API.

Steps log to a run in a named experiment when given a tracking URI, and do nothing
(importing no HTTP client) when it is empty::

    from tekton_mlops import tracking

    with tracking.run_for(uri, experiment, step="train-model", params=ctx.params) as run:
        run.log_params(hyperparameters)
        run.log_metrics(metrics)
        run.log_artifacts(model_dir, "model")
        run.set_tags({tracking.MODEL_DIGEST: root})

push-model and deploy-model register versions and move aliases (:mod:`.lifecycle`).

Why REST and not MLflow's client: the image ships nothing more, and a step starts faster.
Measured against a real ``mlflow server`` 3.17.2 on 127.0.0.1 (SQLite, proxied
artifacts), 2 cores, medians of 9 alternating runs in new processes
(``python benchmarks/run.py tracking``):

- import: this package 9 ms (the HTTP client loads only when a run is tracked);
  mlflow-skinny 3.17.2's ``from mlflow import MlflowClient`` 608 ms, and it brings
  41 packages (118 MB installed: databricks-sdk, opentelemetry, fastapi, uvicorn, ...);
- find the experiment, create a run, log 20 params and 20 metrics, upload a 1 MiB
  artifact, end the run: 138 ms with this client (HTTP client import included), 145 ms
  with ``MlflowClient``: the server's work dominates both;
- a train-model-sized run (10 params, 10 metrics, a 2.3 MB model folder, import
  included) costs 96 ms, 2.1% of a 4.5 s ``train-model`` run on 20,000 rows.

Modules: :mod:`.client` (HTTP, credentials, errors), :mod:`.runs` (experiments, runs,
batches, child runs), :mod:`.artifacts` (uploads through the server's proxy),
:mod:`.registry` (models, versions, aliases), :mod:`.lifecycle` (what push-model and
deploy-model do with them), :mod:`.context` (tags from the Tekton run).
"""

from __future__ import annotations

from tekton_mlops.tracking.context import DATASET_DIGEST, DATASET_URI, MODEL_DIGEST
from tekton_mlops.tracking.runs import Run, run_for

__all__ = ["DATASET_DIGEST", "DATASET_URI", "MODEL_DIGEST", "Run", "run_for"]
