"""Finding, decoding, caching and batching sketch/photo pairs."""
