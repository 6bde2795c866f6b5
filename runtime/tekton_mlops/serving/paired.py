"""A model metric per version on the same labelled rows, and paired tests between versions.

Every version answers the same rows, so two versions are compared row by row: a
row's difficulty is the same for both, which makes a paired test far more sensitive
than comparing two metric values. The tests:

- accuracy: McNemar's exact test. Only the rows exactly one of the two versions gets
  right say anything; with no difference between them those split 50:50, so the
  p-value is the two-sided binomial test on the split (scipy.stats.binomtest).
- f1 (macro average over the classes present): F1 is no sum over rows, so a paired
  bootstrap: the rows are resampled (the same draw for both versions)
  :data:`BOOTSTRAP_RESAMPLES` times with a fixed seed, and the p-value is twice the
  smaller share of resamples on either side of no difference.
- rmse: the Wilcoxon signed-rank test on the paired squared errors
  (scipy.stats.wilcoxon, rows with equal errors dropped); the direction is the side
  whose squared errors are smaller by the signed ranks.

Example::

    scores = classification("accuracy", truth, {"v1": labels_1, "v2": labels_2})
    scores.value("v1")                  # 0.953333
    decide(versions, "accuracy", 0.95, scores.test)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tekton_mlops.serving.abtest import Comparison, Version

CLASSIFIER_METRICS = ("accuracy", "f1")
REGRESSOR_METRICS = ("rmse",)
MCNEMAR = "McNemar's exact test"
BOOTSTRAP = "paired bootstrap"
WILCOXON = "Wilcoxon signed-rank test"
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


def class_key(value: Any) -> str | None:
    """A class as text that compares equal however it was written: 1, "1", "1.0", True."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    text = str(value).strip()
    lowered = text.lower()
    if lowered in ("true", "false"):
        return "1" if lowered == "true" else "0"
    try:
        number = float(text)
    except ValueError:
        return text
    if math.isfinite(number) and number.is_integer():
        return str(int(number))
    return text


def macro_f1(truth: Any, predicted: Any, classes: int) -> float:
    """Macro F1 over the classes present in truth or prediction (scikit-learn's
    ``f1_score(average="macro")``, 0 for a class never predicted right)."""
    import numpy as np

    hits = np.bincount(truth[truth == predicted], minlength=classes)
    weight = np.bincount(truth, minlength=classes) + np.bincount(predicted, minlength=classes)
    present = weight > 0
    return float(np.mean(2 * hits[present] / weight[present]))


@dataclass(frozen=True)
class RowScores:
    """The rows' truth and each version's predictions: class codes, or values for rmse."""

    metric: str
    truth: Any  # numpy array
    predictions: Mapping[str, Any]  # version -> numpy array, aligned with truth
    classes: int = 0

    def value(self, name: str) -> float:
        import numpy as np

        predicted = self.predictions[name]
        if self.metric == "accuracy":
            result = float(np.mean(predicted == self.truth))
        elif self.metric == "f1":
            result = macro_f1(self.truth, predicted, self.classes)
        else:
            result = math.sqrt(float(np.mean((predicted - self.truth) ** 2)))
        return round(result, 6)

    def test(self, best: Version, other: Version) -> Comparison:
        """The paired test of ``best`` against ``other`` (an :data:`abtest.Comparer`)."""
        mine, theirs = self.predictions[best.name], self.predictions[other.name]
        if self.metric == "accuracy":
            return _mcnemar(best.name, other.name, mine == self.truth, theirs == self.truth)
        if self.metric == "f1":
            return self._bootstrap(best.name, other.name, mine, theirs)
        return _wilcoxon(
            best.name, other.name, (mine - self.truth) ** 2, (theirs - self.truth) ** 2
        )

    def _bootstrap(self, best: str, other: str, mine: Any, theirs: Any) -> Comparison:
        import numpy as np

        observed = macro_f1(self.truth, mine, self.classes) - macro_f1(
            self.truth, theirs, self.classes
        )
        generator = np.random.default_rng(BOOTSTRAP_SEED)
        rows = len(self.truth)
        below = above = 0
        for _ in range(BOOTSTRAP_RESAMPLES):
            draw = generator.integers(0, rows, rows)
            truth = self.truth[draw]
            difference = macro_f1(truth, mine[draw], self.classes) - macro_f1(
                truth, theirs[draw], self.classes
            )
            below += difference <= 0
            above += difference >= 0
        # +1: the observed sample counts as one of the resamples, so p is never 0.
        smaller = (min(below, above) + 1) / (BOOTSTRAP_RESAMPLES + 1)
        favours = "" if observed == 0 else best if observed > 0 else other
        detail = f"F1 difference {observed:+.4f}, {BOOTSTRAP_RESAMPLES} resamples"
        return Comparison(
            best, other, BOOTSTRAP, observed, min(1.0, 2 * smaller), favours, detail=detail
        )


def _mcnemar(best: str, other: str, mine: Any, theirs: Any) -> Comparison:
    from scipy.stats import binomtest

    only_mine = int((mine & ~theirs).sum())
    only_theirs = int((~mine & theirs).sum())
    discordant = only_mine + only_theirs
    p = float(binomtest(only_mine, discordant, 0.5).pvalue) if discordant else 1.0
    favours = "" if only_mine == only_theirs else best if only_mine > only_theirs else other
    detail = f"{only_mine} row(s) only {best} got right, {only_theirs} only {other}"
    return Comparison(best, other, MCNEMAR, float(only_mine), p, favours, detail=detail)


def _wilcoxon(best: str, other: str, mine: Any, theirs: Any) -> Comparison:
    import numpy as np
    from scipy.stats import rankdata, wilcoxon

    differences = mine - theirs
    nonzero = differences[differences != 0]
    if not len(nonzero):
        return Comparison(best, other, WILCOXON, None, 1.0, "", detail="equal errors on every row")
    result = wilcoxon(mine, theirs, alternative="two-sided")
    ranks = rankdata(np.abs(nonzero))
    lower_for_mine = float(ranks[nonzero < 0].sum())  # rows where best's error is smaller
    lower_for_theirs = float(ranks[nonzero > 0].sum())
    favours = (
        ""
        if lower_for_mine == lower_for_theirs
        else best
        if lower_for_mine > lower_for_theirs
        else other
    )
    detail = (
        f"{int((nonzero < 0).sum())} row(s) closer by {best}, {int((nonzero > 0).sum())} by {other}"
    )
    return Comparison(
        best, other, WILCOXON, float(result.statistic), float(result.pvalue), favours, detail=detail
    )


def classification(
    metric: str, truth: Sequence[Any], predictions: Mapping[str, Sequence[Any]]
) -> RowScores:
    """Score classes: ``truth`` and each version's labels, as a CSV or a server gives them."""
    import numpy as np

    codes: dict[str | None, int] = {}

    def encode(values: Sequence[Any]) -> Any:
        return np.array([codes.setdefault(class_key(v), len(codes)) for v in values], dtype=int)

    coded_truth = encode(truth)
    coded = {name: encode(labels) for name, labels in predictions.items()}
    return RowScores(metric, coded_truth, coded, len(codes))


def regression(truth: Sequence[float], predictions: Mapping[str, Sequence[float]]) -> RowScores:
    """Score values for rmse: ``truth`` and each version's predicted values."""
    import numpy as np

    return RowScores(
        "rmse",
        np.asarray(truth, dtype=float),
        {name: np.asarray(values, dtype=float) for name, values in predictions.items()},
    )
