"""The diagram (BPMNDI) of every process file: complete, inside its lanes, edges docked, nothing overlapping.

A modeler opens a file from its diagram interchange, not from the process semantics; these checks catch the
hand-editing mistakes that make a file render badly in bpmn.io or Camunda Modeler without needing a browser.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree

from engine.bpmn import parse_xml

PROCESSES = Path(__file__).resolve().parent.parent.parent / "processes"
FILES = sorted(PROCESSES.glob("*.bpmn"))

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI = "http://www.omg.org/spec/BPMN/20100524/DI"
DC = "http://www.omg.org/spec/DD/20100524/DC"
DI = "http://www.omg.org/spec/DD/20100524/DI"

FLOW_NODE_TAGS = frozenset(
    {
        "task",
        "userTask",
        "serviceTask",
        "scriptTask",
        "manualTask",
        "businessRuleTask",
        "sendTask",
        "receiveTask",
        "callActivity",
        "subProcess",
        "transaction",
        "adHocSubProcess",
        "startEvent",
        "endEvent",
        "intermediateCatchEvent",
        "intermediateThrowEvent",
        "boundaryEvent",
        "exclusiveGateway",
        "parallelGateway",
        "inclusiveGateway",
        "eventBasedGateway",
        "complexGateway",
    }
)
CONTAINER_TAGS = frozenset({"process", "subProcess", "transaction", "adHocSubProcess"})
# How far (in diagram units) an edge end may sit from the outline of the shape it docks on.
DOCK_TOLERANCE = 5.0


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y + self.h / 2)

    def contains(self, point: tuple[float, float], margin: float = 0.0) -> bool:
        px, py = point
        inside_x = self.x - margin <= px <= self.x + self.w + margin
        return inside_x and self.y - margin <= py <= self.y + self.h + margin

    def encloses(self, other: Box) -> bool:
        return (
            self.x <= other.x
            and self.y <= other.y
            and other.x + other.w <= self.x + self.w
            and other.y + other.h <= self.y + self.h
        )

    def overlaps(self, other: Box) -> bool:
        return (
            self.x < other.x + other.w
            and other.x < self.x + self.w
            and self.y < other.y + other.h
            and other.y < self.y + self.h
        )

    def distance_to_outline(self, point: tuple[float, float]) -> float:
        px, py = point
        if self.contains(point):
            return min(px - self.x, self.x + self.w - px, py - self.y, self.y + self.h - py)
        dx = max(self.x - px, 0.0, px - (self.x + self.w))
        dy = max(self.y - py, 0.0, py - (self.y + self.h))
        return float((dx * dx + dy * dy) ** 0.5)


def local(element: etree._Element) -> str:
    return etree.QName(element).localname


class Diagram:
    """One process file: its semantic elements and the shapes and edges of its diagram."""

    def __init__(self, path: Path) -> None:
        self.name = path.name
        self.root = parse_xml(path.read_bytes(), filename=path.name)
        self.elements: dict[str, etree._Element] = {
            el.get("id", ""): el for el in self.root.iter(f"{{{BPMN}}}*") if el.get("id") is not None
        }
        self.shapes: dict[str, list[Box]] = {}
        self.edges: dict[str, list[list[tuple[float, float]]]] = {}
        for shape in self.root.iter(f"{{{BPMNDI}}}BPMNShape"):
            bounds = shape.find(f"{{{DC}}}Bounds")
            boxes = self.shapes.setdefault(shape.get("bpmnElement", ""), [])
            if bounds is not None:
                boxes.append(Box(*(float(bounds.get(k, "nan")) for k in ("x", "y", "width", "height"))))
        for edge in self.root.iter(f"{{{BPMNDI}}}BPMNEdge"):
            waypoints = edge.findall(f"{{{DI}}}waypoint")
            points = [(float(p.get("x", "nan")), float(p.get("y", "nan"))) for p in waypoints]
            self.edges.setdefault(edge.get("bpmnElement", ""), []).append(points)

    def flow_nodes(self) -> list[etree._Element]:
        return [el for el in self.elements.values() if local(el) in FLOW_NODE_TAGS]

    def containers(self) -> list[etree._Element]:
        return [el for el in self.elements.values() if local(el) in CONTAINER_TAGS]

    def box(self, element_id: str | None) -> Box | None:
        boxes = self.shapes.get(element_id or "", [])
        return boxes[0] if len(boxes) == 1 else None


def docks_on(box: Box, tag: str, point: tuple[float, float]) -> bool:
    """Whether an edge end lies on the outline of a shape: its box, or the circle or diamond drawn in it."""
    if box.distance_to_outline(point) <= DOCK_TOLERANCE and box.contains(point, DOCK_TOLERANCE):
        return True
    cx, cy = box.centre
    dx, dy = point[0] - cx, point[1] - cy
    if tag.endswith("Event"):
        radius = min(box.w, box.h) / 2
        return bool(abs((dx * dx + dy * dy) ** 0.5 - radius) <= DOCK_TOLERANCE)
    if tag.endswith("Gateway"):
        half_w, half_h = box.w / 2, box.h / 2
        return abs(abs(dx) / half_w + abs(dy) / half_h - 1) * min(half_w, half_h) <= DOCK_TOLERANCE
    return False


@pytest.fixture(scope="module", params=FILES, ids=[f.stem for f in FILES])
def diagram(request: pytest.FixtureRequest) -> Diagram:
    return Diagram(request.param)


def test_every_process_file_is_checked() -> None:
    assert len(FILES) >= 6, f"expected the process library in {PROCESSES}, found {[f.name for f in FILES]}"


def test_has_one_diagram_plane_for_the_collaboration(diagram: Diagram) -> None:
    planes = list(diagram.root.iter(f"{{{BPMNDI}}}BPMNPlane"))
    assert len(planes) == 1, f"{diagram.name}: expected one BPMNPlane, found {len(planes)}"
    target = planes[0].get("bpmnElement")
    assert target in diagram.elements, f"{diagram.name}: the BPMNPlane points at unknown {target!r}"
    assert local(diagram.elements[target]) in {"collaboration", "process"}, (
        f"{diagram.name}: the BPMNPlane points at {target!r}, not the collaboration or process"
    )


def test_every_flow_node_has_exactly_one_shape_with_bounds(diagram: Diagram) -> None:
    problems = []
    for node in diagram.flow_nodes():
        node_id = node.get("id", "")
        boxes = diagram.shapes.get(node_id, [])
        if len(boxes) != 1:
            problems.append(f"{diagram.name}: {local(node)} {node_id!r} has {len(boxes)} shapes with bounds")
        elif boxes[0].w <= 0 or boxes[0].h <= 0:
            problems.append(f"{diagram.name}: {local(node)} {node_id!r} has an empty shape {boxes[0]}")
    assert not problems, "\n".join(problems)


def test_every_shape_and_edge_points_at_an_element(diagram: Diagram) -> None:
    dangling = sorted(k for k in [*diagram.shapes, *diagram.edges] if k not in diagram.elements)
    assert not dangling, f"{diagram.name}: diagram elements for unknown ids {dangling}"


def test_participants_and_lanes_have_shapes(diagram: Diagram) -> None:
    problems = [
        f"{diagram.name}: {local(el)} {el_id!r} has {len(diagram.shapes.get(el_id, []))} shapes"
        for el_id, el in diagram.elements.items()
        if local(el) in {"participant", "lane"} and len(diagram.shapes.get(el_id, [])) != 1
    ]
    assert not problems, "\n".join(problems)


def test_every_sequence_flow_has_an_edge_docked_on_its_source_and_target(diagram: Diagram) -> None:
    problems = []
    for flow in diagram.root.iter(f"{{{BPMN}}}sequenceFlow"):
        flow_id, source_id = flow.get("id", ""), flow.get("sourceRef", "")
        target_id = flow.get("targetRef", "")
        edges = diagram.edges.get(flow_id, [])
        if len(edges) != 1:
            problems.append(f"{diagram.name}: sequence flow {flow_id!r} has {len(edges)} edges")
            continue
        points = edges[0]
        if len(points) < 2:
            problems.append(f"{diagram.name}: sequence flow {flow_id!r} has {len(points)} waypoints")
            continue
        for end, node_id, point in (("starts", source_id, points[0]), ("ends", target_id, points[-1])):
            box = diagram.box(node_id)
            tag = local(diagram.elements[node_id]) if node_id in diagram.elements else ""
            if box is None or not docks_on(box, tag, point):
                problems.append(
                    f"{diagram.name}: sequence flow {flow_id!r} {end} at {point}, "
                    f"not on the outline of {node_id!r} {box}"
                )
    assert not problems, "\n".join(problems)


def test_lane_members_are_drawn_inside_their_lane(diagram: Diagram) -> None:
    problems = []
    for lane in diagram.root.iter(f"{{{BPMN}}}lane"):
        lane_box = diagram.box(lane.get("id"))
        if lane_box is None:
            continue  # reported by test_participants_and_lanes_have_shapes
        for ref in lane.findall(f"{{{BPMN}}}flowNodeRef"):
            node_id = (ref.text or "").strip()
            box = diagram.box(node_id)
            if box is None or not lane_box.contains(box.centre):
                problems.append(
                    f"{diagram.name}: {node_id!r} is listed in lane {lane.get('id')!r} but drawn at {box}, "
                    f"outside the lane {lane_box}"
                )
    assert not problems, "\n".join(problems)


def test_every_user_task_is_in_exactly_one_lane(diagram: Diagram) -> None:
    membership: dict[str, list[str]] = {}
    for lane in diagram.root.iter(f"{{{BPMN}}}lane"):
        for ref in lane.findall(f"{{{BPMN}}}flowNodeRef"):
            membership.setdefault((ref.text or "").strip(), []).append(lane.get("id", ""))
    problems = [
        f"{diagram.name}: user task {task.get('id')!r} is in lanes {membership.get(task.get('id', ''), [])}"
        for task in diagram.root.iter(f"{{{BPMN}}}userTask")
        if len(membership.get(task.get("id", ""), [])) != 1
    ]
    assert not problems, "\n".join(problems)


def test_no_two_shapes_in_one_process_overlap(diagram: Diagram) -> None:
    problems = []
    for container in diagram.containers():
        nodes = [child for child in container if local(child) in FLOW_NODE_TAGS]
        boxed = [(node, box) for node in nodes if (box := diagram.box(node.get("id"))) is not None]
        for i, (first, first_box) in enumerate(boxed):
            for second, second_box in boxed[i + 1 :]:
                first_id, second_id = first.get("id"), second.get("id")
                attached = first_id == second.get("attachedToRef") or second_id == first.get("attachedToRef")
                if not attached and first_box.overlaps(second_box):
                    problems.append(
                        f"{diagram.name}: {first_id!r} {first_box} overlaps {second_id!r} {second_box}"
                    )
    assert not problems, "\n".join(problems)


def test_boundary_events_sit_on_the_border_of_their_host(diagram: Diagram) -> None:
    problems = []
    for event in diagram.root.iter(f"{{{BPMN}}}boundaryEvent"):
        box, host = diagram.box(event.get("id")), diagram.box(event.get("attachedToRef", ""))
        if box is None or host is None or host.distance_to_outline(box.centre) > DOCK_TOLERANCE:
            problems.append(
                f"{diagram.name}: boundary event {event.get('id')!r} {box} is not on the border of "
                f"{event.get('attachedToRef')!r} {host}"
            )
    assert not problems, "\n".join(problems)


def test_sub_process_contents_stay_inside_the_sub_process(diagram: Diagram) -> None:
    problems = []
    for container in diagram.containers():
        outer = diagram.box(container.get("id"))
        if local(container) == "process" or outer is None:
            continue
        for child in container:
            box = diagram.box(child.get("id", "")) if local(child) in FLOW_NODE_TAGS else None
            if box is None:
                continue
            # A boundary event straddles its host's border, so only its centre has to be inside.
            inside = outer.contains(box.centre) if local(child) == "boundaryEvent" else outer.encloses(box)
            if not inside:
                problems.append(
                    f"{diagram.name}: {child.get('id')!r} {box} spills out of sub-process "
                    f"{container.get('id')!r} {outer}"
                )
    assert not problems, "\n".join(problems)
