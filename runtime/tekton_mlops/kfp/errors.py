"""The two ways a KFP pipeline fails here: it cannot be compiled, or a step of it fails."""

from __future__ import annotations

from tekton_mlops.errors import MlopsError


class CompileError(MlopsError):
    """The IR uses something this compiler does not map, or is not valid IR (exit 2:
    nothing was written)."""

    exit_code = 2


class Unsupported(CompileError):
    """A KFP feature with no Tekton mapping here; the message names the feature and task."""

    def __init__(self, feature: str, task: str, why: str = "") -> None:
        where = f" (task {task})" if task else ""
        reason = f": {why}" if why else ""
        super().__init__(f"unsupported KFP feature {feature}{where}{reason}")
        self.feature = feature
        self.task = task


class LaunchError(MlopsError):
    """A step of a compiled pipeline cannot do its part (exit 1, one line)."""
