"""QA for one-factor variation groups (compose jobs with [variations]): per group, the
questions its factors are about (how many, is there, which is bigger, where), asked of the
base and of every variant and answered from each image's own scene graph, skipped where the
answer falls inside a margin (a tiny object, a close size, a position near a boundary). The
subject is named by the simplest phrase that picks out the target in the base image.
"""
from __future__ import annotations

import math

from soclake.stages.refexp.graph_backend import article, unique_selector
from soclake.stages.refexp.programs import Selector, noun_phrase, plural, referents
from soclake.stages.refexp.scene import Obj, SceneGraph

Member = tuple[str, dict, SceneGraph]  # key, the sample's KEY.json, its scene graph


def where(o: Obj) -> str | None:
    """Both thirds: "at the top left", "on the right", "at the bottom", "in the middle"; None
    when either lies within the margin of a boundary."""
    if o.vertical is None or o.horizontal is None:
        return None
    v = "" if o.vertical == "middle" else o.vertical
    h = "" if o.horizontal == "middle" else o.horizontal
    if v and h:
        return f"at the {v} {h}"
    if h:
        return f"on the {h}"
    return f"at the {v}" if v else "in the middle"


def by_key(members: list[Member]) -> dict[str, list[dict]]:
    """key -> variation QA of every sample that belongs to a variation group, grouped by the
    base id in its KEY.json (a group shares a shard, so each group is whole here)."""
    groups: dict[int, list[Member]] = {}
    for m in members:
        if m[1].get("variation"):
            groups.setdefault(m[1]["variation"]["base_id"], []).append(m)
    out: dict[str, list[dict]] = {}
    for group in groups.values():
        out.update(group_questions(group))
    return out


def _instance(info: dict, panoptic_id: int | None) -> dict | None:
    return next((i for i in info["instances"] if i["panoptic_id"] == panoptic_id), None)


def group_questions(group: list[Member]) -> dict[str, list[dict]]:
    base = next((m for m in group if m[1]["variation"]["factor"] is None), None)
    if base is None:
        return {}
    factors = {m[1]["variation"]["factor"] for m in group} - {None}
    target = _instance(base[1], base[1]["variation"]["target_id"])
    if target is None:  # no target, or it was too small to annotate in the base
        return {}
    g = base[2]
    subject = unique_selector(g, target["ann_id"], position=False)  # the target may move
    other = _comparison(g, target["ann_id"]) if "size" in factors and subject else None
    out = {}
    for key, info, graph in group:
        qa = []
        same = [o for o in graph.labelled if o.category == target["category"]]
        if "count" in factors and all(o.usable for o in same):
            found = sorted(o.ann_id for o in same)
            qa.append({"question": f"How many {plural(target['category'])} are there?", "answer": str(len(found)),
                       "type": "count", "targets": found})
        found_subject = referents(subject, graph) if subject else None
        if "existence" in factors and found_subject is not None:
            found = sorted(found_subject)
            qa.append({"question": f"Is there {article(noun_phrase(subject))} {noun_phrase(subject)}?",
                       "answer": "yes" if found else "no", "type": "existence", "targets": found})
        if other:
            qa += _bigger(graph, subject, other)
        if "position" in factors and found_subject is not None and len(found_subject) == 1:
            o = graph.by_id()[next(iter(found_subject))]
            if where(o):
                qa.append({"question": f"Where is the {noun_phrase(subject)}?", "answer": where(o),
                           "type": "position", "targets": [o.ann_id]})
        out[key] = qa
    return out


def _comparison(g: SceneGraph, ann_id: int) -> Selector | None:
    """Another uniquely named object to compare sizes with: the one closest in area (the
    comparison most likely to turn when the target is scaled)."""
    t = g.by_id()[ann_id]
    best = None
    for o in sorted(g.labelled, key=lambda o: (abs(math.log(max(o.area, 1) / max(t.area, 1))), o.ann_id)):
        if o.ann_id != ann_id:
            best = unique_selector(g, o.ann_id, position=False)
            if best:
                return best
    return None


def _bigger(graph: SceneGraph, a: Selector, b: Selector) -> list[dict]:
    """"Which is bigger, the A or the B?" by visible area, where both are named uniquely and
    the larger beats the smaller by the size margin."""
    ra, rb = referents(a, graph), referents(b, graph)
    if ra is None or rb is None or len(ra) != 1 or len(rb) != 1:
        return []
    oa, ob = graph.by_id()[next(iter(ra))], graph.by_id()[next(iter(rb))]
    if max(oa.area, ob.area) < (1 + graph.rules.size_margin) * min(oa.area, ob.area):
        return []
    winner, sel = (oa, a) if oa.area > ob.area else (ob, b)
    return [{"question": f"Which is bigger, the {noun_phrase(a)} or the {noun_phrase(b)}?",
             "answer": f"the {noun_phrase(sel)}", "type": "size", "targets": [winner.ann_id],
             "compared": [oa.ann_id, ob.ann_id]}]
