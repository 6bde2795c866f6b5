"""The pieces under the compiler and the launcher, one at a time."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tekton_mlops.kfp import cel
from tekton_mlops.kfp.launcher import backoff_delay
from tekton_mlops.kfp.names import Namer, dns_label, param_name, result_name
from tekton_mlops.kfp.placeholders import (
    PlaceholderError,
    RunContext,
    fill_inputs,
    path_parts,
    resolve_command,
)
from tekton_mlops.kfp.slots import Limit, held
from tekton_mlops.kfp.store import Store, key_text, parse_key
from tekton_mlops.kfp.values import NONE_TEXT, coerce, format_number, parse, to_text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3, "3"),
        (3.0, "3"),
        (0.1, "0.1"),
        (1e-7, "0.0000001"),
        (1.5e20, "150000000000000000000"),
        (True, "true"),
        ("a b", "a b"),
        ([1, "x"], '[1, "x"]'),
        ({"k": None}, '{"k": null}'),
    ],
)
def test_text_forms_are_what_kfps_launcher_writes(value: object, text: str) -> None:
    assert to_text(value) == text


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("3", "NUMBER_INTEGER", 3),
        ("3.0", "NUMBER_INTEGER", 3),
        ("2.5", "NUMBER_DOUBLE", 2.5),
        ("True", "BOOLEAN", True),
        ("f", "BOOLEAN", False),
        ("[1, 2]", "LIST", [1, 2]),
        ('{"a": 1}', "STRUCT", {"a": 1}),
        (" padded ", "STRING", " padded "),
    ],
)
def test_text_forms_parse_by_type(text: str, kind: str, value: object) -> None:
    assert parse(text, kind) == value


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("x", "NUMBER_INTEGER"),
        ("2.5", "NUMBER_INTEGER"),
        ("yes", "BOOLEAN"),
        ("{}", "LIST"),
        ("[", "STRUCT"),
    ],  # fmt: skip
)
def test_a_bad_text_form_says_why(text: str, kind: str) -> None:
    with pytest.raises(ValueError, match=r"is not"):
        parse(text, kind)


def test_ir_numbers_take_their_declared_type() -> None:
    assert coerce(3.0, "NUMBER_INTEGER") == 3
    assert isinstance(coerce(3, "NUMBER_DOUBLE"), float)
    assert coerce([1.0, {"a": 2.0, "b": 0.5}], "LIST") == [1, {"a": 2, "b": 0.5}]
    assert format_number(float("nan")) == "NaN"
    assert NONE_TEXT not in ("", "null", "None")


@pytest.mark.parametrize(
    ("condition", "values", "holds"),
    [
        ("inputs.parameter_values['x'] == 'heads'", {"x": "heads"}, True),
        ("!(inputs.parameter_values['x'] == 'heads')", {"x": "heads"}, False),
        (
            "!(int(inputs.parameter_values['n']) == 0) && int(inputs.parameter_values['n']) == 1",
            {"n": 1},
            True,
        ),
        ("int(inputs.parameter_values['n']) >= 3", {"n": 2}, False),
        ("double(inputs.parameter_values['n']) < 2.5", {"n": 2}, True),
        ("inputs.parameter_values['b'] == true", {"b": True}, True),
        ("inputs.parameter_values['s'] == 'true'", {"s": True}, True),
        (
            "inputs.parameter_values['a'] == inputs.parameter_values['b']",
            {"a": "x", "b": "x"},
            True,
        ),
        ("(inputs.parameter_values['a'] == 'x') || false", {"a": "y"}, False),
        ("inputs.parameter_values['s'] != 'it\\'s'", {"s": "it's"}, False),
    ],
)
def test_conditions_evaluate_as_kfps_driver_does(
    condition: str, values: dict[str, object], holds: bool
) -> None:
    assert cel.evaluate(condition, values) is holds
    assert set(cel.parameter_names(condition)) <= set(values)


@pytest.mark.parametrize(
    "condition",
    ["inputs.parameter_values['x'] ==", "size(inputs.parameter_values['x']) > 1", "'a' < 3"],
)
def test_conditions_outside_kfps_subset_are_refused(condition: str) -> None:
    with pytest.raises(cel.ConditionError):
        cel.evaluate(condition, {"x": "a"})


EXECUTOR_INPUT = {
    "inputs": {
        "parameterValues": {"x": 3, "s": "hi", "l": [1, 2], "none": None},
        "artifacts": {
            "data": {"artifacts": [{"name": "data", "uri": "/ws/d", "metadata": {"rows": 4}}]},
            "many": {"artifacts": [{"uri": "/a"}, {"uri": "/b"}]},
        },
    },
    "outputs": {
        "parameters": {"p": {"outputFile": "/ws/p"}},
        "artifacts": {"m": {"artifacts": [{"name": "m", "uri": "/ws/m"}]}},
        "outputFile": "/ws/executor_output.json",
    },
}


def test_placeholders_resolve_like_kfps_launcher() -> None:
    context = RunContext(job_name="run-1", task_name="train", task_uid="uid-2")
    command = [
        "{{$.inputs.parameters['x']}}",
        '{"Concat": ["--s=", "{{$.inputs.parameters[\'s\']}}", "!"]}',
        '{"IfPresent": {"InputName": "missing", "Then": ["--m"], "Else": ["--no-m", "1"]}}',
        '{"IfPresent": {"InputName": "s", "Then": ["--s2", "{{$.inputs.parameters[\'s\']}}"]}}',
        '{"IfPresent": {"InputName": "missing", "Then": ["never"]}}',
        "{{$.inputs.parameters['l']}}",
        "{{$.inputs.artifacts['data'].path}}:{{$.inputs.artifacts['data'].uri}}",
        "{{$.inputs.artifacts['data'].metadata['rows']}}",
        "{{$.inputs.artifacts['data'].metadata}}",
        "{{$.outputs.parameters['p'].output_file}}",
        "{{$.outputs.artifacts['m'].path}}",
        "{{$.outputs.output_file}}",
        "{{$.pipeline_job_name}}/{{$.pipeline_task_name}}/{{$.pipeline_task_uuid}}",
    ]
    assert resolve_command(command, EXECUTOR_INPUT, context) == [
        "3",
        "--s=hi!",
        "--no-m",
        "1",
        "--s2",
        "hi",
        "[1, 2]",
        "/ws/d:/ws/d",
        "4",
        '{"rows": 4}',
        "/ws/p",
        "/ws/m",
        "/ws/executor_output.json",
        "run-1/train/uid-2",
    ]
    whole = resolve_command(["{{$}}"], EXECUTOR_INPUT, context)
    assert json.loads(whole[0]) == EXECUTOR_INPUT
    listed = resolve_command(["{{$.inputs.artifacts['many']}}"], EXECUTOR_INPUT, context)
    assert [a["uri"] for a in json.loads(listed[0])] == ["/a", "/b"]


def test_unknown_placeholders_are_refused() -> None:
    with pytest.raises(PlaceholderError, match="unknown placeholder"):
        resolve_command(["{{$.nothing['x']}}"], EXECUTOR_INPUT, RunContext())
    with pytest.raises(PlaceholderError, match="no output parameter"):
        resolve_command(["{{$.outputs.parameters['q'].output_file}}"], EXECUTOR_INPUT, RunContext())
    assert path_parts("inputs.artifacts['a'].metadata[\"k\"]") == [
        "inputs",
        "artifacts",
        "a",
        "metadata",
        "k",
    ]


def test_inputs_quoting_other_inputs_are_filled_in() -> None:
    values = {"pipelinechannel--name": "KFP", "n": 2}
    filled = fill_inputs(
        {
            "Hello {{$.inputs.parameters['pipelinechannel--name']}}": [
                "x{{$.inputs.parameters['n']}}"
            ]
        },
        values,
    )
    assert filled == {"Hello KFP": ["x2"]}


def test_names_are_kubernetes_safe_and_stable() -> None:
    assert dns_label("My Pipeline_2") == "my-pipeline-2"
    long = dns_label("x" * 80)
    assert len(long) == 63
    assert long == dns_label("x" * 80)
    assert dns_label("x" * 80) != dns_label("x" * 81)
    namer = Namer(reserved=("kfp-outputs",))
    assert [namer.name(n) for n in ["train", "Train", "train", "kfp-outputs"]] == [
        "train",
        "train-2",
        "train-3",
        "kfp-outputs-2",
    ]
    assert param_name("learning_rate") == "learning_rate"
    assert param_name("1x").startswith("p-1x-")
    assert result_name("_private").startswith("private-")


def test_iteration_keys(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert key_text((2, 0)) == "2.0"
    assert parse_key("2.0") == (2, 0)
    assert parse_key("") == ()
    with pytest.raises(ValueError, match="not an iteration key"):
        parse_key("a.b")
    store = Store(tmp_path, "run-1")
    assert store.instance("train", (1, 2)) == tmp_path / "run-1" / "train" / "1.2"
    store.write_outputs("train", (), {"parameters": {"Output": 1}})
    assert store.outputs("train", ()) == {"parameters": {"Output": 1}}
    assert store.outputs("train", (0,)) is None
    assert store.started() == store.started()


def test_retry_backoff_grows_by_its_factor_up_to_its_maximum() -> None:
    backoff = {"duration": 1.0, "factor": 2.0, "max": 3.0}
    assert [backoff_delay(backoff, attempt) for attempt in range(5)] == [0, 1, 2, 3, 3]
    assert backoff_delay({"duration": 0.5, "factor": 1.0, "max": 3600}, 3) == 0.5
    assert backoff_delay({"duration": 1.0, "factor": 10.0, "max": 60}, 5000) == 60


def test_the_pipeline_workspace_is_a_shared_folder_no_task_can_collide_with(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path, "run-1")
    folder = store.workspace_dir()
    assert folder == tmp_path / "run-1" / ".workspace"
    assert folder.is_dir()
    assert folder.stat().st_mode & 0o777 == 0o777


def test_a_slot_is_shared_by_an_iterations_tasks_and_waited_for_by_others(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path, "run-1")
    one = [Limit("loop", 1, 1)]
    heard: list[str] = []
    ran = threading.Event()

    def other_iteration() -> None:
        with held(store, one, (1,), heard.append):
            ran.set()

    # Two tasks of iteration 0 share its one slot ...
    with held(store, one, (0,), heard.append), held(store, one, (0,), heard.append):
        assert heard == []
        waiting = threading.Thread(target=other_iteration)
        waiting.start()
        # ... while iteration 1 waits for it, and says so.
        assert not ran.wait(1.0)
        assert len(heard) == 1
        assert "all 1 slots of loop are taken" in heard[0]
    waiting.join(10)
    assert ran.is_set()


def test_k_slots_let_k_iterations_run_and_inner_loops_have_slots_per_outer_iteration(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path, "run-1")
    heard: list[str] = []
    two = [Limit("wide", 1, 2)]
    with held(store, two, (0,), heard.append), held(store, two, (1,), heard.append):
        assert heard == []
    inner = [Limit("outer", 1, 2), Limit("inner", 2, 1)]
    with held(store, inner, (0, 0), heard.append), held(store, inner, (1, 0), heard.append):
        assert heard == []
    assert (tmp_path / "run-1" / ".slots" / "inner" / "1" / "slot-0").is_file()
