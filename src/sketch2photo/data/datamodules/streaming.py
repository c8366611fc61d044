"""data=streaming: train from a pack that s2p-pack wrote (a LitData optimized dataset per stage), on
a local disk or in object storage (s3://...), through litdata's StreamingDataset and
StreamingDataLoader.

    <input_dir>/pack.json               image size, pairs per stage, where they came from
                                        (commands/pack.py)
    <input_dir>/train/, val/, test/     one optimized dataset each: {"sketch", "photo", "index"}
                                        uint8 pairs

Training streams: each DDP rank reads its own shard of the training pairs (litdata assigns them from
the process group), shuffled by data.seed and the epoch, and the loader's position is checkpointed.
Validation, test and the sample grids read the pairs by index instead, exactly as data=sketch2photo
does: every pair once across the ranks. Batches are data=sketch2photo's too: uint8 off the loader,
float [-1, 1] and augmented on the device (base.PairDataModule, which both data modules are).
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import Dataset

from sketch2photo.checks import PACK_INFO, REMOTE_PREFIXES, check_data, check_litdata, no_pack
from sketch2photo.data.datamodules.base import PairDataModule
from sketch2photo.errors import UserError

check_litdata()
from litdata import StreamingDataLoader, StreamingDataset  # noqa: E402  (after the clear message)

log = logging.getLogger(__name__)
# litdata's INFO lines per dataset: its cache budget, that a local pack is memory-mapped
logging.getLogger("litdata").setLevel(logging.WARNING)


def is_remote(location: str) -> bool:
    return str(location).startswith(REMOTE_PREFIXES)


def read_pack_info(input_dir: str) -> dict:
    """<input_dir>/pack.json, or a UserError naming data.input_dir when there is no pack to read
    there."""
    location = f"{str(input_dir).rstrip('/')}/{PACK_INFO}"
    try:
        if not is_remote(input_dir):
            return json.loads(Path(location).read_text())
        from litdata.streaming.fs_provider import (
            _get_fs_provider,  # the client litdata itself streams with
        )

        with tempfile.TemporaryDirectory() as folder:
            local = str(Path(folder) / PACK_INFO)
            _get_fs_provider(location).download_file(location, local)
            return json.loads(Path(local).read_text())
    except Exception as error:  # missing, no credentials, no network, not JSON: one answer for all
        raise no_pack(input_dir, f"{location}: {type(error).__name__}: {error}") from None


class ResumableLoader(StreamingDataLoader):
    """The training loader, with two workarounds for resuming through Lightning (litData #775).

    At an epoch's end Lightning does not hand a loader its saved state (only mid-epoch), so a
    resumed run's fresh loader would count epochs from 1 again and replay epoch 1's shuffle (seeded
    by the epoch). Each new epoch takes its number from the trainer instead.

    Mid-epoch, after load_state_dict, the loader replays the rest of the epoch and clears `restore`
    only when its iterator runs to the end; Lightning stops at the epoch's batch count first, so the
    flag stayed set and the next epoch came out empty. It is cleared once the replay has started.
    """

    def __init__(self, *args, epochs_done: Callable[[], int] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.epochs_done = epochs_done  # None: litdata's own count (no trainer)

    def __iter__(self):
        if (
            not self.restore and self.epochs_done is not None
        ):  # a new epoch: litdata adds one and shuffles by it
            self.current_epoch = self.epochs_done()
        for batch in super().__iter__():
            self.restore = False
            yield batch


class PackedPairs(Dataset):
    """One packed stage read by index: all its pairs in every process (len() of a StreamingDataset
    is a shard's, and depends on the environment it was built in)."""

    def __init__(self, location: str, count: int, download_dir: str | None = None):
        self.location, self.count = location, count
        self.stream = StreamingDataset(location, cache_dir=download_dir)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict:
        return self.stream[index]


class StreamingPairsDataModule(PairDataModule):
    def __init__(
        self,
        input_dir: str,
        image_size: int = 128,
        batch_size: int | None = 16,
        num_workers: int = 0,
        shuffle: bool = True,
        seed: int = 0,
        augment: dict | None = None,
        hints: dict | None = None,
        download_dir: str | None = None,
    ):
        check_data(image_size, batch_size, "error", num_workers)
        super().__init__(image_size, augment, hints)
        self.save_hyperparameters(logger=False)
        self.input_dir = str(input_dir).rstrip("/")
        self.batch_size = batch_size
        self.sets: dict[str, PackedPairs] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.sets:
            return
        pack = read_pack_info(self.input_dir)
        size = pack["image_size"]
        if size != self.hparams.image_size:
            raise UserError(
                f"data.image_size={self.hparams.image_size}, but the pack at data.input_dir={self.input_dir} "
                f"holds {size} px pairs. Set data.image_size={size}, or pack again with data.image_size="
                f"{self.hparams.image_size}."
            )
        by_folder = {}  # cross-validation folds: test is the val fold, the same object as in data=sketch2photo
        for stage, info in pack["stages"].items():
            if info["folder"] not in by_folder:
                by_folder[info["folder"]] = PackedPairs(
                    f"{self.input_dir}/{info['folder']}", info["pairs"], self.hparams.download_dir
                )
            self.sets[stage] = by_folder[info["folder"]]
        if not self.has("train"):
            raise UserError(
                f"data.input_dir={self.input_dir}: the pack has no training pairs; pack it again."
            )
        log.info(
            "data: %s streamed from %s (packed from %s); %dpx",
            self.set_sizes(),
            self.input_dir,
            pack.get("source"),
            size,
        )

    def train_dataloader(self) -> StreamingDataLoader:
        train = self.sets["train"]
        # Built here, inside fit, the dataset sees the process group and takes this rank's shard.
        # drop_last=None: litdata's default, True under DDP, so that every rank runs the same number
        # of steps (litData #233): it deals whole batches to the ranks and drops the rest.
        stream = StreamingDataset(
            train.location,
            cache_dir=self.hparams.download_dir,
            shuffle=self.hparams.shuffle,
            seed=self.hparams.seed,
        )
        batch_size = self.batch_size or len(train)
        trainer = self.trainer
        loader = ResumableLoader(
            stream,
            batch_size=batch_size,
            num_workers=self.hparams.num_workers,
            pin_memory=self.pin_memory(),
            epochs_done=(lambda: trainer.current_epoch) if trainer is not None else None,
        )
        # not persistent_workers: litdata sets each epoch (the shuffle's seed) on the dataset of the
        # main process, which workers kept alive from the last epoch would not see
        self._check_shard(len(stream), len(train), batch_size)
        return loader

    def _check_shard(self, shard: int, total: int, batch_size: int) -> None:
        world = self.trainer.world_size if self.trainer is not None else 1
        if shard == 0:
            raise UserError(
                f"data.batch_size={batch_size} leaves no training batch for each of the {world} processes: "
                f"the pack has {total} training pairs. Lower data.batch_size (or data.num_workers)."
            )
        dropped = total - shard * world
        if dropped and self.trainer is not None and self.trainer.is_global_zero:
            log.warning(
                "%d of %d training pairs are left out of every epoch: litdata deals whole batches of %d to the %d "
                "process(es) and drops the rest, so that all take the same number of steps. Which pairs varies "
                "by epoch only when the pack has several chunks (s2p-pack chunk_bytes=...).",
                dropped,
                total,
                batch_size,
                world,
            )

    # -- exact resume: the augmentation draws continue where they stopped ------------------
    def state_dict(self) -> dict:
        return {"torch_rng": torch.get_rng_state()}

    def load_state_dict(self, state: dict) -> None:
        torch.set_rng_state(state["torch_rng"])
