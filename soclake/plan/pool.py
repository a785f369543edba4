"""What a job may draw: eligible segments, distractors and backgrounds, counted in SQL and
resolved from (category, rank) draws back to segment rows."""
from __future__ import annotations

import warnings

import duckdb
import numpy as np
import pyarrow as pa

from soclake.errors import SoclakeError
from soclake.lake import Lake, sandbox, sqlfiles
from soclake.plan import feedback
from soclake.plan.types import CategoryCounts, Context
from soclake.spec.model import JobSpec
from soclake.vocab import canonical_category


def read_vocab(spec: JobSpec) -> list[str]:
    if not spec["pool"]["vocab"]:
        return []
    path = spec.path(spec["pool"]["vocab"])
    try:
        with open(path, encoding="utf-8") as f:
            names = [canonical_category(line) for line in f if line.strip() and not line.startswith("#")]
    except OSError as e:
        raise SoclakeError(f"vocabulary file {path} cannot be read: {e.strerror}") from None
    if not names:
        raise SoclakeError(f"vocabulary file {path} lists no category")
    return names


def _one_statement(lake: Lake, sql: str, where: str) -> str:
    """The spec's predicate is SQL text inside the view definition: it must not close it and
    start other statements (a COPY ... TO would write files anywhere), nor call what the
    sandbox refuses. It runs on the lake's sandboxed connection: it reads only the lake."""
    if len(lake.safe_con.extract_statements(sql)) != 1:
        raise SoclakeError(f"[pool] where = {where[:200]!r} must be one predicate over segments, e.g. "
                           "\"alpha_fraction > 0.3\"; it may not end the statement or start another")
    sandbox.check_query(lake.safe_con, f"SELECT 1 FROM segments WHERE ({where})", f"[pool] where = {where[:200]!r}")
    return sql


def excluded_sources_text(excluded: list[tuple], view: str) -> str:
    """Why each (source, segments, flagged) row of excluded_sources.sql has no eligible segment."""
    return "; ".join(f"source {src!r} has no quality flags: it appears only in filter_0" if not flagged else
                     f"source {src!r}: none of its {n} segments passes {view}" for src, n, flagged in excluded)


AUTO_FILTER = "auto"
"""[pool] filter = "auto": filter_4 on sources with quality flags, filter_0 on the others."""


def filter_view(lake: Lake, name: str) -> str:
    """The view a [pool] filter names ("auto" is the view filter_auto)."""
    return "filter_auto" if name == AUTO_FILTER else lake.check_filter(name)


def auto_filters(lake: Lake) -> list[dict]:
    """After open_eligible with filter "auto": per source, the filter it got and its eligible segments."""
    rows = lake.safe_con.execute(sqlfiles.query("auto_filters")).fetchall()
    return [{"source": r[0], "filter": r[1], "eligible": r[2]} for r in rows]


def open_eligible(lake: Lake, spec: JobSpec) -> CategoryCounts:
    """Define the _eligible view on the lake's sandboxed connection (the predicate is the
    spec's SQL) and count it per category; the planner's later queries run there too."""
    pool = spec["pool"]
    view = filter_view(lake, pool["filter"])
    where = pool["where"].strip() or "TRUE"
    lake.safe_con.register("_job_sources", pa.table({"name": pa.array(pool["sources"], pa.string())}))
    lake.safe_con.register("_job_vocab", pa.table({"name": pa.array(read_vocab(spec), pa.string())}))
    try:
        columns = {r[0] for r in lake.safe_con.execute("DESCRIBE segments").fetchall()}
        key = "segment_key" if "segment_key" in columns else "NULL"  # parts written before the key existed
        lake.safe_con.execute(_one_statement(lake, sqlfiles.query("eligible", filter=view, segment_key=key, where=where),
                                             pool["where"]))
        rows = lake.safe_con.execute(sqlfiles.query("category_counts")).fetchall()
        excluded = lake.safe_con.execute(_one_statement(lake, sqlfiles.query("excluded_sources", where=where),
                                                        pool["where"])).fetchall()
    except duckdb.PermissionException as e:
        raise sandbox.explain(e, f"[pool] where = {pool['where'][:200]!r}") from None
    except duckdb.Error as e:
        raise SoclakeError(f"[pool] where = {pool['where']!r} is not a valid predicate over segments: {e}") from None
    why = excluded_sources_text(excluded, view)
    if not rows:
        raise SoclakeError(f"no segment is eligible for job {spec.name!r}: filter {view}, sources "
                           f"{pool['sources'] or 'all'}, where {where!r}, vocab {pool['vocab'] or 'none'}; "
                           f"{why + '; ' if why else ''}loosen [pool] or ingest more segments")
    if excluded and pool["sources"]:
        raise SoclakeError(f"job {spec.name!r} names sources that [pool] filter = {view!r} leaves out entirely: "
                           f"{why}; use filter = \"filter_0\" or drop them from [pool] sources")
    if excluded:
        warnings.warn(f"job {spec.name!r}: [pool] filter = {view!r} leaves out whole sources: {why}", stacklevel=2)
    return CategoryCounts(np.array([r[0] for r in rows], np.int32), np.array([r[1] for r in rows], np.int64),
                          [np.array(r[2], np.int64) for r in rows])


def category_context(lake: Lake, spec: JobSpec, counts: CategoryCounts) -> Context:
    """The sampling Context of the eligible categories (after open_eligible): LVIS frequency
    buckets, and the AP of the spec's feedback (NaN where it has none)."""
    name = spec["sampling"]["feedback"]
    if name:
        feedback.check_name(lake, name)
    rows = lake.safe_con.execute(sqlfiles.query("category_context"), {"feedback": name}).fetchall()
    assert [r[0] for r in rows] == counts.category_id.tolist(), "context rows align with the counts"
    ap = np.array([np.nan if r[2] is None else r[2] for r in rows], np.float64) if name else None
    return Context(counts.category_id, ap, np.array([r[1] for r in rows]))


def size_ap(lake: Lake, spec: JobSpec) -> tuple[np.ndarray, np.ndarray]:
    """[sampling] size_feedback (after open_eligible): per COCO area bucket (small, medium,
    large) the mean AP of the spec's feedback over the eligible categories it gives that bucket
    for (NaN: none), and how many categories each mean covers (sql/queries/size_feedback.sql)."""
    row = lake.safe_con.execute(sqlfiles.query("size_feedback"), {"feedback": spec["sampling"]["feedback"]}).fetchall()[0]
    return np.array([np.nan if v is None else v for v in row[:3]], np.float64), np.array(row[3:], np.int64)


def resolve(lake: Lake, category_id: np.ndarray, rank: np.ndarray, fallback_rank: np.ndarray) -> pa.Table:
    """Segments for drawn (category_id, rank) pairs, in draw order, with fallbacks."""
    draws = pa.table({"i": np.arange(len(rank), dtype=np.int64), "category_id": category_id.astype(np.int32),
                      "rank": rank.astype(np.int64), "fallback_rank": fallback_rank.astype(np.int64)})
    lake.safe_con.register("_draws", draws)
    try:
        out = lake.safe_con.sql(sqlfiles.query("resolve_ranks")).to_arrow_table()
    finally:
        lake.safe_con.unregister("_draws")
    assert out.num_rows == len(rank), "every draw resolves to exactly one segment"
    return out


def distractor_pool(lake: Lake, spec: JobSpec) -> pa.Table:
    sources = spec["pool"]["sources"]
    return lake.read("SELECT segment_id, width, height, alpha_fraction FROM distractors "
                      "WHERE len($s) = 0 OR list_contains($s, source) ORDER BY segment_id", {"s": sources})


def background_pool(lake: Lake, spec: JobSpec) -> pa.Table:
    sources = spec["pool"]["background_sources"]
    return lake.read("SELECT background_id, width, height FROM backgrounds "
                      "WHERE len($s) = 0 OR list_contains($s, source) ORDER BY background_id", {"s": sources})
