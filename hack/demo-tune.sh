#!/usr/bin/env bash
# The experiment loop on embedded defaults: the catalog's tune-and-train Pipeline, run locally,
# tracked by a local MLflow server (from .venv-mlflow, which `make demo-tune` creates).
# Usage: hack/demo-tune.sh    (no cluster, no network: the Tasks resolve from this repository's HEAD)
# Data: scikit-learn's bundled wine table written as CSV; nothing is downloaded.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=.venv/bin
demo=$PWD/.demo-tune
rm -rf "$demo" && mkdir -p "$demo/source" "$demo/mlflow"

"$bin/python" - "$demo/source/wine.csv" <<'PY'
import csv, sys
from sklearn.datasets import load_wine
data = load_wine()
with open(sys.argv[1], "w", newline="") as handle:
    writer = csv.writer(handle)
    writer.writerow([n.replace("/", "_") for n in data.feature_names] + ["cultivar"])
    writer.writerows([*map(float, row), int(t)] for row, t in zip(data.data, data.target))
PY

"$bin/tekton-mlops" keys "$demo/secrets" >/dev/null

# MLflow on 127.0.0.1 with its own SQLite store and artifact folder, stopped when the demo ends.
store="sqlite:///$demo/mlflow/mlflow.db"
MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false setsid .venv-mlflow/bin/mlflow server \
  --backend-store-uri "$store" --artifacts-destination "$demo/mlflow/artifacts" \
  --host 127.0.0.1 --port 0 --workers 1 >/dev/null 2>"$demo/mlflow/server.log" &
server=$!
trap 'kill -- -$server 2>/dev/null || true' EXIT
port=""
for _ in $(seq 1 120); do
  port=$(grep -oP 'Uvicorn running on http://127\.0\.0\.1:\K[0-9]+' "$demo/mlflow/server.log" || true)
  [[ -n "$port" ]] && break
  kill -0 "$server" 2>/dev/null || { cat "$demo/mlflow/server.log" >&2; exit 1; }
  sleep 0.5
done
[[ -n "$port" ]] || { echo "the MLflow server did not start (see $demo/mlflow/server.log)" >&2; exit 1; }
uri=http://127.0.0.1:$port

"$bin/tekton-mlops" run catalog/pipeline/tune-and-train/0.1/samples/run-locally.yaml \
  --git-mirror "https://github.com/tekton-mlops/tekton-mlops.git=$PWD" \
  --secrets-dir "$demo/secrets" \
  --param "dataset-uri=file://$demo/source/wine.csv" --host-path "$demo/source" \
  --param "mlflow-tracking-uri=$uri" --param "mlflow-experiment=wine" \
  --run-dir "$demo/runs" -o json > "$demo/pipelinerun.json" || status=$?

"$bin/python" - "$demo/pipelinerun.json" "--backend-store-uri $store --artifacts-destination $demo/mlflow/artifacts" <<'PY'
import json, pathlib, sys
run = json.loads(pathlib.Path(sys.argv[1]).read_text())
condition = run["status"]["conditions"][0]
results = {r["name"]: r["value"] for r in run["status"].get("results", [])}
shared = pathlib.Path(sys.argv[1]).parent / "runs" / run["metadata"]["name"] / "workspaces" / "shared"
print(f"""
== tekton-mlops demo-tune: the tune-and-train Pipeline, run locally ==
PipelineRun  {run['metadata']['name']}: {condition['reason']} ({condition['message']})
dataset      {results.get('dataset-digest', '-')}
prepared     train {results.get('train-digest', '-')}
             test  {results.get('test-digest', '-')}
tuning       best {results.get('best-params', '-')} (cv score {results.get('best-score', '-')})
             {shared / 'tuning' / 'trials.csv'} and plots/
model        {results.get('model-digest', '-')}
metrics      {results.get('metrics', '-')} on the test split; passed {results.get('passed', '-')}
report       {shared / 'model' / 'report' / 'report.html'}
signed       {results.get('signed-digest', '-')}
MLflow run   {results.get('mlflow-run-id', '-')} in experiment wine (training; tuning and
             evaluation are runs beside it). Browse them with:
             .venv-mlflow/bin/mlflow ui {sys.argv[2]}""")
PY
exit "${status:-0}"
