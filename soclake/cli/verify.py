"""`soclake verify`: committed shards against the manifest (exit 1 on problems), and --repair."""
from __future__ import annotations

from soclake.cli.common import add_command, lake_arg, lake_of
from soclake.outputs.verify import leftovers, repair, sweep_leftovers, verify


def add_parser(sub) -> None:
    p = add_command(sub, "verify", "check committed shards against the manifest (exit 1 on problems)")
    lake_arg(p)
    p.add_argument("--job", help="only this job")
    p.add_argument("--deep", action="store_true", help="also decode every member and check annotations against pixels")
    p.add_argument("--repair", action="store_true", help="re-render bad compose shards from their plan "
                   "(bad stage shards are uncommitted, to be redone by rerunning their job)")


def run(args) -> int:
    lake = lake_of(args)
    checked, problems = verify(lake, args.job, args.deep)
    for p in problems:
        print(f"{p.shard_uri}: {p.problem}")
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
        print(f"after repair: {len(problems)} problem(s)")
    return 1 if problems else 0
