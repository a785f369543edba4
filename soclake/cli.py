"""The `soclake` command line: parses arguments and calls the Python API, nothing more."""
from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import warnings

from soclake.errors import SoclakeError


def _lake_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lake", default=os.environ.get("SOCLAKE_LAKE"),
                   help="lake root: a folder or an fsspec URI (default: $SOCLAKE_LAKE)")


def _split_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fingerprint", help="job fingerprint (default: the newest with committed shards)")
    p.add_argument("--val-fraction", type=float, default=0.05, help="share of images in val (default 0.05)")
    p.add_argument("--test-fraction", type=float, default=0.05, help="share of images in test (default 0.05)")
    p.add_argument("--stratify", action="store_true",
                   help="move one image of every category with >= 10 images and none in val into val")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="soclake", description="A data lakehouse for synthetic "
                                 "object-composition datasets.")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="ingest segments or backgrounds from a source layout",
                       description="Ingest a source into the lake. Items already in the lake are skipped; "
                       "bad items become rows of the rejects table and never stop the run.")
    p.add_argument("layout", choices=["soc", "folders", "coco", "sod", "backgrounds", "parquet"])
    p.add_argument("source", help="pool root or SOC 7z release NAME.7z[.001] (soc), folder (folders, "
                   "backgrounds), COCO/LVIS instances JSON (coco), a folder holding images/ and masks/ (sod), "
                   "Parquet file, folder or quoted glob (parquet)")
    _lake_arg(p)
    p.add_argument("--source-name", help="name of the source in the lake (default: the folder name)")
    p.add_argument("--metadata", help="soc: metadata JSON keyed category_subcategory "
                   "(default: the one *metadata*.json in SOURCE)")
    p.add_argument("--quality", help="soc: quality-flag JSON keyed by relative path or SOC's universal index "
                   "Synthetic_<category>_<subcategory>_<id> (default: SOURCE/segment_quality.json if present)")
    p.add_argument("--category", help="sod, parquet: category of every item (sod default: the source folder name)")
    p.add_argument("--image-column", help="parquet: the image column (HF Image struct or binary; default image)")
    p.add_argument("--mask-column", help="parquet: a mask column; then the image may be RGB, as in sod")
    p.add_argument("--category-column", help="parquet: the category column (names, or HF ClassLabel ints; "
                   "default category)")
    p.add_argument("--map", action="append", metavar="COLUMN=FIELD", help="parquet: fill a segment field "
                   "(description, short_phrase, features, subcategory, is_instance, integrity, quality_regularity) "
                   "from a column; repeatable")
    p.add_argument("--follow-links", action="store_true", help="read symbolic links that point outside the "
                   "source (refused by default, as unsafe_path rejects)")
    p.add_argument("--strict", action="store_true", help="exit with status 1 when nothing was accepted")
    p.add_argument("--distractors", help="folders: a folder of unlabelled distractor cut-outs")
    p.add_argument("--images", help="coco: images folder (default: images/ beside the JSON)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--max-pixels", type=int, default=None, help="reject images above this many pixels")
    p.add_argument("--retry-rejects", action="store_true", help="process items rejected by earlier runs again")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show a progress bar (default: when stderr is a terminal)")

    p = sub.add_parser("sql", help="run SQL over the lake's tables and views",
                       description="Tables and views go by plain names: segments, backgrounds, categories, "
                       "rejects, filter_0 ... filter_4, category_counts, source_summary, ...")
    p.add_argument("query")
    _lake_arg(p)
    p.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table",
                   help="json writes one object per line (JSON Lines)")
    p.add_argument("--out", help="write to this file instead of standard output (needed for parquet)")
    p.add_argument("--limit", type=int, default=100, help="rows shown by --format table (default 100)")

    p = sub.add_parser("info", help="tables, row counts, categories, sources and bytes of a lake")
    _lake_arg(p)

    p = sub.add_parser("plan", help="plan a compose job (writes the plan table)",
                       description="Validate JOB.toml, fingerprint it against the pool and write its plan "
                       "(one row per image) without rendering. Fails before rendering on impossible constraints.")
    p.add_argument("spec", help="job spec TOML (see jobs/ and schemas/job_spec.json)")
    _lake_arg(p)
    p.add_argument("--workers", type=int, default=None, help="planning processes for large jobs (default: all cores)")

    p = sub.add_parser("run", help="run a job: compose (plan if needed, render) or relight",
                       description="Render every shard not committed yet. Rerunning a finished job does nothing; "
                       "an interrupted one renders only its missing shards. A spec with a [relight] or [refexp] "
                       "section runs that stage over the committed shards of its input job.")
    p.add_argument("spec")
    _lake_arg(p)
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores; with ray: "
                   "the cluster's CPUs, or its GPUs / num_gpus for GPU stages)")
    p.add_argument("--executor", default="local", choices=["local", "ray"],
                   help="local: a process pool on this machine; ray: Ray tasks, and actors for GPU stages")
    p.add_argument("--address", help="ray: the cluster to join (auto, HOST:6379 or ray://HOST:10001); default "
                   "$RAY_ADDRESS, else a private Ray on this machine bound to 127.0.0.1")
    p.add_argument("--retries", type=int, default=None, help="attempts after the first for a failing shard "
                   "(default: [job] retries, 2)")
    p.add_argument("--split", help="render only split I of N (shards with index %% N == I), e.g. 0/4; 'slurm' "
                   "reads SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)

    p = sub.add_parser("jobs", help="list jobs: fingerprints, shards committed, state and path")
    _lake_arg(p)

    p = sub.add_parser("show", help="draw a sample with its masks, boxes and labels to a PNG")
    p.add_argument("target", help="a job name or a shard .tar path")
    _lake_arg(p)
    p.add_argument("--key", help="sample key (default: the first sample)")
    p.add_argument("--fingerprint", help="job fingerprint (default: the job's newest committed one)")
    p.add_argument("--out", required=True, help="output PNG")

    p = sub.add_parser("export", help="export a job as COCO instances, COCO panoptic or ODVG",
                       description="coco: DIR/annotations.json; panoptic: DIR/panoptic.json + DIR/panoptic/*.png; "
                       "odvg: DIR/odvg.jsonl + DIR/label_map.json; --images also extracts the composites to DIR/images/.")
    _lake_arg(p)
    p.add_argument("--job", required=True, help="job name")
    p.add_argument("--format", required=True, choices=["coco", "panoptic", "odvg"])
    p.add_argument("--split", default="all", choices=["train", "val", "test", "all"])
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--images", action="store_true", help="also extract the composites to OUT/images/")
    _split_args(p)

    p = sub.add_parser("stats", help="category statistics and split sizes of a job")
    _lake_arg(p)
    p.add_argument("--job", required=True)
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    _split_args(p)

    p = sub.add_parser("audit", help="audit category coverage of the pool (and a job) against a vocabulary",
                       description="Pool coverage per vocabulary name (missing and thin first), quality funnel, "
                       "attribute diversity, duplicates; with --job the composed dataset's categories, LVIS buckets, "
                       "sizes, co-occurrence, visibility and planned vs rendered.")
    _lake_arg(p)
    p.add_argument("--job", help="also audit this job's committed images")
    p.add_argument("--vocab", default="lvis", help="coco, lvis (default), or a file: one name per line or a COCO "
                   "categories JSON")
    p.add_argument("--synonyms", help="synonyms: JSON {name: [synonym, ...]} or lines 'name: a, b'")
    p.add_argument("--min-segments", type=int, default=10, help="fewer segments than this is thin (default 10)")
    p.add_argument("--filter", default="filter_4", help="quality filter the thin threshold applies to")
    p.add_argument("--out", help="write an HTML report here (and its JSON beside it)")

    p = sub.add_parser("feedback", help="load per-category AP or per-image losses for hardness sampling",
                       description="Load a training run's feedback into the lake's feedback table: per-category AP "
                       "(JSON from soclake.feedback.from_cocoeval or detectron2's COCOEvaluator, or a CSV "
                       "category,score with AP in [0, 1]) or per-image losses of a composed job (CSV/JSON with "
                       "image_id or key, loss, and job or --job). Bad and unmatched rows go to the rejects table. "
                       "Job specs read it with [sampling] strategy = \"hardness\", feedback = NAME.")
    p.add_argument("file")
    _lake_arg(p)
    p.add_argument("--name", help="feedback name (default: the file name without extension); loading a name "
                   "again makes the new load current")
    p.add_argument("--kind", default="auto", choices=["auto", "category_ap", "image_loss"],
                   help="what the file holds (default: guessed from its columns)")
    p.add_argument("--format", default="auto", choices=["auto", "csv", "json", "jsonl"],
                   help="file format (default: from the extension)")
    p.add_argument("--job", help="image_loss: job of rows without a job column")
    p.add_argument("--fingerprint", help="image_loss: job fingerprint of rows without one (default: the job's "
                   "newest with committed shards)")

    p = sub.add_parser("verify", help="check committed shards against the manifest (exit 1 on problems)")
    _lake_arg(p)
    p.add_argument("--job", help="only this job")
    p.add_argument("--deep", action="store_true", help="also decode every member and check annotations against pixels")
    p.add_argument("--repair", action="store_true", help="re-render bad compose shards from their plan "
                   "(bad stage shards are uncommitted, to be redone by rerunning their job)")

    p = sub.add_parser("serve", help="serve a lake's files over HTTP with byte ranges (127.0.0.1 by default)")
    _lake_arg(p)
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")

    p = sub.add_parser("shards-from-coco", help="convert a COCO instances dataset to WebDataset shards",
                       description="Write OUT/shards/*.tar in the compose sample layout (original image bytes, "
                       "KEY.json with instances, RLE masks) and OUT/index.json, so soclake.stream.Stream(OUT) and "
                       "mixes read it. Bad entries are skipped and listed in OUT/skipped.jsonl.")
    p.add_argument("annotations", help="COCO instances JSON")
    p.add_argument("images", help="folder the JSON's file_names are relative to")
    p.add_argument("--out", required=True, help="output folder (nothing else is written)")
    p.add_argument("--shard-size", type=int, default=1000, help="images per shard (default 1000)")
    p.add_argument("--name", help="dataset name in the index and samples (default: the --out folder name)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)

    p = sub.add_parser("sample-pool", help="write the built-in sample pool (SOC layout + backgrounds)")
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ids", type=int, default=3, help="segments per subcategory")
    return ap


def _need_lake(args) -> str:
    if not args.lake:
        raise SoclakeError("no lake given; pass --lake PATH or set SOCLAKE_LAKE")
    return args.lake


def cmd_ingest(args) -> int:
    from soclake.ingest import ingest
    from soclake.lake import Lake
    lake = Lake(_need_lake(args), create=True)
    options = {k: v for k, v in {"metadata": args.metadata, "quality": args.quality, "category": args.category,
                                 "distractors": args.distractors, "images": args.images,
                                 "image_column": args.image_column, "mask_column": args.mask_column,
                                 "category_column": args.category_column, "map": args.map,
                                 "follow_links": args.follow_links}.items() if v}
    if args.max_pixels:
        options["max_pixels"] = args.max_pixels
    summary = ingest(lake, args.layout, args.source, source_name=args.source_name, workers=args.workers,
                     retry_rejects=args.retry_rejects, progress=args.progress, **options)
    print(summary.describe())
    if summary.rejected:
        print(f"see the reasons: soclake sql --lake {args.lake} \"SELECT source_uri, reason, detail FROM "
              f"rejects WHERE ingest_run = '{summary.run}'\"")
    if summary.warning:
        print(f"warning: {summary.warning}", file=sys.stderr)
        return 1 if args.strict else 0
    return 0


def cmd_sql(args) -> int:
    from soclake.lake import Lake
    from soclake.output import write_result
    lake = Lake(_need_lake(args))
    write_result(lake.con, args.query, args.format, args.out, args.limit)
    return 0


def cmd_info(args) -> int:
    from soclake.lake import Lake
    from soclake.output import print_info
    print_info(Lake(_need_lake(args)))
    return 0


def cmd_sample_pool(args) -> int:
    from soclake.sample_pool import write_sample_pool
    counts = write_sample_pool(args.out, seed=args.seed, ids=args.ids)
    print(f"sample pool in {args.out}: {json.dumps(counts)}")
    return 0


def cmd_plan(args) -> int:
    from soclake import jobs, jobspec
    from soclake.lake import Lake
    lake = Lake(_need_lake(args))
    job = jobs.prepare(lake, jobspec.load(args.spec))
    with lake.writer_lock(wait=True):
        info = jobs.plan(lake, job, args.workers or os.cpu_count() or 1)
    p = info["plan"]
    print(f"job {job.name} [{job.fingerprint}]: {p['images']} images in {info['shards']} shards, "
          f"{p['objects']} objects from {p['categories']} categories"
          + (f", {p['short_images']} images with fewer objects than drawn (layout constraints)" if p["short_images"] else "")
          + f"\nplan: soclake sql --lake {args.lake} \"SELECT * FROM plan WHERE fingerprint = '{job.fingerprint}'\"")
    return 0


def cmd_run(args) -> int:
    from soclake import jobs, jobspec
    from soclake.lake import Lake
    lake = Lake(_need_lake(args))
    spec = jobspec.load(args.spec)
    options = {"workers": args.workers, "executor": args.executor, "progress": args.progress, "split": args.split,
               "retries": args.retries, "address": args.address}
    if spec.kind != "compose":
        from soclake import stage
        summary = stage.run(lake, spec, **options)
    else:
        summary = jobs.run(lake, spec, **options)
    print(summary.describe().replace("shards: ", f"shards: {lake.uri}/"))
    return 1 if summary.failed else 0


def cmd_jobs(args) -> int:
    from soclake import jobs
    from soclake.lake import Lake
    from soclake.output import print_table
    lake = Lake(_need_lake(args))
    print_table(jobs.list_jobs(lake), title=f"jobs in {lake.uri}")
    return 0


def cmd_show(args) -> int:
    from soclake.show import show
    path = show(args.target, args.out, lake_uri=args.lake, key=args.key, fingerprint=args.fingerprint)
    print(f"wrote {path}")
    return 0


def cmd_export(args) -> int:
    from soclake.export import export
    from soclake.lake import Lake
    summary = export(Lake(_need_lake(args)), args.job, args.format, args.out, split=args.split, images=args.images,
                     fingerprint=args.fingerprint, val_fraction=args.val_fraction, test_fraction=args.test_fraction,
                     stratify=args.stratify)
    print(summary.describe())
    return 0


def cmd_stats(args) -> int:
    import pyarrow.csv as pacsv

    from soclake.export import stats
    from soclake.lake import Lake
    from soclake.output import print_table
    fp, missing, cats, splits = stats(Lake(_need_lake(args)), args.job, args.fingerprint, args.val_fraction,
                                      args.test_fraction, args.stratify)
    if args.format == "table":
        print_table(cats, title=f"categories of job {args.job} [{fp}]")
        print_table(splits, title="splits")
    elif args.format == "csv":
        pacsv.write_csv(cats, sys.stdout.buffer)
    else:
        print(json.dumps({"job": args.job, "fingerprint": fp, "missing_shards": missing,
                          "categories": cats.to_pylist(), "splits": splits.to_pylist()}))
    return 0


def cmd_serve(args) -> int:
    from soclake.lake import Lake
    from soclake.serve import make_server
    lake = Lake(_need_lake(args))
    server = make_server(lake.root, args.port, args.host)
    print(f"serving {lake.root} at http://{args.host}:{server.server_port}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def cmd_audit(args) -> int:
    from soclake.audit import print_summary, run_audit, write_report
    from soclake.lake import Lake
    result = run_audit(Lake(_need_lake(args)), args.vocab, args.job, args.min_segments, args.filter, args.synonyms)
    print_summary(result)
    if args.out:
        html_path, json_path = write_report(result, args.out)
        print(f"report: {html_path} (numbers: {json_path})")
    return 0


def cmd_feedback(args) -> int:
    from soclake.feedback import load_feedback
    from soclake.lake import Lake
    summary = load_feedback(Lake(_need_lake(args)), args.file, name=args.name, kind=args.kind, fmt=args.format,
                            job=args.job, fingerprint=args.fingerprint)
    print(summary.describe())
    print(f"per-category AP: soclake sql --lake {args.lake} \"SELECT * FROM feedback_category_ap "
          f"WHERE name = '{summary.name}'\"")
    return 0


def cmd_shards_from_coco(args) -> int:
    from soclake.coco_shards import shards_from_coco
    summary = shards_from_coco(args.annotations, args.images, args.out, args.shard_size, args.name, args.progress)
    print(summary.describe())
    return 0


def cmd_verify(args) -> int:
    from soclake.lake import Lake
    from soclake.verify import leftovers, repair, sweep_leftovers, verify
    lake = Lake(_need_lake(args))
    checked, problems = verify(lake, args.job, args.deep)
    for p in problems:
        print(f"{p.shard_uri}: {p.problem}")
    print(f"verified {checked} shard(s): {len(problems)} problem(s)")
    left = leftovers(lake, args.job)
    for folder, paths in left.items():
        print(f"{folder}: {len(paths)} leftover file(s) of interrupted runs (never read; the job's next run "
              "or `soclake verify --repair` removes them)")
    if left and args.repair:
        print(f"removed {sweep_leftovers(lake, args.job)} leftover file(s)")
    if problems and args.repair:
        for line in repair(lake, problems):
            print(line)
        checked, problems = verify(lake, args.job, args.deep)
        print(f"after repair: {len(problems)} problem(s)")
    return 1 if problems else 0


COMMANDS = {"feedback": cmd_feedback, "verify": cmd_verify, "audit": cmd_audit, "serve": cmd_serve, "export": cmd_export, "stats": cmd_stats, "plan": cmd_plan, "run": cmd_run, "jobs": cmd_jobs, "show": cmd_show, "ingest": cmd_ingest, "sql": cmd_sql, "info": cmd_info, "sample-pool": cmd_sample_pool,
            "shards-from-coco": cmd_shards_from_coco}


STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():  # restores the caller's warning display afterwards
        warnings.showwarning = lambda message, *_args, **_kw: print(f"soclake: warning: {message}", file=sys.stderr)
        return _dispatch(args)


def _dispatch(args) -> int:
    try:
        return COMMANDS[args.command](args)
    except SoclakeError as e:
        print(f"soclake: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in STORAGE_ERRNOS:
            raise
        print(f"soclake: error: {e.filename or 'the lake'}: {e.strerror}. Nothing committed was changed (every "
              "write is atomic and commits last); free space or make the lake writable, then rerun.", file=sys.stderr)
        return 2
    except Exception as e:
        import duckdb
        if isinstance(e, duckdb.Error):
            print(f"soclake: SQL error: {e}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
