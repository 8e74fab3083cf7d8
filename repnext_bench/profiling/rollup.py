"""Sums of a profile: per stage and per component, with MACs and achieved GMAC/s, the
accounting of attributed, unattributed and outside-node time, and train vs fused."""
from __future__ import annotations

from ..quant.layers import KINDS, layer_kind
from .attribution import COMPONENTS

UNATTRIBUTED = "unattributed"
_STAGE_ORDER = ["stem", *(f"stage {i}" for i in range(1, 9)), "head", UNATTRIBUTED]
_COMPONENT_ORDER = [*COMPONENTS, UNATTRIBUTED]


def _key(node_or_entry: dict, level: str) -> str:
    place = node_or_entry.get("place")
    return place[level] if place else UNATTRIBUTED


def accounting(profile: dict) -> dict:
    """Where the measured time per inference went: nodes placed by name or through the
    graph, unattributed nodes, and time outside any node (runtime overhead, or profiler's)."""
    nodes = profile["nodes"]
    by_name = sum(n["time_ms"] for n in nodes if n["attributed_by"] == "name")
    by_graph = sum(n["time_ms"] for n in nodes if n["attributed_by"] == "graph")
    loose = [n for n in nodes if n["attributed_by"] is None]
    unattributed = sum(n["time_ms"] for n in loose)
    node_sum = by_name + by_graph + unattributed
    total = profile["profiled"]["wall_ms"]
    return {
        "total_ms": total,
        "node_sum_ms": node_sum,
        "attributed_by_name_ms": by_name,
        "attributed_by_graph_ms": by_graph,
        "unattributed_ms": unattributed,
        "unattributed_nodes": sorted(({"name": n["name"], "op_type": n["op_type"], "time_ms": n["time_ms"]}
                                      for n in loose), key=lambda n: -n["time_ms"]),
        "outside_nodes_ms": total - node_sum,
        "margin": (total - node_sum) / total if total else None,
        "nodes": len(nodes),
    }


def rollup(profile: dict, level: str) -> list[dict]:
    """One row per stage (``level="stage"``) or component (``"component"``): time per
    inference, share of the node time, node count, MACs per image and achieved GMAC/s."""
    order = _STAGE_ORDER if level == "stage" else _COMPONENT_ORDER
    rows: dict[str, dict] = {}
    for node in profile["nodes"]:
        row = rows.setdefault(_key(node, level), _empty_row(_key(node, level)))
        row["time_ms"] += node["time_ms"]
        row["nodes"] += 1
        kind = layer_kind(node["op_type"], node.get("precision")) or "float"
        row["kinds"][kind] += 1
        row["kind_ms"][kind] += node["time_ms"]
    for entry in profile["macs_by_place"]:
        key = _key(entry, level)
        rows.setdefault(key, _empty_row(key))["macs"] += entry["macs"]
    total = sum(r["time_ms"] for r in rows.values()) or 1.0
    batch = profile["case"]["batch"]
    for row in rows.values():
        row["share"] = row["time_ms"] / total
        row["gmacs_per_s"] = (row["macs"] * batch / (row["time_ms"] / 1e3) / 1e9
                              if row["macs"] and row["time_ms"] > 0 else None)
    return sorted(rows.values(), key=lambda r: order.index(r["name"]) if r["name"] in order else len(order))


def _empty_row(name: str) -> dict:
    """A rollup row before its nodes: time, node count, MACs, and the nodes of each kind (int8,
    float, qdq, reorder: quant.layers) with their time."""
    return {"name": name, "time_ms": 0.0, "nodes": 0, "macs": 0, "kinds": dict.fromkeys(KINDS, 0),
            "kind_ms": dict.fromkeys(KINDS, 0.0)}


def side_by_side(profiles: list[dict], level: str) -> list[dict]:
    """For profiles of several forms of one case: per stage or component, each form's time
    and node count, and the train-over-fused speedup where both are there."""
    by_form = {p["case"]["form"]: {r["name"]: r for r in rollup(p, level)} for p in profiles}
    names = list(dict.fromkeys(name for rows in by_form.values() for name in rows))
    order = _STAGE_ORDER if level == "stage" else _COMPONENT_ORDER
    names.sort(key=lambda n: order.index(n) if n in order else len(order))
    result = []
    for name in names:
        row = {"name": name, "forms": {form: {"time_ms": rows[name]["time_ms"], "nodes": rows[name]["nodes"],
                                              "int8_nodes": rows[name]["kinds"]["int8"]}
                                       for form, rows in by_form.items() if name in rows}}
        train, fused = row["forms"].get("train"), row["forms"].get("fused")
        row["speedup"] = train["time_ms"] / fused["time_ms"] if train and fused and fused["time_ms"] > 0 else None
        result.append(row)
    return result


def top_nodes(profile: dict, count: int) -> list[dict]:
    return sorted(profile["nodes"], key=lambda n: -n["time_ms"])[:count]


def summarize_profile(profile: dict) -> dict:
    """What the JSON report keeps beside the per-node list."""
    return {"accounting": accounting(profile), "by_stage": rollup(profile, "stage"),
            "by_component": rollup(profile, "component")}
