"""`soclake audit`: what the pool (and a job) is missing, what is wrong, what to generate next."""
from __future__ import annotations

from soclake.cli.common import add_command, lake_arg, lake_of
from soclake.outputs.audit import print_summary, run_audit, suggest_spec, write_report
from soclake.outputs.audit.suggest import DEFAULT_IMAGES


def add_parser(sub) -> None:
    p = add_command(sub, "audit", "audit the pool (and a job): coverage, problems, near-duplicates, what to make next",
                    "A headline (segments and categories after the filter, vocabulary coverage, concentration, "
                    "near-duplicates, top problems), the pool's own categories (thin first) with their diversity, "
                    "the vocabulary's missing names, alpha and size problems per category, near-duplicate groups; "
                    "with --job the composed dataset's categories, LVIS buckets, sizes, co-occurrence, visibility "
                    "and planned vs rendered. --suggest writes the compose spec that fills the gaps.")
    lake_arg(p)
    p.add_argument("--job", help="also audit this job's committed images (and use its [pool] filter)")
    p.add_argument("--vocab", default="lvis", help="coco, lvis, or a file: one name per line or a COCO "
                   "categories JSON")
    p.add_argument("--synonyms", help="synonyms: JSON {name: [synonym, ...]} or lines 'name: a, b'")
    p.add_argument("--min-segments", type=int, default=10, help="fewer segments than this after the filter is thin")
    p.add_argument("--filter", default=None, help="quality filter the audit applies (default: the job's own "
                   "[pool] filter with --job, else filter_0, every labelled segment)")
    p.add_argument("--out", help="write an HTML report here (and its JSON beside it)")
    p.add_argument("--suggest", metavar="OUT.toml", help="write a compose spec whose [sampling] quotas and "
                   "temperature fill the gaps found (with --job: a follow-up job for that dataset)")
    p.add_argument("--suggest-images", type=int, default=None, help=f"images of the suggested job (default "
                   f"{DEFAULT_IMAGES}, or the job's own with --job)")


def run(args) -> int:
    lake = lake_of(args)
    result = run_audit(lake, args.vocab, args.job, args.min_segments, args.filter, args.synonyms)
    print_summary(result)
    if args.out:
        html_path, json_path = write_report(result, args.out)
        print(f"report: {html_path} (numbers: {json_path})")
    if args.suggest:
        s = suggest_spec(lake, result, args.suggest, images=args.suggest_images)
        print(f"suggested spec: {s['path']} (job {s['spec']['job']['name']}): temperature {s['temperature']:g}, "
              f"{len(s['quotas'])} quotas, {len(s['capped'])} categories capped; "
              f"plan it with `soclake plan {s['path']} --lake {args.lake}`")
    return 0
