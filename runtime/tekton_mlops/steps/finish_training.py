"""finish-training: validate a bring-your-own training step's output and publish it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tekton_mlops.contract import StepContext
from tekton_mlops.digests import as_digest, build_manifest, write_manifest
from tekton_mlops.errors import DataError
from tekton_mlops.lineage import Artifact, carry_upstream
from tekton_mlops.ml.model_dir import METADATA_FILE, MODEL_FILE
from tekton_mlops.results import ResultValue
from tekton_mlops.steps import train_custom
from tekton_mlops.storage.publish import check_destination, staged_directory


@dataclass(frozen=True)
class Params(train_custom.Settings):
    output: str


def run(params: Params, ctx: StepContext) -> dict[str, ResultValue]:
    from tekton_mlops.ml import tabular
    from tekton_mlops.steps import train_custom_onnx, train_custom_output

    train_custom.check_sizes(ctx.step, params.min_bytes, params.max_bytes)
    output = Path(params.output)
    check_destination(output, params.overwrite)
    # Verified again, not trusted from the first step: the test rows come from these bytes.
    source = tabular.locate(params.data, params.data_digest)
    _check_table(source.csv, params.target_column)
    limits = train_custom_output.Limits(params.min_bytes, params.max_bytes, params.max_files)
    produced = train_custom_output.survey(Path(params.work_dir) / train_custom.MODEL_DIR, limits)
    training = {
        "dataset_digest": as_digest(source.digest),
        "image": params.image,
        "command": params.command,
        "args": params.args,
    }
    model_sha = ""
    with staged_directory(output, overwrite=params.overwrite) as stage:
        # Checked in the copy: what is published is exactly what passed.
        train_custom_output.copy(produced, stage)
        if params.format == "onnx":
            checked = train_custom_onnx.check(
                stage, produced.root, source, params.target_column, params.check_rows, training
            )
            model_sha = checked.sha256
            if checked.metadata_written:
                ctx.log.info("wrote %s for it, from its graph and the data", METADATA_FILE)
            elif not (stage / METADATA_FILE).is_file():
                ctx.log.warning(
                    "no %s: the outputs are neither label and probabilities nor variable; "
                    "the model can be signed, pushed and served, not evaluated",
                    METADATA_FILE,
                )
        manifest = build_manifest(stage)
        write_manifest(stage, manifest)
        outputs = [Artifact("model-dir", output.resolve().as_uri(), manifest.root_hex)]
        if model_sha:
            model_uri = (output / MODEL_FILE).resolve().as_uri()
            outputs.insert(0, Artifact("model", model_uri, model_sha))
        ctx.write_lineage(
            stage,
            inputs=[
                Artifact("dataset", source.uri, source.digest),
                train_custom.image_artifact(params.image),
            ],
            outputs=outputs,
        )
        carry_upstream(Path(params.data), source.digest, stage)  # the model's lineage to its data

    ctx.log.info(
        "published %d file(s), %d bytes, from %s to %s (%s)",
        len(manifest.files),
        manifest.total_bytes,
        produced.root,
        output,
        manifest.root,
    )
    return {
        "model-digest": as_digest(model_sha) if model_sha else "",
        "model-root-digest": manifest.root,
        "file-count": str(len(manifest.files)),
        "total-bytes": str(manifest.total_bytes),
        "dataset_ARTIFACT_INPUTS": {"uri": source.uri, "digest": as_digest(source.digest)},
    }


def _check_table(csv: Path, target: str) -> None:
    """The data is a table with the target column and a row, read as prepare-training read
    it: a digest says the bytes are the same, not that they are a table, and the lineage
    about to be written says the model was trained on this table's ``target``. The header
    and the first row only, since format files needs no more of it."""
    from tekton_mlops.ml.tabular import checked_header, data_rows, read_csv

    def parse(reader: Any) -> None:
        header = checked_header(reader, csv)
        if target not in header:
            raise DataError(f"{csv}: no column {target!r}; columns are {', '.join(header[:20])}")
        if next(data_rows(reader, header, csv), None) is None:
            raise DataError(f"{csv}: no data rows")

    read_csv(csv, parse)
