"""Streaming a job's committed shards to training: exactly once per epoch across ranks and
workers, seeded and resumable, from a lake folder, an http(s) URL or s3://.

The shard index (jobs/<name>/index.json, written by `soclake run`) lists every committed
shard with its sample count, size and sha256, so nothing lists a bucket. An epoch's samples
are laid out in a seeded shard order and cut into rank x worker slots of equal size (padding
repeats, flagged `__padded__`, unless pad=False); each worker reads only the shards that
overlap its slot, shuffles through a seeded buffer, then decodes (loader/decode.py). Plain
Python: the torch DataLoader is loader/torch.py, mixing several streams is loader/mix.py.
"""
from __future__ import annotations

import bisect
import hashlib
import math
import tarfile
import warnings
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from soclake import storage
from soclake.errors import SoclakeError
from soclake.loader.decode import TASKS, decode_sample
from soclake.shards import index as shard_index
from soclake.shards.tar import read_samples


# ---------------------------------------------------------------------------- epoch layout
@dataclass(frozen=True)
class Piece:
    shard: int
    start: int    # sample offset within the shard
    stop: int
    padded: bool  # a repeat that only evens out the slots


def shard_order(n_shards: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    if not shuffle:
        return np.arange(n_shards)
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, 0])).permutation(n_shards)


def slot_pieces(counts: list[int], order: np.ndarray, slot: int, slots: int, pad: bool) -> list[Piece]:
    """Shard ranges of one slot (rank * workers + worker) of the epoch's sample sequence.

    The sequence is the shards' samples in `order`; slot s takes positions [lo, hi). With
    pad, every slot has ceil(total / slots) positions and those past the end wrap around."""
    total = sum(counts)
    if total == 0:
        return []
    if pad:
        per = math.ceil(total / slots)
        lo, hi = slot * per, (slot + 1) * per
    else:
        base, extra = divmod(total, slots)
        lo = slot * base + min(slot, extra)
        hi = lo + base + (slot < extra)
    sizes = [counts[s] for s in order]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).tolist()
    pieces: list[Piece] = []
    pos = lo
    while pos < hi:
        p = pos % total
        k = bisect.bisect_right(starts, p) - 1
        offset = p - starts[k]
        n = min(sizes[k] - offset, hi - pos)
        pieces.append(Piece(int(order[k]), offset, offset + n, pos >= total))
        pos += n
    return pieces


# ---------------------------------------------------------------------------- reading
@dataclass
class Stats:
    samples: int = 0
    bad_shards: int = 0
    bad_samples: int = 0       # samples whose members do not decode (skipped, or raised)
    skipped_members: int = 0   # tar members that are not plain sample files (links, '../x', devices)
    errors: list[str] = field(default_factory=list)

    COUNTERS = ("samples", "bad_shards", "bad_samples", "skipped_members")

    def counters(self) -> tuple[int, ...]:
        return tuple(getattr(self, k) for k in self.COUNTERS)

    @classmethod
    def total(cls, counters: list[tuple[int, ...]], errors: list[str] | None = None) -> "Stats":
        """The sum of several workers' counters."""
        return cls(*(sum(c[i] for c in counters) for i in range(len(cls.COUNTERS))), errors=list(errors or []))


def read_shard(data: bytes, sha256: str | None, on_skip=None) -> list[dict]:
    """Samples of a shard (members grouped by key, in order); raises ValueError when corrupt.
    Members that are not plain sample files are skipped and reported to `on_skip(name, why)`."""
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError("sha256 mismatch")
    try:
        samples = [{"__key__": key, **members} for key, members in read_samples(data, on_skip)]
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ValueError(f"unreadable tar ({e})") from None
    for s in samples:
        if "json" not in s:
            raise ValueError(f"sample {s['__key__']} has no json member")
    return samples


def split_of(job: str, image_id: int, val: float, test: float) -> str:
    """Python twin of the SQL macro split_of: md5(job/image_id) against the fractions."""
    x = int(hashlib.md5(f"{job}/{image_id}".encode()).hexdigest()[:8], 16) / 4294967296.0
    return "test" if x < test else "val" if x < test + val else "train"


# ---------------------------------------------------------------------------- the stream
class Stream:
    """A job's committed shards as an epoch-aware, rank- and worker-partitioned sample stream."""

    def __init__(self, source: str, job: str | None = None, *, split: str = "all", task: str = "detection",
                 rank: int = 0, world_size: int = 1, seed: int = 0, shuffle: bool = True, buffer: int = 64,
                 pad: bool = True, resize: tuple[int, int] | None = None, handler: str = "warn",
                 val_fraction: float = 0.05, test_fraction: float = 0.05, verify: bool = True,
                 storage_options: dict | None = None):
        if task not in TASKS:
            raise SoclakeError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
        if handler not in ("warn", "raise"):
            raise SoclakeError("handler must be 'warn' (skip and count bad shards) or 'raise'")
        if split not in ("all", "train", "val", "test"):
            raise SoclakeError(f"unknown split {split!r}")
        if not 0 <= rank < world_size:
            raise SoclakeError(f"rank {rank} is outside world size {world_size}")
        self.storage_options = storage_options
        self.base, self.index = shard_index.load(source, job, storage_options)
        self.job = self.index["job"]
        self.counts = [s["samples"] for s in self.index["shards"]]
        self.split, self.task, self.rank, self.world_size = split, task, rank, world_size
        self.seed, self.shuffle, self.buffer, self.pad, self.resize = seed, shuffle, buffer, pad, resize
        self.handler, self.val, self.test, self.verify = handler, val_fraction, test_fraction, verify
        self.epoch = 0
        self.stats = Stats()

    def __len__(self) -> int:
        """Samples per rank per epoch before the split filter (equal for every rank when padding)."""
        total = sum(self.counts)
        return math.ceil(total / self.world_size) if self.pad else len(self._pieces_all(self.rank, 1))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _pieces_all(self, rank: int, workers: int) -> list[Piece]:
        order = shard_order(len(self.counts), self.seed, self.epoch, self.shuffle)
        return [p for w in range(workers)
                for p in slot_pieces(self.counts, order, rank * workers + w, self.world_size * workers, self.pad)]

    def _url(self, shard: int) -> str:
        return f"{self.base}/{self.index['shards'][shard]['url']}"

    def slot_length(self, slots: int, shortest: bool = False) -> int:
        """Samples one of `slots` (world_size x workers) slots gets per epoch, before the split
        filter (padded slots are all the longest; unpadded ones differ by at most one)."""
        total = sum(self.counts)
        return total // slots if shortest and not self.pad else math.ceil(total / slots)

    def split_share(self) -> float:
        """Expected share of samples the split filter keeps."""
        return {"all": 1.0, "val": self.val, "test": self.test}.get(self.split, 1.0 - self.val - self.test)

    def worker_lengths(self, workers: int) -> list[int]:
        """Samples each of this rank's workers yields this epoch (reads the shards when a split
        filter makes the count data-dependent; used to rebuild a DataLoader's position)."""
        return [sum(1 for _ in self._samples(w, workers)) for w in range(workers)]

    def _samples(self, worker: int, workers: int, epoch: int | None = None) -> Iterator[dict]:
        epoch = self.epoch if epoch is None else epoch
        order = shard_order(len(self.counts), self.seed, epoch, self.shuffle)
        pieces = slot_pieces(self.counts, order, self.rank * workers + worker, self.world_size * workers, self.pad)
        cache: tuple[int, list[dict]] | None = None
        for piece in pieces:
            if cache is None or cache[0] != piece.shard:
                meta = self.index["shards"][piece.shard]
                try:
                    # never more than the index's byte count + 1: a host sending more is not believed
                    data = storage.fetch(self._url(piece.shard), self.storage_options, meta["bytes"])
                    skipped: list[str] = []
                    cache = (piece.shard, read_shard(data, meta["sha256"] if self.verify else None,
                                                     lambda name, why: skipped.append(f"{name[:100]!r} ({why})")))
                    self._skipped_members(piece.shard, skipped)
                except (ValueError, OSError) as e:
                    self._bad(piece.shard, e)
                    cache = (piece.shard, [])
                    continue
            for s in cache[1][piece.start:piece.stop]:
                if self.split == "all" or split_of(self.job, int(s["__key__"]), self.val, self.test) == self.split:
                    yield {**s, "__padded__": piece.padded} if piece.padded else s

    def _bad(self, shard: int, error: Exception) -> None:
        msg = f"shard {self._url(shard)}: {error}"
        if self.handler == "raise":
            raise SoclakeError(msg)
        self.stats.bad_shards += 1
        self.stats.errors.append(msg)
        warnings.warn(f"skipping bad {msg}", stacklevel=2)

    def _skipped_members(self, shard: int, skipped: list[str]) -> None:
        """Members that are not sample files are never read; counted and reported once per shard."""
        if skipped:
            self.stats.skipped_members += len(skipped)
            msg = f"shard {self._url(shard)}: skipped {len(skipped)} member(s) that are not sample files: {skipped[0]}"
            self.stats.errors.append(msg)
            warnings.warn(msg, stacklevel=3)

    def _bad_sample(self, sample: dict, error: Exception) -> None:
        msg = f"sample {sample.get('__key__')!r} of job {self.job}: {type(error).__name__}: {str(error)[:200]}"
        if self.handler == "raise":
            raise SoclakeError(f"{msg}; check the job with `soclake verify --deep`") from None
        self.stats.bad_samples += 1
        self.stats.errors.append(msg)
        warnings.warn(f"skipping bad {msg}", stacklevel=3)

    def _shuffled(self, samples: Iterator[dict], worker: int, epoch: int | None = None) -> Iterator[dict]:
        if not self.shuffle or self.buffer <= 1:
            yield from samples
            return
        epoch = self.epoch if epoch is None else epoch
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch, 1, self.rank, worker]))
        buf: list[dict] = []
        for s in samples:
            if len(buf) < self.buffer:
                buf.append(s)
                continue
            k = int(rng.integers(len(buf)))
            buf[k], s = s, buf[k]
            yield s
        while buf:
            yield buf.pop(int(rng.integers(len(buf))))

    def raw_worker(self, worker: int = 0, workers: int = 1, epoch: int | None = None) -> Iterator[dict]:
        """This rank's undecoded samples for one of `workers` workers in `epoch` (default: the
        current one), in their shuffled order."""
        return self._shuffled(self._samples(worker, workers, epoch), worker, epoch)

    def iter_worker(self, worker: int = 0, workers: int = 1, skip: int = 0) -> Iterator[dict]:
        """This rank's samples for one of `workers` data-loading workers, after skipping the
        first `skip` (already consumed before a resume; skipped before decoding). An epoch in
        which the split filter kept nothing of a non-empty slot is warned about."""
        seen = 0
        for i, s in enumerate(self.raw_worker(worker, workers)):
            seen += 1
            if i >= skip:
                try:
                    out = decode_sample(s, self.task, self.resize)
                except Exception as e:  # one undecodable sample must not end a training epoch
                    self._bad_sample(s, e)
                    continue
                self.stats.samples += 1
                yield out
        if seen == 0 and self.split != "all" and self._pieces_all(self.rank, 1):
            warnings.warn(f"split {self.split!r} of job {self.job} has no sample in this worker's part of epoch "
                          f"{self.epoch} (val_fraction={self.val}, test_fraction={self.test}, "
                          f"{sum(self.counts)} samples in all); raise the fraction or use split='all'", stacklevel=2)

    def __iter__(self) -> Iterator[dict]:
        return self.iter_worker(0, 1)
