"""Where a command may write: never over one of its own inputs, never through a link that sits in
its output folder. Checked for every file a command will write, before it writes any."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from sketch2photo.errors import UserError


def check_writes(
    targets: Iterable[Path],
    inputs: dict[Path, str],
    folder: Path,
    key: str = "output",
    given: Path | None = None,
) -> None:
    """Refuse, naming both paths, a target that is one of `inputs` (path -> what it is, e.g. "the
    input"): the same path, or the same file through a link; and a target, or a folder between it
    and `folder`, that is a link. `key`=`given` (default: the folder) is what the user typed."""
    given = folder if given is None else given
    taken = {}
    for path, label in inputs.items():
        for identity in _identities(path):
            taken.setdefault(identity, (path, label))
    for target in targets:
        link = next((p for p in (target, *_between(target, folder)) if p.is_symlink()), None)
        if link is not None:
            raise UserError(
                f"{link} is a link to {os.readlink(link)}: refused, links in {key}={given} are "
                "not followed (it may point at a file you need). Remove it, or choose another "
                f"{key}=."
            )
        same = next((taken[i] for i in _identities(target) if i in taken), None)
        if same is not None:
            path, label = same
            writing = (
                ""
                if Path(os.path.abspath(target)) == Path(os.path.abspath(path))
                else (f" (writing {target})")
            )
            raise UserError(
                f"{key}={given} would overwrite {label} {path}{writing}; refused, nothing was "
                f"written. Choose another {key}=."
            )


def check_replaced(
    folders: Iterable[Path], inputs: Iterable[Path], key: str, given: Path | str
) -> None:
    """Refuse, naming both, to empty or replace a folder that holds one of the inputs."""
    resolved = {folder: Path(os.path.realpath(folder)) for folder in folders}
    for path in inputs:
        real = Path(os.path.realpath(path))
        for folder, where in resolved.items():
            if where in real.parents:
                raise UserError(
                    f"{key}={given} would replace {folder}, which holds the input {path}; "
                    f"refused, nothing was written. Choose another {key}=."
                )


def check_folder(folder: Path, key: str = "output") -> None:
    """An output folder must be one, or not exist yet (it is created)."""
    if folder.exists() and not folder.is_dir():
        raise UserError(
            f"{key}={folder} is a file; give a folder (it is created if it does not exist)."
        )


def _between(target: Path, folder: Path) -> list[Path]:
    """The folders from `target`'s parent up to, not including, `folder`."""
    folder = Path(os.path.abspath(folder))
    parents = []
    for parent in Path(os.path.abspath(target)).parents:
        if parent == folder or folder not in parent.parents:
            break
        parents.append(parent)
    return parents


def _identities(path: Path) -> list:
    """What makes two paths the same file: where they lead, and the file itself (a hard link)."""
    found: list = [Path(os.path.realpath(path))]
    try:
        stat = os.stat(path)
        found.append((stat.st_dev, stat.st_ino))
    except OSError:  # not written yet
        pass
    return found
