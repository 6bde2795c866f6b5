"""prepare-training: verify the dataset and lay it out for a bring-your-own training step."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tekton_mlops.contract import StepContext
from tekton_mlops.digests import as_digest, read_manifest
from tekton_mlops.errors import DataError, DestinationError, IntegrityError
from tekton_mlops.lineage import Artifact
from tekton_mlops.results import ResultValue
from tekton_mlops.steps import train_custom
from tekton_mlops.storage.publish import check_destination, staged_directory

if TYPE_CHECKING:  # numpy-backed: imported when the step runs, not on --help
    from tekton_mlops.ml.tabular import DataSource

#: columns.json lists the target's distinct values up to this many (class labels, in practice).
MAX_TARGET_VALUES = 100
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Params(train_custom.Settings):
    """finish-training's params but its output: all are checked here, before training."""


def run(params: Params, ctx: StepContext) -> dict[str, ResultValue]:
    from tekton_mlops.ml import tabular

    train_custom.check_sizes(ctx.step, params.min_bytes, params.max_bytes)
    work = Path(params.work_dir)
    if work.is_dir() and any(work.iterdir()):
        raise DestinationError(f"{work}: not empty (work-dir must be new or empty)")
    check_destination(work, overwrite=False)
    source = tabular.locate(params.data, params.data_digest)
    expected = _listed_digest(Path(params.data), source)
    # Read where the user put it, so a problem names that file, before anything is written.
    columns = _describe(source.csv, params.target_column, source)
    with staged_directory(work) as stage:
        data = stage / train_custom.DATA_DIR
        data.mkdir()
        # The copy is hashed as it is written: the training step reads the verified bytes.
        copied = _copy_hashing(source.csv, data / train_custom.CSV_NAME)
        if copied != expected:
            raise IntegrityError(
                f"{source.csv}: sha256 {copied} as copied does not match the verified {expected}"
            )
        (data / train_custom.COLUMNS_FILE).write_text(json.dumps(columns, indent=2) + "\n")
        (stage / train_custom.MODEL_DIR).mkdir()
        (stage / train_custom.LAUNCHER).write_text(
            train_custom.launcher(params.command, params.args)
        )
        # The record stays in the scratch directory: finish-training's, in the model, names
        # the same dataset by digest.
        laid_out = (work / train_custom.DATA_DIR / train_custom.CSV_NAME).resolve().as_uri()
        ctx.write_lineage(
            stage,
            inputs=[Artifact("dataset", source.uri, source.digest)],
            outputs=[Artifact("training-data", laid_out, copied)],
        )
        stage.chmod(0o755)  # mkdtemp makes it 0700; the training step only needs to read it
    ctx.log.info(
        "laid out %s (%d rows, %d feature columns, dataset %s) in %s for %s",
        source.csv,
        columns["rows"],
        len(columns["feature_columns"]),
        as_digest(source.digest),
        work,
        params.image,
    )
    return {}


def _listed_digest(data: Path, source: DataSource) -> str:
    """The sha256 the CSV file must have: its manifest entry, else the digest locate took of
    the file itself (a bare CSV, or a directory without manifest, is identified by it)."""
    manifest = read_manifest(data) if data.is_dir() else None
    if manifest is not None:
        entry = manifest.entry(source.csv.relative_to(data).as_posix())
        if entry is not None:
            return entry.sha256
    return source.digest


def _copy_hashing(source: Path, target: Path) -> str:
    digest = hashlib.sha256()
    try:
        with source.open("rb") as reader, target.open("wb") as writer:
            while chunk := reader.read(_CHUNK):
                digest.update(chunk)
                writer.write(chunk)
    except OSError as exc:
        raise DataError(f"{exc.filename or source}: cannot copy ({exc.strerror or exc})") from None
    return digest.hexdigest()


def _describe(csv: Path, target: str, source: DataSource) -> dict[str, Any]:
    """columns.json: what a training program needs to know of the table before reading it."""
    from tekton_mlops.ml.columns import read_frame

    frame = read_frame(csv, target)
    values = sorted(set(frame.target.tolist()))  # all integers, or all strings
    numeric = all(_is_number(v) for v in values)
    return {
        "csv": train_custom.CSV_NAME,
        "rows": len(frame.target),
        "target_column": target,
        "target": {
            "kind": "numeric" if numeric else "categorical",
            "values": values if len(values) <= MAX_TARGET_VALUES else None,
        },
        "feature_columns": list(frame.feature_names),
        "feature_kinds": {name: frame.kinds[name] for name in frame.feature_names},
        "dataset": {"uri": source.uri, "digest": as_digest(source.digest)},
    }


def _is_number(value: Any) -> bool:
    if isinstance(value, int):
        return True
    try:
        float(value)
    except ValueError:
        return False
    return True
