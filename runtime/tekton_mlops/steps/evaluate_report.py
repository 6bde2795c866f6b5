"""The report of evaluate-model: where it goes, the baseline it compares with, its files.

    >>> target = prepare("report", output, model_dir, baseline_path, metadata)  # early
    >>> written = write(target, Evaluation(...))   # staged, with a manifest
    >>> written.digest                             # 'sha256:...' of the directory

Not a step of its own (it has no schema): evaluate-model calls it when its
``report`` param names a directory. matplotlib is loaded only by the figure
renderer (:mod:`tekton_mlops.ml.render`), which :func:`prepare` starts only when a
report is asked for, so an evaluation without one starts as fast as before.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tekton_mlops.conditions import Check
from tekton_mlops.digests import as_digest, build_manifest, write_manifest
from tekton_mlops.errors import DestinationError, ModelError, ParameterError, Violation
from tekton_mlops.lineage import Artifact
from tekton_mlops.ml.model_dir import MODEL_FILE, check_model_input, load_model_dir
from tekton_mlops.ml.plots import Plot
from tekton_mlops.ml.render import Renderer
from tekton_mlops.ml.report import REPORT_HTML, Page, render
from tekton_mlops.storage.publish import check_writable_directory, staged_directory


@dataclass(frozen=True)
class Baseline:
    """A verified baseline model directory."""

    path: Path
    metadata: dict[str, Any]
    model_bytes: bytes
    digest: str  # hex sha256 of its model.onnx


@dataclass(frozen=True)
class Target:
    """A checked report directory, the baseline if any, and the renderer already starting."""

    path: Path
    baseline: Baseline | None
    renderer: Renderer
    #: What :func:`draw_early` started (the importance, computed in the background), for
    #: :func:`write` to collect.
    started: dict[str, Any] = field(default_factory=dict)


def prepare(
    report: str, output: Path, model_dir: Path, baseline_path: str, metadata: dict[str, Any]
) -> Target | None:
    """Check the report's directory and the baseline before any work; None for no report.

    The figure renderer starts last, once nothing here can fail, so that its process
    loads matplotlib while the step reads and scores the data.
    """
    if not report:
        if baseline_path:
            raise ParameterError(
                "evaluate-model",
                [Violation("baseline-path", baseline_path, "is used by the report; set report")],
            )
        return None
    path = destination(report, output, model_dir)
    baseline = load_baseline(baseline_path, metadata)
    return Target(path, baseline, Renderer())


def destination(report: str, output: Path, model_dir: Path) -> Path:
    """The report directory, checked before the step does any work.

    A relative path is taken inside ``output`` (in a Task, the model workspace). An
    existing directory is replaced only when it holds an earlier report: the report must
    never take the place of the model or of anything else a user keeps there.
    """
    given = Path(report)
    path = given if given.is_absolute() else output / given
    resolved = path.resolve()
    for kept in (output, model_dir):
        if kept.resolve().is_relative_to(resolved):
            raise DestinationError(
                f"{path}: the report needs a directory of its own; this one holds {kept}"
            )
    check_writable_directory(path)
    if path.is_dir() and any(path.iterdir()) and not (path / REPORT_HTML).is_file():
        raise DestinationError(
            f"{path}: not empty and holds no earlier report; name a new or an empty directory"
        )
    _probe(path)
    return path


def _probe(path: Path) -> None:
    """Create and remove a directory where the report will be staged.

    Permission bits do not tell everything (root passes every access check, yet not on
    a read-only mount or in /proc), and the step must fail before its work, not after.
    """
    existing = path
    while not existing.exists():
        existing = existing.parent
    try:
        Path(tempfile.mkdtemp(prefix=".report-probe-", dir=existing)).rmdir()
    except OSError as exc:
        raise DestinationError(
            f"{path}: {existing} is not writable ({exc.strerror or exc})"
        ) from None


def load_baseline(path: str, metadata: dict[str, Any]) -> Baseline | None:
    """Verify a baseline model and that it is comparable with the candidate; None if unset."""
    if not path:
        return None
    folder = Path(path)
    other, model_bytes, digest = load_model_dir(folder, "")
    where = folder / "metadata.json"
    if other["task"] != metadata["task"]:
        raise ModelError(
            f"{where}: the baseline is a {other['task']} model, this one a {metadata['task']} model"
        )
    if set(other["feature_names"]) != set(metadata["feature_names"]):
        raise ModelError(f"{where}: the baseline was trained on other feature columns")
    if metadata["task"] == "classification" and set(other["classes"]) != set(metadata["classes"]):
        raise ModelError(f"{where}: the baseline predicts other classes {other['classes']}")
    return Baseline(folder, other, model_bytes, digest)


def baseline_metrics(
    baseline: Baseline, features: np.ndarray, truth: np.ndarray, names: Sequence[str]
) -> dict[str, float]:
    """The baseline scored as the candidate is: onnxruntime on the same rows."""
    from tekton_mlops.ml import inputs, metrics, onnx_export

    runtime = onnx_export.session(baseline.model_bytes, baseline.path / MODEL_FILE)
    check_model_input(runtime, baseline.metadata, baseline.path / MODEL_FILE)
    # Its own column order: the rows are the candidate's, the feature set is the same.
    order = [list(names).index(n) for n in baseline.metadata["feature_names"]]
    outputs = inputs.predict_rows(runtime, baseline.metadata, features[:, order])
    if baseline.metadata["task"] == "classification":
        classes = np.asarray(baseline.metadata["classes"])
        return metrics.classification(truth, outputs["label"], outputs["probabilities"], classes)
    return metrics.regression(truth, outputs["variable"].reshape(-1))


@dataclass(frozen=True)
class Evaluation:
    """What evaluate-model computed, as the report needs it."""

    title: str
    metadata: dict[str, Any]
    features: np.ndarray
    truth: np.ndarray
    outputs: Mapping[str, np.ndarray]
    metrics: Mapping[str, float]
    checks: Sequence[Check]
    passed: bool
    digests: Sequence[tuple[str, str, str]]  # (what, uri, hex sha256)
    predict: Callable[[np.ndarray], dict[str, np.ndarray]]
    seed: int


@dataclass(frozen=True)
class Written:
    path: Path
    digest: str  # sha256:<root digest of the report's files>
    artifacts: list[Artifact]


def draw_early(
    target: Target,
    metadata: Mapping[str, Any],
    features: np.ndarray,
    truth: np.ndarray,
    outputs: Mapping[str, np.ndarray],
    predict: Callable[[np.ndarray], dict[str, np.ndarray]],
    seed: int,
) -> None:
    """Start the figures as soon as the model has scored the rows.

    The step then imports scikit-learn for its metrics (about a second) while the renderer
    draws on the other core; the curves and the importance need numpy and onnxruntime only.
    """
    from tekton_mlops.ml import importance, plots

    if metadata["task"] == "classification":
        curves = plots.classification_curves(
            truth, outputs["label"], outputs["probabilities"], np.asarray(metadata["classes"])
        )
        target.renderer.submit("classification_figures", curves)
    else:
        target.renderer.submit("regression_figures", truth, outputs["variable"].reshape(-1))
    names = list(metadata["feature_names"])

    def permute() -> tuple[Any, str]:
        found = importance.permutation(predict, features, truth, metadata["task"], seed)
        note = (
            f"Decrease of {found.score} (from {found.baseline:.4f}) when one feature's values "
            f"are shuffled, mean and standard deviation over {found.repeats} shuffles of "
            f"{found.rows} rows (seed {seed}), computed on model.onnx under onnxruntime."
        )
        target.renderer.submit("importance_figure", names, found.mean, found.std, found.score, note)
        return found, note

    # onnxruntime scores without the GIL: the shuffled rows go through the model while the
    # step's own thread imports scikit-learn for its metrics. The pool's one thread ends
    # with its one job; the future re-raises its error in the step.
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="importance")
    target.started["importance"] = pool.submit(permute)
    pool.shutdown(wait=False)


def _figures_and_page(
    evaluation: Evaluation, baseline: Mapping[str, float], target: Target
) -> tuple[list[Plot], Page]:
    meta = evaluation.metadata
    names = list(meta["feature_names"])
    renderer = target.renderer
    if "importance" not in target.started:
        draw_early(
            target,
            meta,
            evaluation.features,
            evaluation.truth,
            evaluation.outputs,
            evaluation.predict,
            evaluation.seed,
        )
    # The importance figure is submitted by that thread: it must be in before the delta's.
    found, note = target.started["importance"].result()
    if baseline:
        renderer.submit("delta_figure", dict(evaluation.metrics), dict(baseline))
    figures: list[Plot] = renderer.result()
    figures.append(renderer.result())
    if baseline:
        figures.append(renderer.result())
    page = Page(
        title=evaluation.title,
        passed=evaluation.passed,
        rows=len(evaluation.truth),
        metrics=evaluation.metrics,
        digests=[(what, uri, as_digest(digest)) for what, uri, digest in evaluation.digests],
        figures=figures,
        checks=[(c.metric, c.condition, c.passed) for c in evaluation.checks],
        importance=sorted(  # the most important first, as in the figure
            ((n, float(m), float(s)) for n, m, s in zip(names, found.mean, found.std, strict=True)),
            key=lambda row: (-row[1], row[0]),
        ),
        importance_note=note,
        baseline=baseline,
    )
    return figures, page


def write(target: Target, evaluation: Evaluation) -> Written:
    """Draw the figures, write the page, and publish them with a manifest, all or nothing."""
    with target.renderer:
        return _write(target.path, evaluation, target.baseline, target)


def _write(dest: Path, evaluation: Evaluation, given: Baseline | None, target: Target) -> Written:
    baseline: dict[str, float] = {}
    if given is not None:
        baseline = baseline_metrics(
            given,
            evaluation.features,
            evaluation.truth,
            evaluation.metadata["feature_names"],
        )
    # Folders made on the way to the report go too if it fails.
    created = dest.parent
    while not created.parent.exists():
        created = created.parent
    made = None if created.exists() else created
    try:
        figures, page = _figures_and_page(evaluation, baseline, target)
        with staged_directory(dest, overwrite=True) as stage:
            stage.chmod(0o755)  # a staging directory is private; the report is to be read
            (stage / REPORT_HTML).write_text(render(page), encoding="utf-8")
            for plot in figures:
                (stage / plot.name).write_bytes(plot.png)
            manifest = build_manifest(stage)
            write_manifest(stage, manifest)
    except BaseException:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        raise
    root = dest.resolve()
    artifacts = [Artifact("report", root.as_uri(), manifest.root_hex)]
    artifacts += [
        Artifact(f"report/{entry.path}", (root / entry.path).as_uri(), entry.sha256)
        for entry in manifest.files
    ]
    return Written(dest, manifest.root, artifacts)


def baseline_artifacts(target: Target | None) -> list[Artifact]:
    """The baseline model as a lineage input, when there is one."""
    baseline = target.baseline if target is not None else None
    if baseline is None:
        return []
    uri = (baseline.path / MODEL_FILE).resolve().as_uri()
    return [Artifact("baseline-model", uri, baseline.digest)]
