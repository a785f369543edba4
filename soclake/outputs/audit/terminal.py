"""The audit in the terminal: the headline first, then the pool's own categories (thin first),
the vocabulary's missing names, problems and near-duplicates, and the job's numbers. Long lists
print their first rows and say how many more the HTML report (--out) pages through."""
from __future__ import annotations

import pyarrow as pa

from soclake.outputs.tables import print_table

POOL_ROWS = 50       # pool categories printed (thin ones always, up to THIN_ROWS)
THIN_ROWS = 200
NAMES = 40           # missing vocabulary names printed
ROWS = 20            # rows of the other tables
POOL_COLUMNS = ("category", "status", "kept", "segments", "vocab_names", "subcategories", "short_phrases",
                "colours", "size_spread", "distinct_looks", "thin_in_diversity", "over_represented")
SHIFT_COLUMNS = ("category", "eligible", "frequency", "feedback_ap", "ap_used", "planned", "planned_share",
                 "target_share", "uniform_share", "temperature_share", "boost")


def plural(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def headline_lines(result: dict) -> list[str]:
    """The headline as plain sentences (also the HTML's, which adds links)."""
    h, f = result["headline"], result["filter"]
    lines = [f"{h['segments']:,} segments in {h['categories']:,} categories after {f['name']} ({f['why']})"]
    if f["note"]:
        lines.append(f["note"])
    if h["coverage"]:
        c = h["coverage"]
        lines.append(f"vocabulary {h['vocabulary']}: covered {c['covered']}, thin {c['thin']} "
                     f"(< {result['min_segments']} segments), missing {c['missing']}")
    lines.append(f"the {h['top_categories']} largest categories hold {h['top_share']:.1%} of the segments; "
                 f"{h['over_represented']} over-represented, {h['thin']} thin, "
                 f"{h['thin_in_diversity']} thin in diversity")
    n = h["near_duplicates"]
    lines.append(f"near-duplicates: {plural(n['groups'], 'group', 'groups')} of {n['segments']} segments "
                 f"({n['copies']} copies; {n['across_sources']} across sources, {n['across_categories']} across "
                 "categories)")
    for p in h["problems"]:
        lines.append(f"problem {p['problem']}: {plural(p['segments'], 'segment', 'segments')} in "
                     f"{plural(p['categories'], 'category', 'categories')} "
                     f"({p['rule']}; SELECT * FROM {p['view_name']})")
    if h["unknown_note"]:
        lines.append(h["unknown_note"])
    return lines


def print_summary(result: dict) -> None:
    print(f"soclake audit of {result['lake']}")
    for line in headline_lines(result):
        print(f"  {line}")
    _pool(result)
    if "vocabulary" in result:
        v = result["vocabulary"]
        missing = v["missing"]
        if missing:
            more = f" ... and {len(missing) - NAMES} more (the report lists all)" if len(missing) > NAMES else ""
            print(f"vocabulary names with no segment ({len(missing)}): {', '.join(missing[:NAMES])}{more}")
    problems = [p for p in result["pool"]["problems"] if p["segments"]]
    if problems:
        rows = [{"problem": p["problem"], "segments": p["segments"], "categories": p["categories"],
                 "most in": ", ".join(f"{c['category']} ({c['flagged']})" for c in p["by_category"][:3]),
                 "view": p["view_name"]} for p in problems]
        print_table(pa.Table.from_pylist(rows), title="problems (after the filter), per category in the report")
    groups = result["pool"]["near_duplicate_groups"]
    if groups:
        _rows([{k: g[k] for k in ("first", "segments", "max_bits", "source_names", "category_names")} for g in groups],
              "largest near-duplicate groups (SELECT * FROM near_duplicate_members WHERE root = ...)")
    dups = result["pool"]["duplicates"]
    if dups:
        print(f"{len(dups)} exact duplicates (same pixels) were rejected at ingest; see the view duplicate_segments")
    _dataset(result)


def _pool(result: dict) -> None:
    cats = result["pool"]["categories"]
    thin = [c for c in cats if c["status"] == "thin"]
    covered = sorted((c for c in cats if c["status"] != "thin"), key=lambda c: -c["kept"])
    shown = thin[:THIN_ROWS] + covered[:max(0, POOL_ROWS - len(thin))]
    if not shown:
        return
    rows = [{k: (", ".join(c[k]) if isinstance(c[k], list) else c[k]) for k in POOL_COLUMNS} for c in shown]
    print_table(pa.Table.from_pylist(rows), title=f"pool categories: thin first (< {result['min_segments']} after "
                f"{result['filter']['name']}), then covered, largest first")
    if len(shown) < len(cats):
        print(f"({len(cats) - len(shown)} more pool categories; the HTML report (--out) pages through all)")


def _rows(rows: list[dict], title: str) -> None:
    print_table(pa.Table.from_pylist(rows[:ROWS]), title=title)
    if len(rows) > ROWS:
        print(f"({len(rows) - ROWS} more rows; the HTML report (--out) pages through all)")


def _dataset(result: dict) -> None:
    if "dataset" in result:
        d = result["dataset"]
        print(f"job {d['job']} [{d['fingerprint']}]: LVIS buckets {d['lvis_frequency']}, COCO sizes {d['sizes']}")
        if d["categories"]:
            _rows(d["categories"], "dataset categories, fewest instances first")
    if result.get("sampling", {}).get("categories"):
        s = result["sampling"]
        _rows([{k: r[k] for k in SHIFT_COLUMNS} for r in s["categories"]],
              f"sampling shift of {s['job']} ({s['fingerprint']}): planned share vs temperature share")
    if result.get("sampling", {}).get("sizes"):
        print_table(pa.Table.from_pylist([{"size": b, **v} for b, v in result["sampling"]["sizes"].items()]),
                    title="size mix by size feedback: spec share vs planned share")
