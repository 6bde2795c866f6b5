"""What a local run can see: applied documents, Secrets, and resolvers for references.

``kubectl apply`` of every document in the run file (and of ``--catalog``
directories) becomes a registry by kind and name. References resolve as on a
cluster: ``taskRef.name`` from the registry, ``resolver: git`` from a local or
``file://`` repository (or a remote URL mapped to a local clone), and the hub
resolver fails clearly because it needs the internet.
"""

from __future__ import annotations

import base64
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tekton_mlops.errors import MlopsError
from tekton_mlops.yamlio import load, load_all

KINDS = ("Task", "Pipeline", "StepAction", "ConfigMap", "Secret", "PersistentVolumeClaim")


class ResolutionError(MlopsError):
    """A reference could not be resolved; carries Tekton's reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class Cluster:
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    secrets_dir: Path | None = None
    git_mirrors: dict[str, Path] = field(default_factory=dict)

    def apply(self, document: dict[str, Any]) -> None:
        kind = document.get("kind", "")
        name = (document.get("metadata") or {}).get("name", "")
        if kind in KINDS and name:
            self.objects[(kind, name)] = document

    def apply_tree(self, root: Path) -> None:
        """Apply every Task and Pipeline under a catalog directory."""
        for path in sorted(root.rglob("*.yaml")):
            if path.parent.name in ("samples", "tests"):
                continue
            for document in load_all(path.read_text()):
                if isinstance(document, dict) and document.get("kind") in ("Task", "Pipeline"):
                    self.apply(document)

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, name))

    # --- data sources for env and workspaces -----------------------------------------

    def secret(self, name: str) -> dict[str, bytes]:
        applied = self.get("Secret", name)
        if applied is not None:
            data = {k: base64.b64decode(v) for k, v in (applied.get("data") or {}).items()}
            data |= {k: str(v).encode() for k, v in (applied.get("stringData") or {}).items()}
            return data
        if self.secrets_dir and (self.secrets_dir / name).is_dir():
            return {
                p.name: p.read_bytes() for p in (self.secrets_dir / name).iterdir() if p.is_file()
            }
        raise ResolutionError("CreateContainerConfigError", f'secret "{name}" not found')

    def config_map(self, name: str) -> dict[str, bytes]:
        applied = self.get("ConfigMap", name)
        if applied is None:
            if self.secrets_dir and (self.secrets_dir / name).is_dir():
                return self.secret(name)
            raise ResolutionError("CreateContainerConfigError", f'configmap "{name}" not found')
        return {k: str(v).encode() for k, v in (applied.get("data") or {}).items()}

    # --- references --------------------------------------------------------------------

    def resolve(self, kind: str, ref: dict[str, Any]) -> dict[str, Any]:
        """The spec a taskRef/pipelineRef points to."""
        failure = "CouldntGetTask" if kind == "Task" else "CouldntGetPipeline"
        resolver = ref.get("resolver")
        params = {p.get("name"): p.get("value") for p in ref.get("params") or []}
        if not resolver:
            found = self.get(kind, ref.get("name", ""))
            if found is None:
                raise ResolutionError(failure, self._not_found(kind, str(ref.get("name", ""))))
            return found
        if resolver == "git":
            document = self._git(params, failure)
        elif resolver == "hub":
            raise ResolutionError(
                failure,
                "the hub resolver fetches from Artifact Hub on the internet, which a local run "
                "cannot reach; reference the same resource through the git or bundles resolver",
            )
        elif resolver == "bundles":
            document = self._bundle(params, kind, failure)
        else:
            raise ResolutionError(failure, f"resolver {resolver!r} is not supported locally")
        if document.get("kind") != kind:
            raise ResolutionError(failure, f"resolved a {document.get('kind')}, not a {kind}")
        return document

    def _not_found(self, kind: str, name: str) -> str:
        """Tekton's message, and a hint: the closest applied name, and how to apply more."""
        import difflib

        message = f'{kind.lower()}s.tekton.dev "{name}" not found'
        applied = sorted(n for k, n in self.objects if k == kind)
        close = difflib.get_close_matches(name, applied, n=1)
        hint = f'did you mean "{close[0]}"? ' if close else ""
        return (
            f"{message} ({hint}apply {kind}s beside the run in the same file, or a catalog "
            "with --catalog DIR)"
        )

    @staticmethod
    def _bundle(params: dict[str, Any], kind: str, failure: str) -> dict[str, Any]:
        from tekton_mlops.tekton.bundles import fetch

        if not params.get("bundle") or not params.get("name"):
            raise ResolutionError(failure, "bundles resolver needs the bundle and name params")
        try:
            return fetch(
                str(params["bundle"]), str(params.get("kind") or kind), str(params["name"])
            )
        except MlopsError as exc:
            raise ResolutionError(failure, f"bundles resolver: {exc}") from None

    def _git(self, params: dict[str, Any], failure: str) -> dict[str, Any]:
        url = str(params.get("url") or "")
        path = str(params.get("pathInRepo") or "")
        revision = str(params.get("revision") or "main")
        if not url or not path:
            raise ResolutionError(failure, "git resolver needs the url and pathInRepo params")
        repository = self.git_mirrors.get(url)
        if repository is None and url.startswith("file://"):
            repository = Path(url[len("file://") :])
        elif repository is None and Path(url).is_dir():
            repository = Path(url)
        if repository is None:
            raise ResolutionError(
                failure,
                f"git resolver: {url} is not reachable from a local run; map it to a clone "
                f"with --git-mirror {url}=PATH",
            )
        shown = subprocess.run(
            ["git", "-C", str(repository), "show", f"{revision}:{path}"],
            capture_output=True,
            text=True,
        )
        if shown.returncode != 0:
            detail = shown.stderr.strip().splitlines()[-1] if shown.stderr.strip() else ""
            raise ResolutionError(failure, f"git resolver: {path} at {revision} in {url}: {detail}")
        document = load(shown.stdout)
        if not isinstance(document, dict):
            raise ResolutionError(failure, f"git resolver: {path} is not a Tekton resource")
        return document
