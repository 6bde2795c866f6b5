# ruff: noqa: UP014 - KFP declares named outputs with functional NamedTuples.
"""Train and evaluate, written with the Kubeflow Pipelines SDK, run on Tekton.

The flow tries three regularisation strengths side by side and keeps the best model:

- ``prepare_data`` (a lightweight component, scikit-learn) writes the breast-cancer
  table as a CSV ``Dataset``;
- for each ``C`` (``dsl.ParallelFor``): ``train`` and ``evaluate`` are container
  components that call this catalog's own steps, ``tekton-mlops train-model`` and
  ``tekton-mlops evaluate-model`` (an ONNX model, an evaluation report), and
  ``read_accuracy`` turns the report into a number and a ``Metrics`` artifact;
- ``pick_best`` reads every accuracy (``dsl.Collected``) and names the winner;
- ``dsl.If`` the winner passes the bar, ``write_report`` publishes a ``Markdown`` report.

Compile it to Tekton, or compile and run it here::

    tekton-mlops kfp compile examples/kfp/train_evaluate.py:train_evaluate -o pipeline.yaml
    tekton-mlops kfp run examples/kfp/train_evaluate.py:train_evaluate --param min_accuracy=0.9
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Model, Output

#: The runtime image: it holds tekton-mlops with its ml and kfp extras. On a cluster use
#: the release's pinned reference; locally the process runner runs this installation.
RUNTIME_IMAGE = "ghcr.io/tekton-mlops/runtime:0.1.0"


@dsl.component(base_image=RUNTIME_IMAGE, packages_to_install=["scikit-learn"])
def prepare_data(table: Output[Dataset]) -> int:
    """The breast-cancer table of scikit-learn as a CSV with a ``target`` column."""
    import csv

    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    with open(table.path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*(name.replace(" ", "_") for name in data.feature_names), "target"])
        for features, target in zip(data.data, data.target, strict=False):
            writer.writerow([*(f"{value:.6g}" for value in features), int(target)])
    table.metadata["rows"] = len(data.target)
    table.metadata["target_column"] = "target"
    return len(data.target)


@dsl.container_component
def train(table: Input[Dataset], c: float, model: Output[Model], log: Output[dsl.Artifact]):
    """``tekton-mlops train-model``: logistic regression with C, exported to ONNX."""
    return dsl.ContainerSpec(
        image=RUNTIME_IMAGE,
        command=["tekton-mlops", "train-model"],
        args=[
            dsl.ConcatPlaceholder(["--data=", table.path]),
            "--target-column=target",
            dsl.ConcatPlaceholder(["--output=", model.path]),
            dsl.ConcatPlaceholder(['--hyperparameters={"C": ', c, ', "max_iter": 1000}']),
            dsl.ConcatPlaceholder(["--results-dir=", log.path]),
        ],
    )


@dsl.container_component
def evaluate(model: Input[Model], table: Input[Dataset], evaluation: Output[dsl.Artifact]):
    """``tekton-mlops evaluate-model``: the model's metrics on the table."""
    return dsl.ContainerSpec(
        image=RUNTIME_IMAGE,
        command=["tekton-mlops", "evaluate-model"],
        args=[
            dsl.ConcatPlaceholder(["--model-path=", model.path]),
            dsl.ConcatPlaceholder(["--data=", table.path]),
            dsl.ConcatPlaceholder(["--output=", evaluation.path]),
            dsl.ConcatPlaceholder(["--results-dir=", evaluation.path, "/results"]),
        ],
    )


@dsl.component(base_image=RUNTIME_IMAGE)
def read_accuracy(evaluation: Input[dsl.Artifact], c: float, metrics: Output[Metrics]) -> float:
    """The accuracy evaluate-model reported, also as a KFP Metrics artifact."""
    import json
    import os

    with open(os.path.join(evaluation.path, "evaluation.json")) as handle:
        report = json.load(handle)
    accuracy = float(report["metrics"]["accuracy"])
    metrics.log_metric("accuracy", accuracy)
    metrics.log_metric("C", c)
    return accuracy


@dsl.component(base_image=RUNTIME_IMAGE)
def pick_best(accuracies: list, strengths: list) -> NamedTuple(
    "Best", [("c", float), ("accuracy", float)]
):
    """The strength with the highest accuracy (the first of equals)."""
    from collections import namedtuple

    best = max(range(len(accuracies)), key=lambda i: (accuracies[i], -i))
    return namedtuple("Best", ["c", "accuracy"])(float(strengths[best]), accuracies[best])


@dsl.component(base_image=RUNTIME_IMAGE)
def write_report(c: float, accuracy: float, rows: int, report: Output[Markdown]) -> str:
    """A short Markdown summary of the chosen model."""
    verdict = f"C={c} reached accuracy {accuracy:.4f} on {rows} rows"
    with open(report.path, "w") as handle:
        handle.write(f"# Model selection\n\n{verdict}.\n")
    return verdict


@dsl.pipeline(name="train-evaluate", description="Pick the best of three regularisations.")
def train_evaluate(
    strengths: list = [0.01, 1.0, 100.0],  # noqa: B006 - KFP reads defaults from the signature
    min_accuracy: float = 0.9,
) -> NamedTuple("Outputs", [("best_c", float), ("best_accuracy", float)]):
    data = prepare_data()
    with dsl.ParallelFor(strengths, parallelism=2) as c:
        trained = train(table=data.outputs["table"], c=c)
        evaluated = evaluate(model=trained.outputs["model"], table=data.outputs["table"])
        scored = read_accuracy(evaluation=evaluated.outputs["evaluation"], c=c)
    best = pick_best(accuracies=dsl.Collected(scored.outputs["Output"]), strengths=strengths)
    with dsl.If(best.outputs["accuracy"] >= min_accuracy):
        write_report(
            c=best.outputs["c"], accuracy=best.outputs["accuracy"], rows=data.outputs["Output"]
        )
    outputs = NamedTuple("Outputs", [("best_c", float), ("best_accuracy", float)])
    return outputs(best_c=best.outputs["c"], best_accuracy=best.outputs["accuracy"])
