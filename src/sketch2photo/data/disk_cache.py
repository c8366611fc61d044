"""data.cache=disk: decode a dataset once into .npy files that every later run memory-maps.

    <paths.cache_dir>/<name>-<size>px-<layout>-<ab_order>-<hash of the dataset's path>/
        manifest.json           what was decoded: version, file fingerprint, shapes,
                                pairs that failed, each .npy's size and times when built
        <folder>_sketches.npy   uint8 (N, 1, H, W), row i = pair i of the folder's listing
        <folder>_photos.npy     uint8 (N, 3, H, W)

Every run, sweep job and DDP rank maps the same files, so the pages are shared through the OS page
cache: no process holds a private copy, and a dataset larger than RAM is read on demand.

A cache is reused while its fingerprint matches: every file's name, size and modification times (a
stat per file; hashing contents would read the whole dataset each run). Anything else rebuilds it:
a changed, added or removed file, a new PREPROCESSING_VERSION or Pillow, a cache file truncated,
with a damaged header, or written to after the build (its size and times, recorded in the
manifest; not a checksum, which would read the whole cache every run).

Builders take an exclusive lock (one per cache) and build into a temporary dir that is renamed into
place when complete, so two processes starting together never read a half-written cache: the second
waits, then reuses the first one's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import mmap
import os
import re
import shutil
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np
import PIL
import torch

from sketch2photo.data.decoded import CachedPairs, all_rows, decode_in_chunks
from sketch2photo.data.layouts import Listing
from sketch2photo.errors import UserError

log = logging.getLogger(__name__)

# Bump when decoding or resizing changes (data/images.py, data/decoded.py): older caches are
# rebuilt.
PREPROCESSING_VERSION = 1


def open_disk_cache(
    listing: Listing,
    data_dir: Path,
    size: int,
    ab_order: str,
    cache_dir: Path,
    threads: int | None = None,
) -> tuple[dict[str, CachedPairs], list[str]]:
    """Every folder of the listing, memory-mapped from the cache (built first if needed), and the
    problems of the pairs that failed to decode, as recorded when the cache was built."""
    key = cache_key(data_dir, size, listing.layout, ab_order)
    fingerprint = files_fingerprint(listing)
    where = Path(cache_dir) / key
    with build_lock(Path(cache_dir), key):
        manifest, why = read_manifest(where, fingerprint)
        if manifest is None:
            log.info("building the decoded cache %s%s", where, f" ({why})" if why else "")
            build(listing, where, size, ab_order, threads, fingerprint)
            manifest, why = read_manifest(where, fingerprint)
            if manifest is None:
                raise UserError(
                    f"the decoded cache just built at {where} does not read back ({why}); "
                    "check the disk, or set data.cache=memory."
                )
        # Mapped under the lock: a process rebuilding the cache later replaces the files, and the
        # mapped ones stay readable, unchanged, until this process exits.
        sets, problems = {}, []
        for folder, pairs in listing.splits.items():
            entry = manifest["folders"][folder]
            sketches, photos = (
                MappedRows(where / entry[kind]["file"], (len(pairs), channels, size, size))
                for kind, channels in (("sketches", 1), ("photos", 3))
            )
            sets[folder] = all_rows(
                sketches.tensor,
                photos.tensor,
                pairs,
                set(entry["bad_rows"]),
                about_to_read=partial(will_read, (sketches, photos)),
            )
            problems += entry["problems"]
    return sets, problems


def will_read(files: tuple[MappedRows, ...], rows: torch.Tensor) -> None:
    for file in files:
        file.will_read(rows)


class MappedRows:
    """A cache file's rows as a uint8 tensor over a private (copy-on-write, never written) mapping.

    The kernel's read-around for a page fault in a mapped file is the device's readahead (8 MB on
    this project's machine), so each 256 KB pair of a shuffled batch read 16-32x its size from disk
    once the cache no longer fit in RAM. The mapping is MADV_RANDOM instead, and the exact rows of a
    batch are asked for with MADV_WILLNEED before they are copied, all at once."""

    def __init__(self, path: Path, shape: tuple[int, ...]):
        with open(path, "rb") as file:  # read_manifest has checked its header
            np.lib.format.read_magic(file)
            np.lib.format.read_array_header_1_0(file)
            self.offset, self.row_bytes = file.tell(), math.prod(shape[1:])
            if math.prod(shape) == 0:
                self.mapping, self.tensor = None, torch.empty(shape, dtype=torch.uint8)
                return
            self.mapping = mmap.mmap(
                file.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE
            )
        self.mapping.madvise(mmap.MADV_RANDOM)
        array = np.frombuffer(
            self.mapping, dtype=np.uint8, count=math.prod(shape), offset=self.offset
        )
        self.tensor = torch.from_numpy(array.reshape(shape))

    def will_read(self, rows: torch.Tensor) -> None:
        for row in rows.tolist():
            start = self.offset + row * self.row_bytes
            aligned = start - start % mmap.PAGESIZE
            self.mapping.madvise(mmap.MADV_WILLNEED, aligned, start + self.row_bytes - aligned)


def cache_key(data_dir: Path, size: int, layout: str, ab_order: str) -> str:
    """A readable name that is unique per dataset path and decoding settings."""
    where = str(Path(data_dir).resolve())
    name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(where).name) or "data"
    order = (
        f"-{ab_order}" if layout == "aligned" else ""
    )  # which half is the sketch: aligned files only
    return f"{name}-{size}px-{layout}{order}-{hashlib.sha256(where.encode()).hexdigest()[:12]}"


def files_fingerprint(listing: Listing) -> str:
    """sha256 of every pair's files: name (the dataset's own path is in the key, however it was
    spelt), size, modification time and status change time (a chmod that makes a file readable
    changes only that), in listing order."""
    lines, folders = [], {}
    try:
        for split, pairs in listing.splits.items():
            lines.append(f"[{split}]")
            for pair in pairs:
                for folder, name in pair.files():
                    if (
                        folder not in folders
                    ):  # stat by name within an open folder: 25% faster than by path
                        folders[folder] = os.open(folder, os.O_RDONLY)
                    try:
                        stat = os.stat(name, dir_fd=folders[folder])
                        lines.append(
                            f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\0{stat.st_ctime_ns}"
                        )
                    except OSError:
                        lines.append(f"{name}\0missing")  # decoding will report it
    finally:
        for descriptor in folders.values():
            os.close(descriptor)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def read_manifest(where: Path, fingerprint: str) -> tuple[dict | None, str]:
    """(the manifest, "") when the cache at `where` is complete and current, else (None, why
    not)."""
    try:
        manifest = json.loads((where / "manifest.json").read_text())
    except FileNotFoundError:
        return None, ""
    except (OSError, ValueError) as error:
        return None, f"its manifest.json is unreadable: {error}"
    if not isinstance(manifest, dict):
        return None, "its manifest.json is malformed"
    if manifest.get("version") != PREPROCESSING_VERSION:
        return (
            None,
            f"built by preprocessing version {manifest.get('version')}, this is version {PREPROCESSING_VERSION}",
        )
    if (
        manifest.get("pillow") != PIL.__version__
    ):  # its decoders and resampling filters are the preprocessing too
        return (
            None,
            f"decoded with Pillow {manifest.get('pillow')}, this is Pillow {PIL.__version__}",
        )
    if manifest.get("fingerprint") != fingerprint:
        return None, "files in the dataset were added, removed or changed since it was built"
    try:
        for entry in manifest["folders"].values():
            for kind, channels in (("sketches", 1), ("photos", 3)):
                why = changed_since_built(
                    where / entry[kind]["file"],
                    entry[kind],
                    (entry["pairs"], channels, manifest["image_size"], manifest["image_size"]),
                )
                if why:
                    return None, why
    except (KeyError, TypeError, AttributeError):
        return None, "its manifest.json is malformed"
    return manifest, ""


def changed_since_built(path: Path, recorded: dict, shape: tuple[int, ...]) -> str:
    """Why the cache file at `path` is not the one the manifest `recorded` when it was built, or "".

    A stat and its header, not a checksum: hashing the files would read the whole cache every run.
    The status change time (ctime), which no write leaves as it was and no user can set back, is
    what catches a file rewritten in place with the same size and header."""
    stat = path.stat() if path.exists() else None
    if stat is None or stat.st_size != recorded["bytes"]:
        actual = stat.st_size if stat else 0
        return f"{path.name} is {actual} bytes, not {recorded['bytes']}: truncated or damaged"
    try:
        found = npy_header(path)
    except (OSError, ValueError, SyntaxError) as error:
        return f"{path.name} has a damaged header ({error})"
    if found != (shape, False, np.dtype(np.uint8)):
        return (
            f"{path.name} has a damaged header (it says {found[2]} {found[0]}, not uint8 {shape})"
        )
    if "ctime_ns" not in recorded:
        return "built by an earlier sketch2photo, which did not record when its files were written"
    if (stat.st_mtime_ns, stat.st_ctime_ns) != (recorded["mtime_ns"], recorded["ctime_ns"]):
        return f"{path.name} was changed after the cache was built"
    return ""


def npy_header(path: Path) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) from a .npy file's header; ValueError when it is not one."""
    with open(path, "rb") as file:
        version = np.lib.format.read_magic(file)
        if version != (1, 0):
            raise ValueError(f"format version {version}, not 1.0")
        return np.lib.format.read_array_header_1_0(file)


def build(
    listing: Listing, where: Path, size: int, ab_order: str, threads: int | None, fingerprint: str
) -> None:
    """Decode every folder into a temporary dir beside `where`, then rename it into place."""
    staging = where.with_name(f".{where.name}.building-{os.getpid()}")
    needed = (
        sum(len(pairs) for pairs in listing.splits.values()) * 4 * size * size
    )  # sketch 1 + photo 3 channels
    free = shutil.disk_usage(where.parent).free
    if needed > free:
        raise UserError(
            f"the decoded cache needs {needed / 1e9:.1f} GB at {where.parent} and only {free / 1e9:.1f} GB are free.\n"
            "Free some space, point paths.cache_dir at a disk with room for it, or set data.cache=memory."
        )
    started, total_bytes = time.perf_counter(), 0
    manifest = {
        "version": PREPROCESSING_VERSION,
        "pillow": PIL.__version__,
        "fingerprint": fingerprint,
        "image_size": size,
        "layout": listing.layout,
        "ab_order": ab_order,
        "folders": {},
    }
    try:
        staging.mkdir()
        for folder, pairs in listing.splits.items():
            entry = {"pairs": len(pairs), "bad_rows": [], "problems": []}
            files = {kind: staging / f"{folder}_{kind}.npy" for kind in ("sketches", "photos")}
            with (
                open(files["sketches"], "wb") as sketch_file,
                open(files["photos"], "wb") as photo_file,
            ):
                for out, channels in ((sketch_file, 1), (photo_file, 3)):
                    np.lib.format.write_array_header_1_0(
                        out,
                        {
                            "descr": "|u1",
                            "fortran_order": False,
                            "shape": (len(pairs), channels, size, size),
                        },
                    )
                for start, sketches, photos, errors in decode_in_chunks(
                    pairs, size, ab_order, threads, str(folder)
                ):
                    sketch_file.write(sketches.numpy().data)  # the tensor's own bytes, no copy
                    photo_file.write(photos.numpy().data)
                    for i, error in enumerate(errors):
                        if error is not None:
                            entry["bad_rows"].append(start + i)
                            entry["problems"].append(error)
                for out in (sketch_file, photo_file):
                    out.flush()
                    os.fsync(out.fileno())
            for kind, path in files.items():
                stat = path.stat()
                entry[kind] = {
                    "file": path.name,
                    "bytes": stat.st_size,
                    "mtime_ns": stat.st_mtime_ns,
                    "ctime_ns": stat.st_ctime_ns,
                }
                total_bytes += stat.st_size
            manifest["folders"][folder] = entry
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=1))
        replace_dir(staging, where)
    except OSError as error:
        raise UserError(
            f"could not write the decoded cache to {where} ({error}).\n"
            "Free some space or point paths.cache_dir at a writable disk with room for it, "
            "or set data.cache=memory to decode into RAM instead."
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    pairs = sum(len(p) for p in listing.splits.values())
    seconds = time.perf_counter() - started
    log.info(
        "decoded cache built: %d pairs in %.1f s (%.0f pairs/s), %.2f GB at %s",
        pairs,
        seconds,
        pairs / max(seconds, 1e-9),
        total_bytes / 1e9,
        where,
    )


def replace_dir(new: Path, where: Path) -> None:
    """Put `new` at `where`. A process that mapped the old files keeps reading them until it
    exits."""
    old = where.with_name(f".{where.name}.old-{os.getpid()}")
    if where.exists():
        where.rename(old)
    new.rename(where)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def build_lock(cache_dir: Path, key: str):
    """One process at a time checks and builds this cache; the others wait, then reuse it."""
    try:
        import fcntl  # POSIX only
    except ImportError:
        raise UserError(
            "data.cache=disk needs file locks this system lacks; set data.cache=memory."
        ) from None
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        lock = open(cache_dir / f".{key}.lock", "a")
    except OSError as error:
        raise UserError(
            f"paths.cache_dir={cache_dir} is not a writable folder ({error.strerror or error}).\n"
            "Set paths.cache_dir=<a writable folder> (or the S2P_CACHE_DIR environment variable), "
            "or data.cache=memory to decode into RAM instead."
        ) from None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info(
                "waiting for another process that is building the decoded cache %s", cache_dir / key
            )
            fcntl.flock(lock, fcntl.LOCK_EX)
        except OSError as error:  # some network file systems have no locks
            raise UserError(
                f"paths.cache_dir={cache_dir} cannot be locked ({error.strerror or error}): "
                "put it on a local disk, or set data.cache=memory."
            ) from None
        for leftover in cache_dir.glob(
            f".{key}.*-*"
        ):  # from a builder that was killed: we hold the lock
            shutil.rmtree(leftover, ignore_errors=True)
        yield
