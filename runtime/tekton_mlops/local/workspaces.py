"""Workspace bindings of a run, made into local directories, and subPaths kept inside them.

emptyDir and volumeClaimTemplate get a fresh directory in the run; a
persistentVolumeClaim a directory that outlives runs (by claim name); Secrets,
ConfigMaps and projected volumes are written out as files; ``--workspace
NAME=DIR`` binds a directory of this machine.

A binding's ``subPath`` is only resolved when a TaskRun's pod is made, as on a
cluster: the API server refuses an absolute subPath or one with a ``..`` element
(the pod cannot be created), and the kubelet refuses a subPath that leaves the
volume through a symbolic link (the container cannot start). Nothing is created
outside the volume in either case.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tekton_mlops.local.cluster import Cluster, ResolutionError


class PodInvalid(ResolutionError):
    """The API server would refuse the TaskRun's pod (``Pod "…" is invalid: …``)."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("PodCreationFailed", "; ".join(errors))
        self.errors = errors


class SubPathEscapes(ResolutionError):
    """The kubelet would refuse to mount a subPath that leaves its volume."""

    def __init__(self, volume: str, container: str) -> None:
        super().__init__(
            "CreateContainerConfigError",
            f'failed to prepare subPath for volumeMount "{volume}" of container "{container}"',
        )


@dataclass
class Workspace:
    """A bound workspace: the volume's directory and the subPath within it.

    ``root`` None means optional and not bound.
    """

    root: Path | None
    claim: str = ""
    volume: str = ""
    sub_path: str = ""

    def within(self, sub_path: str) -> Workspace:
        """This workspace narrowed to a pipeline task's subPath (joined as Tekton joins them)."""
        if not sub_path:
            return self
        combined = (
            posixpath.normpath(posixpath.join(self.sub_path, sub_path))
            if self.sub_path
            else sub_path
        )
        return Workspace(self.root, self.claim, self.volume, combined)


def sub_path_errors(sub_path: str, field: str) -> list[str]:
    """What the API server says of a volumeMount subPath (its validateLocalDescendingPath)."""
    errors = []
    if posixpath.isabs(sub_path):
        errors.append(f'{field}: Invalid value: "{sub_path}": must be a relative path')
    if ".." in sub_path.replace("\\", "/").split("/"):
        errors.append(f"{field}: Invalid value: \"{sub_path}\": must not contain '..'")
    return errors


def resolve_sub_path(root: Path, sub_path: str, volume: str, container: str) -> Path:
    """The directory ``sub_path`` names inside ``root``, made if missing, never outside it.

    Symbolic links are followed only while they stay inside the volume, as the kubelet does.
    """
    base = root.resolve()
    current = base
    for part in [p for p in sub_path.split("/") if p not in ("", ".")]:
        candidate = current / part
        seen = 0
        while candidate.is_symlink():
            seen += 1
            target = Path(os.readlink(candidate))
            candidate = Path(posixpath.normpath(candidate.parent / target))
            if not candidate.is_relative_to(base) or seen > 40:
                raise SubPathEscapes(volume, container)
        if not candidate.is_relative_to(base):
            raise SubPathEscapes(volume, container)
        if not candidate.exists():
            # TaskRuns running side by side (a matrix) may make the same subPath at once.
            with contextlib.suppress(FileExistsError):
                candidate.mkdir()
        if candidate.is_symlink() or not candidate.is_dir():
            raise SubPathEscapes(volume, container)
        current = candidate
    return current


def write_items(target: Path, data: dict[str, bytes], items: list[dict[str, Any]] | None) -> None:
    """Keys of a Secret or ConfigMap as files, as a volume of it shows them."""
    target.mkdir(parents=True, exist_ok=True)
    chosen = {i["key"]: i.get("path", i["key"]) for i in items} if items else {k: k for k in data}
    for key, relative in chosen.items():
        if key not in data:
            raise ResolutionError("CreateContainerConfigError", f"key {key} not found")
        errors = sub_path_errors(relative, "items.path")
        if errors:
            raise PodInvalid(errors)
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        (target / relative).write_bytes(data[key])


def bind_workspaces(
    bindings: list[dict[str, Any]], local_dirs: dict[str, str], cluster: Cluster, here: Path
) -> dict[str, Workspace]:
    """The run's workspace bindings as directories; subPaths stay unresolved until a pod."""
    bound: dict[str, Workspace] = {}
    for binding in bindings:
        name = binding["name"]
        target = here / "workspaces" / name
        if name in local_dirs:
            continue
        if "emptyDir" in binding:
            target.mkdir(parents=True, exist_ok=True)
            workspace = Workspace(target, volume=f"ws-{name}")
        elif "volumeClaimTemplate" in binding:
            target.mkdir(parents=True, exist_ok=True)
            workspace = Workspace(target, claim=f"pvc-{here.name}-{name}", volume=f"ws-{name}")
        elif "persistentVolumeClaim" in binding:
            claim = binding["persistentVolumeClaim"]["claimName"]
            target = here.parent.parent / "pvcs" / claim
            target.mkdir(parents=True, exist_ok=True)
            workspace = Workspace(target, claim=claim, volume=f"ws-{name}")
        elif "secret" in binding:
            source = binding["secret"]
            write_items(target, cluster.secret(source["secretName"]), source.get("items"))
            workspace = Workspace(target, volume=f"ws-{name}")
        elif "configMap" in binding:
            source = binding["configMap"]
            write_items(target, cluster.config_map(source["name"]), source.get("items"))
            workspace = Workspace(target, volume=f"ws-{name}")
        elif "projected" in binding:
            for source in binding["projected"].get("sources") or []:
                if "secret" in source:
                    data = cluster.secret(source["secret"]["name"])
                    write_items(target, data, source["secret"].get("items"))
                elif "configMap" in source:
                    data = cluster.config_map(source["configMap"]["name"])
                    write_items(target, data, source["configMap"].get("items"))
            target.mkdir(parents=True, exist_ok=True)
            workspace = Workspace(target, volume=f"ws-{name}")
        else:
            raise ResolutionError(
                "InvalidWorkspaceBindings",
                f"workspace {name}: this kind of binding is not supported locally",
            )
        workspace.sub_path = str(binding.get("subPath") or "")
        bound[name] = workspace
    for name, directory in local_dirs.items():
        path = Path(directory).resolve()
        path.mkdir(parents=True, exist_ok=True)
        bound[name] = Workspace(path, volume=f"ws-{name}")
    return bound
