"""Which pairs train, validate and test: index math only, no data.

`split_indices(n, ...)` returns, for a pool of n pairs, the sorted indices of each stage. The same
settings give the same split on every machine and run (a seeded torch permutation), whatever
`seed` the training uses.
"""

from __future__ import annotations

import torch

from sketch2photo.errors import UserError


def split_indices(
    n: int,
    split: str = "random",
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    folds: int | None = None,
    fold: int = 0,
    seed: int = 0,
    given: tuple[str, ...] = (),
) -> dict[str, list[int]]:
    """{stage: sorted indices into the pool} for the stages the pool supplies.

    given: the stages the dataset already has as folders (val, test); they are not split off.
    With folds, fold k of a seeded permutation is held out as validation, and as test when the
    dataset has no test folder ("test" then maps to the same indices as "val").
    """
    if split == "none":
        return {"train": list(range(n))}
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    if folds:
        if folds > n:
            raise UserError(
                f"data.folds={folds} is more than the {n} pairs available; use at most {n}."
            )
        held_out = sorted(order[fold::folds])
        train = sorted(set(range(n)) - set(held_out))
        return {"train": train, "val": held_out, **({} if "test" in given else {"test": held_out})}
    stages = {}
    for stage, fraction in (("val", val_fraction), ("test", test_fraction)):
        if stage not in given and fraction > 0:
            count = max(1, round(n * fraction))
            stages[stage], order = sorted(order[:count]), order[count:]
    if not order:
        raise UserError(
            f"data.val_fraction={val_fraction} and data.test_fraction={test_fraction} leave no training "
            f"pairs out of {n}; lower them or use data.split=none."
        )
    return {"train": sorted(order), **stages}
