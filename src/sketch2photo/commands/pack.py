"""s2p-pack: write a dataset's decoded pairs as LitData optimized datasets, to train with
data=streaming.

    s2p-pack data.data_dir=<pairs> out=<folder or s3://bucket/prefix> [data.image_size=128 ...]

The pairs are found, checked, decoded and split by the same data module (and the same data.* keys)
as `s2p-train data=sketch2photo`, so a pack's train/val/test are the pairs that training on the
folder would use. Writes <out>/train, <out>/val, <out>/test (the stages the split has) and
<out>/pack.json (image size, pairs per stage, source and data settings).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path

from hydra.utils import instantiate
from litdata import optimize  # the extra `streaming`: cli.py's precheck says so when it is missing
from omegaconf import DictConfig, OmegaConf

from sketch2photo.checkpoints.read import DATA_SETTINGS
from sketch2photo.checks import PACK_INFO, USAGES
from sketch2photo.data.datamodules.base import STAGES
from sketch2photo.data.datamodules.streaming import is_remote, read_pack_info
from sketch2photo.errors import UserError, require_keys
from sketch2photo.outputs import check_replaced

log = logging.getLogger("sketch2photo.pack")


def pack(cfg: DictConfig) -> dict:
    """Write the pack; return what pack.json says about it."""
    require_keys(cfg, USAGES["pack"])
    out = str(cfg.out).rstrip("/")
    check_output(out, cfg.overwrite)
    started = time.perf_counter()
    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.setup()  # find, check (data.on_bad_file), decode and split, as training does
    if not is_remote(out):  # optimize(mode="overwrite") empties a stage folder first
        check_replaced(
            [Path(out, stage) for stage in STAGES],
            (
                file
                for pairs in datamodule.sets.values()
                for pair in pairs.pairs
                for file in (pair.sketch, pair.photo)
            ),
            "out",
            out,
        )
    folders, written = {}, {}
    for stage in STAGES:
        pairs = datamodule.sets.get(stage)
        if not pairs:
            continue
        if id(pairs) in written:  # cross-validation folds: test is the val fold; stored once
            folders[stage] = written[id(pairs)]
            continue
        optimize(
            fn=pairs.__getitem__,  # {"sketch": uint8 (1, H, W), "photo": uint8 (3, H, W), "index": i}
            inputs=list(range(len(pairs))),
            output_dir=f"{out}/{stage}",
            chunk_bytes=cfg.chunk_bytes,
            num_workers=1,  # one writer keeps the pairs in order; the decoding is done by then
            start_method="fork",  # the writer inherits the decoded pairs rather than a pickled copy
            mode="overwrite",  # check_output has refused a pack there; what is left is one that was interrupted
            verbose=False,
        )
        folders[stage] = written[id(pairs)] = stage
    settings = OmegaConf.to_container(cfg.data, resolve=True)
    info = {
        "image_size": datamodule.hparams.image_size,
        "source": str(datamodule.data_dir),
        "stages": {
            stage: {"folder": folder, "pairs": len(datamodule.sets[stage])}
            for stage, folder in folders.items()
        },
        "data": {
            key: settings[key] for key in DATA_SETTINGS if key in settings and key != "batch_size"
        },
    }
    write_pack_info(out, info)
    counts = ", ".join(f"{stage} {entry['pairs']}" for stage, entry in info["stages"].items())
    log.info(
        "packed %s (%s, %dpx) into %s in %.1fs\ntrain on it: s2p-train data=streaming data.input_dir=%s "
        "data.image_size=%d",
        info["source"],
        counts,
        info["image_size"],
        out,
        time.perf_counter() - started,
        out,
        info["image_size"],
    )
    return info


def check_output(out: str, overwrite: bool) -> None:
    """Refuse to replace a finished pack (one with pack.json) unless overwrite=true. A stage folder
    the new split lacks may stay behind; pack.json lists the stages that belong to the pack."""
    try:
        read_pack_info(out)
    except UserError:
        return  # nothing finished packed there
    if not overwrite:
        raise UserError(
            f"out={out} already holds a pack ({out}/{PACK_INFO}). Choose a new out= or add overwrite=true."
        )
    # From here until the new pack.json is written, out= holds no finished pack: an overwrite that
    # is killed half-way is refused by data=streaming rather than read as the old pack over new
    # chunks.
    if is_remote(out):
        from litdata.streaming.fs_provider import _get_fs_provider

        _get_fs_provider(f"{out}/{PACK_INFO}").delete_file_or_directory(f"{out}/{PACK_INFO}")
    else:
        Path(out, PACK_INFO).unlink()


def write_pack_info(out: str, info: dict) -> None:
    text = json.dumps(info, indent=2)
    if not is_remote(out):
        Path(out, PACK_INFO).write_text(text)
        return
    from litdata.streaming.fs_provider import (
        _get_fs_provider,  # the client optimize() uploaded with
    )

    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder) / PACK_INFO
        local.write_text(text)
        _get_fs_provider(out).upload_file(str(local), f"{out}/{PACK_INFO}")


def main(cfg: DictConfig) -> None:
    pack(cfg)
