"""Referring expressions as programs: a selector (category, colour, position, extreme size,
relation to an anchor selector) executed against a scene graph gives the referent set; a
template renders it as text. An expression is kept only if re-executing its program gives
exactly what its bucket claims: one object (single), two or more (multi), none (no-target).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from soclake.stages.refexp.scene import Obj, SceneGraph

RELATION_WORDS = {"left_of": "to the left of", "right_of": "to the right of", "above": "above", "below": "below",
                  "on_top_of": "on top of", "near": "near"}
POSITION_WORDS = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom"}


@dataclass(frozen=True, slots=True)
class Selector:
    category: str | None = None
    colour: str | None = None
    position: str | None = None       # left / right (horizontal third) or top / bottom (vertical third)
    extreme: str | None = None        # largest / smallest among the matches
    relation: str | None = None       # left_of / right_of / above / below / on_top_of / near
    anchor: "Selector | None" = None  # the relation's other side (must select exactly one object)

    def matches(self, o: Obj) -> bool:
        if self.category and o.category != self.category:
            return False
        if self.colour and o.colour != self.colour:
            return False
        if self.position in ("left", "right") and o.horizontal != self.position:
            return False
        if self.position in ("top", "bottom") and o.vertical != self.position:
            return False
        return True


def execute(sel: Selector, graph: SceneGraph) -> frozenset[int]:
    """The ann_ids a selector refers to in a scene graph (memoised per graph)."""
    if sel not in graph.memo:
        graph.memo[sel] = _execute(sel, graph)
    return graph.memo[sel]


def _execute(sel: Selector, graph: SceneGraph) -> frozenset[int]:
    found = [o for o in graph.objects if sel.matches(o)]
    if sel.relation:
        anchors = execute(sel.anchor, graph)
        if len(anchors) != 1:
            return frozenset()
        a = graph.index[next(iter(anchors))]
        holds = graph.relations[sel.relation][:, a]
        found = [o for o in found if graph.index[o.ann_id] != a and holds[graph.index[o.ann_id]]]
    if sel.extreme and found:
        areas = sorted(o.area for o in found)
        pick = areas[-1] if sel.extreme == "largest" else areas[0]
        if areas.count(pick) > 1 or len(found) < 2:
            return frozenset()  # "the largest" needs a strict winner among several
        found = [o for o in found if o.area == pick]
    return frozenset(o.ann_id for o in found)


def plural(noun: str) -> str:
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def noun_phrase(sel: Selector, many: bool = False) -> str:
    noun = sel.category or "object"
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
    """The expression of `sel` if its referent set is what `scope` claims, else None."""
    ref = execute(sel, graph)
    if scope_of(ref) != scope:
        return None
    return Expression(render(sel, scope), sel, scope, kind_of(sel), sorted(ref))
