"""`soclake verify`: table parts, packs and committed shards checked (exit 1 on problems), and
--repair."""
from __future__ import annotations

from soclake.cli.common import add_command, lake_arg, lake_of
from soclake.outputs.verify import check_lake, leftovers, repair, repair_lake, sweep_leftovers, verify


def add_parser(sub) -> None:
    p = add_command(sub, "verify", "check the lake: table parts, packs and committed shards (exit 1 on problems)",
                    "Checks every table part (readable, typed as schemas/, no duplicate), every pack a row points "
                    "to (present, long enough) and every committed shard against its manifest row, and lists what "
                    "killed runs and ingests left (temporaries, orphan packs, categories without segments).")
    lake_arg(p)
    p.add_argument("--job", help="only this job's shards")
    p.add_argument("--deep", action="store_true", help="also read every part's pages, decode sampled pack members at "
                   "their offsets, decode every shard member, check annotations against pixels and report samples "
                   "whose segment reads failed or whose instances differ from their plan")
    p.add_argument("--all", action="store_true", help="with --deep: decode every pack member, not a sample")
    p.add_argument("--repair", action="store_true", help="move bad or duplicate parts and orphan packs to "
                   "quarantine/ (never deleted), remove leftovers, re-render bad compose shards from their plan "
                   "(bad stage shards are uncommitted, to be redone by rerunning their job)")


def _print_lake(report) -> None:
    for p in report.parts:
        print(f"{p.path}: {p.problem}")
    for p in report.packs:
        print(f"{p.pack}: {p.problem} ({p.rows} member(s) located in it; restore the pack or re-ingest its source)")
    print(f"verified the table parts and {report.packs_checked} pack(s): {report.problems} problem(s)")
    if report.busy:
        print("an ingest is writing to the lake: orphan packs were not judged (run verify again when it is done)")
    for pack in report.orphan_packs:
        print(f"{pack}: orphan pack (no row points to it: left by a killed ingest; --repair moves it to quarantine/)")
    for c in report.empty_categories:
        print(f"category {c['category_id']} {c['name']!r} (from {c['first_source']}) has no segments (left by a killed "
              "ingest, or its segments were quarantined; harmless)")


def run(args) -> int:
    lake = lake_of(args)
    report = check_lake(lake, args.deep, args.all)
    _print_lake(report)
    redo = []
    if args.repair and (report.parts or report.orphan_packs):
        lines, redo = repair_lake(lake, report)
        for line in lines:
            print(line)
        report = check_lake(lake, args.deep, args.all)
    notes: list[str] = []
    checked, problems = verify(lake, args.job, args.deep, notes)
    problems += [r for r in redo if r.shard_uri not in {p.shard_uri for p in problems}]
    for p in problems:
        print(f"{p.shard_uri}: {p.problem}")
    for note in notes:
        print(f"note: {note}")
    print(f"verified {checked} shard(s): {len(problems)} problem(s)")
    left = leftovers(lake, args.job)
    for folder, files in left.items():
        print(f"{folder}: {len(files)} leftover file(s) of interrupted runs (never read; the job's next run "
              "or `soclake verify --repair` removes them)")
    if left and args.repair:
        print(f"removed {sweep_leftovers(lake, args.job)} leftover file(s)")
    if problems and args.repair:
        for line in repair(lake, problems):
            print(line)
        checked, problems = verify(lake, args.job, args.deep)
    if args.repair:
        print(f"after repair: {len(problems) + report.problems} problem(s)")
    return 1 if problems or report.problems else 0
