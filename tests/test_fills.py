"""The fast region fills give exactly what the fills one pixel a step gave (tests/frozen_fills.py,
as of commit ffbfcd8): the background, the regions' labels, spread hints, simulated hints and the
conditioned network's output, in float32, compared with torch.equal."""

import pytest
import torch

import frozen_fills as frozen
from helpers import outlined_sketch, ring_sketch, serpentine_sketch
from sketch2photo.data.augment import PairedAugment
from sketch2photo.data.corpora.synthetic import generate_pairs
from sketch2photo.data.datamodules.pairs import PairedSketchDataModule
from sketch2photo.data.images import sketch_to_input, to_model_range
from sketch2photo.hints import simulate
from sketch2photo.hints.protocol import HintDraws
from sketch2photo.hints.simulate import HintSampler, paint_patches, region_centres
from sketch2photo.hints.spread import spread_hints
from sketch2photo.nets import conditioning
from sketch2photo.nets.conditioning import ConditionedGenerator
from sketch2photo.regions import (
    background_and_regions,
    background_mask,
    label_components,
    regions_of,
)


def synthetic(count: int, size: int, seed: int, colours: str = "by_shape", augment: bool = False):
    sketches, photos = generate_pairs(count, size=size, seed=seed, colours=colours)
    sketches, photos = sketch_to_input(sketches), to_model_range(photos)
    if augment:  # rotated and shifted: white borders brought in, outlines cut by the frame
        torch.manual_seed(seed)
        sketches, photos = PairedAugment(size, degrees=20, translate=0.1)(sketches, photos)
    return sketches, photos


def random_lines(count: int, size: int, density: float, seed: int) -> torch.Tensor:
    """Random line art: isolated dots at low density, a maze of pockets and corridors at high."""
    generator = torch.Generator().manual_seed(seed)
    lines = torch.rand(count, 1, size, size, generator=generator) < density
    return torch.where(lines, -1.0, 1.0).expand(-1, 3, -1, -1)


def sketches():
    """(name, (B, 3, H, W) sketches): the shapes the fills meet, drawn and made up."""
    ring_split = ring_sketch()
    ring_split[..., 9:23, 15] = -1
    yield "synthetic 64 px", synthetic(8, 64, seed=1)[0]
    yield "synthetic 128 px", synthetic(3, 128, seed=2, colours="random")[0]
    yield "synthetic, rotated", synthetic(6, 64, seed=3, augment=True)[0]
    yield "rings", torch.cat([ring_sketch(), ring_split, outlined_sketch(), serpentine_sketch()])
    yield "gap in an outline", outlined_sketch(gap=True)
    for density in (0.05, 0.3, 0.45, 0.6):
        yield f"random lines {density}", random_lines(4, 48, density, seed=int(density * 100))
    yield "not square", random_lines(3, 40, 0.35, seed=7)[..., :24, :]
    yield "no paper", -torch.ones(2, 3, 16, 16)
    yield "all paper", torch.ones(2, 3, 16, 16)


SKETCHES = dict(sketches())


@pytest.mark.parametrize("name", SKETCHES)
def test_background_and_labels_are_the_fills_one_pixel_a_step(name):
    sketch = SKETCHES[name]
    for threshold in (0.5, 0.9):
        background = background_mask(sketch, threshold)
        assert background.dtype == torch.bool
        assert torch.equal(background, frozen.background_mask(sketch, threshold))
    regions = regions_of(sketch, background, 0.9)
    labels = frozen.labels_by_growth(regions)
    assert torch.equal(label_components(regions).long(), labels)
    also_background, labelled_regions = background_and_regions(sketch, 0.9)
    assert torch.equal(also_background, background)
    assert torch.equal(labelled_regions.long(), labels)


def hint_maps(sketch: torch.Tensor, seed: int):
    """Hint maps of every kind for (B, 3, H, W) sketches: simulated (training counts, evaluation
    counts, regions placement, kept to regions), flat colours (one colour per image: every region
    filled at once), two colours side by side in one region, hints on the lines, random dots."""
    generator = torch.Generator().manual_seed(seed)
    batch, _, height, width = sketch.shape
    photos = torch.rand(batch, 3, height, width, generator=generator) * 2 - 1
    yield HintSampler().draw(photos, sketch, generator)
    yield HintSampler(within_region=True).draw(photos, sketch, generator, count=10)
    yield HintSampler().draw(photos, sketch, generator, count=3, placement="regions")
    flat = torch.rand(batch, 3, 1, 1, generator=generator).expand(-1, -1, height, width) * 2 - 1
    yield HintSampler().draw(flat, sketch, generator, count=5)
    two = torch.where(torch.arange(width) < width // 2, flat, -flat)
    yield HintSampler(min_size=1, max_size=2).draw(two, sketch, generator, count=8)
    dots = torch.rand(batch, 1, height, width, generator=generator) < 0.01
    on_lines = dots & (sketch[:, :1] < 0)
    for where in (dots, on_lines):
        yield torch.cat([torch.where(where, photos, 0.0), where.float()], dim=1)


@pytest.mark.parametrize("name", SKETCHES)
def test_spread_hints_are_the_growth_one_pixel_a_step(name):
    sketch = SKETCHES[name]
    background, labels = background_and_regions(sketch, 0.9)
    regions = regions_of(sketch, background, 0.9)
    for number, hints in enumerate(hint_maps(sketch, seed=len(name))):
        expected = frozen.spread_hints(hints, regions)
        assert torch.equal(spread_hints(hints, regions), expected), number
        assert torch.equal(spread_hints(hints, labels), expected), number


def test_the_spread_tests_meet_regions_of_one_colour_and_of_several():
    """Both ways through spread_hints: a region whose hints share one colour (filled at once) and
    one whose hints differ (grown one pixel a step)."""
    seen = {"one colour, several hint pixels": 0, "several colours": 0}
    for sketch in (SKETCHES["synthetic 64 px"], SKETCHES["random lines 0.3"]):
        regions = regions_of(sketch, background_mask(sketch), 0.9)
        labels = label_components(regions)
        for hints in hint_maps(sketch, seed=0):
            for image in range(len(sketch)):
                hinted = (hints[image, 3] > 0) & regions[image, 0]
                for label in labels[image, 0][hinted].unique():
                    colours = hints[image, :3, (labels[image, 0] == label) & hinted].T.unique(dim=0)
                    pixels = ((labels[image, 0] == label) & hinted).sum()
                    if len(colours) > 1:
                        seen["several colours"] += 1
                    elif pixels > 1:
                        seen["one colour, several hint pixels"] += 1
    assert min(seen.values()) >= 20, seen


def test_a_nan_colour_is_grown_as_before():
    sketch = ring_sketch()
    hints = torch.zeros(1, 4, 32, 32)
    hints[0, :, 12, 12] = torch.tensor([float("nan"), 0.0, 0.0, 1.0])
    hints[0, :, 20, 20] = torch.tensor([0.5, 0.0, 0.0, 1.0])
    regions = regions_of(sketch, background_mask(sketch), 0.9)
    spread, reference = spread_hints(hints, regions), frozen.spread_hints(hints, regions)
    assert torch.equal(spread.isnan(), reference.isnan())
    assert torch.equal(spread.nan_to_num(), reference.nan_to_num())


@pytest.mark.parametrize("within_region", [False, True])
def test_patches_and_region_centres_are_as_before(within_region):
    generator = torch.Generator().manual_seed(3)
    sketch, photos = synthetic(6, 64, seed=4)
    regions = regions_of(sketch, background_mask(sketch), 0.9)
    rows, cols = torch.randint(0, 64, (2, 6, 32), generator=generator)
    sizes = torch.randint(1, 10, (6, 32), generator=generator)
    counts = torch.tensor([0, 1, 5, 17, 32, 32])
    paper = regions if within_region else None
    expected = frozen.paint_patches(photos, rows, cols, sizes, counts, paper=paper)
    assert torch.equal(paint_patches(photos, rows, cols, sizes, counts, paper=paper), expected)
    assert torch.equal(paint_patches(photos, rows, cols, sizes, counts, paper, largest=9), expected)
    for count in (1, 4, 40):
        assert torch.equal(region_centres(regions, count), frozen.region_centres(regions, count))


@pytest.fixture
def frozen_fills(monkeypatch):
    """Puts the frozen fills where the sampler and the network look them up."""

    def use() -> None:
        monkeypatch.setattr(simulate, "background_mask", frozen.background_mask)
        monkeypatch.setattr(conditioning, "background_and_regions", frozen.background_and_regions)
        monkeypatch.setattr(
            simulate,
            "paint_patches",
            lambda *args, largest=None, **kwargs: frozen.paint_patches(*args, **kwargs),
        )
        monkeypatch.setattr(simulate, "region_centres", frozen.region_centres)
        monkeypatch.setattr(conditioning, "spread_hints", frozen.spread_hints)

    return use


def test_simulated_hints_and_the_hint_network_are_as_before(frozen_fills):
    """End to end in float32: training and evaluation draws, and cv_unet_hints' network (background
    in and painted white, spread hints, bounded correction), forward and gradients."""
    sketch, photos = synthetic(8, 64, seed=5, augment=True)
    torch.manual_seed(0)
    net = ConditionedGenerator(
        depth=3,
        width=8,
        background_input=True,
        background_fill=True,
        hint_input=True,
        hint_residual=True,
        hint_correction=0.25,
    )
    draws = HintDraws.from_settings({"enabled": True})
    evaluation = HintDraws.for_evaluation(10, "regions", seed=1)

    def run() -> list[torch.Tensor]:
        hints, targets = draws.training(sketch, photos, rank=0, batch=3)
        net.zero_grad()
        output = net(sketch, hints)
        ((output - targets) ** 2).mean().backward()
        grads = [p.grad.clone() for p in net.parameters()]
        return [hints, evaluation.evaluation(sketch, photos, torch.arange(8)), output, *grads]

    fast = run()
    frozen_fills()
    for new, old in zip(fast, run(), strict=True):
        assert torch.equal(new, old)


def test_the_real_sketches_fill_as_before(real_data_dir):
    datamodule = PairedSketchDataModule(data_dir=str(real_data_dir), image_size=128, split="none")
    datamodule.setup()
    sketch = sketch_to_input(datamodule.sets["train"].sketches[:8])
    photos = to_model_range(datamodule.sets["train"].photos[:8])
    background = background_mask(sketch)
    assert torch.equal(background, frozen.background_mask(sketch))
    regions = regions_of(sketch, background, 0.9)
    hints = HintSampler().draw(photos, sketch, torch.Generator().manual_seed(0), count=10)
    assert torch.equal(spread_hints(hints, regions), frozen.spread_hints(hints, regions))
