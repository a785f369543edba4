"""`soclake audit`: category coverage of the pool (and of a job) against a vocabulary."""
from __future__ import annotations

from soclake.cli.common import add_command, lake_arg, lake_of
from soclake.outputs.audit import print_summary, run_audit, write_report


def add_parser(sub) -> None:
    p = add_command(sub, "audit", "audit category coverage of the pool (and a job) against a vocabulary",
                    "Pool coverage per vocabulary name (missing and thin first), quality funnel, attribute "
                    "diversity, duplicates; with --job the composed dataset's categories, LVIS buckets, sizes, "
                    "co-occurrence, visibility and planned vs rendered.")
    lake_arg(p)
    p.add_argument("--job", help="also audit this job's committed images")
    p.add_argument("--vocab", default="lvis", help="coco, lvis, or a file: one name per line or a COCO "
                   "categories JSON")
    p.add_argument("--synonyms", help="synonyms: JSON {name: [synonym, ...]} or lines 'name: a, b'")
    p.add_argument("--min-segments", type=int, default=10, help="fewer segments than this is thin")
    p.add_argument("--filter", default="filter_4", help="quality filter the thin threshold applies to")
    p.add_argument("--out", help="write an HTML report here (and its JSON beside it)")


def run(args) -> int:
    result = run_audit(lake_of(args), args.vocab, args.job, args.min_segments, args.filter, args.synonyms)
    print_summary(result)
    if args.out:
        html_path, json_path = write_report(result, args.out)
        print(f"report: {html_path} (numbers: {json_path})")
    return 0
