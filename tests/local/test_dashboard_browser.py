"""`tekton-mlops dashboard` in a real browser, checked as a person looks at it.

The runs are real: the train-and-deploy demo Pipeline (`make demo`'s run, on the same
breast-cancer table), a small Pipeline of catalog Tasks that writes an evaluation report
and a drift report, and one whose task exits 1. The dashboard runs as its command does;
Debian's Chromium (headless, driven by Playwright, never a browser Playwright downloads)
opens its pages at 1280x800 and at a phone's 390x844. Every page is checked for what
a person would see, and for no console error, failed request or horizontal overflow.
Screenshots go to $TEST_ARTIFACTS when set, else to the test's tmp folder.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import CLI, REPO, Service, need
from tests.local.test_catalog_runs import PROJECT_URL, stop_local_servers
from tests.local.test_dashboard_live import gated_pipeline, until

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
WIDE, PHONE = {"width": 1280, "height": 800}, {"width": 390, "height": 844}

FAILING = """
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: broken}
spec:
  pipelineSpec:
    tasks:
      - name: prepare
        taskSpec:
          steps: [{name: hello, image: busybox, script: echo preparing}]
      - name: build
        runAfter: [prepare]
        taskSpec:
          steps:
            - name: compile
              image: busybox
              script: |
                echo compiling
                echo "error: the compiler gave up on main.c" >&2
                exit 1
            - {name: package, image: busybox, script: echo never}
      - name: test
        runAfter: [build]
        taskSpec:
          steps: [{name: run, image: busybox, script: echo testing}]
    finally:
      - name: notify
        taskSpec:
          steps: [{name: say, image: busybox, script: echo done}]
"""

RUNTIME = "ghcr.io/tekton-mlops/runtime:0.1.0@sha256:" + "0" * 64
# Catalog Tasks on a table made in the run: train, evaluate with an HTML report, and detect
# drift on a sample whose age moved.
REPORTS = f"""
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {{name: reports}}
spec:
  workspaces:
    - name: shared
      volumeClaimTemplate:
        spec:
          accessModes: [ReadWriteOnce]
          resources: {{requests: {{storage: 1Gi}}}}
  pipelineSpec:
    workspaces: [{{name: shared}}]
    tasks:
      - name: make-data
        workspaces: [{{name: data, workspace: shared}}]
        taskSpec:
          workspaces: [{{name: data}}]
          steps:
            - name: write-tables
              image: {RUNTIME}
              env: [{{name: DATA_DIR, value: $(workspaces.data.path)}}]
              script: |
                #!/usr/bin/env python3
                import csv, os
                import numpy as np
                rng = np.random.default_rng(7)
                def table(folder, rows, shift):
                    age = rng.normal(40 + shift, 10, rows).round(1)
                    income = rng.lognormal(10, 0.4, rows).round(0)
                    label = ((age + rng.normal(0, 5, rows)) > 42).astype(int)
                    os.makedirs(os.path.join(os.environ["DATA_DIR"], folder))
                    path = os.path.join(os.environ["DATA_DIR"], folder, "data.csv")
                    with open(path, "w", newline="") as handle:
                        writer = csv.writer(handle)
                        writer.writerow(["age", "income", "label"])
                        writer.writerows(zip(age.tolist(), income.tolist(), label.tolist()))
                table("dataset", 400, 0)
                table("current", 200, 12)
      - name: train
        runAfter: [make-data]
        taskRef: {{name: train-model}}
        params: [{{name: target-column, value: label}}]
        workspaces:
          - {{name: data, workspace: shared, subPath: dataset}}
          - {{name: model, workspace: shared, subPath: model}}
      - name: evaluate
        taskRef: {{name: evaluate-model}}
        params:
          - {{name: model-digest, value: $(tasks.train.results.model-digest)}}
          - {{name: thresholds, value: '{{"accuracy": ">=0.6"}}'}}
          - {{name: report, value: report}}
        workspaces:
          - {{name: model, workspace: shared, subPath: model}}
          - {{name: data, workspace: shared, subPath: dataset}}
      - name: detect-drift
        taskRef: {{name: detect-drift}}
        params: [{{name: model-digest, value: $(tasks.train.results.model-digest)}}]
        workspaces:
          - {{name: model, workspace: shared, subPath: model}}
          - {{name: current, workspace: shared, subPath: current}}
          - {{name: reference, workspace: shared, subPath: dataset}}
          - {{name: report, workspace: shared, subPath: drift}}
"""


def _cancer_csv(path: Path) -> Path:
    """The demo's table (hack/demo.sh writes it the same way)."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([n.replace(" ", "_") for n in data.feature_names] + ["diagnosis"])
        writer.writerows(
            [*map(float, row), int(t)] for row, t in zip(data.data, data.target, strict=True)
        )
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder with the demo run, the reports run and the failed run, all finished."""
    root = tmp_path_factory.mktemp("dashboard")
    runs = root / "runs"
    # The data and the file:// model store: this machine's, shared with the steps.
    host = root / "host"
    source = _cancer_csv(host / "source" / "cancer.csv")
    subprocess.run([CLI, "keys", str(root / "secrets")], check=True, capture_output=True)
    (root / "failing.yaml").write_text(FAILING)
    (root / "reports.yaml").write_text(REPORTS)
    base = [CLI, "run", "--run-dir", str(runs), "-o", "none"]
    demo = [
        *base,
        str(REPO / "catalog/pipeline/train-and-deploy/0.1/samples/run-locally.yaml"),
        "--git-mirror", f"{PROJECT_URL}={REPO}",
        "--secrets-dir", str(root / "secrets"),
        "--param", f"model-destination={(host / 'models').as_uri()}",
        "--host-path", str(host),
        "--param", f"dataset-uri={source.as_uri()}",
    ]  # fmt: skip
    commands = [
        (demo, 0),
        ([*base, str(root / "reports.yaml"), "--catalog", str(REPO / "catalog")], 0),
        ([*base, str(root / "failing.yaml")], 1),
    ]
    try:
        with ThreadPoolExecutor(len(commands)) as pool:  # two cores: the three side by side
            done = list(
                pool.map(lambda c: subprocess.run(c[0], capture_output=True, text=True), commands)
            )
        for (_, expected), finished in zip(commands, done, strict=True):
            assert finished.returncode == expected, finished.stderr[-3000:]
    finally:
        stop_local_servers(runs)  # the demo's promoted model server
    return runs


@pytest.fixture(scope="module")
def dashboard(runs: Path) -> Iterator[str]:
    service = Service(
        [CLI, "dashboard", "--runs-dir", str(runs), "--port", "0"],
        r"http://127\.0\.0\.1:(\d+)/",
        "tekton-mlops dashboard",
    )
    try:
        yield f"http://127.0.0.1:{service.port}"
    finally:
        service.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    need(CHROMIUM.exists(), "chromium is not installed (hack/system-deps.sh installs it)")
    need(
        importlib.util.find_spec("playwright") is not None,
        "playwright is not installed (pip install -e '.[test]')",
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield launched
        launched.close()


class Page:
    """A browser page at one viewport that records what went wrong on it."""

    def __init__(self, browser: Any, viewport: dict[str, int], shots: Path, name: str) -> None:
        self.context = browser.new_context(viewport=viewport)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.shots, self.name = shots, name
        self.page.on(
            "console",
            lambda m: (
                self.problems.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning")
                else None
            ),
        )
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        # A request cut short by leaving the page (the icon, as a link is followed) is no fault.
        self.page.on("requestfailed", self._failed)
        self.page.on(
            "response",
            lambda r: self.problems.append(f"{r.status}: {r.url}") if r.status >= 400 else None,
        )

    def _failed(self, request: Any) -> None:
        if request.failure != "net::ERR_ABORTED":
            self.problems.append(f"failed: {request.url} {request.failure}")

    def open(self, url: str) -> Any:
        answer = self.page.goto(url)
        assert answer is not None, url
        assert answer.ok, url
        self.page.wait_for_load_state("load")
        return self.page

    def fits(self) -> None:
        """Nothing wider than the screen: a phone never scrolls sideways."""
        width, inner = self.page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
        assert width <= inner, f"{self.page.url}: {width} px wide in a {inner} px window"

    def shot(self, label: str) -> None:
        self.page.screenshot(path=str(self.shots / f"{self.name}-{label}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()
        assert self.problems == []


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("TEST_ARTIFACTS") or tmp_path) / "dashboard"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def pages(browser: Any, shots: Path, request: pytest.FixtureRequest) -> Iterator[dict[str, Page]]:
    opened = {
        "wide": Page(browser, WIDE, shots, request.node.name),
        "phone": Page(browser, PHONE, shots, request.node.name),
    }
    yield opened
    for page in opened.values():
        page.close()


def pipelinerun(runs: Path, prefix: str) -> dict[str, Any]:
    (file,) = runs.glob(f"{prefix}*/pipelinerun.yaml")
    return yaml.safe_load(file.read_text())  # type: ignore[no-any-return]


def results(runs: Path, run: str, taskrun: str) -> dict[str, str]:
    document = json.loads((runs / run / taskrun / "taskrun.yaml").read_text())
    return {r["name"]: r["value"] for r in document["status"]["results"]}


def test_the_run_list_shows_each_run_with_its_status_as_text(
    runs: Path, dashboard: str, pages: dict[str, Page]
) -> None:
    demo = pipelinerun(runs, "train-and-deploy-local-")["metadata"]["name"]
    expected = (demo, "reports", "broken")
    for label, view in pages.items():
        page = view.open(dashboard + "/")
        rows = {
            page.locator("a.run-link").nth(i).inner_text(): page.locator("tbody tr")
            .nth(i)
            .locator(".status")
            .inner_text()
            for i in range(page.locator("tbody tr").count())
        }
        # Runs another test starts in the same folder may be listed too; these three must be.
        assert {n: s.strip("\u2713\u2717 ") for n, s in rows.items() if n in expected} == {
            demo: "Completed",  # two of its tasks were skipped (when): Tekton says Completed
            "reports": "Succeeded",
            "broken": "Failed",
        }
        view.fits()
        view.shot(label)


def test_the_demo_run_has_a_node_per_task_and_a_step_s_log_opens_on_a_click(
    runs: Path, dashboard: str, pages: dict[str, Page]
) -> None:
    demo = pipelinerun(runs, "train-and-deploy-local-")
    name = demo["metadata"]["name"]
    spec = demo["status"]["pipelineSpec"]
    tasks = [t["name"] for t in spec["tasks"] + spec.get("finally", [])]
    log = (runs / name / f"{name}-train-model" / "logs" / "train.log").read_text()
    for label, view in pages.items():
        page = view.open(f"{dashboard}/runs/{name}")
        nodes = page.locator("svg.graph a.node")
        assert sorted(
            nodes.nth(i).get_attribute("data-node") for i in range(nodes.count())
        ) == sorted(tasks)
        assert "\u2713 Succeeded" in page.locator('a.node[data-node="train-model"]').text_content()
        assert "Skipped" in page.locator('a.node[data-node="rollback-model"]').text_content()
        assert page.locator("dl.facts").inner_text().count("Completed") == 1
        page.locator('a.node[data-node="train-model"]').click()
        task = page.locator("#task-train-model")
        assert task.get_attribute("open") is not None  # the graph opens the task it names
        task.locator("a.step-link").first.click()
        shown = task.locator("pre.log")
        shown.wait_for()
        assert shown.inner_text().strip() == log.strip()
        view.fits()
        view.shot(label)
    lineage = pages["wide"].open(f"{dashboard}/runs/{name}")
    lineage.locator('a.artifact[data-kind="lineage"]').filter(has_text="").nth(0).click()
    lineage.wait_for_load_state("load")
    assert lineage.locator("svg.graph a.node").count() > 0
    assert lineage.locator("table.records tbody tr").count() > 0


def test_a_failed_run_says_failed_and_shows_the_failing_step_s_log(
    runs: Path, dashboard: str, pages: dict[str, Page]
) -> None:
    for label, view in pages.items():
        page = view.open(f"{dashboard}/runs/broken")
        assert "\u2717 Failed" in page.locator("dl.facts").inner_text()
        assert "\u2717 Failed" in page.locator('a.node[data-node="build"]').text_content()
        assert "Skipped" in page.locator('a.node[data-node="test"]').text_content()
        build = page.locator("#task-build")
        assert build.get_attribute("open") is not None
        # No click needed: a failed step's log is what a failed run is opened for.
        failing = build.locator("li.step", has_text="compile")
        assert "Error" in failing.locator(".status").inner_text()
        assert "error: the compiler gave up on main.c" in failing.locator("pre.log").inner_text()
        assert "Skipped" in build.locator("li.step", has_text="package").inner_text()
        view.fits()
        view.shot(label)


def test_the_evaluation_report_opens_with_its_figures_and_the_step_s_numbers(
    runs: Path, dashboard: str, pages: dict[str, Page]
) -> None:
    metrics = json.loads(results(runs, "reports", "reports-evaluate")["metrics"])
    for label, view in pages.items():
        page = view.open(f"{dashboard}/runs/reports")
        page.locator('a.artifact[data-kind="evaluation report"]').click()
        page.wait_for_load_state("load")
        assert page.url.endswith("/workspaces/shared/model/report/report.html")
        widths = page.eval_on_selector_all(
            "img", "images => images.map(i => i.complete && i.naturalWidth)"
        )
        assert len(widths) == 5  # ROC, precision-recall, confusion, calibration, importance
        assert all(widths), widths
        shown = page.eval_on_selector_all(
            "#metrics tr", "rows => rows.slice(1).map(r => [...r.cells].map(c => c.innerText))"
        )
        assert {row[0]: float(row[1]) for row in shown} == metrics
        view.fits()  # wide tables scroll in their own box, even on a phone
        view.shot(label)


def test_the_drift_report_opens_with_its_histograms_and_the_step_s_numbers(
    runs: Path, dashboard: str, pages: dict[str, Page]
) -> None:
    found = results(runs, "reports", "reports-detect-drift")
    drifted = json.loads(found["drifted-columns"])
    for label, view in pages.items():
        page = view.open(f"{dashboard}/runs/reports")
        page.locator('a.artifact[data-kind="drift report"]').click()
        page.wait_for_load_state("load")
        assert page.locator("#drifted-share").inner_text() == found["drifted-share"]
        assert int(page.locator("#drifted-count").inner_text()) == drifted["count"]
        rows = page.eval_on_selector_all(
            "#columns tr",
            "rows => rows.slice(1).map(r => [r.cells[0].innerText, r.cells[5].innerText])",
        )
        assert [column for column, verdict in rows if verdict == "yes"] == drifted["columns"]
        sizes = page.eval_on_selector_all(
            "svg", "drawn => drawn.map(s => s.getBoundingClientRect().width)"
        )
        assert len(sizes) == drifted["count"]  # a histogram per drifted column, drawn
        assert all(size > 0 for size in sizes)
        view.fits()  # its 12-column table scrolls in its own box on a phone
        view.shot(label)


def test_a_run_page_follows_the_run_while_it_goes(
    runs: Path, dashboard: str, pages: dict[str, Page], tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    gates = tmp_path / "gates"
    gates.mkdir()
    (tmp_path / "gated.yaml").write_text(textwrap.dedent(gated_pipeline(gates)))
    process = subprocess.Popen(
        [
            CLI,
            "run",
            str(tmp_path / "gated.yaml"),
            "--run-dir",
            str(runs),
            "--host-path",
            str(gates),
            "-o",
            "none",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        until("the run has started", (runs / "gated" / "gated-first" / "logs" / "wait.log").exists)
        view = pages["wide"]
        page = view.open(f"{dashboard}/runs/gated")
        facts = page.locator("dl.facts")
        assert "Running" in facts.inner_text()
        assert "Pending" in page.locator('a.node[data-node="second"]').text_content()
        # A step's log followed while it is written.
        page.locator("#task-first a.step-link").click()
        expect(page.locator("#task-first pre.log")).to_contain_text("waiting for the first gate")
        (gates / "first").touch()
        expect(page.locator('a.node[data-node="second"] text.node-state')).to_contain_text(
            "Running", timeout=20000
        )
        expect(page.locator("#task-first pre.log")).to_contain_text("through", timeout=20000)
        (gates / "second").touch()
        expect(facts).to_contain_text("Succeeded", timeout=20000)  # no reload: the page polled
        assert process.wait(timeout=60) == 0
        view.shot("finished")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
