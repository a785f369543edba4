"""`soclake ingest LAYOUT SOURCE`: segments or backgrounds from a source layout into a lake, or
(soc-output) a dataset SOC produced as a job of shards."""
from __future__ import annotations

import sys

from soclake.cli.common import add_command, lake_arg, lake_of, progress_arg
from soclake.errors import SoclakeError
from soclake.ingestion import LAYOUTS, ingest


def add_parser(sub) -> None:
    p = add_command(sub, "ingest", "ingest segments or backgrounds from a source layout",
                    "Ingest a source into the lake. Items already in the lake are skipped; bad items become rows "
                    "of the rejects table and never stop the run.")
    p.add_argument("layout", choices=LAYOUTS.names(), help="the source's layout")
    p.add_argument("source", help="pool root or SOC 7z release NAME.7z[.001] (soc), folder (folders, "
                   "backgrounds), COCO/LVIS instances JSON (coco), a folder holding images/ and masks/ (sod), "
                   "Parquet file, folder or quoted glob (parquet), SOC's output folder with train/, "
                   "panoptic_train/ and annotations/ (soc-output)")
    lake_arg(p)
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
    p.add_argument("--images", help="coco: images folder (default: images/ beside the JSON); soc-output: the "
                   "composites or relit JPEGs (default SOURCE/train)")
    p.add_argument("--name", help="soc-output: the job to import into (required)")
    p.add_argument("--annotations", help="soc-output: the merged panoptic JSON (default "
                   "SOURCE/annotations/panoptic_train.json)")
    p.add_argument("--masks", help="soc-output: the panoptic PNGs (default SOURCE/panoptic_train)")
    p.add_argument("--refexp", action="append", help="soc-output: a SOC grounding JSONL (default "
                   "SOURCE/refexp/*.jsonl); repeatable")
    p.add_argument("--shard-size", type=int, default=100, help="soc-output: images per shard")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--max-pixels", type=int, default=None, help="reject images above this many pixels")
    p.add_argument("--retry-rejects", action="store_true", help="process items rejected by earlier runs again")
    progress_arg(p)


def run(args) -> int:
    lake = lake_of(args, create=True)
    if getattr(LAYOUTS.get(args.layout), "KIND", "") == "job":
        return _import_job(lake, args)
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


def _import_job(lake, args) -> int:
    if not args.name:
        raise SoclakeError(f"ingest {args.layout} imports a dataset as a job: name it with --name JOB")
    summary = LAYOUTS.get(args.layout).ingest_job(lake, args.source, args.name, annotations=args.annotations,
                                                  images=args.images, masks=args.masks, refexp=args.refexp,
                                                  shard_size=args.shard_size, progress=args.progress)
    print(summary.describe())
    return 0
