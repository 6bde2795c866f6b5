"""The dashboard's HTTP server: read-only, on 127.0.0.1 only, over one runs folder.

:class:`Dashboard` turns a request (method, path, a few headers) into a
:class:`Response` without touching a socket, so every route and refusal is testable
as a function; :func:`make_server` binds it to a ``ThreadingHTTPServer``.

What it serves, and nothing else (anything else is 404; a method other than GET and
HEAD is 405):

- ``/`` the runs, ``/runs/<run>`` one run, ``?part=live`` the part of either page that
  changes (with an ETag: polling an unchanged run costs a 304);
- ``/runs/<run>/logs/<taskrun>/<step>`` (and ``/sidecars/``) a log's tail as a page,
  ``/api/...`` the same views as JSON;
- ``/runs/<run>/lineage/<folder>`` the lineage graph of a folder the run page lists;
- ``/files/<run>/<path>`` a file a run made: only inside the workspaces the run made
  (never a Secret's or ConfigMap's), or a TaskRun's logs; the path resolved (symlinks
  followed) must stay there, and its type must be one of ``CONTENT_TYPES``;
- ``/static/...`` the style sheet, the script and the icon, from the package.

A request whose Host is not this server's own address is refused (400), so a web page
elsewhere cannot read the runs through a DNS name rebound to 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tekton_mlops.dashboard import pages
from tekton_mlops.dashboard.lineage import read_records
from tekton_mlops.dashboard.runs import (
    ChildRun,
    LogTail,
    NotFound,
    Run,
    RunsFolder,
    Step,
    log_tail,
)

HOST = "127.0.0.1"
#: What a run's files may be served as; any other file is 404.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".log": "text/plain; charset=utf-8",
    ".csv": "text/plain; charset=utf-8",
    ".yaml": "text/plain; charset=utf-8",
    ".yml": "text/plain; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
}
STATIC_TYPES = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
#: The dashboard's own pages: its script and style sheet, nothing inline, nothing remote.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
#: A run's own files (reports a step wrote): their inline styles and images, no script,
#: and a sandbox, so a page in a run cannot act as the dashboard.
FILE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data: 'self'; "
    "base-uri 'none'; form-action 'none'; sandbox"
)
_HTML = "text/html; charset=utf-8"


@dataclass
class Response:
    status: int
    content_type: str = _HTML
    body: bytes = b""
    file: Path | None = None  # streamed instead of body: run files can be large
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return self.file.stat().st_size if self.file is not None else len(self.body)


def _static_files() -> dict[str, tuple[bytes, str]]:
    """Each static file's bytes and ETag, read once: they cannot change while serving."""
    folder = resources.files("tekton_mlops.dashboard").joinpath("static")
    found = {}
    for name in STATIC_TYPES:
        body = folder.joinpath(name).read_bytes()
        found[name] = (body, f'"{hashlib.sha256(body).hexdigest()[:16]}"')
    return found


class Dashboard:
    """The routes, over the runs in ``root``."""

    def __init__(self, root: Path) -> None:
        self.runs = RunsFolder(root)
        self.static = _static_files()
        self.allowed_hosts: set[str] = set()  # set once the port is known; empty: any

    def respond(self, method: str, target: str, headers: dict[str, str]) -> Response:
        if method not in ("GET", "HEAD"):
            return Response(
                405,
                body=pages.error_page(405, "This dashboard only reads.").encode(),
                headers={"Allow": "GET, HEAD"},
            )
        host = headers.get("host", "")
        if self.allowed_hosts and host and host.lower() not in self.allowed_hosts:
            return Response(400, body=pages.error_page(400, "Unknown host.").encode())
        split = urlsplit(target)
        query = parse_qs(split.query)
        try:
            segments = _segments(split.path)
            return self._route(segments, query, headers.get("if-none-match", ""))
        except NotFound as exc:
            return Response(404, body=pages.error_page(404, str(exc)).encode())

    def _route(self, parts: list[str], query: dict[str, list[str]], etag: str) -> Response:
        live = query.get("part") == ["live"]
        match parts:
            case []:
                return self._runs(live, etag)
            case ["favicon.ico"]:
                return self._static("favicon.svg", etag)
            case ["static", name] if name in STATIC_TYPES:
                return self._static(name, etag)
            case ["runs", run]:
                return self._run(run, live, etag)
            case ["runs", run, ("logs" | "sidecars") as kind, child, step]:
                return self._log_page(run, child, step, kind == "sidecars")
            case ["runs", run, "lineage", *folder] if folder:
                return self._lineage(run, "/".join(folder))
            case ["files", run, *path] if path:
                return self._file(run, "/".join(path))
            case ["api", "runs"]:
                return _json([asdict(s) for s in self.runs.summaries()])
            case ["api", "runs", run]:
                found = self.runs.run(run)
                view = asdict(found)
                view.pop("served")
                view["artifacts"] = [asdict(a) for a in self.runs.artifacts(found)]
                return _json(view)
            case ["api", "runs", run, ("logs" | "sidecars") as kind, child, step]:
                return self._log_json(run, child, step, kind == "sidecars")
        raise NotFound("no such page")

    # --- pages ------------------------------------------------------------------------

    def _runs(self, live: bool, etag: str) -> Response:
        tag = f'"{self.runs.fingerprint()}"'
        if live and etag == tag:
            return Response(304, headers={"ETag": tag})
        summaries = self.runs.summaries()
        now = time.time()
        if live:
            text = pages.runs_fragment(summaries, self.runs.root, now)
            return _page(text, {"ETag": tag, "X-Finished": "false"})
        return _page(pages.runs_page(summaries, self.runs.root, tag, now))

    def _run(self, name: str, live: bool, etag: str) -> Response:
        tag = f'"{self.runs.fingerprint(name)}"'
        if live and etag == tag:
            return Response(304, headers={"ETag": tag})
        run = self.runs.run(name)
        logs = self._failing_logs(run)
        artifacts = self.runs.artifacts(run)
        finished = "true" if run.summary.status.finished else "false"
        if live:
            fragment = pages.run_fragment(run, logs, artifacts)
            return _page(fragment, {"ETag": tag, "X-Finished": finished})
        return _page(pages.run_page(run, tag, logs, artifacts))

    def _failing_logs(self, run: Run) -> dict[str, LogTail]:
        """The log of each step that failed is on the page from the start: it is what a
        person opens a failed run for."""
        logs = {}
        for task in run.tasks:
            for child in task.runs:
                for step in child.steps:
                    if step.status.state == "failed":
                        logs[step.log] = self._tail(run, step)
        return logs

    def _tail(self, run: Run, step: Step) -> LogTail:
        """A step's log, through the same check as any file (its name comes from a file)."""
        try:
            return log_tail(self.file_path(run.name, step.log, run), _TAIL)
        except NotFound:
            return LogTail("", 0)  # not started yet

    def _step(
        self, run_name: str, child_name: str, step_name: str, sidecar: bool
    ) -> tuple[Run, ChildRun, Step]:
        run = self.runs.run(run_name)
        child = run.child(child_name)
        for step in child.steps:
            if step.name == step_name and step.sidecar == sidecar:
                return run, child, step
        raise NotFound(
            f"TaskRun {child_name} has no {'sidecar' if sidecar else 'step'} {step_name}"
        )

    def _log_page(self, run_name: str, child_name: str, step_name: str, sidecar: bool) -> Response:
        run, child, step = self._step(run_name, child_name, step_name, sidecar)
        return _page(pages.log_page(run, child, step, self._tail(run, step)))

    def _log_json(self, run_name: str, child_name: str, step_name: str, sidecar: bool) -> Response:
        run, _, step = self._step(run_name, child_name, step_name, sidecar)
        tail = self._tail(run, step)
        return _json(
            {
                "text": tail.text,
                "size": tail.size,
                "truncated": tail.truncated,
                "finished": step.status.finished,
                "state": step.status.state,
                "file": pages.file_url(run.name, step.log),
            }
        )

    def _lineage(self, name: str, folder: str) -> Response:
        run = self.runs.run(name)
        if not any(a.kind == "lineage" and a.path == folder for a in self.runs.artifacts(run)):
            raise NotFound(f"run {name} has no lineage folder {folder}")
        records = read_records(self.runs.root / name / folder)
        return _page(pages.lineage_page(run, folder, records))

    def _static(self, name: str, etag: str) -> Response:
        body, tag = self.static[name]
        # no-cache: the browser asks each time, and a file it holds costs a 304.
        headers = {"ETag": tag, "Cache-Control": "no-cache"}
        if etag == tag:
            return Response(304, headers=headers)
        return Response(200, STATIC_TYPES[name], body, headers=headers)

    # --- a run's files ----------------------------------------------------------------

    def _file(self, name: str, relative: str) -> Response:
        path = self.file_path(name, relative)
        return Response(
            200,
            CONTENT_TYPES[path.suffix.lower()],
            file=path,
            headers={"Content-Security-Policy": FILE_POLICY, "Cache-Control": "no-cache"},
        )

    def file_path(self, name: str, relative: str, run: Run | None = None) -> Path:
        """The file ``relative`` of run ``name`` if it may be served; NotFound otherwise."""
        missing = NotFound(f"run {name} has no file {relative} to show")
        run = run or self.runs.run(name)
        here = (self.runs.root / name).resolve()
        try:
            path = (here / relative).resolve(strict=True)
        except (OSError, RuntimeError):
            raise missing from None
        areas = [(here / area).resolve() for area in run.served]
        areas += [(here / child.folder / "logs").resolve() for t in run.tasks for child in t.runs]
        inside = any(path.is_relative_to(a) and a.is_relative_to(here) for a in areas)
        if not inside or not path.is_file() or path.suffix.lower() not in CONTENT_TYPES:
            raise missing
        return path


_TAIL = pages.LOG_TAIL_BYTES


def _segments(path: str) -> list[str]:
    """The path's segments, decoded; a dot segment, an empty one, or one that decodes to a
    slash or NUL names nothing here."""
    raw = path.split("/")[1:]
    if raw == [""]:
        return []
    decoded = [unquote(part) for part in raw]
    for part in decoded:
        if part in ("", ".", "..") or "/" in part or "\\" in part or "\0" in part:
            raise NotFound("no such page")
    return decoded


def _page(text: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        200, _HTML, text.encode(), headers={"Cache-Control": "no-store", **(headers or {})}
    )


def _json(document: Any) -> Response:
    body = json.dumps(document, indent=1).encode()
    return Response(200, "application/json", body, headers={"Cache-Control": "no-store"})


class _Handler(BaseHTTPRequestHandler):
    server: DashboardServer
    server_version = "tekton-mlops-dashboard"

    def version_string(self) -> str:
        return self.server_version

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        if self.command not in ("GET", "HEAD"):
            self.close_connection = True  # its body is never read: the connection ends here
        try:
            response = self.server.dashboard.respond(self.command, self.path, headers)
        except Exception as exc:  # noqa: BLE001 - one bad page must not stop the server
            print(f"dashboard: {self.path}: {type(exc).__name__}: {exc}", file=sys.stderr)
            response = Response(500, body=pages.error_page(500, "The page failed.").encode())
        self.send_response(response.status)
        if response.status != 304:
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(response.length))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        if response.content_type == _HTML and "Content-Security-Policy" not in response.headers:
            self.send_header("Content-Security-Policy", PAGE_POLICY)
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command == "HEAD" or response.status == 304:
            return
        if response.file is not None:
            with response.file.open("rb") as handle:
                shutil.copyfileobj(handle, self.wfile)
        else:
            self.wfile.write(response.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _answer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        """Quiet: a page polled every two seconds would fill the terminal."""


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, dashboard: Dashboard, port: int) -> None:
        super().__init__((HOST, port), _Handler)
        self.dashboard = dashboard
        self.port = int(self.server_address[1])
        dashboard.allowed_hosts = {f"{HOST}:{self.port}", f"localhost:{self.port}"}

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"


def make_server(root: Path, port: int) -> DashboardServer:
    """Bound and ready to ``serve_forever``; OSError when the port cannot be had."""
    return DashboardServer(Dashboard(root), port)
