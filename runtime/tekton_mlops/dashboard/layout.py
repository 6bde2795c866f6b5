"""A layered drawing of a directed acyclic graph, left to right.

Each node goes in the layer after the deepest node it depends on (the longest path from
a source), so every edge points right; nodes named ``last`` (a Pipeline's ``finally``
tasks, which run after everything) get a layer of their own after all the others. Inside
a layer, nodes are ordered by the mean position of their neighbours in the layer before
(then after), a few sweeps each way, which undoes most crossings in the graphs Pipelines
have; ties keep the order the nodes were given in (the spec's order).

Example::

    drawing = layered(["fetch", "train", "report"], [("fetch", "train")], last=["report"])
    drawing.boxes["train"].x  # 244.0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

NODE_WIDTH, NODE_HEIGHT = 188.0, 52.0
GAP_X, GAP_Y, MARGIN = 48.0, 16.0, 8.0
#: The height an edge's lane takes in a layer it crosses.
LANE_HEIGHT = 4.0
_SWEEPS = 4


@dataclass(frozen=True)
class Box:
    name: str
    layer: int
    x: float
    y: float
    width: float = NODE_WIDTH
    height: float = NODE_HEIGHT


@dataclass(frozen=True)
class Line:
    """An edge from the right side of ``source`` to the left side of ``target``, through
    ``points``: pairs of points where it crosses a layer between them (its own lane)."""

    source: str
    target: str
    kind: str
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Drawing:
    width: float
    height: float
    boxes: dict[str, Box]
    lines: tuple[Line, ...]
    layers: tuple[tuple[str, ...], ...]
    last_layer: int | None  # the layer of the ``last`` nodes, when there are any


def layers_of(nodes: Sequence[str], edges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Longest path from a source, for each node (edges naming unknown nodes are ignored;
    nodes on a cycle, which Tekton refuses, go after the last layer reached)."""
    known = set(nodes)
    after: dict[str, list[str]] = {n: [] for n in nodes}
    waiting = dict.fromkeys(nodes, 0)
    for source, target in set(edges):
        if source in known and target in known and source != target:
            after[source].append(target)
            waiting[target] += 1
    layer = dict.fromkeys(nodes, 0)
    ready = [n for n in nodes if waiting[n] == 0]
    placed: set[str] = set()
    while ready:  # Kahn's order: a node is placed once everything before it is
        node = ready.pop()
        placed.add(node)
        for target in after[node]:
            layer[target] = max(layer[target], layer[node] + 1)
            waiting[target] -= 1
            if waiting[target] == 0:
                ready.append(target)
    deepest = max((layer[n] for n in placed), default=-1)
    for node in nodes:
        if node not in placed:
            layer[node] = deepest + 1
    return layer


def implied(edges: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """The edges a longer path already implies (a -> c when a -> b -> c): leaving them out
    of a drawing keeps the order it shows and removes most of its lines (a task that
    reads a setting of the first task otherwise draws an arrow from it)."""
    after: dict[str, set[str]] = {}
    for source, target in edges:
        if source != target:
            after.setdefault(source, set()).add(target)
    found = set()
    for source, targets in after.items():
        for target in targets:
            # Reachable from source through another of its successors?
            stack = [n for n in targets if n != target]
            seen = set(stack)
            while stack:
                node = stack.pop()
                if node == target:
                    found.add((source, target))
                    break
                for following in after.get(node, ()):
                    if following not in seen:
                        seen.add(following)
                        stack.append(following)
    return found


def layered(
    nodes: Sequence[str],
    edges: Sequence[tuple[str, str] | tuple[str, str, str]],
    last: Sequence[str] = (),
) -> Drawing:
    """Place ``nodes`` and ``last`` in layers; ``edges`` are (source, target[, kind]).

    An edge that spans several layers gets a lane in each layer it crosses (a point in
    the ordering, Sugiyama's dummy node), so it never runs through a box.
    """
    known = {*nodes, *last}
    kept = [e for e in edges if e[0] in known and e[1] in known and e[0] != e[1]]
    main = [n for n in nodes if n not in set(last)]
    layer = layers_of(main, [(e[0], e[1]) for e in kept])
    count = max(layer.values(), default=-1) + 1
    last_layer = None
    if last:
        last_layer = count
        layer.update(dict.fromkeys(last, last_layer))
        count += 1
    columns: list[list[str]] = [[] for _ in range(count)]
    for node in [*main, *last]:
        columns[layer[node]].append(node)
    lanes: dict[int, list[str]] = {}  # edge index -> its lanes, one per layer crossed
    pairs: list[tuple[str, str]] = []
    for index, edge in enumerate(kept):
        chain = [edge[0]]
        for crossed in range(layer[edge[0]] + 1, layer[edge[1]]):
            lane = f"\0{index}:{crossed}"  # never a task's name
            columns[crossed].append(lane)
            chain.append(lane)
        lanes[index] = chain[1:]
        pairs += list(zip(chain, [*chain[1:], edge[1]], strict=True))
    _order(columns, pairs)

    def size(item: str) -> float:
        return LANE_HEIGHT if item.startswith("\0") else NODE_HEIGHT

    heights = [sum(size(i) for i in c) + max(0, len(c) - 1) * GAP_Y for c in columns]
    full = max(heights, default=0.0)
    boxes: dict[str, Box] = {}
    centre: dict[str, float] = {}
    for index, column in enumerate(columns):
        y = MARGIN + (full - heights[index]) / 2
        x = MARGIN + index * (NODE_WIDTH + GAP_X)
        for item in column:
            if not item.startswith("\0"):
                boxes[item] = Box(item, index, x, y)
            centre[item] = y + size(item) / 2
            y += size(item) + GAP_Y
    lines = []
    for index, edge in enumerate(kept):
        source, target = boxes[edge[0]], boxes[edge[1]]
        points = [(source.x + source.width, centre[source.name])]
        for lane in lanes[index]:
            x = MARGIN + layer_of_lane(lane) * (NODE_WIDTH + GAP_X)
            points += [(x, centre[lane]), (x + NODE_WIDTH, centre[lane])]
        points.append((target.x, centre[target.name]))
        kind = str(edge[2]) if len(edge) > 2 else ""
        lines.append(Line(source.name, target.name, kind, tuple(points)))
    width = 2 * MARGIN + count * NODE_WIDTH + max(0, count - 1) * GAP_X
    return Drawing(
        width=width,
        height=2 * MARGIN + full,
        boxes=boxes,
        lines=tuple(lines),
        layers=tuple(tuple(i for i in c if not i.startswith("\0")) for c in columns),
        last_layer=last_layer,
    )


def layer_of_lane(lane: str) -> int:
    return int(lane.rsplit(":", 1)[1])


def _order(columns: list[list[str]], edges: Sequence[tuple[str, str]]) -> None:
    """Reorder each layer in place by the barycentre of its neighbours, sweeping right
    then left; a node without neighbours on that side keeps its place."""
    before: dict[str, list[str]] = {}
    after: dict[str, list[str]] = {}
    for source, target in edges:
        before.setdefault(target, []).append(source)
        after.setdefault(source, []).append(target)
    # Rows measured from each layer's middle, as layers are drawn centred on each other.
    position = {
        node: row - (len(column) - 1) / 2 for column in columns for row, node in enumerate(column)
    }

    def sweep(indexes: range, neighbours: dict[str, list[str]]) -> None:
        for index in indexes:
            column = columns[index]
            middle = (len(column) - 1) / 2
            keyed = []
            for row, node in enumerate(column):
                seen = [position[n] for n in neighbours.get(node, []) if n in position]
                keyed.append((sum(seen) / len(seen) if seen else row - middle, row, node))
            column[:] = [node for _, _, node in sorted(keyed)]
            for row, node in enumerate(column):
                position[node] = row - middle

    for _ in range(_SWEEPS):
        sweep(range(1, len(columns)), before)
        sweep(range(len(columns) - 2, -1, -1), after)
