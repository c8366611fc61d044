"""Which file a `ckpt_path=` (or `init_from=`) means: a checkpoint file as given, or a run dir's
best checkpoint, else its last. No torch here: cli.py's prechecks answer a missing file before
torch loads."""

from __future__ import annotations

import logging
from pathlib import Path

from sketch2photo.errors import UserError

log = logging.getLogger("sketch2photo")

# What s2p-train writes, in the order a run dir is read: <run dir>/checkpoints/, or that folder
# given itself
RUN_CHECKPOINTS = ("checkpoints/best.ckpt", "checkpoints/last.ckpt", "best.ckpt", "last.ckpt")


def checkpoint_file(given: str | Path, key: str = "ckpt_path") -> Path:
    """The file `key`=`given` names. A folder: its best.ckpt, else its last.ckpt, with one log line
    saying which. One clear UserError when there is none."""
    path = Path(str(given))
    if path.is_dir():
        found = next((path / name for name in RUN_CHECKPOINTS if (path / name).is_file()), None)
        if found is None:
            raise UserError(
                f"{key}={given} is a folder without checkpoints/best.ckpt or checkpoints/last.ckpt; "
                f"give the run dir of an s2p-train run, or a checkpoint file."
            )
        if found.is_symlink() or found.parent.is_symlink():
            raise UserError(
                f"{key}={given}: {found} is reached through a link (to {found.resolve()}); "
                "refused, links in a run dir are not followed. Give the checkpoint file itself."
            )
        log.info("%s=%s: using %s", key, given, found)
        return found
    if not path.is_file():
        raise UserError(
            f"{key}={given} does not exist. Give a checkpoint file, or a run dir "
            "(its checkpoints/best.ckpt, else checkpoints/last.ckpt, is used)."
        )
    return path
