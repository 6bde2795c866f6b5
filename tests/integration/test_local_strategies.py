"""Local deployment strategies (deploy/local_routes.py): blue-green, mirroring, A/B/n, end to end.

Real ``tekton-mlops serve`` processes, one per version, behind a real ``tekton-mlops route
serve``, all started by the library as the deploy-model step will start them; models are
trained by train-model. Clients talk to the deployment's URL (the router) only, and
check which version answered by the ``x-model-version`` header and the model_version
its server puts in the answer.
"""

from __future__ import annotations

import http.client
import os
import signal
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tekton_mlops.deploy import local_routes
from tekton_mlops.deploy.kserve import DeployError
from tekton_mlops.errors import ParameterError
from tests.conftest import answers_200
from tests.integration.routing import infer_body, train

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def models(datasets, tmp_path_factory) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    """Verified model directories as deploy-model hands them over: two models, one broken."""
    root = tmp_path_factory.mktemp("strategy-models")
    broken = root / "broken"
    broken.mkdir()
    (broken / "model.onnx").write_bytes(b"not an ONNX model")
    return {
        "lr": train(datasets["iris"], root / "lr", "logistic-regression", '{"max_iter": 500}'),
        "forest": train(
            datasets["iris"], root / "forest", "random-forest-classifier", '{"n_estimators": 20}'
        ),  # fmt: skip
        "broken": broken,
    }


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "deployments"
    yield folder
    local_routes.stop(folder, "iris")


def answered_by(url: str, requests: int = 20, user: str = "") -> Counter[str]:
    """Which versions answered ``requests`` requests to the deployment (all must be 200)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    served: Counter[str] = Counter()
    for n in range(requests):
        headers = {"x-user": user} if user else {}
        connection.request("POST", "/v2/models/iris/infer", infer_body(n), headers)
        response = connection.getresponse()
        answer: Any = response.read()
        assert response.status == 200, answer
        version = response.getheader("x-model-version") or ""
        assert f'"model_version":"{version}"'.encode() in answer  # its server says the same
        served[version] += 1
    connection.close()
    return served


def table_bytes(state: Path) -> bytes:
    return (state / "iris" / "router" / "table.json").read_bytes()


def test_blue_green_deploy_switch_rollback_retire(state: Path, models: dict[str, Path]) -> None:
    blue = local_routes.deploy_version(state, "iris", "v1", models["lr"])
    assert (blue.live, blue.primary) == (("v1",), "v1")
    url = blue.url
    green = local_routes.deploy_version(state, "iris", "v2", models["lr"])
    # Beside blue with no traffic; the Pipeline validates it at its own URL.
    assert green.url == url
    assert green.weights == {"v1": 100, "v2": 0}
    assert answered_by(url) == {"v1": 20}
    assert answers_200(f"{green.versions['v2']}/v2/models/iris/ready")

    switched = local_routes.switch(state, "iris", "v2")
    assert (switched.primary, switched.weights) == ("v2", {"v1": 0, "v2": 100})
    assert answered_by(url) == {"v2": 20}
    rolled_back = local_routes.switch(state, "iris", "v1")  # blue is still there: instant
    assert rolled_back.primary == "v1"
    assert answered_by(url) == {"v1": 20}

    local_routes.switch(state, "iris", "v2")
    retired = local_routes.retire(state, "iris", "v1")
    assert retired.versions == {"v2": green.versions["v2"]}
    assert not answers_200(f"{blue.versions['v1']}/v2/health/live")
    assert not (state / "iris" / "versions" / "v1").exists()
    assert answered_by(url) == {"v2": 20}
    assert local_routes.status(state, "iris").url == url


def test_mirror_promote_and_rollback(state: Path, models: dict[str, Path]) -> None:
    live = local_routes.deploy_version(state, "iris", "v1", models["lr"])
    local_routes.deploy_version(state, "iris", "v2", models["forest"])
    shadowed = local_routes.mirror(state, "iris", "v2", 100)
    assert shadowed.mirror == local_routes.Mirror("v2", 100)
    assert answered_by(live.url, 30) == {"v1": 30}  # clients only ever get v1's answers
    deadline = time.monotonic() + 20
    while (summary := local_routes.mirror_summary(state, "iris"))["requests"] < 30:
        assert time.monotonic() < deadline, summary
        time.sleep(0.02)  # a poll interval: copies are sent in the background
    assert summary["mirror_versions"] == ["v2"]
    assert summary["mirror_error_rate"] == 0.0
    assert summary["agreement_rate"] < 1.0  # another model: its answers differ

    promoted = local_routes.promote_mirror(state, "iris")
    assert (promoted.primary, promoted.mirror) == ("v2", None)
    assert promoted.weights == {"v1": 0, "v2": 100}
    assert answered_by(live.url) == {"v2": 20}

    candidate = local_routes.deploy_version(state, "iris", "v3", models["lr"])
    local_routes.mirror(state, "iris", "v3", 50)
    rolled_back = local_routes.rollback_mirror(state, "iris")
    assert rolled_back.mirror is None
    assert set(rolled_back.versions) == {"v1", "v2"}
    assert not answers_200(f"{candidate.versions['v3']}/v2/health/live")
    assert answered_by(live.url) == {"v2": 20}


def test_abn_weights_with_sticky_users(state: Path, models: dict[str, Path]) -> None:
    for version in ("v1", "v2", "v3"):
        routing = local_routes.deploy_version(state, "iris", version, models["lr"])
    split = local_routes.set_weights(
        state, "iris", {"v1": 50, "v2": 30, "v3": 20}, sticky_header="x-user"
    )
    assert split.live == ("v1", "v2", "v3")
    assert split.sticky_header == "x-user"
    by_user = {}
    for user in range(60):
        served = answered_by(routing.url, 3, user=f"user-{user}")
        assert len(served) == 1  # the same user always reaches the same version
        by_user[user] = next(iter(served))
    assert set(by_user.values()) == {"v1", "v2", "v3"}


def test_a_candidate_that_cannot_start_leaves_the_old_version_live(
    state: Path, models: dict[str, Path]
) -> None:
    live = local_routes.deploy_version(state, "iris", "v1", models["lr"])
    before = table_bytes(state)
    with pytest.raises(DeployError, match="did not become ready") as failed:
        local_routes.deploy_version(state, "iris", "v2", models["broken"])
    assert failed.value.exit_code == 1
    assert table_bytes(state) == before
    assert not (state / "iris" / "versions" / "v2").exists()
    assert local_routes.status(state, "iris").versions == live.versions
    assert answered_by(live.url) == {"v1": 20}


def test_bad_input_and_unready_versions_change_nothing(
    state: Path, models: dict[str, Path]
) -> None:
    live = local_routes.deploy_version(state, "iris", "v1", models["lr"])
    candidate = local_routes.deploy_version(state, "iris", "v2", models["lr"])
    before = table_bytes(state)
    refusals = [
        (lambda: local_routes.set_weights(state, "iris", {"v1": 50, "v2": 40}),
         "--weights='v1=50,v2=40': the weights sum to 90, not 100"),
        (lambda: local_routes.set_weights(state, "iris", {"v1": 50, "v9": 50}),
         "--weights='v9=50': unknown version"),
        (lambda: local_routes.set_weights(state, "iris", {"v1": 100}, sticky_header="a b"),
         "--sticky-header='a b'"),
        (lambda: local_routes.switch(state, "iris", "v9"),
         "--version='v9': unknown version (deployed: v1, v2)"),
        (lambda: local_routes.mirror(state, "iris", "v1", 10), "v1 has weight 100"),
        (lambda: local_routes.mirror(state, "iris", "v2", 150), "from 0 to 100"),
        (lambda: local_routes.mirror(state, "iris", "v9", 10), "--mirror='v9': unknown version"),
        (lambda: local_routes.retire(state, "iris", "v1"),
         "--version='v1': has weight 100; switch its traffic away first"),
        (lambda: local_routes.deploy_version(state, "iris", "v1", models["lr"]),
         "--version='v1': is already deployed"),
        (lambda: local_routes.deploy_version(state, "iris", "../v3", models["lr"]),
         "--version='../v3': a version is"),
    ]  # fmt: skip
    for attempt, phrase in refusals:
        with pytest.raises(ParameterError) as refused:
            attempt()
        assert refused.value.exit_code == 2
        assert phrase in str(refused.value)
        assert table_bytes(state) == before
    assert not (state / "iris" / "versions" / "v3").exists()

    # A candidate that stopped answering is not switched to: v1 keeps all traffic.
    os.kill(int((state / "iris" / "versions" / "v2" / "pid").read_text()), signal.SIGKILL)
    with pytest.raises(DeployError, match="version v2 at .* is not ready; the switch to v2"):
        local_routes.switch(state, "iris", "v2")
    with pytest.raises(DeployError, match="not ready"):
        local_routes.set_weights(state, "iris", {"v1": 90, "v2": 10})
    assert table_bytes(state) == before
    assert answered_by(live.url) == {"v1": 20}
    assert candidate.versions["v2"] != live.url


def test_stop_ends_the_router_and_every_version(state: Path, models: dict[str, Path]) -> None:
    local_routes.deploy_version(state, "iris", "v1", models["lr"])
    routing = local_routes.deploy_version(state, "iris", "v2", models["lr"])
    urls = [routing.url, *routing.versions.values()]
    assert all(answers_200(f"{url}/v2/health/live") for url in urls)
    assert local_routes.stop(state, "iris") == ["router", "v1", "v2"]
    assert not any(answers_200(f"{url}/v2/health/live") for url in urls)
    assert local_routes.status(state, "iris").versions == {}
    # A new deployment starts from nothing, on the same state folder.
    again = local_routes.deploy_version(state, "iris", "v3", models["lr"])
    assert again.weights == {"v3": 100}
    assert answered_by(again.url) == {"v3": 20}
