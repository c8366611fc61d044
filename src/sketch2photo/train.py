"""`python -m sketch2photo.train ...`: the same as s2p-train, through the entry table in cli.py
(the command itself is commands/train.py)."""

if __name__ == "__main__":
    from sketch2photo.cli import train

    train()
