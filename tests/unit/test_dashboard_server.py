"""The dashboard's HTTP side: its routes, what it refuses to serve, and its command."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tekton_mlops.cli import main
from tekton_mlops.dashboard.cli import dashboard as dashboard_command
from tekton_mlops.dashboard.server import PAGE_POLICY, Dashboard, make_server
from tests.conftest import REPO
from tests.unit.test_dashboard_runs import finished_run, pipelinerun, write_run


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    here = finished_run(root)
    made = write_run(
        root,
        pipelinerun(
            "made",
            [{"name": "fetch", "taskRef": {"name": "fetch-data"}}],
            workspaces=[
                {"name": "shared", "volumeClaimTemplate": {"spec": {}}},
                {"name": "signing-key", "secret": {"secretName": "k"}},
            ],
        ),
    )
    report = made / "workspaces" / "shared" / "model" / "report"
    report.mkdir(parents=True)
    (report / "report.html").write_text("<h1>report</h1>")
    (report / "roc.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (report / "model.onnx").write_bytes(b"onnx")
    key = made / "workspaces" / "signing-key"
    key.mkdir()
    (key / "private.pem").write_text("-----BEGIN PRIVATE KEY-----")
    (key / "key.json").write_text("{}")
    (tmp_path / "outside.html").write_text("not the run's")
    (report / "out.html").symlink_to(tmp_path / "outside.html")
    (report / "key.json").symlink_to(key / "key.json")
    (here / "done-train" / "results").mkdir()
    elsewhere = tmp_path / "elsewhere"
    finished_run(elsewhere)
    (root / "linked").symlink_to(elsewhere / "done")  # a run that is not in the folder
    return root


def get(app: Dashboard, target: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    response = app.respond("GET", target, {k.replace("_", "-"): v for k, v in headers.items()})
    body = response.file.read_bytes() if response.file is not None else response.body
    return response.status, {"Content-Type": response.content_type, **response.headers}, body


def test_the_pages_of_a_run(runs: Path) -> None:
    app = Dashboard(runs)
    status, _, body = get(app, "/")
    assert status == 200
    assert b'href="/runs/done"' in body
    assert b"Completed</span>" in body
    status, _, body = get(app, "/runs/done")
    assert status == 200
    assert body.count(b'class="node ') == 4
    assert b'id="task-train"' in body
    status, headers, body = get(app, "/runs/done/logs/done-train/fit")
    assert status == 200
    assert b"fitting" in body
    status, headers, body = get(app, "/api/runs/done/logs/done-train/export")
    assert json.loads(body)["text"] == "exported\n"
    assert headers["Content-Type"] == "application/json"
    assert [r["name"] for r in json.loads(get(app, "/api/runs")[2])] == ["done", "made"]
    view = json.loads(get(app, "/api/runs/done")[2])
    assert [t["name"] for t in view["tasks"]] == ["fetch", "train", "deploy", "report"]
    status, headers, _ = get(app, "/static/dashboard.js")
    assert (status, headers["Content-Type"]) == (200, "text/javascript; charset=utf-8")
    assert get(app, "/favicon.ico")[1]["Content-Type"] == "image/svg+xml"


def test_a_static_file_the_browser_holds_costs_a_304(runs: Path) -> None:
    app = Dashboard(runs)
    status, headers, body = get(app, "/static/dashboard.css")
    assert status == 200
    assert body
    again = get(app, "/static/dashboard.css", if_none_match=headers["ETag"])
    assert again[0] == 304
    assert again[1]["ETag"] == headers["ETag"]
    assert get(app, "/static/dashboard.css", if_none_match='"stale"')[0] == 200


def test_the_live_part_answers_304_while_nothing_changed(runs: Path) -> None:
    app = Dashboard(runs)
    status, headers, body = get(app, "/runs/done?part=live")
    assert status == 200
    assert headers["X-Finished"] == "true"
    assert not body.startswith(b"<!DOCTYPE")  # the part, not the page
    assert get(app, "/runs/done?part=live", if_none_match=headers["ETag"])[0] == 304
    (runs / "done" / "done-fetch" / "taskrun.yaml").touch()
    assert get(app, "/runs/done?part=live", if_none_match=headers["ETag"])[0] == 200
    status, headers, _ = get(app, "/?part=live")
    assert get(app, "/?part=live", if_none_match=headers["ETag"])[0] == 304


def test_a_run_s_files_are_served_from_its_own_workspaces_and_logs_only(runs: Path) -> None:
    app = Dashboard(runs)
    status, headers, body = get(app, "/files/made/workspaces/shared/model/report/report.html")
    assert (status, body) == (200, b"<h1>report</h1>")
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert "sandbox" in headers["Content-Security-Policy"]  # a run's page cannot script us
    assert (
        get(app, "/files/made/workspaces/shared/model/report/roc.png")[1]["Content-Type"]
        == "image/png"
    )
    assert get(app, "/files/done/done-train/logs/fit.log")[2] == b"fitting\n"
    refused = [
        "/files/made/workspaces/signing-key/private.pem",  # a Secret's copy
        "/files/made/workspaces/signing-key/key.json",
        "/files/made/workspaces/shared/model/report/key.json",  # a link to it
        "/files/made/workspaces/shared/model/report/out.html",  # a link out of the run
        "/files/made/workspaces/shared/model/report/model.onnx",  # not a type we show
        "/files/made/workspaces/shared/model/report",  # a folder
        "/files/made/pipelinerun.yaml",  # not in a workspace or a log folder
        "/files/done/done-train/results/../logs/fit.log",
        "/files/done/%2e%2e/done/done-train/logs/fit.log",
        "/files/done/done-train%2flogs/fit.log",
        "/files/done/..%2f..%2f..%2fetc/passwd",
        "/files/../etc/passwd",
        "/files/done//etc/passwd",
        "/files/missing/x.html",
        "/files/linked/done-train/logs/fit.log",
        "/runs/linked",
        "/runs/done/lineage/workspaces",  # not a lineage folder the run lists
        "/runs/..",
        "/runs/done/logs/done-train/nope",
        "/static/../server.py",
        "/nothing",
    ]
    for target in refused:
        assert get(app, target)[0] == 404, target


def test_only_reading_methods_and_this_server_s_own_host(runs: Path) -> None:
    app = Dashboard(runs)
    app.allowed_hosts = {"127.0.0.1:9097", "localhost:9097"}
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        response = app.respond(method, "/", {})
        assert (response.status, response.headers["Allow"]) == (405, "GET, HEAD")
    assert get(app, "/", host="127.0.0.1:9097")[0] == 200
    assert get(app, "/", host="LOCALHOST:9097")[0] == 200
    assert get(app, "/", host="attacker.example:9097")[0] == 400  # a rebound DNS name


@pytest.fixture
def served(runs: Path) -> Iterator[str]:
    server = make_server(runs, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.url
    finally:
        server.shutdown()
        server.server_close()


def test_over_a_socket_on_loopback_with_the_security_headers(served: str) -> None:
    assert served.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(served) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Security-Policy"] == PAGE_POLICY
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert b"done" in answer.read()
    head = urllib.request.Request(served + "runs/done", method="HEAD")
    with urllib.request.urlopen(head) as answer:
        assert int(answer.headers["Content-Length"]) > 0
        assert answer.read() == b""
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(served, data=b"x", method="POST"))
    assert refused.value.code == 405


def test_the_command_names_a_missing_folder_and_a_port_in_use(tmp_path: Path) -> None:
    missing = CliRunner().invoke(main, ["dashboard", "--runs-dir", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2
    assert f"no runs folder {tmp_path / 'nowhere'}" in missing.output
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        taken = CliRunner().invoke(
            main, ["dashboard", "--runs-dir", str(tmp_path), "--port", str(port)]
        )
    assert taken.exit_code == 1
    assert taken.output.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_make_demo_and_the_readme_give_the_command_and_url_it_serves() -> None:
    command = "tekton-mlops dashboard --runs-dir .demo/runs"
    port = next(p for p in dashboard_command.params if p.name == "port")
    url = f"http://127.0.0.1:{port.default}/"
    demo = (REPO / "hack" / "demo.sh").read_text()
    readme = (REPO / "README.md").read_text()
    dashboard = readme[readme.index("## Dashboard") :]
    assert command in demo
    assert url in demo
    assert f"{command}   # after `make demo`; then open {url}" in dashboard
