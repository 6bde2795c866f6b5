"""The part of CEL that KFP writes in ``triggerPolicy.condition``, evaluated.

KFP's compiler turns ``dsl.If(a == 'x')``, ``Elif`` and ``Else`` into conjunctions of
comparisons of ``inputs.parameter_values['name']`` (cast with ``int()``/``double()``)
and literals, negated with ``!( )``. This module parses that language (with ``||``
and parentheses for good measure) and evaluates it over typed parameter values, so a
condition step decides exactly as KFP's driver would.

Example::

    evaluate("!(int(inputs.parameter_values['n']) > 3) && inputs.parameter_values['s'] == 'a'",
             {"n": 2, "s": "a"})   # True
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tekton_mlops.kfp.values import to_text

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<number>-?\d+\.\d*(?:[eE][-+]?\d+)?|-?\d+(?:[eE][-+]?\d+)?)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<op>==|!=|<=|>=|&&|\|\||[<>!()\[\].,])
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_COMPARE = ("==", "!=", "<", "<=", ">", ">=")


class ConditionError(ValueError):
    """A condition this evaluator cannot read, or one that compares what CEL would refuse."""


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str


def tokens(text: str) -> list[_Token]:
    found: list[_Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise ConditionError(f"cannot read condition at {text[position : position + 20]!r}")
        kind = match.lastgroup or ""
        found.append(_Token(kind, match.group(kind)))
        position = match.end()
    return found


def parameter_names(text: str) -> list[str]:
    """The parameters a condition reads, in order of first use."""
    names: list[str] = []
    for match in re.finditer(r"parameter_values\[\s*(['\"])(.*?)\1\s*\]", text):
        if match.group(2) not in names:
            names.append(match.group(2))
    return names


class _Parser:
    def __init__(self, text: str, values: Mapping[str, Any]) -> None:
        self.items = tokens(text)
        self.index = 0
        self.values = values
        self.text = text

    def peek(self) -> str:
        return self.items[self.index].text if self.index < len(self.items) else ""

    def take(self, expected: str | None = None) -> _Token:
        if self.index >= len(self.items):
            raise ConditionError(f"condition ends early: {self.text}")
        token = self.items[self.index]
        if expected is not None and token.text != expected:
            raise ConditionError(f"expected {expected!r}, found {token.text!r} in {self.text}")
        self.index += 1
        return token

    def parse(self) -> Any:
        value = self.disjunction()
        if self.index != len(self.items):
            raise ConditionError(f"unexpected {self.peek()!r} in {self.text}")
        return value

    def disjunction(self) -> Any:
        value = self.conjunction()
        while self.peek() == "||":
            self.take()
            right = self.conjunction()
            value = _truth(value) or _truth(right)
        return value

    def conjunction(self) -> Any:
        value = self.unary()
        while self.peek() == "&&":
            self.take()
            right = self.unary()
            value = _truth(value) and _truth(right)
        return value

    def unary(self) -> Any:
        if self.peek() == "!":
            self.take()
            return not _truth(self.unary())
        return self.comparison()

    def comparison(self) -> Any:
        left = self.operand()
        if self.peek() in _COMPARE:
            operator = self.take().text
            right = self.operand()
            return _compare(operator, left, right)
        return left

    def operand(self) -> Any:
        token = self.take()
        if token.text == "(":
            value = self.disjunction()
            self.take(")")
            return value
        if token.kind == "number":
            number = float(token.text)
            return int(token.text) if re.fullmatch(r"-?\d+", token.text) else number
        if token.kind == "string":
            return _unquote(token.text)
        if token.kind == "name":
            return self.name(token.text)
        raise ConditionError(f"unexpected {token.text!r} in {self.text}")

    def name(self, name: str) -> Any:
        if name in ("true", "false"):
            return name == "true"
        if name == "null":
            return None
        if name in _FUNCTIONS:
            self.take("(")
            argument = self.disjunction()
            self.take(")")
            return _FUNCTIONS[name](argument)
        if name == "inputs":
            self.take(".")
            field = self.take().text
            if field not in ("parameter_values", "parameters"):
                raise ConditionError(f"inputs.{field} is not a parameter in {self.text}")
            self.take("[")
            key = self.take()
            if key.kind != "string":
                raise ConditionError(f"a parameter name must be quoted in {self.text}")
            self.take("]")
            value = self.values.get(_unquote(key.text))
            while self.peek() == "[":  # inputs.parameter_values['x']['k'] on a struct
                self.take("[")
                index = self.operand()
                self.take("]")
                value = value[index] if value is not None else None
            return value
        raise ConditionError(f"unknown name {name!r} in {self.text}")


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def _truth(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ConditionError(f"{value!r} is not a boolean condition")


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        return int(float(value)) if "." in value or "e" in value.lower() else int(value)
    return int(value)


def _to_double(value: Any) -> float:
    return float(value)


def _to_string(value: Any) -> str:
    return to_text(value)


_FUNCTIONS: dict[str, Callable[[Any], Any]] = {
    "int": _to_int,
    "double": _to_double,
    "string": _to_string,
}


_ORDERING: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _compare(operation: str, left: Any, right: Any) -> bool:
    if isinstance(left, bool) != isinstance(right, bool):
        # KFP casts a boolean compared with a string to 'true'/'false'.
        left, right = _text_if_mixed(left), _text_if_mixed(right)
    if operation in ("==", "!="):
        equal = bool(left == right)
        return equal if operation == "==" else not equal
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right))
    strings = all(isinstance(v, str) for v in (left, right))
    if not (numbers or strings):
        raise ConditionError(f"cannot order {left!r} and {right!r}")
    return bool(_ORDERING[operation](left, right))


def _text_if_mixed(value: Any) -> Any:
    return to_text(value) if isinstance(value, bool) else value


def evaluate(text: str, values: Mapping[str, Any]) -> bool:
    """Whether the condition holds for these typed parameter values."""
    return _truth(_Parser(text, values).parse())


def check_syntax(text: str) -> None:
    """Raise ConditionError when the condition cannot be read (values unknown yet)."""
    tokens(text)
