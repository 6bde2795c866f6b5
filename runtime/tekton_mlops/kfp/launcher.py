"""What each step of a compiled KFP pipeline does (``tekton-mlops kfp launch ...``).

KFP on Argo runs a *driver* (resolve inputs, decide whether the task runs) and a
*launcher* around the user's container (fill placeholders, run it, collect and publish
its outputs). Here the same work is done by steps of the task itself, reading and
writing the run's store in the ``kfp`` workspace (``store.py``):

- ``python``: a lightweight component: executor input built, the embedded function
  run by ``python -m kfp.dsl.executor_main`` (the ``kfp`` package of the runtime image,
  nothing installed at run time), outputs published.
- ``prepare`` / ``publish``: around a container component's own image: its command and
  args resolved into step results the next step runs, then its output files collected.
- ``import`` / ``publish``: ``dsl.importer``: the URI resolved for ``fetch-data``, then the
  fetched content published as the artifact.
- ``iterations``: a ParallelFor (and a condition inside one): the iteration keys that run,
  as the array result a matrix fans out over.
- ``condition``: a condition outside loops, as a ``true``/``false`` result for ``when``.
- ``outputs``: the pipeline's own outputs, as results of a ``finally`` task.
- ``slots``: a sidecar holding a ParallelFor iteration's slot (``slots.py``) while the
  steps of a container component or importer run.

Before a retry (Tekton passes the attempt, ``$(context.task.retry-count)``) the first
step waits ``set_retry``'s backoff, which Tekton's ``retries`` does not have.

Outputs follow KFP's launcher: a value in ``executor_output.json`` wins over the output
file; files are parsed by the declared type; an artifact keeps its URI and gets the
metadata the component reported, plus a sha256 digest the consumer verifies.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tekton_mlops.kfp import cel, slots
from tekton_mlops.kfp.errors import LaunchError
from tekton_mlops.kfp.placeholders import (
    PlaceholderError,
    RunContext,
    fill_inputs,
    resolve_command,
)
from tekton_mlops.kfp.resolve import MISSING, Resolver
from tekton_mlops.kfp.store import Key, Store, key_text, parse_key
from tekton_mlops.kfp.values import FINAL_STATUS, TASK_CONFIG, check, to_text

log = logging.getLogger("tekton_mlops.kfp")

#: Results of one TaskRun share 4096 bytes; a little is left for Tekton's own framing.
RESULT_BUDGET = 3584
ENCODED = "b64:"


def decode(text: str) -> str:
    """A value the compiler carried base64-encoded (it held ``$(``, which Tekton would read
    as a variable)."""
    if text.startswith(ENCODED):
        return base64.b64decode(text[len(ENCODED) :]).decode()
    return text


@dataclass
class Invocation:
    """What Tekton passed to one launcher step."""

    store: Store
    key: Key
    params: dict[str, str]
    statuses: dict[str, str]
    results: dict[str, Path]
    task_run: str = ""
    task_uid: str = ""
    run_uid: str = ""
    plan: dict[str, Any] = field(default_factory=dict)
    #: Which attempt this is: 0, then 1 for the first retry ...
    attempt: int = 0
    #: The pod's id when a slots sidecar holds this instance's ParallelFor slots.
    slots_held: str = ""

    def context(self) -> RunContext:
        started = datetime.fromtimestamp(self.store.started(), UTC)
        return RunContext(
            pipeline_name=str(self.plan.get("pipeline", "")),
            job_name=self.store.run,
            job_uid=self.run_uid or self.store.run,
            task_name=str(self.plan.get("kfp_task", self.plan.get("task", ""))),
            task_uid=self.task_uid or self.task_run,
            pipeline_root=str(self.store.workspace),
            workspace_path=str(self.store.workspace_dir()),
            create_time=started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )

    def resolver(self) -> Resolver:
        return Resolver(self.plan, self.store, self.params, self.statuses, self.context())


# Executor input -------------------------------------------------------------------------


def _instance(inv: Invocation) -> Path:
    return inv.store.instance(str(inv.plan["task"]), inv.key)


def executor_input(inv: Invocation) -> dict[str, Any]:
    """KFP's ExecutorInput for this instance, inputs resolved, outputs placed in the store."""
    plan = inv.plan
    resolver = inv.resolver()
    instance = _instance(inv)
    values: dict[str, Any] = {}
    for name, spec in (plan.get("parameters") or {}).items():
        value = resolver.value(spec["source"], inv.key) if "source" in spec else MISSING
        kind = str(spec.get("type", "STRING"))
        if value is MISSING:
            if "default" in spec:
                value = resolver.value({"const": spec["default"]}, inv.key)
            elif spec.get("optional") or kind in (FINAL_STATUS, TASK_CONFIG):
                continue
            else:
                why = _why_missing(spec.get("source") or {})
                raise LaunchError(f"input {name} has no value: {why}")
        values[name] = value
    for name, spec in (plan.get("parameters") or {}).items():
        if name not in values:
            continue
        value = fill_inputs(values[name], values)
        kind = str(spec.get("type", "STRING"))
        if kind not in (FINAL_STATUS, TASK_CONFIG, "") and value is not None:
            try:
                value = check(value, kind)
            except ValueError as exc:
                raise LaunchError(f"input {name}: {exc}") from None
        values[name] = value
    artifacts: dict[str, Any] = {}
    for name, spec in (plan.get("artifacts") or {}).items():
        found = resolver.artifacts(spec["source"], inv.key) if "source" in spec else MISSING
        if found is MISSING:
            if spec.get("optional"):
                continue
            why = _why_missing(spec.get("source") or {})
            raise LaunchError(f"input {name} has no artifact: {why}")
        chosen = found if spec.get("list") else found[:1]
        for artifact in chosen:
            verify(artifact)
        artifacts[name] = {"artifacts": [_runtime(a) for a in chosen]}
    outputs = plan.get("outputs") or {}
    return {
        "inputs": {"parameterValues": values, "artifacts": artifacts},
        "outputs": {
            "parameters": {
                name: {"outputFile": str(instance / "parameters" / name)}
                for name in outputs.get("parameters") or {}
            },
            "artifacts": {
                name: {
                    "artifacts": [
                        {
                            "name": name,
                            "type": spec.get("type") or {},
                            "uri": str(instance / "artifacts" / name),
                            "metadata": {},
                        }
                    ]
                }
                for name, spec in (outputs.get("artifacts") or {}).items()
            },
            "outputFile": str(instance / "executor_output.json"),
        },
    }


def _runtime(artifact: Mapping[str, Any]) -> dict[str, Any]:
    """An artifact as the executor input carries it (our digest stays in the store)."""
    return {k: artifact[k] for k in ("name", "type", "uri", "metadata") if k in artifact}


def _why_missing(source: Mapping[str, Any]) -> str:
    producer = source.get("output") or source.get("artifact")
    if producer:
        return f"task {producer} did not produce {source.get('key')} (it was skipped or failed)"
    if "param" in source:
        return f"pipeline param {source['param']} was not given"
    return "nothing produced it"


def verify(artifact: Mapping[str, Any]) -> None:
    """An input artifact still has the digest its producer recorded."""
    expected = artifact.get("digest")
    if not expected:
        return
    actual = digest_of(Path(str(artifact.get("uri", ""))))
    if actual and actual != expected:
        raise LaunchError(
            f"artifact {artifact.get('uri')} changed since it was produced: {actual} is not "
            f"the recorded {expected}"
        )


def digest_of(path: Path) -> str:
    """sha256 of a file, or the manifest root digest of a folder; empty when absent."""
    from tekton_mlops.digests import as_digest, build_manifest, sha256_file

    if path.is_file():
        return as_digest(sha256_file(path))
    if path.is_dir():
        return build_manifest(path).root
    return ""


# Steps ----------------------------------------------------------------------------------


def _save(inv: Invocation) -> Path:
    """A fresh instance folder with the plan and what Tekton passed, for the later steps
    of the task (they get only the store, the run and the task's name)."""
    instance = inv.store.prepare_instance(str(inv.plan["task"]), inv.key)
    (instance / "plan.json").write_text(json.dumps(inv.plan, indent=1))
    invocation = {
        "params": inv.params,
        "statuses": inv.statuses,
        "task_run": inv.task_run,
        "task_uid": inv.task_uid,
        "run_uid": inv.run_uid,
    }
    (instance / "invocation.json").write_text(json.dumps(invocation))
    return instance


def _start(inv: Invocation) -> tuple[Path, dict[str, Any]]:
    instance = _save(inv)
    data = executor_input(inv)
    (instance / "executor_input.json").write_text(json.dumps(data, indent=1))
    log.info("task %s%s: inputs %s", inv.plan["task"], _at(inv.key), _summary(data))
    return instance, data


def _at(key: Key) -> str:
    return f" iteration {key_text(key)}" if key else ""


def _summary(data: Mapping[str, Any]) -> str:
    inputs = data.get("inputs", {})
    shown = {k: _short(v) for k, v in (inputs.get("parameterValues") or {}).items()}
    for name, group in (inputs.get("artifacts") or {}).items():
        shown[name] = ", ".join(a.get("uri", "") for a in group.get("artifacts") or [])
    return json.dumps(shown) if shown else "none"


def _short(value: Any) -> Any:
    text = json.dumps(value)
    return value if len(text) <= 120 else text[:117] + "..."


def _guarded_off(inv: Invocation) -> bool:
    """Whether a condition around this leaf (checked here, inside finally) is false."""
    guards = inv.plan.get("guards") or []
    if not guards:
        return False
    resolver = inv.resolver()
    for guard in guards:
        if not _holds(guard, resolver, inv.key):
            inv.store.prepare_instance(str(inv.plan["task"]), inv.key)
            log.info("task %s skipped: %s is false", inv.plan["task"], guard.get("name"))
            return True
    return False


def run_python(inv: Invocation, source: str) -> None:
    """A lightweight component, run with the installed KFP executor."""
    if _guarded_off(inv):
        return
    wait_before_retry(inv)
    with _slots(inv):
        _run_python(inv, source)


def _run_python(inv: Invocation, source: str) -> None:
    instance, data = _start(inv)
    _check_kfp()
    _check_packages(inv.plan.get("packages") or [])
    function = str(inv.plan["function"])
    with tempfile.TemporaryDirectory(prefix="kfp-component-") as folder:
        module = Path(folder) / "ephemeral_component.py"
        module.write_text(source)
        command = [
            sys.executable,
            "-m",
            "kfp.dsl.executor_main",
            "--component_module_path",
            str(module),
            "--executor_input",
            json.dumps(data),
            "--function_to_execute",
            function,
        ]
        # As KFP's own command does: the SDK skips its compile-time checks in a component.
        env = {**os.environ, "_KFP_RUNTIME": "true"}
        done = subprocess.run(command, env=env, cwd=folder, check=False)
    if done.returncode != 0:
        raise LaunchError(f"component {function} exited with code {done.returncode}")
    publish(inv, instance, data)


def _check_kfp() -> None:
    """The function runs under KFP's executor: the image must hold the kfp package."""
    import importlib.util

    if importlib.util.find_spec("kfp") is None:
        raise LaunchError(
            "the runtime image lacks the kfp package, which runs lightweight Python "
            "components: build the image's kfp variant (make image-kfp) and pass it with "
            "--runtime-image"
        )


def _check_packages(requirements: list[str]) -> None:
    """Steps install nothing: what ``packages_to_install`` names must be in the image."""
    from importlib import metadata

    from packaging.requirements import InvalidRequirement, Requirement

    missing = []
    for text in requirements:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            log.warning("packages_to_install: cannot read %r; not checked", text)
            continue
        try:
            version = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            missing.append(text)
            continue
        if requirement.specifier and not requirement.specifier.contains(version, prereleases=True):
            log.warning("packages_to_install asks for %s; the image has %s", text, version)
    if missing:
        raise LaunchError(
            f"the runtime image lacks {', '.join(missing)} (packages_to_install): steps "
            "install nothing at run time; add them to the image"
        )


def prepare(inv: Invocation, command_result: Path | None, args_result: Path | None) -> None:
    """A container component's command and args, resolved, as the main step's argv."""
    wait_before_retry(inv)
    _await_slots(inv)
    _, data = _start(inv)
    container = inv.plan.get("container") or {}
    context = inv.context()
    try:
        command = resolve_command(list(container.get("command") or []), data, context)
        args = resolve_command(list(container.get("args") or []), data, context)
    except PlaceholderError as exc:
        raise LaunchError(str(exc)) from None
    for path, value in ((command_result, command), (args_result, args)):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
    log.info("runs %s", json.dumps(command + args)[:2000])


def publish_step(inv: Invocation) -> None:
    """After a container component: its outputs published from what it wrote."""
    instance = inv.store.instance(str(inv.plan["task"]), inv.key)
    data = json.loads((instance / "executor_input.json").read_text())
    publish(inv, instance, data)


def publish(inv: Invocation, instance: Path, data: Mapping[str, Any]) -> None:
    """Collect outputs as KFP's launcher does and record them for consumers."""
    plan = inv.plan
    outputs = plan.get("outputs") or {}
    reported: dict[str, Any] = {}
    output_file = instance / "executor_output.json"
    if output_file.is_file():
        try:
            reported = json.loads(output_file.read_text()) or {}
        except ValueError:
            raise LaunchError(f"{output_file} is not JSON") from None
    parameters: dict[str, Any] = {}
    values = reported.get("parameterValues") or {}
    for name, spec in (outputs.get("parameters") or {}).items():
        kind = str(spec.get("type", "STRING"))
        if name in values:
            raw = values[name]
        else:
            path = instance / "parameters" / name
            if not path.is_file():
                raise LaunchError(f"output parameter {name} was not written (expected {path})")
            raw = path.read_text()
            if kind != "STRING":
                raw = raw.strip()
        try:
            parameters[name] = check(raw, kind)
        except ValueError as exc:
            raise LaunchError(f"output parameter {name}: {exc}") from None
    artifacts: dict[str, list[dict[str, Any]]] = {}
    given = reported.get("artifacts") or {}
    for name, group in (data.get("outputs", {}).get("artifacts") or {}).items():
        artifact = dict(group["artifacts"][0])
        update = (given.get(name) or {}).get("artifacts") or []
        if update:
            if update[0].get("uri"):
                artifact["uri"] = update[0]["uri"]
            artifact["metadata"] = {
                **artifact.get("metadata", {}),
                **(update[0].get("metadata") or {}),
            }
            custom = update[0].get("custom_path")
            if custom:
                artifact["uri"] = custom
        path = Path(str(artifact["uri"]))
        digest = digest_of(path) if path.is_absolute() else ""
        if digest:
            artifact["digest"] = digest
        artifacts[name] = [artifact]
    record = {
        "task": plan.get("kfp_task", plan.get("task")),
        "iteration": key_text(inv.key),
        "parameters": parameters,
        "artifacts": artifacts,
    }
    inv.store.write_outputs(str(plan["task"]), inv.key, record)
    texts = {name: to_text(v) for name, v in parameters.items()}
    texts |= {name: a[0]["uri"] for name, a in artifacts.items()}
    write_results(inv, {plan.get("results", {}).get(k, k): v for k, v in texts.items()})
    log.info("task %s%s: outputs %s", plan["task"], _at(inv.key), json.dumps(texts)[:2000])


def write_results(inv: Invocation, texts: Mapping[str, str]) -> None:
    """Tekton results, as far as the 4096 bytes of a TaskRun's results allow."""
    used = 0
    for name, text in texts.items():
        path = inv.results.get(name)
        if path is None:
            continue
        size = len(text.encode())
        if used + size > RESULT_BUDGET:
            log.warning(
                "result %s (%d bytes) does not fit the TaskRun's results; it stays in the "
                "workspace store only",
                name,
                size,
            )
            continue
        used += size
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


# Retries and ParallelFor slots -----------------------------------------------------------


def backoff_delay(backoff: Mapping[str, Any], attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (1 for the first): the backoff grows by
    its factor per retry, up to its maximum."""
    if attempt < 1:
        return 0.0
    duration = float(backoff.get("duration") or 0)
    factor = float(backoff.get("factor") or 2.0)
    maximum = float(backoff.get("max") or 3600)
    try:
        grown = duration * factor ** (attempt - 1)
    except OverflowError:
        grown = maximum
    return min(grown, maximum)


def wait_before_retry(inv: Invocation) -> None:
    """A retry waits ``set_retry``'s backoff first (Tekton retries at once)."""
    backoff = inv.plan.get("backoff")
    if not backoff or inv.attempt < 1:
        return
    delay = backoff_delay(backoff, inv.attempt)
    log.info(
        "task %s%s: retry %d waits %gs before the component runs (set_retry backoff %gs, "
        "factor %g, at most %gs)",
        inv.plan["task"],
        _at(inv.key),
        inv.attempt,
        delay,
        float(backoff.get("duration") or 0),
        float(backoff.get("factor") or 2.0),
        float(backoff.get("max") or 3600),
    )
    time.sleep(delay)


def _slots(inv: Invocation) -> AbstractContextManager[None]:
    """Hold this instance's ParallelFor slots (none outside limited loops)."""

    def waiting(message: str) -> None:
        log.info("task %s%s: %s", inv.plan["task"], _at(inv.key), message)

    return slots.held(inv.store, slots.limits(inv.plan), inv.key, waiting)


def hold_slots(inv: Invocation, pod: str) -> None:
    """The slots sidecar: take the slots, tell the pod's steps, hold them until stopped
    (Tekton stops sidecars once the steps are done; the kernel frees the locks)."""
    marker = inv.store.slots_marker(pod)
    failed = marker.with_name(marker.name + ".error")
    try:
        with _slots(inv):
            marker.write_text("held")
            log.info("task %s%s: slots held", inv.plan["task"], _at(inv.key))
            while True:
                time.sleep(3600)
    except Exception as exc:
        # The first step waits for the marker: tell it why there will be none.
        failed.write_text(str(exc) or type(exc).__name__)
        raise
    finally:
        marker.unlink(missing_ok=True)


def _await_slots(inv: Invocation) -> None:
    """The first step of a task whose slots sidecar takes its slots: wait until it has."""
    if not inv.slots_held:
        return
    marker = inv.store.slots_marker(inv.slots_held)
    failed = marker.with_name(marker.name + ".error")
    told = False
    while not marker.is_file():
        if failed.is_file():
            raise LaunchError(f"the slots sidecar failed: {failed.read_text()}")
        if not told:
            log.info("task %s%s: waiting for a ParallelFor slot", inv.plan["task"], _at(inv.key))
            told = True
        time.sleep(slots.POLL)


# Importer -------------------------------------------------------------------------------


def import_prepare(inv: Invocation, source_result: Path, output_result: Path) -> None:
    """The URI an importer fetches and where ``fetch-data`` puts it, as step results."""
    wait_before_retry(inv)
    _await_slots(inv)
    instance = _save(inv)
    importer = inv.plan["importer"]
    uri = inv.resolver().value(importer["uri"], inv.key)
    if uri is MISSING or not isinstance(uri, str) or not uri:
        raise LaunchError("the importer has no artifact URI")
    if uri.startswith("/"):
        uri = Path(uri).as_uri()
    target = instance / "artifacts" / f"{importer['output']}.fetched"
    if target.exists():
        shutil.rmtree(target)
    source_result.parent.mkdir(parents=True, exist_ok=True)
    source_result.write_text(uri)
    output_result.write_text(str(target))
    log.info("importing %s", uri)


def import_publish(inv: Invocation) -> None:
    """The fetched content as the importer's output artifact."""
    instance = inv.store.instance(str(inv.plan["task"]), inv.key)
    importer = inv.plan["importer"]
    fetched = instance / "artifacts" / f"{importer['output']}.fetched"
    uri = str(inv.resolver().value(importer["uri"], inv.key))
    content = [p for p in sorted(fetched.iterdir()) if p.name != ".mlops"]
    # One object fetched: the artifact is that file, as KFP's importer hands consumers the
    # object itself; a prefix or folder stays a folder.
    if len(content) == 1 and content[0].is_file() and not uri.endswith("/"):
        path = content[0]
    else:
        path = fetched
    resolver = inv.resolver()
    metadata = resolver.value({"const": importer.get("metadata") or {}}, inv.key)
    metadata = _fill_metadata(metadata, inv)
    artifact = {
        "name": importer["output"],
        "type": importer.get("type") or {},
        "uri": str(path),
        "metadata": {**metadata, "source_uri": uri},
        "digest": digest_of(path),
    }
    record = {
        "task": inv.plan.get("kfp_task"),
        "iteration": key_text(inv.key),
        "parameters": {},
        "artifacts": {importer["output"]: [artifact]},
    }
    inv.store.write_outputs(str(inv.plan["task"]), inv.key, record)
    write_results(inv, {inv.plan.get("results", {}).get(importer["output"], "artifact"): str(path)})


def _fill_metadata(metadata: Any, inv: Invocation) -> Any:
    """Importer metadata may name the importer's inputs: ``{{$.inputs.parameters['x']}}``."""
    from tekton_mlops.kfp.placeholders import fill

    resolver = inv.resolver()
    values = {
        name: resolver.value(spec["source"], inv.key)
        for name, spec in (inv.plan.get("parameters") or {}).items()
        if "source" in spec
    }
    data = {"inputs": {"parameterValues": {k: v for k, v in values.items() if v is not MISSING}}}
    context = inv.context()

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return fill(value, data, context)
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {walk(k): walk(v) for k, v in value.items()}
        return value

    return walk(metadata)


# Control flow ---------------------------------------------------------------------------


def _parent_keys(inv: Invocation) -> list[Key]:
    parent = inv.plan.get("parent")
    if not parent:
        return [()]
    if "static" in parent:
        return [parse_key(k) for k in parent["static"]]
    found = inv.store.iterations(str(parent["driver"]))
    if found is None:
        raise LaunchError(f"driver {parent['driver']} recorded no iterations")
    return found


def iterations(inv: Invocation) -> None:
    """The keys a loop (or a condition inside a loop) lets run."""
    plan = inv.plan
    resolver = inv.resolver()
    keys: list[Key] = []
    for prefix in _parent_keys(inv):
        if "loop" in plan:
            items = resolver.items(str(plan["loop"]), prefix)
            if items is MISSING:
                continue
            keys.extend(prefix + (index,) for index in range(len(items)))
        elif _holds(plan, resolver, prefix):
            keys.append(prefix)
    inv.store.write_iterations(str(plan["task"]), keys)
    texts = [key_text(k) for k in keys]
    log.info("%s: %d iteration(s) %s", plan["task"], len(keys), ", ".join(texts)[:1000])
    path = inv.results.get("iterations")
    if path is not None:
        text = json.dumps(texts)
        if len(text.encode()) > RESULT_BUDGET:
            raise LaunchError(
                f"{plan['task']}: {len(keys)} iterations do not fit a Tekton result "
                f"({len(text)} bytes); Tekton fans a matrix out to 256 runs by default"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _holds(plan: Mapping[str, Any], resolver: Resolver, key: Key) -> bool:
    operands: dict[str, Any] = {}
    for name, source in (plan.get("operands") or {}).items():
        value = resolver.value(source, key)
        operands[name] = None if value is MISSING else value
    try:
        return cel.evaluate(str(plan["condition"]), operands)
    except cel.ConditionError as exc:
        raise LaunchError(f"{plan.get('task', plan.get('name'))}: {exc}") from None


def condition(inv: Invocation) -> None:
    """A condition outside loops: ``true`` or ``false`` for the ``when`` of its tasks."""
    holds = _holds(inv.plan, inv.resolver(), ())
    log.info("%s: %s is %s", inv.plan["task"], inv.plan["condition"], str(holds).lower())
    write_results(inv, {"status": "true" if holds else "false"})


def outputs(inv: Invocation, run_status: str) -> None:
    """The pipeline's outputs, once every task has finished."""
    if run_status not in ("Succeeded", "Completed"):
        # Empty results rather than none: a missing pipeline result would make Tekton report
        # CouldntGetPipelineResult and hide why the run failed.
        log.info("the run did not succeed (%s): no pipeline outputs", run_status)
        write_results(inv, {name: "" for name in inv.results})
        return
    resolver = inv.resolver()
    texts: dict[str, str] = {}
    for name, spec in (inv.plan.get("outputs") or {}).items():
        if spec.get("artifact"):
            found = resolver.artifacts(spec["source"], ())
            if found is MISSING:
                raise LaunchError(f"pipeline output {name} was not produced")
            uris = [a["uri"] for a in found]
            texts[name] = json.dumps(uris) if spec.get("list") else uris[0]
        else:
            value = resolver.value(spec["source"], ())
            if value is MISSING:
                raise LaunchError(f"pipeline output {name} was not produced")
            texts[name] = to_text(value)
    write_results(inv, {inv.plan.get("results", {}).get(k, k): v for k, v in texts.items()})
    log.info("pipeline outputs %s", json.dumps(texts)[:2000])
