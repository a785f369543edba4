"""`soclake stats --job J`: category statistics and split sizes of a job."""
from __future__ import annotations

import json
import sys

import pyarrow.csv as pacsv

from soclake.cli.common import add_command, lake_arg, lake_of, split_args
from soclake.outputs.export import stats
from soclake.outputs.tables import print_table


def add_parser(sub) -> None:
    p = add_command(sub, "stats", "category statistics and split sizes of a job")
    lake_arg(p)
    p.add_argument("--job", required=True, help="job name")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table", help="output format")
    split_args(p)


def run(args) -> int:
    fp, missing, cats, splits = stats(lake_of(args), args.job, args.fingerprint, args.val_fraction,
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
