"""Workspace bindings of a run, made into local directories.

emptyDir and volumeClaimTemplate get a fresh directory in the run; a
persistentVolumeClaim a directory that outlives runs (by claim name); Secrets,
ConfigMaps and projected volumes are written out as files; ``--workspace
NAME=DIR`` binds a directory of this machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tekton_mlops.local.cluster import Cluster, ResolutionError
from tekton_mlops.local.taskrun import Workspace


def write_items(target: Path, data: dict[str, bytes], items: list[dict[str, Any]] | None) -> None:
    target.mkdir(parents=True, exist_ok=True)
    chosen = {i["key"]: i.get("path", i["key"]) for i in items} if items else {k: k for k in data}
    for key, relative in chosen.items():
        if key not in data:
            raise ResolutionError("CreateContainerConfigError", f"key {key} not found")
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        (target / relative).write_bytes(data[key])


def bind_workspaces(
    bindings: list[dict[str, Any]], local_dirs: dict[str, str], cluster: Cluster, here: Path
) -> dict[str, Workspace]:
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
            workspace = Workspace(target, volume=f"ws-{name}")
        else:
            raise ResolutionError(
                "InvalidWorkspaceBindings",
                f"workspace {name}: this kind of binding is not supported locally",
            )
        if binding.get("subPath"):
            assert workspace.path is not None
            workspace.path = workspace.path / binding["subPath"]
            workspace.path.mkdir(parents=True, exist_ok=True)
        bound[name] = workspace
    for name, directory in local_dirs.items():
        path = Path(directory).resolve()
        path.mkdir(parents=True, exist_ok=True)
        bound[name] = Workspace(path, volume=f"ws-{name}")
    return bound
