#!/usr/bin/env bash
# The main job on embedded defaults: the catalog's train-and-deploy Pipeline, run locally.
# Usage: hack/demo.sh    (no cluster, no network: the Tasks resolve from this repository's HEAD)
# Data: scikit-learn's bundled breast-cancer table written as CSV; nothing is downloaded.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=.venv/bin
demo=$PWD/.demo
rm -rf "$demo" && mkdir -p "$demo/source"

"$bin/python" - "$demo/source/cancer.csv" <<'PY'
import csv, sys
from sklearn.datasets import load_breast_cancer
data = load_breast_cancer()
with open(sys.argv[1], "w", newline="") as handle:
    writer = csv.writer(handle)
    writer.writerow([n.replace(" ", "_") for n in data.feature_names] + ["diagnosis"])
    writer.writerows([*map(float, row), int(t)] for row, t in zip(data.data, data.target))
PY

# A model signing key pair, as the Secrets model-signing-key and model-verification-key
# would hold it on a cluster.
"$bin/tekton-mlops" keys "$demo/secrets" >/dev/null

"$bin/tekton-mlops" run catalog/pipeline/train-and-deploy/0.1/samples/run-locally.yaml \
  --git-mirror "https://github.com/tekton-mlops/tekton-mlops.git=$PWD" \
  --secrets-dir "$demo/secrets" \
  --param "model-destination=file://$demo/models" --host-path "$demo/models" \
  --param "dataset-uri=file://$demo/source/cancer.csv" \
  --run-dir "$demo/runs" -o json > "$demo/pipelinerun.json" || status=$?

"$bin/python" - "$demo/pipelinerun.json" <<'PY'
import json, pathlib, sys
run = json.loads(pathlib.Path(sys.argv[1]).read_text())
condition = run["status"]["conditions"][0]
results = {r["name"]: r["value"] for r in run["status"].get("results", [])}
shared = pathlib.Path(sys.argv[1]).parent / "runs" / run["metadata"]["name"] / "workspaces" / "shared"
print(f"""
== tekton-mlops demo: the train-and-deploy Pipeline, run locally ==
PipelineRun  {run['metadata']['name']}: {condition['reason']} ({condition['message']})
dataset      {results.get('dataset-digest', '-')}
model        {shared / 'model' / 'model.onnx'}
             {results.get('model-digest', '-')}
metrics      {results.get('metrics', '-')}
passed       {results.get('passed', '-')}   (what the deploy stages gate on)
signed       {results.get('signed-digest', '-')}
             {shared / 'model' / 'model.sig'} (model_signing verify key accepts it)
pushed       {results.get('model-uri', '-')}
deployed     {results.get('deployed-url', '-')} (a local canary, promoted if SLOs passed;
             the server stops when the demo ends)
SLOs met     {results.get('slo-passed', '-')}   report: {shared / 'slo-report' / 'slo-report.md'}
lineage      {shared / 'model' / '.mlops' / 'lineage'}
the run      {pathlib.Path(sys.argv[1])} (as kubectl get -o json shows it)""")
PY
# The demo ends here: stop the local model server the pipeline left serving.
for state in "$demo"/runs/*/workspaces/shared/deployments; do
  [[ -d "$state" ]] || continue
  for name in "$state"/*; do
    "$bin/tekton-mlops" deploy-model --target=local --stop --name="$(basename "$name")" \
      --state-dir="$state" --results-dir="$demo/stop-results" 2>/dev/null || true
  done
done
# The runs stay in .demo/runs: the dashboard shows them (started by hand, so the demo ends).
cat <<'EOF'

the dashboard  .venv/bin/tekton-mlops dashboard --runs-dir .demo/runs
               serves http://127.0.0.1:9097/ until Ctrl-C: the run's task graph, timeline,
               step logs, params, results and reports
EOF
exit "${status:-0}"
