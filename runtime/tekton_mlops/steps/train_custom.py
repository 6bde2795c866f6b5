"""The train-custom Task's shared ground: the scratch layout its three steps agree on.

prepare-training lays out ``work-dir`` for the user's training step, which runs in the
user's own image and knows nothing of this package; finish-training reads what that step
left. The names below are that contract, and the Task YAML's env names them to the
training step::

    work-dir/
      data/dataset.csv    the verified CSV (TRAINING_CSV)
      data/columns.json   its columns, target, rows and digest (TRAINING_COLUMNS)
      model/              empty; the training step writes its model here (MODEL_DIR)
      launch.sh           the command and args, quoted for sh: the training step runs it

The command reaches the training step through ``launch.sh`` because every Task param is
a string the runtime validates by schema, and Tekton cannot split a string into a
container's argv: the runtime quotes each argument once, and the step runs exactly that.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from tekton_mlops.errors import ParameterError, Violation
from tekton_mlops.lineage import Artifact


@dataclass(frozen=True)
class Settings:
    """The params both runtime steps of train-custom read: one Task, one set of params,
    all checked by the first step before the user's training runs."""

    data: str
    target_column: str
    image: str
    command: list[str]
    args: list[str]
    format: str
    check_rows: int
    min_bytes: int
    max_bytes: int
    max_files: int
    data_digest: str
    work_dir: str
    overwrite: bool
    source_url: str
    source_revision: str


DATA_DIR = "data"
CSV_NAME = "dataset.csv"
COLUMNS_FILE = "columns.json"
MODEL_DIR = "model"
LAUNCHER = "launch.sh"


def check_sizes(step: str, min_bytes: int, max_bytes: int) -> None:
    """The size bounds must leave room for a model; refused before anything is read."""
    if min_bytes > max_bytes:
        raise ParameterError(
            step, [Violation("min-bytes", min_bytes, f"must be <= max-bytes ({max_bytes})")]
        )


def image_artifact(image: str) -> Artifact:
    """The training image as a lineage dependency: its name and the digest it is pinned to.

    The schema only admits ``name[:tag]@sha256:<hex>``: in Tekton a step's resolved image
    digest shows only in the TaskRun's status once it ran, where no step can read it, so the
    digest the Task was given is the one the record can vouch for.
    """
    name, _, digest = image.partition("@sha256:")
    return Artifact("training-image", f"oci://{name}", digest)


def launcher(command: Sequence[str], args: Sequence[str]) -> str:
    """``launch.sh``: a POSIX sh script that execs the command with its args, each quoted."""
    quoted = " ".join(shlex.quote(part) for part in [*command, *args])
    return (
        "#!/bin/sh\n"
        "# Written by tekton-mlops prepare-training: the training command, each argument quoted\n"
        "# for sh, so the program gets them exactly as the command and args params give them.\n"
        f"exec {quoted}\n"
    )
