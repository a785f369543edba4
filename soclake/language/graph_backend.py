"""The `graph` language backend: referring expressions, a dense caption, per-segment captions
and QA pairs from a scene graph, deterministic for a seed and true by construction (every
expression is re-executed against the graph before it is kept).
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from soclake.language.programs import Expression, Selector, plural, verified
from soclake.language.scene import RELATIONS, SceneGraph

DEFAULT_COUNTS = {("single", "attribute"): 6, ("single", "spatial"): 6, ("single", "reasoning"): 6,
                  ("multi", "attribute"): 3, ("multi", "spatial"): 3, ("multi", "reasoning"): 3,
                  ("none", "attribute"): 2, ("none", "spatial"): 1}
COLOURS = ("black", "white", "grey", "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown")
NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def unique_selector(graph: SceneGraph, ann_id: int) -> Selector | None:
    """The simplest category/colour selector naming exactly this object, if any."""
    from soclake.language.programs import execute
    o = graph.by_id()[ann_id]
    for sel in (Selector(category=o.category), Selector(category=o.category, colour=o.colour)):
        if execute(sel, graph) == {ann_id}:
            return sel
    return None


def candidates(graph: SceneGraph, absent_categories: list[str]) -> list[tuple[Selector, str]]:
    """(selector, claimed scope) pairs worth verifying."""
    out: list[tuple[Selector, str]] = []
    cats = sorted({o.category for o in graph.objects})
    colours = sorted({o.colour for o in graph.objects if o.colour})
    anchors = [(o.ann_id, unique_selector(graph, o.ann_id)) for o in graph.objects]
    anchors = [(a, s) for a, s in anchors if s]
    for o in graph.objects:
        for sel in (Selector(category=o.category), Selector(category=o.category, colour=o.colour),
                    Selector(colour=o.colour), Selector(category=o.category, position=o.horizontal),
                    Selector(category=o.category, position=o.vertical),
                    Selector(category=o.category, extreme="largest"), Selector(category=o.category, extreme="smallest"),
                    Selector(colour=o.colour, extreme="largest")):
            if sel.position in ("middle",) or (sel.colour is None and sel.category is None):
                continue
            out += [(sel, "single"), (sel, "multi")]
        for anchor_id, anchor in anchors:
            if anchor_id == o.ann_id:
                continue
            for rel in RELATIONS:
                out.append((Selector(category=o.category, relation=rel, anchor=anchor), "single"))
                if o.colour:
                    out += [(Selector(colour=o.colour, relation=rel, anchor=anchor), s) for s in ("single", "multi")]
    for pos in ("left", "right", "top", "bottom"):
        out.append((Selector(position=pos), "multi"))
        for c in cats:
            out.append((Selector(category=c, position=pos), "none"))
    for c in cats:
        out += [(Selector(category=c, colour=k), "none") for k in COLOURS if k not in colours]
    out += [(Selector(category=c), "none") for c in absent_categories if c not in cats]
    return [(s, scope) for s, scope in out if not (s.position == "middle")]


def referring_expressions(graph: SceneGraph, rng: np.random.Generator, counts: dict | None = None,
                          absent_categories: list[str] | None = None) -> list[Expression]:
    """Verified expressions, up to counts[(scope, kind)] per bucket, distinct texts."""
    counts = counts or DEFAULT_COUNTS
    buckets: dict[tuple[str, str], dict[str, Expression]] = {}
    for sel, scope in candidates(graph, absent_categories or []):
        e = verified(sel, graph, scope)
        if e is not None:
            buckets.setdefault((e.scope, e.kind), {}).setdefault(e.text, e)
    chosen: list[Expression] = []
    for key in sorted(counts):
        pool = sorted(buckets.get(key, {}).values(), key=lambda e: e.text)
        for i in rng.permutation(len(pool))[:counts[key]]:
            chosen.append(pool[int(i)])
    return chosen


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _count_phrase(n: int, noun: str) -> str:
    if n == 1:
        return f"{article(noun)} {noun}"
    return f"{NUMBERS[n] if n < len(NUMBERS) else n} {plural(noun)}"


def dense_caption(graph: SceneGraph) -> str:
    groups = Counter((o.colour, o.category) for o in graph.objects)
    parts = [_count_phrase(n, f"{colour} {cat}" if colour else cat) for (colour, cat), n in sorted(groups.items())]
    if not parts:
        return "An empty image."
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    largest = min(graph.objects, key=lambda o: o.size_rank)
    return (f"An image with {listed}. The largest is the {largest.colour + ' ' if largest.colour else ''}"
            f"{largest.category} {'in the middle' if largest.horizontal == 'middle' else 'on the ' + largest.horizontal}.")


def segment_captions(graph: SceneGraph) -> list[dict]:
    out = []
    for o in graph.objects:
        where = "in the middle" if o.horizontal == "middle" else f"on the {o.horizontal}"
        what = o.phrase or (f"{o.colour} {o.category}" if o.colour else o.category)
        text = f"{article(what)} {what} {where} of the image"
        out.append({"ann_id": o.ann_id, "caption": text + (f", at the {o.vertical}" if o.vertical != "middle" else "")})
    return out


def questions(graph: SceneGraph, rng: np.random.Generator, absent_categories: list[str] | None = None) -> list[dict]:
    """QA pairs: how many, is there, which colour, where."""
    from soclake.language.programs import noun_phrase
    qa = []
    cats = Counter(o.category for o in graph.objects)
    for c, n in sorted(cats.items()):
        qa.append({"question": f"How many {plural(c)} are there?", "answer": str(n), "type": "count"})
        qa.append({"question": f"Is there a {c}?", "answer": "yes", "type": "exist"})
    for c in (absent_categories or [])[:2]:
        if c not in cats:
            qa.append({"question": f"Is there a {c}?", "answer": "no", "type": "exist"})
    for o in graph.objects:
        sel = unique_selector(graph, o.ann_id)
        if sel is None or sel.colour:
            continue
        if o.colour:
            qa.append({"question": f"What colour is the {noun_phrase(sel)}?", "answer": o.colour, "type": "colour",
                       "targets": [o.ann_id]})
        where = "in the middle" if o.horizontal == "middle" else f"on the {o.horizontal}"
        qa.append({"question": f"Where is the {noun_phrase(sel)}?", "answer": where, "type": "where",
                   "targets": [o.ann_id]})
    order = rng.permutation(len(qa))
    return [qa[int(i)] for i in order]


def describe(graph: SceneGraph, seed: int, absent_categories: list[str] | None = None,
             counts: dict | None = None) -> dict:
    """Everything the language stage writes for one image (KEY.refexp.json)."""
    rng = np.random.default_rng(seed)
    return {"generator": "graph", "seed": seed,
            "expressions": [e.to_json() for e in referring_expressions(graph, rng, counts, absent_categories)],
            "caption": dense_caption(graph), "segment_captions": segment_captions(graph),
            "qa": questions(graph, rng, absent_categories)}
