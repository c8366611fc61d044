"""sketch2photo: paired sketch-to-photo colourisation with Lightning and Hydra."""

__version__ = "0.2.0"
