"""Helpers shared by the tests: the tiny training settings, composing configs as the CLI does,
running the installed commands (to the end, or started in the background), and a tiny trained
checkpoint."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from sketch2photo.config import CONFIG_DIR

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
REAL_DATA = ROOT.parent / "shared" / "data" / "sketch2photo"
BIN = Path(sys.executable).parent
T = TypeVar("T")

# Small and quick: every in-process fit in the suite uses these unless a test says otherwise.
TINY = [
    "data.image_size=32",
    "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "callbacks.progress_bar=null",
    "callbacks.sample_grids.num_samples=4",
    "callbacks.sample_grids.every_n_epochs=1",
]


def compose_config(run_dir: Path, overrides: list[str], config_name: str = "train") -> DictConfig:
    """Compose like the CLI does, with the Hydra runtime pointed at run_dir."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg


# Only tests marked slow start processes: `make test-fast` runs the others (conftest.py sets this).
subprocesses_allowed = True


def _command(program: str | Path, env: dict | None) -> tuple[str, dict]:
    """An installed console script (s2p-*, tensorboard, python) or a path; the environment with
    `env` on top, where None removes a variable. Warnings are off unless `env` turns them on."""
    assert subprocesses_allowed, (
        "this test starts a process: mark it @pytest.mark.slow (make test-fast skips those)"
    )
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    return str(BIN / program), {
        name: value for name, value in full_env.items() if value is not None
    }


def run_cli(
    program: str | Path,
    *args: str,
    cwd: Path | None = None,
    timeout: float = 300,
    env: dict | None = None,
) -> subprocess.CompletedProcess:
    """Run a command to the end and capture its output."""
    executable, full_env = _command(program, env)
    return subprocess.run(
        [executable, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def start_cli(
    program: str | Path,
    *args: str,
    cwd: Path | None = None,
    env: dict | None = None,
    stdout=subprocess.PIPE,
) -> subprocess.Popen:
    """Start a command without waiting, in a session of its own (killpg stops it with its children),
    with Python's default Ctrl-C handler (a shell's background job would ignore SIGINT) and
    faulthandler on: a run that hangs prints every thread's stack on SIGABRT."""
    executable, full_env = _command(program, {"PYTHONFAULTHANDLER": "1", **(env or {})})
    return subprocess.Popen(
        [executable, *map(str, args)],
        cwd=cwd,
        env=full_env,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def run_on_a_terminal(
    program: str | Path, *args: str, cwd: Path | None = None, timeout: float = 300
) -> tuple[int, str]:
    """Run a command to the end with a pseudo-terminal as its stdout and stderr, as a user at a
    terminal does; (exit status, everything it wrote)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # else 0 columns
    process = start_cli(program, *args, cwd=cwd, stdout=follower)
    os.close(follower)
    chunks = []
    while select.select([leader], [], [], timeout)[0]:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the command has ended and closed its end of the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return process.wait(timeout=timeout), b"".join(chunks).decode(errors="replace")


def wait_until(
    ready: Callable[[], T],
    what: str,
    timeout: float = 120,
    process: subprocess.Popen | None = None,
    interval: float = 0.05,
) -> T:
    """Poll ready() until it returns something true, and return that. Fails naming `what` after
    `timeout` s, or as soon as `process` ends (with its last output). An OSError (a server not
    listening yet) counts as not ready."""
    deadline, value = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            output = process.stdout.read()[-3000:] if process.stdout else ""
            raise AssertionError(
                f"the process ended (status {process.returncode}) before {what}:\n{output}"
            )
        try:
            value = ready()
            if value:
                return value
        except OSError:
            pass
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last seen: {value!r}")


def two_job_sweep(cwd: Path, data_dir: Path) -> Path:
    """`s2p-train -m` over model.lr=1e-3,3e-3 on the tiny settings; the sweep dir (cwd/sweep)."""
    result = run_cli(
        "s2p-train",
        "-m",
        *TINY,
        f"data.data_dir={data_dir}",
        "model.lr=1e-3,3e-3",
        "hydra.sweep.dir=sweep",
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd / "sweep"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tiny_unet_checkpoint(run: Path, data_dir: Path, *overrides: str) -> Path:
    """A 32 px U-Net (depth 2, width 8: not the default model) trained for 1 epoch in `run`."""
    from sketch2photo.commands.train import train

    unet = [
        "trainer.max_epochs=1",
        "model=unet",
        "model.net.depth=2",
        "model.net.width=8",
        *overrides,
    ]
    train(
        compose_config(
            run, [*TINY, f"data.data_dir={data_dir}", "data.synthetic_pairs=null", *unet]
        )
    )
    return run / "checkpoints" / "last.ckpt"


class PlainSGD(torch.optim.SGD):
    """An optimizer outside torch.optim, as a user's own config may name one."""


def write_sparse_png(
    path: Path,
    width: int,
    height: int,
    dots: dict[tuple[int, int], tuple[int, int, int, int]] | None = None,
    header_only: bool = False,
) -> Path:
    """An RGBA PNG, transparent but for `dots` ((x, y): RGBA), written a row at a time: an
    8000 x 8000 hint layer of a few hundred KB, without its 256 MB in this process. header_only:
    the header of such an image and no pixels, as a file that claims a size it does not hold."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    by_row: dict[int, list[tuple[int, tuple[int, int, int, int]]]] = {}
    for (x, y), rgba in (dots or {}).items():
        by_row.setdefault(y, []).append((x, rgba))
    blank = bytes(1 + 4 * width)  # filter type 0, then transparent black pixels
    compressor, data = zlib.compressobj(6), bytearray()
    for y in range(0 if header_only else height):
        row = blank
        if y in by_row:
            row = bytearray(blank)
            for x, rgba in by_row[y]:
                row[1 + 4 * x : 5 + 4 * x] = bytes(rgba)
        data += compressor.compress(bytes(row))
    data += compressor.flush()
    with open(path, "wb") as file:
        file.write(b"\x89PNG\r\n\x1a\n")
        file.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)))
        if not header_only:
            file.write(chunk(b"IDAT", bytes(data)))
        file.write(chunk(b"IEND", b""))
    return path


# Line art the fills are tested on (regions.py, hints/spread.py)
def ring_sketch(size: int = 32) -> torch.Tensor:
    """(1, 3, size, size) in [-1, 1]: white paper with a closed black square outline, 8..23."""
    sketch = torch.ones(1, 3, size, size)
    sketch[..., 8, 8:24] = sketch[..., 23, 8:24] = sketch[..., 8:24, 8] = sketch[..., 8:24, 23] = -1
    return sketch


def outlined_sketch(gap: bool = False) -> torch.Tensor:
    """A 32 px white sketch in [-1, 1]: a closed square outline (optionally with a one-pixel gap)
    and a diamond of one-pixel diagonal steps, which only 8-connected paths could cross."""
    sketch = torch.ones(1, 3, 32, 32)
    sketch[..., 4, 4:15] = sketch[..., 14, 4:15] = sketch[..., 4:15, 4] = sketch[..., 4:15, 14] = -1
    if gap:
        sketch[..., 4, 9] = 1
    for step in range(7):  # diamond around (24, 24)
        for row, col in (
            (18 + step, 24 + step),
            (18 + step, 24 - step),
            (30 - step, 24 + step),
            (30 - step, 24 - step),
        ):
            sketch[..., row, col] = -1
    return sketch


def serpentine_sketch() -> torch.Tensor:
    """A box whose only opening leads into a corridor that doubles back: the fill needs 55 steps
    (of the 64 a trace takes at 32 px) to reach its far end, more than a trace that stops early."""
    sketch = torch.ones(1, 3, 32, 32)
    sketch[..., 2, 2:30] = sketch[..., 29, 2:30] = sketch[..., 2:30, 2] = sketch[..., 2:30, 29] = -1
    sketch[..., 2, 4] = 1  # the opening, top left
    sketch[..., 2:17, 6] = -1  # the wall the corridor turns around, at its bottom
    return sketch
