"""What is left serving when versions are cut out, and which deployed models a cut-out names."""

from __future__ import annotations

import pytest

from tekton_mlops.deploy.cutout import ModelRef, serving
from tekton_mlops.deploy.local_routes import remaining_weights
from tekton_mlops.steps.revoke_dataset import parse_digests

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


@pytest.mark.parametrize(
    ("weights", "gone", "left"),
    [
        ({"v1": 60, "v2": 30, "v3": 10}, {"v1"}, {"v2": 75, "v3": 25}),
        # Shares that do not divide evenly still sum to 100, the largest remainder first.
        ({"v1": 40, "v2": 20, "v3": 20, "v4": 20}, {"v1"}, {"v2": 34, "v3": 33, "v4": 33}),
        ({"v1": 50, "v2": 50}, {"v2"}, {"v1": 100}),
        # A candidate without traffic stays without: it is not made live by a removal.
        ({"blue": 100, "green": 0}, {"green"}, {"blue": 100}),
        ({"blue": 0, "green": 100, "v3": 0}, {"blue"}, {"green": 100, "v3": 0}),
    ],
)
def test_the_versions_left_keep_their_shares(weights, gone, left) -> None:  # type: ignore[no-untyped-def]
    assert remaining_weights(weights, gone) == left
    assert sum(left.values()) == 100


@pytest.mark.parametrize(
    ("weights", "gone"),
    [({"blue": 100, "green": 0}, {"blue"}), ({"v1": 70, "v2": 30}, {"v1", "v2"}), ({}, set())],
)
def test_nothing_live_left_means_the_whole_deployment(weights, gone) -> None:  # type: ignore[no-untyped-def]
    assert remaining_weights(weights, gone) is None


def test_a_model_is_named_by_its_verified_digest_or_the_uri_it_came_from() -> None:
    serves = serving({A}, {"s3://models/iris/sha256-1/"})
    assert serves(ModelRef("oci://r/x@sha256:1", A))
    assert serves(ModelRef("s3://models/iris/sha256-1", ""))  # unverified, by where it came from
    assert not serves(ModelRef("oci://r/x@sha256:1", B))
    assert not serves(ModelRef("", ""))  # a deployment that names nothing matches nothing


def test_digests_as_a_json_array_or_a_comma_list() -> None:
    assert parse_digests(f'["{A}", "{B}"]') == [A, B]
    assert parse_digests(f" {A} , {B},{A} ") == [A, B]
