"""read-config: training settings from a config file in git at one revision, over defaults.

With an output folder (the optional ``output`` workspace), the step writes there
``settings.json``, every setting as the results carry it, and its lineage record
``.mlops/lineage/read-config.intoto.json``: the repository at the resolved commit and the
config file's sha256 in, ``settings.json`` out. A step that only emits results has no other
place a user would look for it; without the workspace nothing is written.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tekton_mlops.contract import StepContext
from tekton_mlops.errors import DataError, ParameterError, SourceError
from tekton_mlops.lineage import Artifact
from tekton_mlops.params import load_schema, python_name, validate
from tekton_mlops.results import ResultValue

SETTINGS_FILE = "settings.json"


@dataclass(frozen=True)
class Params:
    repo_url: str
    revision: str
    config_path: str
    output: str
    dataset_uri: str
    dataset_sha256: str
    target_column: str
    estimator: str
    hyperparameters: dict[str, Any]
    seed: int
    thresholds: dict[str, str]
    model_destination: str
    deploy_target: str
    model_name: str
    slos: dict[str, str]


def config_keys() -> list[str]:
    """The keys a config file may set: the params marked x-config."""
    return [n for n, p in load_schema("read-config").properties.items() if p.get("x-config")]


def parse_config(text: bytes, where: str) -> dict[str, Any]:
    """The config file's settings, checked by the same schema as the params."""
    import yaml

    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise DataError(f"{where}: not YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(document, dict):
        raise DataError(f"{where}: must be a mapping of settings")
    known = config_keys()
    unknown = sorted(set(document) - set(known))
    if unknown:
        raise DataError(
            f"{where}: unknown setting(s) {', '.join(map(str, unknown))}; known: {', '.join(known)}"
        )
    raw = {k: v if isinstance(v, str) else json.dumps(v) for k, v in document.items()}
    try:
        checked = validate(load_schema("read-config"), raw)
    except ParameterError as exc:
        problems = "; ".join(str(v).removeprefix("--") for v in exc.violations)
        raise DataError(f"{where}: {problems}") from None
    return {k: checked[python_name(k)] for k in document}


def _write_settings(
    output: Path, settings: dict[str, ResultValue], inputs: list[Artifact], ctx: StepContext
) -> None:
    from tekton_mlops.storage.publish import atomic_write_text

    path = output / SETTINGS_FILE
    text = json.dumps(settings, indent=2, sort_keys=True) + "\n"
    atomic_write_text(path, text)
    digest = hashlib.sha256(text.encode()).hexdigest()
    ctx.write_lineage(output, inputs, [Artifact("settings", path.resolve().as_uri(), digest)])


def run(params: Params, ctx: StepContext) -> dict[str, ResultValue]:
    settings = {k.replace("_", "-"): v for k, v in asdict(params).items()}
    git_url = git_commit = config_digest = ""
    inputs: list[Artifact] = []
    if params.output:
        from tekton_mlops.storage.publish import check_writable_directory

        check_writable_directory(Path(params.output))  # before the repository is fetched
    if params.repo_url:
        from tekton_mlops.gitsource import read_at_revision

        found = read_at_revision(params.repo_url, params.revision or "HEAD", params.config_path)
        where = f"{params.repo_url}@{found.commit[:12]}:{params.config_path}"
        if found.content is None:
            raise SourceError(f"{where}: no such file at that revision")
        overrides = parse_config(found.content, where)
        settings.update(overrides)
        git_url, git_commit = params.repo_url, found.commit
        config_hex = hashlib.sha256(found.content).hexdigest()
        config_digest = "sha256:" + config_hex
        inputs = [
            Artifact("repository", f"git+{params.repo_url}", found.commit, "gitCommit"),
            Artifact("config", f"git+{params.repo_url}@{found.commit}#{params.config_path}",
                     config_hex),
        ]  # fmt: skip
        ctx.log.info("config %s sets %s", where, ", ".join(sorted(overrides)) or "nothing")
    if not settings["dataset-uri"]:
        raise DataError("no dataset-uri: set it in the config file or as a param")
    if not settings["target-column"]:
        raise DataError("no target-column: set it in the config file or as a param")
    if settings["deploy-target"] and not settings["model-destination"]:
        raise DataError("deploy-target needs a model-destination to deploy from")
    keys = config_keys()
    results: dict[str, ResultValue] = {
        key: value
        if isinstance(value, str)
        else json.dumps(value, separators=(",", ":"), sort_keys=True)
        for key, value in settings.items()
        if key in keys
    }
    if params.output:
        _write_settings(Path(params.output), results, inputs, ctx)
    return {
        **results,
        "config-digest": config_digest,
        "CHAINS-GIT_URL": git_url,
        "CHAINS-GIT_COMMIT": git_commit,
    }
