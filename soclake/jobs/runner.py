"""What every kind of job run shares (compose and the stages): the summary of a run, splits of
its shards across machines, worker counts, the run-and-wait loop over an executor, and the shard
indexes written after a run.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Callable, Iterable

from tqdm import tqdm

from soclake import paths, storage
from soclake.errors import SoclakeError
from soclake.jobs import executors
from soclake.lake import Lake
from soclake.shards import commit


@dataclass
class Summary:
    """What a run did: shards rendered or left, images, time, failures."""
    job: str
    fingerprint: str
    shards_total: int
    shards_rendered: int = 0
    images: int = 0
    seconds: float = 0.0
    failed: dict = field(default_factory=dict)      # shard -> error, for shards that could not be done
    concurrent: dict = field(default_factory=dict)  # shard -> "busy"/"committed": left to another runner

    COUNTS = ("images",)  # the per-shard counts a run adds up (see add)

    @property
    def folder(self) -> str:
        return paths.job_folder(self.job, self.fingerprint)

    def add(self, stats: dict) -> None:
        for k in self.COUNTS:
            setattr(self, k, getattr(self, k) + stats[k])

    def not_rendered(self) -> str:
        """Why the shards a run did not do were not: "(3 already committed, 1 by another runner)"."""
        skipped = self.shards_total - self.shards_rendered - len(self.failed)
        others = f", {len(self.concurrent)} by another runner" if self.concurrent else ""
        return f"({skipped} already committed{others})"

    def timing(self) -> str:
        rate = self.images / self.seconds if self.seconds else 0.0
        return f"{self.seconds:.1f}s ({rate:.2f} images/s)"

    def failures(self) -> str:
        return "".join(f"\nFAILED shard {s}: {e} (rerun to retry it)" for s, e in sorted(self.failed.items()))

    def where(self) -> str:
        return f"shards: {paths.shards_folder(self.job, self.fingerprint)}/{self.failures()}"


# ---------------------------------------------------------------------------- splits and workers
def parse_split(split: str | None) -> tuple[int, int] | None:
    """'I/N' (or SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT when split is 'slurm') -> (I, N)."""
    if not split:
        return None
    if split == "slurm":
        try:
            i, n = int(os.environ["SLURM_ARRAY_TASK_ID"]), int(os.environ["SLURM_ARRAY_TASK_COUNT"])
        except (KeyError, ValueError):
            raise SoclakeError("--split slurm needs SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT") from None
        i -= int(os.environ.get("SLURM_ARRAY_TASK_MIN", "0"))
    else:
        try:
            i, n = (int(v) for v in split.split("/"))
        except ValueError:
            raise SoclakeError(f"--split {split!r} must be I/N, e.g. 0/4") from None
    if not 0 <= i < n:
        raise SoclakeError(f"--split {split}: I must be in [0, N)")
    return i, n


def in_split(shards: Iterable[int], split: str | None) -> list[int]:
    """The shards of one split (all of them without a split), sorted: shard s belongs to
    split I of N when s % N == I, so N machines never do the same shard."""
    part = parse_split(split)
    return sorted(s for s in shards if part is None or s % part[1] == part[0])


def worker_count(lake: Lake, executor: str, workers: int | None) -> int | None:
    """Workers run in other processes (or machines): an in-memory lake is not shared with them,
    so it renders in this process, and only with the local executor."""
    if not storage.is_in_memory(lake.fs):
        return workers
    if executor != "local":
        raise SoclakeError(f"the {executor} executor cannot reach an in-memory lake ({lake.uri}); "
                           "use a folder on a shared filesystem or an object store (s3://)")
    return 1


def progress_bar(total: int, desc: str, progress: bool | None) -> tqdm:
    """A progress bar on stderr; by default shown only when stderr is a terminal."""
    return tqdm(total=total, desc=desc, unit="shard", file=sys.stderr, disable=None if progress is None else not progress)


# ---------------------------------------------------------------------------- the loop
Submit = Callable[[list[int], bool], Iterable[executors.Outcome]]
"""submit(shards, wait) -> one Outcome per shard, as they finish."""


def execute(submit: Submit, todo: list[int], summary: Summary, lake: Lake, committed_before: int, bar: tqdm) -> None:
    """Do the shards `todo` with `submit`, folding the outcomes into the run's summary. Shards
    another process held are waited for at the end (it may be a sweep or a worker on its way
    out, not a runner) and done if it did not commit them. A storage error stops the run."""
    _collect(submit(todo, False), summary, lake, committed_before, bar)
    busy = sorted(s for s, state in summary.concurrent.items() if state == "busy")
    if busy:
        for s in busy:
            del summary.concurrent[s]
        _collect(submit(busy, True), summary, lake, committed_before, bar)
    bar.close()


def _collect(outcomes: Iterable[executors.Outcome], summary: Summary, lake: Lake, committed_before: int,
             bar: tqdm) -> None:
    for out in outcomes:
        if out.fatal:
            bar.close()
            raise_fatal(lake, out, committed_before + summary.shards_rendered)
        if out.error:
            summary.failed[out.task["shard"]] = failure_note(out)
        elif "skipped" in out.value:
            summary.concurrent[out.task["shard"]] = out.value["skipped"]
            if out.value["skipped"] == "busy":
                continue  # counted when it is waited for
        else:
            summary.shards_rendered += 1
            summary.add(out.value)
        bar.update(1)


def failure_note(out: executors.Outcome) -> str:
    return out.error + (f" (after {out.attempts} attempts)" if out.attempts > 1 else "")


def raise_fatal(lake: Lake, out: executors.Outcome, committed: int) -> None:
    """Stop a run on a storage error (disk full, read-only lake) with what to do about it."""
    raise SoclakeError(f"writing shard {out.task['shard']} to {lake.uri} failed: {out.error}. "
                       f"Stopped: every further shard would fail the same way. {committed} shard(s) of this job are "
                       "committed and intact, and nothing partial is visible; free space (or make the lake "
                       "writable) and rerun the same command to render the rest.")


# ---------------------------------------------------------------------------- indexes
def write_indexes(lake: Lake, job: str, fingerprint: str, stage: str) -> dict:
    """Write the run's index.json and the job's index.json (its newest run) from the manifest."""
    return commit.write_indexes(lake, job, fingerprint, stage)
