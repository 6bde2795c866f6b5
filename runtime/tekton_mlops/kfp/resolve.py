"""Where a task's inputs come from, evaluated at run time (KFP's driver, in a step).

The compiler describes each input as a *source*, a small JSON tree:

=================================================  ==============================================
``{"const": v}``                                   a value of the IR (run-level placeholders filled)
``{"param": "n", "type": T}``                      a pipeline param, its text form from Tekton
``{"input-artifact": "a", "type": {...}}``         a pipeline input artifact: its URI from Tekton
``{"output": "t", "key": "k", "depth": d}``        output parameter ``k`` of task ``t``
``{"artifact": "t", "key": "k", "depth": d}``      output artifact ``k`` of task ``t``
``{"item": "loop"}``                               this iteration's item of a ParallelFor
``{"collect": "loop", "of": source}``              ``source`` over every iteration (dsl.Collected)
``{"oneof": [source, ...]}``                       the first that ran (dsl.OneOf)
``{"field": [k, ...], "of": source}``              ``parseJson(...)["k"]`` (a loop item's field)
``{"status": {"group": g, "tasks": [...]}}``       PipelineTaskFinalStatus of an exit handler
``{"none": true}``                                 nothing (an optional input left out)
=================================================  ==============================================

A task at loop depth ``d`` reads the instance of a producer at depth ``p <= d`` whose key
is the first ``p`` indices of its own; deeper producers are read through ``collect``.
An output that was never produced (its task was skipped by a condition) is :data:`MISSING`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tekton_mlops.kfp.errors import LaunchError
from tekton_mlops.kfp.placeholders import RunContext, fill_run_level
from tekton_mlops.kfp.store import Key, Store
from tekton_mlops.kfp.values import NONE_TEXT, parse


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class Resolver:
    """Evaluates sources for one task instance."""

    def __init__(
        self,
        plan: Mapping[str, Any],
        store: Store,
        params: Mapping[str, str],
        statuses: Mapping[str, str],
        context: RunContext,
    ) -> None:
        self.loops: Mapping[str, Any] = plan.get("loops") or {}
        self.store = store
        self.params = params
        self.statuses = statuses
        self.context = context
        self._items: dict[tuple[str, Key], Any] = {}

    # Parameters -----------------------------------------------------------------------

    def value(self, source: Mapping[str, Any], key: Key) -> Any:
        """A parameter value, or MISSING."""
        if "const" in source:
            return self._filled(source["const"])
        if "param" in source:
            name = source["param"]
            if name not in self.params:
                raise LaunchError(f"pipeline param {name} was not passed to this step")
            text = self.params[name]
            if text == NONE_TEXT:
                return MISSING
            try:
                return parse(text, source.get("type", "STRING"))
            except ValueError as exc:
                raise LaunchError(f"pipeline param {name}: {exc}") from None
        if "output" in source:
            record = self.store.outputs(source["output"], key[: source.get("depth", 0)])
            if record is None:
                return MISSING
            parameters = record.get("parameters") or {}
            return parameters.get(source["key"], MISSING)
        if "item" in source:
            return self._item(source["item"], key)
        if "collect" in source:
            return self._collect(source, key, artifacts=False)
        if "oneof" in source:
            for option in source["oneof"]:
                found = self.value(option, key)
                if found is not MISSING:
                    return found
            return MISSING
        if "field" in source:
            return _select(self.value(source["of"], key), source["field"])
        if "status" in source:
            return self._status(source["status"])
        if "none" in source:
            return MISSING
        if "artifact" in source or "input-artifact" in source:
            raise LaunchError(f"an artifact is wired to a parameter input: {json.dumps(source)}")
        raise LaunchError(f"unknown input source {json.dumps(source)}")

    def _filled(self, value: Any) -> Any:
        if isinstance(value, str):
            return fill_run_level(value, self.context)
        if isinstance(value, list):
            return [self._filled(v) for v in value]
        if isinstance(value, dict):
            return {k: self._filled(v) for k, v in value.items()}
        return value

    # Artifacts ------------------------------------------------------------------------

    def artifacts(self, source: Mapping[str, Any], key: Key) -> Any:
        """A list of runtime artifacts (``{name, type, uri, metadata}``), or MISSING."""
        if "artifact" in source:
            record = self.store.outputs(source["artifact"], key[: source.get("depth", 0)])
            if record is None:
                return MISSING
            found = (record.get("artifacts") or {}).get(source["key"])
            return MISSING if found is None else list(found)
        if "input-artifact" in source:
            name = source["input-artifact"]
            uri = self.params.get(name, NONE_TEXT)
            if uri in (NONE_TEXT, ""):
                return MISSING
            return [{"name": name, "type": source.get("type") or {}, "uri": uri, "metadata": {}}]
        if "item" in source:
            item = self._item(source["item"], key)
            return [item] if isinstance(item, dict) else item
        if "collect" in source:
            return self._collect(source, key, artifacts=True)
        if "oneof" in source:
            for option in source["oneof"]:
                found = self.artifacts(option, key)
                if found is not MISSING:
                    return found
            return MISSING
        if "none" in source:
            return MISSING
        raise LaunchError(f"a parameter is wired to an artifact input: {json.dumps(source)}")

    # Loops ----------------------------------------------------------------------------

    def loop(self, name: str) -> Mapping[str, Any]:
        if name not in self.loops:
            raise LaunchError(f"the plan does not describe loop {name}")
        found: Mapping[str, Any] = self.loops[name]
        return found

    def items(self, name: str, prefix: Key) -> list[Any] | Any:
        """The items a loop iterates over under this key prefix, or MISSING."""
        cached = self._items.get((name, prefix))
        if cached is not None:
            return cached
        loop = self.loop(name)
        spec = loop["items"]
        if "raw" in spec:
            items: Any = self._filled(spec["raw"])
        elif loop.get("artifacts"):
            items = self.artifacts(spec, prefix)
        else:
            items = self.value(spec, prefix)
            if isinstance(items, str):
                try:
                    items = json.loads(items)
                except ValueError:
                    raise LaunchError(f"{name}: the items are not a JSON list: {items!r}") from None
        if items is MISSING:
            return MISSING
        if not isinstance(items, list):
            raise LaunchError(f"{name}: ParallelFor needs a list, got {items!r}")
        self._items[(name, prefix)] = items
        return items

    def _item(self, name: str, key: Key) -> Any:
        depth = int(self.loop(name)["depth"])
        if len(key) < depth:
            raise LaunchError(f"iteration key {key} is not inside loop {name}")
        items = self.items(name, key[: depth - 1])
        if items is MISSING:
            return MISSING
        index = key[depth - 1]
        if index >= len(items):
            raise LaunchError(f"{name} has {len(items)} items, no item {index}")
        return items[index]

    def _collect(self, source: Mapping[str, Any], key: Key, artifacts: bool) -> Any:
        name = source["collect"]
        depth = int(self.loop(name)["depth"])
        prefix = key[: depth - 1]
        items = self.items(name, prefix)
        if items is MISSING:
            return []
        gathered: list[Any] = []
        for index in range(len(items)):
            inner = prefix + (index,)
            found = (
                self.artifacts(source["of"], inner)
                if artifacts
                else self.value(source["of"], inner)
            )
            if found is MISSING:
                continue  # that iteration's producer was skipped by a condition
            if artifacts:
                gathered.extend(found)
            else:
                gathered.append(found)
        return gathered

    # Exit handlers --------------------------------------------------------------------

    def _status(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        statuses = {task: self.statuses.get(task, "None") for task in spec.get("tasks") or []}
        failed = sorted(task for task, status in statuses.items() if status == "Failed")
        state = "FAILED" if failed else "SUCCEEDED"
        status: dict[str, Any] = {
            "state": state,
            "pipelineJobResourceName": self.context.job_name,
            "pipelineTaskName": spec.get("group", ""),
            "error": {},
        }
        if failed:
            status["error"] = {"code": 2, "message": f"tasks failed: {', '.join(failed)}"}
        return status


def _select(value: Any, path: list[Any]) -> Any:
    if value is MISSING:
        return MISSING
    for step in path:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise LaunchError(f"cannot select [{step!r}] of {value!r}: not JSON") from None
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            raise LaunchError(f"{value!r} has no field {step!r}") from None
    return value
