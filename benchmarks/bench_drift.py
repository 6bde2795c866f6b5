"""detect-drift's statistics against Evidently's DataDriftPreset, 1,000,000 rows x 20 columns.

A seeded synthetic table, reference and current 1,000,000 rows each: 12 numeric columns
(normal, lognormal, uniform, exponential, a four-valued one, one with 5% missing) and 8
categorical ones (2, 3, 8 and 50 categories); 8 columns drifted on purpose, from clear
shifts to ones just over the thresholds (a fifth of a standard deviation; a new category
taking 5% of the rows), and a column shifted by a twentieth of a standard deviation, under
the threshold: the known answer is 8 drifted columns, a share of 0.4, no dataset drift.
The columns are written once as .npy files (numbers float64, categories fixed-width
text) and both sides load the same files:

- ours: ``tekton_mlops.ml.drift.compare`` with its defaults (``auto``: Evidently's choice
  of test per column, its thresholds and drift share), in this project's venv;
- the peer: Evidently 0.7.23, ``Report([DataDriftPreset()], include_tests=True)`` on
  pandas DataFrames of the same arrays with the column types declared, in a venv of its
  own (``.bench/venv-evidently``, made here with ``python -m venv`` and pip, with
  ``pandas<3``, which evidently 0.7.23 needs; never the project's venv or image).

Each side runs in its own process; what is timed is the drift computation on data
already in memory (loading the files and importing the libraries is not), as the median
of alternating runs. Agreement is counted column by column: the drifted flag (Evidently's
from its per-column test status) and the test chosen; the scores are compared too.
Goals: all 20 flags agree, and ours at least 5x faster.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness import BENCH, PYTHON, Row, alternate, workdir

ORDER = 46
ROWS = 1_000_000
#: Up to 1000 reference rows, Evidently (and auto) test with p-values instead of distances.
SMALL_ROWS = 1000
RUNS = 3
EVIDENTLY = "evidently==0.7.23"
VENV = BENCH / "venv-evidently"
#: Evidently's display names of its tests, as the report's metric configs carry them.
METHODS = {
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "PSI": "psi",
}
#: The columns drifted on purpose.
DRIFTED = {"n02", "n04", "n06", "n08", "n11", "c02", "c04", "c06"}


def _write(folder: Path, n: int) -> dict[str, list[str]]:
    """The two tables of ``n`` rows as one .npy file per side and column; the column
    names by kind (also in columns.json, which both sides read)."""
    import numpy as np

    rng = np.random.default_rng(20261130)
    colours = np.array(["red", "green", "blue", "cyan", "magenta", "yellow", "black", "white"])
    many = np.array([f"cat-{i:02d}" for i in range(50)])
    zipf = 1 / np.arange(1, 51)
    zipf /= zipf.sum()

    def with_missing(values: Any) -> Any:
        values[rng.random(n) < 0.05] = np.nan
        return values

    def pick(options: Any, shares: list[float] | Any) -> Any:
        return options[rng.choice(len(options), n, p=shares)]

    four = np.array([0.0, 1.0, 2.0, 3.0])
    sides = {}
    for side in ("reference", "current"):
        moved = side == "current"
        sides[side] = {
            "n01": rng.normal(0, 1, n),
            "n02": rng.normal(0.5 if moved else 0, 1, n),  # half a standard deviation
            "n03": rng.lognormal(0, 0.5, n),
            "n04": rng.lognormal(0, 0.5, n) * (1.3 if moved else 1.0),
            "n05": rng.uniform(0, 10, n),
            "n06": rng.uniform(1 if moved else 0, 11 if moved else 10, n),
            "n07": rng.normal(0.05 if moved else 0, 1, n),  # a real shift, under 0.1
            "n08": rng.normal(0.2 if moved else 0, 1, n),  # a fifth: just over
            "n09": rng.exponential(2.0, n),
            "n10": pick(four, [0.4, 0.3, 0.2, 0.1]),
            "n11": pick(four, [0.25, 0.25, 0.25, 0.25] if moved else [0.4, 0.3, 0.2, 0.1]),
            "n12": with_missing(rng.normal(10, 3, n)),
            "c01": pick(colours, [0.3, 0.2, 0.15, 0.1, 0.1, 0.05, 0.05, 0.05]),
            "c02": pick(
                colours,
                [0.1, 0.1, 0.1, 0.1, 0.15, 0.15, 0.15, 0.15]
                if moved
                else [0.3, 0.2, 0.15, 0.1, 0.1, 0.05, 0.05, 0.05],
            ),
            "c03": pick(np.array(["no", "yes"]), [0.7, 0.3]),
            "c04": pick(np.array(["no", "yes"]), [0.5, 0.5] if moved else [0.7, 0.3]),
            "c05": pick(many, zipf),
            # A category the reference never had takes 5% of the current rows.
            "c06": pick(np.append(many, "cat-new"), np.append(zipf * 0.95, 0.05))
            if moved
            else pick(many, zipf),
            "c07": pick(np.array(["low", "mid", "high"]), [0.5, 0.3, 0.2]),
            "c08": pick(
                np.array(["low", "mid", "high"]), [0.46, 0.32, 0.22] if moved else [0.5, 0.3, 0.2]
            ),
        }
    for side, columns in sides.items():
        for name, values in columns.items():
            np.save(folder / f"{side}-{name}.npy", values)
    names = list(sides["reference"])
    kinds = {
        "numeric": [c for c in names if c.startswith("n")],
        "categorical": [c for c in names if c.startswith("c")],
    }
    (folder / "columns.json").write_text(json.dumps(kinds))
    return kinds


OURS = """
import json, sys, time
from pathlib import Path
import numpy as np
from tekton_mlops.ml.drift import Options, compare
folder = Path(sys.argv[1])
kinds = json.loads((folder / "columns.json").read_text())
names = {**dict.fromkeys(kinds["numeric"], "numeric"),
         **dict.fromkeys(kinds["categorical"], "categorical")}
load = lambda side: {n: np.load(folder / f"{side}-{n}.npy") for n in names}
reference, current = load("reference"), load("current")
start = time.perf_counter()
drift = compare(reference, current, names, Options())
seconds = time.perf_counter() - start
print(json.dumps({
    "seconds": seconds,
    "columns": {c.column: {"test": c.test, "score": c.score, "drifted": c.drifted}
                for c in drift.columns},
    "share": drift.drifted_share, "dataset": drift.drifted,
}))
"""

PEER = """
import json, sys, time
from pathlib import Path
import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset
folder = Path(sys.argv[1])
kinds = json.loads((folder / "columns.json").read_text())
names = kinds["numeric"] + kinds["categorical"]
load = lambda side: pd.DataFrame({n: np.load(folder / f"{side}-{n}.npy") for n in names})
reference, current = load("reference"), load("current")
definition = DataDefinition(
    numerical_columns=kinds["numeric"], categorical_columns=kinds["categorical"]
)
start = time.perf_counter()
snapshot = Report([DataDriftPreset()], include_tests=True).run(
    reference_data=Dataset.from_pandas(reference, data_definition=definition),
    current_data=Dataset.from_pandas(current, data_definition=definition),
)
found = snapshot.dict()
seconds = time.perf_counter() - start
columns = {}
for metric in found["metrics"]:
    config = metric["config"]
    if config["type"].endswith(":ValueDrift"):
        columns[config["column"]] = {"method": config["method"], "score": metric["value"]}
    elif config["type"].endswith(":DriftedColumnsCount"):
        share = metric["value"]["share"]
for test in found["tests"]:
    params = test["metric_config"]["params"]
    if params["type"].endswith(":ValueDrift"):
        columns[params["column"]]["drifted"] = test["status"] == "FAIL"
import evidently
print(json.dumps({"seconds": seconds, "columns": columns, "share": share,
                  "dataset": share >= 0.5, "version": evidently.__version__,
                  "pandas": pd.__version__}))
"""


def _venv() -> Path:
    """Evidently's venv under .bench/, made once; remade when it does not import."""
    python = VENV / "bin" / "python"
    if python.exists() and _imports(python):
        return python
    print(f"  installing {EVIDENTLY} into {VENV}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", EVIDENTLY, "pandas<3"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    if not _imports(python):
        raise SystemExit(f"{EVIDENTLY} does not import in {VENV}")
    return python


def _imports(python: Path) -> bool:
    probe = "import evidently, sys; sys.exit(evidently.__version__ != '0.7.23')"
    return subprocess.run([str(python), "-c", probe], capture_output=True).returncode == 0


def _side(python: str, script: str, folder: Path, seen: list[dict[str, Any]]) -> float:
    done = subprocess.run(
        [python, "-c", script, str(folder)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{python}: {done.stderr[-2000:]}")
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    seen.append(found)
    return float(found["seconds"])


def _agreement(mine: dict[str, Any], theirs: dict[str, Any], names: list[str]) -> str:
    flags = sum(mine["columns"][n]["drifted"] == theirs["columns"][n]["drifted"] for n in names)
    tests = sum(
        mine["columns"][n]["test"] == METHODS[theirs["columns"][n]["method"]] for n in names
    )
    worst = max(
        abs(mine["columns"][n]["score"] - theirs["columns"][n]["score"])
        / max(abs(theirs["columns"][n]["score"]), 1e-12)
        for n in names
    )
    for name in names:
        print(
            f"  {name}: ours {mine['columns'][name]}, evidently {theirs['columns'][name]}",
            file=sys.stderr,
        )
    return (
        f"{flags}/{len(names)} drifted flags, {tests}/{len(names)} tests agree "
        f"(goal {len(names)}/{len(names)}); scores within {worst:.0e} relative"
    )


def rows() -> list[Row]:
    peer_python = _venv()
    with workdir("bench-drift-") as folder:
        kinds = _write(folder, ROWS)
        ours_seen: list[dict[str, Any]] = []
        peer_seen: list[dict[str, Any]] = []
        ours, peer = alternate(
            RUNS,
            lambda: _side(PYTHON, OURS, folder, ours_seen),
            lambda: _side(str(peer_python), PEER, folder, peer_seen),
            label="drift 1M x 20",
        )
        # The same table at 1000 rows, where auto takes the p-value tests (KS, chi-square, Z).
        _write(folder, SMALL_ROWS)
        small: list[dict[str, Any]] = []
        _side(PYTHON, OURS, folder, small)
        _side(str(peer_python), PEER, folder, small)
    names = kinds["numeric"] + kinds["categorical"]
    mine, theirs = ours_seen[-1], peer_seen[-1]
    ours_drifted = sorted(n for n in names if mine["columns"][n]["drifted"])
    known = "as planted" if set(ours_drifted) == DRIFTED else f"NOT as planted: {ours_drifted}"
    peer_label = f"Evidently {theirs['version']} DataDriftPreset (pandas {theirs['pandas']})"
    small_tests = sorted({c["test"] for c in small[0]["columns"].values()})
    return [
        (
            f"detect-drift statistics, {ROWS:,} rows x 20 columns (12 numeric, 8 categorical; "
            "8 drifted), `auto` tests; drift computation on data in memory",
            f"{ours:.2f} s",
            peer_label,
            f"{peer:.2f} s",
            f"{peer / ours:.1f}x faster (goal >= 5x)",
        ),
        (
            f"detect-drift agreement with Evidently, column by column, {ROWS:,} rows "
            "(normed Wasserstein, Jensen-Shannon)",
            f"{len(ours_drifted)} drifted ({known}), share {mine['share']}, "
            f"dataset drift {str(mine['dataset']).lower()}",
            peer_label,
            f"share {theirs['share']}, dataset drift {str(theirs['dataset']).lower()}",
            _agreement(mine, theirs, names),
        ),
        (
            f"detect-drift agreement with Evidently, the same table at {SMALL_ROWS:,} rows "
            f"({', '.join(small_tests)})",
            f"share {small[0]['share']}",
            peer_label,
            f"share {small[1]['share']}",
            _agreement(small[0], small[1], names),
        ),
    ]
