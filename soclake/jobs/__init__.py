"""Running jobs: what every run shares (runner), executors that run shard tasks (executors/),
and compose jobs (compose). Stage jobs run through soclake.stages.runner."""
