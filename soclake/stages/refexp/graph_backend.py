"""The `graph` language backend: referring expressions, a dense caption, per-segment captions
and QA pairs from a scene graph, deterministic for a seed and true of the image: every
expression is re-executed against the graph and kept only if nothing uncertain (a colour
that does not dominate, a position near a third's boundary, a close size, a tiny or an
unlabelled object) could change what it refers to; captions and answers follow the same rules.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from soclake.colour_names import BASIC_TERMS
from soclake.stages.refexp.programs import (
    RELATION_WORDS,
    Expression,
    Selector,
    noun_phrase,
    plural,
    referents,
    verified,
)
from soclake.stages.refexp.scene import POSITIONS, Obj, SceneGraph

DEFAULT_COUNTS = {("single", "attribute"): 6, ("single", "spatial"): 6, ("single", "reasoning"): 6,
                  ("multi", "attribute"): 3, ("multi", "spatial"): 3, ("multi", "reasoning"): 3,
                  ("none", "attribute"): 2, ("none", "spatial"): 1}
NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
SINGLE_ONLY = ("near",)  # a unique nearest: never "all the ... near"


def unique_selector(graph: SceneGraph, ann_id: int, colour: bool = True, position: bool = True) -> Selector | None:
    """The simplest selector (category; + colour; + position) that certainly names exactly
    this object, if any."""
    key = ("unique", ann_id, colour, position)
    if key not in graph.memo:
        graph.memo[key] = _unique_selector(graph, ann_id, colour, position)
    return graph.memo[key]


def _unique_selector(graph: SceneGraph, ann_id: int, colour: bool, position: bool) -> Selector | None:
    o = graph.by_id()[ann_id]
    if not o.usable:
        return None
    options = [Selector(category=o.category)]
    if colour and o.colour:
        options.append(Selector(category=o.category, colour=o.colour))
    if position:
        options += [Selector(category=o.category, position=p) for p in (o.horizontal, o.vertical) if p in POSITIONS]
    for sel in options:
        if referents(sel, graph) == {ann_id}:
            return sel
    return None


def candidates(graph: SceneGraph, absent_categories: list[str]) -> dict[tuple[str, str], list[tuple]]:
    """Selectors worth verifying, by the (scope, kind) bucket they would fill, each built once
    from the categories, colours and positions the scene can surely show. Selectors are plain
    tuples in Selector's field order (equal to the Selector they stand for), made into
    Selectors only when drawn."""
    objs = [o for o in graph.labelled if o.usable]
    cats = sorted({o.category for o in graph.labelled})
    colours = sorted({o.colour for o in objs if o.colour})
    pairs = sorted({(o.category, o.colour) for o in objs if o.colour})
    places = sorted({(o.category, p) for o in objs for p in (o.horizontal, o.vertical) if p in POSITIONS})
    attribute = [(c,) for c in cats] + [(c, k) for c, k in pairs] + [(None, k) for k in colours]
    spatial = [(c, None, p) for c, p in places]
    reasoning = ([(c, None, None, e) for c in cats for e in ("largest", "smallest")]
                 + [(None, k, None, "largest") for k in colours])
    pools: dict[tuple[str, str], list[tuple]] = {}
    for scope in ("single", "multi"):
        pools[(scope, "attribute")] = list(attribute)
        pools[(scope, "spatial")] = list(spatial)
        pools[(scope, "reasoning")] = list(reasoning)
    usable = graph.usable
    cat_bits = [(c, graph.by_category[c] & usable) for c in cats]
    colour_bits = [(k, graph.colour_bits[k][0] & usable) for k in colours]
    for o in objs:
        anchor = unique_selector(graph, o.ann_id)
        if anchor is None:
            continue
        j = graph.index[o.ann_id]
        for rel in RELATION_WORDS:
            related = graph.relation_bits[rel][0][j]  # what can be true
            if not related:
                continue
            scopes = ("single",) if rel in SINGLE_ONLY else ("single", "multi")
            by_cat = [(c, None, None, None, rel, anchor) for c, b in cat_bits if b & related]
            by_colour = [(None, k, None, None, rel, anchor) for k, b in colour_bits if b & related]
            for scope in scopes:
                pools[(scope, "spatial")] += by_cat
                pools[(scope, "reasoning")] += by_colour
    pools[("multi", "spatial")] += [(None, None, p) for p in POSITIONS]
    pools[("none", "spatial")] = [(c, None, p) for c in cats for p in POSITIONS if (c, p) not in places]
    pools[("none", "attribute")] = ([(c, k) for c in cats for k in BASIC_TERMS if (c, k) not in pairs]
                                    + [(c,) for c in absent_categories if c not in cats])
    return pools


def referring_expressions(graph: SceneGraph, rng: np.random.Generator, counts: dict | None = None,
                          absent_categories: list[str] | None = None) -> list[Expression]:
    """Verified expressions, up to counts[(scope, kind)] per bucket, distinct texts. A
    candidate's bucket is known before it runs, so each bucket is drawn in a seeded random
    order and programs are executed only until the bucket is full."""
    counts = counts or DEFAULT_COUNTS
    pools = candidates(graph, absent_categories or [])
    chosen: list[Expression] = []
    for key in sorted(counts):
        pool, texts, want = pools.get(key, []), set(), counts[key]
        for i in rng.permutation(len(pool)):
            if len(texts) >= want:
                break
            e = verified(Selector(*pool[int(i)]), graph, key[0])
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


def _category_phrases(members_: list[Obj]) -> list[str]:
    """How a caption lists one category's instances: counted, split by colour when every one
    has a dominant colour; a bare plural when some are too small to use; nothing when all are."""
    usable = [o for o in members_ if o.usable]
    cat = members_[0].category
    if len(usable) < len(members_):
        return [plural(cat)] if len(members_) >= 2 and usable else []
    if all(o.colour for o in usable):
        groups = Counter(o.colour for o in usable)
        return [_count_phrase(n, f"{k} {cat}") for k, n in sorted(groups.items())]
    return [_count_phrase(len(usable), cat)]


def _where(o: Obj) -> str | None:
    """"on the left" / "in the middle" / "on the right", None near a third's boundary."""
    if o.horizontal is None:
        return None
    return "in the middle" if o.horizontal == "middle" else f"on the {o.horizontal}"


def largest_object(graph: SceneGraph) -> Obj | None:
    """The largest visible object if it is usable and beats every other visible one (labelled
    or not) by the size margin."""
    if not graph.complete or not graph.objects:
        return None
    ranked = sorted(graph.objects, key=lambda o: -o.area)
    top = ranked[0]
    if not top.usable or (len(ranked) > 1 and top.area < (1 + graph.rules.size_margin) * ranked[1].area):
        return None
    return top


def dense_caption(graph: SceneGraph) -> str:
    by_cat: dict[str, list[Obj]] = {}
    for o in graph.labelled:
        by_cat.setdefault(o.category, []).append(o)
    parts = [p for cat in sorted(by_cat) for p in _category_phrases(by_cat[cat])]
    if not parts:
        return "An empty image." if graph.complete and not graph.objects else ""
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    text = f"An image with {listed}."
    top = largest_object(graph)
    if top is not None:
        where = _where(top)
        text += f" The largest is the {top.colour + ' ' if top.colour else ''}{top.category}{' ' + where if where else ''}."
    return text


def phrase_of(o: Obj) -> str:
    """The pool's short phrase when every basic colour word in it is the object's dominant
    colour, else the measured colour (if one dominates) and the category."""
    words = set((o.phrase or "").lower().replace("gray", "grey").replace("-", " ").split())
    if o.phrase and all(w == o.colour for w in words & set(BASIC_TERMS)):
        return o.phrase
    return f"{o.colour} {o.category}" if o.colour else o.category


def segment_captions(graph: SceneGraph) -> list[dict]:
    out = []
    for o in graph.labelled:
        if not o.usable:
            continue
        what = phrase_of(o)
        text = f"{article(what)} {what}"
        where = _where(o)
        up = o.vertical if o.vertical in ("top", "bottom") else None
        if where:
            text += f" {where} of the image" + (f", at the {up}" if up else "")
        elif up:
            text += f" at the {up} of the image"
        out.append({"ann_id": o.ann_id, "caption": text})
    return out


def questions(graph: SceneGraph, rng: np.random.Generator, absent_categories: list[str] | None = None) -> list[dict]:
    """QA pairs: how many, is there, which colour, where; none about an object under
    min_pixels or a fact inside a margin."""
    qa = []
    by_cat: dict[str, list[Obj]] = {}
    for o in graph.labelled:
        by_cat.setdefault(o.category, []).append(o)
    for c, objs in sorted(by_cat.items()):
        if all(o.usable for o in objs):
            qa.append({"question": f"How many {plural(c)} are there?", "answer": str(len(objs)), "type": "count",
                       "targets": sorted(o.ann_id for o in objs)})
        if any(o.usable for o in objs):
            qa.append({"question": f"Is there {article(c)} {c}?", "answer": "yes", "type": "exist"})
    for c in (absent_categories or [])[:2]:
        if c not in by_cat:
            qa.append({"question": f"Is there {article(c)} {c}?", "answer": "no", "type": "exist"})
    for o in graph.labelled:
        sel = unique_selector(graph, o.ann_id, colour=False)
        if sel is None:
            continue
        if o.colour:
            qa.append({"question": f"What colour is the {noun_phrase(sel)}?", "answer": o.colour, "type": "colour",
                       "targets": [o.ann_id]})
        where = _where(o)
        if where and not sel.position:
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

