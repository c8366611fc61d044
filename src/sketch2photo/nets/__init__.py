"""Networks. Each has ``size_multiple``: the input side must be a multiple of it."""
