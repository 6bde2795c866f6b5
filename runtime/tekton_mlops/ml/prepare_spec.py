"""The prepare-data spec: parsed from JSON or YAML, validated, typed, digested.

The spec is one string param, so its own JSON Schema (``schemas/specs/prepare-data.json``)
checks it the way the step schema checks params: every violation at once, each named by
its path inside the spec (``spec.split.test-size``), exit code 2 before anything is read.
Its digest is taken over a canonical JSON form, so the same spec written as YAML or as
JSON, in any key order, has one digest.

Example::

    spec = parse_spec('{"drop": ["id"], "split": {"method": "ratio", "test-size": 0.25}}')
    spec.split.test_size   # -> 0.25
    spec.digest            # -> sha256 hex of the canonical JSON
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tekton_mlops import quickcheck
from tekton_mlops.errors import ParameterError, Violation

SPEC_SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "specs" / "prepare-data.json"
STEP = "prepare-data"

Scalar = str | int | float | bool


@dataclass(frozen=True)
class Condition:
    column: str
    op: str
    value: Scalar | tuple[Scalar, ...] | None
    where: str  # its path in the spec, for messages


@dataclass(frozen=True)
class Imputation:
    column: str
    strategy: str
    value: Scalar | None


@dataclass(frozen=True)
class Split:
    method: str
    test_size: float
    seed: int
    column: str


@dataclass(frozen=True)
class Spec:
    missing_values: frozenset[str]
    select: tuple[str, ...] | None
    drop: tuple[str, ...]
    rename: Mapping[str, str]
    cast: Mapping[str, str]
    match: str
    conditions: tuple[Condition, ...]
    drop_missing: bool | tuple[str, ...]
    drop_duplicates: bool
    impute: tuple[Imputation, ...]
    split: Split | None
    canonical: bytes  # the spec as canonical JSON: what its digest is taken over

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.canonical).hexdigest()


class _Loader(yaml.SafeLoader):
    """YAML without implicit dates: ``value: 2024-01-01`` stays the text a CSV cell holds."""


_Loader.add_constructor(
    "tag:yaml.org,2002:timestamp",
    lambda loader, node: loader.construct_scalar(node),  # type: ignore[arg-type]
)


@cache
def spec_schema() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(SPEC_SCHEMA.read_text())
    return document


def parse_spec(text: str) -> Spec:
    """Parse and validate the spec; raise ParameterError (exit 2) naming each bad field."""
    document = _load(text)
    if quickcheck.valid(spec_schema(), document) is not True:
        _raise_violations(document)
    return _typed(document)


def _load(text: str) -> Any:
    try:
        document = json.loads(text)
    except ValueError:
        document = _load_yaml(text)  # YAML, of which JSON is nearly a subset, says where
    if not isinstance(document, dict):
        raise ParameterError(
            STEP, [Violation("spec", text, "must be a JSON or YAML object (a mapping)")]
        )
    return document


def _load_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "unreadable"
        raise ParameterError(
            STEP, [Violation("spec", text, f"not valid JSON or YAML ({problem}{where})")]
        ) from None


def _path(parts: list[str | int]) -> str:
    return "spec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


_TYPE_WORDS = {"string": "a string", "number": "a number", "integer": "an integer",
               "boolean": "true or false", "array": "a list", "object": "a mapping"}  # fmt: skip


def _rule(error: Any) -> str:
    validator, expected = error.validator, error.validator_value
    if validator == "type":
        kinds = expected if isinstance(expected, list) else [expected]
        return "must be " + " or ".join(_TYPE_WORDS.get(str(k), str(k)) for k in kinds)
    if validator == "enum":
        return "must be one of " + ", ".join(str(v) for v in expected)
    if validator == "const":
        return f"must be {expected}"
    if validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        sign = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">"}.get(validator, "<")
        return f"must be {sign} {expected}"
    if validator == "minItems":
        return f"must list at least {expected} item(s)"
    if validator == "minLength":
        return "must not be empty"
    if validator == "not":
        return "is not used here"
    return str(error.message)


def _raise_violations(document: Any) -> None:
    import jsonschema  # only to word violations: a valid spec never imports it

    validator = jsonschema.Draft202012Validator(spec_schema())
    violations: list[Violation] = []
    for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path))):
        parts = list(error.absolute_path)
        if error.validator == "required":
            for name in error.validator_value:
                if isinstance(error.instance, dict) and name not in error.instance:
                    violations.append(Violation(_path([*parts, name]), "", "is required"))
        elif error.validator == "additionalProperties":
            allowed = sorted(error.schema.get("properties", {}))
            for name in sorted(set(error.instance) - set(allowed)):
                rule = "unknown key" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
                violations.append(Violation(_path([*parts, name]), error.instance[name], rule))
        else:
            violations.append(Violation(_path(parts), error.instance, _rule(error)))
    raise ParameterError(STEP, violations)


def _typed(document: Mapping[str, Any]) -> Spec:
    filtered = document.get("filter") or {}
    conditions = tuple(
        Condition(
            c["column"],
            c["op"],
            tuple(c["value"]) if isinstance(c.get("value"), list) else c.get("value"),
            f"spec.filter.conditions[{i}]",
        )
        for i, c in enumerate(filtered.get("conditions", ()))
    )
    drop_missing = document.get("drop-missing", False)
    split = document.get("split")
    return Spec(
        missing_values=frozenset(document.get("missing-values", [""])),
        select=tuple(document["select"]) if "select" in document else None,
        drop=tuple(document.get("drop", ())),
        rename=dict(document.get("rename", {})),
        cast=dict(document.get("cast", {})),
        match=filtered.get("match", "all"),
        conditions=conditions,
        drop_missing=tuple(drop_missing) if isinstance(drop_missing, list) else drop_missing,
        drop_duplicates=bool(document.get("drop-duplicates", False)),
        impute=tuple(
            Imputation(column, how["strategy"], how.get("value"))
            for column, how in document.get("impute", {}).items()
        ),
        split=None
        if split is None
        else Split(
            split["method"],
            float(split.get("test-size", 0.2)),
            int(split.get("seed", 42)),
            split.get("column", ""),
        ),
        canonical=json.dumps(
            document, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode(),
    )
