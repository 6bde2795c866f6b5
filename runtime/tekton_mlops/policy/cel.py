"""CEL for policy rules (cel-python): compiled once, evaluated under a time limit.

Numbers reach CEL as doubles, as CEL's own JSON mapping (``google.protobuf.Value``) has
them, so ``a.age_days <= params.max_age_days`` compares alike whether the policy wrote
``30`` or ``30.0`` (CEL never compares an int with a double). Times are CEL timestamps.

CEL has no loops, but comprehensions nest: three ``all`` over a few hundred items are
minutes of work in an interpreter. Each evaluation therefore has a deadline; on the main
thread (where a step runs) a timer signal stops it, elsewhere the evaluation runs in a
daemon thread that is left behind when it overruns.

Example::

    program = compile_expression("params.max_age_days > 1.0")
    evaluate(program, activation({"params": {"max_age_days": 30}}), seconds=1)   # True
"""

from __future__ import annotations

import json
import re
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

T = TypeVar("T")
#: ``{{ expression }}`` in a message.
PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


class EvaluationError(Exception):
    """A rule could not be evaluated; the message says why in one line."""


@dataclass(frozen=True)
class Program:
    text: str
    runner: Any  # a celpy Runner


def compile_expression(text: str) -> Program:
    """Parse ``text``; ValueError with the parser's first line when it is not CEL."""
    import celpy
    from celpy.celparser import CELParseError

    environment = celpy.Environment()
    try:
        ast = environment.compile(text)
    except CELParseError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise ValueError(lines[0] if lines else "not a CEL expression") from None
    return Program(text, environment.program(ast))


def compile_template(message: str) -> list[str | Program]:
    """A message as literal text and the programs of its ``{{ }}`` placeholders."""
    parts: list[str | Program] = []
    position = 0
    for match in PLACEHOLDER.finditer(message):
        parts.append(message[position : match.start()])
        parts.append(compile_expression(match.group(1).strip()))
        position = match.end()
    parts.append(message[position:])
    return [p for p in parts if p != ""]


def to_cel(value: Any) -> Any:
    """Plain values (JSON-like, with datetimes) as CEL values; every number a double."""
    from celpy import celtypes

    if value is None:
        return None
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int | float):
        return celtypes.DoubleType(float(value))
    if isinstance(value, str):
        return celtypes.StringType(value)
    if isinstance(value, datetime):
        return celtypes.TimestampType(value)
    if isinstance(value, Mapping):
        return celtypes.MapType({celtypes.StringType(k): to_cel(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return celtypes.ListType([to_cel(v) for v in value])
    raise TypeError(f"{type(value).__name__} has no CEL form")


def activation(document: Mapping[str, Any]) -> dict[str, Any]:
    """The names a rule sees, converted once for every rule."""
    return {name: to_cel(value) for name, value in document.items()}


def to_plain(value: Any) -> Any:
    """A CEL value as plain JSON-able Python (timestamps as RFC 3339 text)."""
    from celpy import celtypes

    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, celtypes.DoubleType):
        number = float(value)
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    if isinstance(value, celtypes.IntType | celtypes.UintType):
        return int(value)
    if isinstance(value, celtypes.TimestampType):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, celtypes.StringType | celtypes.BytesType | celtypes.DurationType):
        return str(value)
    if isinstance(value, celtypes.MapType):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, celtypes.ListType):
        return [to_plain(v) for v in value]
    return value


def evaluate(program: Program, bound: Mapping[str, Any], seconds: float) -> Any:
    """The value of ``program`` over ``bound`` (from :func:`activation`), as plain Python.

    Raises:
        EvaluationError: CEL reported an error (a missing key, no such overload) or the
            evaluation did not finish within ``seconds``.
    """
    from celpy.evaluation import CELEvalError

    def run() -> Any:
        try:
            return program.runner.evaluate(dict(bound))
        except CELEvalError as exc:
            return exc

    result = _within(run, seconds)
    if isinstance(result, CELEvalError):
        raise EvaluationError(_reason(result))
    return to_plain(result)


def render(parts: list[str | Program], bound: Mapping[str, Any], seconds: float) -> str:
    """A message with each placeholder replaced by its value (or the reason it has none)."""
    text: list[str] = []
    for part in parts:
        if isinstance(part, str):
            text.append(part)
            continue
        try:
            text.append(_shown(evaluate(part, bound, seconds)))
        except EvaluationError as exc:
            text.append(f"<{part.text}: {exc}>")
    return "".join(text)


def _shown(value: Any) -> str:
    """Text as it is, a list of texts comma-separated, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value) if value else "(none)"
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _reason(error: Any) -> str:
    """CEL's error in one line: its message (without the dump of every variable it appends
    to an undeclared name) and the key or member it was about."""
    args: tuple[Any, ...] = tuple(getattr(error, "args", ()))
    message = str(args[0]) if args else str(error)
    message = message.split(" (in activation", 1)[0].strip()
    detail = args[2] if len(args) > 2 else None
    if message == "no such key" and isinstance(detail, tuple) and detail:
        message += f": {str(detail[0])!r}"
    return message.splitlines()[0] if message else "evaluation error"


class _OverTime(BaseException):
    """Raised by the timer; a BaseException, because cel-python catches Exception inside."""


#: After the deadline the timer fires again this often (seconds): an alarm that lands in a
#: finaliser or a garbage-collector callback is reported and dropped by Python, and one
#: dropped alarm must not let the evaluation run on to its end.
_REPEAT = 0.05


def _within(run: Callable[[], T], seconds: float) -> T:
    over = EvaluationError(f"did not finish within the time limit of {seconds:g} s")
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        armed = [True]

        def stop(signum: int, frame: Any) -> None:
            if armed[0]:
                raise _OverTime

        previous = signal.signal(signal.SIGALRM, stop)
        try:
            try:
                signal.setitimer(signal.ITIMER_REAL, seconds, _REPEAT)
                return run()
            finally:
                # A repeat may land here, before the timer is off: the outer handler takes it.
                armed[0] = False
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _OverTime:
            raise over from None
        finally:
            signal.signal(signal.SIGALRM, previous)
    # No signal reaches another thread: run it in one that can be left behind.
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = run()
        except Exception as exc:  # noqa: BLE001 - handed back to the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise over
    if "error" in box:
        raise box["error"]
    result: T = box["value"]
    return result
