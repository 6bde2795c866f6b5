"""The defaults Tekton's defaulting webhook and controller fill in (``config-defaults``)."""

from __future__ import annotations

from typing import Any

NAMESPACE = "default"
SERVICE_ACCOUNT = "default"
#: ``default-timeout-minutes``: a run without a timeout gets one hour.
TIMEOUT_SECONDS = 3600.0
WORKSPACE_ROOT = "/workspace"
RESULTS_DIR = "/tekton/results"
HOME_DIR = "/tekton/home"
CREDS_DIR = "/tekton/creds"
STEPS_DIR = "/tekton/steps"


def param_type(spec: dict[str, Any]) -> str:
    """A ParamSpec's type: as declared, else that of its default, else object when it lists
    properties, else string (Tekton's ParamSpec defaulting)."""
    declared = spec.get("type")
    if declared:
        return str(declared)
    if "default" in spec:
        return value_type(spec["default"])
    return "object" if spec.get("properties") else "string"


def value_type(value: Any) -> str:
    """The Tekton type of a param or result value."""
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def step_name(step: dict[str, Any], index: int) -> str:
    """A step's name; an unnamed step is ``unnamed-<index>``, as in its container name."""
    return str(step.get("name") or f"unnamed-{index}")


def workspace_mount_path(declaration: dict[str, Any]) -> str:
    return str(declaration.get("mountPath") or f"{WORKSPACE_ROOT}/{declaration['name']}")


def pod_name(taskrun: str, retry: int = 0) -> str:
    return f"{taskrun}-pod" + (f"-retry{retry}" if retry else "")
