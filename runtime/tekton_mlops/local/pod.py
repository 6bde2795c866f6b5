"""One TaskRun's pod, made local: its directories, workspaces, volumes and mounts.

Everything here happens before the first step starts, in the order a cluster would
fail it: the API server refuses a pod with an invalid subPath (``PodCreationFailed``),
the kubelet refuses a volume it cannot prepare (``CreateContainerConfigError``).
Never shared between parallel TaskRuns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tekton_mlops.local.cluster import Cluster, ResolutionError
from tekton_mlops.local.mount import Mount
from tekton_mlops.local.workspaces import (
    PodInvalid,
    Workspace,
    resolve_sub_path,
    sub_path_errors,
    write_items,
)
from tekton_mlops.tekton.defaults import step_name, workspace_mount_path


@dataclass
class Pod:
    here: Path
    home: Path
    results_dir: Path
    scripts: Path
    workspace_paths: dict[str, Path] = field(default_factory=dict)  # resolved, bound ones
    mounts: tuple[Mount, ...] = ()  # what every container mounts (podman)
    volumes: dict[str, Path] = field(default_factory=dict)
    spec: dict[str, Any] = field(default_factory=dict)  # the TaskSpec the pod runs
    #: The pod's fields the downward API reads (``metadata.name``, ``metadata.labels``, ...).
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def steps_dir(self) -> Path:
        """Per-step exit codes and step results (``/tekton/steps`` in a container)."""
        return self.here / "steps"

    @property
    def run_dir(self) -> Path:
        """Per-step run folders, by index (``/tekton/run`` in a container)."""
        return self.here / "run"

    def own_mounts(self, index: int, container: str) -> tuple[Mount, ...]:
        """A step's own folders, writable to it alone."""
        own = self.steps_dir / container
        run = self.run_dir / str(index)
        for folder in (own, run):
            folder.mkdir(parents=True, exist_ok=True)
        return (Mount(own, f"/tekton/steps/{container}"), Mount(run, f"/tekton/run/{index}"))

    @classmethod
    def directories(cls, here: Path) -> Pod:
        pod = cls(here, here / "home", here / "results", here / "scripts")
        folders = (
            pod.results_dir,
            pod.home,
            pod.scripts,
            here / "logs",
            pod.steps_dir,
            pod.run_dir,
        )
        for directory in folders:
            directory.mkdir(parents=True, exist_ok=True)
        return pod


def check_sub_paths(
    spec: dict[str, Any], workspaces: dict[str, Workspace], steps: list[dict[str, Any]]
) -> None:
    """The API server's checks on every subPath the pod would mount (raises PodInvalid)."""
    errors: list[str] = []
    container = "spec.containers[0].volumeMounts.subPath"
    for declared in spec.get("workspaces") or []:
        bound = workspaces.get(declared["name"])
        if bound is not None and bound.root is not None and bound.sub_path:
            errors += sub_path_errors(bound.sub_path, container)
    for index, step in enumerate(steps):
        for mount in step.get("volumeMounts") or []:
            if mount.get("subPath"):
                where = f"spec.containers[{index}].volumeMounts.subPath"
                errors += sub_path_errors(str(mount["subPath"]), where)
    if errors:
        raise PodInvalid(errors)


def resolve_workspaces(
    spec: dict[str, Any], workspaces: dict[str, Workspace], first_step: str
) -> dict[str, Path]:
    """Each bound workspace's directory, subPath applied inside its volume (the kubelet's part)."""
    paths = {}
    for declared in spec.get("workspaces") or []:
        bound = workspaces.get(declared["name"])
        if bound is None or bound.root is None:
            continue
        paths[declared["name"]] = resolve_sub_path(
            bound.root, bound.sub_path, bound.volume or f"ws-{declared['name']}", first_step
        )
    return paths


def make_volumes(spec: dict[str, Any], here: Path, cluster: Cluster) -> dict[str, Path]:
    """Task volumes (emptyDir, configMap, secret) as directories to mount."""
    volumes = {}
    for volume in spec.get("volumes") or []:
        target = here / "volumes" / volume["name"]
        target.mkdir(parents=True, exist_ok=True)
        if "configMap" in volume:
            source = volume["configMap"]
            write_items(target, cluster.config_map(source["name"]), source.get("items"))
        elif "secret" in volume:
            source = volume["secret"]
            write_items(target, cluster.secret(source["secretName"]), source.get("items"))
        elif "emptyDir" not in volume:
            raise ResolutionError(
                "CreateContainerConfigError",
                f'volume "{volume["name"]}": only emptyDir, configMap and '
                "secret volumes run locally",
            )
        target.chmod(0o777)
        volumes[volume["name"]] = target
    return volumes


def volume_mounts(step: dict[str, Any], index: int, volumes: dict[str, Path]) -> tuple[Mount, ...]:
    """A step's ``volumeMounts``; a subPath stays inside its volume."""
    mounts = []
    for mount in step.get("volumeMounts") or []:
        source = volumes.get(mount["name"])
        if source is None:
            raise ResolutionError(
                "CreateContainerConfigError",
                f'volume "{mount["name"]}" is not declared by the Task',
            )
        if mount.get("subPath"):
            container = f"step-{step_name(step, index)}"
            # One key of a configMap or secret is a file: mount it as it is.
            candidate = source / str(mount["subPath"])
            if candidate.is_file() and not candidate.is_symlink():
                source = candidate
            else:
                source = resolve_sub_path(source, str(mount["subPath"]), mount["name"], container)
        mounts.append(Mount(source, mount["mountPath"], bool(mount.get("readOnly"))))
    return tuple(mounts)


def isolated_workspaces(spec: dict[str, Any]) -> set[str]:
    """Workspaces a step or sidecar lists by name: only those that list them see them."""
    return {
        str(usage.get("name"))
        for group in ("steps", "sidecars")
        for step in spec.get(group) or []
        for usage in step.get("workspaces") or []
    }


def step_workspace_mounts(
    step: dict[str, Any], spec: dict[str, Any], pod: Pod
) -> tuple[Mount, ...]:
    """The isolated workspaces this step or sidecar lists, at its own mount path if it gives one."""
    declared = {str(w.get("name")): w for w in spec.get("workspaces") or []}
    mounts = []
    for usage in step.get("workspaces") or []:
        name = str(usage.get("name"))
        path = pod.workspace_paths.get(name)
        if path is None or name not in declared:
            continue
        target = str(usage.get("mountPath") or workspace_mount_path(declared[name]))
        mounts.append(Mount(path, target, read_only=bool(declared[name].get("readOnly"))))
    return tuple(mounts)


def container_mounts(spec: dict[str, Any], pod: Pod) -> tuple[Mount, ...]:
    """Where a container sees the TaskRun's directories, as Tekton mounts them."""
    # Tekton gives every pod an emptyDir at /workspace; workspaces mount beneath it.
    internal = pod.here / "workspace"
    internal.mkdir(exist_ok=True)
    mounts = [
        Mount(internal, "/workspace"),
        Mount(pod.results_dir, "/tekton/results"),
        Mount(pod.home, "/tekton/home"),
        # Other steps' folders are read-only to a step; its own are bound over them.
        Mount(pod.steps_dir, "/tekton/steps", read_only=True),
        Mount(pod.run_dir, "/tekton/run", read_only=True),
    ]
    isolated = isolated_workspaces(spec)
    for declared in spec.get("workspaces") or []:
        path = pod.workspace_paths.get(declared["name"])
        if path is None or declared["name"] in isolated:
            continue
        mounts.append(
            Mount(path, workspace_mount_path(declared), read_only=bool(declared.get("readOnly")))
        )
    for mount in mounts:  # steps run as non-root users: let them write, as fsGroup would
        if not mount.read_only:
            mount.source.chmod(0o777)
        elif mount.target.startswith(("/tekton/steps", "/tekton/run")):
            mount.source.chmod(0o755)
    return tuple(mounts)
