"""Referring expressions as programs: a selector (category, colour, position, extreme size,
relation to an anchor selector) executed against a scene graph gives two sets, the objects it
surely refers to and those it possibly refers to; a template renders it as text. An
expression is kept only if both sets are equal (nothing uncertain could change its meaning)
and hold what its bucket claims: one object (single), two or more (multi), none (no-target).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from soclake.stages.refexp.scene import SceneGraph, members

RELATION_WORDS = {"left_of": "to the left of", "right_of": "to the right of", "above": "above", "below": "below",
                  "on_top_of": "on top of", "near": "near"}
POSITION_WORDS = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom"}
OBJECT_NOUN = "object"


class Selector(NamedTuple):  # a tuple: hashed in C, as memo keys are hashed very often
    category: str | None = None
    colour: str | None = None
    position: str | None = None       # left / right (horizontal third) or top / bottom (vertical third)
    extreme: str | None = None        # largest / smallest among the matches
    relation: str | None = None       # left_of / right_of / above / below / on_top_of / near
    anchor: "Selector | None" = None  # the relation's other side (must select exactly one object)


Sets = tuple[int, int]  # (sure, possible) bit sets over graph.objects


def execute(sel: Selector, graph: SceneGraph) -> Sets:
    """(sure, possible) referents of a selector (memoised per graph). Sure referents are
    always usable objects; possible ones include everything that might match."""
    if sel not in graph.memo:
        graph.memo[sel] = _execute(sel, graph)
    return graph.memo[sel]


def referents(sel: Selector, graph: SceneGraph) -> frozenset[int] | None:
    """The ann_ids a selector certainly refers to, or None when that is uncertain."""
    key = ("referents", sel)
    if key not in graph.memo:
        sure, possible = execute(sel, graph)
        graph.memo[key] = None if sure != possible else frozenset(graph.objects[i].ann_id for i in members(sure))
    return graph.memo[key]


def _execute(sel: Selector, graph: SceneGraph) -> Sets:
    if sel.category is None:
        sure, possible = graph.everything & ~graph.phantom, graph.everything
    else:
        sure = possible = graph.by_category.get(sel.category, 0)
    sure &= graph.usable
    if sel.colour:
        s, p = graph.colour_bits[sel.colour]
        sure, possible = sure & s, possible & p
    if sel.position:
        s, p = graph.position_bits[sel.position]
        sure, possible = sure & s, possible & p
    if sel.relation:
        anchor = referents(sel.anchor, graph)
        if anchor is None or len(anchor) != 1:
            return 0, graph.everything  # no certain, unique anchor: nothing can be claimed
        a = graph.index[next(iter(anchor))]
        if sel.relation == "near":
            return _nearest(graph, sure & ~(1 << a), possible & ~(1 << a), a)
        s, p = graph.relation_bits[sel.relation]
        sure, possible = sure & s[a], possible & p[a]
    if sel.extreme:
        return _extreme(graph, sure, possible, sel.extreme)
    return sure, possible


def _extreme(graph: SceneGraph, sure: int, possible: int, which: str) -> Sets:
    """The largest / smallest: a sure match whose visible area beats every other possible
    match by the size margin, among at least two sure matches."""
    if not possible:
        return 0, 0
    if possible & graph.phantom or sure.bit_count() < 2:
        return 0, possible
    area = graph.geometry["area"]
    cands = sorted(members(possible), key=lambda i: area[i], reverse=which == "largest")
    best, runner = cands[0], cands[1]
    big, small = (area[best], area[runner]) if which == "largest" else (area[runner], area[best])
    if sure >> best & 1 and big >= (1 + graph.rules.size_margin) * small:
        return 1 << best, 1 << best
    return 0, possible


def _nearest(graph: SceneGraph, sure: int, possible: int, a: int) -> Sets:
    """near: the possible match nearest to the anchor (box distance) if it is sure, within
    `near` of the diagonal, and every other possible match is `near_margin` farther."""
    if not possible:
        return 0, 0
    if possible & graph.phantom:
        return 0, possible
    d = graph.box_distance[:, a]
    cands = sorted(members(possible), key=lambda i: d[i])
    r, diag = graph.rules, graph.diagonal
    first = d[cands[0]]
    if first > (r.near + r.near_margin) * diag:
        return 0, 0  # nothing within reach: certainly none
    second = d[cands[1]] if len(cands) > 1 else float("inf")
    if sure >> cands[0] & 1 and first <= r.near * diag and second >= first + r.near_margin * diag:
        return 1 << cands[0], 1 << cands[0]
    return 0, possible


def plural(noun: str) -> str:
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def noun_phrase(sel: Selector, many: bool = False) -> str:
    noun = sel.category or OBJECT_NOUN
    noun = plural(noun) if many else noun
    words = [sel.colour] if sel.colour else []
    if sel.extreme:
        words.insert(0, sel.extreme)
    text = " ".join(words + [noun])
    if sel.position:
        text += " " + POSITION_WORDS[sel.position]
    if sel.relation:
        text += f" {RELATION_WORDS[sel.relation]} the {noun_phrase(sel.anchor)}"
    return text


def render(sel: Selector, scope: str) -> str:
    if scope == "multi":
        return f"all the {noun_phrase(sel, many=True)}"
    return f"the {noun_phrase(sel)}"


def kind_of(sel: Selector) -> str:
    """attribute (category/colour only), spatial (position or a relation), reasoning (an
    extreme, or a relation whose target is named by colour only)."""
    if sel.extreme or (sel.relation and sel.category is None):
        return "reasoning"
    if sel.relation or sel.position:
        return "spatial"
    return "attribute"


def scope_of(referents: frozenset[int]) -> str:
    return "none" if not referents else "single" if len(referents) == 1 else "multi"


@dataclass
class Expression:
    text: str
    selector: Selector
    scope: str       # single / multi / none
    kind: str        # attribute / spatial / reasoning
    targets: list[int] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"text": self.text, "scope": self.scope, "kind": self.kind, "targets": self.targets}


def verified(sel: Selector, graph: SceneGraph, scope: str) -> Expression | None:
    """The expression of `sel` if its referent set is certain and is what `scope` claims."""
    ref = referents(sel, graph)
    if ref is None or scope_of(ref) != scope:
        return None
    return Expression(render(sel, scope), sel, scope, kind_of(sel), sorted(ref))
