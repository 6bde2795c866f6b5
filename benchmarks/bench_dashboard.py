"""`tekton-mlops dashboard`: how fast the page of a 50-task run is ready, against 1 s.

The run is real: a 50-task PipelineRun (8 layers of 6 tasks, each reading a result of
the layer before, two steps each, and 2 finally tasks) run once by the local executor.
Two figures: the server's time to answer ``GET /runs/<name>`` with a cold cache (a new
Dashboard, so every object file is read and parsed, the graph laid out and drawn), and
the time Chromium takes from navigation to its load event, the page's style sheet and
script included, through the real server on 127.0.0.1.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from harness import CLI, Row, need, workdir

ORDER = 66
RUNS = 9
LAYERS, WIDTH = 8, 6
GOAL_MS = 1000.0


def _pipeline() -> str:
    """The 50-task run: task l<i>-t<j> reads result ``n`` of l<i-1>-t<j> and runs after
    one more task of that layer, so the graph has crossings and long edges to lay out."""
    lines = [
        "apiVersion: tekton.dev/v1",
        "kind: PipelineRun",
        "metadata: {name: fifty}",
        "spec:",
        "  pipelineSpec:",
        "    tasks:",
    ]
    for layer in range(LAYERS):
        for row in range(WIDTH):
            name = f"l{layer}-t{row}"
            lines.append(f"      - name: {name}")
            if layer:
                lines.append(f"        runAfter: [l{layer - 1}-t{(row + 2) % WIDTH}]")
                lines.append(
                    f"        params: [{{name: n, value: $(tasks.l{layer - 1}-t{row}.results.n)}}]"
                )
            lines += [
                "        taskSpec:",
                "          params: [{name: n, default: '0'}]" if layer else "          params: []",
                "          results: [{name: n}]",
                "          steps:",
                "            - {name: work, image: busybox, script: 'echo working on $(params.n)'}"
                if layer
                else "            - {name: work, image: busybox, script: 'echo start'}",
                "            - {name: write, image: busybox, "
                f"script: 'printf {layer} > $(results.n.path)'}}",
            ]
    lines.append("    finally:")
    for name in ("report", "notify"):
        lines.append(
            f"      - {{name: {name}, taskSpec: {{steps: [{{name: say, image: busybox, "
            "script: 'echo done'}]}}"
        )
    return "\n".join(lines) + "\n"


def _server_ms(runs: Path, name: str) -> float:
    from tekton_mlops.dashboard.server import Dashboard

    start = time.perf_counter()
    answer = Dashboard(runs).respond("GET", f"/runs/{name}", {})
    took = (time.perf_counter() - start) * 1000
    assert answer.status == 200, answer.body[:200]
    return took


def _browser_ms(runs: Path, name: str) -> list[float]:
    from playwright.sync_api import sync_playwright

    from tekton_mlops.dashboard.server import make_server

    server = make_server(runs, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    loads = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"))
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            for _ in range(RUNS):
                page.goto(f"{server.url}runs/{name}", wait_until="load")
                loads.append(
                    page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
                )
            assert page.locator("svg.graph a.node").count() == LAYERS * WIDTH + 2
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    return loads


def rows() -> list[Row]:
    need(shutil.which("chromium"), "chromium")
    need(shutil.which("busybox"), "busybox")
    with workdir("bench-dashboard-") as work:
        (work / "fifty.yaml").write_text(_pipeline())
        subprocess.run(
            [CLI, "run", str(work / "fifty.yaml"), "--run-dir", str(work / "runs"), "-o", "none"],
            check=True,
            capture_output=True,
        )
        server = [_server_ms(work / "runs", "fifty") for _ in range(RUNS)]
        browser = _browser_ms(work / "runs", "fifty")
    served, loaded = statistics.median(server), statistics.median(browser)
    print(f"  server ms: {[round(s, 1) for s in server]}", file=sys.stderr)
    print(f"  browser load ms: {[round(b, 1) for b in browser]}", file=sys.stderr)
    what = f"dashboard run page, a {LAYERS * WIDTH + 2}-task PipelineRun"
    return [
        (f"{what}: server render, cold cache", f"{served:.0f} ms", "the goal", f"{GOAL_MS:.0f} ms",
         f"{served / GOAL_MS:.2f}x of it (goal < 1x)"),
        (f"{what}: Chromium navigation to load event", f"{loaded:.0f} ms", "the goal",
         f"{GOAL_MS:.0f} ms", f"{loaded / GOAL_MS:.2f}x of it (goal < 1x)"),
    ]  # fmt: skip
