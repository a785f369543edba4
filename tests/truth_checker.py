"""An independent check of a refexp job's language against its shards' own pixels.

It shares no code with soclake's language, colour naming or scene facts: it decodes the
composite and KEY.pan.png itself, names colours with its own implementation of the
documented rule (docs/colour_names.md: CIELAB by scikit-image, the 5 nearest xkcd survey names
by scipy's KD-tree, exact per colour, no quantisation), measures boxes, contacts (scipy's
Euclidean distance transform) and areas on the masks, parses every text with its own grammar
and decides whether it is true. From KEY.json it takes only what pixels cannot tell:
categories, paste order (z) and where unlabelled objects are (their RLE, checked to be void in
the panoptic map).

Semantics (the rules of schemas/refexp_spec.json, with the defaults used in the tests): a
colour word is true of an object when at least DOMINANCE - TOL of its visible pixels have the
colour, and an object is clearly not that colour below ABSENT + TOL (TOL absorbs the
generator's 6-bit quantisation and JPEG decoders); a fact inside a margin, an object under
MIN_PIXELS or an unlabelled object can never make an expression true, and an expression is
false as soon as such an object might also fit it.

    python tests/truth_checker.py LAKE REFEXP_JOB     # prints the false claims by kind
"""
from __future__ import annotations

import io
import json
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.color import rgb2lab

HERE = os.path.dirname(os.path.abspath(__file__))
SURVEY = os.path.join(HERE, "..", "soclake", "data", "xkcd_colour_survey.tsv")
TERMS = ("black", "white", "grey", "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown")
DOMINANCE, ABSENT, TOL = 0.5, 0.2, 0.05
MIN_PIXELS, MARGIN, SIZE_MARGIN, CONTACT_PX, NEAR, NEAR_MARGIN = 150, 0.03, 0.1, 2.0, 0.05, 0.05
ROLE_WORDS = ("distractor", "decoy", "unlabelled", "unlabeled")
POS = {"on the left": "left", "on the right": "right", "at the top": "top", "at the bottom": "bottom"}
REL = {"to the left of": "left_of", "to the right of": "right_of", "above": "above", "below": "below",
       "on top of": "on_top_of", "near": "near"}
NUMBER_WORDS = {"a": 1, "an": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                "nine": 9, "ten": 10}


# ---------------------------------------------------------------------------- colours
class Namer:
    """The documented colour rule, exact per colour, with a cache over 2^24 colours."""

    def __init__(self):
        names, rgb = [], []
        for line in open(SURVEY, encoding="utf-8"):
            if line.strip() and not line.startswith("#"):
                name, hexa = line.rstrip("\n").split("\t")
                names.append(name)
                rgb.append(tuple(int(hexa[i:i + 2], 16) for i in (1, 3, 5)))
        keep = [(self._term(n), c) for n, c in zip(names, rgb) if self._term(n)]
        self.vote_terms = np.array([TERMS.index(t) for t, _ in keep])
        self.tree = cKDTree(rgb2lab(np.array([c for _, c in keep], np.float64)[None] / 255.0)[0])
        self.cache = np.full(1 << 24, 255, np.uint8)

    @staticmethod
    def _term(name: str) -> str | None:
        words = [w for w in re.split(r"[ /-]+", name.strip().lower()) if w]
        words = ["grey" if w == "gray" else w for w in words]
        head = words[-1]
        if head in TERMS and all(w not in TERMS or w == head for w in words[:-1]):
            return head
        return None

    def terms(self, pixels: np.ndarray) -> np.ndarray:
        """Term index (len(TERMS) = none) of (N, 3) uint8 pixels."""
        code = (pixels[:, 0].astype(np.int64) << 16) | (pixels[:, 1].astype(np.int64) << 8) | pixels[:, 2]
        todo = np.unique(code[self.cache[code] == 255])
        if len(todo):
            rgb = np.stack([(todo >> 16) & 255, (todo >> 8) & 255, todo & 255], axis=1).astype(np.float64)
            lab = rgb2lab(rgb[None] / 255.0)[0]
            _, idx = self.tree.query(lab, k=5)
            votes = np.zeros((len(todo), len(TERMS)), int)
            for j in range(5):
                votes[np.arange(len(todo)), self.vote_terms[idx[:, j]]] += 1
            out = np.where(votes.max(axis=1) >= 3, votes.argmax(axis=1), len(TERMS))
            chroma = np.hypot(lab[:, 1], lab[:, 2])
            out = np.where(chroma < 10, np.where(lab[:, 0] < 25, 0, np.where(lab[:, 0] > 86, 1, 2)), out)
            self.cache[todo] = out
        return self.cache[code]


@lru_cache(maxsize=1)
def namer() -> Namer:
    return Namer()


def plural(noun: str) -> str:
    if re.search(r"(s|x|z|ch|sh)$", noun):
        return noun + "es"
    if re.search(r"[^aeiou]y$", noun):
        return noun[:-1] + "ies"
    return noun + "s"


# ---------------------------------------------------------------------------- the image
@dataclass
class Thing:
    ann_id: int | None
    category: str | None
    z: float
    mask: np.ndarray
    area: int
    box: tuple[int, int, int, int]    # x0, y0, x1, y1 (exclusive)
    shares: np.ndarray                # share per term

    @property
    def usable(self) -> bool:
        return self.ann_id is not None and self.area >= MIN_PIXELS

    @property
    def cx(self) -> float:
        return (self.box[0] + self.box[2]) / 2

    @property
    def cy(self) -> float:
        return (self.box[1] + self.box[3]) / 2


@dataclass
class Picture:
    width: int
    height: int
    things: list[Thing]
    complete: bool
    _gaps: dict = field(default_factory=dict)

    def gap(self, i: int, j: int) -> float:
        key = (min(i, j), max(i, j))
        if key not in self._gaps:
            a, b = self.things[i], self.things[j]
            dist = ndimage.distance_transform_edt(~a.mask)
            self._gaps[key] = float(dist[b.mask].min())
        return self._gaps[key]

    def box_distance(self, i: int, j: int) -> float:
        a, b = self.things[i].box, self.things[j].box
        dx = max(0, a[0] - b[2], b[0] - a[2])
        dy = max(0, a[1] - b[3], b[1] - a[3])
        return float(np.hypot(dx, dy))


def decode_image(members: dict, info: dict, problems: list) -> Picture:
    ext = next(k for k in members if k.split(".")[-1] in ("jpg", "png", "webp") and not k.startswith(("pan", "fg")))
    rgb = np.asarray(Image.open(io.BytesIO(members[ext])).convert("RGB"))
    pan = np.asarray(Image.open(io.BytesIO(members["pan.png"])).convert("RGB")).astype(np.int64)
    ids = pan[..., 0] + 256 * pan[..., 1] + 65536 * pan[..., 2]
    H, W = ids.shape
    masks = [(inst["ann_id"], inst["category"], inst.get("z", inst.get("layer", 0)), ids == inst["panoptic_id"])
             for inst in info["instances"]]
    scene = info.get("scene")
    for u in (scene or {}).get("unlabelled", []):
        m = mask_utils.decode({"size": u["segmentation"]["size"], "counts": u["segmentation"]["counts"].encode()}) > 0
        if (ids[m] != 0).any():
            problems.append(("bookkeeping", "an unlabelled object's pixels are labelled in pan.png"))
        masks.append((None, None, u["z"], m))
    terms = namer().terms(rgb.reshape(-1, 3)).reshape(H, W)
    things = []
    for ann_id, cat, z, m in masks:
        area = int(m.sum())
        if not area:
            problems.append(("bookkeeping", f"object {ann_id} has no visible pixels"))
            continue
        ys, xs = np.nonzero(m)
        shares = np.bincount(terms[m], minlength=len(TERMS) + 1)[:len(TERMS)] / area
        things.append(Thing(ann_id, cat, z, m, area, (int(xs.min()), int(ys.min()), int(xs.max()) + 1,
                                                      int(ys.max()) + 1), shares))
    return Picture(W, H, things, scene is not None)


# ---------------------------------------------------------------------------- parsing
@dataclass
class NP:
    noun: str | None          # category, None for "object"
    many: bool = False
    colour: str | None = None
    extreme: str | None = None
    position: str | None = None
    relation: str | None = None
    anchor: "NP | None" = None


class Parser:
    def __init__(self, categories: list[str]):
        forms = {}
        for c in categories:
            forms[c] = (c, False)
            forms[plural(c)] = (c, True)
        forms["object"], forms["objects"] = (None, False), (None, True)
        self.forms = sorted(forms.items(), key=lambda kv: -len(kv[0]))

    def noun_phrase(self, s: str) -> tuple[NP, str] | None:
        extreme = None
        m = re.match(r"(largest|smallest) ", s)
        if m:
            extreme, s = m.group(1), s[m.end():]
        for with_colour in (True, False):
            rest, colour = s, None
            if with_colour:
                m = re.match(r"(%s) " % "|".join(TERMS), rest)
                if not m:
                    continue
                colour, rest = m.group(1), rest[m.end():]
            for form, (cat, many) in self.forms:
                if rest == form or rest.startswith(form + " "):
                    np_ = NP(cat, many, colour, extreme)
                    tail = rest[len(form):].lstrip()
                    return self._modifiers(np_, tail)
        return None

    def _modifiers(self, np_: NP, tail: str) -> tuple[NP, str] | None:
        for words, pos in POS.items():
            if tail == words or tail.startswith(words + " "):
                np_.position, tail = pos, tail[len(words):].lstrip()
                break
        for words, rel in REL.items():
            if tail.startswith(words + " the "):
                sub = self.noun_phrase(tail[len(words) + 5:])
                if sub is None:
                    return None
                np_.relation, np_.anchor = rel, sub[0]
                return np_, sub[1]
        return np_, tail

    def expression(self, text: str) -> NP | None:
        m = re.match(r"(all the|the) ", text)
        if not m:
            return None
        got = self.noun_phrase(text[m.end():])
        if got is None or got[1]:
            return None
        np_ = got[0]
        if (m.group(1) == "all the") != np_.many:
            return None
        return np_


# ---------------------------------------------------------------------------- truth
def colour_state(t: Thing, colour: str) -> tuple[bool, bool]:
    """(surely, possibly) of a colour word for a thing."""
    if t.area < MIN_PIXELS:
        return False, True
    share = t.shares[TERMS.index(colour)]
    return share >= DOMINANCE - TOL and t.usable, share >= ABSENT + TOL


def position_state(img: Picture, t: Thing, pos: str) -> tuple[bool, bool]:
    if pos in ("left", "right"):
        c, extent = t.cx, img.width
    else:
        c, extent = t.cy, img.height
    m = MARGIN * extent
    if pos in ("left", "top"):
        return c < extent / 3 - m, c < extent / 3 + m
    return c > 2 * extent / 3 + m, c > 2 * extent / 3 - m


def relation_holds(img: Picture, i: int, a: int, rel: str) -> bool:
    t, o = img.things[i], img.things[a]
    if rel == "left_of":
        return t.box[2] <= o.cx and t.cx < o.box[0]
    if rel == "right_of":
        return o.box[2] <= t.cx and o.cx < t.box[0]
    if rel == "above":
        return t.box[3] <= o.cy and t.cy < o.box[1]
    if rel == "below":
        return o.box[3] <= t.cy and o.cy < t.box[1]
    if rel == "on_top_of":
        return t.z > o.z and img.gap(i, a) <= CONTACT_PX
    raise ValueError(rel)


def evaluate(img: Picture, np_: NP, problems: list) -> tuple[set, set]:
    """(surely, possibly) referent indices of a noun phrase; appends why where it matters."""
    sure, possible = set(), set()
    for i, t in enumerate(img.things):
        if np_.noun is not None and t.category != np_.noun:
            continue
        s, p = t.usable, True
        if np_.colour:
            cs, cp = colour_state(t, np_.colour)
            s, p = s and cs, p and cp
        if np_.position:
            ps, pp = position_state(img, t, np_.position)
            s, p = s and ps, p and pp
        if p:
            possible.add(i)
        if s:
            sure.add(i)
    if np_.noun is None and not img.complete:
        possible.add(-1)  # objects the shard does not describe may match
    if np_.relation:
        a_sure, a_possible = evaluate(img, np_.anchor, problems)
        if a_sure != a_possible or len(a_sure) != 1:
            problems.append(("relation", "the anchor is not one certain object"))
            return set(), {-2}
        a = next(iter(a_sure))
        sure.discard(a)
        possible.discard(a)
        if np_.relation == "near":
            return _near(img, sure, possible, a, problems)
        sure = {i for i in sure if relation_holds(img, i, a, np_.relation)}
        possible = {i for i in possible if i < 0 or relation_holds(img, i, a, np_.relation)}
    if np_.extreme:
        return _extreme(img, sure, possible, np_.extreme, problems)
    return sure, possible


def _near(img: Picture, sure: set, possible: set, a: int, problems: list) -> tuple[set, set]:
    if -1 in possible:
        return set(), possible
    diag = float(np.hypot(img.width, img.height))
    ranked = sorted(possible, key=lambda i: img.box_distance(i, a))
    if not ranked or img.box_distance(ranked[0], a) > (NEAR + NEAR_MARGIN) * diag:
        return set(), set()
    d1 = img.box_distance(ranked[0], a)
    d2 = img.box_distance(ranked[1], a) if len(ranked) > 1 else np.inf
    if ranked[0] in sure and d1 <= NEAR * diag and d2 >= d1 + NEAR_MARGIN * diag:
        return {ranked[0]}, {ranked[0]}
    problems.append(("relation", "near: no unique nearest with the margin"))
    return set(), possible


def _extreme(img: Picture, sure: set, possible: set, which: str, problems: list) -> tuple[set, set]:
    if not possible:
        return set(), set()
    if -1 in possible or len(sure) < 2:
        problems.append(("extreme", "fewer than two certain candidates"))
        return set(), possible
    ranked = sorted(possible, key=lambda i: img.things[i].area, reverse=which == "largest")
    a, b = img.things[ranked[0]].area, img.things[ranked[1]].area
    big, small = (a, b) if which == "largest" else (b, a)
    if ranked[0] in sure and big >= (1 + SIZE_MARGIN) * small:
        return {ranked[0]}, {ranked[0]}
    problems.append(("extreme", f"{which} does not win by the margin"))
    return set(), possible


def claims_of(np_: NP) -> str:
    """The kind of a false expression, for the report: the first of colour, relation, extreme,
    position it uses, else attribute."""
    parts = [np_] + ([np_.anchor] if np_.anchor else [])
    if any(p.colour for p in parts):
        return "colour"
    if np_.relation:
        return "relation"
    if np_.extreme:
        return "extreme"
    if any(p.position for p in parts):
        return "position"
    return "attribute"


def check_expression(img: Picture, parser: Parser, e: dict) -> list[tuple[str, str]]:
    """Problems of one expression (empty when it is true)."""
    text = e["text"]
    if any(w in text for w in ROLE_WORDS):
        return [("role", f"{text!r} names an internal role")]
    np_ = parser.expression(text)
    if np_ is None:
        return [("parse", f"cannot read {text!r}")]
    problems: list = []
    sure, possible = evaluate(img, np_, problems)
    ids = {i: img.things[i].ann_id for i in sure}
    kind = claims_of(np_)
    out = []
    if e["scope"] == "none":
        if possible:
            out.append((kind, f"{text!r} claims no referent but {len(possible)} may fit"))
    elif sure != possible:
        out.append((kind, f"{text!r}: uncertain referents ({len(possible - sure)} objects may or may not fit)"))
    elif sorted(ids.values()) != sorted(e["targets"]):
        out.append((kind, f"{text!r}: refers to {sorted(ids.values())}, targets {e['targets']}"))
    elif (e["scope"] == "single") != (len(sure) == 1):
        out.append((kind, f"{text!r}: scope {e['scope']} with {len(sure)} referents"))
    return out + [p for p in problems if out]


def false_colour_words(img: Picture, parser: Parser, e: dict) -> int:
    """Colour words of an expression that are false of the objects they describe (targets for
    single/multi; for no-target, the claim that nothing of that description shows)."""
    np_ = parser.expression(e["text"])
    if np_ is None or not np_.colour:
        return 0
    by_ann = {t.ann_id: t for t in img.things if t.ann_id is not None}
    if e["scope"] == "none":
        base = NP(np_.noun, np_.many, None, None, np_.position)
        sure, _ = evaluate(img, base, [])
        return int(any(img.things[i].shares[TERMS.index(np_.colour)] >= DOMINANCE - TOL for i in sure))
    return sum(by_ann[t].shares[TERMS.index(np_.colour)] < DOMINANCE - TOL for t in e["targets"] if t in by_ann)


def false_relations(img: Picture, parser: Parser, e: dict) -> tuple[str | None, int]:
    """(relation, targets for which it does not hold) against an anchor that the checker
    resolves to one certain object; expressions with an unclear anchor are counted by
    check_expression, not here."""
    np_ = parser.expression(e["text"])
    if np_ is None or not np_.relation or e["scope"] == "none":
        return None, 0
    a_sure, a_possible = evaluate(img, np_.anchor, [])
    index = {t.ann_id: i for i, t in enumerate(img.things) if t.ann_id is not None}
    if a_sure != a_possible or len(a_sure) != 1:
        return np_.relation, 0
    a = next(iter(a_sure))
    bad = 0
    for t in e["targets"]:
        i = index[t]
        if np_.relation == "near":
            base = NP(np_.noun, np_.many, np_.colour, None, np_.position, "near", np_.anchor)
            s, p = evaluate(img, base, [])
            bad += s != {i} or p != {i}
        else:
            bad += not relation_holds(img, i, a, np_.relation)
    return np_.relation, bad


# ---------------------------------------------------------------------------- QA and captions
def _where_of(img: Picture, t: Thing) -> str | None:
    for name in ("left", "right"):
        if position_state(img, t, name)[0]:
            return f"on the {name}"
    if not position_state(img, t, "left")[1] and not position_state(img, t, "right")[1]:
        return "in the middle"
    return None


def _vertical_of(img: Picture, t: Thing) -> str | None:
    for name in ("top", "bottom"):
        if position_state(img, t, name)[0]:
            return name
    return None


def check_qa(img: Picture, parser: Parser, qa: dict, vocabulary: set) -> list[tuple[str, str]]:
    q, a = qa["question"], qa["answer"]
    if any(w in q.lower() for w in ROLE_WORDS):
        return [("role", f"{q!r} names an internal role")]
    labelled = [t for t in img.things if t.ann_id is not None]
    m = re.fullmatch(r"How many (.+) are there\?", q)
    if m:
        cat = next((c for c in {t.category for t in labelled} if plural(c) == m.group(1)), None)
        same = [t for t in labelled if t.category == cat]
        if not same or str(len(same)) != a:
            return [("count", f"{q} {a}: {len(same)} visible")]
        if any(not t.usable for t in same):
            return [("count", f"{q}: counts an object under {MIN_PIXELS} px")]
        return []
    m = re.fullmatch(r"Is there an? (.+)\?", q)
    if m:
        cat = m.group(1)
        if cat not in vocabulary:
            return [("exist", f"{q}: {cat!r} is not a category of labelled segments")]
        same = [t for t in labelled if t.category == cat]
        if a == "yes" and not any(t.usable for t in same) or a == "no" and same:
            return [("exist", f"{q} {a}: {len(same)} visible")]
        return []
    m = re.fullmatch(r"What colour is the (.+)\?", q)
    if m:
        return _check_about(img, parser, m.group(1), qa, "colour",
                            lambda t: colour_state(t, a)[0] if a in TERMS else False)
    m = re.fullmatch(r"Where is the (.+)\?", q)
    if m:
        return _check_about(img, parser, m.group(1), qa, "where", lambda t: _where_of(img, t) == a)
    return [("parse", f"cannot read question {q!r}")]


def _check_about(img, parser, phrase, qa, kind, holds) -> list:
    np_ = parser.expression("the " + phrase)
    if np_ is None:
        return [("parse", f"cannot read {phrase!r}")]
    sure, possible = evaluate(img, np_, [])
    if sure != possible or len(sure) != 1 or [img.things[i].ann_id for i in sure] != qa["targets"]:
        return [(kind, f"{qa['question']}: the subject is not one certain object")]
    if not holds(img.things[next(iter(sure))]):
        return [(kind, f"{qa['question']} {qa['answer']}: false of the pixels")]
    return []


def check_segment_caption(img: Picture, cap: dict) -> list[tuple[str, str]]:
    t = next((t for t in img.things if t.ann_id == cap["ann_id"]), None)
    text = cap["caption"]
    if t is None or not t.usable:
        return [("caption", f"{text!r} describes an object under {MIN_PIXELS} px")]
    out = []
    for word in set(re.findall(r"[a-z]+", text.lower())) & set(TERMS):
        if not colour_state(t, word)[0]:
            out.append(("colour", f"segment caption {text!r}: {word} covers {t.shares[TERMS.index(word)]:.2f}"))
    m = re.search(r" (on the left|in the middle|on the right) of the image", text)
    if m and _where_of(img, t) != m.group(1):
        out.append(("position", f"segment caption {text!r}: {m.group(1)} is not sure"))
    m = re.search(r"at the (top|bottom)", text)
    if m and _vertical_of(img, t) != m.group(1):
        out.append(("position", f"segment caption {text!r}: {m.group(1)} is not sure"))
    return out


def check_caption(img: Picture, parser: Parser, text: str) -> list[tuple[str, str]]:
    if not text or text == "An empty image.":
        return [] if not text or not img.things else [("caption", "'An empty image.' with visible objects")]
    m = re.fullmatch(r"An image with (.+?)\.(?: The largest is the (.+?)\.)?", text)
    if not m:
        return [("parse", f"cannot read caption {text!r}")]
    out = []
    labelled = [t for t in img.things if t.ann_id is not None]
    items = re.split(r", | and ", m.group(1))
    listed: dict[str, list] = {}
    for item in items:
        words = item.split(" ")
        n = NUMBER_WORDS.get(words[0])
        colour = words[1] if n and len(words) > 2 and words[1] in TERMS else None
        noun = " ".join(words[(1 if n else 0) + (1 if colour else 0):])
        got = parser.noun_phrase(noun)
        if got is None or got[1] or got[0].noun is None:
            out.append(("parse", f"caption item {item!r}"))
            continue
        listed.setdefault(got[0].noun, []).append((n, colour))
    for cat, groups in listed.items():
        same = [t for t in labelled if t.category == cat]
        if groups == [(None, None)]:
            if len(same) < 2:
                out.append(("count", f"caption: {plural(cat)} with {len(same)} visible"))
            continue
        if sum(n or 0 for n, _ in groups) != len(same) or any(not t.usable for t in same):
            out.append(("count", f"caption: {groups} {cat} with {len(same)} visible"))
            continue
        for n, colour in groups:
            if colour and sum(colour_state(t, colour)[0] for t in same) != n:
                out.append(("colour", f"caption: {n} {colour} {cat}, pixels disagree"))
    if m.group(2):
        desc = m.group(2)
        where = next((w for w in ("on the left", "on the right", "in the middle") if desc.endswith(" " + w)), None)
        got = parser.noun_phrase(desc[:-len(where) - 1] if where else desc)
        ranked = sorted(img.things, key=lambda t: -t.area)
        top = ranked[0] if ranked else None
        if got is None or got[1] or top is None or not img.complete:
            out.append(("caption", f"caption: cannot check 'the largest is the {desc}'"))
        else:
            np_ = got[0]
            if top.category != np_.noun or not top.usable or \
                    len(ranked) > 1 and top.area < (1 + SIZE_MARGIN) * ranked[1].area:
                out.append(("extreme", f"caption: the largest visible object is not the {desc} by the margin"))
            elif np_.colour and not colour_state(top, np_.colour)[0]:
                out.append(("colour", f"caption: the largest is not {np_.colour}"))
            elif where and _where_of(img, top) != where:
                out.append(("position", f"caption: the largest is not {where}"))
    return out


# ---------------------------------------------------------------------------- a whole sample
@dataclass
class Report:
    samples: int = 0
    expressions: int = 0
    qa: int = 0
    captions: int = 0
    false: Counter = field(default_factory=Counter)
    false_items: int = 0              # expressions, answers and captions with at least one problem
    false_colour_words: int = 0
    false_relations: int = 0
    false_relations_by: Counter = field(default_factory=Counter)
    examples: list = field(default_factory=list)

    def add(self, problems: list, where: str) -> None:
        self.false_items += bool(problems)
        for kind, why in problems:
            self.false[kind] += 1
            if len(self.examples) < 40:
                self.examples.append(f"{where}: [{kind}] {why}")

    def summary(self) -> str:
        return (f"{self.samples} samples, {self.expressions} expressions, {self.qa} QA, {self.captions} captions; "
                f"{self.false_items} false; by kind: {dict(self.false)}; false colour words: {self.false_colour_words}; "
                f"false relations: {self.false_relations} {dict(self.false_relations_by)}")


def check_sample(report: Report, key: str, members: dict, categories: list[str], vocabulary: set) -> None:
    info = json.loads(members["json"])
    doc = json.loads(members["refexp.json"])
    problems: list = []
    img = decode_image(members, info, problems)
    report.add(problems, key)
    parser = Parser(categories)
    report.samples += 1
    for e in doc["expressions"]:
        report.expressions += 1
        report.add(check_expression(img, parser, e), key)
        report.false_colour_words += false_colour_words(img, parser, e)
        relation, bad = false_relations(img, parser, e)
        report.false_relations += bad
        if bad:
            report.false_relations_by[relation] += bad
    for qa in doc["qa"]:
        report.qa += 1
        problems = check_qa(img, parser, qa, vocabulary)
        report.add(problems, key)
        report.false_colour_words += sum(k == "colour" for k, _ in problems)
    report.captions += 1 + len(doc["segment_captions"])
    for problems in [check_caption(img, parser, doc["caption"])] + [check_segment_caption(img, c)
                                                                   for c in doc["segment_captions"]]:
        report.add(problems, key)
        report.false_colour_words += sum(k == "colour" for k, _ in problems)


def check_job(lake, job: str) -> Report:
    """Check every committed sample of a refexp job of a soclake Lake."""
    from soclake.shards.tar import read_samples
    rows = lake.query("SELECT shard_uri FROM manifest WHERE job = $job AND stage = 'refexp' ORDER BY shard_uri",
                      {"job": job}).to_pylist()
    categories = [r["name"] for r in lake.query("SELECT name FROM categories").to_pylist()]
    vocabulary = {r["category"] for r in lake.query(
        "SELECT DISTINCT category FROM segments WHERE NOT is_distractor").to_pylist()}
    report = Report()
    for r in rows:
        for key, members in read_samples(lake.fs.cat_file(lake.path(r["shard_uri"]))):
            check_sample(report, key, members, categories, vocabulary)
    return report


if __name__ == "__main__":
    from soclake import Lake
    rep = check_job(Lake(sys.argv[1]), sys.argv[2])
    print(rep.summary())
    print("\n".join(rep.examples[:20]))
