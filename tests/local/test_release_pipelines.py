"""The release Pipelines (blue-green, shadow, A/B/n) end to end through the local executor.

Each test deploys a first version with the deploy-model CLI, then runs its Pipeline twice
with ``tekton-mlops run``: a good candidate that must end live, then a failing one that must
leave the version before it live, the candidate gone (or at no traffic) and the router's
table whole. Everything is real: signed models made by train-model and sign-artifact, their
servers and the router on 127.0.0.1, the catalog Tasks resolved through the git resolver.
What a user would check is checked: which version answers requests sent to the deployment's
URL (the router's ``x-model-version`` header), and the deployment's table.

The good candidate runs the Pipeline as samples/run-locally.yaml resolves it (git resolver),
the failing one as tests/run.yaml names it (``--catalog``). The git resolver reads a
repository at a commit: the catalog of this checkout, as it is now, is committed to a
repository of its own for it, so the tests see work not committed yet.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tekton_mlops.cli import main
from tekton_mlops.deploy import local_routes
from tekton_mlops.serving.routes import Mirror, read_table
from tests.conftest import answers_200
from tests.integration.test_deploy import train_and_sign
from tests.integration.test_local_strategies import answered_by
from tests.local.test_catalog_runs import CATALOG, PROJECT_URL

pytestmark = pytest.mark.integration

NAME = "iris"
STUMP = '{"n_estimators": 1, "max_depth": 1}'


@pytest.fixture(scope="module")
def catalog_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout's catalog, as it is now, committed to a repository of its own."""
    repo = tmp_path_factory.mktemp("catalog-repo")
    shutil.copytree(CATALOG, repo / "catalog")
    for argv in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.name=tests", "-c", "user.email=tests@localhost", "commit", "-qm", "now"],
    ):
        subprocess.run(["git", "-C", str(repo), *argv], check=True, capture_output=True)
    return repo


@pytest.fixture(scope="module")
def models(datasets, keys, tmp_path_factory) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    """Signed iris models: a good one and a weak one (a single decision stump)."""
    root = tmp_path_factory.mktemp("release-models")
    made = {"good": root / "good", "weak": root / "weak"}
    train_and_sign(datasets["iris"], keys, made["good"], "logistic-regression",
                   '{"max_iter": 500}')  # fmt: skip
    train_and_sign(datasets["iris"], keys, made["weak"], "random-forest-classifier", STUMP)
    return made


@pytest.fixture
def labelled(datasets, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """iris with its true classes, a folder with one CSV: a golden set and labelled rows."""
    folder = tmp_path / "labelled"
    folder.mkdir()
    shutil.copy(datasets["iris"], folder / "iris.csv")
    return folder


@dataclass
class Release:
    """A deployment in the claim the Pipelines bind, and how to run them on it."""

    tekton: Any
    state: Path
    args: list[str]
    runs: Path  # the executor's run directory

    def run(self, relative: str, *params: str, workspaces: Sequence[str] = ()) -> Any:
        """``tekton-mlops run`` of a catalog file, with params and workspaces NAME=DIR."""
        text = (CATALOG / relative).read_text()
        pairs = [part for param in params for part in ("--param", param)]
        pairs += [part for bound in workspaces for part in ("--workspace", bound)]
        return self.tekton(text, *self.args, *pairs)

    def first_version(self, run_step: Any, keys: Any, model: Path, *args: str) -> str:
        """Deploy v1 with the deploy-model CLI, as a user would before the first release."""
        done = run_step(
            "deploy-model", "--target=local", f"--name={NAME}", "--version=v1",
            f"--model-uri={model.as_uri()}", f"--public-key={keys.public}",
            f"--state-dir={self.state}", *args,
        )  # fmt: skip
        assert done.exit_code == 0, done.output
        return str(done.results["url"])

    def table(self) -> tuple[dict[str, int], Mirror | None]:
        """The weights and mirror, after checking the table whole: it parses, every version
        it routes to has its server, ready, and no other server is left."""
        table, _ = read_table(self.state / NAME / "router" / "table.json")
        folders = {p.name for p in (self.state / NAME / "versions").iterdir()}
        assert set(table.backends) == folders
        for url in table.backends.values():
            assert answers_200(f"{url}/v2/models/{NAME}/ready")
        return dict(table.weights), table.mirror

    def decisions(self, run: Any) -> dict[str, dict[str, Any]]:
        """The lineage records the checks of ``run`` left in its reports workspace."""
        reports = self.runs / run.object["metadata"]["name"] / "workspaces" / "reports"
        return {
            record.name.removesuffix(".intoto.json"): json.loads(record.read_text())
            for record in reports.glob("*/.mlops/lineage/*.intoto.json")
        }


@pytest.fixture
def release(tekton, catalog_repo, keys, models, tmp_path) -> Iterator[Release]:  # type: ignore[no-untyped-def]
    secrets = tmp_path / "secrets"
    (secrets / "model-verification-key").mkdir(parents=True)
    shutil.copy(keys.public, secrets / "model-verification-key" / "public.pem")
    (secrets / "model-signing-key").mkdir()  # the samples sign each decision with it
    shutil.copy(keys.private, secrets / "model-signing-key" / "private.pem")
    # The claim model-deployments, as the executor keeps claims beside its run directory.
    state = tmp_path / "pvcs" / "model-deployments"
    args = [
        "--catalog", str(CATALOG),
        "--git-mirror", f"{PROJECT_URL}={catalog_repo}",
        "--param", "catalog-revision=HEAD",
        "--param", "target=local",
        "--param", f"name={NAME}",
        "--secrets-dir", str(secrets),
        "--host-path", str(models["good"].parent),  # the file:// models, outside workspaces
    ]  # fmt: skip
    try:
        yield Release(tekton, state, args, tmp_path / "runs")
    finally:
        local_routes.stop(state, NAME)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def on_record(model: Path, keys: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """The decisions ``lineage show`` finds beside a model: step, status and results."""
    shown = CliRunner().invoke(main, ["lineage", "show", str(model), f"--public-key={keys.public}",
                                      "-o", "json"])  # fmt: skip
    assert shown.exit_code == 0, shown.output
    return [
        (run["step"], run["status"], extra["annotations"])
        for run in json.loads(shown.stdout)["steps"]
        for extra in run["byproducts"]
        if extra["name"] == "decision"
    ]


def served(url: str, requests: int = 20) -> Counter[str]:
    return answered_by(url, requests)


# --- blue-green ------------------------------------------------------------------------------


def test_blue_green_promotes_a_good_candidate_and_rolls_back_a_failing_one(  # type: ignore[no-untyped-def]
    release, run_step, keys, models, labelled
) -> None:
    url = release.first_version(run_step, keys, models["weak"], "--strategy=blue-green")
    golden = [f"golden={labelled}"]
    good = release.run(
        "pipeline/blue-green-release/0.1/samples/run-locally.yaml",
        f"model-uri={models['good'].as_uri()}", "version=v2", "golden-expected-column=target",
        "golden-min-agreement=0.9", 'slos={"error_rate": "<=0.01"}', "slo-requests=50",
        workspaces=golden,
    )  # fmt: skip
    assert good.exit_code == 0, good.log
    assert (good.results["passed"], good.results["live-version"]) == ("true", "v2")
    assert good.results["url"] == url  # the router stays the deployment's address
    assert served(url) == {"v2": 20}
    assert release.table() == ({"v1": 0, "v2": 100}, None)  # v1 kept for a way back
    # Each decision is on record: the golden set by its digest, the candidate by its address.
    decided = release.decisions(good)
    assert set(decided) == {"check-golden", "check-slo"}
    read = decided["check-golden"]["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert read[0]["digest"] == {"sha256": sha256_of(labelled / "iris.csv")}
    # ... and beside the candidate, signed (the sample binds the signing key), with the verdict.
    recorded = on_record(models["good"], keys)
    golden_agreement = good.results["golden-agreement"]
    assert any(step == "check-golden" and status == "verified" and results["passed"] == "true"
               and results["agreement"] == golden_agreement
               for step, status, results in recorded)  # fmt: skip
    assert any(s == "check-slo" and status == "verified" for s, status, _ in recorded)

    failing = release.run(
        "pipeline/blue-green-release/0.1/tests/run.yaml",
        f"model-uri={models['weak'].as_uri()}", workspaces=golden,
    )  # fmt: skip
    assert failing.exit_code == 0, failing.log
    assert (failing.results["passed"], failing.results["live-version"]) == ("false", "v2")
    assert float(failing.results["golden-agreement"]) < 0.9
    # tests/run.yaml binds no signing key: the failed verdict is on record, unsigned.
    assert any(step == "check-golden" and status == "unsigned" and results["passed"] == "false"
               and results["agreement"] == failing.results["golden-agreement"]
               for step, status, results in on_record(models["weak"], keys))  # fmt: skip
    assert "promote" in failing.skipped
    assert "rollback" not in failing.skipped
    assert served(url) == {"v2": 20}
    assert release.table() == ({"v1": 0, "v2": 100}, None)  # v3 removed, its server stopped


# --- shadow ------------------------------------------------------------------------------------


def test_shadow_promotes_a_candidate_that_answers_alike_and_rolls_back_one_that_does_not(  # type: ignore[no-untyped-def]
    release, run_step, keys, models
) -> None:
    url = release.first_version(run_step, keys, models["good"], "--strategy=blue-green")
    # The same model under a new version answers every mirrored request as v1 does.
    good = release.run(
        "pipeline/shadow-release/0.1/samples/run-locally.yaml",
        f"model-uri={models['good'].as_uri()}", "version=v2", "slo-requests=60",
        "min-mirrored-requests=60", "wait-seconds=20",
    )  # fmt: skip
    assert good.exit_code == 0, good.log
    assert (good.results["passed"], good.results["live-version"]) == ("true", "v2")
    assert good.results["agreement"] == "1"
    assert json.loads(good.results["mirror-summary"])["requests"] == 60
    assert served(url) == {"v2": 20}
    assert release.table() == ({"v1": 0, "v2": 100}, None)  # mirroring over, v1 kept
    assert set(release.decisions(good)) == {"check-slo", "check-mirror"}
    assert any(step == "check-mirror" and status == "verified" and results["agreement"] == "1"
               for step, status, results in on_record(models["good"], keys))  # fmt: skip

    failing = release.run(
        "pipeline/shadow-release/0.1/tests/run.yaml", f"model-uri={models['weak'].as_uri()}"
    )
    assert failing.exit_code == 0, failing.log
    assert (failing.results["passed"], failing.results["live-version"]) == ("false", "v2")
    assert failing.results["agreement"] == "0"  # every answer differed from v2's
    assert "promote" in failing.skipped
    assert "rollback" not in failing.skipped
    assert served(url) == {"v2": 20}
    assert release.table() == ({"v1": 0, "v2": 100}, None)  # no mirror, v3 removed


# --- A/B/n -------------------------------------------------------------------------------------


def test_abn_routes_to_a_better_candidate_and_retires_a_worse_one(  # type: ignore[no-untyped-def]
    release, run_step, keys, models, labelled
) -> None:
    url = release.first_version(run_step, keys, models["weak"], "--strategy=abn")
    rows = [f"dataset={labelled}"]  # accuracy on labelled rows decides, not a latency
    better = release.run(
        "pipeline/abn-release/0.1/samples/run-locally.yaml",
        f"model-uri={models['good'].as_uri()}", "version=v2", "candidate-weight=90",
        "target-column=target", 'slos={"error_rate": "<=0.01"}', "slo-requests=30",
        workspaces=rows,
    )  # fmt: skip
    assert better.exit_code == 0, better.log
    assert better.results["winner"] == "candidate", better.results["winner-reason"]
    assert any(step == "check-slo" and status == "verified" and results.get("winner") == "candidate"
               for step, status, results in on_record(models["good"], keys))  # fmt: skip
    assert (better.results["passed"], better.results["live-version"]) == ("true", "v2")
    assert json.loads(better.results["versions"]) == {"v1": 10, "v2": 90}
    split = served(url, 60)
    assert set(split) <= {"v1", "v2"}
    assert split["v2"] > 40  # 90 % of 60: fewer than 41 has a chance under 1e-6
    assert release.table() == ({"v1": 10, "v2": 90}, None)

    worse = release.run(
        "pipeline/abn-release/0.1/tests/run.yaml", f"model-uri={models['weak'].as_uri()}",
        workspaces=rows,
    )  # fmt: skip
    assert worse.exit_code == 0, worse.log
    assert worse.results["winner"] != "candidate"
    assert (worse.results["passed"], worse.results["live-version"]) == ("false", "v2")
    assert "route" in worse.skipped
    assert "retire" not in worse.skipped
    assert "versions" not in worse.results  # the split did not change
    assert set(served(url, 20)) <= {"v1", "v2"}
    assert release.table() == ({"v1": 10, "v2": 90}, None)  # v3 retired, its server stopped


def test_abn_refuses_a_bad_candidate_weight_before_anything_is_deployed(  # type: ignore[no-untyped-def]
    release, run_step, keys, models, labelled
) -> None:
    url = release.first_version(run_step, keys, models["weak"], "--strategy=abn")
    table = (release.state / NAME / "router" / "table.json").read_bytes()
    refused = release.run(
        "pipeline/abn-release/0.1/tests/run.yaml", f"model-uri={models['good'].as_uri()}",
        "candidate-weight=150", workspaces=[f"dataset={labelled}"],
    )  # fmt: skip
    assert refused.exit_code == 1
    assert refused.condition["reason"] == "Failed"
    assert "candidate-weight must be a whole percent from 1 to 100, not '150'" in refused.log
    assert set(refused.skipped) >= {"deploy", "compare", "route", "retire"}
    assert (release.state / NAME / "router" / "table.json").read_bytes() == table
    assert served(url) == {"v1": 20}
