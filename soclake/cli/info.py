"""`soclake info`: tables, row counts, categories, sources and bytes of a lake."""
from __future__ import annotations

from soclake.cli.common import add_command, lake_arg, lake_of
from soclake.outputs.tables import print_info


def add_parser(sub) -> None:
    lake_arg(add_command(sub, "info", "tables, row counts, categories, sources and bytes of a lake"))


def run(args) -> int:
    print_info(lake_of(args))
    return 0
