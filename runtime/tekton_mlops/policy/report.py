"""policy-report.json and policy-report.md: the verdict, each rule with its reason, the evidence.

Example::

    document = report(policy, evidence, decision, fail_on_warning=False, now=now)
    markdown(document)
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from tekton_mlops.policy.decide import Decision
from tekton_mlops.policy.evidence import Evidence
from tekton_mlops.policy.spec import Policy


def report(
    policy: Policy, evidence: Evidence, decision: Decision, fail_on_warning: bool, now: datetime
) -> dict[str, Any]:
    """The report of a decision over evidence that verified."""
    return {
        "passed": decision.passed(fail_on_warning),
        "evaluated": now.isoformat(timespec="seconds"),
        "policy": {
            "name": policy.name,
            "source": policy.source.where,
            "digest": f"sha256:{policy.digest}",
            "params": dict(policy.params),
        },
        "model": {
            "uri": evidence.model.uri,
            "digest": evidence.model.root,
            "signer": evidence.model.signer,
            "signature": "verified",
        },
        "attestations": [
            {"name": c.attestation.name, "step": c.step, "status": c.status.value}
            for c in evidence.attestations
        ],
        "fail_on_warning": fail_on_warning,
        "failures": len(decision.failures),
        "warnings": len(decision.warnings),
        "rules": [o.to_json() for o in decision.outcomes],
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(document: dict[str, Any]) -> str:
    verdict = "passed" if document["passed"] else "failed"
    policy, model = document["policy"], document["model"]
    lines = [
        f"# Policy {policy['name']} for {model['uri']}",
        "",
        f"Verdict: **{verdict}**: {document['failures']} failure(s), "
        f"{document['warnings']} warning(s).",
        "",
        f"Model `{model['uri']}` (`{model['digest']}`), its signature and every attestation "
        f"verified. Policy `{policy['source']}` (`{policy['digest']}`).",
        "",
        "## Rules",
        "",
        "| rule | severity | result | reason |",
        "| --- | --- | --- | --- |",
        *(
            f"| {r['name']} | {r['severity']} | {r['result']} | {_cell(r['reason'])} |"
            for r in document["rules"]
        ),
        "",
        "## Attestations",
        "",
        "| step | status | attestation |",
        "| --- | --- | --- |",
        *(
            f"| {a['step'] or '?'} | {a['status']} | {_cell(a['name'])} |"
            for a in document["attestations"]
        ),
    ]
    return "\n".join(lines) + "\n"


def input_json(document: dict[str, Any]) -> str:
    """The input the rules saw, as JSON (times as RFC 3339 text): what rule authors read."""

    def plain(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        raise TypeError(type(value).__name__)

    return json.dumps(document, indent=2, sort_keys=True, default=plain) + "\n"
