"""check-golden: replay a golden set against a V2 endpoint; agreement with its expected outputs.

Everything that can be wrong with the inputs is found before the first inference
request: the report folder, the golden set (verified against its manifest), its
expected column, whether its columns feed the model's inputs (from the model's
metadata, on the baseline too) and whether every cell fits its input. A golden set
that does not fit the model is a parameter error on ``golden`` (exit 2).

The lineage record goes beside the reports, ``<output>/.mlops/lineage/check-golden.intoto.json``:
the golden set (its digest) and the endpoints (by URL) in, the two reports out, the decision
(the results) as a byproduct. It is written whatever the verdict, before a failing check fails
the step; with ``model-uri`` it is signed and attached beside the stored model as
:mod:`tekton_mlops.lineage_store.decisions` says.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tekton_mlops.contract import StepContext
from tekton_mlops.errors import MlopsError, ParameterError, Violation
from tekton_mlops.lineage import Artifact
from tekton_mlops.results import ResultValue
from tekton_mlops.serving.agreement import (
    Tolerance,
    expected_agrees,
    max_score_difference,
    share,
    versions_agree,
)
from tekton_mlops.serving.rows import Batch, Binding, Prediction, Signature

STEP = "check-golden"
REPORT_JSON = "golden-report.json"
REPORT_MARKDOWN = "golden-report.md"
#: Disagreeing rows listed in the reports; the counts cover them all.
LISTED_ROWS = 50
#: A cell longer than this is cut in the reports.
_CELL_CHARS = 120


@dataclass(frozen=True)
class Params:
    url: str
    model: str
    golden: str
    golden_digest: str
    expected_column: str
    tolerance: float
    relative_tolerance: float
    min_agreement: float
    baseline_url: str
    baseline_model: str
    batch_size: int
    output: str
    fail_on_mismatch: bool
    model_uri: str
    signing_key: str
    endpoint_url: str
    addressing_style: str
    registry_auth: str
    insecure_registry: bool


class GoldenMismatch(MlopsError):
    """Agreement is below the threshold and the caller asked for a failing step."""


@dataclass(frozen=True)
class Golden:
    """The golden set as read: header, rows of cells, record numbers, where it came from."""

    columns: list[str]
    rows: list[list[Any]]
    numbers: list[int]
    expected: int  # position of the expected column
    uri: str
    digest: str
    csv: Path


@dataclass(frozen=True)
class Replay:
    """One endpoint's side: its model, how the golden set feeds it, the requests."""

    url: str
    model: str
    binding: Binding
    batches: list[Batch]

    @property
    def signature(self) -> Signature:
        return self.binding.signature


def _golden_problem(params: Params, rule: str) -> ParameterError:
    return ParameterError(STEP, [Violation("golden", params.golden, rule)])


def _read_golden(params: Params) -> Golden:
    from tekton_mlops.ml import frame, tabular

    source = tabular.locate(params.golden, params.golden_digest)
    table = frame.read_csv(source.csv, missing={""})
    if params.expected_column not in table.columns:
        shown = ", ".join(table.columns[:20]) + (" ..." if len(table.columns) > 20 else "")
        raise ParameterError(
            STEP,
            [
                Violation(
                    "expected-column",
                    params.expected_column,
                    f"the golden set {source.csv} has no such column; its columns are {shown}",
                )
            ],
        )
    if not table.rows:
        raise _golden_problem(params, f"{source.csv} has no data rows")
    expected = table.columns.index(params.expected_column)
    if blank := [
        n for n, row in zip(table.numbers, table.rows, strict=True) if row[expected] is None
    ]:
        raise _golden_problem(
            params,
            f"no expected value in column {params.expected_column!r} at row(s) "
            + ", ".join(map(str, blank[:10]))
            + (" ..." if len(blank) > 10 else ""),
        )
    return Golden(
        table.columns, table.rows, table.numbers, expected, source.uri, source.digest, source.csv
    )


def _prepare(params: Params, golden: Golden, url: str, model: str) -> Replay:
    """Bind the golden set to the model at ``url`` and build every request; nothing is sent
    but the metadata request."""
    from tekton_mlops.serving import rows

    signature = rows.fetch_signature(url, model)
    where = f"the model {model!r} at {url}"
    try:
        binding = rows.bind(signature, golden.columns, exclude={golden.columns[golden.expected]})
        batches = rows.encode_batches(binding, golden.rows, params.batch_size, golden.numbers)
    except rows.ColumnMismatch as exc:
        raise _golden_problem(
            params, f"its columns do not match the inputs of {where}: {exc}"
        ) from None
    except rows.CellError as exc:
        raise _golden_problem(params, f"{golden.csv}: {exc}, which {where} cannot take") from None
    return Replay(url, model, binding, batches)


def _shown(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _CELL_CHARS:
        return value[: _CELL_CHARS - 3] + "..."
    return value


def _inputs(golden: Golden, binding: Binding, index: int) -> dict[str, Any]:
    row = golden.rows[index]
    return {name: _shown(row[golden.columns.index(name)]) for name in binding.used_columns}


def _against_expected(
    golden: Golden, replay: Replay, predictions: list[Prediction], tolerance: Tolerance
) -> dict[str, Any]:
    disagreeing = [
        index
        for index, (row, got) in enumerate(zip(golden.rows, predictions, strict=True))
        if not expected_agrees(row[golden.expected], got.label, tolerance)
    ]
    rows = len(golden.rows)
    listed = []
    for index in disagreeing[:LISTED_ROWS]:
        entry: dict[str, Any] = {
            "row": golden.numbers[index],
            "inputs": _inputs(golden, replay.binding, index),
            "expected": _shown(golden.rows[index][golden.expected]),
            "got": _shown(predictions[index].label),
        }
        if predictions[index].scores is not None:
            entry["scores"] = list(predictions[index].scores or ())
        listed.append(entry)
    return {
        "agreement": share(rows - len(disagreeing), rows),
        "agreeing": rows - len(disagreeing),
        "disagreements": len(disagreeing),
        "disagreeing_rows": listed,
    }


def _against_baseline(
    golden: Golden,
    replay: Replay,
    candidate: list[Prediction],
    baseline: list[Prediction],
    tolerance: Tolerance,
) -> dict[str, Any]:
    disagreeing = [
        index
        for index, (mine, theirs) in enumerate(zip(candidate, baseline, strict=True))
        if not versions_agree(mine, theirs, tolerance)
    ]
    rows = len(golden.rows)
    return {
        "url": replay.url,
        "model": replay.model,
        "agreement": share(rows - len(disagreeing), rows),
        "disagreements": len(disagreeing),
        "max_score_difference": max_score_difference(candidate, baseline),
        "disagreeing_rows": [
            {
                "row": golden.numbers[index],
                "inputs": _inputs(golden, replay.binding, index),
                "expected": _shown(golden.rows[index][golden.expected]),
                "candidate": _shown(candidate[index].label),
                "baseline": _shown(baseline[index].label),
            }
            for index in disagreeing[:LISTED_ROWS]
        ],
    }


def _cell(value: Any) -> str:
    """A value in a Markdown table cell: pipes and line breaks would end the cell."""
    text = json.dumps(value) if not isinstance(value, str) else value
    return text.replace("|", "\\|").replace("\n", " ")


def _inputs_text(inputs: dict[str, Any]) -> str:
    text = ", ".join(f"{name}={'' if v is None else v}" for name, v in inputs.items())
    return _cell(text if len(text) <= 200 else text[:197] + "...")


def markdown(report: dict[str, Any]) -> str:
    """golden-report.md: the verdict, the counts and the disagreeing rows listed."""
    shown = len(report["disagreeing_rows"])
    lines = [
        f"# Golden check of {report['model']} at {report['url']}",
        "",
        f"Verdict: **{'passed' if report['passed'] else 'failed'}**: "
        f"{report['agreeing']} of {report['rows']} rows agree "
        f"(agreement {report['agreement']}, at least {report['min_agreement']} needed).",
        "",
        f"Golden set: `{report['golden']['uri']}` (`sha256:{report['golden']['digest']}`), "
        f"expected column `{report['golden']['expected_column']}`.",
    ]
    if shown:
        more = (
            f" (the first {shown} of {report['disagreements']})"
            if shown < report["disagreements"]
            else ""
        )
        lines += [
            "",
            f"## Disagreeing rows{more}",
            "",
            "| row | expected | got | inputs |",
            "| --- | --- | --- | --- |",
            *(
                f"| {r['row']} | {_cell(r['expected'])} | {_cell(r['got'])} | "
                f"{_inputs_text(r['inputs'])} |"
                for r in report["disagreeing_rows"]
            ),
        ]
    baseline = report.get("baseline")
    if baseline:
        lines += [
            "",
            f"## Against the baseline {baseline['model']} at {baseline['url']}",
            "",
            f"The two versions agree on {report['rows'] - baseline['disagreements']} of "
            f"{report['rows']} rows (agreement {baseline['agreement']}).",
        ]
        if baseline["max_score_difference"] is not None:
            lines.append(
                f"Largest difference of a class score: {baseline['max_score_difference']:.6g}."
            )
        if baseline["disagreeing_rows"]:
            lines += [
                "",
                "| row | expected | candidate | baseline | inputs |",
                "| --- | --- | --- | --- | --- |",
                *(
                    f"| {r['row']} | {_cell(r['expected'])} | {_cell(r['candidate'])} | "
                    f"{_cell(r['baseline'])} | {_inputs_text(r['inputs'])} |"
                    for r in baseline["disagreeing_rows"]
                ),
            ]
    return "\n".join(lines) + "\n"


def _text(number: float) -> str:
    """0.986667, 1, 0: a share as a result value."""
    return f"{number:.6f}".rstrip("0").rstrip(".")


def run(params: Params, ctx: StepContext) -> dict[str, ResultValue]:
    from tekton_mlops.lineage_store import decisions as decision_records
    from tekton_mlops.serving import rows
    from tekton_mlops.storage.publish import atomic_write_text, check_writable_directory

    output = Path(params.output)
    check_writable_directory(output)  # before any request: a report that cannot be written
    recorder = decision_records.prepare(params)  # the key and the stored model, before any request
    golden = _read_golden(params)
    candidate = _prepare(params, golden, params.url, params.model)
    baseline = None
    if params.baseline_url:
        baseline = _prepare(
            params, golden, params.baseline_url, params.baseline_model or params.model
        )
    tolerance = Tolerance(params.tolerance, params.relative_tolerance)
    ctx.log.info(
        "replaying %d golden row(s) against %s in %d request(s)",
        len(golden.rows),
        params.url,
        len(candidate.batches),
    )
    predictions = rows.predict(candidate.url, candidate.signature, candidate.batches)
    verdict = _against_expected(golden, candidate, predictions, tolerance)
    # A tiny epsilon: 0.9 of 150 rows is 135.00000000000003 in floating point.
    passed = verdict["agreeing"] >= params.min_agreement * len(golden.rows) - 1e-9
    report: dict[str, Any] = {
        "url": params.url,
        "model": params.model,
        "golden": {
            "uri": golden.uri,
            "digest": golden.digest,
            "expected_column": params.expected_column,
            "columns_sent": list(candidate.binding.used_columns),
        },
        "compared_output": candidate.signature.label_output.name,
        "tolerance": {"absolute": params.tolerance, "relative": params.relative_tolerance},
        "min_agreement": params.min_agreement,
        "rows": len(golden.rows),
        "passed": passed,
        **verdict,
    }
    ctx.log.info(
        "%d of %d row(s) agree (agreement %s)",
        verdict["agreeing"],
        len(golden.rows),
        _text(verdict["agreement"]),
    )
    if baseline is not None:
        ctx.log.info("replaying the golden set against the baseline %s", baseline.url)
        theirs = rows.predict(baseline.url, baseline.signature, baseline.batches)
        report["baseline"] = _against_baseline(golden, baseline, predictions, theirs, tolerance)
        ctx.log.info(
            "the two versions agree on %s of the rows", _text(report["baseline"]["agreement"])
        )
    atomic_write_text(output / REPORT_JSON, json.dumps(report, indent=2, sort_keys=True) + "\n")
    atomic_write_text(output / REPORT_MARKDOWN, markdown(report))
    results: dict[str, ResultValue] = {
        "passed": "true" if passed else "false",
        "agreement": _text(verdict["agreement"]),
        "rows": str(len(golden.rows)),
        "disagreements": str(verdict["disagreements"]),
        "baseline-agreement": _text(report["baseline"]["agreement"]) if baseline else "",
        "report": str(output / REPORT_JSON),
    }
    endpoints = [("endpoint", params.url), ("baseline-endpoint", params.baseline_url)]
    decision_records.settle(
        recorder,
        output,
        ctx,
        inputs=[
            Artifact("golden", golden.uri, golden.digest),
            *(Artifact(name, url, "") for name, url in endpoints if url),
        ],
        reports=(REPORT_JSON, REPORT_MARKDOWN),
        results=results,
    )
    ctx.log.info("verdict: %s (report %s)", "passed" if passed else "failed", output / REPORT_JSON)
    if not passed and params.fail_on_mismatch:
        raise GoldenMismatch(
            f"{verdict['disagreements']} of {len(golden.rows)} golden row(s) disagree: agreement "
            f"{_text(verdict['agreement'])} is below min-agreement {_text(params.min_agreement)} "
            f"(rows listed in {output / REPORT_MARKDOWN})"
        )
    return results
