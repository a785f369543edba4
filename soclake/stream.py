"""Streaming a job's committed shards to training: exactly once per epoch across ranks and
workers, seeded and resumable, from a lake folder, an http(s) URL or s3://.

The shard index (jobs/<name>/index.json, written by `soclake run`) lists every committed
shard with its sample count, size and sha256, so nothing lists a bucket. An epoch's samples
are laid out in a seeded shard order and cut into rank x worker slots of equal size (padding
repeats, flagged `__padded__`, unless pad=False); each worker reads only the shards that
overlap its slot, shuffles through a seeded buffer, then decodes. Plain Python; the torch
wrapper at the bottom imports torch lazily. Mixing several streams at fixed proportions lives in
soclake.mix (Mix and load_mix are importable from here too).
"""
from __future__ import annotations

import bisect
import hashlib
import json
import math
import tarfile
import urllib.request
import warnings
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from soclake.errors import SoclakeError

TASKS = ("raw", "detection", "segmentation", "grounding")


# ---------------------------------------------------------------------------- index
def write_index(lake, job: str, fingerprint: str, stage: str = "compose") -> dict:
    """Write jobs/<job>/<fp>/index.json and jobs/<job>/index.json from the manifest."""
    from soclake import storage
    rows = lake.query("SELECT shard, shard_uri, samples, bytes, sha256 FROM manifest WHERE fingerprint = $fp "
                      "AND stage = $stage ORDER BY shard", {"fp": fingerprint, "stage": stage}).to_pylist()
    index = {"job": job, "fingerprint": fingerprint,
             "shards": [{"url": r["shard_uri"], "samples": r["samples"], "bytes": r["bytes"], "sha256": r["sha256"]}
                        for r in rows]}
    data = json.dumps(index, indent=1).encode()
    for path in (lake.path("jobs", job, fingerprint, "index.json"), lake.path("jobs", job, "index.json")):
        if not lake.fs.exists(path) or lake.fs.cat_file(path) != data:  # a no-op rerun writes nothing
            storage.write_bytes(lake.fs, path, data)
    return index


def fetch(url: str, storage_options: dict | None = None) -> bytes:
    """Whole-object read of a local path, http(s) URL or any fsspec URL (s3:// needs s3fs;
    credentials and endpoint from the usual environment or `storage_options`)."""
    if url.startswith(("http://", "https://")):
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.read()
    import fsspec
    with fsspec.open(url, "rb", **(storage_options or {})) as f:
        return f.read()


def load_index(source: str, job: str | None = None, storage_options: dict | None = None) -> tuple[str, dict]:
    """(base URL, index) of a shard set. SOURCE is a lake root (with job), a lake's index.json
    URL, or a standalone folder / its index.json (`soclake shards-from-coco` writes those: its
    index says `"relative_to": "index"`, so shard URLs resolve against the index's folder)."""
    source = source.rstrip("/")
    if source.endswith(".json"):
        url = source
    elif job:
        url = f"{source}/jobs/{job}/index.json"
    else:
        url = f"{source}/index.json"
    try:
        index = json.loads(fetch(url, storage_options))
    except (OSError, ValueError) as e:
        fix = ("streaming from a lake root needs the job name" if not job and not source.endswith(".json")
               else "run the job (`soclake run`) to write it")
        raise SoclakeError(f"cannot read shard index {url}: {e}; {fix}") from None
    if index.get("relative_to") == "index":
        base = url.rsplit("/", 1)[0]
    else:
        base = source.rsplit("/jobs/", 1)[0] if source.endswith(".json") else source
    return base, index


def _check_index(index: dict, source: str) -> None:
    """Shard URLs of an index are paths inside the lake: an index naming '../x', '/etc/x' or
    another host must not make a reader fetch from outside the lake."""
    if not (isinstance(index, dict) and isinstance(index.get("job"), str) and isinstance(index.get("shards"), list)
            and all(isinstance(s, dict) and isinstance(s.get("samples"), int) for s in index["shards"])):
        raise SoclakeError(f"shard index of {source} is malformed (it needs job and shards with url and samples); "
                           "rerun the job to rewrite it")
    for url in (s.get("url") for s in index["shards"]):
        if not isinstance(url, str) or not url or url.startswith(("/", "\\")) or "://" in url or "\\" in url \
                or ".." in url.split("/") or "\x00" in url:
            raise SoclakeError(f"shard index of {source} lists {str(url)[:200]!r}, which is not a path inside the "
                               "lake; the index is damaged or hostile: rerun the job to rewrite it")


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


def read_shard(data: bytes, sha256: str | None, on_skip=None) -> list[dict]:
    """Samples of a shard (members grouped by key, in order); raises ValueError when corrupt.
    Members that are not plain sample files are skipped and reported to `on_skip(name, why)`."""
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError("sha256 mismatch")
    from soclake.shards import read_samples
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


# ---------------------------------------------------------------------------- decoding
def decode_sample(sample: dict, task: str, resize: tuple[int, int] | None = None,
                  labels: dict[str, int] | None = None) -> dict:
    """Numpy arrays for a task: image (H, W, 3), boxes (N, 4) xyxy, labels (N,), masks (N, H, W)
    for segmentation, expressions (text + target boxes) for grounding. With `labels` (canonical
    category name -> id, see label_map) the labels come from the instances' category names
    instead of their category_id (a shared label space for mixed sources)."""
    if task == "raw":
        return sample
    from soclake.imaging import open_image
    info = json.loads(sample["json"])
    comp = next(k for k in sample if k.endswith(("jpg", "png", "webp")) and not k.startswith(("pan.", "fg.")))
    image = np.asarray(open_image(sample[comp]).convert("RGB"))  # bombs are refused before decoding
    insts = info["instances"]
    boxes = np.array([[b[0], b[1], b[0] + b[2], b[1] + b[3]] for b in (i["bbox"] for i in insts)], np.float32).reshape(-1, 4)
    ids = [i["category_id"] for i in insts] if labels is None else [_label(labels, i["category"], sample)
                                                                       for i in insts]
    out = {"__key__": sample["__key__"], "image": image, "boxes": boxes, "labels": np.array(ids, np.int64)}
    if task == "segmentation":
        from pycocotools import mask as mask_utils
        rles = [{"size": i["segmentation"]["size"], "counts": i["segmentation"]["counts"]} for i in insts]
        out["masks"] = (np.transpose(mask_utils.decode(rles), (2, 0, 1)) if rles
                        else np.zeros((0, *image.shape[:2]), np.uint8))
    if task == "grounding":
        out["expressions"] = _expressions(sample, insts, boxes)
    if resize:
        out = _resize(out, resize)
    out["__padded__"] = sample.get("__padded__", False)
    return out


def label_map(categories: list[str] | dict[str, int]) -> dict[str, int]:
    """Canonical category name -> label: a list gives positions (0-based; put a placeholder
    such as "__background__" first for 1-based labels), a dict gives its own ids."""
    from soclake.ingest.engine import canonical_category
    pairs = categories.items() if isinstance(categories, dict) else ((n, i) for i, n in enumerate(categories))
    out: dict[str, int] = {}
    for name, label in pairs:
        key = canonical_category(name)
        if key in out and out[key] != label:
            raise SoclakeError(f"categories: {name!r} appears twice (as {key!r}); list each category once")
        out[key] = int(label)
    return out


def _label(labels: dict[str, int], name: str, sample: dict) -> int:
    from soclake.ingest.engine import canonical_category
    try:
        return labels[canonical_category(name)]
    except KeyError:
        raise SoclakeError(f"sample {sample.get('__source__', '')}/{sample['__key__']}: category {name!r} is not "
                           "in the mix's categories; add it to `categories`") from None


def _expressions(sample: dict, insts: list[dict], boxes: np.ndarray) -> list[dict]:
    """Referring expressions of the refexp stage when present, else one phrase per category."""
    if "refexp.json" in sample:
        by_id = {i["ann_id"]: k for k, i in enumerate(insts)}
        return [{"text": e["text"], "boxes": boxes[[by_id[t] for t in e.get("targets", []) if t in by_id]]}
                for e in json.loads(sample["refexp.json"]).get("expressions", [])]
    names: dict[str, list[int]] = {}
    for k, i in enumerate(insts):
        names.setdefault(i["category"], []).append(k)
    return [{"text": n, "boxes": boxes[idx]} for n, idx in sorted(names.items())]


def _resize(out: dict, size: tuple[int, int]) -> dict:
    import cv2
    h, w = out["image"].shape[:2]
    W, H = size
    sx, sy = W / w, H / h
    out["image"] = cv2.resize(out["image"], (W, H), interpolation=cv2.INTER_AREA if sx < 1 else cv2.INTER_LINEAR)
    out["boxes"] = out["boxes"] * np.array([sx, sy, sx, sy], np.float32)
    if "masks" in out:
        out["masks"] = np.stack([cv2.resize(m, (W, H), interpolation=cv2.INTER_NEAREST) for m in out["masks"]]) \
            if len(out["masks"]) else np.zeros((0, H, W), np.uint8)
    for e in out.get("expressions", []):
        e["boxes"] = e["boxes"] * np.array([sx, sy, sx, sy], np.float32)
    return out


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
        self.base, self.index = load_index(source, job, storage_options)
        _check_index(self.index, source)
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
                    data = fetch(self._url(piece.shard), self.storage_options)
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
        first `skip` (already consumed before a resume; skipped before decoding)."""
        for i, s in enumerate(self.raw_worker(worker, workers)):
            if i >= skip:
                try:
                    out = decode_sample(s, self.task, self.resize)
                except Exception as e:  # one undecodable sample must not end a training epoch
                    self._bad_sample(s, e)
                    continue
                self.stats.samples += 1
                yield out

    def __iter__(self) -> Iterator[dict]:
        return self.iter_worker(0, 1)


def worker_skips(batches: int, per_worker: list[int], batch_size: int, drop_last: bool = False) -> list[int]:
    """Samples each worker had delivered after `batches` batches of a torch DataLoader, which
    takes batches from its workers round-robin, skipping exhausted ones."""
    return resume_point(batches, per_worker, batch_size, drop_last)[0]


def resume_point(batches: int, per_worker: list[int], batch_size: int, drop_last: bool = False
                 ) -> tuple[list[int], int]:
    """(worker_skips, the worker whose batch would come next)."""
    n_batches = [(n // batch_size if drop_last else math.ceil(n / batch_size)) for n in per_worker]
    taken = [0] * len(per_worker)
    w, left = 0, batches
    while left > 0 and any(t < n for t, n in zip(taken, n_batches)):
        if taken[w] < n_batches[w]:
            taken[w] += 1
            left -= 1
        w = (w + 1) % len(per_worker)
    return [min(t * batch_size, n) for t, n in zip(taken, per_worker)], w


# ---------------------------------------------------------------------------- torch
def torch_loader(stream, batch_size: int = 8, num_workers: int = 0, **loader_kwargs):
    """A resumable torch DataLoader over a Stream or a Mix: iterate it, call state_dict() at any
    point, and a fresh loader given load_state_dict(state) continues the same epoch exactly."""
    try:
        import torch
        from torch.utils.data import DataLoader, IterableDataset, get_worker_info
    except ImportError:
        raise SoclakeError("the torch loader needs PyTorch: pip install torch==2.13.0") from None

    class _Dataset(IterableDataset):
        def __init__(self):
            self.skips: list[int] = []
            self.rotate = 0  # a resumed DataLoader starts its round-robin at the slot due next

        def __iter__(self):
            info = get_worker_info()
            wid, n = (info.id, info.num_workers) if info else (0, 1)
            wid = (wid + self.rotate) % n
            skip = self.skips[wid] if self.skips else 0
            for s in stream.iter_worker(wid, n, skip):
                yield {k: (torch.from_numpy(v) if isinstance(v, np.ndarray) else v) for k, v in s.items()}

    class Loader:
        def __init__(self):
            self.dataset = _Dataset()
            self.workers = max(num_workers, 1)
            self.batches = 0
            self.loader = DataLoader(self.dataset, batch_size=batch_size, num_workers=num_workers,
                                     collate_fn=collate, **loader_kwargs)

        def __iter__(self):
            for batch in self.loader:
                self.batches += 1
                yield batch
            stream.set_epoch(stream.epoch + 1)
            self.batches, self.dataset.skips, self.dataset.rotate = 0, [], 0

        def state_dict(self) -> dict:
            return {"epoch": stream.epoch, "batches": self.batches, "seed": stream.seed,
                    **getattr(stream, "resume_identity", dict)()}

        def load_state_dict(self, state: dict) -> None:
            if state["seed"] != stream.seed:
                raise SoclakeError("resume state was made with another seed")
            for key, value in getattr(stream, "resume_identity", dict)().items():
                if state.get(key) != value:
                    raise SoclakeError(f"resume state was made with another {key} ({state.get(key)!r}, now "
                                       f"{value!r}); resume with the mix that made it")
            stream.set_epoch(state["epoch"])
            self.batches = state["batches"]
            per_worker = stream.worker_lengths(self.workers)
            self.dataset.skips, self.dataset.rotate = resume_point(state["batches"], per_worker, batch_size,
                                                                   loader_kwargs.get("drop_last", False))

    return Loader()


def collate(samples: list[dict]) -> dict:
    """Batch: images stacked when they share a size (else a list); boxes, labels, masks and
    expressions as per-sample lists."""
    import torch
    out: dict = {"__key__": [s["__key__"] for s in samples]}
    for k in samples[0]:
        if k == "__key__":
            continue
        vals = [s[k] for s in samples]
        if k == "image" and all(v.shape == vals[0].shape for v in vals):
            out[k] = torch.stack(vals)
        else:
            out[k] = vals
    return out


def __getattr__(name: str):
    # the mixing API lives in soclake.mix (imported when first used)
    if name in ("Mix", "load_mix"):
        from soclake import mix
        return getattr(mix, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
