"""fetch-data from HTTP (a real server on 127.0.0.1) and from file:// paths."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def test_http_download_is_verified(run_step, http_root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    base, root = http_root
    body = b"x,y\n" + b"1,2\n" * 100_000
    (root / "data.csv").write_bytes(body)
    outcome = run_step(
        "fetch-data",
        f"--source={base}/data.csv",
        f"--output={tmp_path}/out",
        f"--sha256={hashlib.sha256(body).hexdigest()}",
    )
    assert outcome.exit_code == 0, outcome.output
    assert (tmp_path / "out" / "data.csv").read_bytes() == body


def test_http_not_found(run_step, http_root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    base, _ = http_root
    outcome = run_step("fetch-data", f"--source={base}/nope.csv", f"--output={tmp_path}/out")
    assert outcome.exit_code == 1
    assert f"error: {base}/nope.csv: HTTP 404" in outcome.output
    assert not (tmp_path / "out").exists()


def test_http_mismatch_writes_nothing(run_step, http_root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    base, root = http_root
    (root / "data.csv").write_bytes(b"a\n")
    outcome = run_step(
        "fetch-data",
        f"--source={base}/data.csv",
        f"--output={tmp_path}/out",
        f"--sha256={'1' * 64}",
    )
    assert outcome.exit_code == 1
    assert not (tmp_path / "out").exists()


def test_file_directory_tree(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "src"
    (source / "nested").mkdir(parents=True)
    (source / "a.csv").write_text("a\n1\n")
    (source / "nested" / "b.csv").write_text("b\n2\n")
    outcome = run_step("fetch-data", f"--source={source.as_uri()}", f"--output={tmp_path}/out")
    assert outcome.exit_code == 0, outcome.output
    assert (tmp_path / "out" / "nested" / "b.csv").read_text() == "b\n2\n"
    assert outcome.results["file-count"] == "2"


def test_overwrite(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "a.csv"
    source.write_text("new\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.csv").write_text("old\n")
    refused = run_step("fetch-data", f"--source={source.as_uri()}", f"--output={out}")
    assert refused.exit_code == 1
    assert "not empty (set overwrite to replace its content)" in refused.output
    assert (out / "stale.csv").exists()
    replaced = run_step(
        "fetch-data", f"--source={source.as_uri()}", f"--output={out}", "--overwrite=true"
    )
    assert replaced.exit_code == 0, replaced.output
    assert sorted(p.name for p in out.iterdir()) == [".mlops", "a.csv"]
