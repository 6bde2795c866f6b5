"""JSON in and out of the V2 protocol with memory bounded per request.

``json.loads`` builds a Python object for every number: a 50 MB request of floats
became about 1 GiB of objects before a single tensor existed, and 100000 ``[``
ended the connection with a RecursionError. ``parse`` walks the request itself:
nesting is capped at ``MAX_DEPTH``, every Python object it builds counts against
a budget, and an array of numbers or booleans (flat or nested) is recognised by
one regular expression and kept as a span of the request text (``Numbers``) that
decodes later, in chunks, straight into the tensor's dtype. Strings go through
the json module's own C scanner.

On the way out, ``tensor_json`` writes tensor data in chunks, and writes NaN and
infinities as ``null``, as KServe's model server does (orjson and pydantic both
write them so): the reply is always strict JSON.

Example::

    document = parse('{"inputs": [{"data": [1.5, 2.5]}]}', max_values=1000)
    document["inputs"][0]["data"]        # [1.5, 2.5] (short arrays are plain lists)
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

# json's C string scanner: (text, index after the quote, strict) -> (string, end).
# typeshed does not declare it.
scanstring: Callable[[str, int, bool], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]

#: Deepest nesting of arrays and objects a request may have. A V2 request needs
#: three levels plus the tensor's rank; 100 leaves room and keeps recursion shallow.
MAX_DEPTH = 100
#: Arrays shorter than this (in characters) become lists: cheaper than a span, and
#: ``shape`` stays a list.
_SPAN_MIN_CHARS = 512
#: Deeper arrays of numbers go item by item (tensors of rank over 8 are rare).
_SPAN_MAX_DEPTH = 8
#: Bodies this small with this few brackets go to json's C parser: it cannot nest
#: deeper than MAX_DEPTH or hold more values than characters, and it is ~7x faster
#: on the one-row requests that make up most traffic.
_SMALL_BODY = 1 << 16
#: Characters (request) or elements (reply) handled at once: bounds the temporaries.
_CHUNK_CHARS = 1 << 20
CHUNK_ELEMENTS = 1 << 16

_WS = r"[ \t\n\r]*+"
# JSON numbers, plus NaN and Infinity, which Python's json (and so KServe) accepts.
_NUMBER = r"(?:-?(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?+(?:[eE][-+]?[0-9]++)?+|NaN|-?Infinity)"
_NUMBER_START = frozenset("-0123456789NI")
_SCALAR = re.compile(
    r"(-?(?:0|[1-9][0-9]*))(\.[0-9]+)?([eE][-+]?[0-9]+)?|(true|false|null|NaN|-?Infinity)"
)
_CONSTANTS: dict[str, Any] = {
    "true": True,
    "false": False,
    "null": None,
    "NaN": math.nan,
    "Infinity": math.inf,
    "-Infinity": -math.inf,
}
_SKIP = re.compile(_WS)
_OPENING = re.compile(rf"(?:\[{_WS})+")
_NOT_INTEGER = re.compile(r"[.eENI]")
_LONG_INTEGER = re.compile(r"[0-9]{19}")  # may not fit int64: parsed exactly instead
_NO_BRACKETS = str.maketrans("[]", "  ")


class RequestError(Exception):
    """A request the server refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@functools.cache
def _array_pattern(depth: int, kind: str) -> re.Pattern[str]:
    """An array nested ``depth`` deep whose leaves are all numbers (or all booleans).

    Possessive loops never backtrack, so a match is linear in the text it covers. The
    pattern doubles with each level (an item appears twice), hence ``_SPAN_MAX_DEPTH``.
    """
    item = _NUMBER if kind == "number" else "(?:true|false)"
    for _ in range(depth):
        item = rf"\[{_WS}{item}(?:{_WS},{_WS}{item})*+{_WS}\]"
    return re.compile(item)


@dataclass(frozen=True)
class Numbers:
    """An array of numbers or booleans (flat or nested), still as the request's text."""

    text: str
    start: int
    end: int
    kind: str  # "number" or "bool"

    @property
    def count(self) -> int:
        # Every array holds at least one item, so the items are the commas plus one.
        return self.text.count(",", self.start, self.end) + 1

    def integral(self) -> bool:
        return _NOT_INTEGER.search(self.text, self.start, self.end) is None

    def _pieces(self) -> Iterator[str]:
        """The span cut at commas into pieces of about ``_CHUNK_CHARS``, brackets blanked."""
        position = self.start
        while position < self.end:
            cut = self.text.find(",", min(position + _CHUNK_CHARS, self.end), self.end)
            stop = self.end if cut < 0 else cut
            yield self.text[position:stop].translate(_NO_BRACKETS)
            position = stop + 1

    def to_array(self, dtype: Any) -> np.ndarray:
        """The values as a flat array of ``dtype``; OverflowError when one does not fit."""
        target = np.dtype(dtype)
        out = np.empty(self.count, target)
        filled = 0
        for piece in self._pieces():
            values = self._parse(piece, target)
            if values.size != piece.count(",") + 1:  # the pattern admits nothing else
                raise RequestError("the numbers could not be read")
            # Cast into the preallocated tensor; an FP32 value over its range becomes inf.
            with np.errstate(over="ignore", invalid="ignore"):
                out[filled : filled + values.size] = values
            filled += values.size
        return out

    def _parse(self, piece: str, target: np.dtype[Any]) -> np.ndarray:
        if self.kind == "bool":
            raw = np.frombuffer(piece.encode("ascii"), np.uint8)
            # "true" holds the only t and "false" the only f: one letter per value.
            flags: np.ndarray = raw[(raw == ord("t")) | (raw == ord("f"))] == ord("t")
            return flags
        if target.kind == "f":
            return np.fromstring(piece, dtype=np.float64, sep=",")
        if _LONG_INTEGER.search(piece):
            exact: np.ndarray = np.array(json.loads(f"[{piece}]"), dtype=target)  # OverflowError
            return exact
        values = np.fromstring(piece, dtype=np.int64, sep=",")
        limits = np.iinfo(target)
        if values.size and (values.min() < limits.min or values.max() > limits.max):
            raise OverflowError(f"a value is out of range for {target}")
        return values


class _Parser:
    """Recursive descent over one document; ``budget`` Python objects at most."""

    def __init__(self, text: str, budget: int) -> None:
        self.text = text
        self.budget = budget
        self.limit = budget
        self.failed = 0  # >0 inside an array the span pattern did not match

    def document(self) -> Any:
        value, end = self.value(_SKIP.match(self.text, 0).end(), 0)  # type: ignore[union-attr]
        end = _SKIP.match(self.text, end).end()  # type: ignore[union-attr]
        if end != len(self.text):
            raise self.error("Extra data", end)
        return value

    def error(self, message: str, position: int) -> RequestError:
        # json's own message format: "...: line 1 column 5 (char 4)"
        detail = json.JSONDecodeError(message, self.text, position)
        return RequestError(f"the body is not JSON: {detail}")

    def spend(self, count: int) -> None:
        self.budget -= count
        if self.budget < 0:
            raise RequestError(
                f"the request holds more than {self.limit} values (the --max-elements limit)", 413
            )

    def value(self, i: int, depth: int) -> tuple[Any, int]:
        text = self.text
        char = text[i : i + 1]
        if char == "[":
            return self.array(i, depth + 1)
        self.spend(1)
        if char == '"':
            try:
                return scanstring(text, i + 1, True)
            except json.JSONDecodeError as exc:
                raise self.error(exc.msg, exc.pos) from None
        if char == "{":
            return self.object(i, depth + 1)
        match = _SCALAR.match(text, i)
        if match is None:
            raise self.error("Expecting value", i)
        integer, fraction, exponent, constant = match.groups()
        if constant is not None:
            return _CONSTANTS[constant], match.end()
        if fraction or exponent:
            return float(match.group()), match.end()
        try:
            return int(integer), match.end()
        except ValueError:  # over Python's 4300-digit limit for int()
            raise self.error("Number too long", i) from None

    def object(self, i: int, depth: int) -> tuple[dict[str, Any], int]:
        if depth > MAX_DEPTH:
            raise RequestError(f"the JSON is nested deeper than {MAX_DEPTH} levels")
        text, skip = self.text, _SKIP.match
        result: dict[str, Any] = {}
        i = skip(text, i + 1).end()  # type: ignore[union-attr]
        if text.startswith("}", i):
            return result, i + 1
        while True:
            if not text.startswith('"', i):
                raise self.error("Expecting property name enclosed in double quotes", i)
            self.spend(1)
            try:
                key, i = scanstring(text, i + 1, True)
            except json.JSONDecodeError as exc:
                raise self.error(exc.msg, exc.pos) from None
            i = skip(text, i).end()  # type: ignore[union-attr]
            if not text.startswith(":", i):
                raise self.error("Expecting ':' delimiter", i)
            result[key], i = self.value(skip(text, i + 1).end(), depth)  # type: ignore[union-attr]
            i = skip(text, i).end()  # type: ignore[union-attr]
            if text.startswith(",", i):
                i = skip(text, i + 1).end()  # type: ignore[union-attr]
            elif text.startswith("}", i):
                return result, i + 1
            else:
                raise self.error("Expecting ',' delimiter", i)

    def array(self, i: int, depth: int) -> tuple[Any, int]:
        text = self.text
        opening = _OPENING.match(text, i).end()  # type: ignore[union-attr]
        levels = text.count("[", i, opening)
        if depth - 1 + levels > MAX_DEPTH:
            raise RequestError(f"the JSON is nested deeper than {MAX_DEPTH} levels")
        first = text[opening : opening + 1]
        kind = "number" if first in _NUMBER_START else "bool" if first in ("t", "f") else ""
        if not kind or levels > _SPAN_MAX_DEPTH or self.failed:
            return self.items(i, depth)
        match = _array_pattern(levels, kind).match(text, i)
        if match is None:
            # Not all numbers after all (or not JSON): the items one by one, and no more
            # span attempts inside, so no text is matched twice.
            self.failed += 1
            try:
                return self.items(i, depth)
            finally:
                self.failed -= 1
        end = match.end()
        if end - i >= _SPAN_MIN_CHARS:
            return Numbers(text, i, end, kind), end
        self.spend(text.count(",", i, end) + levels)
        return json.loads(text[i:end]), end

    def items(self, i: int, depth: int) -> tuple[list[Any], int]:
        self.spend(1)
        text, skip = self.text, _SKIP.match
        result: list[Any] = []
        i = skip(text, i + 1).end()  # type: ignore[union-attr]
        if text.startswith("]", i):
            return result, i + 1
        while True:
            value, i = self.value(i, depth)
            result.append(value)
            i = skip(text, i).end()  # type: ignore[union-attr]
            if text.startswith(",", i):
                i = skip(text, i + 1).end()  # type: ignore[union-attr]
            elif text.startswith("]", i):
                return result, i + 1
            else:
                raise self.error("Expecting ',' delimiter", i)


def text_of(body: bytes | bytearray) -> str:
    """The body as text; RequestError when it is not UTF-8."""
    try:
        return body.decode()
    except UnicodeDecodeError as exc:
        raise RequestError(f"the body is not UTF-8: {exc.reason} at byte {exc.start}") from None


def parse(text: str, max_values: int) -> Any:
    """The JSON document in ``text``; large arrays of numbers or booleans come back as
    ``Numbers``. RequestError: 400, or 413 past ``max_values`` Python objects."""
    if len(text) <= min(_SMALL_BODY, max_values) and text.count("[") + text.count("{") <= MAX_DEPTH:
        try:
            return json.loads(text)
        except ValueError as exc:  # JSONDecodeError, or an integer over 4300 digits
            raise RequestError(f"the body is not JSON: {exc}") from None
    return _Parser(text, max_values).document()


def tensor_values(array: np.ndarray) -> list[Any]:
    """The values of a small ``array`` (row-major) for ``json.dumps``: what ``tensor_json``
    writes, with NaN and infinities as None (null) and bytes as text."""
    values: list[Any] = array.reshape(-1).tolist()
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        return [v if math.isfinite(v) else None for v in values]
    if array.dtype.kind not in "fbiu":  # strings (BYTES)
        return [v.decode(errors="replace") if isinstance(v, bytes) else str(v) for v in values]
    return values


def tensor_json(array: np.ndarray) -> Iterator[str]:
    """The values of ``array`` (any shape, row-major) as JSON array items, in chunks.

    Floats are written as ``repr`` writes them, as ``json.dumps`` does; NaN and
    infinities as ``null``, as KServe's server writes them.
    """
    flat = array.reshape(-1)
    for start in range(0, max(flat.size, 1), CHUNK_ELEMENTS):
        chunk = flat[start : start + CHUNK_ELEMENTS]
        prefix = "," if start else ""
        if chunk.dtype.kind == "f":
            values = chunk.tolist()
            if np.isfinite(chunk).all():
                yield prefix + ",".join(map(float.__repr__, values))
            else:
                yield prefix + ",".join(
                    float.__repr__(v) if math.isfinite(v) else "null" for v in values
                )
        elif chunk.dtype.kind == "b":
            yield prefix + ",".join("true" if v else "false" for v in chunk.tolist())
        elif chunk.dtype.kind in "iu":
            yield prefix + ",".join(map(str, chunk.tolist()))
        else:  # strings (BYTES)
            yield prefix + ",".join(
                json.dumps(v.decode(errors="replace") if isinstance(v, bytes) else str(v))
                for v in chunk.tolist()
            )
