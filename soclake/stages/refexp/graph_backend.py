"""The `graph` language backend: referring expressions, a dense caption, per-segment captions
and QA pairs from a scene graph, deterministic for a seed and true by construction (every
expression is re-executed against the graph before it is kept).
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from soclake.stages.refexp.programs import Expression, Selector, execute, kind_of, noun_phrase, plural, verified
from soclake.stages.refexp.scene import RELATIONS, SceneGraph

DEFAULT_COUNTS = {("single", "attribute"): 6, ("single", "spatial"): 6, ("single", "reasoning"): 6,
                  ("multi", "attribute"): 3, ("multi", "spatial"): 3, ("multi", "reasoning"): 3,
                  ("none", "attribute"): 2, ("none", "spatial"): 1}
COLOURS = ("black", "white", "grey", "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown")
NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def unique_selector(graph: SceneGraph, ann_id: int) -> Selector | None:
    """The simplest category/colour selector naming exactly this object, if any."""
    o = graph.by_id()[ann_id]
    for sel in (Selector(category=o.category), Selector(category=o.category, colour=o.colour)):
        if execute(sel, graph) == {ann_id}:
            return sel
    return None


def candidates(graph: SceneGraph, absent_categories: list[str]) -> list[tuple[Selector, str]]:
    """(selector, claimed scope) pairs worth verifying, each built once from the distinct
    categories, colours and positions of the scene."""
    objs = graph.objects
    cats = sorted({o.category for o in objs})
    colours = sorted({o.colour for o in objs if o.colour})
    pairs = sorted({(o.category, o.colour) for o in objs if o.colour})
    places = sorted({(o.category, p) for o in objs for p in (o.horizontal, o.vertical) if p != "middle"})
    base = ([Selector(category=c) for c in cats] + [Selector(category=c, colour=k) for c, k in pairs]
            + [Selector(colour=k) for k in colours] + [Selector(category=c, position=p) for c, p in places]
            + [Selector(category=c, extreme=e) for c in cats for e in ("largest", "smallest")]
            + [Selector(colour=k, extreme="largest") for k in colours])
    out = [(sel, scope) for sel in base for scope in ("single", "multi")]
    for o in objs:
        anchor = unique_selector(graph, o.ann_id)
        if anchor is None:
            continue
        j = graph.index[o.ann_id]
        for rel in RELATIONS:
            related = [objs[i] for i in np.flatnonzero(graph.relations[rel][:, j]) if i != j]  # what can be true
            out += [(Selector(category=c, relation=rel, anchor=anchor), "single")
                    for c in sorted({r.category for r in related})]
            out += [(Selector(colour=k, relation=rel, anchor=anchor), scope)
                    for k in sorted({r.colour for r in related if r.colour}) for scope in ("single", "multi")]
    out += [(Selector(position=p), "multi") for p in ("left", "right", "top", "bottom")]
    out += [(Selector(category=c, position=p), "none") for c in cats for p in ("left", "right", "top", "bottom")
            if (c, p) not in places]
    out += [(Selector(category=c, colour=k), "none") for c in cats for k in COLOURS if k not in colours]
    out += [(Selector(category=c), "none") for c in absent_categories if c not in cats]
    return out


def referring_expressions(graph: SceneGraph, rng: np.random.Generator, counts: dict | None = None,
                          absent_categories: list[str] | None = None) -> list[Expression]:
    """Verified expressions, up to counts[(scope, kind)] per bucket, distinct texts. A
    candidate's bucket is known before it runs, so each bucket is drawn in a seeded random
    order and programs are executed only until the bucket is full."""
    counts = counts or DEFAULT_COUNTS
    pools: dict[tuple[str, str], list[Selector]] = {}
    for sel, scope in candidates(graph, absent_categories or []):
        pools.setdefault((scope, kind_of(sel)), []).append(sel)
    chosen: list[Expression] = []
    for key in sorted(counts):
        pool, texts, want = pools.get(key, []), set(), counts[key]
        for i in rng.permutation(len(pool)):
            if len(texts) >= want:
                break
            e = verified(pool[int(i)], graph, key[0])
            if e is not None and e.text not in texts:
                texts.add(e.text)
                chosen.append(e)
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
