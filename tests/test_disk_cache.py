"""data.cache=disk: decoded once, reused by later runs and concurrent processes, rebuilt when stale,
never read torn."""

import json
import logging
import time
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from helpers import start_cli, wait_until
from sketch2photo.data import disk_cache
from sketch2photo.data.corpora.synthetic import write_dataset
from sketch2photo.data.datamodules.pairs import PairedSketchDataModule
from sketch2photo.data.decoded import decode_listing
from sketch2photo.data.disk_cache import cache_key, open_disk_cache
from sketch2photo.data.layouts import find_pairs
from sketch2photo.errors import UserError

SIZE = 32


@pytest.fixture
def dataset(tmp_path):
    return write_dataset(tmp_path / "pairs", num_pairs=10, size=SIZE)


def open_cache(data_dir, cache_dir):
    return open_disk_cache(
        find_pairs(data_dir), data_dir, SIZE, "sketch_left", cache_dir, threads=2
    )


def same_as_decoding_in_memory(sets, data_dir) -> bool:
    expected, _ = decode_listing(find_pairs(data_dir), SIZE, "sketch_left", threads=2)
    return all(
        torch.equal(sets[f].sketches, expected[f].sketches)
        and torch.equal(sets[f].photos, expected[f].photos)
        for f in expected
    )


def forbid_decoding(monkeypatch):
    def decode(*args, **kwargs):
        raise AssertionError("decoded again instead of reusing the cache")

    monkeypatch.setattr(disk_cache, "decode_in_chunks", decode)


def test_built_once_then_memory_mapped_and_reused(dataset, tmp_path, monkeypatch):
    sets, problems = open_cache(dataset, tmp_path / "cache")
    assert problems == []
    assert same_as_decoding_in_memory(sets, dataset)
    forbid_decoding(monkeypatch)
    again, _ = open_cache(dataset, tmp_path / "cache")
    assert same_as_decoding_in_memory(again, dataset)
    # file-backed: the tensor's memory is the mapped .npy, not a private copy
    mapped = again["all"].all_photos.untyped_storage().data_ptr()
    maps = open("/proc/self/maps").read().splitlines()
    npy = [line for line in maps if line.endswith("all_photos.npy")]
    assert npy, "photos.npy is not memory-mapped"
    start, end = (int(x, 16) for x in npy[-1].split()[0].split("-"))
    assert any(
        int(line.split()[0].split("-")[0], 16) <= mapped < int(line.split()[0].split("-")[1], 16)
        for line in npy
    )
    assert end > start


def test_a_changed_file_rebuilds_with_the_new_pixels(dataset, tmp_path, caplog):
    open_cache(dataset, tmp_path / "cache")
    Image.new("RGB", (SIZE, SIZE), (0, 255, 0)).save(dataset / "testB" / "3_B.png")
    with caplog.at_level(logging.INFO, logger="sketch2photo.data.disk_cache"):
        sets, _ = open_cache(dataset, tmp_path / "cache")
    assert "changed since it was built" in caplog.text
    row = [pair.name for pair in sets["all"].pairs].index("3")
    assert torch.all(sets["all"].photos[row][1] == 255)
    assert same_as_decoding_in_memory(sets, dataset)


def test_an_older_preprocessing_version_is_rebuilt_with_one_line_saying_why(
    dataset, tmp_path, monkeypatch, caplog
):
    open_cache(dataset, tmp_path / "cache")
    monkeypatch.setattr(disk_cache, "PREPROCESSING_VERSION", disk_cache.PREPROCESSING_VERSION + 1)
    caplog.clear()  # the first build's line, when an earlier test left INFO on
    with caplog.at_level(logging.INFO, logger="sketch2photo.data.disk_cache"):
        sets, _ = open_cache(dataset, tmp_path / "cache")
    why = [r.message for r in caplog.records if "building" in r.message]
    assert len(why) == 1
    assert (
        f"version {disk_cache.PREPROCESSING_VERSION - 1}, this is version {disk_cache.PREPROCESSING_VERSION}"
        in why[0]
    )
    assert same_as_decoding_in_memory(sets, dataset)


def test_a_truncated_cache_file_is_detected_and_rebuilt(dataset, tmp_path, caplog):
    open_cache(dataset, tmp_path / "cache")
    npy = next((tmp_path / "cache").glob("*/all_photos.npy"))
    npy.write_bytes(
        npy.read_bytes()[: npy.stat().st_size // 2]
    )  # disk full, or killed while copying
    with caplog.at_level(logging.INFO, logger="sketch2photo.data.disk_cache"):
        sets, _ = open_cache(dataset, tmp_path / "cache")
    assert "all_photos.npy is" in caplog.text
    assert "truncated" in caplog.text
    assert same_as_decoding_in_memory(sets, dataset)


def test_a_damaged_header_is_detected_and_rebuilt(dataset, tmp_path, caplog):
    open_cache(dataset, tmp_path / "cache")
    npy = next((tmp_path / "cache").glob("*/all_sketches.npy"))
    data = bytearray(npy.read_bytes())
    data[10:40] = b"#" * 30  # the header's dict, unreadable; the size is unchanged
    npy.write_bytes(bytes(data))
    with caplog.at_level(logging.INFO, logger="sketch2photo.data.disk_cache"):
        sets, _ = open_cache(dataset, tmp_path / "cache")
    assert "all_sketches.npy has a damaged header" in caplog.text  # the log line says why
    assert same_as_decoding_in_memory(sets, dataset)


def test_a_file_rewritten_in_place_with_the_same_size_is_detected(dataset, tmp_path, caplog):
    open_cache(dataset, tmp_path / "cache")
    npy = next((tmp_path / "cache").glob("*/all_photos.npy"))
    data = bytearray(npy.read_bytes())
    data[-1000:] = bytes(1000)  # the same size and header, other pixels
    time.sleep(0.05)  # file times move in clock ticks (a few ms): later than the build's
    with open(npy, "r+b") as file:  # in place, as an editor or a second copy would
        file.write(bytes(data))
    with caplog.at_level(logging.INFO, logger="sketch2photo.data.disk_cache"):
        sets, _ = open_cache(dataset, tmp_path / "cache")
    assert "all_photos.npy was changed after the cache was built" in caplog.text
    assert same_as_decoding_in_memory(sets, dataset)


def test_a_build_killed_half_way_is_never_read_and_its_leftovers_go(dataset, tmp_path, monkeypatch):
    real = disk_cache.decode_in_chunks

    def killed_after_first_chunk(*args, **kwargs):
        yield next(real(*args, **kwargs))
        raise KeyboardInterrupt

    monkeypatch.setattr(disk_cache, "decode_in_chunks", killed_after_first_chunk)
    monkeypatch.setattr("sketch2photo.data.decoded.CHUNK", 4)
    with pytest.raises(KeyboardInterrupt):
        open_cache(dataset, tmp_path / "cache")
    key = cache_key(dataset, SIZE, "folders", "sketch_left")
    assert not (tmp_path / "cache" / key).exists()
    (tmp_path / "cache" / f".{key}.building-999999").mkdir()  # what kill -9 leaves behind
    monkeypatch.setattr(disk_cache, "decode_in_chunks", real)
    sets, _ = open_cache(dataset, tmp_path / "cache")
    assert same_as_decoding_in_memory(sets, dataset)
    leftovers = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert leftovers == [f".{key}.lock", key]


def test_a_full_disk_is_a_clear_error_and_leaves_nothing(dataset, tmp_path, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(disk_cache.os, "fsync", disk_full)
    with pytest.raises(
        UserError, match="(?s)No space left on device.*paths.cache_dir.*data.cache=memory"
    ) as error:
        open_cache(dataset, tmp_path / "cache")
    assert "\n" in str(error.value)
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")] == []


def test_a_cache_dir_that_is_not_writable_names_the_key(dataset, tmp_path):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(UserError, match=r"paths.cache_dir=.*a_file/cache is not a writable folder"):
        open_cache(dataset, tmp_path / "a_file" / "cache")


@pytest.mark.slow
def test_two_processes_started_together_build_once_and_read_the_same(tmp_path):
    data_dir = write_dataset(
        tmp_path / "pairs", num_pairs=300, size=SIZE
    )  # about a second to decode
    script = f"""
import logging, sys, time, hashlib
from pathlib import Path
logging.basicConfig(level=logging.INFO, format="%(message)s")
from sketch2photo.data.disk_cache import open_disk_cache
from sketch2photo.data.layouts import find_pairs
go = Path(sys.argv[1])
Path(sys.argv[2]).touch()  # imported: ready to go
while not go.exists():
    time.sleep(0.005)
sets, _ = open_disk_cache(find_pairs({str(data_dir)!r}), Path({str(data_dir)!r}), {SIZE}, "sketch_left",
                          Path({str(tmp_path / "cache")!r}), threads=1)
data = sets["all"]
print("sha", hashlib.sha256(data.sketches.numpy().tobytes() + data.photos.numpy().tobytes()).hexdigest())
"""
    go = tmp_path / "go"
    ready = [tmp_path / f"ready{i}" for i in range(2)]
    processes = [start_cli("python", "-c", script, go, ready[i]) for i in range(2)]
    wait_until(
        lambda: all(path.exists() for path in ready), "both processes to import", timeout=120
    )
    go.touch()  # both imported and waiting: they reach the lock within milliseconds of each other
    outputs = [p.communicate(timeout=120)[0] for p in processes]
    assert all(p.returncode == 0 for p in processes), outputs
    built = [out for out in outputs if "decoded cache built" in out]
    assert len(built) == 1, outputs
    assert sum("waiting for another process" in out for out in outputs) == 1, outputs
    hashes = {line for out in outputs for line in out.splitlines() if line.startswith("sha")}
    assert len(hashes) == 1, outputs
    sets, _ = decode_listing(find_pairs(data_dir), SIZE, "sketch_left", threads=2)
    import hashlib

    expected = hashlib.sha256(
        sets["all"].sketches.numpy().tobytes() + sets["all"].photos.numpy().tobytes()
    ).hexdigest()
    assert hashes == {f"sha {expected}"}


def make_bad_dataset(tmp_path):
    data_dir = write_dataset(tmp_path / "pairs", num_pairs=8, size=SIZE)
    (data_dir / "testB" / "2_B.png").write_text("not an image")
    return data_dir


def datamodule(data_dir, cache_dir, **settings):
    module = PairedSketchDataModule(
        data_dir=str(data_dir),
        image_size=SIZE,
        split="none",
        decode_threads=2,
        cache="disk",
        cache_dir=str(cache_dir),
        **settings,
    )
    module.setup("fit")
    return module


def test_pairs_skipped_when_the_cache_was_built_are_reported_again(tmp_path, monkeypatch, caplog):
    data_dir = make_bad_dataset(tmp_path)
    with caplog.at_level(logging.WARNING):
        first = datamodule(data_dir, tmp_path / "cache", on_bad_file="skip")
    assert len(first.sets["train"]) == 7
    assert "2_B.png" in caplog.text
    caplog.clear()
    forbid_decoding(monkeypatch)
    with caplog.at_level(logging.WARNING):
        second = datamodule(data_dir, tmp_path / "cache", on_bad_file="skip")
    assert len(second.sets["train"]) == 7
    assert "skipped" in caplog.text
    assert "2_B.png: not an image" in caplog.text
    with pytest.raises(UserError, match="2_B.png: not an image"):
        datamodule(data_dir, tmp_path / "cache", on_bad_file="error")
    manifest = json.loads(next((tmp_path / "cache").glob("*/manifest.json")).read_text())
    assert manifest["folders"]["all"]["bad_rows"] == [2]


def test_disk_and_memory_caches_train_bit_identically(synthetic_dir, tmp_path):
    from helpers import TINY, compose_config
    from sketch2photo.commands.train import train

    records = {}
    for cache in ("disk", "memory"):
        cfg = compose_config(
            tmp_path / cache,
            [
                *TINY,
                f"data.data_dir={synthetic_dir}",
                "data.synthetic_pairs=null",
                f"data.cache={cache}",
                "data.batch_size=4",
                "trainer.max_epochs=3",
            ],
        )
        train(cfg)
        records[cache] = json.loads((tmp_path / cache / "metrics.json").read_text())
    assert len(records["disk"]["history"]) == 3
    for key in ("metrics", "history"):
        assert records["disk"][key] == records["memory"][key], key


def test_an_unknown_cache_setting_names_the_key_and_the_choices(dataset, tmp_path):
    with pytest.raises(UserError, match="data.cache='ram' must be 'disk'.*or 'memory'"):
        PairedSketchDataModule(data_dir=str(dataset), cache="ram")
    with pytest.raises(UserError, match="data.cache=disk needs data.cache_dir"):
        PairedSketchDataModule(data_dir=str(dataset), cache="disk", cache_dir=None)


def test_a_batch_asks_the_kernel_for_exactly_its_rows_first(dataset, tmp_path, monkeypatch):
    sets, _ = open_cache(dataset, tmp_path / "cache")
    train = sets["all"].subset([1, 3, 5, 7])
    asked = []
    monkeypatch.setattr(
        disk_cache.MappedRows, "will_read", lambda self, rows: asked.append(rows.tolist())
    )
    batch = next(iter(torch.utils.data.DataLoader(train, batch_size=3)))
    assert asked == [[1, 3, 5], [1, 3, 5]]  # sketches' file, then photos'
    assert torch.equal(batch["photo"], train.photos[:3])


def test_too_little_free_space_is_said_before_decoding(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(disk_cache.shutil, "disk_usage", lambda path: SimpleNamespace(free=1000))
    forbid_decoding(monkeypatch)
    with pytest.raises(UserError, match=r"needs 0.0 GB at .* and only 0.0 GB are free"):
        open_cache(dataset, tmp_path / "cache")
