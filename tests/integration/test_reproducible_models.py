"""model.onnx depends on the data, the params and the seed alone, as train-model --help promises.

Each training runs the CLI in its own process: a model's digest is compared across
processes, where Python's hash seed differs, not within one. And the default estimator
is well conditioned on the demo data: no ConvergenceWarning reaches the user.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest

from tekton_mlops.ml import estimators
from tekton_mlops.params import load_schema
from tests.conftest import CLI

pytestmark = pytest.mark.integration

#: What train-model offers its users: the schema's enum (the test below holds it to estimators.py).
OFFERED = list(load_schema("train-model").properties["estimator"]["enum"])
#: Small models keep each process short; the property under test does not depend on size.
SMALL = {
    "random-forest-classifier": {"n_estimators": 5, "max_depth": 3},
    "gradient-boosting-classifier": {"n_estimators": 5, "max_depth": 2},
    "random-forest-regressor": {"n_estimators": 5, "max_depth": 3},
    "gradient-boosting-regressor": {"n_estimators": 5, "max_depth": 2},
}
#: Hash seeds for the processes. skl2onnx iterates over a set of (domain, version) pairs to
#: write opset_import; under these two seeds that set iterates in different orders for a
#: binary gradient-boosting classifier, so an export that is not canonical differs here.
HASH_SEEDS = ("0", "6")


def test_every_offered_estimator_is_covered() -> None:
    assert sorted(OFFERED) == sorted(estimators.ESTIMATORS)


@pytest.fixture(scope="module")
def small_tables(datasets: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:  # type: ignore[type-arg]
    """Binary classification (the case with the most opset domains) and regression, 200 rows."""
    root = tmp_path_factory.mktemp("small")
    tables = {}
    for task, name in (("classification", "cancer"), ("regression", "diabetes")):
        lines = datasets[name].read_text().splitlines()
        path = root / f"{name}.csv"
        path.write_text("\n".join(lines[:201]) + "\n")
        tables[task] = path
    return tables


def train_in_process(data: Path, out: Path, estimator: str, hash_seed: str) -> subprocess.Popen:  # type: ignore[type-arg]
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    return subprocess.Popen(
        [
            CLI,
            "train-model",
            f"--data={data}",
            "--target-column=target",
            f"--output={out}",
            f"--estimator={estimator}",
            f"--hyperparameters={json.dumps(SMALL.get(estimator, {}))}",
            f"--results-dir={out.parent / (out.name + '-results')}",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("estimator", OFFERED)
def test_model_bytes_do_not_depend_on_the_process(small_tables, tmp_path, estimator) -> None:  # type: ignore[no-untyped-def]
    data = small_tables[estimators.ESTIMATORS[estimator].task]
    outs = [tmp_path / f"model-hashseed-{seed}" for seed in HASH_SEEDS]
    # Both processes at once: the machine has two cores and each run is mostly start-up.
    processes = [
        train_in_process(data, out, estimator, seed)
        for out, seed in zip(outs, HASH_SEEDS, strict=True)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
    files = [(out / "model.onnx").read_bytes() for out in outs]
    digests = [(out.parent / (out.name + "-results") / "model-digest").read_text() for out in outs]
    # The digest a user pins is the file's, and it is the same from every process.
    assert digests == ["sha256:" + hashlib.sha256(f).hexdigest() for f in files]
    assert len(set(digests)) == 1, f"{estimator}: {digests}"
    roots = {
        (out.parent / (out.name + "-results") / "model-root-digest").read_text() for out in outs
    }
    assert len(roots) == 1


def test_canonical_export_ignores_what_the_converter_leaves_to_chance(datasets) -> None:  # type: ignore[no-untyped-def]
    """Whatever order or names a converter picks, the canonical bytes are the same."""
    import onnx

    from tekton_mlops.ml.onnx_export import canonical, export

    table = np.genfromtxt(datasets["cancer"], delimiter=",", skip_header=1)
    x, y = table[:200, :-1], table[:200, -1].astype(np.int64)
    model = estimators.build("gradient-boosting-classifier", {"n_estimators": 3}, 1).fit(x, y)
    exported = export(model, x.shape[1], 18, classifier=True)

    shuffled = onnx.load_from_string(exported.model_bytes)
    entries = [(o.domain, o.version) for o in shuffled.opset_import]
    del shuffled.opset_import[:]
    for domain, version in [*reversed(entries), ("", 1)]:  # other order, a stale duplicate
        shuffled.opset_import.add(domain=domain, version=version)
    shuffled.doc_string = "converted on host-a at 12:00"
    for number, node in enumerate(shuffled.graph.node):
        node.name = f"scope{number * 7}_node"
        node.doc_string = f"pid {os.getpid()}"
    assert shuffled.SerializeToString() != exported.model_bytes

    canonical(shuffled)
    assert shuffled.SerializeToString(deterministic=True) == exported.model_bytes
    onnx.checker.check_model(shuffled, full_check=True)
    domains = [o.domain for o in shuffled.opset_import]
    assert domains == sorted(set(domains))
    assert {o.domain: o.version for o in shuffled.opset_import}[""] == 18


def breast_cancer() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    return data.data, data.target


def test_default_estimator_converges_on_the_demo_data() -> None:
    """The default logistic regression on 30 unscaled columns, as a user fits it."""
    from sklearn.exceptions import ConvergenceWarning

    x, y = breast_cancer()
    model = estimators.build("logistic-regression", {}, 42)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model.fit(x, y)
    final = estimators.final_estimator(model)
    assert final.n_iter_.max() < final.max_iter  # stopped because it converged


def test_train_model_cli_shows_no_convergence_warning(datasets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Defaults on the demo table: a clean log, and the exported graph scales raw features."""
    import onnxruntime as ort

    out = tmp_path / "model"
    finished = subprocess.run(
        [
            CLI, "train-model", f"--data={datasets['cancer']}", "--target-column=target",
            f"--output={out}", f"--results-dir={tmp_path / 'results'}",
        ],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stderr
    assert "Warning" not in finished.stderr
    assert "did not converge" not in finished.stderr
    assert all(line.startswith("train-model: ") for line in finished.stderr.splitlines())

    # The served model takes raw features: onnxruntime on the unscaled holdout gives what
    # scikit-learn's fitted pipeline (which scales them first) gives, fitted as train-model does.
    from sklearn.model_selection import train_test_split

    x, y = breast_cancer()
    x_train, x_test, y_train, _ = train_test_split(x, y, test_size=0.2, random_state=42, stratify=y)
    model = estimators.build("logistic-regression", {}, 42).fit(x_train, y_train)
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["preprocessing"] == ["standard-scaler"]
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    raw = x_test.astype(np.float32)
    label, proba = session.run(None, {"X": raw})
    np.testing.assert_array_equal(label, model.predict(raw))
    np.testing.assert_allclose(proba, model.predict_proba(raw), atol=1e-4)


def test_a_fit_that_does_not_converge_says_so_in_one_line(datasets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    finished = subprocess.run(
        [
            CLI, "train-model", f"--data={datasets['cancer']}", "--target-column=target",
            f"--output={tmp_path / 'model'}", '--hyperparameters={"max_iter": 2}',
            f"--results-dir={tmp_path / 'results'}",
        ],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stderr
    warned = [line for line in finished.stderr.splitlines() if "did not converge" in line]
    assert len(warned) == 1, finished.stderr
    assert "max_iter" in warned[0]
    assert "ConvergenceWarning" not in finished.stderr
    assert all(line.startswith("train-model: ") for line in finished.stderr.splitlines())
