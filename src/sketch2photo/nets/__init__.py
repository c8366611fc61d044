"""Networks. Each has ``size_multiple``: the input side must be a multiple of it.

NETWORKS is the registry of the classes a checkpoint may name as its `net._target_`; a network
added to the package is added here.
"""

from sketch2photo.nets.autoencoder import SeedAutoencoder
from sketch2photo.nets.unet import UNet

NETWORKS = {f"{network.__module__}.{network.__qualname__}": network for network in (SeedAutoencoder, UNet)}
