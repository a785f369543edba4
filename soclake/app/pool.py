"""The pool pages' data: gallery filters read from a query string, keyset pages and counts in
DuckDB (sql/queries/app/), the values the filters offer, one segment's page (metadata,
levels, rejects, duplicates, jobs) and its images: pyramid levels served as stored, by one
range read each, the smallest level that covers the asked size (never a decode of a WebP
level; raw+zstd levels, which browsers cannot read, become PNG)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from soclake import imaging, pngcodec
from soclake.app import guard
from soclake.app.levelindex import LevelIndex
from soclake.app.state import LakeView
from soclake.lake import sqlfiles

FILTERS = sqlfiles.query("app/pool_filters")
"""The gallery's WHERE clause, shared by the page and its count."""

VIEWS = ("segments", "filter_0", "filter_1", "filter_2", "filter_3", "filter_4", "distractors")
"""Which rows the gallery shows: every segment, a quality filter of sql/10_filters.sql, or the distractors."""
SORTS = ("id", "largest", "smallest")
DISTRACTOR = {"any": None, "exclude": False, "only": True}
PAGE, MAX_PAGE = 100, 500
THUMB_SIDE, MAX_THUMB_SIDE = 128, 1024


@dataclass(frozen=True)
class Filters:
    """The gallery's filters; None is 'any'."""
    view: str = "filter_0"
    source: str | None = None
    category: str | None = None
    subcategory: str | None = None
    colour: str | None = None
    min_side: int | None = None
    max_side: int | None = None
    distractor: bool | None = None
    sort: str = "id"

    def params(self) -> dict:
        return {"source": self.source, "category": self.category, "subcategory": self.subcategory,
                "colour": self.colour, "min_side": self.min_side, "max_side": self.max_side,
                "distractor": self.distractor}


def _text(q: Mapping[str, str], name: str) -> str | None:
    value = q.get(name, "").strip()
    if len(value) > 500:
        raise guard.bad(f"{name} is longer than 500 characters")
    return value or None


def _int(q: Mapping[str, str], name: str, low: int = 0, high: int = 1 << 30) -> int | None:
    value = q.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit() or not low <= int(value) <= high:
        raise guard.bad(f"{name}={value[:40]!r} must be a whole number from {low} to {high}")
    return int(value)


def _choice(q: Mapping[str, str], name: str, choices, default: str) -> str:
    value = q.get(name, "").strip() or default
    if value not in choices:
        raise guard.bad(f"{name}={value[:40]!r} is not one of {', '.join(choices)}")
    return value


def filters_of(q: Mapping[str, str]) -> Filters:
    """Filters from a query string: view, source, category, subcategory, colour, min_side,
    max_side, distractor (any|exclude|only), sort (id|largest|smallest)."""
    return Filters(view=_choice(q, "view", VIEWS, "filter_0"), source=_text(q, "source"),
                   category=_text(q, "category"), subcategory=_text(q, "subcategory"), colour=_text(q, "colour"),
                   min_side=_int(q, "min_side"), max_side=_int(q, "max_side"),
                   distractor=DISTRACTOR[_choice(q, "distractor", DISTRACTOR, "any")],
                   sort=_choice(q, "sort", SORTS, "id"))


def _cursor(value: str | None) -> tuple[int, str] | tuple[None, None]:
    """A page cursor 'SORTKEY:SEGMENT_ID' (as the previous page's `next` gave it)."""
    if not value:
        return None, None
    key, _, sid = value.partition(":")
    try:
        return int(key), guard.segment_id(sid)
    except ValueError:
        raise guard.bad(f"after={value[:80]!r} is not a cursor; pass the `next` of the previous page") from None


def page(view: LakeView, f: Filters, after: str | None, limit: int = PAGE, thumb_side: int = THUMB_SIDE) -> dict:
    """One page of the gallery: up to `limit` segments after the cursor, each with the URL of
    its thumbnail (`thumb_side` px at least), and the cursor of the next page (None on the last)."""
    if not 1 <= limit <= MAX_PAGE:
        raise guard.bad(f"limit={limit} must be from 1 to {MAX_PAGE}")
    after_key, after_id = _cursor(after)
    rows = view.rows("app/pool_page", {**f.params(), "sort": f.sort, "after_key": after_key, "after_id": after_id,
                                      "limit": limit + 1}, view=f.view, filters=FILTERS)
    more = len(rows) > limit
    rows = rows[:limit]
    out = [{**r, "thumbnail": f"/api/segments/{r['segment_id']}/thumbnail?side={thumb_side}"} for r in rows]
    last = rows[-1] if rows else None
    return {"segments": out, "next": f"{last['sort_key']}:{last['segment_id']}" if more else None}


def count(view: LakeView, f: Filters) -> int:
    params = f.params()
    return view.remember(("count", f.view, tuple(sorted(params.items()))),
                         lambda: view.rows("app/pool_count", params, view=f.view, filters=FILTERS)[0]["segments"])


def facets(view: LakeView) -> dict:
    def make() -> dict:
        out: dict = {"views": list(VIEWS), "sorts": list(SORTS), "distractor": list(DISTRACTOR)}
        for r in view.rows("app/pool_facets"):
            out.setdefault(r["facet"] + "s", []).append({"value": r["value"], "segments": r["segments"]})
        out.setdefault("sources", [])
        out.setdefault("colours", [])
        return out
    return view.remember(("facets",), make)


def categories(view: LakeView, prefix: str, limit: int = 50) -> list[dict]:
    """Categories whose name starts with `prefix` (any case), most segments first."""
    every = view.remember(("categories",), lambda: view.rows("app/pool_categories"))
    prefix = prefix.strip().lower()[:200]
    return [c for c in every if c["category"].lower().startswith(prefix)][:min(max(limit, 1), 500)]


# ---------------------------------------------------------------------------- one segment
def segment(view: LakeView, segment_id: str) -> dict:
    """The segment page: its row and category, pyramid levels (with URLs), rejects of its
    source file, duplicates dropped in its favour, and the job runs that planned or drew it."""
    sid = guard.segment_id(segment_id)
    rows = view.rows("app/segment", {"segment_id": sid})
    if not rows:
        raise guard.not_found(f"no segment {sid} in the lake; segment ids are in the segments table "
                              "(e.g. the pool gallery, or `soclake sql \"SELECT segment_id FROM segments\"`)")
    row = rows[0]
    view.levels.put(sid, row["levels"])
    row["levels"] = [{**lv, "url": f"/api/segments/{sid}/levels/{i}"} for i, lv in enumerate(row["levels"])]
    return {"segment": row,
            "rejects": view.rows("app/segment_rejects", {"segment_id": sid, "source": row["source"],
                                                          "source_uri": row["source_uri"]}),
            "jobs": view.rows("app/segment_jobs", {"segment_id": sid})}


def levels_of(view: LakeView, segment_id: str) -> list[dict]:
    sid = guard.segment_id(segment_id)
    levels = view.levels.get(sid)
    if levels is None:
        rows = view.rows("app/segment_levels", {"ids": [sid]})
        if not rows:
            raise guard.not_found(f"no segment {sid} in the lake")
        levels = view.levels.put(sid, rows[0]["levels"])
    return levels


def pick_level(levels: list[dict], side: int) -> dict:
    """The smallest level whose longest side is at least `side` (the largest if none is)."""
    fitting = [lv for lv in levels if lv["side"] >= side]
    return min(fitting, key=lambda lv: lv["side"]) if fitting else max(levels, key=lambda lv: lv["side"])


def level_bytes(view: LakeView, level: dict) -> bytes:
    """The level as a browser shows it: one range read, cached. A lossless WebP level is
    served as stored; a raw+zstd level (`--level-codec zstd`), which no browser reads, is
    decoded and served as a PNG of the same pixels."""
    key = (level["pack"], level["offset"], level["length"])

    def read() -> bytes:
        guard.lake_file(view.lake, level["pack"])
        data = view.lake.read_range(level["pack"], level["offset"], level["length"])
        if data[:8] != imaging.RAW_MAGIC:
            return data
        try:
            return pngcodec.encode_png(imaging.decode_level(data))
        except ValueError as e:
            raise guard.AppError(500, f"the level in {level['pack']} at offset {level['offset']} is damaged ({e}); "
                                      "run `soclake verify --deep` on the lake") from None
    return view.thumbnails.get_or(key, read)


def level_index(view: LakeView) -> LevelIndex:
    """The pool's thumbnail levels at THUMB_SIDE (built on first use: one pass over the segments)."""
    return view.derived("level-index", lambda lake: LevelIndex.build(lake, THUMB_SIDE))


def thumbnail(view: LakeView, segment_id: str, side: int) -> bytes:
    """The smallest level of at least `side` px: found in the level index at THUMB_SIDE, else
    among the segment's levels (one query, cached)."""
    if not 1 <= side <= MAX_THUMB_SIDE:
        raise guard.bad(f"side={side} must be from 1 to {MAX_THUMB_SIDE}")
    sid = guard.segment_id(segment_id)
    found = level_index(view).find(sid) if side == THUMB_SIDE else None
    return level_bytes(view, found or pick_level(levels_of(view, sid), side))


def level(view: LakeView, segment_id: str, index: int) -> bytes:
    levels = levels_of(view, segment_id)
    if not 0 <= index < len(levels):
        raise guard.not_found(f"segment {segment_id} has levels 0 to {len(levels) - 1}, not {index}")
    return level_bytes(view, levels[index])
