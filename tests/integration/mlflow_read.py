"""Read a tracking server back with MLflow's own client; run by the MLflow venv's python.

    python mlflow_read.py URI QUERY ARGS_JSON    # prints the answer as JSON

QUERY is ``run`` (params, metrics, tags, status, artifacts with their bytes as hex
sha256 and size, the experiment's name), ``children`` (runs whose mlflow.parentRunId is
``run_id``), ``versions`` (every version of a registered model: source, run id, tags) or
``aliases`` (alias -> version of a registered model). It imports only mlflow, never the
runtime, so what it reports is what MLflow sees.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient


def artifacts(client: MlflowClient, run_id: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as folder:
        local = Path(client.download_artifacts(run_id, "", folder))
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            data = path.read_bytes()
            found[path.relative_to(local).as_posix()] = {
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
    return found


def main(uri: str, query: str, args: dict[str, Any]) -> Any:
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    if query == "run":
        run = client.get_run(args["run_id"])
        return {
            "status": run.info.status,
            "experiment": client.get_experiment(run.info.experiment_id).name,
            "experiment_id": run.info.experiment_id,
            "run_name": run.info.run_name,
            "params": run.data.params,
            "metrics": run.data.metrics,
            "tags": run.data.tags,
            "artifacts": artifacts(client, args["run_id"]),
        }
    if query == "children":
        parent = client.get_run(args["run_id"])
        runs = client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{args['run_id']}'",
        )
        return [
            {"run_name": r.info.run_name, "status": r.info.status, "metrics": r.data.metrics}
            for r in runs
        ]
    if query == "versions":
        versions = client.search_model_versions(f"name = '{args['name']}'")
        return sorted(
            (
                {"version": v.version, "source": v.source, "run_id": v.run_id, "tags": v.tags}
                for v in versions
            ),
            key=lambda v: int(v["version"]),
        )
    if query == "aliases":
        return client.get_registered_model(args["name"]).aliases
    raise SystemExit(f"unknown query {query!r}")


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))))
