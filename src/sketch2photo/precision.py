"""trainer.precision=auto (the default): mixed precision where the hardware runs the reduced type
natively, else float32.

- CPUs with AMX (Intel Xeon from Sapphire Rapids on): bf16-mixed, which their tile units run at
  several times float32's rate.
- CUDA GPUs: bf16-mixed where bfloat16 runs natively (compute capability 8.0 on: Ampere, Hopper),
  16-mixed on the tensor cores of compute capability 7.x (Volta, Turing), else 32-true. (The
  vendors' figures: this project has had no GPU to measure on.)
- Anything else: 32-true. That includes Apple's MPS, and CPUs without AMX: those with AVX-512 BF16
  only (AMD Zen 4, for one) train faster with an explicit trainer.precision=bf16-mixed too (docs:
  Results, training speed), but auto leaves them at 32-true.

Any other value (32-true, bf16-mixed, 16-mixed, ...) is Lightning's and passes through.
experiment=seed and the cv_* experiments pin 32-true, so that their published figures hold.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

log = logging.getLogger(__name__)
AUTO = "auto"


def resolve_precision(precision: str | int, accelerator: str) -> str | int:
    """trainer.precision for Lightning: `auto` resolved for trainer.accelerator (auto | cpu | gpu |
    cuda | mps ...), anything else unchanged."""
    if str(precision) != AUTO:
        return precision
    device = _device(str(accelerator))
    if device == "cuda":
        major, _ = torch.cuda.get_device_capability()
        chosen = "bf16-mixed" if major >= 8 else "16-mixed" if major == 7 else "32-true"
        why = f"a CUDA GPU of compute capability {major}.x"
    elif device == "cpu" and cpu_has_amx():
        chosen, why = "bf16-mixed", "a CPU with AMX bf16 units"
    else:
        chosen = "32-true"
        why = "a CPU without AMX" if device == "cpu" else f"the {device} accelerator"
    log.info("trainer.precision=auto: %s on %s", chosen, why)
    return chosen


def _device(accelerator: str) -> str:
    """The device Lightning's accelerator setting lands on."""
    if accelerator in ("gpu", "cuda"):
        return "cuda"
    if accelerator == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    return accelerator


def cpu_has_amx(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU has AMX with bfloat16 and torch can use it: the kernel's amx_bf16 flag
    (Linux), and torch's own check that the tiles are enabled for this process where torch has
    one. torch.backends.cpu.get_cpu_capability() names vector widths (AVX2, AVX512) only."""
    try:
        flags = next(
            (line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")), ""
        )
    except OSError:  # not Linux
        return False
    if "amx_bf16" not in flags.split():
        return False
    tiles_enabled = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return tiles_enabled() if tiles_enabled is not None else True
