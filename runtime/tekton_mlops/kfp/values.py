"""KFP parameter values and their text form, the one shape they take in Tekton.

A Tekton param or result is a string, a KFP parameter is typed (``parameterType``).
Every KFP value crosses Tekton as its *text form*, the string KFP's launcher puts in
place of ``{{$.inputs.parameters['x']}}``: a string as is, a number without exponent
or trailing ``.0`` (Go's ``FormatFloat(v, 'f', -1, 64)``), a boolean ``true``/``false``,
a list or dict as JSON. :func:`parse` reads a text form back by type, accepting what
KFP's launcher accepts for an output parameter file (Go's ``ParseBool`` spellings).

An optional pipeline input without a default has no value in KFP. Tekton needs a
default to make a param optional, so such params default to :data:`NONE_TEXT`, which
every reader takes as "absent".
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

STRING = "STRING"
INTEGER = "NUMBER_INTEGER"
DOUBLE = "NUMBER_DOUBLE"
BOOLEAN = "BOOLEAN"
LIST = "LIST"
STRUCT = "STRUCT"
FINAL_STATUS = "TASK_FINAL_STATUS"
TASK_CONFIG = "TASK_CONFIG"
TYPES = (STRING, INTEGER, DOUBLE, BOOLEAN, LIST, STRUCT, FINAL_STATUS, TASK_CONFIG)

#: The Tekton default of an optional KFP input that has none: the input is absent.
NONE_TEXT = "<kfp:none>"

_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")
# The IR's older spellings of the same types (schemaVersion 2.0.0 ``type:`` fields).
_LEGACY = {"INT": INTEGER, "DOUBLE": DOUBLE, "STRING": STRING}


def canonical_type(kind: str) -> str:
    return _LEGACY.get(kind, kind)


def format_number(value: float | int) -> str:
    """A number as Go's ``strconv.FormatFloat(v, 'f', -1, 64)`` writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer():
        return str(int(value))
    # repr gives the shortest digits that round-trip; Decimal spells them without exponent.
    return format(Decimal(repr(value)), "f")


def to_text(value: Any) -> str:
    """The text form of a typed value."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return format_number(value)
    if value is None:
        return "null"
    return json.dumps(value)


def _whole_numbers(value: Any) -> Any:
    """Integral doubles inside a list or dict as ints, as protojson writes them (KFP's
    backend hands ``[1, 2]`` on, not the ``[1.0, 2.0]`` the IR's Struct holds)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    return value


def coerce(value: Any, kind: str) -> Any:
    """A value from the IR (where every number is a double) as the type says."""
    kind = canonical_type(kind)
    if value is None:
        return None
    if isinstance(value, list | dict):
        return _whole_numbers(value)
    if kind == INTEGER and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == DOUBLE and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and kind not in (STRING, ""):
        return parse(value, kind)
    return value


def parse(text: str, kind: str) -> Any:
    """A text form as a typed value; ``ValueError`` with the reason when it is not one."""
    kind = canonical_type(kind)
    if kind in (STRING, ""):
        return text
    stripped = text.strip()
    if kind == INTEGER:
        try:
            return int(stripped)
        except ValueError:
            pass
        try:
            number = float(stripped)  # KFP writes integers of the IR as 3.0 at times
        except ValueError:
            number = math.nan
        if not number.is_integer():
            raise ValueError(f"{text!r} is not an integer")
        return int(number)
    if kind == DOUBLE:
        try:
            return float(stripped)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
    if kind == BOOLEAN:
        if stripped in _TRUE:
            return True
        if stripped in _FALSE:
            return False
        raise ValueError(f"{text!r} is not a boolean (true or false)")
    if kind in (LIST, STRUCT, FINAL_STATUS, TASK_CONFIG):
        try:
            value = json.loads(stripped)
        except ValueError:
            raise ValueError(f"{text!r} is not JSON") from None
        want = list if kind == LIST else dict
        if not isinstance(value, want):
            raise ValueError(f"{text!r} is not a JSON {'list' if kind == LIST else 'object'}")
        return value
    raise ValueError(f"unknown parameter type {kind}")


def check(value: Any, kind: str) -> Any:
    """A typed value checked against its declared type (ints pass as doubles)."""
    kind = canonical_type(kind)
    expected: dict[str, tuple[type, ...]] = {
        STRING: (str,),
        INTEGER: (int,),
        DOUBLE: (int, float),
        BOOLEAN: (bool,),
        LIST: (list,),
        STRUCT: (dict,),
    }
    types = expected.get(kind)
    if types is None or value is None:
        return value
    if isinstance(value, bool) and kind != BOOLEAN:
        raise ValueError(f"{value!r} is a boolean, not {kind}")
    if isinstance(value, str) and kind != STRING:
        return parse(value, kind)
    if not isinstance(value, types):
        if kind == STRING:
            return to_text(value)
        raise ValueError(f"{value!r} is not {kind}")
    return float(value) if kind == DOUBLE and isinstance(value, int | float) else value
