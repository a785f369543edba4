"""`soclake export --job J --format F --out DIR`: a job of any stage as COCO instances, COCO
panoptic, ODVG, captions or SOC's folder layout."""
from __future__ import annotations

from soclake.cli.common import add_command, lake_arg, lake_of, split_args
from soclake.outputs.export import FORMATS, SPLITS, export


def add_parser(sub) -> None:
    p = add_command(sub, "export", "export a job as COCO instances, COCO panoptic, ODVG, captions or SOC's layout",
                    "Any committed job: a relight or refexp job exports its own composites with the annotations of "
                    "the compose job it descends from. coco: DIR/annotations.json; panoptic: DIR/panoptic.json + "
                    "DIR/panoptic/*.png; odvg: DIR/odvg.jsonl (+ DIR/label_map.json; a refexp job: its expressions "
                    "as grounding); captions (refexp jobs): DIR/captions.jsonl; soc: SOC's train/, panoptic_train/, "
                    "annotations/ (+ refexp/job_0.jsonl and odvg.jsonl for a refexp job); --images also extracts "
                    "the composites to DIR/images/.")
    lake_arg(p)
    p.add_argument("--job", required=True, help="job name")
    p.add_argument("--format", required=True, choices=FORMATS, help="what to write")
    p.add_argument("--split", default="all", choices=SPLITS, help="which images")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--images", action="store_true", help="also extract the composites to OUT/images/")
    p.add_argument("--seed", type=int, default=0, help="soc: seed of the grounding captions' chunk lengths (150-255)")
    split_args(p)


def run(args) -> int:
    summary = export(lake_of(args), args.job, args.format, args.out, split=args.split, images=args.images,
                     fingerprint=args.fingerprint, val_fraction=args.val_fraction, test_fraction=args.test_fraction,
                     stratify=args.stratify, seed=args.seed)
    print(summary.describe())
    return 0
