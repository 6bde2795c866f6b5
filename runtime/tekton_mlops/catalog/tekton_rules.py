"""Rule set one: what Tekton itself refuses, asked of the project's model of Tekton.

Every Tekton document (and every resource a TriggerTemplate creates) goes through
strict decoding and admission exactly as ``kubectl apply`` would send it; Triggers'
own kinds through strict decoding. Nothing here is stricter than Tekton.
"""

from __future__ import annotations

from tekton_mlops.catalog.source import Document, Reporter
from tekton_mlops.tekton.admission import admit
from tekton_mlops.tekton.schema import decode_errors


def check(linter: Reporter, doc: Document) -> None:
    data = doc.data
    for problem in admit(data):
        linter.report(doc, problem.path, problem.rule, problem.format())
    if str(data.get("apiVersion", "")).startswith("triggers.tekton.dev/"):
        for message in decode_errors(data):
            linter.report(doc, (), "decode", message)
        templates = (data.get("spec") or {}).get("resourcetemplates") or []
        for index, template in enumerate(templates):
            if not isinstance(template, dict):
                continue
            at = ("spec", "resourcetemplates", index)
            for problem in admit(template):
                linter.report(doc, (*at, *problem.path), problem.rule, problem.format())
