"""The training loader: streams of committed shards (stream), sample decoding (decode), mixes of
streams (mix) and a resumable torch DataLoader (torch). It reads shards and indexes only: it
never imports the lake, DuckDB, runners or stages."""
from soclake.loader.decode import decode_sample, label_map
from soclake.loader.mix import Mix, load_mix
from soclake.loader.stream import Stream
from soclake.loader.torch import torch_loader

__all__ = ["Stream", "Mix", "load_mix", "torch_loader", "decode_sample", "label_map"]
