"""What an IR executor is, and what its container and Kubernetes settings become in a step.

Three kinds of executor are run here:

- *python*: a lightweight component (``@dsl.component``). KFP compiles it to
  ``sh -c '<pip install kfp ...>' sh -ec 'printf "%s" "$0" > ephemeral_component.py;
  python3 -m kfp.dsl.executor_main --component_module_path ...' <source>`` with args
  ``--executor_input {{$}} --function_to_execute <name>``. The source, the function and
  ``packages_to_install`` are taken from that command; the pip install is not kept.
- *container*: anything else with a ``container``: the image runs its own command.
- *importer*: ``dsl.importer``.

Refused (exit 2): Google Cloud Pipeline Components (they call Google Cloud services),
importers of ``gs://`` and ``minio://`` URIs, KFP's ``resolver`` executors, resources that
are not fixed Kubernetes quantities and resource names, and kfp-kubernetes settings with
no Tekton place (PVCs created by a task, for one).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from tekton_mlops.kfp.errors import CompileError, Unsupported
from tekton_mlops.kfp.names import dns_label

_GCPC = re.compile(
    r"google[-_]cloud[-_]pipeline[-_]components|vertex-ai/|gcr\.io/ml-pipeline/google"
)
_PIP_OPTIONS_WITH_VALUE = (
    "--index-url",
    "-i",
    "--extra-index-url",
    "--trusted-host",
    "--find-links",
)
#: Schemes ``fetch-data`` reads (file paths are made file:// URIs at run time).
IMPORTABLE = ("file://", "s3://", "http://", "https://", "oci://", "/")


@dataclass
class Python:
    function: str
    source: str
    packages: list[str]
    base_image: str


@dataclass
class Executor:
    kind: str  # python | container | importer
    image: str = ""
    command: list[Any] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)
    python: Python | None = None
    importer: dict[str, Any] = field(default_factory=dict)
    container: dict[str, Any] = field(default_factory=dict)


def classify(executor: dict[str, Any], task: str) -> Executor:
    if "importer" in executor:
        return Executor("importer", importer=dict(executor["importer"]))
    if "resolver" in executor:
        raise Unsupported("resolver executors (dsl.importer with a query)", task)
    if "container" not in executor:
        kinds = ", ".join(sorted(executor)) or "nothing"
        raise Unsupported(f"executor of kind {kinds}", task)
    container = dict(executor["container"])
    image = str(container.get("image") or "")
    command = list(container.get("command") or [])
    args = list(container.get("args") or [])
    text = " ".join(str(p) for p in [image, *command, *args])
    if _GCPC.search(text):
        raise Unsupported(
            "Google Cloud Pipeline Components", task, "they call Google Cloud services"
        )
    if not image:
        raise Unsupported("a container without an image", task)
    python = _lightweight(command, args, image)
    if python is not None:
        return Executor("python", image, command, args, python, container=container)
    return Executor("container", image, command, args, container=container)


def _lightweight(command: list[Any], args: list[Any], image: str) -> Python | None:
    for index, part in enumerate(command):
        text = str(part)
        # kfp.components.executor_main: the same executor under its name before kfp 2.0.
        executor = "kfp.dsl.executor_main" in text or "kfp.components.executor_main" in text
        if executor and "ephemeral_component.py" in text:
            if index + 1 >= len(command):
                return None
            source = str(command[index + 1])
            function = ""
            for position, arg in enumerate(args):
                if arg == "--function_to_execute" and position + 1 < len(args):
                    function = str(args[position + 1])
            if not function:
                return None
            packages = [p for p in command[:index] for p in _pip_packages(str(p))]
            return Python(function, source, packages, image)
    return None


def _pip_packages(script: str) -> list[str]:
    """Packages the ``pip install`` commands of KFP's install script name, but KFP itself."""
    found: list[str] = []
    for match in re.finditer(r"pip install ([^&\n]*)", script):
        try:
            words = shlex.split(match.group(1))
        except ValueError:
            continue
        skip = False
        for word in words:
            if skip:
                skip = False
                continue
            if word in _PIP_OPTIONS_WITH_VALUE:
                skip = True
                continue
            if word.startswith("-"):
                continue
            name = re.split(r"[<>=!~;\[ @]", word, maxsplit=1)[0].strip().lower()
            if name in ("kfp", "typing-extensions") or not name:
                continue
            found.append(word)
    return found


def check_importer(importer: dict[str, Any], task: str) -> None:
    uri = (importer.get("artifactUri") or {}).get("constant")
    if isinstance(uri, str) and uri and not uri.startswith(IMPORTABLE):
        scheme = uri.split("://", 1)[0] if "://" in uri else uri
        raise Unsupported(
            f"dsl.importer of {scheme}:// URIs",
            task,
            "fetch-data reads file, s3, http(s) and oci URIs",
        )


# Container settings ---------------------------------------------------------------------


def env(container: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"name": str(e["name"]), "value": str(e.get("value", ""))}
        for e in container.get("env") or []
        if e.get("name")
    ]


_QUANTITY = re.compile(
    r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][0-9]+)?$"
)
_EXTENDED_RESOURCE = re.compile(
    r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)


def compute_resources(container: dict[str, Any], task: str) -> dict[str, Any]:
    """KFP's ``resources`` as Kubernetes requests and limits."""
    resources = container.get("resources") or {}
    if "{{$" in json.dumps(resources):
        raise Unsupported(
            "resources set from a pipeline input or a task output",
            task,
            "Tekton takes a step's computeResources as written",
        )
    limits: dict[str, str] = {}
    requests: dict[str, str] = {}

    def number(value: Any) -> str:
        return str(int(value)) if float(value).is_integer() else str(value)

    if resources.get("resourceCpuLimit"):
        limits["cpu"] = str(resources["resourceCpuLimit"])
    elif resources.get("cpuLimit"):
        limits["cpu"] = number(resources["cpuLimit"])
    if resources.get("resourceMemoryLimit"):
        limits["memory"] = str(resources["resourceMemoryLimit"])
    elif resources.get("memoryLimit"):
        limits["memory"] = str(int(float(resources["memoryLimit"]) * 1e9))
    if resources.get("resourceCpuRequest"):
        requests["cpu"] = str(resources["resourceCpuRequest"])
    elif resources.get("cpuRequest"):
        requests["cpu"] = number(resources["cpuRequest"])
    if resources.get("resourceMemoryRequest"):
        requests["memory"] = str(resources["resourceMemoryRequest"])
    elif resources.get("memoryRequest"):
        requests["memory"] = str(int(float(resources["memoryRequest"]) * 1e9))
    accelerator = resources.get("accelerator") or {}
    kind = accelerator.get("resourceType") or accelerator.get("type")
    count = accelerator.get("resourceCount") or accelerator.get("count")
    if kind and count:
        if not _EXTENDED_RESOURCE.match(str(kind)):
            raise Unsupported(
                f"accelerator type {kind}",
                task,
                "not a Kubernetes extended resource such as nvidia.com/gpu (Vertex AI "
                "accelerator and TPU names need Vertex AI)",
            )
        limits[str(kind)] = str(count)
    for name, value in [*requests.items(), *limits.items()]:
        if not _QUANTITY.match(value):
            raise CompileError(f"task {task}: {value!r} is not a Kubernetes quantity for {name}")
    found: dict[str, Any] = {}
    if requests:
        found["requests"] = requests
    if limits:
        found["limits"] = limits
    return found


@dataclass
class PodSettings:
    """kfp-kubernetes settings of one executor, placed where Tekton takes them."""

    env: list[dict[str, Any]] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    pod_template: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    timeout: str = ""
    image_pull_policy: str = ""


def _constant_name(entry: dict[str, Any], key: str, parameter_key: str, task: str) -> str:
    name = entry.get(key)
    if name:
        return str(name)
    parameter = entry.get(parameter_key) or {}
    constant = (parameter.get("runtimeValue") or {}).get("constant")
    if constant:
        return str(constant)
    raise Unsupported(f"{key} taken from a pipeline input or a task output", task)


def pod_settings(platform: dict[str, Any], task: str) -> PodSettings:
    """What the kfp-kubernetes ``PlatformSpec`` of an executor becomes."""
    settings = PodSettings()
    for entry in platform.get("secretAsEnv") or []:
        secret = _constant_name(entry, "secretName", "secretNameParameter", task)
        for pair in entry.get("keyToEnv") or []:
            settings.env.append(
                {
                    "name": pair["envVar"],
                    "valueFrom": {
                        "secretKeyRef": {
                            "name": secret,
                            "key": pair["secretKey"],
                            **({"optional": True} if entry.get("optional") else {}),
                        }
                    },
                }
            )
    for entry in platform.get("configMapAsEnv") or []:
        config_map = _constant_name(entry, "configMapName", "configMapNameParameter", task)
        for pair in entry.get("keyToEnv") or []:
            settings.env.append(
                {
                    "name": pair["envVar"],
                    "valueFrom": {
                        "configMapKeyRef": {
                            "name": config_map,
                            "key": pair["configMapKey"],
                            **({"optional": True} if entry.get("optional") else {}),
                        }
                    },
                }
            )
    for entry in platform.get("fieldPathAsEnv") or []:
        settings.env.append(
            {"name": entry["name"], "valueFrom": {"fieldRef": {"fieldPath": entry["fieldPath"]}}}
        )
    for index, entry in enumerate(platform.get("secretAsVolume") or []):
        secret = _constant_name(entry, "secretName", "secretNameParameter", task)
        volume = dns_label(f"secret-{index}-{secret}")
        settings.volumes.append(
            {
                "name": volume,
                "secret": {
                    "secretName": secret,
                    **({"optional": True} if entry.get("optional") else {}),
                },
            }
        )
        settings.mounts.append({"name": volume, "mountPath": entry["mountPath"], "readOnly": True})
    for index, entry in enumerate(platform.get("configMapAsVolume") or []):
        config_map = _constant_name(entry, "configMapName", "configMapNameParameter", task)
        volume = dns_label(f"config-{index}-{config_map}")
        settings.volumes.append(
            {
                "name": volume,
                "configMap": {
                    "name": config_map,
                    **({"optional": True} if entry.get("optional") else {}),
                },
            }
        )
        settings.mounts.append({"name": volume, "mountPath": entry["mountPath"], "readOnly": True})
    for index, entry in enumerate(platform.get("emptyDirMounts") or []):
        volume = dns_label(str(entry.get("volumeName") or f"empty-{index}"))
        empty: dict[str, Any] = {}
        if entry.get("medium"):
            empty["medium"] = entry["medium"]
        if entry.get("sizeLimit"):
            empty["sizeLimit"] = entry["sizeLimit"]
        settings.volumes.append({"name": volume, "emptyDir": empty})
        settings.mounts.append({"name": volume, "mountPath": entry["mountPath"]})
    for index, entry in enumerate(platform.get("pvcMount") or []):
        claim = entry.get("constant") or (
            ((entry.get("pvcNameParameter") or {}).get("runtimeValue") or {}).get("constant")
        )
        if not claim:
            raise Unsupported(
                "a PVC mount whose claim comes from a task (kubernetes.CreatePVC)", task
            )
        volume = dns_label(f"pvc-{index}-{claim}")
        settings.volumes.append({"name": volume, "persistentVolumeClaim": {"claimName": claim}})
        settings.mounts.append({"name": volume, "mountPath": entry["mountPath"]})
    selector = (platform.get("nodeSelector") or {}).get("labels")
    if selector:
        settings.pod_template["nodeSelector"] = dict(selector)
    if platform.get("tolerations"):
        settings.pod_template["tolerations"] = [
            {
                k: v
                for k, v in t.items()
                if k in ("key", "operator", "value", "effect", "tolerationSeconds")
            }
            for t in platform["tolerations"]
        ]
    if platform.get("imagePullSecret"):
        settings.pod_template["imagePullSecrets"] = [
            {"name": s["secretName"]} for s in platform["imagePullSecret"] if s.get("secretName")
        ]
    pod_metadata = platform.get("podMetadata") or {}
    if pod_metadata.get("labels") or pod_metadata.get("annotations"):
        settings.metadata = {
            k: dict(v) for k, v in pod_metadata.items() if k in ("labels", "annotations") and v
        }
    if platform.get("activeDeadlineSeconds"):
        settings.timeout = f"{int(platform['activeDeadlineSeconds'])}s"
    if platform.get("imagePullPolicy"):
        settings.image_pull_policy = str(platform["imagePullPolicy"])
    unknown = set(platform) - {
        "secretAsEnv",
        "configMapAsEnv",
        "fieldPathAsEnv",
        "secretAsVolume",
        "configMapAsVolume",
        "emptyDirMounts",
        "pvcMount",
        "nodeSelector",
        "tolerations",
        "imagePullSecret",
        "podMetadata",
        "activeDeadlineSeconds",
        "imagePullPolicy",
    }
    if unknown:
        raise Unsupported(f"kfp-kubernetes settings {', '.join(sorted(unknown))}", task)
    return settings
