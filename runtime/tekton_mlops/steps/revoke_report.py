"""revoke-dataset's report: what was found in the store and what was done about it.

``revocation-report.json`` is for machines (one entry per model, with its deployments, its
mark in the store and its registered versions); ``revocation-report.md`` says the same for a
reviewer. Both are subjects of the step's lineage record, which the step signs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tekton_mlops.deploy.cutout import CutOut
from tekton_mlops.lineage_store.graph import StepRun
from tekton_mlops.lineage_store.revocation import Affected
from tekton_mlops.tracking.revocation import RevokedVersion

REPORT_JSON = "revocation-report.json"
REPORT_MARKDOWN = "revocation-report.md"


@dataclass
class Handled:
    """One deployment of a revoked model and what became of it."""

    target: str
    namespace: str
    name: str
    models: list[str]  # the revoked models it was recorded serving
    status: str = ""  # taken out of service, already out of service, not found, ...
    detail: str = ""
    cut: CutOut | None = None

    @property
    def taken(self) -> bool:
        return self.cut is not None and not self.cut.already

    def to_json(self) -> dict[str, Any]:
        cut = self.cut
        return {
            "target": self.target,
            "namespace": self.namespace,
            "name": self.name,
            "models": self.models,
            "status": self.status,
            "detail": self.detail,
            "stopped": [s.what for s in cut.taken] if cut else [],
            "still_serving": dict(cut.kept) if cut else {},
        }


@dataclass
class ModelOutcome:
    item: Affected
    store: str = ""  # marked revoked, already marked, would be marked, failed: ...
    versions: list[RevokedVersion] = field(default_factory=list)
    registry: str = ""  # a registry failure, if any

    def to_json(self, deployments: Sequence[Handled]) -> dict[str, Any]:
        item = self.item
        return {
            "model": item.model,
            "datasets": list(item.datasets),
            "via": list(item.via),
            "training": {
                "step": item.training.step,
                "attestation": item.training.attestation,
                "finished": item.training.finished,
            },  # fmt: skip
            "digests": sorted(item.digests),
            "store": self.store,
            "registered_versions": [
                {
                    "name": v.name,
                    "version": v.version,
                    "aliases_removed": list(v.aliases),
                    "already_revoked": v.already,
                }
                for v in self.versions
            ],  # fmt: skip
            "registry_problem": self.registry,
            "deployments": [d.to_json() for d in deployments if item.model in d.models],
        }


def build(
    header: dict[str, Any],
    models: Sequence[ModelOutcome],
    deployments: Sequence[Handled],
    failed: Sequence[StepRun],
) -> dict[str, Any]:
    return {
        **header,
        "summary": {
            "models": len(models),
            "deployments_taken_out": sum(1 for d in deployments if d.taken),
            "deployments": len(deployments),
        },
        "models": [m.to_json(deployments) for m in models],
        "deployments": [d.to_json() for d in deployments],
        "not_verified": [{"attestation": r.attestation, "reason": r.reason} for r in failed],
    }


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown(report: dict[str, Any]) -> str:
    summary = report["summary"]
    dry = " (dry run: nothing was changed)" if report["dry_run"] else ""
    lines = [
        f"# Revocation of {len(report['datasets'])} dataset(s){dry}",
        "",
        f"Reason: {report['reason']}  ",
        f"By: {report['actor']}, {report['finished']}  ",
        f"Store: `{report['store']}`; lineage {report['lineage']}.",
        "",
        *(f"- `{d}`" for d in report["datasets"]),
        "",
        f"{summary['models']} model(s) trained on them; {summary['deployments_taken_out']} of "
        f"{summary['deployments']} deployment(s) taken out of service by this run.",
    ]
    for model in report["models"]:
        via = "through " + " -> ".join(model["via"]) if model["via"] else "directly"
        lines += ["", f"## `{model['model']}`", "",
                  f"Trained on {', '.join(f'`{d}`' for d in model['datasets'])} ({via}).  ",
                  f"Store: {model['store']}."]  # fmt: skip
        for version in model["registered_versions"]:
            removed = ", ".join(version["aliases_removed"]) or "none"
            state = "already revoked" if version["already_revoked"] else "tagged revoked"
            lines.append(f"- MLflow {version['name']} version {version['version']}: {state}; "
                         f"aliases removed: {removed}")  # fmt: skip
        if model["registry_problem"]:
            lines.append(f"- MLflow: {model['registry_problem']}")
    if report["deployments"]:
        lines += ["", "## Deployments", "",
                  "| target | deployment | status | stopped | still serving |",
                  "| --- | --- | --- | --- | --- |"]  # fmt: skip
        for d in report["deployments"]:
            where = "/".join(p for p in (d["namespace"], d["name"]) if p)
            status = d["status"] + (f": {d['detail']}" if d["detail"] else "")
            kept = ", ".join(f"{v} {w}%" for v, w in d["still_serving"].items())
            lines.append(f"| {d['target']} | {_cell(where)} | {_cell(status)} | "
                         f"{_cell(', '.join(d['stopped']))} | {_cell(kept)} |")  # fmt: skip
    if report["not_verified"]:
        lines += ["", "## Attestations that did not verify (ignored)", ""]
        lines += [f"- `{r['attestation']}`: {r['reason']}" for r in report["not_verified"]]
    return "\n".join(lines) + "\n"
