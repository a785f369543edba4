"""`soclake feedback FILE`: per-category AP or per-image losses for hardness sampling."""
from __future__ import annotations

from soclake.cli.common import add_command, lake_arg, lake_of
from soclake.outputs.feedback import load_feedback


def add_parser(sub) -> None:
    p = add_command(sub, "feedback", "load per-category AP or per-image losses for hardness sampling",
                    "Load a training run's feedback into the lake's feedback table: per-category AP (JSON from "
                    "soclake.outputs.feedback.from_cocoeval or detectron2's COCOEvaluator, or a CSV category,score "
                    "with AP in [0, 1]) or per-image losses of a composed job (CSV/JSON with image_id or key, loss, "
                    "and job or --job). Bad and unmatched rows go to the rejects table. Job specs read it with "
                    "[sampling] strategy = \"hardness\", feedback = NAME.")
    p.add_argument("file", help="the feedback file")
    lake_arg(p)
    p.add_argument("--name", help="feedback name (default: the file name without extension); loading a name "
                   "again makes the new load current")
    p.add_argument("--kind", default="auto", choices=["auto", "category_ap", "image_loss"],
                   help="what the file holds (auto: guessed from its columns)")
    p.add_argument("--format", default="auto", choices=["auto", "csv", "json", "jsonl"],
                   help="file format (auto: from the extension)")
    p.add_argument("--job", help="image_loss: job of rows without a job column")
    p.add_argument("--fingerprint", help="image_loss: job fingerprint of rows without one (default: the job's "
                   "newest with committed shards)")


def run(args) -> int:
    summary = load_feedback(lake_of(args), args.file, name=args.name, kind=args.kind, fmt=args.format,
                            job=args.job, fingerprint=args.fingerprint)
    print(summary.describe())
    print(f"per-category AP: soclake sql --lake {args.lake} \"SELECT * FROM feedback_category_ap "
          f"WHERE name = '{summary.name}'\"")
    return 0
