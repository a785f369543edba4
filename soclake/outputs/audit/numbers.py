"""The audit's numbers as one JSON-ready dict: which quality filter and why, the per-category
pass of sql/50_audit.sql (category_audit, materialised once), vocabulary coverage, problems,
near-duplicate groups, diversity, the headline and, with a job, its composed dataset. No
printing, no files: terminal.py and html.py present what this returns.
"""
from __future__ import annotations

import os

import pyarrow as pa

from soclake.errors import SoclakeError
from soclake.lake import Lake, catalog
from soclake.lake.sqlfiles import sql_list, sql_string
from soclake.plan.pool import filter_view
from soclake.vocab import coco_categories, lvis_names, read_synonyms, read_vocabulary

TOP_CATEGORIES = 10   # the headline's concentration: share of kept segments in the largest N
TOP_PROBLEMS = 5      # problems named in the headline
GROUPS_LISTED = 2_000  # largest near-duplicate groups listed (all are counted; the view has every one)
FILL_HINT = ("re-ingest those sources into a new lake (`soclake ingest ... --lake NEW`) to compute them; "
             "until then they are flagged by no rule that needs them")


def register_vocabulary(lake: Lake, vocab: str | None, synonyms: str | None) -> str | None:
    """Put the audited vocabulary (with synonyms) in _user_vocabulary; return its label."""
    if vocab is None:
        names = []
    elif vocab == "coco":
        names = [c["name"] for c in coco_categories()]
    elif vocab == "lvis":
        names = lvis_names()
    else:
        names = read_vocabulary(vocab)
    syn = read_synonyms(synonyms) if synonyms else {}
    rows = [(i, n, True) for i, n in enumerate(names, 1)]
    index = {n: i for i, n, _ in rows}
    for name, alternatives in syn.items():
        if name in index:
            rows += [(index[name], a, False) for a in alternatives]
    lake.con.register("_user_vocabulary", pa.table({
        "vocab_id": pa.array([r[0] for r in rows], pa.int64()), "name": pa.array([r[1] for r in rows], pa.string()),
        "is_primary": pa.array([r[2] for r in rows], pa.bool_())}))
    if vocab is None:
        return None
    return vocab if vocab in ("coco", "lvis") else os.path.basename(vocab)


def job_spec_values(lake: Lake, job: str) -> dict:
    """The spec a job's current compose run was planned from (a stage job: its compose input's)."""
    run = catalog.compose_run(lake, catalog.current(lake, job, planned=True))
    info = catalog.read_marker(lake, run.job, run.fingerprint)
    if info is None:
        raise SoclakeError(f"job {job!r} has no job.json for run {run.fingerprint}; plan it again with `soclake plan`")
    return info["spec"]


def choose_filter(lake: Lake, job: str | None, filter_name: str | None) -> dict:
    """The quality filter the audit applies, why, and the sources it cannot judge."""
    if filter_name:
        name, why = filter_view(lake, filter_name), "given with --filter"
    elif job:
        name = filter_view(lake, job_spec_values(lake, job)["pool"]["filter"])
        why = f"the filter job {job!r} draws from ([pool] filter of its spec)"
    else:
        name, why = "filter_0", ("the default without --job: every labelled segment; --filter filter_1 ... "
                                 "filter_4 keep only what SOC's quality flags pass")
    sources = lake.query("SELECT * FROM source_filters").to_pylist()
    unflagged = [s["source"] for s in sources if not s["has_quality_flags"]]
    note = ""
    if unflagged and name == "filter_auto":
        note = (f"filter_auto keeps the segments of the {len(unflagged)} source(s) without quality flags whole "
                f"({', '.join(unflagged)}) and applies filter_4 to the others")
    elif unflagged and name != "filter_0":
        note = (f"{len(unflagged)} source(s) have no quality flags, so {name} keeps none of their segments: "
                f"{', '.join(unflagged)}; audit them with --filter filter_0")
    elif unflagged:
        note = f"source(s) without quality flags (only filter_0 keeps them): {', '.join(unflagged)}"
    return {"name": name, "why": why, "sources": sources, "sources_without_flags": unflagged, "note": note}


def run_audit(lake: Lake, vocab: str | None = "lvis", job: str | None = None, min_segments: int = 10,
              filter_name: str | None = None, synonyms: str | None = None) -> dict:
    """All audit numbers as a JSON-ready dict (the filter defaults to the job's, else filter_0)."""
    chosen = choose_filter(lake, job, filter_name)
    label = register_vocabulary(lake, vocab, synonyms)
    # each heavy view is computed once: a temp table shadows it for the queries below
    lake.con.execute("CREATE OR REPLACE TEMP TABLE pool_category_audit AS "
                     f"SELECT * FROM category_audit({sql_string(chosen['name'])}, "
                     f"unflagged := {sql_list(chosen['sources_without_flags'])})")
    lake.con.execute("CREATE OR REPLACE TEMP TABLE near_duplicate_groups AS SELECT * FROM main.near_duplicate_groups")
    try:
        return _audit(lake, label, job, min_segments, chosen)
    finally:
        lake.con.execute("DROP TABLE IF EXISTS temp.pool_category_audit")
        lake.con.execute("DROP TABLE IF EXISTS temp.near_duplicate_groups")


def _audit(lake: Lake, label: str | None, job: str | None, min_segments: int, chosen: dict) -> dict:
    q = lambda sql, params=None: lake.query(sql, params).to_pylist()
    categories = q("SELECT * FROM pool_coverage('user', min_segments := $m)", {"m": min_segments})
    rules = q("SELECT * FROM audit_rules")
    result: dict = {
        "lake": lake.uri, "filter": chosen, "min_segments": min_segments, "rules": rules,
        "pool": {"funnel": q("SELECT * FROM quality_funnel"),
                 "categories": categories,
                 "problems": _problems(lake, rules),
                 "near_duplicates": q("SELECT count(*) AS groups, coalesce(sum(segments), 0)::BIGINT AS segments, "
                                      "coalesce(sum(copies), 0)::BIGINT AS copies, "
                                      "count(*) FILTER (WHERE across_sources) AS across_sources, "
                                      "count(*) FILTER (WHERE across_categories) AS across_categories "
                                      "FROM near_duplicate_groups")[0],
                 "near_duplicate_groups": q("SELECT * FROM largest_near_duplicate_groups($n)", {"n": GROUPS_LISTED}),
                 "duplicates": q("SELECT * FROM duplicate_segments ORDER BY source, source_uri"),
                 "size_histogram": q("SELECT * FROM size_histogram($f)", {"f": chosen["name"]})}}
    if label:
        cov = q("SELECT * FROM vocab_coverage('user', min_segments := $m, filter_column := $f)",
                {"m": min_segments, "f": chosen["name"]})
        result["vocabulary"] = {
            "name": label, "size": len(cov), "coverage": cov,
            "counts": {s: sum(1 for r in cov if r["status"] == s) for s in ("covered", "thin", "missing")},
            "missing": [r["name"] for r in cov if r["status"] == "missing"],
            "unmatched_pool_categories": [{k: c[k] for k in ("category_id", "category", "segments", "kept")}
                                          for c in sorted(categories, key=lambda c: (-c["segments"], c["category"]))
                                          if not c["vocab_names"]]}
    if job:
        try:
            result["dataset"] = _dataset(lake, job)
            fp = result["dataset"]["fingerprint"]
        except SoclakeError:  # planned, not rendered yet: the plan can still be audited
            fp = catalog.current(lake, job, stage="compose", planned=True).fingerprint
        result["sampling"] = {"job": job, "fingerprint": fp,
                              "categories": q("SELECT * EXCLUDE (job, fingerprint, category_id) FROM sampling_shift "
                                              "WHERE fingerprint = $fp", {"fp": fp}),
                              "sizes": _size_shift(lake, job, fp)}
    result["headline"] = _headline(result)
    return result


def _problems(lake: Lake, rules: list[dict]) -> list[dict]:
    """Per rule of audit_rules: flagged segments and categories, and the per-category counts
    (from the materialised category_audit, whose columns are named after the problems)."""
    columns = lake.query("SELECT * FROM pool_category_audit LIMIT 0").column_names
    out = []
    for r in rules:
        col = r["problem"]
        if col not in columns:
            raise SoclakeError(f"audit rule {col!r} has no column in category_audit (sql/50_audit.sql)")
        by_cat = lake.query(f"SELECT category, kept, {col} AS flagged, {col} / kept AS share FROM pool_category_audit "
                            f"WHERE {col} > 0 ORDER BY flagged DESC, category").to_pylist()
        out.append({**r, "segments": sum(c["flagged"] for c in by_cat), "categories": len(by_cat),
                    "by_category": by_cat})
    return out


def _headline(result: dict) -> dict:
    pool = result["pool"]
    cats = pool["categories"]
    kept = sum(c["kept"] for c in cats)
    top = sorted((c["kept"] for c in cats), reverse=True)[:TOP_CATEGORIES]
    unknown = sum(c["unknown"] for c in cats)
    found = sorted((p for p in pool["problems"] if p["segments"]), key=lambda p: (-p["segments"], p["problem"]))
    return {
        "filter": result["filter"]["name"], "segments": kept, "categories": sum(1 for c in cats if c["kept"]),
        "coverage": result.get("vocabulary", {}).get("counts"),
        "vocabulary": result.get("vocabulary", {}).get("name"),
        "top_categories": len(top), "top_share": sum(top) / kept if kept else 0.0,
        "thin": sum(1 for c in cats if c["status"] == "thin"),
        "thin_in_diversity": sum(1 for c in cats if c["thin_in_diversity"]),
        "over_represented": sum(1 for c in cats if c["over_represented"]),
        "near_duplicates": pool["near_duplicates"],
        "problems": [{k: p[k] for k in ("problem", "view_name", "rule", "segments", "categories")}
                     for p in found[:TOP_PROBLEMS]],
        "unknown": unknown,
        "unknown_note": (f"{unknown} of the kept segments predate soclake's perceptual hash, hole and opacity "
                         f"columns, so their near-duplicate and alpha numbers are unknown; {FILL_HINT}"
                         if unknown else ""),
    }


def _size_shift(lake: Lake, job: str, fp: str) -> dict | None:
    """[sampling] size_feedback: the spec's size mix, the size APs read and the mix planned
    with, as job.json records them (None for jobs without size feedback)."""
    info = catalog.read_marker(lake, job, fp)
    if info is None:
        return None
    plan = info.get("plan", {})
    if not plan.get("size_mix"):
        return None
    spec_mix = info["spec"]["layout"]["size_mix"]
    return {b: {"spec_share": spec_mix[i] / sum(spec_mix), "feedback_ap": plan["size_ap"][i],
                "planned_share": plan["size_mix"][i]} for i, b in enumerate(("small", "medium", "large"))}


def _dataset(lake: Lake, job: str) -> dict:
    run = catalog.current(lake, job, stage="compose")
    fp, missing = run.fingerprint, catalog.missing_shards(lake, run)
    q = lambda sql: lake.query(sql, {"fp": fp}).to_pylist()
    stats = q("SELECT * EXCLUDE (job, fingerprint) FROM category_stats WHERE fingerprint = $fp ORDER BY instances, category")
    return {
        "job": job, "fingerprint": fp, "missing_shards": missing, "categories": stats,
        "lvis_frequency": {b: sum(1 for r in stats if r["lvis_frequency"] == b) for b in ("rare", "common", "frequent")},
        "sizes": {b: sum(r[b] for r in stats) for b in ("small", "medium", "large")},
        "top_pairs": q("SELECT ca.name AS a, cb.name AS b, p.images FROM category_pairs p "
                       "JOIN categories ca ON ca.category_id = p.category_a "
                       "JOIN categories cb ON cb.category_id = p.category_b "
                       "WHERE p.fingerprint = $fp ORDER BY p.images DESC, a, b"),
        "visibility": q("SELECT bin_start, instances FROM visibility_histogram WHERE fingerprint = $fp"),
        "planned_vs_rendered": q("SELECT c.name AS category, planned, rendered, lost FROM planned_vs_rendered p "
                                 "JOIN categories c USING (category_id) WHERE p.fingerprint = $fp "
                                 "ORDER BY lost DESC, planned DESC"),
    }
