"""Step parameter schemas: loading, coercion from strings, validation.

A step's JSON Schema (``schemas/<step>.json``) is the single source of its
interface: the CLI builds its options from it, the catalog Task's params must
equal it, and the README tables are generated from it. Tekton hands every
param to the program as a string, so values arrive as text and are coerced by
the schema type before validation; every violation is collected and reported
at once, before the step touches anything.

Example::

    schema = load_schema("fetch-data")
    values = validate(schema, {"source": "s3://bucket/iris.csv", "output": "/ws/data"})
    values["output"]   # -> "/ws/data", defaults filled, names in snake_case
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from tekton_mlops import quickcheck
from tekton_mlops.errors import ParameterError, Violation

SCHEMA_DIR = Path(__file__).parent / "schemas"


@dataclass(frozen=True)
class ResultSpec:
    """A Task result a step writes, as declared in the schema's ``x-results``."""

    name: str
    description: str
    type: str = "string"
    properties: tuple[str, ...] = ()
    max_bytes: int = 1024  # the largest value it can take, for the static budget check


@dataclass(frozen=True)
class StepSchema:
    """The parsed interface of one step."""

    step: str
    document: Mapping[str, Any]
    results: tuple[ResultSpec, ...] = field(default=())

    @property
    def properties(self) -> Mapping[str, Mapping[str, Any]]:
        props: Mapping[str, Mapping[str, Any]] = self.document.get("properties", {})
        return props

    @property
    def required(self) -> frozenset[str]:
        return frozenset(self.document.get("required", ()))

    @property
    def summary(self) -> str:
        return str(self.document.get("description", "")).split("\n", 1)[0]


def step_names() -> list[str]:
    """Every step that has a schema, sorted."""
    return sorted(p.stem for p in SCHEMA_DIR.glob("*.json"))


@cache
def load_schema(step: str) -> StepSchema:
    """Load ``schemas/<step>.json``."""
    document = json.loads((SCHEMA_DIR / f"{step}.json").read_text())
    results = tuple(
        ResultSpec(
            name=name,
            description=spec["description"],
            type=spec.get("type", "string"),
            properties=tuple(spec.get("properties", ())),
            max_bytes=int(spec.get("maxBytes", 1024)),
        )
        for name, spec in document.get("x-results", {}).items()
    )
    return StepSchema(step=step, document=document, results=results)


def python_name(param: str) -> str:
    """``target-column`` -> ``target_column``."""
    return param.replace("-", "_")


def env_name(param: str) -> str:
    """The environment variable that can carry a param: ``PARAM_TARGET_COLUMN``."""
    return "PARAM_" + param.replace("-", "_").upper()


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _coerce(kind: str, text: str) -> Any:
    """Turn Tekton's string into the schema's type; raise ValueError with a rule."""
    if kind == "string":
        return text
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            raise ValueError("must be an integer") from None
    if kind == "number":
        try:
            return float(text)
        except ValueError:
            raise ValueError("must be a number") from None
    if kind == "boolean":
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError("must be true or false")
    if kind in ("object", "array"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"must be a JSON {kind} ({exc.msg} at char {exc.pos})") from None
        return value
    raise ValueError(f"schema type {kind!r} is not supported")


def _rule(error: Any) -> str:
    """A short, human rule from a jsonschema error."""
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    if "x-message" in schema:
        return str(schema["x-message"])
    validator = error.validator
    if "propertyNames" in error.schema_path:
        choices = ", ".join(str(v) for v in error.validator_value)
        return f"unknown key {error.instance!r}; allowed: {choices}"
    if validator == "enum":
        return "must be one of " + ", ".join(str(v) for v in error.validator_value)
    if validator == "minimum":
        return f"must be >= {error.validator_value}"
    if validator == "maximum":
        return f"must be <= {error.validator_value}"
    if validator == "exclusiveMinimum":
        return f"must be > {error.validator_value}"
    if validator == "exclusiveMaximum":
        return f"must be < {error.validator_value}"
    if validator == "pattern":
        return f"must match {error.validator_value}"
    if validator == "minLength" and error.validator_value == 1:
        return "must not be empty"
    if validator == "additionalProperties":
        known = sorted(schema.get("properties", {}))
        extra = re.findall(r"'([^']+)'", error.message)
        names = ", ".join(extra) or "unknown keys"
        return f"unknown key(s) {names}" + (f"; allowed: {', '.join(known)}" if known else "")
    return str(error.message)


def validate(schema: StepSchema, raw: Mapping[str, str | None]) -> dict[str, Any]:
    """Coerce and validate raw string params; return values keyed by python name.

    An empty string counts as "not given" (Tekton passes a param's ``""``
    default as an empty argument, and click treats an empty env var as unset),
    so the schema default applies.

    Raises:
        ParameterError: with every violation, when any rule is broken.
    """
    violations: list[Violation] = []
    instance: dict[str, Any] = {}
    for name, text in raw.items():
        if text is None or text == "":
            continue
        prop = schema.properties.get(name)
        if prop is None:
            violations.append(Violation(name, text, "is not a parameter of this step"))
            continue
        try:
            instance[name] = _coerce(prop.get("type", "string"), text)
        except ValueError as exc:
            violations.append(Violation(name, text, str(exc)))

    coerced_badly = {v.param for v in violations}
    for name in sorted(schema.required - instance.keys() - coerced_badly):
        violations.append(Violation(name, raw.get(name) or "", "is required"))

    # Defaults join the instance so rules that span params (the hyper-parameters
    # of the default estimator) see what the step will really use.
    # An empty default means "not given": it is not a value to validate.
    defaults = {k: v["default"] for k, v in schema.properties.items() if "default" in v}
    full = {k: v for k, v in defaults.items() if v != ""} | instance
    if not violations and quickcheck.valid(schema.document, full) is True:
        # Valid params, the common case, need no jsonschema (50 ms to import).
        return {python_name(k): v for k, v in (defaults | instance).items()}
    import jsonschema  # only to word every violation: here, --help and valid runs skip it

    validator = jsonschema.Draft202012Validator(schema.document)
    for error in sorted(validator.iter_errors(full), key=lambda e: list(e.absolute_path)):
        if error.validator == "required":
            continue  # reported above, with the param's own name
        path = list(error.absolute_path)
        if not path:
            continue
        name = str(path[0])
        where = name + "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in path[1:])
        value = raw.get(name) if len(path) == 1 else error.instance
        violations.append(Violation(where, value, _rule(error)))

    if violations:
        raise ParameterError(schema.step, violations)

    return {python_name(k): v for k, v in (defaults | instance).items()}
