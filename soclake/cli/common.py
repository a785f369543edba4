"""What the commands share: the --lake option, the split options of exports and stats, the help
formatter that shows defaults, and the lake a command opens."""
from __future__ import annotations

import argparse
import os

from soclake.errors import SoclakeError
from soclake.lake import Lake


class HelpFormatter(argparse.HelpFormatter):
    """Shows each option's default unless it has none or its help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def add_command(sub, name: str, help: str, description: str | None = None) -> argparse.ArgumentParser:
    """A subcommand parser with soclake's conventions (no abbreviations, defaults shown)."""
    return sub.add_parser(name, help=help, description=description or help, allow_abbrev=False,
                          formatter_class=HelpFormatter)


def lake_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lake", default=os.environ.get("SOCLAKE_LAKE"),
                   help="lake root: a folder or an fsspec URI (default: $SOCLAKE_LAKE)")


def split_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fingerprint", help="job fingerprint (default: the newest with committed shards)")
    p.add_argument("--val-fraction", type=float, default=0.05, help="share of images in val")
    p.add_argument("--test-fraction", type=float, default=0.05, help="share of images in test")
    p.add_argument("--stratify", action="store_true",
                   help="move one image of every category with >= 10 images and none in val into val")


def progress_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show a progress bar (default: when stderr is a terminal)")


def lake_of(args, create: bool = False) -> Lake:
    """The lake --lake (or $SOCLAKE_LAKE) names."""
    if not args.lake:
        raise SoclakeError("no lake given; pass --lake PATH or set SOCLAKE_LAKE")
    return Lake(args.lake, create=create)
