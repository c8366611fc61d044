"""Colour hints: a user says which colour goes where, with a few dots or strokes.

A hint map is (B, 4, H, W) at the model's size: RGB in [-1, 1] (0 where there is no hint), then a
mask that is 1 where there is one. Training and evaluation simulate it from the targets
(simulate.py, with the evaluation's placements in protocol.py), users give it as files (files.py),
and the network spreads it over the regions of the sketch (spread.py, nets/conditioning.py).
"""

import torch
from torch import Tensor

HINT_CHANNELS = 4


def with_hints(sketches: Tensor, hints: Tensor) -> Tensor:
    """(B, 3, H, W) sketches with their (B, 4, H, W) hint maps painted on top, all in [-1, 1]: how
    sample grids, s2p-eval's grid and s2p-predict's previews show the hints."""
    return torch.where(hints[:, 3:] > 0, hints[:, :3], sketches)
