"""Category-coverage audit of the pool (and of a composed job) against a vocabulary: the
numbers come from the views of sql/50_audit.sql; this module gathers them, prints a terminal
summary and writes a self-contained HTML report (matplotlib plots as embedded PNGs) with a
JSON file of the same numbers beside it.
"""
from __future__ import annotations

import base64
import html
import io
import json
import os

import pyarrow as pa
from matplotlib.figure import Figure

from soclake import storage
from soclake.errors import SoclakeError
from soclake.lake import Lake, catalog
from soclake.outputs.tables import print_table
from soclake.vocab import coco_categories, lvis_names, read_synonyms, read_vocabulary

TOP = 40  # rows shown per table in the terminal and the report


def _register_vocabulary(lake: Lake, vocab: str, synonyms: str | None) -> str:
    """Put the audited vocabulary (with synonyms) in _user_vocabulary; return its label."""
    if vocab == "coco":
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
    lake.con.register("_user_vocabulary", pa.table({"vocab_id": [r[0] for r in rows], "name": [r[1] for r in rows],
                                                    "is_primary": [r[2] for r in rows]}))
    return vocab if vocab in ("coco", "lvis") else os.path.basename(vocab)


def run_audit(lake: Lake, vocab: str | None = "lvis", job: str | None = None, min_segments: int = 10,
              filter_name: str = "filter_4", synonyms: str | None = None) -> dict:
    """All audit numbers as a JSON-ready dict."""
    lake.check_filter(filter_name)
    # one pass over the segments: a temp table shadows the view for the queries below
    lake.con.execute("CREATE OR REPLACE TEMP TABLE pool_category_audit AS SELECT * FROM main.pool_category_audit")
    try:
        return _audit(lake, vocab, job, min_segments, filter_name, synonyms)
    finally:
        lake.con.execute("DROP TABLE IF EXISTS temp.pool_category_audit")


def _audit(lake: Lake, vocab: str | None, job: str | None, min_segments: int, filter_name: str,
           synonyms: str | None) -> dict:
    q = lambda sql, params=None: lake.query(sql, params).to_pylist()
    result: dict = {"lake": lake.uri, "filter": filter_name, "min_segments": min_segments,
                    "pool": {"funnel": q("SELECT * FROM quality_funnel"),
                             "categories": q("SELECT * FROM pool_category_audit ORDER BY segments DESC, category"),
                             "duplicates": q("SELECT * FROM duplicate_segments ORDER BY source, source_uri"),
                             "size_histogram": q("SELECT power(2, floor(log2(greatest(width, height))))::INT AS side, "
                                                 "count(*) AS segments FROM filter_0 GROUP BY 1 ORDER BY 1")}}
    if vocab:
        label = _register_vocabulary(lake, vocab, synonyms)
        cov = q("SELECT * FROM vocab_coverage('user', min_segments := $m, filter_column := $f)",
                {"m": min_segments, "f": filter_name})
        result["vocabulary"] = {
            "name": label, "size": len(cov), "coverage": cov,
            "counts": {s: sum(1 for r in cov if r["status"] == s) for s in ("missing", "thin", "covered")},
            "unmatched_pool_categories": q("SELECT * FROM unmatched_categories('user')")}
    if job:
        try:
            result["dataset"] = _dataset(lake, job)
            fp = result["dataset"]["fingerprint"]
        except SoclakeError:  # planned, not rendered yet: the plan can still be audited
            fp = _planned_fingerprint(lake, job)
        result["sampling"] = {"job": job, "fingerprint": fp,
                              "categories": q("SELECT * EXCLUDE (job, fingerprint, category_id) FROM sampling_shift "
                                              "WHERE fingerprint = $fp", {"fp": fp}),
                              "sizes": _size_shift(lake, job, fp)}
    return result


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


def _planned_fingerprint(lake: Lake, job: str) -> str:
    return catalog.current(lake, job, stage="compose", planned=True).fingerprint


def _dataset(lake: Lake, job: str) -> dict:
    run = catalog.current(lake, job, stage="compose")
    fp, missing = run.fingerprint, catalog.missing_shards(lake, run)
    q = lambda sql: lake.query(sql, {"fp": fp}).to_pylist()
    stats = q("SELECT * EXCLUDE (job, fingerprint) FROM category_stats WHERE fingerprint = $fp")
    return {
        "job": job, "fingerprint": fp, "missing_shards": missing, "categories": stats,
        "lvis_frequency": {b: sum(1 for r in stats if r["lvis_frequency"] == b) for b in ("rare", "common", "frequent")},
        "sizes": {b: sum(r[b] for r in stats) for b in ("small", "medium", "large")},
        "top_pairs": q("SELECT ca.name AS a, cb.name AS b, p.images FROM category_pairs p "
                       "JOIN categories ca ON ca.category_id = p.category_a "
                       "JOIN categories cb ON cb.category_id = p.category_b "
                       f"WHERE p.fingerprint = $fp ORDER BY p.images DESC, a, b LIMIT {TOP}"),
        "visibility": q("SELECT bin_start, instances FROM visibility_histogram WHERE fingerprint = $fp"),
        "planned_vs_rendered": q("SELECT c.name AS category, planned, rendered, lost FROM planned_vs_rendered p "
                                 "JOIN categories c USING (category_id) WHERE p.fingerprint = $fp "
                                 "ORDER BY lost DESC, planned DESC"),
    }


# ---------------------------------------------------------------------------- terminal
def print_summary(result: dict) -> None:
    funnel = result["pool"]["funnel"]
    print_table(pa.Table.from_pylist(funnel), title="quality-filter funnel (segments)")
    if "vocabulary" in result:
        v = result["vocabulary"]
        c = v["counts"]
        print(f"vocabulary {v['name']}: {v['size']} names; covered {c['covered']}, thin {c['thin']} "
              f"(< {result['min_segments']} segments after {result['filter']}), missing {c['missing']}")
        rows = [{k: r[k] for k in ("name", "status", "segments", "segments_filtered", "subcategories")}
                for r in v["coverage"][:TOP]]
        if rows:
            print_table(pa.Table.from_pylist(rows), title="missing and thin first")
        if v["unmatched_pool_categories"]:
            print_table(pa.Table.from_pylist(v["unmatched_pool_categories"][:TOP]),
                        title="pool categories not in the vocabulary")
    dups = result["pool"]["duplicates"]
    if dups:
        print(f"{len(dups)} duplicate segments (same pixels) were rejected at ingest; "
              "see the view duplicate_segments")
    if "dataset" in result:
        d = result["dataset"]
        print(f"job {d['job']} [{d['fingerprint']}]: LVIS buckets {d['lvis_frequency']}, COCO sizes {d['sizes']}")
        if d["categories"]:
            print_table(pa.Table.from_pylist(d["categories"][:TOP]), title="dataset categories")
    if result.get("sampling", {}).get("categories"):
        s = result["sampling"]
        rows = [{k: r[k] for k in SHIFT_COLUMNS} for r in s["categories"][:TOP]]
        print_table(pa.Table.from_pylist(rows), title=f"sampling shift of {s['job']} ({s['fingerprint']}): "
                    "planned share vs temperature share")
    if result.get("sampling", {}).get("sizes"):
        print_table(pa.Table.from_pylist([{"size": b, **v} for b, v in result["sampling"]["sizes"].items()]),
                    title="size mix by size feedback: spec share vs planned share")


SHIFT_COLUMNS = ("category", "eligible", "frequency", "feedback_ap", "ap_used", "planned", "planned_share",
                 "target_share", "uniform_share", "temperature_share", "boost")


# ---------------------------------------------------------------------------- HTML
def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _figure(size: tuple[float, float]) -> Figure:
    """A figure drawn without pyplot: no global backend or figure registry is touched."""
    return Figure(figsize=size)


def _plots(result: dict) -> list[tuple[str, str]]:
    plots = []
    counts = sorted((r["segments"] for r in result["pool"]["categories"]), reverse=True)
    fig = _figure((7, 3.2))
    ax = fig.subplots()
    ax.plot(range(1, len(counts) + 1), [max(c, 0.8) for c in counts])
    ax.set(yscale="log", xlabel="category rank", ylabel="segments", title="long tail: segments per category")
    plots.append(("Long tail", _png(fig)))
    funnel = result["pool"]["funnel"]
    fig = _figure((7, 3.2))
    ax = fig.subplots()
    ax.bar([f["filter"] for f in funnel], [f["segments"] for f in funnel], color="#4c78a8")
    ax.set(ylabel="segments", title="quality-filter funnel")
    plots.append(("Quality-filter funnel", _png(fig)))
    sizes = result["pool"]["size_histogram"]
    fig = _figure((7, 3.2))
    ax = fig.subplots()
    ax.bar([str(s["side"]) for s in sizes], [s["segments"] for s in sizes], color="#72b7b2")
    ax.set(xlabel="longest side (px, power-of-two bin)", ylabel="segments", title="segment size histogram")
    plots.append(("Segment sizes", _png(fig)))
    if "vocabulary" in result:
        v = result["vocabulary"]
        fig = _figure((10, 3.6))
        a1, a2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 3]})
        a1.bar(list(v["counts"]), list(v["counts"].values()), color=["#e45756", "#f58518", "#54a24b"])
        a1.set(title=f"{v['name']}: {v['size']} names")
        low = [r for r in v["coverage"] if r["status"] != "missing"][:30]
        a2.barh([r["name"] for r in low][::-1], [r["segments_filtered"] for r in low][::-1], color="#f58518")
        a2.axvline(result["min_segments"], color="#e45756", linestyle="--")
        a2.set(title=f"least covered names (segments after {result['filter']})")
        a2.tick_params(axis="y", labelsize=7)
        plots.append(("Vocabulary coverage", _png(fig)))
    if "dataset" in result:
        d = result["dataset"]
        fig = _figure((10, 3.2))
        a1, a2 = fig.subplots(1, 2)
        a1.bar(list(d["lvis_frequency"]), list(d["lvis_frequency"].values()), color="#b279a2")
        a1.set(title="categories per LVIS frequency bucket")
        a2.bar([f"{b['bin_start']:.1f}" for b in d["visibility"]], [b["instances"] for b in d["visibility"]])
        a2.set(title="visible fraction of instances", xlabel="bin start")
        plots.append((f"Dataset {d['job']}", _png(fig)))
    if result.get("sampling", {}).get("categories"):
        rows = result["sampling"]["categories"][:30]
        fig = _figure((10, 3.4))
        ax = fig.subplots()
        x = range(len(rows))
        ax.bar([i - 0.2 for i in x], [r["planned_share"] for r in rows], 0.4, label="planned", color="#e45756")
        ax.bar([i + 0.2 for i in x], [r["temperature_share"] for r in rows], 0.4, label="temperature", color="#4c78a8")
        ax.set_xticks(list(x), [r["category"] for r in rows], rotation=60, fontsize=7)
        ax.set(ylabel="share of object slots", title="sampling shift (most boosted first)")
        ax.legend()
        plots.append(("Sampling shift", _png(fig)))
    return plots


def _table(rows: list[dict], limit: int = TOP) -> str:
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r.values()) + "</tr>"
                   for r in rows[:limit])
    more = f"<p>{len(rows) - limit} more rows in the JSON file.</p>" if len(rows) > limit else ""
    return f"<table><tr>{head}</tr>{body}</table>{more}"


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else "" if v is None else str(v)


def write_report(result: dict, path: str) -> tuple[str, str]:
    """Write the HTML report and its JSON twin (same path, .json)."""
    sections = [f"<h2>{html.escape(t)}</h2><img alt='{html.escape(t)}' src='data:image/png;base64,{b}'>"
                for t, b in _plots(result)]
    if "vocabulary" in result:
        v = result["vocabulary"]
        sections.append(f"<h2>Vocabulary {html.escape(v['name'])}: missing and thin first</h2>" + _table(v["coverage"]))
        sections.append("<h2>Pool categories not in the vocabulary</h2>" + _table(v["unmatched_pool_categories"]))
    sections.append("<h2>Pool categories</h2>" + _table(result["pool"]["categories"]))
    sections.append("<h2>Duplicates (rejected at ingest)</h2>" + _table(result["pool"]["duplicates"]))
    if "dataset" in result:
        d = result["dataset"]
        sections.append(f"<h2>Dataset {html.escape(d['job'])} [{d['fingerprint']}]</h2>" + _table(d["categories"]))
        sections.append("<h2>Most frequent category pairs</h2>" + _table(d["top_pairs"]))
        sections.append("<h2>Planned vs rendered</h2>" + _table(d["planned_vs_rendered"]))
    if "sampling" in result:
        s = result["sampling"]
        sections.append(f"<h2>Sampling shift of {html.escape(s['job'])} [{s['fingerprint']}]</h2>"
                        + _table([{k: r[k] for k in SHIFT_COLUMNS} for r in s["categories"]]))
        if s.get("sizes"):
            sections.append("<h2>Size mix by size feedback</h2>"
                            + _table([{"size": b, **v} for b, v in s["sizes"].items()]))
    doc = ("<!doctype html><html><head><meta charset='utf-8'><title>soclake audit</title><style>"
           "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;font-size:13px}"
           "td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}</style></head><body>"
           f"<h1>soclake audit of {html.escape(result['lake'])}</h1>" + "".join(sections) + "</body></html>")
    json_path = os.path.splitext(path)[0] + ".json"
    storage.write_bytes(storage.LOCAL, path, doc.encode())  # never through a link planted at the name
    storage.write_bytes(storage.LOCAL, json_path, json.dumps(result, indent=1, default=str).encode())
    return path, json_path
