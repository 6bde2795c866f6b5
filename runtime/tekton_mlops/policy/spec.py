"""The policy format: named CEL rules and the parameters they read, in YAML or JSON.

A policy comes from one of three places: the ``policy`` param (the text itself), the
``policy-path`` param (a file, or a folder holding one such file, as a ConfigMap mounted
as a workspace is), or, with neither, the default policy shipped with the runtime (the
same file as the catalog's ``policy/default-policy.yaml``). It is checked against its own
JSON Schema (``schemas/specs/verify-policy.json``) with every violation named by its place
in the policy (``rules[2].severity``); ``policy-params`` replace its params one by one.

Its digest is taken over a canonical JSON form of the policy as applied (params
replaced), so the decision's lineage names exactly what was enforced.

Example::

    policy = parse_policy(read_policy("", ""), {"max_age_days": 7})   # the default policy
    policy.params["max_age_days"]    # -> 7
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
from tekton_mlops.errors import MlopsError, ParameterError, Violation

STEP = "verify-policy"
SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "specs" / "verify-policy.json"
DEFAULT_POLICY = Path(__file__).resolve().parent / "default-policy.yaml"
SUFFIXES = (".yaml", ".yml", ".json")
#: A policy larger than this is not a policy (and would be a slow YAML parse).
MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class Source:
    """Where a policy's text came from: the param to name in errors, and a description."""

    param: str  # "policy", "policy-path", or "" for the built-in default
    where: str  # the file, "inline", or the default policy's path
    text: str


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    expression: str
    message: str
    severity: str  # "failure" | "warning"
    where: str  # its place in the policy, for messages: rules[2] (dataset-prefix)


@dataclass(frozen=True)
class Policy:
    name: str
    description: str
    params: Mapping[str, Any]
    rules: tuple[Rule, ...]
    source: Source

    def canonical(self) -> bytes:
        """The policy as applied, as canonical JSON: what its digest is over."""
        document = {
            "name": self.name,
            "description": self.description,
            "params": dict(self.params),
            "rules": [
                {"name": r.name, "description": r.description, "expression": r.expression,
                 "message": r.message, "severity": r.severity}
                for r in self.rules
            ],
        }  # fmt: skip
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()


class PolicyFileError(MlopsError):
    """The policy file cannot be read as a policy: bad input, so nothing was done."""

    exit_code = 2


class _Loader(yaml.SafeLoader):
    """YAML without implicit dates, so a param like ``2024-01-01`` stays the text it reads as."""


_Loader.add_constructor(
    "tag:yaml.org,2002:timestamp",
    lambda loader, node: loader.construct_scalar(node),  # type: ignore[arg-type]
)


@cache
def policy_schema() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(SCHEMA.read_text())
    return document


def read_policy(inline: str, path: str) -> Source:
    """The policy text from the ``policy`` param, the ``policy-path`` file, or the default."""
    if inline and path:
        raise ParameterError(
            STEP, [Violation("policy", "(inline text)", "give policy or policy-path, not both")]
        )
    if inline:
        return Source("policy", "inline", inline)
    if not path:
        # The catalog ships the same file as catalog/task/verify-policy/<X.Y>/policy/.
        return Source("", "default-policy.yaml (built in)", DEFAULT_POLICY.read_text())
    file = _policy_file(Path(path))
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise PolicyFileError(f"{file}: cannot read the policy ({exc.strerror})") from None
    if len(data) > MAX_BYTES:
        raise PolicyFileError(f"{file}: the policy is larger than {MAX_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyFileError(f"{file}: not a policy (not UTF-8 text)") from None
    return Source("policy-path", str(file), text)


def _policy_file(path: Path) -> Path:
    """``path``, or the one policy file in a folder; a ConfigMap's ``..data`` entries and
    other hidden names are not its keys."""
    if not path.exists():
        raise PolicyFileError(f"{path}: no such policy file or folder")
    if not path.is_dir():
        return path
    found = sorted(
        child for child in path.iterdir()
        if not child.name.startswith(".") and child.suffix in SUFFIXES and child.is_file()
    )  # fmt: skip
    if len(found) != 1:
        names = ", ".join(child.name for child in found) or "none"
        raise PolicyFileError(
            f"{path}: expected one policy file (.yaml, .yml or .json), found {names}"
        )
    return found[0]


def parse_policy(source: Source, overrides: Mapping[str, Any]) -> Policy:
    """Validate the policy and apply ``overrides`` to its params; ParameterError (exit 2)
    names every problem."""
    document = _load(source)
    if quickcheck.valid(policy_schema(), document) is not True:
        raise ParameterError(STEP, _violations(source, document))
    rules = tuple(
        Rule(
            name=r["name"],
            description=r["description"],
            expression=r["expression"],
            message=r.get("message", r["description"]),
            severity=r.get("severity", "failure"),
            where=f"rules[{i}] ({r['name']})",
        )
        for i, r in enumerate(document["rules"])
    )
    names = [r.name for r in rules]
    twice = [r for i, r in enumerate(rules) if r.name in names[:i]]
    if twice:
        raise ParameterError(
            STEP,
            [_violation(source, f"{r.where}.name: another rule has this name") for r in twice],
        )
    params = _with_overrides(document["name"], document.get("params", {}), overrides)
    return Policy(document["name"], document.get("description", ""), params, rules, source)


def _load(source: Source) -> dict[str, Any]:
    try:
        document = yaml.load(source.text, Loader=_Loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "unreadable"
        rule = f"not valid YAML or JSON ({problem}{where})"
        if source.param == "policy-path":
            raise PolicyFileError(f"{source.where}: {rule}") from None
        raise ParameterError(STEP, [_violation(source, rule)]) from None
    if not isinstance(document, dict):
        rule = "must be a policy: a mapping with name and rules"
        if source.param == "policy-path":
            raise PolicyFileError(f"{source.where}: {rule}")
        raise ParameterError(STEP, [_violation(source, rule)])
    return document


def _violation(source: Source, rule: str) -> Violation:
    shown = source.where if source.param == "policy-path" else "(inline text)"
    return Violation(source.param or "policy", shown, rule)


def _place(parts: list[str | int]) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")
    return text or "the policy"


def _violations(source: Source, document: Any) -> list[Violation]:
    import jsonschema  # only to word violations: a valid policy never imports it

    validator = jsonschema.Draft202012Validator(policy_schema())
    found: list[Violation] = []
    for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path))):
        parts = list(error.absolute_path)
        if error.validator == "required":
            for name in error.validator_value:
                if isinstance(error.instance, dict) and name not in error.instance:
                    found.append(_violation(source, f"{_place([*parts, name])}: is required"))
        elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = sorted(error.schema.get("properties", {}))
            for name in sorted(set(error.instance) - set(allowed)):
                found.append(
                    _violation(
                        source,
                        f"{_place([*parts, name])}: unknown key; allowed: {', '.join(allowed)}",
                    )
                )
        elif error.validator == "pattern" and "name" in parts[-1:]:
            found.append(
                _violation(
                    source, f"{_place(parts)}: must be lower case letters, digits and - "
                    f"(got {error.instance!r})",
                )
            )  # fmt: skip
        else:
            found.append(_violation(source, f"{_place(parts)}: {error.message}"))
    # jsonschema reports each missing key of one object once per key: keep the first of each.
    return list(dict.fromkeys(found))


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "null"


def _with_overrides(
    name: str, params: Mapping[str, Any], overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """The policy's params with ``overrides`` replacing them: only params the policy
    declares, each with a value of the same kind (a typo must not pass unnoticed)."""
    problems: list[Violation] = []
    for key, value in overrides.items():
        if key not in params:
            known = ", ".join(sorted(params)) or "none"
            problems.append(
                Violation("policy-params", {key: value},
                          f"{key}: not a param of policy {name} (its params: {known})")
            )  # fmt: skip
        elif params[key] is not None and _kind(value) != _kind(params[key]):
            problems.append(
                Violation("policy-params", {key: value},
                          f"{key}: must be {_kind(params[key])}, as the policy's is")
            )  # fmt: skip
    if problems:
        raise ParameterError(STEP, problems)
    return {**params, **overrides}
