"""Compile every rule of a policy first, then evaluate each one: a verdict per rule.

A rule that does not compile (its expression or a ``{{ }}`` in its message) is a bad
policy: :func:`compile_rules` names every such rule at once (exit 2) before any model is
read. At evaluation, a rule passes only when its expression is exactly true: false, a
value that is not a boolean, a CEL error (a missing key, no such overload) and an
evaluation that overruns its time limit all count against the model (fail closed), each
with its reason.

Example::

    rules = compile_rules(policy)
    decision = decide(rules, document, seconds=5)
    decision.failures, decision.warnings
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tekton_mlops.errors import ParameterError, Violation
from tekton_mlops.policy import cel
from tekton_mlops.policy.spec import STEP, Policy, Rule


@dataclass(frozen=True)
class CompiledRule:
    rule: Rule
    program: cel.Program
    message: list[str | cel.Program]


@dataclass(frozen=True)
class Outcome:
    name: str
    description: str
    severity: str
    passed: bool
    reason: str  # why it did not pass; empty when it passed
    seconds: float

    @property
    def result(self) -> str:
        if self.passed:
            return "pass"
        return "fail" if self.severity == "failure" else "warn"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "severity": self.severity,
            "result": self.result,
            "reason": self.reason,
            "seconds": round(self.seconds, 4),
        }


@dataclass(frozen=True)
class Decision:
    outcomes: tuple[Outcome, ...]

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.result == "fail"]

    @property
    def warnings(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.result == "warn"]

    def passed(self, fail_on_warning: bool) -> bool:
        return not self.failures and not (fail_on_warning and self.warnings)


def compile_rules(policy: Policy) -> list[CompiledRule]:
    """Every rule compiled; ParameterError naming each rule that does not compile."""
    compiled: list[CompiledRule] = []
    problems: list[Violation] = []
    param = policy.source.param or "policy"
    shown = policy.source.where if policy.source.param == "policy-path" else "(inline text)"
    for rule in policy.rules:
        try:
            program = cel.compile_expression(rule.expression)
        except ValueError as exc:
            problems.append(
                Violation(param, shown, f"{rule.where}.expression does not compile: {exc}")
            )
            continue
        try:
            message = cel.compile_template(rule.message)
        except ValueError as exc:
            problems.append(
                Violation(
                    param, shown, f"{rule.where}.message: a {{{{ }}}} does not compile: {exc}"
                )
            )
            continue
        compiled.append(CompiledRule(rule, program, message))
    if problems:
        raise ParameterError(STEP, problems)
    return compiled


def decide(rules: Sequence[CompiledRule], document: Mapping[str, Any], seconds: float) -> Decision:
    """Evaluate each rule over ``document`` (see ``inputs``), each within ``seconds``."""
    bound = cel.activation(document)
    return Decision(tuple(_judge(rule, bound, seconds) for rule in rules))


def _judge(compiled: CompiledRule, bound: Mapping[str, Any], seconds: float) -> Outcome:
    rule = compiled.rule
    began = time.monotonic()
    try:
        value = cel.evaluate(compiled.program, bound, seconds)
    except cel.EvaluationError as exc:
        reason = f"could not be evaluated: {exc}"
        return Outcome(rule.name, rule.description, rule.severity, False, reason,
                       time.monotonic() - began)  # fmt: skip
    took = time.monotonic() - began
    if value is True:
        return Outcome(rule.name, rule.description, rule.severity, True, "", took)
    if value is not False:
        reason = f"the expression must be true or false, not {value!r}"
    else:
        reason = cel.render(compiled.message, bound, seconds)
    return Outcome(rule.name, rule.description, rule.severity, False, reason, took)
