"""`soclake jobs`: every job of a lake with fingerprints, shards committed, state and path."""
from __future__ import annotations

from soclake.cli.common import add_command, lake_arg, lake_of
from soclake.lake import catalog
from soclake.outputs.tables import print_table


def add_parser(sub) -> None:
    lake_arg(add_command(sub, "jobs", "list jobs: fingerprints, shards committed, state and path"))


def run(args) -> int:
    lake = lake_of(args)
    print_table(catalog.list_jobs(lake), title=f"jobs in {lake.uri}")
    return 0
