"""s2p-pack and data=streaming (LitData): the pack holds the folder's split, training from it is the
same batches, resume continues the shuffled order exactly, and DDP ranks stream disjoint shards."""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch import Callback

from helpers import TESTS, TINY, compose_config, run_cli, start_cli, wait_until
from sketch2photo.commands.pack import pack
from sketch2photo.commands.train import train
from sketch2photo.data.datamodules.pairs import PairedSketchDataModule
from sketch2photo.data.datamodules.streaming import StreamingPairsDataModule
from sketch2photo.errors import UserError
from sketch2photo.runs.record import read_record

# 24 synthetic pairs: train 20, val 2, test 2. ~4 KB a pair at 32 px: 20KB chunks make several
# chunks, so the shuffle permutes chunks as well as the pairs inside them.
PACK = ["data=synthetic", "data.synthetic_pairs=24", "data.image_size=32", "chunk_bytes=20KB"]
# 5 steps an epoch, shuffled and augmented: resuming must restore both the loader's order and the
# RNG
RUN = [
    *TINY,
    "data=streaming",
    "data.image_size=32",
    "data.batch_size=4",
    "data.augment.enabled=true",
    "trainer.max_epochs=6",
    "+callbacks.batches._target_=test_streaming.RecordBatches",
]


class RecordBatches(Callback):
    """Writes <run>/batches_rank<r>.json: [epoch, batch indices] for every training step of this
    process."""

    def __init__(self):
        self.seen = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.append([trainer.current_epoch, batch["index"].tolist()])

    def on_train_end(self, trainer, pl_module):
        path = Path(trainer.default_root_dir) / f"batches_rank{trainer.global_rank}.json"
        earlier = (
            json.loads(path.read_text()) if path.exists() else []
        )  # a resumed run adds to its first part
        path.write_text(json.dumps(earlier + self.seen))


class TermAtStep(Callback):
    """SIGTERM to this process after training step `step`: Lightning stops and last.ckpt is saved
    mid-epoch."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pack")
    pack(
        compose_config(
            root, [*PACK, f"paths.data_dir={root / 'data'}", f"out={root / 'packed'}"], "pack"
        )
    )
    return root / "packed"


def batches(run: Path, rank: int = 0) -> list:
    return json.loads((run / f"batches_rank{rank}.json").read_text())


# -- packing -------------------------------------------------------------------------------------
def test_the_pack_holds_the_folders_split_and_pairs(packed):
    info = json.loads((packed / "pack.json").read_text())
    assert info["image_size"] == 32
    assert {stage: entry["pairs"] for stage, entry in info["stages"].items()} == {
        "train": 20,
        "val": 2,
        "test": 2,
    }
    assert len(list((packed / "train").glob("*.bin"))) > 1  # several chunks

    folder = PairedSketchDataModule(info["source"], image_size=32, cache="memory")
    folder.setup()
    streaming = StreamingPairsDataModule(str(packed), image_size=32)
    streaming.setup()
    for stage in ("train", "val", "test"):
        assert len(streaming.sets[stage]) == len(folder.sets[stage])
        for i in range(
            len(folder.sets[stage])
        ):  # the same pairs, in the same order, the same pixels
            for key in ("sketch", "photo"):
                assert torch.equal(streaming.sets[stage][i][key], folder.sets[stage][i][key]), (
                    stage,
                    i,
                    key,
                )


def test_pack_refuses_to_overwrite_and_lists_every_bad_file(tmp_path, packed, synthetic_dir):
    with pytest.raises(UserError, match="already holds a pack.*overwrite=true"):
        pack(
            compose_config(
                tmp_path,
                [*PACK, f"paths.data_dir={packed.parent / 'data'}", f"out={packed}"],
                "pack",
            )
        )
    broken = tmp_path / "broken"
    (broken / "testA").mkdir(parents=True)
    (broken / "testB").mkdir()
    for name in ("0", "1", "2"):
        for side in "AB":
            (broken / f"test{side}" / f"{name}_{side}.png").write_bytes(
                (synthetic_dir / f"test{side}" / f"{name}_{side}.png").read_bytes()
            )
    (broken / "testA" / "1_A.png").write_bytes(b"")
    (broken / "testB" / "2_B.png").write_text("not an image")
    settings = [
        f"data.data_dir={broken}",
        "data.image_size=32",
        "data.split=none",
        f"out={tmp_path / 'out'}",
    ]
    with pytest.raises(UserError, match=r"(?s)2 problem\(s\).*1_A.png: empty.*2_B.png"):
        pack(compose_config(tmp_path, settings, "pack"))
    assert not (tmp_path / "out" / "pack.json").exists()
    info = pack(compose_config(tmp_path, [*settings, "data.on_bad_file=skip"], "pack"))
    assert info["stages"] == {"train": {"folder": "train", "pairs": 1}}


@pytest.mark.slow
def test_pack_help_and_a_missing_out_answer_clearly(tmp_path):
    help_text = run_cli("s2p-pack", "--help", cwd=tmp_path)
    assert help_text.stdout.lstrip().startswith("s2p-pack: pack a dataset"), help_text.stdout[
        -2000:
    ]
    missing = run_cli("s2p-pack", "data.data_dir=x", cwd=tmp_path)
    output = missing.stdout + missing.stderr
    assert missing.returncode == 1
    assert "out=... is required. Usage: s2p-pack" in output
    assert "Traceback" not in output


# -- the data module -------------------------------------------------------------------------------
def test_every_datamodule_argument_is_a_key(tmp_path):
    cfg = compose_config(tmp_path, ["data=streaming", "data.input_dir=x"])
    arguments = set(inspect.signature(StreamingPairsDataModule.__init__).parameters) - {"self"}
    assert set(cfg.data) - {"_target_"} == arguments


def test_an_unreachable_input_dir_is_one_clear_error():
    # s3:// takes the same path (the client's error goes into the message), but offline litdata's S3
    # client retries for minutes before it gives up: not tested here.
    with pytest.raises(
        UserError,
        match=r"^data.input_dir=no/such/pack: no packed dataset can be read there "
        r"\(no/such/pack/pack.json: FileNotFoundError.*Pack one first with "
        r"`s2p-pack data.data_dir=<pairs> out=no/such/pack`",
    ):
        StreamingPairsDataModule("no/such/pack", image_size=32).setup()


def test_an_image_size_other_than_the_packs_is_refused(packed):
    with pytest.raises(
        UserError,
        match=r"data.image_size=64, but the pack .* holds 32 px pairs. Set data.image_size=32",
    ):
        StreamingPairsDataModule(str(packed), image_size=64).setup()


@pytest.mark.parametrize("workers", [0, 1], ids=["in-process", "1 worker"])
def test_the_loader_resumes_mid_epoch_exactly(packed, workers):
    """litData #24 (num_workers=0 resume) does not bite in 0.2.76; the order continues exactly."""

    def loader():
        datamodule = StreamingPairsDataModule(
            str(packed), image_size=32, batch_size=4, num_workers=workers, seed=3
        )
        datamodule.setup()
        return datamodule.train_dataloader()

    uninterrupted = loader()
    expected = [[batch["index"].tolist() for batch in uninterrupted] for _ in range(2)]
    assert expected[0] != expected[1] and sorted(sum(expected[0], [])) == list(
        range(20)
    )  # reshuffled, all pairs
    first = loader()
    started = iter(first)
    head = [next(started)["index"].tolist() for _ in range(2)]
    state = first.state_dict()
    resumed = loader()
    resumed.load_state_dict(state)
    assert head + [batch["index"].tolist() for batch in resumed] == expected[0]
    assert [batch["index"].tolist() for batch in resumed] == expected[1]


def test_ddp_shards_that_leave_no_batch_or_drop_pairs_are_said(packed, caplog):
    datamodule = StreamingPairsDataModule(str(packed), image_size=32)
    datamodule.trainer = SimpleNamespace(world_size=2, is_global_zero=True)
    with pytest.raises(
        UserError, match="data.batch_size=16 leaves no training batch for each of the 2 processes"
    ):
        datamodule._check_shard(0, 20, 16)
    datamodule._check_shard(9, 20, 3)
    assert "2 of 20 training pairs are left out of every epoch" in caplog.text


def test_a_streaming_run_trains_tests_and_writes_sample_grids(tmp_path, packed):
    cfg = compose_config(
        tmp_path / "run", [*RUN, f"data.input_dir={packed}", "trainer.max_epochs=2"]
    )
    metrics = train(cfg)
    run = tmp_path / "run"
    assert read_record(run)["status"] == "ok"
    assert {"train/loss", "val/psnr", "test/psnr"} <= set(metrics)
    assert (run / "samples" / "epoch_0002.png").is_file()
    seen = batches(run)
    for epoch in (0, 1):  # every training pair once an epoch, in a new order
        assert sorted(sum((indices for e, indices in seen if e == epoch), [])) == list(range(20))
    assert [indices for e, indices in seen if e == 0] != [indices for e, indices in seen if e == 1]


# -- faults and DDP --------------------------------------------------------------------------------
@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, packed):
    """A checkpoint at an epoch's end: Lightning does not hand the loader its state then
    (litData #775); without the workaround the resumed epochs would replay epoch 1's order and these
    would differ."""

    def start(name: str) -> subprocess.Popen:
        return start_cli(
            "s2p-train",
            *RUN,
            f"data.input_dir={packed}",
            f"hydra.run.dir={name}",
            cwd=tmp_path,
            env={"PYTHONPATH": str(TESTS)},
        )

    reference, killed = start("reference"), start("killed")  # side by side, to save time
    wait_until(
        (tmp_path / "killed" / "samples" / "epoch_0003.png").exists,
        "epoch 3's sample grid",
        process=killed,
    )
    killed.kill()  # SIGKILL: no cleanup of any kind
    killed.wait()
    assert reference.wait(timeout=300) == 0, reference.stdout.read()[-3000:]
    assert not (tmp_path / "killed" / "metrics.json").exists()
    saved_epoch = torch.load(tmp_path / "killed" / "checkpoints" / "last.ckpt", weights_only=True)[
        "epoch"
    ]
    assert 1 <= saved_epoch < 5

    resumed = run_cli(  # the test's own callback, typed again: a run dir's targets are not trusted
        "s2p-train",
        "resume=killed",
        "++callbacks.batches._target_=test_streaming.RecordBatches",
        cwd=tmp_path,
        env={"PYTHONPATH": str(TESTS)},
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    expected, got = read_record(tmp_path / "reference"), read_record(tmp_path / "killed")
    assert got["status"] == "ok" and got["epochs"] == 6
    for name, value in expected["metrics"].items():
        assert got["metrics"][name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
    # the resumed run's steps (the killed process wrote none) continue the reference's from the
    # checkpoint on
    assert batches(tmp_path / "killed") == [
        step for step in batches(tmp_path / "reference") if step[0] > saved_epoch
    ]


@pytest.mark.slow
def test_sigterm_mid_epoch_then_resume_continues_the_order(tmp_path, packed):
    """A checkpoint mid-epoch: Lightning hands the loader its state, which replays the rest of the
    epoch; the next epochs must not come out empty (litData #775 with Lightning; ResumableLoader).
    The weights and RNG continue too; the resumed epoch's train/loss averages only its own steps."""
    reference, stopped = tmp_path / "reference", tmp_path / "stopped"
    train(compose_config(reference, [*RUN, f"data.input_dir={packed}"]))
    stop = ["+callbacks.stop._target_=test_streaming.TermAtStep", "+callbacks.stop.step=7"]
    with pytest.raises(SystemExit) as stopped_by:
        train(compose_config(stopped, [*RUN, f"data.input_dir={packed}", *stop]))
    assert (
        type(stopped_by.value).__name__ == "SIGTERMException"
    )  # Lightning's, after last.ckpt is saved
    last = stopped / "checkpoints" / "last.ckpt"
    assert (
        torch.load(last, weights_only=True)["global_step"] == 7
    )  # epoch 2, after 2 of its 5 steps
    train(compose_config(stopped, [*RUN, f"data.input_dir={packed}", f"ckpt_path={last}"]))
    assert (
        batches(stopped) == batches(reference)[7:]
    )  # epoch 2's last 3 steps, then epochs 3-6, the same pairs


@pytest.mark.slow
def test_two_processes_stream_disjoint_shards_and_count_every_pair_once(tmp_path, synthetic_dir):
    # 12 pairs: train 6 in batches of 3 (one a rank: nothing dropped),
    # val 3 (2 on rank 0, 1 on rank 1)
    packed = tmp_path / "packed"
    pack(
        compose_config(
            tmp_path,
            [
                f"data.data_dir={synthetic_dir}",
                "data.image_size=32",
                "data.val_fraction=0.25",
                "data.test_fraction=0.25",
                f"out={packed}",
            ],
            "pack",
        )
    )
    result = run_cli(
        "s2p-train",
        *RUN,
        f"data.input_dir={packed}",
        "data.batch_size=3",
        "trainer.max_epochs=2",
        "trainer=ddp_cpu",
        "hydra.run.dir=run",
        cwd=tmp_path,
        env={"PYTHONPATH": str(TESTS)},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "left out of every epoch" not in output
    run = tmp_path / "run"
    assert read_record(run)["world_size"] == 2
    ranks = [batches(run, 0), batches(run, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 2  # the same number of steps on both (litData #233)
    for epoch in (0, 1):
        shards = [sum((indices for e, indices in rank if e == epoch), []) for rank in ranks]
        assert not set(shards[0]) & set(shards[1])
        assert sorted(shards[0] + shards[1]) == list(range(6))
    from test_ddp import (
        one_process_metrics,  # the val pairs once each: the metrics of one process on last.ckpt
    )

    metrics = read_record(run)["metrics"]
    alone = one_process_metrics(run, "val", "last.ckpt")
    assert {name: metrics[name] for name in alone} == pytest.approx(alone, rel=1e-5)


def test_an_overwrite_killed_half_way_leaves_no_pack_that_reads_as_finished(tmp_path, monkeypatch):
    settings = [*PACK, f"paths.data_dir={tmp_path / 'data'}", f"out={tmp_path / 'packed'}"]
    pack(compose_config(tmp_path, settings, "pack"))
    assert (tmp_path / "packed" / "pack.json").exists()

    def killed(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("sketch2photo.commands.pack.optimize", killed)
    with pytest.raises(KeyboardInterrupt):
        pack(compose_config(tmp_path, [*settings, "overwrite=true"], "pack"))
    with pytest.raises(UserError, match="no packed dataset can be read there"):
        StreamingPairsDataModule(input_dir=str(tmp_path / "packed"), image_size=32).setup()
