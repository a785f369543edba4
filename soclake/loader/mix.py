"""Mixing sources at fixed proportions for training (e.g. real COCO shards 1:3 with a synthetic
job): each source is a Stream partitioned over ranks and workers by its own rules; a seeded,
deterministic schedule interleaves them so that every prefix of every worker's sequence is
within one sample of the target proportions. Manifests (TOML or JSON) describe a mix.

Not here: reading and partitioning shards (soclake.loader.stream), writing them (soclake.jobs, soclake.convert).
"""
from __future__ import annotations

import itertools
import json
import math
import os
import warnings
from fractions import Fraction
from functools import lru_cache
from typing import Iterator

import numpy as np

from soclake import documents
from soclake.errors import SoclakeError
from soclake.loader.decode import decode_sample, label_map
from soclake.loader.stream import Stream
from soclake.resources import data_dir
from soclake.spec.rules import check_value, parse_toml

STOP_RULES = ("first_exhausted", "all_exhausted")
MAX_PERIOD = 100_000


# ---------------------------------------------------------------------------- the schedule
def integer_weights(weights: list[float]) -> list[int]:
    """Smallest integers in the weights' ratios (each weight read to 1/1000 precision)."""
    fracs = []
    for w in weights:
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w <= 0:
            raise SoclakeError(f"mix weights must be positive numbers, got {w!r}")
        frac = Fraction(str(w)).limit_denominator(1000)
        if frac == 0:
            raise SoclakeError(f"mix weight {w!r} is below the 1/1000 precision weights are read to; "
                               "scale all the weights up")
        fracs.append(frac)
    scale = math.lcm(*(f.denominator for f in fracs))
    ints = [int(f * scale) for f in fracs]
    g = math.gcd(*ints)
    ints = [i // g for i in ints]
    if sum(ints) > MAX_PERIOD:
        raise SoclakeError(f"mix weights {weights} need a schedule period of {sum(ints)} samples (limit "
                           f"{MAX_PERIOD}); use simpler ratios such as small integers")
    return ints


@lru_cache(maxsize=64)
def schedule_period(weights: tuple[int, ...], order: tuple[int, ...]) -> np.ndarray:
    """One period (sum(weights) steps; the schedule repeats it) of source indices.

    Earliest deadline first over windows that keep |count_i(n) - n * p_i| <= 1 - 1/(2k - 2)
    for every source i and every prefix n (Tijdeman's bound for k sources; 1/2 for two):
    a source is eligible while one more pick keeps it under its upper bound, and the eligible
    source whose lower bound expires first goes next; ties go to the earlier source in `order`."""
    k, total = len(weights), sum(weights)
    if k == 1:
        return np.zeros(total, np.int32)
    den, num = 2 * k - 2, 2 * k - 3  # sigma = num / den
    rank = {src: r for r, src in enumerate(order)}
    counts = [0] * k
    out = np.empty(total, np.int32)
    for t in range(1, total + 1):
        best, best_key = -1, (0, 1)
        for i in range(k):
            if (counts[i] + 1) * total * den > t * weights[i] * den + num * total:
                continue  # one more pick would overshoot its share
            key = (counts[i] * den + num, weights[i])  # deadline, up to a common factor
            lhs, rhs = key[0] * best_key[1], best_key[0] * key[1]
            if best < 0 or lhs < rhs or (lhs == rhs and rank[i] < rank[best]):
                best, best_key = i, key
        counts[best] += 1
        out[t - 1] = best
    return out


def steps_to_pick(period: np.ndarray, source: int, m: int) -> int:
    """Steps after which `source` has been picked m times (m >= 1)."""
    where = np.flatnonzero(period == source)
    full, r = divmod(m - 1, len(where))
    return full * len(period) + int(where[r]) + 1


# ---------------------------------------------------------------------------- the mix
class Mix:
    """Sources interleaved at fixed proportions; the same interface as Stream (iter_worker,
    set_epoch, torch_loader with resume). Each sample says where it came from in `__source__`.

    Epoch length, per rank x worker slot (every slot gets the same number of samples):
    - samples_per_epoch: ceil(samples_per_epoch / (world_size x workers));
    - stop="first_exhausted" (default): the longest prefix of the schedule in which no source
      needs more than its slot holds, so no sample repeats within the epoch (padding aside) and
      larger sources are only partly used (a new shuffle each epoch picks which part);
    - stop="all_exhausted": the shortest prefix in which every source delivered its whole slot, so
      every sample comes at least once.
    A source that runs out within an epoch continues into its next cycle: another epoch of that
    source, freshly shuffled. Cycle 0 of mix epoch e is the source's own epoch e."""

    def __init__(self, sources: list[Stream], weights: list[float] | None = None, *, seed: int = 0,
                 names: list[str] | None = None, stop: str = "first_exhausted",
                 samples_per_epoch: int | None = None, categories: list[str] | dict[str, int] | None = None):
        if not sources or not all(isinstance(s, Stream) for s in sources):
            raise SoclakeError("a mix needs a list of one or more soclake.loader.stream.Stream sources")
        weights = [1] * len(sources) if weights is None else list(weights)
        if len(weights) != len(sources):
            raise SoclakeError(f"a mix of {len(sources)} sources needs {len(sources)} weights, got {len(weights)}")
        if stop not in STOP_RULES:
            raise SoclakeError(f"unknown stop rule {stop!r}; choose one of {', '.join(STOP_RULES)}")
        if samples_per_epoch is not None and samples_per_epoch < 1:
            raise SoclakeError("samples_per_epoch must be a positive number of samples (or None)")
        first = sources[0]
        for s in sources[1:]:
            if (s.rank, s.world_size) != (first.rank, first.world_size):
                raise SoclakeError("every source of a mix must have the same rank and world_size")
            if s.task != first.task:
                raise SoclakeError(f"every source of a mix must decode the same task ({first.task!r} and "
                                   f"{s.task!r} given); batches need the same fields")
        self.names = list(names) if names else [s.job for s in sources]
        if len(self.names) != len(sources) or len(set(self.names)) != len(self.names):
            raise SoclakeError(f"mix sources need distinct names, got {self.names}; pass names=[...]")
        self.sources, self.weights = list(sources), integer_weights(weights)
        self.seed, self.epoch, self.stop, self.samples_per_epoch = seed, 0, stop, samples_per_epoch
        self.rank, self.world_size, self.task = first.rank, first.world_size, first.task
        self.labels = label_map(categories) if categories else None
        own = [n for n, s in zip(self.names, sources) if "categories" in s.index]
        if self.labels is None and own and len(sources) > 1 and self.task != "raw":
            warnings.warn(f"mix sources {own} label with their own category ids (from their COCO file), the "
                          "others with lake category ids; pass categories=[...] for one label space", stacklevel=2)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_identity(self) -> dict:
        """What a resume state must match besides seed and epoch."""
        return {"sources": list(self.names), "weights": list(self.weights)}

    @property
    def stats(self) -> dict:
        return {n: s.stats for n, s in zip(self.names, self.sources)}

    def period(self) -> np.ndarray:
        """One period of this epoch's schedule (the tie order is drawn from (seed, epoch))."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, 2]))
        return schedule_period(tuple(self.weights), tuple(int(i) for i in rng.permutation(len(self.weights))))

    def slot_quota(self, source: int, workers: int) -> int:
        """Samples of `source` per slot that the stop rule plans with (a split filter's share
        is its expected value)."""
        s, slots = self.sources[source], self.world_size * workers
        shortest = self.stop == "first_exhausted"
        n = s.slot_length(slots, shortest) * s.split_share()
        return math.floor(n) if shortest else math.ceil(n)

    def samples_per_worker(self, workers: int = 1) -> int:
        """Mixed samples each worker of each rank yields this epoch."""
        if self.samples_per_epoch:
            return math.ceil(self.samples_per_epoch / (self.world_size * workers))
        period = self.period()
        quotas = [self.slot_quota(i, workers) for i in range(len(self.sources))]
        if 0 in quotas:
            i = quotas.index(0)
            raise SoclakeError(f"mix source {self.names[i]!r} has no sample for some of the {self.world_size} x "
                               f"{workers} rank x worker slots ({sum(self.sources[i].counts)} samples); use "
                               "pad=True, fewer workers, or samples_per_epoch")
        if self.stop == "first_exhausted":
            return min(steps_to_pick(period, i, q + 1) - 1 for i, q in enumerate(quotas))
        return max(steps_to_pick(period, i, q) for i, q in enumerate(quotas))

    def worker_lengths(self, workers: int) -> list[int]:
        return [self.samples_per_worker(workers)] * workers

    def __len__(self) -> int:
        return self.samples_per_worker(1)

    def source_epoch(self, source: int, cycle: int) -> int:
        """The source epoch read by `cycle` of this mix epoch: the mix epoch itself first, then
        epochs drawn from (seed, epoch, source, cycle), past 2**32 so they never meet plain ones."""
        if cycle == 0:
            return self.epoch
        ss = np.random.SeedSequence([self.seed, self.epoch, 3, source, cycle])
        return 2 ** 32 + int(ss.generate_state(1, np.uint64)[0])

    def _cycled(self, source: int, worker: int, workers: int) -> Iterator[dict]:
        """One slot of a source without end: its cycles one after another."""
        stream = self.sources[source]
        for cycle in itertools.count():
            n = 0
            for s in stream.raw_worker(worker, workers, self.source_epoch(source, cycle)):
                n += 1
                yield s
            if n == 0:
                raise SoclakeError(f"mix source {self.names[source]!r} gives rank {self.rank} worker {worker} no "
                                   "sample (too few samples for the slots with pad=False, a split that keeps none, "
                                   "or only bad shards); use pad=True or check stream.stats")

    def iter_worker(self, worker: int = 0, workers: int = 1, skip: int = 0) -> Iterator[dict]:
        """This rank's mixed samples for one of `workers` workers, after skipping the first
        `skip` (consumed before a resume; read but not decoded)."""
        n, period = self.samples_per_worker(workers), self.period()
        feeds = [self._cycled(i, worker, workers) for i in range(len(self.sources))]
        for t in range(n):
            i = int(period[t % len(period)])
            raw = next(feeds[i])
            if t < skip:
                continue
            src, name = self.sources[i], self.names[i]
            failures = 0
            while True:
                try:
                    out = decode_sample({**raw, "__source__": name}, src.task, src.resize, self.labels)
                    break
                except SoclakeError:  # a configuration error (e.g. a label outside `categories`)
                    raise
                except Exception as e:  # an undecodable sample: reported, and the source's next one takes its place
                    src._bad_sample(raw, e)
                    failures += 1
                    if failures > MAX_BAD_IN_A_ROW:
                        raise SoclakeError(f"mix source {name!r}: {failures} samples in a row do not decode "
                                           f"(last: {type(e).__name__}: {str(e)[:200]}); check it with "
                                           "`soclake verify --deep` or drop it from the mix") from None
                    raw = next(feeds[i])
            out["__source__"] = name
            src.stats.samples += 1
            yield out

    def __iter__(self) -> Iterator[dict]:
        return self.iter_worker(0, 1)


MAX_BAD_IN_A_ROW = 1000  # undecodable samples of one source in a row before a mix gives up


# ---------------------------------------------------------------------------- manifests
def _read_manifest(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise SoclakeError(f"cannot read mix manifest {path}: {e.strerror}") from None
    try:
        if path.endswith(".json"):
            raw = documents.parse_json(data, f"mix manifest {path}")
        else:
            raw = parse_toml(data.decode(), f"mix manifest {path}")
    except documents.DocumentError:
        raise
    except (ValueError, UnicodeDecodeError) as e:
        raise SoclakeError(f"mix manifest {path} is not valid {'JSON' if path.endswith('.json') else 'TOML'}: "
                           f"{e}") from None
    if not isinstance(raw, dict):
        raise SoclakeError(f"mix manifest {path} must be a table with [mix] and [[source]] entries")
    return raw


def _resolved(section: str, given: object, rules: dict, where: str) -> dict:
    if not isinstance(given, dict):
        raise SoclakeError(f"{where}: [{section}] must be a table")
    for key in given:
        if key not in rules:
            raise SoclakeError(f"{where}: unknown key '{key}' in [{section}]; known keys: {', '.join(rules)}")
    return {key: check_value(section, key, rule, given[key], where) if key in given else rule["default"]
            for key, rule in rules.items()}


def _location(value: str, base_dir: str) -> str:
    return value if "://" in value or os.path.isabs(value) else os.path.join(base_dir, value)


def read_manifest(path: str) -> tuple[dict, list[dict]]:
    """([mix] options, [[source]] options) of a manifest (TOML or JSON), checked against
    schemas/mix_spec.json with defaults filled in; relative locations made absolute against
    its folder. Opens no source."""
    schema = json.loads((data_dir("schemas") / "mix_spec.json").read_text())["sections"]
    raw = _read_manifest(path)
    for key in raw:
        if key not in schema:
            raise SoclakeError(f"{path}: unknown section [{key}]; a mix has [mix] and [[source]] tables")
    mix = _resolved("mix", raw.get("mix", {}), schema["mix"], path)
    if mix["resize"] and (len(mix["resize"]) != 2 or min(mix["resize"]) < 1):
        raise SoclakeError(f"{path}: [mix] resize must be [width, height] in pixels, got {mix['resize']}")
    entries = raw.get("source")
    if not isinstance(entries, list) or not entries:
        raise SoclakeError(f"{path}: no [[source]] tables; add one per source to mix")
    base_dir = os.path.dirname(os.path.abspath(path))
    sources = []
    for n, entry in enumerate(entries, 1):
        where = f"{path} [[source]] #{n}"
        src = _resolved("source", entry, schema["source"], where)
        if bool(src["index"]) == bool(src["lake"]):
            raise SoclakeError(f"{where}: give either index (a shard folder or index.json) or lake + job")
        if src["lake"] and not src["job"]:
            raise SoclakeError(f"{where}: lake = {src['lake']!r} needs job = \"NAME\"")
        if src["weight"] <= 0:
            raise SoclakeError(f"{where}: weight must be positive, got {src['weight']}")
        for key in ("index", "lake"):
            src[key] = _location(src[key], base_dir) if src[key] else ""
        sources.append(src)
    return mix, sources


def load_mix(path: str, *, rank: int = 0, world_size: int = 1, storage_options: dict | None = None) -> Mix:
    """A Mix from a manifest (TOML or JSON): a [mix] table and one [[source]] table per source
    (see read_manifest and schemas/mix_spec.json)."""
    mix, sources = read_manifest(path)
    streams = [Stream(src["index"] or src["lake"], src["job"] or None, split=src["split"], task=mix["task"],
                      rank=rank, world_size=world_size, seed=mix["seed"], shuffle=mix["shuffle"], buffer=mix["buffer"],
                      pad=src["pad"], resize=tuple(mix["resize"]) or None, val_fraction=src["val_fraction"],
                      test_fraction=src["test_fraction"], verify=src["verify"], storage_options=storage_options)
               for src in sources]
    return Mix(streams, [src["weight"] for src in sources], seed=mix["seed"],
               names=[src["name"] or st.job for src, st in zip(sources, streams)], stop=mix["stop"],
               samples_per_epoch=mix["samples_per_epoch"] or None, categories=mix["categories"] or None)
