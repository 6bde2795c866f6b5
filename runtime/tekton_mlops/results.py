"""Tekton results: encoding, the shared size budget, atomic writing.

Tekton carries a TaskRun's results in the container termination message,
which Kubernetes caps at 4096 bytes for all results of the Task together
(tektoncd/pipeline docs/additional-configs.md). The runtime measures results
the way Tekton encodes them and refuses a set that would not fit, with an error
naming the largest results, instead of letting the TaskRun fail obscurely.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from tekton_mlops.errors import ResultsError

ResultValue = str | list[str] | dict[str, str]

#: All results of a Task share this many bytes (the termination message limit).
RESULTS_BUDGET = 4096


def encode(value: ResultValue) -> str:
    """The file content of a result: strings as they are, arrays and objects as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=isinstance(value, dict))


#: What Go's encoding/json writes differently from Python's json with ensure_ascii=False:
#: it escapes these for HTML safety (json.Marshal's default), 6 bytes where Python writes 1-3.
_GO_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def termination_message_size(results: Mapping[str, ResultValue]) -> int:
    """Bytes the results take in Tekton's termination message.

    The entrypoint (Go) writes ``[{"key": name, "value": text, "type": 1}, ...]`` with
    json.Marshal: non-ASCII text as UTF-8, ``<``, ``>`` and ``&`` as ``\\u003c``-style escapes.
    A condition like ``">=0.9"`` costs 10 bytes there, not 5, and ``"é"`` 2, not 6.
    """
    entries = [{"key": k, "value": encode(v), "type": 1} for k, v in results.items()]
    text = json.dumps(entries, separators=(",", ":"), ensure_ascii=False)
    # A lone surrogate (a path's undecodable byte) becomes U+FFFD in Go: 3 bytes, as here.
    return len(text.translate(_GO_ESCAPES).encode("utf-8", "surrogatepass"))


def check_budget(results: Mapping[str, ResultValue], budget: int = RESULTS_BUDGET) -> None:
    """Raise ResultsError when the results would not fit Tekton's budget."""
    size = termination_message_size(results)
    if size <= budget:
        return
    largest = sorted(results, key=lambda k: len(encode(results[k])), reverse=True)[:3]
    sizes = ", ".join(f"{k} ({len(encode(results[k]).encode())} B)" for k in largest)
    raise ResultsError(
        f"results take {size} bytes, over Tekton's {budget}-byte budget; largest: {sizes}. "
        "Large outputs belong in a workspace file, with its path or digest as the result"
    )


#: Where Tekton mounts a step's results; a pod always has it.
TEKTON_RESULTS = Path("/tekton/results")


def write_results(results_dir: Path | None, results: Mapping[str, ResultValue]) -> None:
    """Write one file per result, named as the result, with no trailing newline.

    Checks the budget first, so an oversized set writes nothing. With no directory given,
    results go to ``/tekton/results`` when it exists (inside a pod), else to stdout as
    ``name=value`` lines: a step run by hand creates nothing at the root of the machine.
    """
    check_budget(results)
    if results_dir is None:
        if not TEKTON_RESULTS.is_dir():
            for name, value in results.items():
                print(f"{name}={encode(value)}")
            return
        results_dir = TEKTON_RESULTS
    results_dir.mkdir(parents=True, exist_ok=True)
    for name, value in results.items():
        target = results_dir / name
        tmp = results_dir / f".{name}.tmp"
        tmp.write_text(encode(value))
        os.replace(tmp, target)
