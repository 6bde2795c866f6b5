"""The dashboard's drawings: the layered layout, the task graph and the timeline."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from tekton_mlops.dashboard.layout import LANE_HEIGHT, implied, layered, layers_of
from tekton_mlops.dashboard.runs import RunsFolder
from tekton_mlops.dashboard.svg import duration, task_graph, timeline
from tests.unit.test_dashboard_runs import finished_run


def overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def test_every_edge_points_right_and_finally_has_the_last_layer_alone() -> None:
    nodes = ["read", "fetch", "train", "evaluate", "sign", "deploy"]
    edges = [
        ("read", "fetch"),
        ("fetch", "train"),
        ("read", "train"),
        ("train", "evaluate"),
        ("fetch", "evaluate"),
        ("evaluate", "sign"),
        ("sign", "deploy"),
        ("evaluate", "report"),
    ]
    drawing = layered(nodes, edges, last=["report", "rollback"])
    layer = {name: box.layer for name, box in drawing.boxes.items()}
    assert layer == {
        "read": 0, "fetch": 1, "train": 2, "evaluate": 3, "sign": 4, "deploy": 5,
        "report": 6, "rollback": 6,
    }  # fmt: skip
    assert drawing.last_layer == 6
    assert drawing.layers[-1] == ("report", "rollback")
    for line in drawing.lines:
        assert drawing.boxes[line.target].layer > drawing.boxes[line.source].layer
    boxes = [(b.x, b.y, b.width, b.height) for b in drawing.boxes.values()]
    for index, box in enumerate(boxes):
        assert not any(overlap(box, other) for other in boxes[index + 1 :])
        assert box[0] + box[2] <= drawing.width
        assert box[1] + box[3] <= drawing.height


def test_a_long_edge_runs_in_lanes_beside_the_boxes_it_passes() -> None:
    # fetch -> evaluate skips train's layer: it must not be drawn through train.
    drawing = layered(
        ["fetch", "train", "evaluate"],
        [("fetch", "train"), ("train", "evaluate"), ("fetch", "evaluate", "results")],
    )
    (long,) = [
        line for line in drawing.lines if line.source == "fetch" and line.target == "evaluate"
    ]
    assert long.kind == "results"
    assert len(long.points) == 4  # start, into train's layer, out of it, end
    train = drawing.boxes["train"]
    (_, lane_y), (_, out_y) = long.points[1], long.points[2]
    assert lane_y == out_y
    assert not train.y - LANE_HEIGHT / 2 < lane_y < train.y + train.height + LANE_HEIGHT / 2
    assert long.points[0] == (
        drawing.boxes["fetch"].x + drawing.boxes["fetch"].width,
        drawing.boxes["fetch"].y + train.height / 2,
    )


def test_the_ordering_uncrosses_what_the_given_order_crosses() -> None:
    drawing = layered(["a", "b", "y", "x"], [("a", "x"), ("b", "y")])
    assert drawing.layers == (("a", "b"), ("x", "y"))


def test_implied_edges_are_those_a_longer_path_gives() -> None:
    edges = [
        ("read", "fetch"),
        ("fetch", "train"),
        ("read", "train"),
        ("read", "deploy"),
        ("train", "deploy"),
    ]
    assert implied(edges) == {("read", "train"), ("read", "deploy")}
    assert implied([("a", "b"), ("c", "b")]) == set()


def test_cycles_and_long_chains_neither_hang_nor_overflow() -> None:
    assert layers_of(["a", "b", "c"], [("a", "b"), ("b", "a"), ("c", "a")]) == {
        "c": 0,
        "a": 1,
        "b": 1,
    }
    chain = [f"t{n}" for n in range(3000)]  # far beyond the recursion limit
    layer = layers_of(chain, list(zip(chain, chain[1:], strict=False)))
    assert layer["t2999"] == 2999


def test_durations_as_a_person_reads_them() -> None:
    assert [duration(s) for s in (None, 0.2, 1, 59.4, 61, 3599, 3660)] == [
        "", "<1 s", "1 s", "59 s", "1 min 1 s", "59 min 59 s", "1 h 1 min",
    ]  # fmt: skip


class Nodes(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.nodes: list[str] = []
        self.text: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "a" and "node" in (found.get("class") or "").split():
            self.nodes.append(str(found.get("data-node")))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_the_task_graph_has_one_node_per_task_with_its_state_as_text(tmp_path: Path) -> None:
    finished_run(tmp_path)
    run = RunsFolder(tmp_path).run("done")
    svg = task_graph(run)
    parser = Nodes()
    parser.feed(svg)
    assert sorted(parser.nodes) == sorted(t.name for t in run.tasks)
    text = " ".join(parser.text)
    assert "\u2713 Succeeded" in text
    assert "\u21b7 Skipped" in text
    assert "finally" in text
    assert 'aria-label="Task graph: 4 tasks"' in svg
    # Colours come from classes only: the page's CSP allows no inline style.
    assert "style=" not in svg
    assert len(re.findall(r'class="edge', svg)) == len(run.edges)


def test_the_timeline_has_a_row_per_taskrun_and_skipped_task(tmp_path: Path) -> None:
    finished_run(tmp_path)
    run = RunsFolder(tmp_path).run("done")
    html = timeline(run)
    assert html.count('role="rowheader"') == 4  # fetch, train, deploy (skipped), report
    assert "style=" not in html
    # Bars sit in a 0..1000 box over the run's 10 s: train ran from 1 s to 6 s.
    assert re.search(r'<rect class="run state-succeeded" x="100.0" y="0" width="500.0"', html)
    assert "<span>0 s</span><span>2 s</span>" in html  # the axis in round steps
