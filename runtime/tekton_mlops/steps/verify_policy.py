"""verify-policy: a model's signature and lineage verified, then judged by a policy of CEL rules.

In this order, so that bad input changes nothing:

1. the policy (``policy``, ``policy-path`` or the default): read, checked against its
   schema, its params replaced by ``policy-params``, every rule compiled; any problem
   exits 2 naming it, before the model is read;
2. the model named once (``model-uri`` or ``model-path``), the report folder writable,
   the public key loaded;
3. the evidence (``tekton_mlops.policy.evidence``): the model's signature and every
   attestation beside it, verified with the key;
4. what did not verify fails the step (whatever ``enforce`` says), each problem named,
   and nothing is written: no rule runs over evidence that did not verify;
5. otherwise each rule is evaluated, and the report, the input the rules saw and the
   policy as applied are written; with ``enforce`` the step fails when the model does not
   pass, naming each rule that did not and why.

The lineage record of the decision goes beside the report,
``<output>/.mlops/lineage/verify-policy.intoto.json``: the policy as applied (by digest),
the model (its URI and signed root) and the verification key in, the reports out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tekton_mlops.contract import StepContext
from tekton_mlops.digests import sha256_file
from tekton_mlops.errors import MlopsError, ParameterError, Violation
from tekton_mlops.lineage import Artifact
from tekton_mlops.results import ResultValue

STEP = "verify-policy"
REPORT_JSON = "policy-report.json"
REPORT_MARKDOWN = "policy-report.md"
INPUT_JSON = "policy-input.json"
POLICY_JSON = "policy-applied.json"
#: A reason longer than this is cut in the one-line error (the report has it whole).
_REASON_CHARS = 300


@dataclass(frozen=True)
class Params:
    model_uri: str
    model_path: str
    public_key: str
    signature: str
    policy: str
    policy_path: str
    policy_params: dict[str, Any]
    output: str
    fail_on_warning: bool
    enforce: bool
    rule_timeout: float
    endpoint_url: str
    addressing_style: str
    registry_auth: str
    insecure_registry: bool


class PolicyViolation(MlopsError):
    """The model did not verify, or did not pass the policy."""


def _check_model_named_once(params: Params) -> None:
    if bool(params.model_uri) == bool(params.model_path):
        rule = "give model-uri or model-path (the model workspace), " + (
            "not both" if params.model_uri else "one of them"
        )
        raise ParameterError(STEP, [Violation("model-uri", params.model_uri, rule)])


def _as_uri(ref: str) -> str:
    return ref if "://" in ref else Path(ref).resolve().as_uri()


def _short(text: str) -> str:
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 3] + "..."


def run(params: Params, ctx: StepContext) -> dict[str, ResultValue]:
    from tekton_mlops.policy import report
    from tekton_mlops.policy.decide import compile_rules, decide
    from tekton_mlops.policy.evidence import Subject, gather
    from tekton_mlops.policy.inputs import build_input
    from tekton_mlops.policy.spec import parse_policy, read_policy
    from tekton_mlops.signing import find_pem, load_public_key
    from tekton_mlops.storage.fetch import FetchOptions
    from tekton_mlops.storage.publish import atomic_write_text, check_writable_directory
    from tekton_mlops.storage.s3 import S3Settings

    policy = parse_policy(read_policy(params.policy, params.policy_path), params.policy_params)
    rules = compile_rules(policy)
    _check_model_named_once(params)
    output = Path(params.output)
    check_writable_directory(output)  # before the model is pulled: a report must be possible
    key = load_public_key(Path(params.public_key))
    options = FetchOptions(
        S3Settings(endpoint_url=params.endpoint_url, addressing_style=params.addressing_style),
        params.registry_auth,
        params.insecure_registry,
    )
    subject = Subject(params.model_uri, params.model_path, params.signature)
    evidence = gather(subject, key, options, ctx.log)
    if evidence.problems:
        # Evidence that does not verify is refused outright: no rule runs over it, no
        # report judges it; the one line names every problem.
        raise PolicyViolation(
            f"{evidence.model.uri}: {len(evidence.problems)} verification problem(s), no rule "
            "was evaluated: " + "; ".join(_short(p) for p in evidence.problems)
        )
    ctx.log.info("verified: %s is %s, %d attestation(s)", evidence.model.uri,
                 evidence.model.root, len(evidence.attestations))  # fmt: skip
    ctx.log.info("policy %s (%d rule(s), sha256:%s) from %s", policy.name, len(rules),
                 policy.digest, policy.source.where)  # fmt: skip
    now = datetime.now(UTC)
    document = build_input(evidence, policy.params, now)
    decision = decide(rules, document, params.rule_timeout)
    for outcome in decision.outcomes:
        ctx.log.info("rule %s: %s%s", outcome.name, outcome.result,
                     f" ({outcome.reason})" if outcome.reason else "")  # fmt: skip
    verdict = report.report(policy, evidence, decision, params.fail_on_warning, now)

    atomic_write_text(output / REPORT_JSON, json.dumps(verdict, indent=2) + "\n")
    atomic_write_text(output / REPORT_MARKDOWN, report.markdown(verdict))
    atomic_write_text(output / INPUT_JSON, report.input_json(document))
    # Exactly the bytes the policy's digest is over, so the record's digest can be checked.
    atomic_write_text(output / POLICY_JSON, policy.canonical().decode())
    pem = find_pem(Path(params.public_key), "PUBLIC KEY")
    ctx.write_lineage(
        output,
        inputs=[
            Artifact("policy", (output / POLICY_JSON).resolve().as_uri(), policy.digest),
            Artifact(
                "model", _as_uri(evidence.model.uri), evidence.model.root.removeprefix("sha256:")
            ),  # fmt: skip
            Artifact("verification-key", pem.resolve().as_uri(), sha256_file(pem)),
        ],
        outputs=[
            Artifact(name, (output / name).resolve().as_uri(), sha256_file(output / name))
            for name in (REPORT_JSON, REPORT_MARKDOWN)
        ],
    )

    passed = decision.passed(params.fail_on_warning)
    ctx.log.info("verdict: %s (%d failure(s), %d warning(s); report %s)",
                 "passed" if passed else "failed", len(decision.failures),
                 len(decision.warnings), output / REPORT_JSON)  # fmt: skip
    if not passed and params.enforce:
        broken = decision.failures + (decision.warnings if params.fail_on_warning else [])
        raise PolicyViolation(
            f"{evidence.model.uri} does not pass policy {policy.name}: "
            f"{len(broken)} rule(s) did not pass: "
            + "; ".join(f"{o.name}: {_short(o.reason)}" for o in broken)
            + f" (report {output / REPORT_MARKDOWN})"
        )
    return {
        "passed": "true" if passed else "false",
        "failures": str(len(decision.failures)),
        "warnings": str(len(decision.warnings)),
        "report": str(output / REPORT_JSON),
    }
