"""Router overhead: p50 latency at concurrency 4 through `tekton-mlops route serve` and without.

The same `tekton-mlops serve` (the serve benchmark's model: a 100-tree random forest
on iris, one row per request) is measured directly and through the router (a table
sending it all traffic), with the same request and the same client (check-slo's load
generator in this process), alternating, the order rotating each round; each figure
is the median over ROUNDS rounds. For scale, the same through the relay floor
(benchmarks/floor_relay.py): a Python proxy that relays bytes and does nothing else.
All of it shares the machine's cores: the client, the router and the server.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from contextlib import ExitStack
from typing import Any

from bench_serve import train_forest
from harness import CLI, PYTHON, REPO, Row, serving, workdir

ORDER = 52
SECONDS = 3.0
ROUNDS = 5
CONCURRENCY = 4
PORTS = {"server": 5621, "router": 5622, "relay": 5623}
BODY = json.dumps(
    {"id": "bench", "inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4],
                                "data": [5.1, 3.5, 1.4, 0.2]}]}
).encode()  # fmt: skip


def rows() -> list[Row]:
    sys.path.insert(0, str(REPO / "runtime"))
    sys.path.insert(0, str(REPO))
    from tekton_mlops.serving.load import drive
    from tests.conftest import write_csv

    with workdir("bench-router-") as work:
        model = train_forest(work, write_csv)
        table = work / "table.json"
        server = f"http://127.0.0.1:{PORTS['server']}"
        table.write_text(
            json.dumps({"model": "iris", "backends": {"v1": server}, "weights": {"v1": 100}})
        )
        commands = {
            "server": [CLI, "serve", f"--model-path={model}", "--model-name=iris",
                       "--model-version=v1", f"--port={PORTS['server']}"],
            "router": [CLI, "route", "serve", f"--table={table}", f"--port={PORTS['router']}"],
            "relay": [PYTHON, str(REPO / "benchmarks" / "floor_relay.py"), str(PORTS["relay"]),
                      str(PORTS["server"])],
        }  # fmt: skip
        with ExitStack() as stack:
            for name, command in commands.items():
                stack.enter_context(serving(command, PORTS[name]))
            time.sleep(1.0)  # the server reports ready before its first inference is warm
            for port in PORTS.values():
                warm = drive(f"http://127.0.0.1:{port}", "iris", BODY, 500, CONCURRENCY)
                assert warm.errors == 0, (port, warm.error_samples)
            measured = _measure(drive)
    direct = measured["server"]
    table_rows: list[Row] = []
    for name, what, goal in (
        ("router", "`tekton-mlops route serve` (one version at 100%)", " (goal < 10%)"),
        ("relay", "relay floor: a Python proxy that only relays bytes", ""),
    ):
        added = measured[name]["latency_p50_ms"] / direct["latency_p50_ms"] - 1
        table_rows.append(
            (f"{what}, concurrency {CONCURRENCY}: p50 ms (requests/s)", _figure(measured[name]),
             "the same `tekton-mlops serve` directly, same request", _figure(direct),
             f"{added:+.0%} p50{goal}")
        )  # fmt: skip
    return table_rows


def _measure(drive: Any) -> dict[str, dict[str, float]]:
    order = list(PORTS)
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in order}
    for round_ in range(ROUNDS):
        for name in order[round_ % len(order) :] + order[: round_ % len(order)]:
            run = drive(f"http://127.0.0.1:{PORTS[name]}", "iris", BODY, 10**9, CONCURRENCY,
                        SECONDS)  # fmt: skip
            assert run.errors == 0, (name, run.error_samples)
            samples[name].append(run.summary())
    for name, runs in samples.items():
        spread = ", ".join(f"{s['latency_p50_ms']:.3f}" for s in runs)
        print(f"  router c={CONCURRENCY} {name}: p50 ms [{spread}]", file=sys.stderr)
    return {
        name: {key: statistics.median(s[key] for s in runs)
               for key in ("throughput_rps", "latency_p50_ms")}
        for name, runs in samples.items()
    }  # fmt: skip


def _figure(summary: dict[str, float]) -> str:
    return f"{summary['latency_p50_ms']:.3f} ({summary['throughput_rps']:.0f})"
