"""Scene graph of one composed image, read from its KEY.json: every visible object (annotated
instances and the unlabelled objects a viewer also sees) with what the final pixels show of
it, each fact sure, possible or ruled out. Nothing here renders text.

Facts are three-valued because an expression must stay true for anyone who checks it against
the image: a colour covering between `colour_absent` and `colour_dominance` of an object, a
centre within `position_margin` of a third's boundary, an object under `min_pixels` visible
pixels or one without a category (unlabelled) is "possible" and never "sure", and any
expression that such a fact could change is not generated (see programs.py).
Sets of objects are Python ints used as bit sets (bit i = objects[i]).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cached_property

import numpy as np

from soclake.colour_names import BASIC_TERMS, shares
from soclake.spec.model import spec_schema

POSITIONS = ("left", "right", "top", "bottom")
_TERM_INDEX = {t: k for k, t in enumerate(BASIC_TERMS)}
RELATIONS = ("left_of", "right_of", "above", "below", "on_top_of", "near")


@dataclass(frozen=True)
class Rules:
    """The margins of the refexp spec ([refexp] in schemas/refexp_spec.json)."""
    min_pixels: int
    colour_dominance: float
    colour_absent: float
    position_margin: float
    size_margin: float
    contact_px: float
    near: float
    near_margin: float

    @classmethod
    def from_params(cls, params: dict) -> "Rules":
        return cls(**{f.name: params[f.name] for f in fields(cls)})

    @classmethod
    def defaults(cls) -> "Rules":
        return cls.from_params({k: v["default"] for k, v in spec_schema("refexp")["refexp"].items()})


@dataclass(frozen=True)
class Obj:
    """A visible object: an annotated instance, or an unlabelled one (ann_id and category None)."""
    ann_id: int | None
    category: str | None
    colours: dict[str, float] | None  # share of its visible pixels surely of each basic term; None: not measured
    phrase: str | None                # short_phrase from the pool ("red wooden ball")
    bbox: tuple[float, float, float, float]  # x, y, w, h of the visible mask
    area: int
    z: float                          # paste order of all pastes, higher = on top
    colour: str | None = None         # the dominant colour (set by SceneGraph), None when none dominates
    horizontal: str | None = None     # left / middle / right third, None within the margin of a boundary
    vertical: str | None = None       # top / middle / bottom third, likewise
    usable: bool = False              # annotated and >= min_pixels: may be a target, anchor or answer
    possible_colours: dict[str, float] | None = None  # share that may be of each term (colour_names.shares)

    @property
    def centre(self) -> tuple[float, float]:
        x, y, w, h = self.bbox
        return x + w / 2, y + h / 2


def third(value: float, extent: float, names: tuple[str, str, str], margin: float) -> str | None:
    """The third of [0, extent) holding value, or None within margin * extent of a boundary."""
    m = margin * extent
    for k, bound in enumerate((extent / 3, 2 * extent / 3)):
        if abs(value - bound) <= m:
            return None
        if value < bound:
            return names[k]
    return names[2]


_WEIGHTS = 1 << np.arange(62, dtype=np.int64)


def bits_of(mask: np.ndarray) -> int:
    """A bool vector as a bit set."""
    if len(mask) <= len(_WEIGHTS):
        return int(_WEIGHTS[:len(mask)] @ mask)
    return int.from_bytes(np.packbits(mask, bitorder="little").tobytes(), "little")


def columns_as_bits(matrix: np.ndarray) -> list[int]:
    """Bit set of each column of a bool (n, m) matrix: out[j] = {i: matrix[i, j]}."""
    if matrix.shape[0] <= len(_WEIGHTS):
        return (_WEIGHTS[:matrix.shape[0]] @ matrix).tolist()
    packed = np.packbits(matrix, axis=0, bitorder="little")
    return [int.from_bytes(packed[:, j].tobytes(), "little") for j in range(matrix.shape[1])]


def members(bits: int) -> list[int]:
    """Indices of the set bits, ascending."""
    out = []
    while bits:
        low = bits & -bits
        out.append(low.bit_length() - 1)
        bits ^= low
    return out


@dataclass
class SceneGraph:
    width: int
    height: int
    objects: list[Obj]                # annotated instances first, then unlabelled objects
    rules: Rules
    complete: bool = True             # every visible unlabelled object is known
    contacts: dict[tuple[int, int], float] = field(default_factory=dict)  # (i, j) index pairs -> mask gap px
    covers: set[tuple[int, int]] = field(default_factory=set)  # (upper, lower) index pairs
    contacts_known: bool = True

    def __post_init__(self):
        r, W, H = self.rules, self.width, self.height
        self.objects = [self._settle(o, r, W, H) for o in self.objects]

    @staticmethod
    def _settle(o: Obj, r: Rules, W: int, H: int) -> Obj:
        dominant = None
        if o.colours and o.area >= r.min_pixels:
            best = max(o.colours, key=lambda k: (o.colours[k], k))
            dominant = best if o.colours[best] >= r.colour_dominance else None
        cx, cy = o.centre
        return Obj(o.ann_id, o.category, o.colours, o.phrase, o.bbox, o.area, o.z, dominant,
                   third(cx, W, ("left", "middle", "right"), r.position_margin),
                   third(cy, H, ("top", "middle", "bottom"), r.position_margin),
                   o.ann_id is not None and o.area >= r.min_pixels,
                   o.colours if o.possible_colours is None else o.possible_colours)

    # ------------------------------------------------------------------ lookups
    @cached_property
    def labelled(self) -> list[Obj]:
        return [o for o in self.objects if o.ann_id is not None]

    @cached_property
    def index(self) -> dict[int, int]:
        return {o.ann_id: i for i, o in enumerate(self.objects) if o.ann_id is not None}

    def by_id(self) -> dict[int, Obj]:
        return self._by_id

    @cached_property
    def _by_id(self) -> dict[int, Obj]:
        return {o.ann_id: o for o in self.labelled}

    @cached_property
    def memo(self) -> dict:
        """Selector -> (sure, possible) bit sets, filled by programs.execute."""
        return {}

    # ------------------------------------------------------------------ bit sets
    @cached_property
    def phantom(self) -> int:
        """A bit standing for unlabelled objects that may show but are not known (old shards)."""
        return 0 if self.complete else 1 << len(self.objects)

    @cached_property
    def usable(self) -> int:
        return bits_of(np.array([o.usable for o in self.objects], bool))

    @cached_property
    def everything(self) -> int:
        return (1 << len(self.objects)) - 1 | self.phantom

    @cached_property
    def by_category(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for i, o in enumerate(self.objects):
            if o.category is not None:
                out[o.category] = out.get(o.category, 0) | 1 << i
        return out

    @cached_property
    def colour_bits(self) -> dict[str, tuple[int, int]]:
        """term -> (sure: share >= dominance, possible: share >= absent, or not measured, or
        under min_pixels). Sure bits still need `usable` to count (programs.execute)."""
        r = self.rules
        def table(attr):
            out = np.zeros((len(self.objects), len(BASIC_TERMS)))
            for i, o in enumerate(self.objects):
                for t, v in (getattr(o, attr) or {}).items():
                    out[i, _TERM_INDEX[t]] = v
            return out

        unknown = np.array([o.colours is None or o.area < r.min_pixels for o in self.objects], bool)[:, None]
        sure = columns_as_bits((table("colours") >= r.colour_dominance) & ~unknown)
        possible = columns_as_bits((table("possible_colours") >= r.colour_absent) | unknown)
        return {t: (sure[k], possible[k] | self.phantom) for k, t in enumerate(BASIC_TERMS)}

    @cached_property
    def geometry(self) -> dict[str, np.ndarray]:
        b = np.array([o.bbox for o in self.objects], np.float64).reshape(-1, 4)
        x0, y0 = b[:, 0], b[:, 1]
        return {"x0": x0, "y0": y0, "x1": x0 + b[:, 2], "y1": y0 + b[:, 3], "cx": x0 + b[:, 2] / 2,
                "cy": y0 + b[:, 3] / 2, "area": np.array([o.area for o in self.objects], np.float64)}

    @cached_property
    def position_bits(self) -> dict[str, tuple[int, int]]:
        """left / right / top / bottom -> (sure, possible), thirds with the position margin."""
        g, r = self.geometry, self.rules
        mx, my = r.position_margin * self.width, r.position_margin * self.height
        out = {}
        for name, c, lo, extent, m in (("left", g["cx"], True, self.width, mx), ("right", g["cx"], False, self.width, mx),
                                       ("top", g["cy"], True, self.height, my),
                                       ("bottom", g["cy"], False, self.height, my)):
            bound = extent / 3 if lo else 2 * extent / 3
            sure, possible = (c < bound - m, c < bound + m) if lo else (c > bound + m, c > bound - m)
            out[name] = (bits_of(sure), bits_of(possible) | self.phantom)
        return out

    @cached_property
    def box_distance(self) -> np.ndarray:
        """(n, n) Euclidean distance between boxes in pixels, 0 where they overlap or touch."""
        g = self.geometry
        dx = np.maximum(0, np.maximum(g["x0"][:, None] - g["x1"][None, :], g["x0"][None, :] - g["x1"][:, None]))
        dy = np.maximum(0, np.maximum(g["y0"][:, None] - g["y1"][None, :], g["y0"][None, :] - g["y1"][:, None]))
        return np.hypot(dx, dy)

    @cached_property
    def relation_bits(self) -> dict[str, tuple[list[int], list[int]]]:
        """rel -> (sure, possible) bit sets per anchor column j: {i: objects[i] rel objects[j]}.
        left of: i's box ends before j's centre and i's centre lies before j's box (likewise
        above); on top of: i was pasted after j, their visible masks come within contact_px
        and i covers part of j (sure), or only the first two (possible). near is decided in
        programs.execute (a unique nearest), so here it is only 'within reach'."""
        g, n = self.geometry, len(self.objects)
        left = (g["x1"][:, None] <= g["cx"][None, :]) & (g["cx"][:, None] < g["x0"][None, :])
        up = (g["y1"][:, None] <= g["cy"][None, :]) & (g["cy"][:, None] < g["y0"][None, :])
        z = np.array([o.z for o in self.objects], np.float64)
        later = z[:, None] > z[None, :]
        touch = np.zeros((n, n), bool)
        cover = np.zeros((n, n), bool)
        for (i, j), gap in self.contacts.items():
            if gap <= self.rules.contact_px:
                touch[i, j] = touch[j, i] = True
        for i, j in self.covers:
            cover[i, j] = True
        if self.contacts_known:
            on_sure, on_possible = later & touch & cover, later & touch
        else:
            on_sure, on_possible = np.zeros((n, n), bool), later
        reach = self.box_distance <= (self.rules.near + self.rules.near_margin) * self.diagonal
        rels = {"left_of": (left, left), "right_of": (left.T, left.T), "above": (up, up), "below": (up.T, up.T),
                "on_top_of": (on_sure, on_possible), "near": (reach, reach)}
        out = {}
        for rel, (sure, possible) in rels.items():
            sure, possible = sure.copy(), possible.copy()
            np.fill_diagonal(sure, False)
            np.fill_diagonal(possible, False)
            out[rel] = (columns_as_bits(sure), [b | self.phantom for b in columns_as_bits(possible)])
        return out

    @cached_property
    def diagonal(self) -> float:
        return float(np.hypot(self.width, self.height))


def _colour_shares(counts: dict | None, area: int) -> tuple[dict | None, dict | None]:
    return (None, None) if counts is None else shares(counts, area)


def from_sample(info: dict, rules: Rules | None = None) -> SceneGraph:
    """The scene graph of a sample's JSON document (the compose stage's KEY.json). Samples
    written before soclake measured visible colours and unlabelled objects (no "scene") give
    a graph without colour words, without "on top of" and without claims over "objects"."""
    rules = rules or Rules.defaults()
    scene = info.get("scene")
    objs = []
    for inst in info["instances"]:
        attrs = inst.get("attributes") or {}
        sure, possible = _colour_shares(inst.get("colours"), inst["area"])
        objs.append(Obj(inst["ann_id"], inst["category"], sure, attrs.get("short_phrase"), tuple(inst["bbox"]),
                        inst["area"], inst.get("z", inst.get("layer", 0)), possible_colours=possible))
    for u in (scene or {}).get("unlabelled", []):
        sure, possible = _colour_shares(u.get("colours"), u["area"])
        objs.append(Obj(None, None, sure, None, tuple(u["bbox"]), u["area"], u["z"], possible_colours=possible))
    index_of_z = {o.z: i for i, o in enumerate(objs)}
    contacts, covers = {}, set()
    if scene:
        for za, zb, gap in scene.get("contacts", []):
            if za in index_of_z and zb in index_of_z:
                contacts[(index_of_z[za], index_of_z[zb])] = gap
        covers = {(index_of_z[a], index_of_z[b]) for a, b in scene.get("covers", [])
                  if a in index_of_z and b in index_of_z}
    return SceneGraph(info["width"], info["height"], objs, rules, complete=scene is not None, contacts=contacts,
                      covers=covers, contacts_known=scene is not None)
