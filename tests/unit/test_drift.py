"""ml/drift.py: every statistic against scipy's (or numpy's) own function on the same data,
Evidently's choice of test, and verdicts on synthetic tables with known drift and none."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from tekton_mlops.errors import DataError
from tekton_mlops.ml import drift
from tekton_mlops.ml.columns import CATEGORICAL, NUMERIC
from tekton_mlops.ml.drift_report import shares


@pytest.fixture
def rng() -> np.random.Generator:
    """The same draws for every test, whichever tests run and in what order."""
    return np.random.default_rng(20261130)


def sample(reference: np.ndarray, current: np.ndarray) -> drift.Numbers:
    return drift.numbers(reference, current)[0]


def counted(reference: np.ndarray, current: np.ndarray) -> drift.Counts:
    return drift.categories(reference, current)[0]


# --- statistics against their reference implementations ---------------------------------


@pytest.mark.parametrize(
    ("n", "m", "decimals"),
    [(300, 200, None), (40, 900, 1), (20000, 15000, None), (30000, 12000, 2)],
)
def test_ks_equals_scipy(rng: np.random.Generator, n: int, m: int, decimals: int | None) -> None:
    """Exact below 10,000 values a side, Smirnov's limit above; ties when rounded."""
    a, b = rng.normal(size=n), rng.normal(0.03, 1.1, size=m)
    if decimals is not None:
        a, b = a.round(decimals), b.round(decimals)
    found = stats.ks_2samp(a, b)
    d, p = drift.ks(sample(a, b))
    assert d == pytest.approx(float(found.statistic), abs=1e-12)
    assert p == pytest.approx(float(found.pvalue), rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("decimals", [None, 1])
def test_wasserstein_equals_scipy_over_population_std(
    rng: np.random.Generator, decimals: int | None
) -> None:
    a, b = rng.gamma(2.0, size=7000), rng.gamma(2.3, size=3000)
    if decimals is not None:
        a, b = a.round(decimals), b.round(decimals)
    expected = stats.wasserstein_distance(a, b) / np.std(a)
    assert drift.wasserstein_normed(sample(a, b)) == pytest.approx(expected, rel=1e-10)


def test_wasserstein_of_a_constant_reference_is_normed_by_the_floor() -> None:
    a, b = np.full(50, 3.0), np.full(40, 3.5)
    assert drift.wasserstein_normed(sample(a, b)) == pytest.approx(0.5 / 0.001)


def test_chisquare_equals_scipy_on_counts_scaled_to_the_current_size(
    rng: np.random.Generator,
) -> None:
    a = np.array(["x", "y", "z"])[rng.integers(0, 3, 700)]
    b = np.array(["x", "y", "z"])[rng.choice(3, 300, p=[0.5, 0.3, 0.2])]
    keys = ["x", "y", "z"]
    expected = [np.sum(a == k) * len(b) / len(a) for k in keys]
    found = stats.chisquare([np.sum(b == k) for k in keys], expected)
    statistic, p = drift.chisquare(counted(a, b))
    assert statistic == pytest.approx(float(found.statistic), rel=1e-12)
    assert p == pytest.approx(float(found.pvalue), rel=1e-9)


def test_chisquare_of_a_category_the_reference_never_had_is_infinite() -> None:
    statistic, p = drift.chisquare(counted(np.array(["a", "b"] * 50), np.array(["a", "c"] * 50)))
    assert math.isinf(statistic)
    assert p == 0.0


def test_z_test_equals_the_chi_square_test_of_the_two_by_two_table(
    rng: np.random.Generator,
) -> None:
    """The two-proportion Z-test is the uncorrected 2x2 chi-square test: z squared is its
    statistic, and the p-values are equal."""
    a = np.array(["no", "yes"])[rng.choice(2, 800, p=[0.7, 0.3])]
    b = np.array(["no", "yes"])[rng.choice(2, 500, p=[0.62, 0.38])]
    table = [[np.sum(a == "no"), np.sum(a == "yes")], [np.sum(b == "no"), np.sum(b == "yes")]]
    found = stats.chi2_contingency(table, correction=False)
    z, p = drift.z_test(counted(a, b))
    assert z**2 == pytest.approx(float(found.statistic), rel=1e-10)
    assert p == pytest.approx(float(found.pvalue), rel=1e-9)


def test_z_test_of_one_value_on_both_sides_is_no_drift() -> None:
    assert drift.z_test(counted(np.array(["a"] * 9), np.array(["a"] * 4))) == (0.0, 1.0)


def test_jensenshannon_equals_scipy() -> None:
    p, q = np.array([10, 0, 30, 60]), np.array([25, 5, 30, 40])
    assert drift.jensenshannon(p, q) == pytest.approx(
        float(distance.jensenshannon(p / p.sum(), q / q.sum())), rel=1e-12
    )
    assert drift.jensenshannon(p, p) == 0.0


def test_sturges_counts_equal_numpy_histogram_on_its_own_sturges_edges(
    rng: np.random.Generator,
) -> None:
    a, b = rng.normal(size=5000).round(2), rng.normal(0.4, 1, size=3000).round(2)
    edges = np.histogram_bin_edges(np.concatenate([a, b]), bins="sturges")
    ref, cur = drift.sturges_counts(sample(a, b))
    assert ref.tolist() == np.histogram(a, edges)[0].tolist()
    assert cur.tolist() == np.histogram(b, edges)[0].tolist()


def test_histogram_equals_numpy_with_values_on_the_edges() -> None:
    values = np.sort(np.array([0.0, 0.5, 1.0, 1.0, 2.5, 3.0, 3.0]))
    edges = np.array([0.0, 1.0, 2.0, 3.0])
    assert drift.histogram(values, edges).tolist() == np.histogram(values, edges)[0].tolist()


def test_psi_by_hand() -> None:
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    expected = 0.25 * math.log(2) + 0.25 * math.log(1.5)
    assert drift.psi(np.array([50, 50]), np.array([25, 75])) == pytest.approx(expected)
    # An empty bin counts as 1e-4 of its side.
    empty = (1e-4 - 0.5) * math.log(1e-4 / 0.5) + (1.0 - 0.5) * math.log(1.0 / 0.5)
    assert drift.psi(np.array([5, 5]), np.array([0, 10])) == pytest.approx(empty)


def test_quantile_bins_hold_a_tenth_of_the_reference_each(rng: np.random.Generator) -> None:
    a, b = rng.uniform(size=10000), rng.uniform(size=4000) ** 2
    ref, cur = drift.quantile_counts(sample(a, b), 10)
    assert ref.tolist() == [1000] * 10
    assert cur.sum() == 4000
    assert cur[0] > 1000  # squaring piles the current values up near 0


def test_quantile_bins_of_a_few_values_count_by_value() -> None:
    a, b = np.array([1.0, 2.0, 2.0, 3.0] * 10), np.array([1.0, 3.0, 3.0, 4.0] * 5)
    ref, cur = drift.quantile_counts(sample(a, b), 10)
    assert ref.tolist() == [10, 20, 10, 0]
    assert cur.tolist() == [5, 0, 10, 5]


# --- Evidently's choice of test ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "rows", "unique", "test"),
    [
        (NUMERIC, 1000, 6, "ks"),
        (NUMERIC, 1000, 5, "chisquare"),
        (NUMERIC, 1000, 3, "chisquare"),
        (NUMERIC, 1000, 2, "z"),
        (CATEGORICAL, 1000, 3, "chisquare"),
        (CATEGORICAL, 500, 2, "z"),
        (NUMERIC, 1001, 6, "wasserstein"),
        (NUMERIC, 1001, 5, "jensenshannon"),
        (NUMERIC, 5000, 2, "jensenshannon"),
        (CATEGORICAL, 1001, 30, "jensenshannon"),
    ],
)
def test_auto_chooses_as_evidently(kind: str, rows: int, unique: int, test: str) -> None:
    assert drift.choose(kind, "auto", rows, unique) == test


def test_a_requested_test_is_taken_as_it_is() -> None:
    assert drift.choose(NUMERIC, "psi", 10, 100) == "psi"


def test_jensenshannon_of_a_numeric_column_bins_by_value_up_to_20_values(
    rng: np.random.Generator,
) -> None:
    a = rng.integers(0, 4, 3000).astype(float)
    b = rng.integers(0, 5, 2000).astype(float)  # the value 4 is new
    result, _ = drift.column_drift("n", NUMERIC, a, b, drift.Options())
    keys = [0.0, 1.0, 2.0, 3.0, 4.0]
    expected = distance.jensenshannon(
        [np.sum(a == k) / len(a) for k in keys], [np.sum(b == k) / len(b) for k in keys]
    )
    assert result.test == "jensenshannon"
    assert result.statistic == pytest.approx(float(expected), rel=1e-12)


# --- verdicts on tables with known drift ---------------------------------------------------


def _table(rng: np.random.Generator, rows: int, shifted: bool) -> dict[str, np.ndarray]:
    cities = np.array(["paris", "berlin", "rome", "oslo"])
    odds = [0.1, 0.2, 0.3, 0.4] if shifted else [0.4, 0.3, 0.2, 0.1]
    return {
        "age": rng.normal(48 if shifted else 40, 10, rows),
        "income": rng.lognormal(10, 0.4, rows),
        "score": rng.uniform(0, 1, rows),
        "city": cities[rng.choice(4, rows, p=odds)],
        "plan": np.array(["free", "pro"])[rng.choice(2, rows, p=[0.7, 0.3])],
    }


KINDS = {"age": NUMERIC, "income": NUMERIC, "score": NUMERIC, "city": CATEGORICAL}
KINDS_ALL = {**KINDS, "plan": CATEGORICAL}


@pytest.mark.parametrize(
    ("rows", "tests"),
    [
        (500, {"age": "ks", "city": "chisquare", "plan": "z"}),
        (20000, {"age": "wasserstein", "city": "jensenshannon", "plan": "jensenshannon"}),
    ],
)
def test_known_drift_is_found_in_the_shifted_columns_only(
    rng: np.random.Generator, rows: int, tests: dict[str, str]
) -> None:
    found = drift.compare(
        _table(rng, rows, False), _table(rng, rows, True), KINDS_ALL, drift.Options()
    )
    verdicts = {c.column: c.drifted for c in found.columns}
    assert verdicts == {"age": True, "income": False, "score": False, "city": True, "plan": False}
    assert {c.column: c.test for c in found.columns if c.column in tests} == tests
    assert found.drifted_count == 2
    assert found.drifted_share == pytest.approx(0.4)
    assert not found.drifted  # 0.4 < 0.5
    assert [c.column for c in found.columns] == list(KINDS_ALL)


def test_same_distribution_drifts_nowhere(rng: np.random.Generator) -> None:
    found = drift.compare(
        _table(rng, 5000, False), _table(rng, 3000, False), KINDS_ALL, drift.Options()
    )
    assert [c.column for c in found.columns if c.drifted] == []
    assert found.drifted_share == 0.0
    assert not found.drifted
    assert all(c.psi is not None and c.psi < 0.02 for c in found.columns)


def test_a_share_equal_to_drift_share_is_drift(rng: np.random.Generator) -> None:
    reference, current = _table(rng, 500, False), _table(rng, 500, True)
    found = drift.compare(reference, current, KINDS, drift.Options())
    assert [c.column for c in found.columns if c.drifted] == ["age", "city"]
    assert found.drifted_share == 0.5
    assert found.drifted
    stricter = drift.compare(reference, current, KINDS, drift.Options(drift_share=0.51))
    assert not stricter.drifted


def test_thresholds_move_the_verdict(rng: np.random.Generator) -> None:
    reference, current = _table(rng, 20000, False), _table(rng, 20000, True)
    loose = drift.Options(thresholds=drift.Thresholds(wasserstein=5.0, jensenshannon=0.8))
    found = drift.compare(reference, current, KINDS, loose)
    assert [c.column for c in found.columns if c.drifted] == []
    assert {c.column: c.threshold for c in found.columns}["age"] == 5.0


def test_psi_as_the_deciding_test(rng: np.random.Generator) -> None:
    options = drift.Options(numeric_test="psi", categorical_test="psi")
    found = drift.compare(_table(rng, 5000, False), _table(rng, 5000, True), KINDS, options)
    age = found.columns[0]
    assert age.test == "psi"
    assert age.statistic == age.score == age.psi
    assert age.drifted
    assert [c.column for c in found.columns if c.drifted] == ["age", "city"]


def test_missing_values_are_left_out_and_counted() -> None:
    reference = {"x": np.array([1.0, np.nan, 2.0, 3.0] * 30), "c": np.array(["a", "", "b"] * 40)}
    current = {"x": np.array([1.0, 2.0, np.nan, np.nan] * 30), "c": np.array(["a", "b", ""] * 40)}
    found = drift.compare(reference, current, {"x": NUMERIC, "c": CATEGORICAL}, drift.Options())
    x, c = found.columns
    assert (x.reference_count, x.reference_missing, x.current_count, x.current_missing) == (
        90,
        30,
        60,
        60,
    )
    assert (c.reference_count, c.reference_missing) == (80, 40)
    assert c.unique == 2  # the missing marker is not a category


def test_a_column_with_no_current_values_drifted() -> None:
    found = drift.compare(
        {"x": np.arange(50.0)}, {"x": np.full(40, np.nan)}, {"x": NUMERIC}, drift.Options()
    )
    (x,) = found.columns
    assert x.drifted
    assert x.test == "none"
    assert x.score is None
    assert x.note == "no values in the current data"


def test_a_column_with_no_reference_values_is_an_error() -> None:
    with pytest.raises(DataError, match="column 'c' has no values in the reference data"):
        drift.compare(
            {"c": np.array(["", ""])}, {"c": np.array(["a"])}, {"c": CATEGORICAL}, drift.Options()
        )


def test_histogram_shares_of_each_side_sum_to_one(rng: np.random.Generator) -> None:
    a, b = rng.normal(size=3000), rng.normal(1, 1, size=2000)
    labels, ref, cur = shares(sample(a, b))
    assert len(labels) == 30
    assert ref.sum() == pytest.approx(1)
    assert cur.sum() == pytest.approx(1)
    many = np.array([f"c{i}" for i in range(30)])
    labels, ref, cur = shares(counted(many[rng.integers(0, 30, 900)], many[rng.integers(0, 5, 90)]))
    assert len(labels) == 21
    assert labels[-1] == "other (10)"
    assert ref.sum() == pytest.approx(1)
    assert cur.sum() == pytest.approx(1)
