"""Schema validation: coercion from Tekton's strings, every violation at once."""

from __future__ import annotations

import dataclasses

import pytest

from tekton_mlops.contract import step_module
from tekton_mlops.errors import ParameterError
from tekton_mlops.params import env_name, load_schema, step_names, validate

SHA = "a" * 64


def violations(step: str, raw: dict[str, str]) -> dict[str, str]:
    with pytest.raises(ParameterError) as caught:
        validate(load_schema(step), raw)
    assert caught.value.exit_code == 2
    return {v.param: v.rule for v in caught.value.violations}


def test_every_violation_is_reported_at_once() -> None:
    found = violations(
        "fetch-data",
        {"source": "ftp://host/x", "max-concurrency": "lots", "sha256": "zz", "extract": "maybe"},
    )
    assert set(found) == {"source", "output", "max-concurrency", "sha256", "extract"}
    assert found["output"] == "is required"
    assert found["max-concurrency"] == "must be an integer"
    assert found["extract"] == "must be true or false"
    assert "s3://" in found["source"]


def test_values_are_coerced_and_defaults_filled() -> None:
    values = validate(
        load_schema("fetch-data"),
        {"source": "s3://b/k", "output": "/o", "extract": "true", "part-size-mib": "16"},
    )
    assert values["extract"] is True
    assert values["part_size_mib"] == 16
    assert values["max_concurrency"] == 8
    assert values["sha256"] == ""


def test_empty_string_means_not_given() -> None:
    # Tekton passes a param's "" default as an empty argument.
    values = validate(
        load_schema("fetch-data"), {"source": "s3://b/k", "output": "/o", "sha256": ""}
    )
    assert values["sha256"] == ""
    assert violations("fetch-data", {"source": "", "output": "/o"}) == {"source": "is required"}


def test_bounds_and_enums_name_the_rule() -> None:
    found = violations(
        "fetch-data",
        {"source": "s3://b/", "output": "/o", "max-concurrency": "0", "addressing-style": "x"},
    )
    assert found["max-concurrency"] == "must be >= 1"
    assert found["addressing-style"] == "must be one of auto, path, virtual"


def test_hyperparameters_are_checked_for_the_default_estimator() -> None:
    found = violations(
        "train-model",
        {"data": "d.csv", "target-column": "y", "output": "o", "hyperparameters": '{"depth": 3}'},
    )
    assert "unknown key(s) depth" in found["hyperparameters"]
    assert "max_iter" in found["hyperparameters"]  # the allowed keys are listed


def test_hyperparameter_values_are_checked_per_estimator() -> None:
    found = violations(
        "train-model",
        {
            "data": "d.csv",
            "target-column": "y",
            "output": "o",
            "estimator": "random-forest-classifier",
            "hyperparameters": '{"n_estimators": 0, "max_depth": 3}',
        },
    )
    assert found == {"hyperparameters['n_estimators']": "must be >= 1"}


def test_invalid_json_names_the_position() -> None:
    found = violations(
        "train-model", {"data": "d", "target-column": "y", "output": "o", "hyperparameters": "{"}
    )
    assert found["hyperparameters"].startswith("must be a JSON object")


def test_threshold_keys_and_conditions() -> None:
    found = violations(
        "evaluate-model",
        {"model-path": "m", "data": "d", "thresholds": '{"acc": ">=1", "f1": "about 0.9"}'},
    )
    assert "unknown key 'acc'" in found["thresholds"]
    assert found["thresholds['f1']"].startswith("must be a condition like")


@pytest.mark.parametrize("step", step_names())
def test_params_dataclass_matches_schema(step: str) -> None:
    schema = load_schema(step)
    fields = [f.name for f in dataclasses.fields(step_module(step).Params)]
    assert fields == [name.replace("-", "_") for name in schema.properties]


@pytest.mark.parametrize("step", step_names())
def test_schema_documents_every_param_and_result(step: str) -> None:
    schema = load_schema(step)
    for name, prop in schema.properties.items():
        assert len(prop.get("description", "")) > 20, f"{step} param {name} needs a description"
        assert name not in schema.required or "default" not in prop
        assert name in schema.required or "default" in prop, f"{step}: {name} needs a default"
    assert schema.results, f"{step} declares no results"
    assert all(len(r.description) > 20 for r in schema.results)


@pytest.mark.parametrize("step", step_names())
def test_schema_defaults_are_valid(step: str) -> None:
    schema = load_schema(step)
    # Only the required params, from their examples: every default must then pass.
    required = {name: schema.properties[name]["examples"][0] for name in schema.required}
    validate(schema, required)


def test_env_names() -> None:
    assert env_name("target-column") == "PARAM_TARGET_COLUMN"
