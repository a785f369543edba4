"""`soclake plan SPEC`: plan a compose job (its plan table) without rendering."""
from __future__ import annotations

import os

from soclake.cli.common import add_command, lake_arg, lake_of
from soclake.jobs import compose
from soclake.spec.load import load


def add_parser(sub) -> None:
    p = add_command(sub, "plan", "plan a compose job (writes the plan table)",
                    "Validate JOB.toml, fingerprint it against the pool and write its plan (one row per image) "
                    "without rendering. Fails before rendering on impossible constraints.")
    p.add_argument("spec", help="job spec TOML (see jobs/ and schemas/job_spec.json)")
    lake_arg(p)
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a key of the spec (TOML value, or a bare string), e.g. --set job.images=8; repeatable")
    p.add_argument("--workers", type=int, default=None, help="planning processes for large jobs (default: all cores)")


def run(args) -> int:
    lake = lake_of(args)
    job = compose.prepare(lake, load(args.spec, args.set))
    with lake.writer_lock(wait=True):
        info = compose.plan(lake, job, args.workers or os.cpu_count() or 1)
    p = info["plan"]
    print(f"job {job.name} [{job.fingerprint}]: {p['images']} images in {info['shards']} shards, "
          f"{p['objects']} objects from {p['categories']} categories"
          + (f", {p['short_images']} images with fewer objects than drawn (layout constraints)" if p["short_images"] else "")
          + (f", {p['replanned']} images re-planned with their next seed (layout retry budget exhausted)"
             if p.get("replanned") else "")
          + ("\nfilter auto: " + ", ".join(f"source {f['source']!r} {f['filter']} ({f['eligible']} eligible)"
                                           for f in p["filters"]) if p.get("filters") else "")
          + f"\nplan: soclake sql --lake {args.lake} \"SELECT * FROM plan WHERE fingerprint = '{job.fingerprint}'\"")
    return 0
