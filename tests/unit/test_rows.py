"""serving/rows.py: table rows to V2 requests and replies to predictions, without a server.

The served end of the same path (real servers, both layouts) is in
tests/integration/test_check_golden.py.
"""

from __future__ import annotations

import json

import pytest

from tekton_mlops.errors import SourceError
from tekton_mlops.serving.rows import (
    CellError,
    ColumnMismatch,
    Prediction,
    Signature,
    bind,
    decode,
    encode,
    encode_batches,
)

MATRIX = Signature.parse(
    {
        "inputs": [{"name": "X", "datatype": "FP32", "shape": [-1, 3]}],
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
        ],
    },
    "m",
    "here",
)
COLUMNS = Signature.parse(
    {
        "inputs": [
            {"name": "sepal_length", "datatype": "FP32", "shape": [-1, 1]},
            {"name": "colour", "datatype": "BYTES", "shape": [-1, 1]},
            {"name": "count", "datatype": "INT64", "shape": [-1, 1]},
        ],
        "outputs": [{"name": "variable", "datatype": "FP32", "shape": [-1, 1]}],
    },
    "c",
    "here",
)


def test_a_2d_input_takes_every_column_but_the_excluded_in_file_order() -> None:
    binding = bind(MATRIX, ["a", "y", "b", "c"], exclude={"y"})
    assert binding.used_columns == ("a", "b", "c")
    request = encode(binding, [["1", "0", "2.5", ""], ["4", "1", " 5 ", "nan"]])
    assert request == {
        "inputs": [
            {
                "name": "X",
                "datatype": "FP32",
                "shape": [2, 3],
                "data": [1.0, 2.5, None, 4.0, 5.0, None],
            }
        ]
    }
    with pytest.raises(
        ColumnMismatch, match=r"takes 3 column\(s\) and the table has 2 to give \(a, b\)"
    ):
        bind(MATRIX, ["a", "y", "b"], exclude={"y"})


def test_one_input_per_column_by_name_or_by_skl2onnx_spelling() -> None:
    binding = bind(COLUMNS, ["count", "sepal length", "note", "colour"])
    assert binding.used_columns == ("sepal length", "colour", "count")
    request = encode(binding, [["3", "5.1", "x", None], ["4.0", "", "y", "red"]])
    assert [(i["name"], i["shape"], i["data"]) for i in request["inputs"]] == [
        ("sepal_length", [2, 1], [5.1, None]),
        ("colour", [2, 1], ["", "red"]),
        ("count", [2, 1], [3, 4]),
    ]
    with pytest.raises(ColumnMismatch) as caught:
        bind(COLUMNS, ["sepal length", "note"])
    assert caught.value.missing == ("colour", "count")
    assert str(caught.value) == "the model takes column(s) the table does not have: colour, count"
    # Two columns that skl2onnx would spell alike: neither is taken for the input.
    with pytest.raises(ColumnMismatch, match="sepal_length"):
        bind(COLUMNS, ["sepal length", "sepal-length", "colour", "count"])


@pytest.mark.parametrize(
    ("cells", "problem"),
    [
        (["x", "red", "1"], "column 'sepal length' row 2: 'x' is not a number"),
        (["1", "red", ""], "column 'count' row 2: missing value (the model's INT64 input"),
        (["1", "red", "1.5"], "column 'count' row 2: '1.5' is not a whole number"),
        (["inf", "red", "1"], "column 'sepal length' row 2: 'inf' is not a finite number"),
    ],
)
def test_a_cell_the_input_cannot_take_names_column_and_row(cells: list[str], problem: str) -> None:
    binding = bind(COLUMNS, ["sepal length", "colour", "count"])
    with pytest.raises(CellError) as caught:
        encode(binding, [cells])
    assert str(caught.value).startswith(problem)


def test_batches_cover_every_row_and_check_all_cells_first() -> None:
    binding = bind(MATRIX, ["a", "b", "c"])
    rows = [[str(i), "0", "0"] for i in range(10)]
    batches = encode_batches(binding, rows, 4)
    assert [(b.start, b.count) for b in batches] == [(0, 4), (4, 4), (8, 2)]
    sent = [json.loads(b.body)["inputs"][0]["data"][::3] for b in batches]
    assert sum(sent, []) == [float(i) for i in range(10)]
    rows[9][1] = "bad"
    with pytest.raises(CellError, match="row 41"):  # record numbers as given
        encode_batches(binding, rows, 4, numbers=list(range(32, 42)))


def test_replies_become_one_prediction_per_row() -> None:
    reply = {
        "outputs": [
            {
                "name": "probabilities",
                "datatype": "FP32",
                "shape": [2, 2],
                "data": [[0.9, 0.1], [0.2, 0.8]],
            },
            {"name": "label", "datatype": "INT64", "shape": [2], "data": [0, 1]},
        ]
    }
    assert decode(MATRIX, reply, 2) == [Prediction(0, (0.9, 0.1)), Prediction(1, (0.2, 0.8))]
    regression = {
        "outputs": [{"name": "variable", "datatype": "FP32", "shape": [2, 1], "data": [1.5, None]}]
    }
    assert decode(COLUMNS, regression, 2) == [Prediction(1.5), Prediction(None)]
    with pytest.raises(SourceError, match=r"output 'label' holds 2 value\(s\) for 3 row\(s\)"):
        decode(MATRIX, reply, 3)
    with pytest.raises(SourceError, match="no output 'label'"):
        decode(MATRIX, {"outputs": []}, 1)


def test_metadata_that_is_not_v2_is_refused() -> None:
    with pytest.raises(SourceError, match="here: the model metadata has no inputs"):
        Signature.parse({"error": "no such model"}, "m", "here")
    with pytest.raises(SourceError, match="malformed tensor metadata in outputs"):
        Signature.parse({"inputs": [{"name": "X", "datatype": "FP32", "shape": [-1, 3]}],
                         "outputs": [{"name": "y"}]}, "m", "here")  # fmt: skip
