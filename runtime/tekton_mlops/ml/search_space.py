"""A hyper-parameter search space, checked against what an estimator accepts.

The space is JSON, one entry per hyper-parameter::

    {"C": {"low": 0.001, "high": 100, "log": true},
     "max_iter": {"low": 100, "high": 1000, "step": 100},
     "solver": {"choices": ["lbfgs", "saga"]}}

A range is integer when the estimator's schema types the hyper-parameter as an
integer, and float otherwise; ``log`` samples on a log scale and ``step``
quantizes. Every name, both ends of every range and every choice are validated
against the estimator's own sub-schema in ``schemas/train-model.json``, so a
space can only propose hyper-parameters train-model accepts: a search never
finds a "best" value the next step refuses.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tekton_mlops.errors import Violation
from tekton_mlops.params import load_schema

PARAM = "search-space"

#: The largest grid the grid sampler is asked to walk: beyond it, a grid is a mistake.
MAX_GRID_POINTS = 100_000
#: The largest finite space whose points TPE and random search keep track of, to try each
#: once; in a larger one a repeat is rare.
MAX_TRACKED_POINTS = 10_000

_RANGE_KEYS = {"low", "high", "log", "step"}


@dataclass(frozen=True)
class Dimension:
    """One hyper-parameter's range or choices."""

    name: str
    kind: str  # "int", "float" or "categorical"
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def grid(self) -> list[Any] | None:
        """The points a grid search visits, or None when the range is continuous."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "int":
            step = int(self.step or 1)
            return list(range(int(self.low), int(self.high) + 1, step))
        if self.step is None:
            return None
        count = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        # Rounded so that 0.1 + 2 * 0.1 is written as 0.3 in trials.csv and best-params.
        return [round(self.low + i * self.step, 12) for i in range(count)]


@dataclass(frozen=True)
class SearchSpace:
    estimator: str
    dimensions: tuple[Dimension, ...]

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Draw one value per dimension from an Optuna trial."""
        values: dict[str, Any] = {}
        for d in self.dimensions:
            if d.kind == "categorical":
                values[d.name] = trial.suggest_categorical(d.name, list(d.choices))
            elif d.kind == "int":
                values[d.name] = trial.suggest_int(
                    d.name, int(d.low), int(d.high), step=int(d.step or 1), log=d.log
                )
            else:
                values[d.name] = trial.suggest_float(d.name, d.low, d.high, step=d.step, log=d.log)
        return values

    def grid(self) -> dict[str, list[Any]]:
        """Every dimension's points; only for a space where :meth:`grid_problems` is empty."""
        points = {d.name: d.grid() for d in self.dimensions}
        return {name: values for name, values in points.items() if values is not None}

    def size(self) -> int | None:
        """How many points the space has; None when a range is continuous."""
        grids = [d.grid() for d in self.dimensions]
        if any(points is None for points in grids):
            return None
        return math.prod(len(points) for points in grids if points is not None)

    def grid_problems(self) -> list[Violation]:
        """Why a grid search cannot walk this space (continuous ranges, too many points)."""
        found = [
            Violation(
                f"{PARAM}[{d.name!r}]",
                _plain(d),
                "a float range needs a step (or choices) for the grid sampler",
            )
            for d in self.dimensions
            if d.grid() is None
        ]
        size = self.size()
        if size is not None and size > MAX_GRID_POINTS:
            found.append(
                Violation(
                    PARAM,
                    f"{size} points",
                    f"the grid has more than {MAX_GRID_POINTS} points; coarsen its steps",
                )
            )
        return found

    def points(self) -> list[dict[str, Any]] | None:
        """Every point of a finite space (each dimension has choices, or is an integer or
        stepped range) of more than one and at most MAX_TRACKED_POINTS points, else None.
        A dimension with one value is left out: there is nothing to draw."""
        import itertools

        grids = [(d.name, d.grid()) for d in self.dimensions]
        if any(points is None for _, points in grids):
            return None
        varied = [(name, points) for name, points in grids if points and len(points) > 1]
        size = math.prod(len(points) for _, points in varied)
        if not varied or size > MAX_TRACKED_POINTS:
            return None
        names = [name for name, _ in varied]
        return [
            dict(zip(names, values, strict=True))
            for values in itertools.product(*(points for _, points in varied))
        ]

    def distributions(self) -> dict[str, Any]:
        """The Optuna distribution :meth:`suggest` draws each hyper-parameter from."""
        from optuna.distributions import (
            BaseDistribution,
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        found: dict[str, BaseDistribution] = {}
        for d in self.dimensions:
            if d.kind == "categorical":
                found[d.name] = CategoricalDistribution(list(d.choices))
            elif d.kind == "int":
                found[d.name] = IntDistribution(
                    int(d.low), int(d.high), step=int(d.step or 1), log=d.log
                )
            else:
                found[d.name] = FloatDistribution(d.low, d.high, step=d.step, log=d.log)
        return found

    def distance(self, a: dict[str, Any], b: dict[str, Any]) -> float:
        """How far apart two points are: per range, the steps between them over the
        range's steps; per set of choices (unordered), 0 or 1."""
        total = 0.0
        for d in self.dimensions:
            points = d.grid()
            if d.name not in a or d.name not in b or not points or len(points) < 2:
                continue
            if d.kind == "categorical":
                total += 0.0 if _same(a[d.name], b[d.name]) else 1.0
            else:
                i, j = (_nearest(points, point[d.name]) for point in (a, b))
                total += abs(i - j) / (len(points) - 1)
        return total

    def to_json(self) -> dict[str, Any]:
        return {d.name: _plain(d) for d in self.dimensions}


def point_key(params: dict[str, Any]) -> str:
    """A point as a key: the same for a value read back from the storage (floats rounded
    as grid points are, 1e-10), whatever the order of the names."""

    def plain(value: Any) -> Any:
        return round(value, 10) if isinstance(value, float) else value

    return json.dumps({k: plain(v) for k, v in params.items()}, sort_keys=True)


def _same(a: Any, b: Any) -> bool:
    return bool(type(a) is type(b) and a == b) or (
        _is_number(a) and _is_number(b) and math.isclose(a, b, rel_tol=1e-9)
    )


def _nearest(points: list[Any], value: Any) -> int:
    return min(range(len(points)), key=lambda i: abs(points[i] - value))


def _plain(d: Dimension) -> dict[str, Any]:
    if d.kind == "categorical":
        return {"choices": list(d.choices)}
    found: dict[str, Any] = {"low": d.low, "high": d.high}
    if d.log:
        found["log"] = True
    if d.step is not None:
        found["step"] = d.step
    return found


def hyperparameter_schemas(estimator: str) -> Mapping[str, Mapping[str, Any]]:
    """The estimator's hyper-parameters and their JSON Schemas, as train-model declares them."""
    definitions = load_schema("train-model").document["$defs"]
    props: Mapping[str, Mapping[str, Any]] = definitions[estimator]["properties"]
    return props


def _is_integer(schema: Mapping[str, Any]) -> bool:
    kind = schema.get("type")
    kinds = set(kind) if isinstance(kind, list) else {kind}
    return "integer" in kinds and "number" not in kinds


def _is_numeric(schema: Mapping[str, Any]) -> bool:
    kind = schema.get("type")
    kinds = set(kind) if isinstance(kind, list) else {kind}
    if kinds & {"integer", "number"}:
        return True
    return any(_is_numeric(branch) for branch in schema.get("oneOf", ()))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse(estimator: str, raw: Mapping[str, Any]) -> tuple[SearchSpace | None, list[Violation]]:
    """Check ``raw`` against the estimator's hyper-parameters; every problem at once."""
    import jsonschema

    accepted = hyperparameter_schemas(estimator)
    violations: list[Violation] = []
    dimensions: list[Dimension] = []
    if not raw:
        violations.append(Violation(PARAM, "{}", "must name at least one hyper-parameter"))
    for name, spec in raw.items():
        where = f"{PARAM}[{name!r}]"
        if name not in accepted:
            violations.append(
                Violation(
                    where,
                    spec,
                    f"{estimator} has no hyper-parameter {name!r}; it has "
                    + ", ".join(sorted(accepted)),
                )
            )
            continue
        schema = accepted[name]
        dimension, problems = _dimension(name, spec, schema, where)
        checker = jsonschema.Draft202012Validator(schema)
        for label, value in _values_to_check(dimension):
            for error in checker.iter_errors(value):
                problems.append(
                    Violation(
                        f"{where}.{label}", value, f"not accepted by {estimator}: {error.message}"
                    )
                )
        violations.extend(problems)
        if dimension is not None and not problems:
            dimensions.append(dimension)
    if violations:
        return None, violations
    return SearchSpace(estimator, tuple(dimensions)), []


def _divides(span: float, step: float) -> bool:
    count = span / step
    return abs(count - round(count)) <= 1e-9 * max(1.0, abs(count))


def _values_to_check(dimension: Dimension | None) -> list[tuple[str, Any]]:
    """Both ends of a range (the schema's bounds are intervals), or every choice."""
    if dimension is None:
        return []
    if dimension.kind == "categorical":
        return [(f"choices[{i}]", c) for i, c in enumerate(dimension.choices)]
    cast = int if dimension.kind == "int" else float
    return [("low", cast(dimension.low)), ("high", cast(dimension.high))]


def _dimension(
    name: str, spec: Any, schema: Mapping[str, Any], where: str
) -> tuple[Dimension | None, list[Violation]]:
    if not isinstance(spec, dict):
        return None, [
            Violation(where, spec, 'must be {"low": .., "high": ..} or {"choices": [..]}')
        ]
    if "choices" in spec:
        extra = sorted(set(spec) - {"choices"})
        choices = spec["choices"]
        if extra:
            return None, [Violation(where, spec, f"choices take no {', '.join(extra)}")]
        if not isinstance(choices, list) or not choices:
            return None, [Violation(f"{where}.choices", choices, "must be a non-empty list")]
        if any(isinstance(c, dict | list) for c in choices):
            return None, [Violation(f"{where}.choices", choices, "must hold plain values")]
        if len({repr(c) for c in choices}) != len(choices):
            return None, [Violation(f"{where}.choices", choices, "must not repeat a value")]
        return Dimension(name, "categorical", choices=tuple(choices)), []
    extra = sorted(set(spec) - _RANGE_KEYS)
    if extra or "low" not in spec or "high" not in spec:
        rule = (
            f"unknown key(s) {', '.join(extra)}; a range has low, high, log, step"
            if extra
            else 'must be {"low": .., "high": ..} or {"choices": [..]}'
        )
        return None, [Violation(where, spec, rule)]
    if not _is_numeric(schema):
        return None, [Violation(where, spec, f"{name} is not numeric: give its choices")]
    low, high, step, log = spec["low"], spec["high"], spec.get("step"), spec.get("log", False)
    integer = _is_integer(schema)
    problems: list[Violation] = []
    for key, value in (("low", low), ("high", high)):
        if not _is_number(value) or not math.isfinite(value):
            problems.append(Violation(f"{where}.{key}", value, "must be a finite number"))
        elif integer and value != int(value):
            problems.append(Violation(f"{where}.{key}", value, f"{name} is an integer"))
    if not isinstance(log, bool):
        problems.append(Violation(f"{where}.log", log, "must be true or false"))
    if step is not None:
        if not _is_number(step) or not step > 0:
            problems.append(Violation(f"{where}.step", step, "must be a number > 0"))
        elif integer and step != int(step):
            problems.append(Violation(f"{where}.step", step, f"{name} is an integer"))
        elif log:
            problems.append(Violation(f"{where}.step", step, "a log scale takes no step"))
    if problems:
        return None, problems
    if low > high:
        problems.append(Violation(where, spec, "low must not exceed high"))
    if log and low <= 0:
        problems.append(Violation(f"{where}.low", low, "a log scale needs low > 0"))
    if step is not None and not problems and not _divides(high - low, step):
        # Optuna would quietly move high to the last step below it; the user should choose.
        problems.append(Violation(f"{where}.step", step, "must divide high - low"))
    if problems:
        return None, problems
    kind = "int" if integer else "float"
    return (
        Dimension(
            name,
            kind,
            low=float(low),
            high=float(high),
            step=None if step is None else float(step),
            log=log,
        ),
        [],
    )
