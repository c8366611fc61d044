"""A callback for bench/data_scale.py: each rank's memory, from /proc/self/smaps_rollup.

At the start of training it first reads the rank's whole shard once through its train loader, as
a full epoch would, so that every page of the dataset it will ever touch is resident; then it
records Pss (its share of shared pages plus its own) and Anonymous (its private memory). Ranks wait
for each other before and after reading, so every rank is alive and mapped while the others read.
"""

from __future__ import annotations

import json
from pathlib import Path

from lightning.pytorch import Callback


def memory_mib() -> dict[str, float]:
    fields = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value) / 1024
    return {
        "pss_mib": fields["Pss"],
        "anonymous_mib": fields["Anonymous"],
        "rss_mib": fields["Rss"],
    }


class MemoryProbe(Callback):
    def __init__(self, out_dir: str):
        self.out_dir = Path(out_dir)

    def on_train_start(self, trainer, pl_module) -> None:
        for _ in trainer.train_dataloader:  # this rank's shard (DistributedSampler under DDP)
            pass
        trainer.strategy.barrier()
        after_a_full_read = memory_mib()
        trainer.strategy.barrier()
        self.record = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "after_full_read": after_a_full_read,
        }

    def on_train_end(self, trainer, pl_module) -> None:
        self.record["after_training"] = memory_mib()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / f"memory-rank{trainer.global_rank}.json").write_text(
            json.dumps(self.record)
        )
