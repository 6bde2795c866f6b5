"""What the router and local strategy tests share: models trained by train-model, requests."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from tekton_mlops.cli import main

ROWS = [
    [5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3], [5.9, 3.0, 5.1, 1.8],
    [6.0, 2.2, 5.0, 1.5], [4.9, 3.1, 1.5, 0.1], [6.3, 2.5, 4.9, 1.5], [5.6, 2.8, 4.9, 2.0],
]  # fmt: skip


def train(data: Path, out: Path, estimator: str, hyper: str) -> Path:
    """A model directory as train-model writes it."""
    outcome = CliRunner().invoke(
        main,
        ["train-model", f"--data={data}", "--target-column=target", f"--output={out}",
         f"--estimator={estimator}", f"--hyperparameters={hyper}",
         f"--results-dir={out.parent / (out.name + '-results')}"],
    )  # fmt: skip
    assert outcome.exit_code == 0, outcome.output
    return out


def infer_body(row: int = 0) -> bytes:
    """A one-row V2 inference request for the iris models; ``row`` picks one of a few rows."""
    data = ROWS[row % len(ROWS)]
    return json.dumps(
        {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": data}]}
    ).encode()
