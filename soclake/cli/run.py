"""`soclake run SPEC`: run a job (compose: plan if needed and render; a stage: process the
committed shards of its input job)."""
from __future__ import annotations

from soclake.cli.common import add_command, lake_arg, lake_of, progress_arg
from soclake.jobs import compose
from soclake.jobs.executors import EXECUTORS
from soclake.spec.load import load
from soclake.stages import runner


def add_parser(sub) -> None:
    p = add_command(sub, "run", "run a job: compose (plan if needed, render), relight or refexp",
                    "Render every shard not committed yet. Rerunning a finished job does nothing; an interrupted "
                    "one renders only its missing shards. A spec with a [relight] or [refexp] section runs that "
                    "stage over the committed shards of its input job.")
    p.add_argument("spec", help="job spec TOML (see jobs/)")
    lake_arg(p)
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a key of the spec (TOML value, or a bare string), e.g. --set job.images=8; repeatable")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores; with ray: "
                   "the cluster's CPUs, or its GPUs / num_gpus for GPU stages)")
    p.add_argument("--executor", default="local", choices=EXECUTORS.names(),
                   help="local: a process pool on this machine; ray: Ray tasks, and actors for GPU stages")
    p.add_argument("--address", help="ray: the cluster to join (auto, HOST:6379 or ray://HOST:10001); default "
                   "$RAY_ADDRESS, else a private Ray on this machine bound to 127.0.0.1")
    p.add_argument("--retries", type=int, default=None, help="attempts after the first for a failing shard "
                   "(default: [job] retries, 2)")
    p.add_argument("--split", help="render only split I of N (shards with index %% N == I), e.g. 0/4; 'slurm' "
                   "reads SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT")
    progress_arg(p)


def run(args) -> int:
    lake = lake_of(args)
    spec = load(args.spec, args.set)
    options = {"workers": args.workers, "executor": args.executor, "progress": args.progress, "split": args.split,
               "retries": args.retries, "address": args.address}
    summary = compose.run(lake, spec, **options) if spec.kind == "compose" else runner.run(lake, spec, **options)
    print(summary.describe().replace("shards: ", f"shards: {lake.uri}/"))
    return 1 if summary.failed else 0
