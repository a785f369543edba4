"""`soclake sample-pool OUT`: the built-in sample pool (SOC layout + backgrounds)."""
from __future__ import annotations

import json

from soclake.cli.common import add_command
from soclake.sample_pool import write_sample_pool


def add_parser(sub) -> None:
    p = add_command(sub, "sample-pool", "write the built-in sample pool (SOC layout + backgrounds)")
    p.add_argument("out", help="folder to write it to")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated shapes")
    p.add_argument("--ids", type=int, default=3, help="segments per subcategory")


def run(args) -> int:
    counts = write_sample_pool(args.out, seed=args.seed, ids=args.ids)
    print(f"sample pool in {args.out}: {json.dumps(counts)}")
    return 0
