"""CEL as Tekton Triggers evaluates it: cel-python plus Triggers' extension functions.

Triggers adds ``header.match(name, value)``, ``header.canonical(name)``,
``s.truncate(n)``, ``s.split(sep)``, ``parseJSON(s)`` and ``marshalJSON(v)`` to
standard CEL; the same names work here. Programs are compiled once per expression.

Example::

    evaluate("body.ref == 'refs/heads/main'", {"body": {"ref": "refs/heads/main"}})  # True
"""

from __future__ import annotations

import json
import threading
from functools import cache
from typing import Any

_lock = threading.Lock()  # cel-python's evaluator is not documented as thread-safe


def _functions() -> dict[str, Any]:
    from celpy import celtypes

    from tekton_mlops.triggers.event import canonical

    def values(header: Any, name: Any) -> list[str]:
        return [str(v) for v in header.get(celtypes.StringType(canonical(str(name))), [])]

    def match(header: Any, name: Any, value: Any) -> Any:
        return celtypes.BoolType(str(value) in values(header, name))

    def canonical_value(header: Any, name: Any) -> Any:
        found = values(header, name)
        return celtypes.StringType(found[0] if found else "")

    def truncate(text: Any, length: Any) -> Any:
        return celtypes.StringType(str(text)[: int(length)])

    def split(text: Any, separator: Any) -> Any:
        return celtypes.ListType([celtypes.StringType(p) for p in str(text).split(str(separator))])

    def parse_json(text: Any) -> Any:
        from celpy.adapter import json_to_cel

        return json_to_cel(json.loads(str(text)))

    def marshal_json(value: Any) -> Any:
        return celtypes.StringType(json.dumps(to_python(value), separators=(",", ":")))

    return {
        "match": match,
        "canonical": canonical_value,
        "truncate": truncate,
        "split": split,
        "parseJSON": parse_json,
        "marshalJSON": marshal_json,
    }


@cache
def _program(expression: str) -> Any:
    import celpy
    from celpy.celparser import CELParseError

    environment = celpy.Environment()
    try:
        ast = environment.compile(expression)
    except CELParseError as exc:
        raise ValueError(f"cannot parse {expression!r}: {str(exc).splitlines()[0]}") from None
    return environment.program(ast, functions=_functions())


def to_python(value: Any) -> Any:
    """A CEL value as plain JSON-able Python."""
    from celpy import celtypes

    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, (celtypes.IntType, celtypes.UintType)):
        return int(value)
    if isinstance(value, celtypes.DoubleType):
        return float(value)
    if isinstance(value, (celtypes.StringType, celtypes.BytesType)):
        return str(value)
    if isinstance(value, celtypes.MapType):
        return {str(k): to_python(v) for k, v in value.items()}
    if isinstance(value, celtypes.ListType):
        return [to_python(v) for v in value]
    if value is None or isinstance(value, celtypes.NullType):
        return None
    return value


def evaluate(expression: str, activation: dict[str, Any]) -> Any:
    """Evaluate ``expression`` over plain Python values; ValueError on any CEL error."""
    from celpy.adapter import json_to_cel
    from celpy.evaluation import CELEvalError

    program = _program(expression)
    bound = {name: json_to_cel(value) for name, value in activation.items()}
    with _lock:
        try:
            result = program.evaluate(bound)
        except CELEvalError as exc:
            raise ValueError(str(exc.args[0] if exc.args else exc)) from None
    if isinstance(result, CELEvalError):
        raise ValueError(str(result.args[0] if result.args else result))
    return to_python(result)
