"""`python -m sketch2photo.make_pairs ...`: the same as s2p-make-pairs, through the entry table in
cli.py (the command itself is commands/make_pairs.py)."""

if __name__ == "__main__":
    from sketch2photo.cli import make_pairs

    make_pairs()
