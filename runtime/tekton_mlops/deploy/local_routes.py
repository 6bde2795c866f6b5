"""Local deployment strategies: versions of one model behind a router (blue-green, mirror, A/B/n).

A deployment ``<state>/<name>/`` holds one ``tekton-mlops serve`` per version and one
``tekton-mlops route serve`` in front of them, each in a session of its own so that
it outlives the step that started it::

    <state>/<name>/versions/<version>/   model/, url, pid, server.log
    <state>/<name>/router/               table.json, url, pid, router.log, table.mirror.jsonl

The router's URL is the deployment's URL; each answer names the version that served
it (``x-model-version``). Every change of traffic is one atomic rewrite of table.json,
and each operation returns once the router reports that table in force, so the change
is whole when the caller moves on. Each operation first checks what it is asked
(unknown versions, weights, a version that is not ready): bad input raises
ParameterError (exit 2), a candidate that does not come up raises DeployError (exit 1),
and in both cases the table, and the traffic, are as they were.

Strategies (``state`` and ``name`` left out)::

    deploy_version("v1", model)          # the first version takes all traffic
    # blue-green: the candidate beside the live version with no traffic, then all at once
    deploy_version("v2", model2); switch("v2"); switch("v1")  # rollback; retire("v2")
    # shadow: copies of live requests to the candidate, its answers recorded
    deploy_version("v3", model3); mirror("v3", 10); mirror_summary()
    promote_mirror()                     # or rollback_mirror(): mirroring stops, v3 stops
    # A/B/n, sticky by a request header
    set_weights({"v1": 50, "v2": 30, "v3": 20}, sticky_header="x-user")

A version that lost its traffic stays deployed (an instant switch back) until
``retire``; ``stop`` ends the router and every version.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tekton_mlops.deploy import local
from tekton_mlops.deploy.kserve import DeployError
from tekton_mlops.errors import ParameterError, Violation
from tekton_mlops.serving.routes import (
    KEEP,
    MODEL,
    VERSION,
    Mirror,
    Table,
    TableError,
    parse_table,
    read_table,
    records_path,
    write_table,
)

STEP = "deploy-model"  # whose parameters the violations name
ROUTER_START_SECONDS = 30.0
IN_FORCE_SECONDS = 10.0


@dataclass(frozen=True)
class Routing:
    """A deployment as it stands: what a step reports."""

    name: str
    url: str  # the router: the deployment's URL
    versions: dict[str, str]  # version -> its own server's URL
    weights: dict[str, int]
    sticky_header: str
    mirror: Mirror | None
    records: Path  # the mirror's records

    @property
    def live(self) -> tuple[str, ...]:
        """Versions with traffic, the most first."""
        return tuple(sorted((v for v, w in self.weights.items() if w), key=self._rank))

    @property
    def primary(self) -> str:
        """The version with the most traffic ("" when nothing is deployed)."""
        return self.live[0] if self.live else ""

    def _rank(self, version: str) -> tuple[int, int]:
        return -self.weights[version], list(self.weights).index(version)


def _router_slot(state: Path, name: str) -> local.Slot:
    return local.Slot(state / name / "router")


def _version_slot(state: Path, name: str, version: str) -> local.Slot:
    return local.Slot(state / name / "versions" / version)


def _table_path(state: Path, name: str) -> Path:
    return _router_slot(state, name).folder / "table.json"


def _refuse(problems: list[Violation]) -> None:
    if problems:
        raise ParameterError(STEP, problems)


def _check_names(name: str, version: str | None = None) -> None:
    problems = []
    if not MODEL.fullmatch(name):
        problems.append(Violation("name", name, "a model name is letters, digits and ._-"))
    if version is not None and not VERSION.fullmatch(version):
        problems.append(Violation("version", version, "a version is 1-63 letters, digits, ._-"))
    _refuse(problems)


@contextlib.contextmanager
def _locked(state: Path, name: str) -> Iterator[None]:
    """One operation at a time on a deployment: two Pipelines must not interleave writes."""
    folder = state / name
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _table(state: Path, name: str) -> Table | None:
    path = _table_path(state, name)
    if not path.is_file():
        return None
    try:
        return read_table(path)[0]
    except TableError as exc:
        raise DeployError(f"{name}: the routing table is damaged: {exc}") from None


def _deployed(state: Path, name: str) -> Table:
    table = _table(state, name)
    if table is None:
        raise DeployError(f"{name}: no local deployment with versions under {state}")
    return table


def _known(table: Table, version: str, param: str = "version") -> None:
    if version not in table.backends:
        known = ", ".join(table.backends)
        _refuse([Violation(param, version, f"unknown version (deployed: {known})")])


def _ready_or_fail(table: Table, version: str, what: str) -> None:
    url = table.backends[version]
    if not local.ready(url, table.model):
        raise DeployError(
            f"{table.model}: version {version} at {url} is not ready; {what} did not happen "
            f"and traffic stays as it was ({_weights_text(table)})"
        )


def _weights_text(table: Table) -> str:
    return " ".join(f"{v}={w}" for v, w in table.weights.items())


def _routing(state: Path, name: str, table: Table | None) -> Routing:
    router = _router_slot(state, name)
    return Routing(
        name=name,
        url=router.url if table is not None and router.running else "",
        versions=dict(table.backends) if table else {},
        weights=dict(table.weights) if table else {},
        sticky_header=table.sticky_header if table else "",
        mirror=table.mirror if table else None,
        records=records_path(_table_path(state, name)),
    )


# The router process ------------------------------------------------------------------------


def _status(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{url}/router/status", timeout=2) as response:
            document: dict[str, Any] = json.loads(response.read())
            return document
    except (OSError, ValueError):
        return None


def _start_router(state: Path, name: str, port: int) -> str:
    """Start the router on the table in place; its URL once it answers."""
    router = _router_slot(state, name)
    ready_file = router.folder / "url.partial"
    ready_file.unlink(missing_ok=True)
    with (router.folder / "router.log").open("ab") as log:
        command = [
            sys.executable, "-m", "tekton_mlops", "route", "serve",
            f"--table={_table_path(state, name)}", f"--port={port}", f"--ready-file={ready_file}",
        ]  # fmt: skip
        # A session of its own: the router outlives this step, as the deployment does.
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    (router.folder / "pid").write_text(str(process.pid))
    deadline = time.monotonic() + ROUTER_START_SECONDS
    while not (ready_file.is_file() and _status(ready_file.read_text().strip()) is not None):
        if process.poll() is not None or time.monotonic() > deadline:
            local.stop(router)
            tail = (router.folder / "router.log").read_text(errors="replace").strip()[-400:]
            raise DeployError(f"the router of {name} did not start: {tail}")
        time.sleep(0.05)
    ready_file.rename(router.folder / "url")
    return router.url


def _previous_port(router: local.Slot) -> int:
    """The port the router had, so that a restarted router keeps the deployment's URL."""
    url = router.url
    return int(url.rsplit(":", 1)[1]) if url else 0


def _put_in_force(state: Path, name: str, table: Table, old: Table | None, port: int) -> None:
    """Write ``table`` and wait until the router routes by it; on failure put back ``old``."""
    path = _table_path(state, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    router = _router_slot(state, name)
    digest = write_table(path, table)
    try:
        if not router.running:
            _start_router(state, name, port or _previous_port(router))
        else:
            os.kill(router.pid, signal.SIGHUP)  # read it now, not at the next check
        deadline = time.monotonic() + IN_FORCE_SECONDS
        while (status := _status(router.url)) is None or status.get("table_digest") != digest:
            if time.monotonic() > deadline:
                raise DeployError(
                    f"{name}: the router at {router.url} did not take the new table within "
                    f"{IN_FORCE_SECONDS:g} s (see {router.folder}/router.log); it was put back"
                )
            time.sleep(0.01)
    except BaseException:
        if old is not None:
            write_table(path, old)
        else:
            path.unlink(missing_ok=True)
        raise


def _stop_version(state: Path, name: str, version: str) -> None:
    slot = _version_slot(state, name, version)
    local.stop(slot)
    shutil.rmtree(slot.folder, ignore_errors=True)


# Operations -------------------------------------------------------------------------------


def status(state: Path, name: str) -> Routing:
    """The deployment as it stands (no versions when nothing is deployed)."""
    _check_names(name)
    return _routing(state, name, _table(state, name))


def check_split(
    state: Path, name: str, version: str, weights: Mapping[str, int], sticky_header: str
) -> None:
    """Whether deploying ``version`` and then splitting by ``weights`` (empty: as they are,
    the new version with none, all of it when first) and ``sticky_header`` would make a table
    the router takes: checked before any server starts. Raises ParameterError."""
    _check_names(name, version)
    table = _table(state, name)
    backends = dict(table.backends) if table is not None else {}
    # The new version's URL is known only once its server runs; any URL checks the rest.
    backends[version] = "http://127.0.0.1:1"
    current = dict(table.weights) if table is not None else {}
    split = dict(weights) or {**current, version: 0 if current else 100}
    try:
        parse_table({"model": name, "backends": backends, "weights": split,
                     "sticky_header": sticky_header})  # fmt: skip
    except TableError as exc:
        raise ParameterError(STEP, exc.violations) from None


def deploy_version(
    state: Path, name: str, version: str, model_dir: Path, *, port: int = 0, router_port: int = 0
) -> Routing:
    """Start ``version`` from a verified model directory beside the deployed ones, with no
    traffic; the first version of a deployment takes all of it (and starts the router).

    ``port`` is the version's server's (0: any free one), ``router_port`` the router's
    when it starts. A version that does not become ready is stopped and removed, and the
    table is unchanged.
    """
    _check_names(name, version)
    with _locked(state, name):
        table = _table(state, name)
        if table is not None and version in table.backends:
            rule = f"is already deployed (deployed: {', '.join(table.backends)}); retire it first"
            _refuse([Violation("version", version, rule)])
        if not (model_dir / "model.onnx").is_file():
            raise DeployError(f"{model_dir}: no model.onnx (a verified model directory)")
        slot = _version_slot(state, name, version)
        try:
            local.launch(slot, name, model_dir, port, version)
            if table is None:
                new = parse_table(
                    {"model": name, "backends": {version: slot.url}, "weights": {version: 100}}
                )
            else:
                new = table.changed(backends={**table.backends, version: slot.url})
            _put_in_force(state, name, new, table, router_port)
        except BaseException:
            local.stop(slot)
            shutil.rmtree(slot.folder, ignore_errors=True)
            raise
        return _routing(state, name, new)


def switch(state: Path, name: str, version: str) -> Routing:
    """Blue-green: all traffic to ``version`` and none to the others, in one table write.

    Switching back to the previous version is the rollback, as instant as the switch.
    Switching to the mirror's version ends the mirroring (it is live now).
    """
    _check_names(name)
    with _locked(state, name):
        table = _deployed(state, name)
        _known(table, version)
        _ready_or_fail(table, version, f"the switch to {version}")
        mirrored = table.mirror is not None and table.mirror.version == version
        new = table.changed(weights={version: 100}, mirror=None if mirrored else KEEP)
        _put_in_force(state, name, new, table, 0)
        return _routing(state, name, new)


def set_weights(
    state: Path, name: str, weights: Mapping[str, int], sticky_header: str | None = None
) -> Routing:
    """A/B/n: traffic split by ``weights`` (integer percents summing to 100; versions left
    out get 0), by a hash of ``sticky_header``'s value when given ("" for random)."""
    _check_names(name)
    with _locked(state, name):
        table = _deployed(state, name)
        try:
            new = table.changed(weights=weights, sticky_header=sticky_header)
        except TableError as exc:
            raise ParameterError(STEP, exc.violations) from None
        for version in new.live:
            _ready_or_fail(table, version, "the new split")
        _put_in_force(state, name, new, table, 0)
        return _routing(state, name, new)


def mirror(state: Path, name: str, version: str, percent: float) -> Routing:
    """Shadow: copy ``percent`` percent of live inference requests to ``version`` (which
    has no traffic); clients get the live answers, the copies' are recorded."""
    _check_names(name)
    with _locked(state, name):
        table = _deployed(state, name)
        _known(table, version, "mirror")
        try:
            new = table.changed(mirror=Mirror(version, percent))
        except TableError as exc:
            raise ParameterError(STEP, exc.violations) from None
        _ready_or_fail(table, version, "the mirroring")
        _put_in_force(state, name, new, table, 0)
        return _routing(state, name, new)


def promote_mirror(state: Path, name: str) -> Routing:
    """The mirror's version becomes live (all traffic) and the mirroring stops; the old
    live version stays deployed with no traffic until retired."""
    _check_names(name)
    with _locked(state, name):
        table = _deployed(state, name)
        if table.mirror is None:
            raise DeployError(f"{name}: no mirror to promote ({_weights_text(table)})")
        candidate = table.mirror.version
        _ready_or_fail(table, candidate, "the promotion")
        new = table.changed(weights={candidate: 100}, mirror=None)
        _put_in_force(state, name, new, table, 0)
        return _routing(state, name, new)


def rollback_mirror(state: Path, name: str) -> Routing:
    """The mirroring stops and the mirror's version is stopped and removed."""
    _check_names(name)
    with _locked(state, name):
        table = _deployed(state, name)
        if table.mirror is None:
            raise DeployError(f"{name}: no mirror to roll back ({_weights_text(table)})")
        candidate = table.mirror.version
        new = table.changed(
            backends={v: u for v, u in table.backends.items() if v != candidate},
            weights={v: w for v, w in table.weights.items() if v != candidate},
            mirror=None,
        )
        _put_in_force(state, name, new, table, 0)
        _stop_version(state, name, candidate)
        return _routing(state, name, new)


def retire(state: Path, name: str, version: str) -> Routing:
    """Remove a version that has no traffic and is not the mirror, and stop its server
    (requests it is still answering finish first)."""
    _check_names(name)
    with _locked(state, name):
        table = _deployed(state, name)
        _known(table, version)
        if table.weights[version]:
            rule = f"has weight {table.weights[version]}; switch its traffic away first"
            _refuse([Violation("version", version, rule)])
        if table.mirror is not None and table.mirror.version == version:
            _refuse([Violation("version", version, "is the mirror; roll the mirror back")])
        new = table.changed(
            backends={v: u for v, u in table.backends.items() if v != version},
            weights={v: w for v, w in table.weights.items() if v != version},
        )
        _put_in_force(state, name, new, table, 0)
        _stop_version(state, name, version)
        return _routing(state, name, new)


def stop(state: Path, name: str) -> list[str]:
    """Stop the router and every version; what was running ("router", versions)."""
    _check_names(name)
    with _locked(state, name):
        stopped = ["router"] if local.stop(_router_slot(state, name)) else []
        versions = state / name / "versions"
        for folder in sorted(versions.iterdir()) if versions.is_dir() else []:
            if local.stop(local.Slot(folder)):
                stopped.append(folder.name)
        # No table, no versions: a later deploy starts a new deployment.
        _table_path(state, name).unlink(missing_ok=True)
        return stopped


def remaining_weights(weights: Mapping[str, int], gone: Collection[str]) -> dict[str, int] | None:
    """The weights once ``gone`` are taken out: the versions left keep their shares, scaled
    back to 100 (largest remainders first); None when no version with traffic would be left.

    A version without traffic stays without: taking one version out never makes an untested
    candidate live, which would be a release decision rather than a removal.
    """
    kept = {v: w for v, w in weights.items() if v not in gone}
    total = sum(kept.values())
    if not total:
        return None
    exact = {v: w * 100 / total for v, w in kept.items()}
    scaled = {v: int(share) for v, share in exact.items()}
    order = sorted(exact, key=lambda v: (scaled[v] - exact[v], list(exact).index(v)))
    for version in order[: 100 - sum(scaled.values())]:
        scaled[version] += 1
    return scaled


def cut_out(state: Path, name: str, versions: Collection[str]) -> tuple[list[str], bool]:
    """Take ``versions`` out of service at once: out of the table in one write (the others'
    traffic scaled back to 100, a mirror to one of them stopped), then their servers stopped.
    When no version with traffic would be left, the router and every version stop.

    Returns the versions taken out and whether the router stopped. Version folders stay,
    with the records of what they served.
    """
    _check_names(name)
    with _locked(state, name):
        table = _table(state, name)
        gone = [v for v in (table.backends if table else {}) if v in versions]
        if table is None or not gone:
            return [], False
        weights = remaining_weights(table.weights, gone)
        if weights is None:
            router = local.stop(_router_slot(state, name))  # clients first, then the servers
            _table_path(state, name).unlink(missing_ok=True)
            gone = list(table.backends)
        else:
            mirrored = table.mirror is not None and table.mirror.version in gone
            new = table.changed(
                backends={v: u for v, u in table.backends.items() if v in weights},
                weights=weights,
                mirror=None if mirrored else KEEP,
            )
            _put_in_force(state, name, new, table, 0)
            router = False
        for version in gone:
            local.stop(_version_slot(state, name, version))
        return gone, router


def mirror_summary(state: Path, name: str, version: str = "") -> dict[str, Any]:
    """What the mirror's records say (see serving.mirror.summarize), for one mirror
    version when ``version`` is given."""
    from tekton_mlops.serving.mirror import summarize

    _check_names(name)
    records = records_path(_table_path(state, name))
    return summarize(records, (lambda r: r["mirror"] == version) if version else None)
