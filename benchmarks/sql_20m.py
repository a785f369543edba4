"""SQL over a 20M-row segments table with 47,000 Zipf-skewed categories, through a Lake.

Generates a lake whose segments table has exactly the columns of schemas/segments.json
(DuckDB writes the Parquet parts itself, in a child process; categories go in through
Lake.append; 2% distractors, each quality flag 80% true), opens it with `Lake(path)` and
times, through `lake.query` (its normal views):
  (a) filtered count per category:  SELECT category_id, count(*) FROM filter_4 GROUP BY category_id
  (b) a weighted sample of rows/20 rows (1M at full size) from filter_4, Efraimidis-Spirakis:
      ORDER BY -ln(random()) * (1 / weight) LIMIT n   (the form FACTS.md checked), with
      row weight = count(category)^(ALPHA - 1), i.e. category mass proportional to count^ALPHA
  (c) the deterministic alternative FACTS.md recommends: SQL counts rows per category, a
      seeded numpy Generator draws how many rows each category gets (same masses), and SQL
      takes each category's first k rows in a seeded hash order of segment_id. Checked to
      give the same rows at 1 and at all DuckDB threads.
  (c2) (c), ranking only rows under a per-category hash threshold; checked to equal (c).
Target: each under 2 s on the 2-core machine (median of --repeats wall times).
Baseline, in the same run: `SELECT count(*) FROM segments` (a full scan, which DuckDB answers
mostly from Parquet metadata); ratios are printed against it. CPU seconds (all threads) are
printed next to wall seconds: cpu ~ wall means one core did the work (a single-threaded plan,
or other processes holding the second core -- see the load average printed).
Peak memory: ru_maxrss of this process (generation runs in a child, reported apart) and
DuckDB's own peak buffer memory per query (from its JSON profiler, in one extra run).
Generation time is reported, not part of the target. The data is written under a temporary
folder (--dir to choose where) and deleted at the end unless --keep.

Run (from the repository root):
    python benchmarks/sql_20m.py            # 20M rows
    python benchmarks/sql_20m.py --small    # 1M rows, smoke test
    python benchmarks/sql_20m.py --rows 5000000 --repeats 5 --keep
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import tempfile
import time
from typing import Callable

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from soclake import Lake
from soclake.lake.schemas import table_schema
from soclake.resources import data_dir

TARGET_S = 2.0
N_CATEGORIES = 47_000
ALPHA = 0.5          # category mass ~ count**ALPHA (temperature-style; 0.5 = 1/sqrt(count) row weight)
ROW_GROUP = 122_880  # DuckDB's default Parquet row group

# One SQL expression per column of schemas/segments.json, over a row index `i` and three
# 64-bit hashes of it (h1 draws the category, h2 flags and subcategory, h3 sizes). Category
# ranks are Zipf(1): rank = floor((N + 1) ** u) gives P(rank = k) ~ 1/k; a multiplication
# modulo N scatters ranks over ids (rank 1 is id 1, rank 2 id 7920, ...).
ROWS_SQL = f"""
WITH r AS (
    SELECT i, hash(i, 1) AS h1, hash(i, 2) AS h2, hash(i, 3) AS h3 FROM _idx
), c AS (
    SELECT *,
        (((least({N_CATEGORIES}, floor(pow({N_CATEGORIES} + 1, (h1 >> 11) / 2.0 ** 53)))::BIGINT - 1)
          * 7919) % {N_CATEGORIES} + 1)::INTEGER AS cid,
        (h2 >> 40) % 5 AS sub, 32 + h3 % 993 AS w, 32 + (h3 >> 16) % 993 AS h
    FROM r
)
SELECT {{columns}} FROM c
"""
COLUMNS = {
    "segment_id": "md5(i::VARCHAR)",
    "segment_key": "segment_key_of(md5(i::VARCHAR))",
    "source": "'bench'",
    "layout": "'soc'",
    "source_uri": "'cat' || cid || '/' || sub || '/' || i || '.png'",
    "category": "'cat' || cid",
    "category_id": "cid",
    "subcategory": "sub::VARCHAR",
    "description": "'A photo of a cat' || cid || ' object, variant ' || sub || ', on a plain background.'",
    "short_phrase": "'cat' || cid || ' variant ' || sub",
    "features": "['red', 'wooden', 'cat' || cid]",
    "descriptions": "['A photo of a cat' || cid || ' object, variant ' || sub || ', on a plain background.']",
    "short_phrases": "['cat' || cid || ' variant ' || sub]",
    "exif_orientation": "1",
    "neg_category_ids": "[]",
    "not_exhaustive_category_ids": "[]",
    "is_distractor": "(h2 >> 24) % 100 < 2",
    "is_instance": "h2 % 100 < 80",
    "integrity": "(h2 >> 8) % 100 < 80",
    "quality_regularity": "(h2 >> 16) % 100 < 80",
    "width": "w",
    "height": "h",
    "source_width": "1024",
    "source_height": "1024",
    "crop_x": "(h3 >> 32) % (1025 - w)",
    "crop_y": "(h3 >> 42) % (1025 - h)",
    "alpha_area": "w * h * 6 // 10",
    "alpha_fraction": "0.6",
    "alpha_components": "1",
    "soft_edge_fraction": "0.05",
    "alpha_holes": "0",
    "alpha_hole_fraction": "0.0",
    "alpha_mean": "0.93",
    "phash": "hash(i, 4)",
    "near_duplicate": "NULL",
    "dominant_color": "'grey'",
    "levels": ("[{'side': greatest(w, h), 'width': w, 'height': h, 'pack': 'packs/segments/bench/p' || i // 20000 || '.tar', "
               "'offset': i * 65536, 'length': 40000}, "
               "{'side': 64, 'width': 64, 'height': 64, 'pack': 'packs/segments/bench/p' || i // 20000 || '.tar', "
               "'offset': i * 65536 + 40448, 'length': 3000}]"),
    "codec": "'webp'",
    "sha256": "sha256(i::VARCHAR)",
    "ingest_run": "'bench-run'",
}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="1M rows instead of 20M (smoke test)")
    ap.add_argument("--rows", type=int, help="rows in the segments table (default 20M, --small 1M)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per query (median reported)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the deterministic sample")
    ap.add_argument("--dir", help="where to make the temporary lake (default: the system temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the generated lake")
    return ap.parse_args()


# ---------------------------------------------------------------------------- the table
def duckdb_types(table: str) -> dict[str, str]:
    """DuckDB's type for each column of a lake table, derived from its Arrow schema."""
    con = duckdb.connect()
    con.register("_empty", table_schema(table).empty_table())
    return {name: typ for name, typ, *_ in con.execute("DESCRIBE _empty").fetchall()}


def segments_sql(overrides: dict[str, str] | None = None) -> str:
    """SELECT producing rows of the segments table from the index table `_idx` (`overrides`:
    other expressions for some columns, e.g. audit_20m.py's near-duplicates)."""
    columns = {**COLUMNS, **(overrides or {})}
    types = duckdb_types("segments")
    missing = set(types) ^ set(columns)
    if missing:
        raise SystemExit(f"COLUMNS and schemas/segments.json disagree on {sorted(missing)}")
    cols = ",\n    ".join(f"CAST({columns[name]} AS {typ}) AS {name}" for name, typ in types.items())
    return ROWS_SQL.format(columns=cols)


def write_segments(folder: str, rows: int, overrides: dict[str, str] | None = None) -> None:
    """Write the segments parts with DuckDB (in a child process: keeps the parent's RSS clean).
    The row index is a table, not range(), so that every thread scans and writes in parallel."""
    con = duckdb.connect()
    con.execute((data_dir("sql") / "05_keys.sql").read_text())  # segment_key_of, as ingest derives the key
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")
    con.execute(f"CREATE TEMP TABLE _idx AS SELECT range AS i FROM range({rows})")
    per_file = max(1, math.ceil(rows / ROW_GROUP / 8))  # about 8 parts
    con.execute(f"COPY ({segments_sql(overrides)}) TO '{folder}' (FORMAT parquet, COMPRESSION zstd, "
                f"ROW_GROUPS_PER_FILE {per_file}, FILENAME_PATTERN 'part-bench-{{i}}')")
    con.close()


def make_lake(root: str, rows: int) -> dict:
    """A lake holding `rows` generated segments and the N_CATEGORIES categories."""
    lake = Lake(root, create=True)
    ids = np.arange(1, N_CATEGORIES + 1, dtype=np.int32)
    lake.append("categories", pa.table({
        "category_id": ids, "name": [f"cat{i}" for i in ids],
        "synonyms": pa.array([[]] * N_CATEGORIES, pa.list_(pa.string())),
        "coco_id": pa.nulls(N_CATEGORIES, pa.int32()), "lvis_id": pa.nulls(N_CATEGORIES, pa.int32()),
        "frequency": pa.nulls(N_CATEGORIES, pa.string()), "synset": pa.nulls(N_CATEGORIES, pa.string()),
        "first_source": ["bench"] * N_CATEGORIES}))
    t0 = time.perf_counter()
    child = mp.get_context("spawn").Process(target=write_segments, args=(lake.table_dir("segments"), rows))
    child.start()
    child.join()
    if child.exitcode:
        raise SystemExit(f"generating the segments table failed (exit code {child.exitcode})")
    seconds = time.perf_counter() - t0
    size = sum(os.path.getsize(p) for p in lake.table_parts("segments"))
    return {"seconds": seconds, "bytes": size, "parts": len(lake.table_parts("segments")),
            "child_rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}


def check_table(lake: Lake, rows: int) -> None:
    """The segments view has the schema's columns and types; print the category skew."""
    got = {name: typ for name, typ, *_ in lake.con.execute("DESCRIBE segments").fetchall()}
    if got != duckdb_types("segments"):
        raise SystemExit(f"generated segments do not match schemas/segments.json: {got}")
    n, cats, top, med, f4 = lake.con.execute(
        "SELECT sum(n), count(*), max(n), median(n), (SELECT count(*) FROM filter_4) FROM "
        "(SELECT count(*) AS n FROM segments GROUP BY category_id)").fetchall()[0]
    assert n == rows, (n, rows)
    print(f"table: {n:,} rows in the schema's {len(got)} columns; {cats:,} categories, largest "
          f"{top:,} rows ({top / n:.1%}), median {med:,.0f}; filter_4 keeps {f4:,}")


# ---------------------------------------------------------------------------- the queries
COUNT_ALL = "SELECT count(*) FROM segments"
COUNT_PER_CATEGORY = "SELECT category_id, count(*) AS n FROM filter_4 GROUP BY category_id"
WEIGHTED_SAMPLE = f"""
WITH w AS (SELECT category_id, pow(count(*), {ALPHA} - 1) AS weight FROM filter_4 GROUP BY category_id)
SELECT segment_id, category_id FROM filter_4 JOIN w USING (category_id)
ORDER BY -ln(random()) * (1 / weight)
LIMIT $n
"""
# Each category's first k rows in the order of a seeded hash of segment_id (ties: segment_id).
PICK_BY_QUOTA = """
SELECT segment_id, category_id FROM (
    SELECT s.segment_id, s.category_id, q.k, hash(s.segment_id, $seed) AS h,
           row_number() OVER (PARTITION BY s.category_id ORDER BY h, s.segment_id) AS r
    FROM filter_4 s JOIN _quotas q USING (category_id)
) WHERE r <= k
ORDER BY category_id, h, segment_id
"""
# The same rows, ranking only candidates whose hash falls below a per-category threshold set
# so that about 1.3 k + 40 of a category's n rows pass; it is exact whenever every category
# gets at least k candidates (checked by the row count; short: fall back to PICK_BY_QUOTA).
PICK_PREFILTERED = """
SELECT segment_id, category_id FROM (
    SELECT s.segment_id, s.category_id, q.k, hash(s.segment_id, $seed) AS h
    FROM filter_4 s JOIN _quotas q USING (category_id)
    WHERE h <= least(1.0, (1.3 * q.k + 40) / q.n) * 18446744073709551615.0
)
QUALIFY row_number() OVER (PARTITION BY category_id ORDER BY h, segment_id) <= k
ORDER BY category_id, h, segment_id
"""

# With the integer key (schemas/segments.json segment_key): E-S keys from a seeded hash of it
# (reproducible at any thread count, unlike random()), u = (hash + 0.5) / 2^64, key = -ln(u) / w,
# ranking only rows whose key is below a threshold t that numpy sets from the category counts
# so that about n + 6 sqrt(n) + 100 rows pass (exact whenever at least n pass, as checked).
# The weights come from those counts (the registered table _weights): one scan counts, one samples.
WEIGHTED_SAMPLE_KEYED = """
SELECT segment_key, category_id FROM (
    SELECT segment_key, category_id, -ln((hash(segment_key, $seed)::DOUBLE + 0.5) / 18446744073709551616.0) / weight AS k
    FROM filter_4 JOIN _weights USING (category_id)
) WHERE k < $t
ORDER BY k, segment_key
LIMIT $n
"""
PICK_PREFILTERED_KEYED = PICK_PREFILTERED.replace("segment_id", "segment_key")

Query = Callable[..., pa.Table]  # lake.query, or Profiler.query


def draw_quotas(counts: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Rows per category: multinomial on mass count**ALPHA, capped at the count, with the
    overflow redrawn over the categories that still have room. A pure function of the seed."""
    quota = np.zeros_like(counts)
    mass = counts.astype(np.float64) ** ALPHA
    while (left := n - int(quota.sum())) > 0:
        p = np.where(quota < counts, mass, 0.0)
        quota = np.minimum(quota + rng.multinomial(left, p / p.sum()), counts)
    return quota


def quota_sample(lake: Lake, query: Query, n: int, seed: int, prefilter: bool = False) -> pa.Table:
    """FACTS.md's reproducible sample: SQL counts, numpy draws quotas, SQL picks rows."""
    counts = query(COUNT_PER_CATEGORY + " ORDER BY category_id")
    quotas = draw_quotas(counts.column("n").to_numpy(), n, np.random.default_rng(seed))
    lake.con.register("_quotas", pa.table({"category_id": counts.column("category_id"), "k": quotas,
                                           "n": counts.column("n")}))
    if prefilter:
        picked = query(PICK_PREFILTERED, {"seed": seed})
        if picked.num_rows == n:
            return picked
    return query(PICK_BY_QUOTA, {"seed": seed})


def es_threshold(counts: np.ndarray, n: int) -> float:
    """t with sum_c n_c (1 - exp(-w_c t)) = n + 6 sqrt(n) + 100 rows expected below it, w_c =
    n_c^(ALPHA - 1) (bisection; the mean and spread of that count are known exactly)."""
    want = min(n + 6 * math.sqrt(n) + 100, counts.sum())
    w = counts.astype(np.float64) ** (ALPHA - 1)
    lo, hi = 0.0, 1.0
    while (counts * -np.expm1(-w * hi)).sum() < want:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if (counts * -np.expm1(-w * mid)).sum() < want else (lo, mid)
    return hi


def weighted_sample_keyed(lake: Lake, query: Query, n: int, seed: int) -> pa.Table:
    """E-S on the integer key with the threshold prefilter; the whole table if too few pass."""
    counts = query(COUNT_PER_CATEGORY)
    n_c = counts.column("n").to_numpy()
    lake.con.register("_weights", pa.table({"category_id": counts.column("category_id"),
                                            "weight": n_c.astype(np.float64) ** (ALPHA - 1)}))
    picked = query(WEIGHTED_SAMPLE_KEYED, {"n": n, "seed": seed, "t": es_threshold(n_c, n)})
    if picked.num_rows < n:
        picked = query(WEIGHTED_SAMPLE_KEYED, {"n": n, "seed": seed, "t": float("inf")})
    return picked


def quota_sample_keyed(lake: Lake, query: Query, n: int, seed: int) -> pa.Table:
    """(c2) on the integer key: no string column is read."""
    counts = query(COUNT_PER_CATEGORY + " ORDER BY category_id")
    quotas = draw_quotas(counts.column("n").to_numpy(), n, np.random.default_rng(seed))
    lake.con.register("_quotas", pa.table({"category_id": counts.column("category_id"), "k": quotas,
                                           "n": counts.column("n")}))
    picked = query(PICK_PREFILTERED_KEYED, {"seed": seed})
    return picked if picked.num_rows == n else query(PICK_BY_QUOTA.replace("segment_id", "segment_key"), {"seed": seed})


# ---------------------------------------------------------------------------- measuring
class Profiler:
    """lake.query with DuckDB's JSON profiler on; keeps the peak buffer memory of each query."""

    def __init__(self, lake: Lake, folder: str):
        self.lake, self.out, self.peaks = lake, os.path.join(folder, "profile.json"), []

    def query(self, sql: str, params: dict | None = None) -> pa.Table:
        con = self.lake.con
        con.execute("SET enable_profiling = 'json'")
        con.execute(f"SET profiling_output = '{self.out}'")
        try:
            result = self.lake.query(sql, params)
        finally:
            con.execute("PRAGMA disable_profiling")
        with open(self.out) as f:
            self.peaks.append(json.load(f)["system"]["peak_buffer_memory"])
        return result


def timed(run: Callable[[Query], pa.Table], query: Query, repeats: int) -> tuple[list, list, pa.Table]:
    """Wall and CPU seconds (all threads of this process) of each run, and the last result."""
    walls, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        result = run(query)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return walls, cpus, result


def same_at_one_thread(lake: Lake, n: int, seed: int, result: pa.Table) -> bool:
    """The quota sample does not depend on DuckDB's thread count (random() would)."""
    threads = lake.con.execute("SELECT current_setting('threads')").fetchall()[0][0]
    lake.con.execute("SET threads = 1")
    try:
        return quota_sample(lake, lake.query, n, seed).equals(result)
    finally:
        lake.con.execute(f"SET threads = {threads}")


def rows_of(table: pa.Table, category_id: int) -> int:
    return pc.sum(pc.equal(table.column("category_id"), category_id)).as_py() or 0


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    args = parse_args()
    rows = args.rows or (1_000_000 if args.small else 20_000_000)
    n = rows // 20  # 1M at full size
    scratch = tempfile.mkdtemp(prefix="soclake-bench-sql-", dir=args.dir)
    root = os.path.join(scratch, "lake")
    try:
        print(f"generating {rows:,} rows ({load()})", flush=True)
        gen = make_lake(root, rows)
        print(f"generated in {gen['seconds']:.1f} s (not part of the target): {gen['parts']} Parquet parts, "
              f"{gen['bytes'] / 2**20:,.0f} MiB, generator peak RSS {gen['child_rss'] / 2**20:,.0f} MiB")
        lake = Lake(root)
        check_table(lake, rows)
        threads = lake.con.execute("SELECT current_setting('threads')").fetchall()[0][0]
        print(f"DuckDB {duckdb.__version__}, {threads} threads, {os.cpu_count()} cores; medians of "
              f"{args.repeats} runs; target < {TARGET_S:g} s; {load()}\n")

        benchmarks: dict[str, Callable[[Query], pa.Table]] = {
            "baseline: count(*) FROM segments": lambda q: q(COUNT_ALL),
            "(a) filter_4 count per category": lambda q: q(COUNT_PER_CATEGORY),
            "(b) E-S weighted sample": lambda q: q(WEIGHTED_SAMPLE, {"n": n}),
            "(c) seeded quota sample": lambda q: quota_sample(lake, q, n, args.seed),
            "(c2) (c) with hash prefilter": lambda q: quota_sample(lake, q, n, args.seed, prefilter=True),
            "(b3) E-S on segment_key, seeded": lambda q: weighted_sample_keyed(lake, q, n, args.seed),
            "(c3) (c2) on segment_key": lambda q: quota_sample_keyed(lake, q, n, args.seed),
        }
        lake.query(COUNT_PER_CATEGORY)  # one untimed pass: open the parts, warm the page cache
        print(f"{'query':<34} {'wall s':>7} {'x base':>7} {'verdict':>7} {'cpu s':>6} {'duckdb peak':>11}  wall of each run (s)")
        results, medians, base = {}, {}, None
        for name, run in benchmarks.items():
            walls, cpus, results[name] = timed(run, lake.query, args.repeats)
            wall = statistics.median(walls)
            medians[name] = wall
            base = base or wall
            profiler = Profiler(lake, scratch)
            run(profiler.query)  # one more, untimed, run for DuckDB's own peak memory
            verdict = "-" if name.startswith("baseline") else ("PASS" if wall < TARGET_S else "MISS")
            print(f"{name:<34} {wall:7.3f} {wall / base:7.1f} {verdict:>7} {statistics.median(cpus):6.2f} "
                  f"{max(profiler.peaks) / 2**20:7,.0f} MiB  " + " ".join(f"{t:.3f}" for t in walls), flush=True)

        es, quota = results["(b) E-S weighted sample"], results["(c) seeded quota sample"]
        print(f"\nsamples of {n:,} rows from filter_4; row weight = count(category)^{ALPHA - 1:g}")
        for label, table in (("E-S", es), ("quota", quota)):
            if table.num_rows != n:
                print(f"warning: the {label} sample has {table.num_rows:,} rows, not {n:,}")
        big = lake.query(COUNT_PER_CATEGORY + " ORDER BY n DESC LIMIT 1").to_pylist()[0]
        print(f"largest category (id {big['category_id']}, {big['n']:,} filter_4 rows): "
              f"{rows_of(es, big['category_id']):,} rows in the E-S sample, "
              f"{rows_of(quota, big['category_id']):,} in the quota sample")
        print(f"(c2) gives the same rows as (c): {results['(c2) (c) with hash prefilter'].equals(quota)}")
        print(f"(c) gives the same rows at 1 thread as at {threads}: {same_at_one_thread(lake, n, args.seed, quota)}")
        es3, quota3 = results["(b3) E-S on segment_key, seeded"], results["(c3) (c2) on segment_key"]
        counts = lake.query(COUNT_PER_CATEGORY).column("n").to_numpy()
        whole = lake.query(WEIGHTED_SAMPLE_KEYED, {"n": n, "seed": args.seed, "t": float("inf")})
        print(f"(b3) has {es3.num_rows:,} rows, the same as without its threshold: {es3.equals(whole)}; rows below the "
              f"threshold: {lake.query(WEIGHTED_SAMPLE_KEYED.replace('LIMIT $n', ''), {'seed': args.seed, 't': es_threshold(counts, n)}).num_rows:,}")
        lake.con.execute("SET threads = 1")
        try:
            print(f"(b3) and (c3) give the same rows at 1 thread as at {threads}: "
                  f"{weighted_sample_keyed(lake, lake.query, n, args.seed).equals(es3)}, "
                  f"{quota_sample_keyed(lake, lake.query, n, args.seed).equals(quota3)}")
        finally:
            lake.con.execute(f"SET threads = {threads}")
        print(f"(b3) largest category: {rows_of(es3, big['category_id']):,} rows (E-S (b): {rows_of(es, big['category_id']):,})")
        for new, old in (("(b3) E-S on segment_key, seeded", "(b) E-S weighted sample"),
                         ("(c3) (c2) on segment_key", "(c) seeded quota sample"),
                         ("(c3) (c2) on segment_key", "(c2) (c) with hash prefilter")):
            print(f"{new}: {medians[new]:.3f} s, {medians[old] / medians[new]:.1f}x faster than {old} in this run")
        print(f"peak RSS of this process (ru_maxrss; generation ran in a child): "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:,.0f} MiB; {load()}")
        lake.refresh()
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":  # the generator runs in a spawned child: it re-imports this file
    main()
