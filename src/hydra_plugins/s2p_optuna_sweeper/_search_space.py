"""The search space users type, read with Hydra's own override parser, as Optuna distributions.

    'model.lr=tag(log, interval(1e-4, 1e-2))'   FloatDistribution(1e-4, 1e-2, log=True)
    'model.lr=interval(1e-4, 1e-2)'             FloatDistribution(1e-4, 1e-2)
    'data.batch_size=choice(4, 8, 16)'          CategoricalDistribution((4, 8, 16))
    data.batch_size=4,8,16                      the same
    'data.batch_size=range(4, 17, 4)'           IntDistribution(4, 16, step=4): 4, 8, 12, 16, as in
                                                a grid sweep (the stop is left out)
    'model=glob(*)'                             the config group's options, as a choice
    data.batch_size=8                           fixed: every trial gets it

shuffle() changes nothing (the sampler picks the order). Hydra reads interval() bounds as floats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, Transformer
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)


@dataclass
class SearchSpace:
    distributions: dict[str, BaseDistribution] = field(default_factory=dict)
    fixed: list[str] = field(default_factory=list)  # overrides every trial gets, as typed
    # a choice's Optuna value (a list or dict choice is its text) -> its override text
    choice_texts: dict[str, dict[Any, str]] = field(default_factory=dict)

    def overrides(self, params: dict[str, Any]) -> list[str]:
        """A trial's parameters as the overrides of its job, then the fixed ones."""
        texts = [
            f"{name}={self.choice_texts[name][value] if name in self.choice_texts else Transformer.str(value)}"
            for name, value in params.items()
        ]
        return [*texts, *self.fixed]

    def grid(self) -> dict[str, list]:
        """For GridSampler: every dimension's values; only choice() and range() have a list."""
        grid = {}
        for name, distribution in self.distributions.items():
            if isinstance(distribution, CategoricalDistribution):
                grid[name] = list(distribution.choices)
            elif isinstance(distribution, IntDistribution) and not distribution.log:
                grid[name] = list(range(distribution.low, distribution.high + 1, distribution.step))
            else:
                raise ValueError(
                    f"hydra/sweeper/sampler=grid needs choice() or range() dimensions; {name} is "
                    f"{distribution}."
                )
        return grid


def search_space(overrides: list[str], config_loader=None) -> SearchSpace:
    """hydra.sweeper.params (as key=value) then the command line's overrides: a later key
    replaces an earlier one. `config_loader` lets glob() list a config group's options."""
    space = SearchSpace()
    parsed = OverridesParser.create(config_loader=config_loader).parse_overrides(overrides)
    latest = {override.key_or_group: override for override in parsed}
    for name, override in latest.items():
        if not override.is_sweep_override():
            space.fixed.append(override.input_line)
        elif override.is_interval_sweep():
            interval = override.value()
            space.distributions[name] = FloatDistribution(
                interval.start, interval.end, log="log" in interval.tags
            )
        elif override.is_range_sweep() and override.value().step > 0:
            space.distributions[name] = range_distribution(override)
        else:  # choice(), a,b,c, glob(), a descending range()
            elements = list(override.sweep_iterator())
            values = [Transformer.encode(element) for element in elements]
            space.distributions[name] = CategoricalDistribution(values)
            space.choice_texts[name] = {
                value: Transformer.str(element)
                for value, element in zip(values, elements, strict=True)
            }
    return space


def range_distribution(override: Override) -> BaseDistribution:
    sweep = override.value()
    values, step = list(sweep.range()), sweep.step  # in order, whether shuffle()d or not
    if not values:
        raise ValueError(f"{override.input_line}: the range holds no value")
    if all(isinstance(value, int) for value in (*values, step)):
        return IntDistribution(values[0], values[-1], step=step)
    return FloatDistribution(values[0], values[-1], step=step)
