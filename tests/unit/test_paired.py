"""The model metric per version and the paired tests between versions, on constructed rows.

accuracy against McNemar's exact test by hand and scipy's binomial test, macro F1
against scikit-learn, rmse's Wilcoxon against scipy; fixed seeds, so a "clearly
better" version is one by construction.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import f1_score

from tekton_mlops.serving.abtest import Version, decide
from tekton_mlops.serving.paired import (
    BOOTSTRAP,
    MCNEMAR,
    WILCOXON,
    class_key,
    classification,
    macro_f1,
    regression,
)


def named(*names: str) -> list[Version]:
    return [Version(name, {}, True) for name in names]


def noisy_labels(truth: list[int], wrong: int, seed: int) -> list[int]:
    """``truth`` with ``wrong`` rows (chosen by the seed) moved to the next class of 3."""
    labels = list(truth)
    for i in np.random.default_rng(seed).choice(len(truth), wrong, replace=False):
        labels[i] = (labels[i] + 1) % 3
    return labels


TRUTH = [i % 3 for i in range(300)]


def test_classes_compare_however_they_were_written() -> None:
    assert class_key(1) == class_key("1") == class_key("1.0") == class_key(" 1 ") == "1"
    assert class_key(True) == class_key("true") == "1"
    assert class_key(False) == class_key("False") == class_key(0) == "0"
    assert class_key("setosa") == "setosa"
    assert class_key(2.5) == "2.5"
    assert class_key(None) is None


def test_accuracy_and_mcnemars_exact_test() -> None:
    # From the CSV the truth is text; the servers answer integers.
    scores = classification(
        "accuracy",
        [str(t) for t in TRUTH],
        {"good": noisy_labels(TRUTH, 15, 1), "weak": noisy_labels(TRUTH, 60, 2)},
    )
    assert scores.value("good") == 0.95
    assert scores.value("weak") == 0.8
    good, weak = named("good", "weak")
    test = scores.test(good, weak)
    truth = np.array(TRUTH)
    right_good = np.array(noisy_labels(TRUTH, 15, 1)) == truth
    right_weak = np.array(noisy_labels(TRUTH, 60, 2)) == truth
    only_good = int((right_good & ~right_weak).sum())
    only_weak = int((~right_good & right_weak).sum())
    assert only_good - only_weak == 45  # 285 - 240 right
    assert (test.test, test.statistic, test.favours) == (MCNEMAR, only_good, "good")
    assert test.p_value == stats.binomtest(only_good, only_good + only_weak, 0.5).pvalue
    assert test.p_value < 1e-6
    assert test.detail == f"{only_good} row(s) only good got right, {only_weak} only weak"


def test_mcnemar_by_hand_and_when_the_versions_agree() -> None:
    truth = ["a"] * 20
    # 10 rows only "one" gets right, none only "two": p = 2 * 0.5**10.
    scores = classification("accuracy", truth, {"one": ["a"] * 20, "two": ["b"] * 10 + ["a"] * 10})
    one, two = named("one", "two")
    assert scores.test(one, two).p_value == pytest.approx(2 * 0.5**10)
    same = classification("accuracy", truth, {"one": ["a"] * 20, "two": ["a"] * 20})
    test = same.test(one, two)
    assert (test.p_value, test.favours) == (1.0, "")


def test_macro_f1_is_scikit_learns() -> None:
    generator = np.random.default_rng(5)
    truth = generator.integers(0, 4, 500)
    predicted = np.where(generator.random(500) < 0.7, truth, generator.integers(0, 5, 500))
    assert macro_f1(truth, predicted, 5) == pytest.approx(
        f1_score(truth, predicted, average="macro", zero_division=0)
    )
    scores = classification("f1", list(truth), {"v": list(predicted)})
    assert scores.value("v") == round(f1_score(truth, predicted, average="macro"), 6)


def test_f1_by_a_paired_bootstrap() -> None:
    scores = classification(
        "f1", TRUTH, {"good": noisy_labels(TRUTH, 15, 1), "weak": noisy_labels(TRUTH, 60, 2)}
    )
    good, weak = named("good", "weak")
    test = scores.test(good, weak)
    assert (test.test, test.favours) == (BOOTSTRAP, "good")
    assert test.statistic == pytest.approx(scores.value("good") - scores.value("weak"), abs=1e-6)
    # No resample of 2000 reversed the order: the smallest p the bootstrap can give.
    assert test.p_value == pytest.approx(2 / 2001)
    # The same seed, the same answer.
    assert scores.test(good, weak) == test
    # Nearly alike: 20 and 22 wrong rows.
    close = classification(
        "f1", TRUTH, {"good": noisy_labels(TRUTH, 20, 3), "weak": noisy_labels(TRUTH, 22, 4)}
    )
    assert close.test(good, weak).p_value > 0.3


def test_rmse_and_the_wilcoxon_signed_rank_test() -> None:
    generator = np.random.default_rng(7)
    truth = generator.normal(100, 20, 200)
    close = truth + generator.normal(0, 5, 200)
    far = truth + generator.normal(0, 15, 200)
    scores = regression(list(truth), {"close": list(close), "far": list(far)})
    assert scores.value("close") == round(float(np.sqrt(np.mean((close - truth) ** 2))), 6)
    assert scores.value("close") < scores.value("far")
    near, wide = named("close", "far")
    test = scores.test(near, wide)
    expected = stats.wilcoxon((close - truth) ** 2, (far - truth) ** 2)
    assert (test.test, test.statistic, test.p_value) == (
        WILCOXON, float(expected.statistic), float(expected.pvalue),
    )  # fmt: skip
    assert test.favours == "close"
    assert test.p_value < 1e-6
    same = regression([1.0, 2.0], {"close": [1.5, 2.5], "far": [1.5, 2.5]}).test(near, wide)
    assert (same.p_value, same.favours, same.detail) == (1.0, "", "equal errors on every row")


def test_the_paired_test_drives_the_winner_rule() -> None:
    scores = classification(
        "accuracy",
        TRUTH,
        {"a": noisy_labels(TRUTH, 60, 2), "b": noisy_labels(TRUTH, 15, 1),
         "c": noisy_labels(TRUTH, 58, 6)},
    )  # fmt: skip
    versions = [Version(n, {"accuracy": scores.value(n)}, True) for n in ("a", "b", "c")]
    decision = decide(versions, "accuracy", 0.95, scores.test)
    assert decision.winner == "b"  # the highest accuracy wins, a metric where higher is better
    assert [t.other for t in decision.tests] == ["c", "a"]
