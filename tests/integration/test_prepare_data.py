"""prepare-data: each operation on small made-up tables with known answers, the splits,
the errors (exit 2 for a bad spec, exit 1 for bad data, nothing written either way), the
lineage, and the parts read as they are by train-model and evaluate-model."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import CLI

pytestmark = pytest.mark.integration

PEOPLE = """\
id,name,age,city,joined,active
1,ann,30,paris,2024-01-03,yes
2,bob,,berlin,2024-01-01,no
3,cy,41.0,paris,2024-01-02,yes
4,di,NA,rome,2024-01-05,no
5,ed,22,rome,2024-01-04,yes
6,flo,35,oslo,2024-01-06,no
"""


def table(tmp_path: Path, text: str = PEOPLE, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def prepare(run_step, data: Path, out: Path, spec: object, *extra: str):  # type: ignore[no-untyped-def]
    text = spec if isinstance(spec, str) else json.dumps(spec)
    return run_step("prepare-data", f"--data={data}", f"--output={out}", f"--spec={text}", *extra)


def assert_nothing_written(tmp_path: Path, *inputs: Path) -> None:
    """Only the inputs are there: no output, no staging, no results directory."""
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in inputs)


def error_line(output: str) -> str:
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    return errors[0]


# --- columns and types --------------------------------------------------------------------


def test_select_drop_rename_cast(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = {
        "missing-values": ["", "NA"],
        "select": ["age", "name", "id", "active"],
        "drop": ["id"],
        "rename": {"name": "who"},
        "cast": {"age": "int", "active": "bool"},
    }
    done = prepare(run_step, table(tmp_path), tmp_path / "out", spec)
    assert done.exit_code == 0, done.output
    assert rows(tmp_path / "out" / "data.csv") == [
        ["age", "who", "active"],
        ["30", "ann", "1"],
        ["", "bob", "0"],
        ["41", "cy", "1"],  # 41.0 is a whole number: an int
        ["", "di", "0"],
        ["22", "ed", "1"],
        ["35", "flo", "0"],
    ]
    assert json.loads(done.results["rows"]) == {"input": 6, "data": 6}
    assert done.results["test-digest"] == ""


def test_uncast_columns_pass_through_unchanged(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = table(tmp_path, "a,b\n 1.50 ,x y\n2e3,\n")
    done = prepare(run_step, data, tmp_path / "out", {})
    assert done.exit_code == 0, done.output
    assert (tmp_path / "out" / "data.csv").read_text() == "a,b\n 1.50 ,x y\n2e3,\n"


def test_float_cast_writes_the_shortest_exact_text(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = table(tmp_path, "a\n2\n1e3\n0.1\n")
    done = prepare(run_step, data, tmp_path / "out", {"cast": {"a": "float"}})
    assert done.exit_code == 0, done.output
    assert rows(tmp_path / "out" / "data.csv") == [["a"], ["2.0"], ["1000.0"], ["0.1"]]


@pytest.mark.parametrize(
    ("cast", "message"),
    [
        ("int", "column 'age' row 4: '41.5' is not a whole number (int)"),
        ("float", "column 'age' row 3: 'abc' is not a number"),
        ("bool", "column 'age' row 2: '30' is not a bool (true/false, yes/no, 1/0)"),
    ],
)
def test_uncastable_value_names_column_row_and_value(run_step, tmp_path, cast, message) -> None:  # type: ignore[no-untyped-def]
    text = (
        "name,age\nann,30\nbob,abc\ncy,41.5\n"
        if cast != "int"
        else "name,age\nann,30\nbob,7\ncy,41.5\n"
    )
    data = table(tmp_path, text)
    done = prepare(run_step, data, tmp_path / "out", {"cast": {"age": cast}})
    assert done.exit_code == 1
    assert error_line(done.output) == f"error: {data}: {message}"
    assert_nothing_written(tmp_path, data)


def test_nan_and_infinity_do_not_cast_to_float(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = table(tmp_path, "a\n1\ninf\n")
    done = prepare(run_step, data, tmp_path / "out", {"cast": {"a": "float"}})
    assert done.exit_code == 1
    assert "column 'a' row 3: 'inf' is not a finite float" in done.output
    # Spelled as missing, NaN is a gap, not a value.
    done = prepare(
        run_step, table(tmp_path, "a\n1\nNaN\n"), tmp_path / "out2",
        {"missing-values": ["", "NaN"], "cast": {"a": "float"}},
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert rows(tmp_path / "out2" / "data.csv") == [["a"], ["1.0"], [""]]


# --- filter -------------------------------------------------------------------------------


def ids(path: Path) -> list[str]:
    return [row[0] for row in rows(path)[1:]]


@pytest.mark.parametrize(
    ("match", "conditions", "expected"),
    [
        ("all", [{"column": "city", "op": "==", "value": "paris"}], ["1", "3"]),
        ("all", [{"column": "city", "op": "!=", "value": "paris"}], ["2", "4", "5", "6"]),
        ("all", [{"column": "age", "op": ">", "value": 30}], ["3", "6"]),
        ("all", [{"column": "age", "op": "<=", "value": 30}], ["1", "5"]),
        ("all", [{"column": "city", "op": "in", "value": ["rome", "oslo"]}], ["4", "5", "6"]),
        ("all", [{"column": "city", "op": "not-in", "value": ["rome", "oslo"]}], ["1", "2", "3"]),
        ("all", [{"column": "age", "op": "is-missing"}], ["2", "4"]),
        ("all", [{"column": "age", "op": "not-missing"}], ["1", "3", "5", "6"]),
        # ISO 8601 dates compare as text
        ("all", [{"column": "joined", "op": ">=", "value": "2024-01-04"}], ["4", "5", "6"]),
        (
            "all",
            [
                {"column": "city", "op": "==", "value": "rome"},
                {"column": "age", "op": "<", "value": 30},
            ],
            ["5"],
        ),
        (
            "any",
            [
                {"column": "city", "op": "==", "value": "oslo"},
                {"column": "age", "op": "is-missing"},
            ],
            ["2", "4", "6"],
        ),
        # a missing age meets no comparison, not even !=
        ("all", [{"column": "age", "op": "!=", "value": 30}], ["3", "5", "6"]),
    ],
)
def test_filter(run_step, tmp_path, match, conditions, expected) -> None:  # type: ignore[no-untyped-def]
    spec = {"missing-values": ["", "NA"], "filter": {"match": match, "conditions": conditions}}
    done = prepare(run_step, table(tmp_path), tmp_path / "out", spec)
    assert done.exit_code == 0, done.output
    assert ids(tmp_path / "out" / "data.csv") == expected


def test_filter_compares_in_the_cast_type(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Spec values are read in the column's type: "10" and 9 both name ints.
    data = table(tmp_path, "id,n\n1,9\n2,10\n3,100\n")
    spec = {
        "cast": {"n": "int"},
        "filter": {"conditions": [{"column": "n", "op": "in", "value": ["10", 9]}]},
    }
    done = prepare(run_step, data, tmp_path / "out", spec)
    assert done.exit_code == 0, done.output
    assert ids(tmp_path / "out" / "data.csv") == ["1", "2"]


def test_numeric_comparison_on_text_names_the_cell_that_is_no_number(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = table(tmp_path, "id,n\n1,9\n2,many\n")
    spec = {"filter": {"conditions": [{"column": "n", "op": ">", "value": 5}]}}
    done = prepare(run_step, data, tmp_path / "out", spec)
    assert done.exit_code == 1
    assert "spec.filter.conditions[0]: column 'n' row 3: 'many' is not a number" in done.output
    assert_nothing_written(tmp_path, data)


def test_filter_that_leaves_no_row_fails(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = table(tmp_path)
    spec = {"filter": {"conditions": [{"column": "city", "op": "==", "value": "lima"}]}}
    done = prepare(run_step, data, tmp_path / "out", spec)
    assert done.exit_code == 1
    assert "no rows are left" in error_line(done.output)
    assert_nothing_written(tmp_path, data)


# --- missing values and duplicates --------------------------------------------------------


def test_drop_missing_in_every_or_given_columns(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = table(tmp_path, "id,a,b\n1,,x\n2,1,\n3,2,y\n4,NA,z\n")
    done = prepare(run_step, data, tmp_path / "all", {"drop-missing": True})
    assert done.exit_code == 0, done.output
    assert ids(tmp_path / "all" / "data.csv") == ["3", "4"]  # NA is a value by default
    spec = {"missing-values": ["", "NA"], "drop-missing": ["a"]}
    done = prepare(run_step, data, tmp_path / "a", spec)
    assert done.exit_code == 0, done.output
    assert ids(tmp_path / "a" / "data.csv") == ["2", "3"]
    assert json.loads(done.results["rows"]) == {"input": 4, "data": 2}


def test_drop_duplicates_keeps_the_first(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Duplicates after dropping id and casting: 1.0 and 1 are the same float.
    data = table(tmp_path, "id,a,b\n1,1,x\n2,2,x\n3,1.0,x\n4,1,y\n5,2,x\n")
    spec = {"drop": ["id"], "cast": {"a": "float"}, "drop-duplicates": True}
    done = prepare(run_step, data, tmp_path / "out", spec)
    assert done.exit_code == 0, done.output
    assert rows(tmp_path / "out" / "data.csv") == [
        ["a", "b"],
        ["1.0", "x"],
        ["2.0", "x"],
        ["1.0", "y"],
    ]


@pytest.mark.parametrize(
    ("how", "filled"),
    [
        ({"strategy": "mean"}, "4.0"),  # (1 + 2 + 9) / 3
        ({"strategy": "median"}, "2.0"),
        ({"strategy": "most-frequent"}, "1"),  # 1, 9 and 2 once each: the smallest
        ({"strategy": "constant", "value": -1}, "-1"),
    ],
)
def test_impute(run_step, tmp_path, how, filled) -> None:  # type: ignore[no-untyped-def]
    data = table(tmp_path, "id,a\n1,1\n2,\n3,9\n4,2\n")
    spec = {"cast": {"a": "int"} if how["strategy"] != "mean" else {}, "impute": {"a": how}}
    done = prepare(run_step, data, tmp_path / "out", spec)
    assert done.exit_code == 0, done.output
    assert rows(tmp_path / "out" / "data.csv")[2] == ["2", filled]
    assert "missing values of 'a' are filled with" in done.output


def test_most_frequent_takes_the_commonest_then_the_smallest(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = table(tmp_path, "a,b\nx,3\n,1\ny,\ny,3\nx,1\n")
    spec = {
        "cast": {"b": "int"},
        "impute": {"a": {"strategy": "most-frequent"}, "b": {"strategy": "most-frequent"}},
    }
    done = prepare(run_step, data, tmp_path / "out", spec)
    assert done.exit_code == 0, done.output
    # a: x and y twice each -> x; b: 1 and 3 twice each -> 1
    assert rows(tmp_path / "out" / "data.csv")[2:4] == [["x", "1"], ["y", "1"]]


def test_mean_of_text_that_is_not_a_number_fails(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = table(tmp_path, "a\n1\n\nlots\n")
    done = prepare(run_step, data, tmp_path / "out", {"impute": {"a": {"strategy": "mean"}}})
    assert done.exit_code == 1
    assert "spec.impute.a: mean needs numbers; column 'a' row 4 holds 'lots'" in done.output
    assert_nothing_written(tmp_path, data)


def test_imputation_learns_from_the_training_part_only(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    lines = ["id,x"] + [f"{i},{'' if i % 5 == 0 else i * 10}" for i in range(1, 41)]
    data = table(tmp_path, "\n".join(lines) + "\n")
    spec = {
        "cast": {"x": "float"},
        "impute": {"x": {"strategy": "mean"}},
        "split": {"method": "ratio", "test-size": 0.25, "seed": 3},
    }
    done = prepare(run_step, data, tmp_path / "out", spec)
    assert done.exit_code == 0, done.output
    train = rows(tmp_path / "out" / "train" / "data.csv")[1:]
    test = rows(tmp_path / "out" / "test" / "data.csv")[1:]
    known = [float(x) for i, x in train if int(i) % 5]
    mean = repr(sum(known) / len(known))
    assert [x for i, x in train + test if int(i) % 5 == 0] == [mean] * 8
    everything = [float(x) for _, x in (line.split(",") for line in lines[1:]) if x]
    assert mean != repr(sum(everything) / len(everything))  # the test part changes the mean


# --- splits -------------------------------------------------------------------------------


def numbered(tmp_path: Path, count: int, label=lambda i: "a") -> Path:  # type: ignore[no-untyped-def]
    text = "id,v,label\n" + "".join(f"{i},{i * 1.5},{label(i)}\n" for i in range(count))
    return table(tmp_path, text)


def test_ratio_split_is_reproducible_for_a_seed(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = numbered(tmp_path, 101)
    spec = {"split": {"method": "ratio", "test-size": 0.2, "seed": 11}}
    first = prepare(run_step, data, tmp_path / "one", spec)
    again = prepare(run_step, data, tmp_path / "two", spec)
    other = prepare(run_step, data, tmp_path / "three", {"split": {**spec["split"], "seed": 12}})
    for done in (first, again, other):
        assert done.exit_code == 0, done.output
        assert json.loads(done.results["rows"]) == {"input": 101, "train": 80, "test": 21}
    for part in ("train", "test"):
        one = (tmp_path / "one" / part / "data.csv").read_bytes()
        assert (tmp_path / "two" / part / "data.csv").read_bytes() == one
        assert (tmp_path / "three" / part / "data.csv").read_bytes() != one
    assert first.results["dataset-digest"] == again.results["dataset-digest"]
    assert first.results["test-digest"] == again.results["test-digest"]
    train, test = (
        ids(tmp_path / "one" / "train" / "data.csv"),
        ids(tmp_path / "one" / "test" / "data.csv"),
    )
    assert sorted(train + test, key=int) == [str(i) for i in range(101)]
    # each part keeps the input's order
    assert train == sorted(train, key=int)
    assert test == sorted(test, key=int)


def test_stratified_split_keeps_each_class_proportion(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = numbered(tmp_path, 100, lambda i: "a" if i < 50 else "b" if i < 80 else "c")
    spec = {"split": {"method": "stratified", "column": "label", "test-size": 0.2, "seed": 5}}
    done = prepare(run_step, data, tmp_path / "out", spec)
    assert done.exit_code == 0, done.output
    test = Counter(row[2] for row in rows(tmp_path / "out" / "test" / "data.csv")[1:])
    train = Counter(row[2] for row in rows(tmp_path / "out" / "train" / "data.csv")[1:])
    assert test == {"a": 10, "b": 6, "c": 4}
    assert train == {"a": 40, "b": 24, "c": 16}


def test_stratified_split_needs_two_rows_per_class(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = numbered(tmp_path, 10, lambda i: "rare" if i == 3 else "common")
    spec = {"split": {"method": "stratified", "column": "label"}}
    done = prepare(run_step, data, tmp_path / "out", spec)
    assert done.exit_code == 1
    assert "class 'rare' of column 'label' has 1 row" in error_line(done.output)
    assert_nothing_written(tmp_path, data)


def test_time_split_holds_out_the_latest_rows(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # 10 rows, test-size 0.25: the three latest (10, 9, 8) go to test, and day 8's twin
    # joins them, so that no training row is as recent as a test row.
    days = [3, 9, 1, 8, 2, 10, 4, 8, 5, 6]
    text = "id,day\n" + "".join(f"{i},{d}\n" for i, d in enumerate(days))
    data = table(tmp_path, text)
    spec = {"cast": {"day": "int"}, "split": {"method": "time", "column": "day", "test-size": 0.25}}
    done = prepare(run_step, data, tmp_path / "out", spec)
    assert done.exit_code == 0, done.output
    assert ids(tmp_path / "out" / "test" / "data.csv") == ["1", "3", "5", "7"]
    assert ids(tmp_path / "out" / "train" / "data.csv") == ["0", "2", "4", "6", "8", "9"]
    assert json.loads(done.results["rows"]) == {"input": 10, "train": 6, "test": 4}


def test_time_split_on_iso_dates(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = {"split": {"method": "time", "column": "joined", "test-size": 0.3}}
    done = prepare(run_step, table(tmp_path), tmp_path / "out", spec)
    assert done.exit_code == 0, done.output
    assert ids(tmp_path / "out" / "test" / "data.csv") == ["4", "6"]


# --- errors: the spec (exit 2) and the columns (exit 1) -----------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"split": {"method": "ratio", "test-size": 1.5}},
            ["--spec.split.test-size=1.5: must be < 1"],
        ),
        ({"split": {"method": "time"}}, ["--spec.split.column='': is required"]),
        (
            {"split": {"method": "ratio", "column": "x"}},
            ["--spec.split.column='x': is not used here"],
        ),
        (
            {"cast": {"age": "date"}},
            ["--spec.cast.age='date': must be one of int, float, string, bool"],
        ),
        (
            {"filter": {"conditions": [{"column": "a", "op": "like", "value": "x%"}]}},
            [
                "--spec.filter.conditions[0].op='like': must be one of ==, !=, <, <=, >, >=, in, "
                "not-in, is-missing, not-missing"
            ],
        ),
        (
            {"filter": {"conditions": [{"column": "a", "op": "in", "value": "x"}]}},
            ["--spec.filter.conditions[0].value='x': must be a list"],
        ),
        ({"impute": {"a": {"strategy": "constant"}}}, ["--spec.impute.a.value='': is required"]),
        ({"selct": ["a"]}, ["--spec.selct=['a']: unknown key; allowed: cast, drop"]),
        (
            {"drop-missing": "yes", "drop-duplicates": 1},
            [
                "--spec.drop-duplicates=1: must be true or false",
                "--spec.drop-missing='yes': must be true or false or a list",
            ],
        ),
        ("[1, 2]", ["--spec='[1, 2]': must be a JSON or YAML object (a mapping)"]),
        ("split: {method: ratio", ["--spec='split: {method: ratio': not valid JSON or YAML"]),
    ],
)
def test_invalid_spec_exits_2_naming_each_field(run_step, tmp_path, spec, expected) -> None:  # type: ignore[no-untyped-def]
    data = table(tmp_path)
    done = prepare(run_step, data, tmp_path / "out", spec)
    assert done.exit_code == 2
    assert f"prepare-data: {len(expected)} invalid parameter(s)" in done.output
    for line in expected:
        assert line in done.output
    assert_nothing_written(tmp_path, data)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"select": ["id", "agee"]}, "spec.select[1]"),
        ({"drop": ["agee"]}, "spec.drop[0]"),
        ({"rename": {"agee": "years"}}, "spec.rename.agee"),
        ({"cast": {"agee": "int"}}, "spec.cast.agee"),
        (
            {"filter": {"conditions": [{"column": "agee", "op": "is-missing"}]}},
            "spec.filter.conditions[0].column",
        ),
        ({"drop-missing": ["agee"]}, "spec.drop-missing[0]"),
        ({"impute": {"agee": {"strategy": "median"}}}, "spec.impute.agee"),
        ({"split": {"method": "stratified", "column": "agee"}}, "spec.split.column"),
        ({"split": {"method": "time", "column": "agee"}}, "spec.split.column"),
    ],
)
def test_unknown_column_exits_1_listing_the_columns(run_step, tmp_path, spec, field) -> None:  # type: ignore[no-untyped-def]
    data = table(tmp_path)
    done = prepare(run_step, data, tmp_path / "out", spec)
    assert done.exit_code == 1
    assert error_line(done.output) == (
        f"error: {field}: no column 'agee'; the columns are id, name, age, city, joined, active"
    )
    assert_nothing_written(tmp_path, data)


def test_later_operations_see_renamed_and_selected_columns(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = table(tmp_path)
    spec = {"select": ["id", "age"], "rename": {"age": "years"}, "cast": {"age": "int"}}
    done = prepare(run_step, data, tmp_path / "out", spec)
    assert done.exit_code == 1
    assert (
        error_line(done.output)
        == "error: spec.cast.age: no column 'age'; the columns are id, years"
    )


def test_rename_onto_an_existing_name_fails(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = table(tmp_path)
    done = prepare(run_step, data, tmp_path / "out", {"rename": {"name": "city"}})
    assert done.exit_code == 1
    assert "spec.rename: column name(s) city would appear twice" in done.output
    assert_nothing_written(tmp_path, data)


def test_output_is_not_overwritten_unless_asked(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data, out = table(tmp_path), tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    done = prepare(run_step, data, out, {})
    assert done.exit_code == 1
    assert "not empty (set overwrite to replace its content)" in done.output
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    done = prepare(run_step, data, out, {"split": {"method": "ratio"}}, "--overwrite=true")
    assert done.exit_code == 0, done.output
    assert sorted(p.name for p in out.iterdir()) == [".mlops", "test", "train"]


# --- digests and lineage ------------------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_file_root(csv_path: Path) -> str:
    """A directory's root digest as the manifest defines it, for a single file."""
    return hashlib.sha256(bytes.fromhex(sha256(csv_path))).hexdigest()


@pytest.fixture
def fetched(run_step, tmp_path) -> tuple[Path, str]:  # type: ignore[no-untyped-def]
    """A dataset directory written by fetch-data, with its root digest."""
    source = table(tmp_path, PEOPLE, "people.csv")
    done = run_step("fetch-data", f"--source={source.as_uri()}", f"--output={tmp_path / 'dataset'}")
    assert done.exit_code == 0, done.output
    source.unlink()
    return tmp_path / "dataset", done.results["dataset-digest"]


def test_lineage_names_the_input_and_the_spec_by_digest(run_step, tmp_path, fetched) -> None:  # type: ignore[no-untyped-def]
    dataset, digest = fetched
    out = tmp_path / "out"
    spec = {"missing-values": ["", "NA"], "split": {"method": "ratio", "test-size": 0.5}}
    done = prepare(run_step, dataset, out, spec, f"--data-digest={digest}")
    assert done.exit_code == 0, done.output

    spec_file = out / ".mlops" / "prepare-data-spec.json"
    assert json.loads(spec_file.read_text()) == spec
    assert done.results["spec-digest"] == f"sha256:{sha256(spec_file)}"
    train_root = one_file_root(out / "train" / "data.csv")
    test_root = one_file_root(out / "test" / "data.csv")
    assert done.results["dataset-digest"] == f"sha256:{train_root}"
    assert done.results["test-digest"] == f"sha256:{test_root}"
    assert json.loads(done.results["dataset_ARTIFACT_INPUTS"])["digest"] == digest

    record = json.loads((out / ".mlops" / "lineage" / "prepare-data.intoto.json").read_text())
    dependencies = {
        d["name"]: d for d in record["predicate"]["buildDefinition"]["resolvedDependencies"]
    }
    assert dependencies["dataset"]["digest"] == {"sha256": digest.removeprefix("sha256:")}
    assert (
        dependencies["dataset"]["uri"] == json.loads(done.results["dataset_ARTIFACT_INPUTS"])["uri"]
    )
    assert dependencies["spec"]["digest"] == {"sha256": sha256(spec_file)}
    assert {s["name"]: s["digest"]["sha256"] for s in record["subject"]} == {
        "train": train_root,
        "test": test_root,
    }
    manifest = json.loads((out / "train" / ".mlops" / "manifest.json").read_text())
    assert manifest["prepared_from"]["digest"] == digest
    assert manifest["spec_digest"] == done.results["spec-digest"]


def test_the_same_spec_in_yaml_or_json_has_one_digest(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = table(tmp_path)
    as_json = prepare(
        run_step,
        data,
        tmp_path / "a",
        '{"drop": ["id"], "cast": {"age": "float"}, "missing-values": ["", "NA"]}',
    )
    as_yaml = prepare(
        run_step,
        data,
        tmp_path / "b",
        'missing-values: ["", NA]\ncast:\n  age: float\ndrop: [id]\n',
    )
    assert as_json.exit_code == 0, as_json.output
    assert as_yaml.exit_code == 0, as_yaml.output
    assert as_json.results["spec-digest"] == as_yaml.results["spec-digest"]
    assert as_json.results["dataset-digest"] == as_yaml.results["dataset-digest"]


def test_a_pinned_digest_that_differs_fails_before_reading(run_step, tmp_path, fetched) -> None:  # type: ignore[no-untyped-def]
    dataset, _ = fetched
    done = prepare(run_step, dataset, tmp_path / "out", {}, f"--data-digest={'0' * 64}")
    assert done.exit_code == 1
    assert "does not match the pinned" in error_line(done.output)
    assert not (tmp_path / "out").exists()


def test_a_changed_input_file_fails_its_manifest(run_step, tmp_path, fetched) -> None:  # type: ignore[no-untyped-def]
    dataset, _ = fetched
    with (dataset / "people.csv").open("a") as handle:
        handle.write("7,gus,50,lima,2024-01-07,yes\n")
    done = prepare(run_step, dataset, tmp_path / "out", {})
    assert done.exit_code == 1
    assert "does not match the manifest" in error_line(done.output)
    assert not (tmp_path / "out").exists()


# --- the parts feed train-model and evaluate-model ----------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=300, check=False)


def results(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in folder.iterdir()}


def test_prepared_parts_train_and_evaluate(tmp_path, datasets) -> None:  # type: ignore[no-untyped-def]
    """Prepare iris with an id column and gaps, then train on train/ and evaluate on test/,
    each pinned by the digest prepare-data reported, all through the CLI as a Task runs it."""
    source = rows(datasets["iris"])
    with (tmp_path / "iris.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", *source[0]])
        for i, row in enumerate(source[1:]):
            writer.writerow([i, *(["NA"] if i % 10 == 3 else row[:1]), *row[1:]])
    spec = (
        'missing-values: ["", NA]\n'
        "drop: [id]\n"
        "impute: {sepal_length_cm: {strategy: median}}\n"
        "split: {method: stratified, column: target, test-size: 0.2, seed: 1}\n"
    )
    prepared = tmp_path / "prepared"
    done = cli(
        "prepare-data", f"--data={tmp_path / 'iris.csv'}", f"--output={prepared}", f"--spec={spec}",
        f"--results-dir={tmp_path / 'r1'}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    made = results(tmp_path / "r1")
    assert json.loads(made["rows"]) == {"input": 150, "train": 120, "test": 30}

    model = tmp_path / "model"
    done = cli(
        "train-model", f"--data={prepared / 'train'}", "--target-column=target",
        f"--output={model}", f"--data-digest={made['dataset-digest']}",
        f"--results-dir={tmp_path / 'r2'}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    trained = json.loads((model / "metadata.json").read_text())
    assert trained["feature_names"] == source[0][:-1]  # the id dropped, the target apart
    assert trained["training"]["dataset_digest"] == made["dataset-digest"]

    done = cli(
        "evaluate-model", f"--model-path={model}", f"--data={prepared / 'test'}",
        f"--data-digest={made['test-digest']}", '--thresholds={"accuracy": ">=0.8"}',
        f"--output={tmp_path / 'evaluation'}", f"--results-dir={tmp_path / 'r3'}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert results(tmp_path / "r3")["passed"] == "true"
