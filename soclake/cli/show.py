"""`soclake show TARGET --out PNG`: one sample drawn with its masks, boxes and labels."""
from __future__ import annotations

from soclake.cli.common import add_command, lake_arg
from soclake.outputs.show import show


def add_parser(sub) -> None:
    p = add_command(sub, "show", "draw a sample with its masks, boxes and labels to a PNG")
    p.add_argument("target", help="a job name (with --lake) or a shard .tar path")
    lake_arg(p)
    p.add_argument("--key", help="sample key, e.g. 3 or 000000003 (default: the first sample)")
    p.add_argument("--fingerprint", help="job fingerprint (default: the job's newest committed one)")
    p.add_argument("--out", required=True, help="output PNG")


def run(args) -> int:
    path = show(args.target, args.out, lake_uri=args.lake, key=args.key, fingerprint=args.fingerprint)
    print(f"wrote {path}")
    return 0
