"""Reading a referring expression back into a selector: the inverse of programs.render for
the phrases the graph backend writes ("the red ball on the left", "all the cups to the left of
the dog", "the largest blue object"), with "gray" and "a"/"an" accepted. Used to check texts
written by others (the llm backend); anything outside this grammar is None (unchecked).
"""
from __future__ import annotations

import re

from soclake.colour_names import BASIC_TERMS
from soclake.stages.refexp.programs import OBJECT_NOUN, POSITION_WORDS, RELATION_WORDS, Selector, plural

_POSITIONS = {v: k for k, v in POSITION_WORDS.items()}
_RELATIONS = {v: k for k, v in RELATION_WORDS.items()}
_HEAD = re.compile(r"^(all the|the|an|a) ")


def _nouns(categories: list[str]) -> list[tuple[str, str | None, bool]]:
    """(surface form, category or None for "object", plural?) longest first."""
    forms = [(c, c, False) for c in categories] + [(plural(c), c, True) for c in categories]
    forms += [(OBJECT_NOUN, None, False), (plural(OBJECT_NOUN), None, True)]
    return sorted(forms, key=lambda f: -len(f[0]))


def _noun_phrase(text: str, nouns) -> tuple[Selector, bool, str] | None:
    """(selector, plural?, rest of the text) of the noun phrase at the start of `text`."""
    extreme = None
    m = re.match(r"(largest|smallest) ", text)
    if m:
        extreme, text = m.group(1), text[m.end():]
    for colour_first in (True, False):
        rest, colour = text, None
        if colour_first:
            word = rest.split(" ", 1)[0]
            if word not in BASIC_TERMS:
                continue
            colour, rest = word, rest[len(word) + 1:]
        for form, category, many in nouns:
            if rest == form or rest.startswith(form + " "):
                return _modifiers(Selector(category, colour, None, extreme), many, rest[len(form):].lstrip(), nouns)
    return None


def _modifiers(sel: Selector, many: bool, rest: str, nouns) -> tuple[Selector, bool, str] | None:
    for words, position in _POSITIONS.items():
        if rest == words or rest.startswith(words + " "):
            sel = Selector(sel.category, sel.colour, position, sel.extreme)
            rest = rest[len(words):].lstrip()
            break
    for words, relation in _RELATIONS.items():
        if rest.startswith(words + " the "):
            anchor = _noun_phrase(rest[len(words) + 5:], nouns)
            if anchor is None or anchor[1]:
                return None
            return (Selector(sel.category, sel.colour, sel.position, sel.extreme, relation, anchor[0]), many,
                    anchor[2])
    return sel, many, rest


def parse(text: str, categories: list[str]) -> tuple[Selector, bool] | None:
    """(selector, plural?) of a whole expression, or None if it is not in the grammar."""
    text = re.sub(r"\s+", " ", text.strip().lower().rstrip(".")).replace("gray", "grey")
    m = _HEAD.match(text)
    if not m:
        return None
    got = _noun_phrase(text[m.end():], _nouns(categories))
    if got is None or got[2] or (m.group(1) == "all the") != got[1]:
        return None
    return got[0], got[1]
