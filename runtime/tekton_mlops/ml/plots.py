"""Figures of an evaluation as PNG bytes, rendered headless and reproducibly.

    >>> from tekton_mlops.ml import plots
    >>> figures = plots.regression_figures(truth, predicted)
    >>> figures += plots.classification_figures(plots.classification_curves(...))
    >>> figures[0].name, figures[0].png[:8]
    ('predicted-vs-actual.png', b'\\x89PNG\\r\\n\\x1a\\n')

Figures are drawn on matplotlib's ``Figure`` with the Agg canvas, never through
pyplot: a step runs in a pod without a display, and pyplot's global state and
backend selection would only cost start-up time. Every figure is drawn under
matplotlib's default rcParams (a user's matplotlibrc does not change the
bytes), at a fixed size and DPI, and saved without the ``Software`` text chunk,
so the same inputs give the same PNG bytes with the same matplotlib and fonts.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Every figure's size in inches and resolution: 768 x 576 pixels.
SIZE = (6.4, 4.8)
DPI = 120
#: Bins of the calibration (reliability) curve, equal-width over [0, 1].
CALIBRATION_BINS = 10
#: Classes drawn one by one in the ROC and precision-recall figures; beyond this the
#: legend is unreadable, so the classes with the most rows are drawn.
MAX_CURVES = 10
#: Error metrics: a negative delta against a baseline is an improvement.
LOWER_IS_BETTER = frozenset({"mae", "mse", "rmse"})


@dataclass(frozen=True)
class Plot:
    """One figure of the report: its file name, title, caption and PNG bytes."""

    name: str
    title: str
    caption: str
    png: bytes


def _render(
    name: str, title: str, caption: str, draw: Callable[[Any], None], left: float = 0.1
) -> Plot:
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context():
        matplotlib.rcdefaults()  # restored when the context ends
        # DejaVu ships inside matplotlib: the same glyphs on every machine.
        matplotlib.rcParams.update({"font.family": "DejaVu Sans", "font.size": 9})
        figure = Figure(figsize=SIZE, dpi=DPI)
        FigureCanvasAgg(figure)
        # Fixed margins rather than tight_layout, which draws the figure once more to
        # measure it and costs as much as the drawing itself.
        figure.subplots_adjust(left=left, right=0.97, bottom=0.12, top=0.92)
        axes = figure.add_subplot()
        draw(axes)
        axes.set_title(title, y=1.0)  # a fixed place: finding one draws the ticks once more
        buffer = io.BytesIO()
        figure.savefig(
            buffer,
            format="png",
            dpi=DPI,
            metadata={"Software": None},
            # zlib level 1: a few percent larger files, a fraction of the time of level 6.
            pil_kwargs={"compress_level": 1},
        )
    return Plot(name, title, caption, buffer.getvalue())


def _short(text: str, limit: int) -> str:
    """A label cut to ``limit`` characters, so a long name cannot push the plot away."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _drawn_classes(truth: np.ndarray, classes: np.ndarray) -> list[int]:
    """Indices of the classes to draw curves for: the most frequent, in class order."""
    counts = [int(np.sum(truth == c)) for c in classes]
    ranked = sorted(range(len(classes)), key=lambda i: (-counts[i], i))[:MAX_CURVES]
    return sorted(i for i in ranked if counts[i] > 0)


@dataclass(frozen=True)
class ClassifierCurves:
    """What the classifier figures show, computed (with numpy) where the model was scored,
    so the process that draws them needs only numpy and matplotlib."""

    classes: list[str]
    roc: list[tuple[str, np.ndarray, np.ndarray, float]]  # class, fpr, tpr, AUC
    pr: list[tuple[str, np.ndarray, np.ndarray]]  # class, recall, precision
    confusion: np.ndarray  # true class (rows) x predicted class (columns)
    calibration: tuple[list[float], list[float]]  # mean predicted, observed fraction
    scope: str  # which classes the curves are of, for the captions
    calibration_caption: str


def classification_curves(
    truth: np.ndarray, labels: np.ndarray, proba: np.ndarray, classes: np.ndarray
) -> ClassifierCurves:
    """ROC and precision-recall curves, confusion matrix and calibration bins."""
    binary = len(classes) == 2
    # Binary: the curves of the positive class (classes[1]), as roc_auc is computed.
    # Several classes: one-vs-rest, one curve per class.
    drawn = [1] if binary else _drawn_classes(truth, classes)
    drawn = [i for i in drawn if 0 < np.sum(truth == classes[i]) < len(truth)]
    roc, pr = [], []
    for i in drawn:
        fpr, tpr, precision, recall = _curves(truth == classes[i], proba[:, i])
        roc.append((str(classes[i]), fpr, tpr, float(np.trapezoid(tpr, fpr))))
        pr.append((str(classes[i]), recall, precision))
    if binary:
        confidence, correct = proba[:, 1], truth == classes[1]
        calibration_caption = (
            f"Calibration of the positive class {classes[1]}: in each of "
            f"{CALIBRATION_BINS} equal-width bins of its predicted probability, the "
            "fraction of rows that are of that class. A calibrated model follows the diagonal."
        )
    else:
        # The top class: the predicted label's probability against how often it is right,
        # one curve however many classes (top-label calibration).
        top = np.argmax(proba, axis=1)
        confidence, correct = proba[np.arange(len(top)), top], classes[top] == truth
        calibration_caption = (
            f"Calibration of the top class (top-label calibration): in each of "
            f"{CALIBRATION_BINS} equal-width bins of the predicted label's probability, "
            "the fraction of rows whose predicted label is right. A calibrated model "
            "follows the diagonal."
        )
    predicted, observed, _ = calibration_bins(confidence, correct)
    scope = f"the positive class {classes[1]}" if binary else "each class, one-vs-rest"
    if not binary and len(drawn) < len(classes):
        scope += f" (the {len(drawn)} largest)"
    return ClassifierCurves(
        classes=[str(c) for c in classes],
        roc=roc,
        pr=pr,
        confusion=_confusion(truth, labels, classes),
        calibration=(predicted, observed),
        scope=scope,
        calibration_caption=calibration_caption,
    )


def _curves(
    positive: np.ndarray, score: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ROC (fpr, tpr) and precision-recall (precision, recall) of one class, as
    scikit-learn's roc_curve (without dropping collinear points, which changes no area) and
    precision_recall_curve compute them. numpy only: the figures are started before the
    step imports scikit-learn for its metrics, and drawn while it does."""
    order = np.argsort(score, kind="mergesort")[::-1]
    ranked, hits = score[order], positive[order].astype(np.float64)
    # One point per distinct score, after all rows with that score.
    last = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]
    tps = np.cumsum(hits)[last]
    fps = 1 + last - tps
    fpr = np.r_[0.0, fps / fps[-1]]
    tpr = np.r_[0.0, tps / tps[-1]]
    # Precision-recall at every threshold, lowest first, closed by (recall 0, precision 1).
    precision = np.r_[(tps / (tps + fps))[::-1], 1.0]
    recall = np.r_[(tps / tps[-1])[::-1], 0.0]
    return fpr, tpr, precision, recall


def _confusion(truth: np.ndarray, labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Counts of (true class, predicted class) rows, in the order of ``classes``."""
    index = {c: i for i, c in enumerate(classes.tolist())}
    counts = np.zeros((len(classes), len(classes)), dtype=np.int64)
    rows = [index.get(t) for t in truth.tolist()]
    cols = [index.get(p) for p in labels.tolist()]
    kept = [(r, c) for r, c in zip(rows, cols, strict=True) if r is not None and c is not None]
    if kept:
        np.add.at(counts, tuple(np.asarray(kept).T), 1)
    return counts


def classification_figures(curves: ClassifierCurves) -> list[Plot]:
    """ROC, precision-recall, confusion matrix and calibration of a classifier."""

    def roc(axes: Any) -> None:
        for name, fpr, tpr, area in curves.roc:
            axes.plot(fpr, tpr, label=f"{name} (AUC {area:.3f})")
        axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8, label="chance")
        axes.set(xlabel="false positive rate", ylabel="true positive rate")
        axes.legend(loc="lower right")

    def pr(axes: Any) -> None:
        for name, recall, precision in curves.pr:
            axes.plot(recall, precision, label=name)
        axes.set(xlabel="recall", ylabel="precision", ylim=(0, 1.02))
        axes.legend(loc="lower left")

    def confusion(axes: Any) -> None:
        matrix = curves.confusion
        axes.imshow(matrix, cmap="Blues")
        ticks = range(len(curves.classes))
        names = [_short(c, 12) for c in curves.classes]
        axes.set(xticks=ticks, yticks=ticks, xlabel="predicted", ylabel="true")
        if len(names) > 4:  # side by side, the names would overlap
            axes.set_xticklabels(names, rotation=45, ha="right")
        else:
            axes.set_xticklabels(names)
        axes.set_yticklabels(names)
        if len(names) <= 20:  # counts in the cells while they still fit
            limit = matrix.max() / 2 if matrix.size else 0
            for (row, column), count in np.ndenumerate(matrix):
                colour = "white" if count > limit else "black"
                axes.text(column, row, str(count), ha="center", va="center", color=colour)

    def calibration(axes: Any) -> None:
        predicted, observed = curves.calibration
        axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
        axes.plot(predicted, observed, marker="o")
        axes.set(
            xlabel="mean predicted probability",
            ylabel="observed fraction",
            xlim=(0, 1),
            ylim=(0, 1.02),
        )

    return [
        _render(
            "roc.png",
            "ROC curve",
            f"Receiver operating characteristic of {curves.scope}, with its area under the curve.",
            roc,
        ),
        _render(
            "precision-recall.png",
            "Precision-recall curve",
            f"Precision against recall of {curves.scope}, over every probability threshold.",
            pr,
        ),
        _render(
            "confusion-matrix.png",
            "Confusion matrix",
            "Rows of each true class (vertical) by predicted class (horizontal), as counts.",
            confusion,
        ),
        _render("calibration.png", "Calibration curve", curves.calibration_caption, calibration),
    ]


def calibration_bins(
    confidence: np.ndarray, correct: np.ndarray
) -> tuple[list[float], list[float], list[int]]:
    """Mean predicted probability, observed fraction and row count of each non-empty bin."""
    # Equal-width bins with 1.0 in the last one, as scikit-learn's calibration_curve
    # (strategy="uniform") places them; empty bins have no point.
    index = np.minimum((confidence * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    predicted, observed, counts = [], [], []
    for b in range(CALIBRATION_BINS):
        members = index == b
        if members.any():
            predicted.append(float(np.mean(confidence[members])))
            observed.append(float(np.mean(correct[members])))
            counts.append(int(np.sum(members)))
    return predicted, observed, counts


def regression_figures(truth: np.ndarray, predicted: np.ndarray) -> list[Plot]:
    """Predicted against actual values, and residuals against predictions."""
    low = float(min(truth.min(), predicted.min()))
    high = float(max(truth.max(), predicted.max()))
    residuals = truth - predicted

    def scatter(axes: Any) -> None:
        axes.scatter(truth, predicted, s=8, alpha=0.5)
        axes.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=0.8)
        axes.set(xlabel="actual", ylabel="predicted")

    def residual(axes: Any) -> None:
        axes.scatter(predicted, residuals, s=8, alpha=0.5)
        axes.axhline(0, linestyle="--", color="grey", linewidth=0.8)
        axes.set(xlabel="predicted", ylabel="residual (actual - predicted)")

    return [
        _render(
            "predicted-vs-actual.png",
            "Predicted vs actual",
            "Each row's prediction against its true value; a perfect model lies on the diagonal.",
            scatter,
        ),
        _render(
            "residuals.png",
            "Residuals",
            "Actual minus predicted value against the prediction; a good model shows no "
            "pattern around zero.",
            residual,
        ),
    ]


def importance_figure(
    names: Sequence[str],
    mean: np.ndarray,
    std: np.ndarray,
    score: str,
    caption: str,
    top: int = 20,
) -> Plot:
    """Horizontal bars of permutation importance, the largest on top."""
    order = sorted(range(len(names)), key=lambda i: (-float(mean[i]), names[i]))[:top]
    if len(names) > top:
        caption += f" The {top} most important of {len(names)} features are drawn."

    def bars(axes: Any) -> None:
        positions = np.arange(len(order))[::-1]
        axes.barh(positions, mean[order], xerr=std[order], color="tab:blue")
        axes.set_yticks(positions, labels)
        axes.axvline(0, color="grey", linewidth=0.8)
        axes.set(xlabel=f"mean decrease of {score} when the feature is shuffled")

    labels = [_short(names[i], 28) for i in order]
    # Room for the longest feature name at 9 pt (about 0.6 em a character).
    left = min(0.45, 0.04 + max(map(len, labels)) * 9 * 0.6 / 72 / SIZE[0])
    return _render(
        "permutation-importance.png", "Permutation feature importance", caption, bars, left
    )


def delta_figure(candidate: Mapping[str, float], baseline: Mapping[str, float]) -> Plot:
    """Bars of each metric's change against the baseline, relative to the baseline."""
    names = sorted(n for n in candidate if n in baseline)
    # Metrics live on different scales (mse in squared units next to r2 around 1): bars of
    # the change relative to the baseline can share one axis; each is labelled with the
    # absolute change the table shows.
    change = {n: candidate[n] - baseline[n] for n in names}
    relative = [100 * change[n] / abs(baseline[n]) if baseline[n] else 0.0 for n in names]

    def bars(axes: Any) -> None:
        better = [change[n] <= 0 if n in LOWER_IS_BETTER else change[n] >= 0 for n in names]
        colours = ["tab:green" if b else "tab:red" for b in better]
        drawn = axes.bar(names, relative, color=colours)
        axes.bar_label(drawn, labels=[f"{change[n]:+.4g}" for n in names], padding=2)
        axes.axhline(0, color="grey", linewidth=0.8)
        axes.margins(y=0.15)
        axes.set(ylabel="change against the baseline (% of its value)")

    return _render(
        "baseline-deltas.png",
        "Metrics against the baseline",
        "Each metric of this model against the baseline model's, on the same data, as a "
        "percentage of the baseline's value (0 where that value is 0), labelled with the "
        "difference candidate minus baseline; green where this model is better (higher, or "
        "lower for the errors mae, mse and rmse), red where it is worse.",
        bars,
    )
