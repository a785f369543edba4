"""`soclake shards-from-coco ANN IMAGES --out DIR`: a COCO dataset as WebDataset shards."""
from __future__ import annotations

from soclake.cli.common import add_command, progress_arg
from soclake.convert.coco_to_shards import shards_from_coco


def add_parser(sub) -> None:
    p = add_command(sub, "shards-from-coco", "convert a COCO instances dataset to WebDataset shards",
                    "Write OUT/shards/*.tar in the compose sample layout (original image bytes, KEY.json with "
                    "instances, RLE masks) and OUT/index.json, so soclake.loader.Stream(OUT) and mixes read it. "
                    "Bad entries are skipped and listed in OUT/skipped.jsonl.")
    p.add_argument("annotations", help="COCO instances JSON")
    p.add_argument("images", help="folder the JSON's file_names are relative to")
    p.add_argument("--out", required=True, help="output folder (nothing else is written)")
    p.add_argument("--shard-size", type=int, default=1000, help="images per shard")
    p.add_argument("--name", help="dataset name in the index and samples (default: the --out folder name)")
    progress_arg(p)


def run(args) -> int:
    summary = shards_from_coco(args.annotations, args.images, args.out, args.shard_size, args.name, args.progress)
    print(summary.describe())
    return 0
