"""The audit as one self-contained HTML file (and its numbers as JSON beside it): the headline
with links to its tables, matplotlib plots as embedded PNGs, and every list as a sortable,
paged table drawn by the small script in assets/ (inlined: nothing loads from the network).
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from importlib import resources
from typing import TYPE_CHECKING

from soclake import storage
from soclake.outputs.audit.terminal import POOL_COLUMNS, SHIFT_COLUMNS, plural

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PAGE = 25  # rows per page a table opens with


def _asset(name: str) -> str:
    return (resources.files("soclake.outputs.audit") / "assets" / name).read_text(encoding="utf-8")


def _esc(v) -> str:
    return html.escape(str(v), quote=True)


def _cell(v):
    """A JSON-ready cell: lists joined, dicts as JSON text, numbers and text as they are."""
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v)
    if isinstance(v, dict):
        return json.dumps(clean(v), default=str)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (int, float, bool)) or v is None:
        return v
    return str(v)


def clean(v):
    """JSON-safe numbers throughout (NaN and infinities become null)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [clean(x) for x in v]
    return v


def table(rows: list[dict], columns: list[str] | tuple[str, ...] | None = None, page: int = PAGE) -> str:
    """A sortable, paged table of every row (none cut); the rows travel as JSON in the page."""
    if not rows:
        return "<p class='note'>none</p>"
    columns = list(columns or rows[0])
    data = {"columns": columns, "rows": [[_cell(r.get(c)) for c in columns] for r in rows], "page": page}
    text = json.dumps(data, default=str, allow_nan=False).replace("<", "\\u003c")
    return (f"<div class='sl-table'><script type='application/json'>{text}</script>"
            f"<noscript><p class='note'>{len(rows)} rows; the table needs JavaScript (or read the JSON file "
            "beside this report)</p></noscript></div>")


def section(anchor: str, title: str, body: str, note: str = "") -> str:
    n = f"<p class='note'>{_esc(note)}</p>" if note else ""
    return f"<section id='{_esc(anchor)}'><h2>{_esc(title)}</h2>{n}{body}</section>"


def _link(anchor: str, text: str) -> str:
    return f"<a href='#{_esc(anchor)}'>{_esc(text)}</a>"


def headline(result: dict) -> str:
    """The numbers a reader needs first, each linking to the table behind it."""
    h, f = result["headline"], result["filter"]
    items = [f"<span class='big'>{h['segments']:,} segments</span> in "
             f"{_link('pool-categories', str(h['categories']) + ' categories')} after "
             f"{_link('sources', f['name'])} ({_esc(f['why'])})"]
    if f["note"]:
        items.append(_link("sources", f["note"]))
    if h["coverage"]:
        c = h["coverage"]
        items.append(f"vocabulary {_esc(h['vocabulary'])}: {_link('vocabulary', str(c['covered']) + ' covered')}, "
                     f"{_link('vocabulary', str(c['thin']) + ' thin')} (&lt; {result['min_segments']} segments), "
                     f"{_link('missing', str(c['missing']) + ' missing')}")
    items.append(f"the {h['top_categories']} largest categories hold {h['top_share']:.1%} of the segments; "
                 f"{_link('over-represented', str(h['over_represented']) + ' over-represented')}, "
                 f"{_link('pool-categories', str(h['thin']) + ' thin')}, "
                 f"{_link('thin-in-diversity', str(h['thin_in_diversity']) + ' thin in diversity')}")
    n = h["near_duplicates"]
    items.append(f"{_link('near-duplicates', plural(n['groups'], 'near-duplicate group', 'near-duplicate groups'))} "
                 f"of {n['segments']} "
                 f"segments ({n['copies']} copies; {n['across_sources']} across sources, "
                 f"{n['across_categories']} across categories)")
    for p in h["problems"]:
        items.append(f"{_link('problem-' + p['problem'], p['problem'].replace('_', ' '))}: "
                     f"{plural(p['segments'], 'segment', 'segments')} "
                     f"in {plural(p['categories'], 'category', 'categories')} <span class='note'>({_esc(p['rule'])})</span>")
    if not h["problems"]:
        items.append(_link("problems", "no alpha or size problem found"))
    if h["unknown_note"]:
        items.append(_esc(h["unknown_note"]))
    return "<section class='headline' id='headline'><ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul></section>"


# ---------------------------------------------------------------------------- plots
def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def plots(result: dict) -> list[tuple[str, str]]:
    """Figures drawn without pyplot (no global backend or figure registry is touched)."""
    # matplotlib is a 0.4 s import only these plots need: every command would pay it at start
    from matplotlib.figure import Figure
    figures = []
    counts = sorted((r["kept"] for r in result["pool"]["categories"]), reverse=True)
    fig = Figure(figsize=(7, 3.2))
    ax = fig.subplots()
    ax.plot(range(1, len(counts) + 1), [max(c, 0.8) for c in counts])
    ax.set(yscale="log", xlabel="category rank", ylabel="segments",
           title=f"long tail: segments per category after {result['filter']['name']}")
    figures.append(("Long tail", _png(fig)))
    funnel = result["pool"]["funnel"]
    fig = Figure(figsize=(7, 3.2))
    ax = fig.subplots()
    ax.bar([f["filter"] for f in funnel], [f["segments"] or 0 for f in funnel], color="#4c78a8")
    ax.set(ylabel="segments", title="quality-filter funnel")
    figures.append(("Quality-filter funnel", _png(fig)))
    sizes = result["pool"]["size_histogram"]
    fig = Figure(figsize=(7, 3.2))
    ax = fig.subplots()
    ax.bar([str(s["side"]) for s in sizes], [s["segments"] for s in sizes], color="#72b7b2")
    ax.set(xlabel="longest side (px, power-of-two bin)", ylabel="segments", title="segment size histogram")
    figures.append(("Segment sizes", _png(fig)))
    if "vocabulary" in result:
        v = result["vocabulary"]
        fig = Figure(figsize=(10, 3.6))
        a1, a2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 3]})
        a1.bar(list(v["counts"]), list(v["counts"].values()), color=["#54a24b", "#f58518", "#e45756"])
        a1.set(title=f"{v['name']}: {v['size']} names")
        low = sorted((r for r in v["coverage"] if r["status"] != "missing"), key=lambda r: r["segments_filtered"])[:30]
        a2.barh([r["name"] for r in low][::-1], [r["segments_filtered"] for r in low][::-1], color="#f58518")
        a2.axvline(result["min_segments"], color="#e45756", linestyle="--")
        a2.set(title=f"least covered names (segments after {result['filter']['name']})")
        a2.tick_params(axis="y", labelsize=7)
        figures.append(("Vocabulary coverage", _png(fig)))
    if "dataset" in result:
        d = result["dataset"]
        fig = Figure(figsize=(10, 3.2))
        a1, a2 = fig.subplots(1, 2)
        a1.bar(list(d["lvis_frequency"]), list(d["lvis_frequency"].values()), color="#b279a2")
        a1.set(title="categories per LVIS frequency bucket")
        a2.bar([f"{b['bin_start']:.1f}" for b in d["visibility"]], [b["instances"] for b in d["visibility"]])
        a2.set(title="visible fraction of instances", xlabel="bin start")
        figures.append((f"Dataset {d['job']}", _png(fig)))
    if result.get("sampling", {}).get("categories"):
        rows = result["sampling"]["categories"][:30]
        fig = Figure(figsize=(10, 3.4))
        ax = fig.subplots()
        x = range(len(rows))
        ax.bar([i - 0.2 for i in x], [r["planned_share"] for r in rows], 0.4, label="planned", color="#e45756")
        ax.bar([i + 0.2 for i in x], [r["temperature_share"] for r in rows], 0.4, label="temperature", color="#4c78a8")
        ax.set_xticks(list(x), [r["category"] for r in rows], rotation=60, fontsize=7)
        ax.set(ylabel="share of object slots", title="sampling shift (most boosted first)")
        ax.legend()
        figures.append(("Sampling shift", _png(fig)))
    return figures


# ---------------------------------------------------------------------------- sections
def _pool_sections(result: dict) -> list[str]:
    pool, m, fname = result["pool"], result["min_segments"], result["filter"]["name"]
    cats = pool["categories"]
    out = [section("pool-categories", "Pool categories", table(cats, POOL_COLUMNS + (
        "share", "main_colour", "main_colour_share", "colour_entropy", "mean_side", "unknown")),
        f"The pool's own categories, thin first (fewer than {m} segments after {fname}), then covered; "
        "kept = segments after the filter; diversity columns are over the kept segments.")]
    if "vocabulary" in result:
        v = result["vocabulary"]
        out.append(section("missing", f"Vocabulary names with no segment ({len(v['missing'])})",
                           table([{"name": n} for n in v["missing"]], page=50),
                           f"Names of {v['name']} that no pool category matches (after case, plural and "
                           "synonym folding)."))
        out.append(section("vocabulary", f"Vocabulary {v['name']}: every name", table(
            [{k: r[k] for k in ("name", "status", "segments", "segments_filtered", "subcategories", "categories")}
             for r in v["coverage"]]), "categories: the lake's category ids each name matched."))
    rules = pool["problems"]
    out.append(section("problems", "Problems", table(
        [{"problem": p["problem"], "segments": p["segments"], "categories": p["categories"], "rule": p["rule"],
          "view": p["view_name"]} for p in rules]),
        f"Each rule is a SQL view of sql/50_audit.sql (SELECT * FROM its view); counts are after {fname}."))
    for p in rules:
        out.append(section(f"problem-{p['problem']}", f"{p['problem'].replace('_', ' ')}: per category",
                           table(p["by_category"]), f"{p['rule']}. Segments: SELECT * FROM {p['view_name']}"))
    div_cols = ("category", "kept", "distinct_looks", "near_duplicates", "subcategories", "short_phrases",
                "colours", "main_colour", "main_colour_share", "size_spread")
    out.append(section("thin-in-diversity", "Thin in diversity", table(
        [{k: c[k] for k in div_cols} for c in cats if c["thin_in_diversity"]]),
        "Categories whose kept segments are near-identical, whatever their count: half or more are "
        "near-duplicate copies, or one subcategory and phrase, 90% one colour and one size."))
    out.append(section("over-represented", "Over-represented", table(
        [{k: c[k] for k in ("category", "kept", "share")} for c in cats if c["over_represented"]]),
        "Categories holding more than 3 times the fair share (1 / categories) of the kept segments."))
    listed, total = len(pool["near_duplicate_groups"]), pool["near_duplicates"]["groups"]
    out.append(section("near-duplicates", "Near-duplicate groups", table(pool["near_duplicate_groups"]),
                       "Perceptual hashes within 4 bits and the same dominant colour, within and across sources; "
                       "a group is named by its first-ingested member (SELECT * FROM near_duplicate_members "
                       "WHERE root = ...)." + (f" The {listed:,} largest of {total:,} groups are listed here; "
                                               "SELECT * FROM near_duplicate_groups has every one."
                                               if listed < total else "")))
    out.append(section("duplicates", "Exact duplicates (rejected at ingest)", table(pool["duplicates"])))
    out.append(section("sources", "Sources and quality filters", table(result["filter"]["sources"]),
                       f"Audited with {fname}: {result['filter']['why']}. {result['filter']['note']}"))
    return out


def _job_sections(result: dict) -> list[str]:
    out = []
    if "dataset" in result:
        d = result["dataset"]
        out.append(section("dataset", f"Dataset {d['job']} [{d['fingerprint']}]", table(d["categories"]),
                           "Fewest instances first."))
        out.append(section("pairs", "Co-occurring category pairs", table(d["top_pairs"])))
        out.append(section("planned-vs-rendered", "Planned vs rendered", table(d["planned_vs_rendered"])))
    if "sampling" in result:
        s = result["sampling"]
        out.append(section("sampling-shift", f"Sampling shift of {s['job']} [{s['fingerprint']}]",
                           table([{k: r[k] for k in SHIFT_COLUMNS} for r in s["categories"]])))
        if s.get("sizes"):
            out.append(section("size-mix", "Size mix by size feedback",
                               table([{"size": b, **v} for b, v in s["sizes"].items()])))
    return out


def render(result: dict) -> str:
    """The report's HTML text."""
    figures = "".join(f"<h3>{_esc(t)}</h3><img alt='{_esc(t)}' src='data:image/png;base64,{b}'>"
                    for t, b in plots(result))
    body = _pool_sections(result) + _job_sections(result)
    toc = " ".join(_link(a, t) for a, t in (("pool-categories", "pool categories"), ("missing", "missing names"),
                                            ("problems", "problems"), ("near-duplicates", "near-duplicates"),
                                            ("thin-in-diversity", "diversity"), ("sources", "sources"),
                                            ("plots", "plots"))
                   if f"id='{a}'" in "".join(body) or a == "plots")
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>soclake audit</title><style>{_asset('report.css')}</style></head><body>"
            f"<h1>soclake audit of {_esc(result['lake'])}</h1>" + headline(result)
            + f"<nav class='toc'>{toc}</nav>" + "".join(body)
            + f"<section id='plots'><h2>Plots</h2>{figures}</section>"
            + f"<script>{_asset('report.js')}</script></body></html>")


def write_report(result: dict, path: str) -> tuple[str, str]:
    """Write the HTML report and its JSON twin (same path, .json), each atomically."""
    json_path = os.path.splitext(path)[0] + ".json"
    for target, text in ((path, render(result)), (json_path, json.dumps(clean(result), indent=1, default=str))):
        fs, p = storage.resolve(target)
        storage.write_bytes(fs, p, text.encode("utf-8"))
    return path, json_path
