"""A resumable torch DataLoader over a Stream or a Mix, and the arithmetic of resuming: which
samples each worker had delivered after N batches. torch is an optional extra, imported here
only (pip install 'soclake[stream]')."""
from __future__ import annotations

import math

import numpy as np

from soclake.errors import SoclakeError
from soclake.loader.stream import Stats

STATS_KEY = "__worker_stats__"  # rides along with each sample from a worker process to the main one
MAX_ERRORS = 20

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


def torch_loader(stream, batch_size: int = 8, num_workers: int = 0, **loader_kwargs):
    """A resumable torch DataLoader over a Stream or a Mix: iterate it, call state_dict() at any
    point, and a fresh loader given load_state_dict(state) continues the same epoch exactly."""
    try:  # an optional extra: imported only when a loader is asked for
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
                out = {k: (torch.from_numpy(v) if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                if info is not None:  # this worker's counters, for the main process
                    out[STATS_KEY] = (wid, _counters(stream))
                yield out

    class Loader:
        def __init__(self):
            self.dataset = _Dataset()
            self.workers = max(num_workers, 1)
            self.batches = 0
            self.worker_stats: dict[int, tuple] = {}  # worker -> its latest counters and errors
            self.loader = DataLoader(self.dataset, batch_size=batch_size, num_workers=num_workers,
                                     collate_fn=collate, **loader_kwargs)

        def __iter__(self):
            for batch in self.loader:
                self.batches += 1
                for wid, counters in batch.pop(STATS_KEY, []):
                    self.worker_stats[wid] = counters
                yield batch
            stream.set_epoch(stream.epoch + 1)
            self.batches, self.dataset.skips, self.dataset.rotate = 0, [], 0

        @property
        def stats(self):
            """The stream's Stats (a Mix: per source name) summed over the DataLoader's workers."""
            if num_workers == 0:
                return stream.stats
            per_worker = list(self.worker_stats.values())
            if isinstance(stream.stats, Stats):
                return Stats.total([c for c, _ in per_worker], [e for _, errs in per_worker for e in errs])
            return {name: Stats.total([w[name][0] for w in per_worker], [e for w in per_worker for e in w[name][1]])
                    for name in stream.stats}

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


def _counters(stream) -> tuple:
    """A worker's counters and latest errors: of a Stream, or per source of a Mix."""
    stats = stream.stats
    if isinstance(stats, Stats):
        return stats.counters(), stats.errors[-MAX_ERRORS:]
    return {name: (s.counters(), s.errors[-MAX_ERRORS:]) for name, s in stats.items()}


def collate(samples: list[dict]) -> dict:
    """Batch: images stacked when they share a size (else a list); boxes, labels, masks and
    expressions as per-sample lists."""
    import torch  # optional extra; collate only runs inside a torch DataLoader
    out: dict = {"__key__": [s["__key__"] for s in samples]}
    for k in samples[0]:
        if k == "__key__":
            continue
        if k == STATS_KEY:
            out[k] = [s[k] for s in samples if k in s]
            continue
        vals = [s[k] for s in samples]
        if k == "image" and all(v.shape == vals[0].shape for v in vals):
            out[k] = torch.stack(vals)
        else:
            out[k] = vals
    return out
