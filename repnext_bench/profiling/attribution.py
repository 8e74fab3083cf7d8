"""Where a runtime node belongs in RepNeXt's structure, from its name or, failing that, from
its neighbours in the runtime's graph.

Every exporter and runtime here keeps the PyTorch module path in its node names
(``/stages/stages.1/blocks/blocks.0/token_mixer/conv_s/conv_3_3/Conv``, or the module's
qualified name for torch), so the path is parsed out of the name. Nodes a runtime adds or
renames (ONNX Runtime's layout reorders, OpenVINO's merged subgraphs) carry no path: they
take the place of the nearest node that has one, through the graph, and are marked so.
What has neither stays unattributed and is reported with its time.
"""
from __future__ import annotations

import re
from collections import deque
from dataclasses import asdict, dataclass

COMPONENTS = ("stem", "token mixer", "channel mixer", "downsample", "head")
_STAGE = re.compile(r"stages[./](\d+)")
_BLOCK = re.compile(r"blocks[./](\d+)")
_BRANCHES = {"conv_s": "small", "conv_m": "medium", "conv_l": "large"}
# an op of the network's own forward (the global pool), not inside any submodule:
# "/ReduceMean" in ONNX and OpenVINO names, "" for torch's root module
_ROOT = re.compile(r"^(|/[A-Za-z]+(?:_[\w.]*)?)$")
_CONV_OPS = ("conv", "convolution", "groupconvolution")


def _has(name: str, word: str) -> bool:
    return re.search(rf"(?:^|[/.]){word}(?:[/._]|$)", name) is not None


@dataclass(frozen=True)
class Place:
    stage: str  # "stem", "stage 1" ... "stage 4" or "head"
    block: str | None  # "downsample", "block 1", ... (None outside the stages)
    component: str  # one of COMPONENTS
    part: str  # finer: the token mixer's branch, "norm", "residual add", "global pool", ...

    def to_dict(self) -> dict:
        return asdict(self)


def _mixer_part(name: str, op_type: str) -> str:
    for key, branch in _BRANCHES.items():
        if _has(name, key):
            return branch
    if op_type.lower().split(":")[-1] in _CONV_OPS or "conv" in op_type.lower():
        return "merged"  # the fused mixer of the E variants is one conv
    return "split/concat"  # the identity chunk costs only its split and concat


def place_of(name: str, op_type: str = "") -> Place | None:
    """The place of a node called ``name`` (a runtime node name or a module path), or None."""
    if _has(name, "stem"):
        return Place("stem", None, "stem", "")
    if _has(name, "head") or _has(name, "head_drop") or _ROOT.match(name):
        return Place("head", None, "head", "global pool" if _ROOT.match(name) else "classifier")
    stage = _STAGE.search(name)
    if not stage:
        return None
    where = f"stage {int(stage.group(1)) + 1}"
    if _has(name, "downsample"):
        if _has(name, "token_mixer"):
            part = f"token mixer ({_mixer_part(name, op_type)})"
        else:
            part = next((p.replace("_", " ") for p in ("channel_mixer", "norm") if _has(name, p)), "residual add")
        return Place(where, "downsample", "downsample", part)
    block = _BLOCK.search(name)
    if not block:
        return None
    label = f"block {int(block.group(1)) + 1}"
    if _has(name, "token_mixer"):
        return Place(where, label, "token mixer", _mixer_part(name, op_type))
    if _has(name, "channel_mixer"):
        return Place(where, label, "channel mixer", "")
    # the block's norm feeds the channel mixer (and is folded into it when fused); the
    # residual add closes it
    return Place(where, label, "channel mixer", "norm" if _has(name, "norm") else "residual add")


def attribute(nodes: list[dict], graph: dict[str, tuple[list[str], list[str]]] | None = None,
              max_hops: int = 8) -> None:
    """Set ``place`` (a dict or None) and ``attributed_by`` ("name", "graph" or None) on each
    node, in place. ``graph`` maps a node name to (producers, consumers)."""
    by_name: dict[str, Place | None] = {}
    for node in nodes:
        place = place_of(node.get("path", node["name"]), node.get("op_type", ""))
        by_name[node["name"]] = place
        node["place"], node["attributed_by"] = (place.to_dict(), "name") if place else (None, None)
    if not graph:
        return
    for node in nodes:
        if node["place"] is None:
            place = _nearest_place(node["name"], graph, by_name, max_hops)
            if place:
                if place.component == "head":  # a renamed head op: its type says which part
                    head_part = "classifier" if _is_matmul(node.get("op_type", "")) else "global pool"
                    place = Place("head", None, "head", head_part)
                node["place"], node["attributed_by"] = place.to_dict(), "graph"


def _is_matmul(op_type: str) -> bool:
    return any(word in op_type.lower() for word in ("gemm", "fullyconnected", "matmul", "linear"))


def _nearest_place(start: str, graph, known: dict[str, Place | None], max_hops: int) -> Place | None:
    """The place of the nearest node (consumers first at each distance) whose name has one."""
    seen, frontier = {start}, deque([(start, 0)])
    while frontier:
        name, hops = frontier.popleft()
        if hops >= max_hops:
            continue
        producers, consumers = graph.get(name, ([], []))
        for neighbour in [*consumers, *producers]:
            if neighbour in seen:
                continue
            seen.add(neighbour)
            place = known.get(neighbour) or place_of(neighbour)
            if place:
                return place
            frontier.append((neighbour, hops + 1))
    return None


def macs_by_place(per_module_macs: dict[str, int]) -> list[tuple[dict, int]]:
    """(place, MACs) for each conv or linear module, from its qualified name."""
    places = ((place_of(name, "conv"), macs) for name, macs in per_module_macs.items())
    return [(place.to_dict(), macs) for place, macs in places if place]
