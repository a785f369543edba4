"""The stage interface: a shard-in, shard-out step (relight, refexp) that reads one committed
shard's samples and returns new samples with the same keys, plus table rows. A stage is an
object with the methods of Stage; the registry maps stage names to them (imported when used).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from soclake.lake import Lake
from soclake.registry import Registry


@dataclass
class StageOutput:
    samples: list[tuple[str, dict[str, bytes]]]
    tables: dict[str, list[dict]] = field(default_factory=dict)
    flagged: int = 0  # samples the stage could only partly handle (reported in the summary)


class Stage:
    """A stage's hooks; the defaults do nothing, so a stage overrides only what it needs."""

    name = ""

    def check(self, params: dict) -> None:
        """Refuse bad parameters (a missing model, an unreachable endpoint) before any shard is read."""

    def prepare_params(self, lake: Lake, params: dict) -> dict:
        """Parameters completed from the lake (e.g. category names), once per run."""
        return params

    def inputs_digest(self, params: dict) -> str:
        """Identity of what the outputs read besides the input shards (after prepare_params: e.g.
        the lake's backgrounds, a prompts file); part of the job's fingerprint."""
        return ""

    def actor_options(self, params: dict) -> dict | None:
        """Resources of long-lived workers that keep a model loaded between shards (e.g.
        {"num_gpus": 1}); None runs shards as plain tasks."""
        return None

    def process(self, samples: list[tuple[str, dict[str, bytes]]], params: dict, seed: int,
                context: dict) -> StageOutput:
        """One shard's samples in, the stage's samples and table rows out. Pure of its inputs."""
        raise NotImplementedError


STAGES = Registry("stage", {"relight": "soclake.stages.relight:STAGE", "refexp": "soclake.stages.refexp.stage:STAGE"})
