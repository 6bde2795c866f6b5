#!/usr/bin/env bash
# The main job on embedded defaults: fetch a dataset, train a model, evaluate and gate it.
# Usage: hack/demo.sh    (writes everything under .demo/; runs without network or cluster)
# The data is scikit-learn's bundled breast-cancer table, written as CSV: nothing is downloaded.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=.venv/bin
demo=.demo
rm -rf "$demo" && mkdir -p "$demo/source" "$demo/results"

"$bin/python" - "$demo/source/cancer.csv" <<'PY'
import csv, sys
from sklearn.datasets import load_breast_cancer
data = load_breast_cancer()
with open(sys.argv[1], "w", newline="") as handle:
    writer = csv.writer(handle)
    writer.writerow([n.replace(" ", "_") for n in data.feature_names] + ["diagnosis"])
    writer.writerows([*map(float, row), int(t)] for row, t in zip(data.data, data.target))
PY

step() { # step NAME ARGS...: run one catalog step, its results in $demo/results/NAME
  local name=$1; shift
  "$bin/tekton-mlops" "$name" "$@" --results-dir="$demo/results/$name"
}
result() { cat "$demo/results/$1/$2"; }

step fetch-data --source="file://$PWD/$demo/source/cancer.csv" --output="$demo/data"
step train-model --data="$demo/data" --target-column=diagnosis --output="$demo/model" \
  --estimator=gradient-boosting-classifier --hyperparameters='{"n_estimators": 100}' \
  --data-digest="$(result fetch-data dataset-digest)"
step evaluate-model --model-path="$demo/model" --data="$demo/data" \
  --thresholds='{"accuracy": ">=0.9", "roc_auc": ">=0.95"}' \
  --model-digest="$(result train-model model-digest)"

cat <<SUMMARY

== tekton-mlops demo: fetch-data -> train-model -> evaluate-model ==
dataset   $demo/data  $(result fetch-data dataset-digest)
model     $demo/model/model.onnx  $(result train-model model-digest)
metrics   $(result evaluate-model metrics)
passed    $(result evaluate-model passed)   (a Pipeline's 'when' gate reads this result)
report    $demo/model/evaluation.md
lineage   $(ls "$demo"/model/.mlops/lineage/ | tr '\n' ' ')
SUMMARY
