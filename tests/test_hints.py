"""Colour hints: simulated ones follow Zhang et al.'s recipe and stay inside the figure, spreading
stops at lines and the background, resume continues the same draws, and s2p-eval sweeps counts."""

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from helpers import compose_config, ring_sketch, run_cli
from sketch2photo.commands.evaluate import evaluate
from sketch2photo.data.corpora.synthetic import generate_pairs
from sketch2photo.data.images import sketch_to_input, to_model_range
from sketch2photo.errors import UserError
from sketch2photo.hints.simulate import HintSampler, paint_patches, region_centres
from sketch2photo.hints.spread import spread_hints
from sketch2photo.nets.conditioning import ConditionedGenerator
from sketch2photo.regions import background_and_regions, background_mask, regions_of


def synthetic_batch(count: int = 8, size: int = 64, colours: str = "by_shape"):
    sketches, photos = generate_pairs(count, size=size, seed=1, colours=colours)
    return sketch_to_input(sketches), to_model_range(photos)


def test_counts_are_geometric_with_mean_seven_and_one_image_in_eight_without():
    counts = (
        HintSampler(max_hints=255)
        .counts(40_000, torch.Generator().manual_seed(0), torch.device("cpu"))
        .float()
    )
    assert counts.mean().item() == pytest.approx(7.0, abs=0.25)
    assert (counts == 0).float().mean().item() == pytest.approx(0.125, abs=0.01)
    assert (
        HintSampler(max_hints=5)
        .counts(1000, torch.Generator().manual_seed(0), torch.device("cpu"))
        .max()
        == 5
    )


def test_hints_lie_inside_the_figure_with_the_targets_colour():
    sketches, photos = synthetic_batch()
    regions = regions_of(sketches, background_mask(sketches), 0.9)
    one_pixel = HintSampler(min_size=1, max_size=1).draw(
        photos, sketches, torch.Generator().manual_seed(0), count=20
    )
    hinted = one_pixel[:, 3:] > 0
    assert hinted.sum() > 8 * 15  # (some land on the same pixel)
    assert not (hinted & ~regions).any()  # every 1 px hint is on the figure's paper
    assert torch.allclose(
        one_pixel[:, :3][hinted.expand(-1, 3, -1, -1)], photos[hinted.expand(-1, 3, -1, -1)]
    )
    patches = HintSampler(min_size=1, max_size=9).draw(
        photos, sketches, torch.Generator().manual_seed(0), count=20
    )
    assert (patches[:, 3:] > 0).sum() > hinted.sum() * 3  # patches of 1..9 px cover more


def test_a_patch_is_the_mean_of_the_target_under_it():
    photos = torch.rand(1, 3, 16, 16) * 2 - 1
    hints = paint_patches(
        photos, torch.tensor([[5]]), torch.tensor([[7]]), torch.tensor([[3]]), torch.tensor([1])
    )
    assert hints[0, 3].sum() == 9 and hints[0, 3, 4:7, 6:9].all()
    expected = photos[0, :, 4:7, 6:9].mean((1, 2))
    assert torch.allclose(hints[0, :3, 5, 7], expected, atol=1e-6)
    at_edge = paint_patches(
        photos, torch.tensor([[0]]), torch.tensor([[0]]), torch.tensor([[5]]), torch.tensor([1])
    )
    assert at_edge[0, 3].sum() == 9  # clipped to the image: 3 x 3 of the 5 x 5
    assert torch.allclose(at_edge[0, :3, 0, 0], photos[0, :, :3, :3].mean((1, 2)), atol=1e-6)


def test_a_patch_within_its_region_takes_that_regions_colour_not_the_line_or_the_next_region():
    """A 9 px patch centred 2 px left of a line: as a square it mixes red, the black line and blue;
    kept to its region it covers the red paper it reaches and is red."""
    sketch = torch.ones(1, 3, 16, 16)
    sketch[..., :, 8] = -1  # a vertical line at column 8: paper left (red) and right (blue)
    photos = torch.zeros(1, 3, 16, 16)
    photos[:, 0, :, :8], photos[:, 2, :, 9:], photos[:, :, :, 8] = 1, 1, -1
    paper = sketch[:, :1] > 0.8
    where = dict(
        rows=torch.tensor([[7]]),
        cols=torch.tensor([[6]]),
        sizes=torch.tensor([[9]]),
        counts=torch.tensor([1]),
    )
    square = paint_patches(photos, **where)
    assert square[0, 3].sum() == 81 and square[0, 2, 7, 6] > 0  # blue leaks in
    kept = paint_patches(photos, **where, paper=paper)
    covered = kept[0, 3] > 0
    assert (
        covered.sum() == 9 * 6 and covered[3:12, 2:8].all()
    )  # columns 2..7 only: not the line, not across it
    assert torch.equal(kept[0, :3, covered], torch.tensor([1.0, 0.0, 0.0])[:, None].expand(-1, 54))
    off_paper = paint_patches(photos, **{**where, "cols": torch.tensor([[8]])}, paper=paper)
    assert off_paper[0, 3].sum() == 81  # a centre on the line keeps its square
    figure = (
        ring_sketch()
    )  # a closed outline, 8..23, split by a line at column 16: red left, blue right
    figure[..., 8:24, 16] = -1
    photos = torch.where(figure < 0, -1.0, torch.tensor([1.0, 1.0, 1.0])[:, None, None])
    photos[:, 1:, 9:23, 9:16] = photos[:, :2, 9:23, 17:23] = 0
    drawn = HintSampler(within_region=True).draw(
        photos, figure, torch.Generator().manual_seed(0), count=30
    )
    hinted = drawn[:, 3:] > 0
    assert hinted.sum() > 30 and not (hinted & (figure[:, :1] < 0)).any()  # no patch paints a line
    colours = drawn[:, :3].permute(0, 2, 3, 1)[hinted[:, 0]]
    assert (
        (colours == torch.tensor([1.0, 0, 0])).all(1)
        | (colours == torch.tensor([0, 0, 1.0])).all(1)
    ).all()


def test_a_spread_hint_fills_its_region_and_stops_at_the_line_and_the_background():
    sketch = ring_sketch()
    hints = torch.zeros(1, 4, 32, 32)
    hints[0, :, 15, 15] = torch.tensor([0.5, -0.5, 0.0, 1.0])
    regions = regions_of(sketch, background_mask(sketch), 0.9)
    spread = spread_hints(hints, regions)
    inside = torch.zeros(32, 32, dtype=torch.bool)
    inside[9:23, 9:23] = True
    assert torch.equal(spread[0, 3] > 0, inside)
    assert torch.allclose(spread[0, :3, inside], torch.tensor([0.5, -0.5, 0.0])[:, None])
    traced = torch.jit.trace(lambda h, r: spread_hints(h, r), (hints, regions))
    assert torch.equal(
        traced(hints, regions), spread
    )  # the exported graph's fixed steps give the same map


def test_region_centres_are_inside_the_largest_regions_first():
    sketch = ring_sketch()
    sketch[..., 9:23, 15] = -1  # split the square in two: 14x6 on the left, 14x7 on the right
    regions = regions_of(sketch, background_mask(sketch), 0.9)
    centres = region_centres(regions, 3)[0].tolist()
    assert centres[2] == -1  # only two regions
    rows, cols = [c // 32 for c in centres[:2]], [c % 32 for c in centres[:2]]
    assert 16 <= cols[0] <= 22 and 9 <= cols[1] <= 14  # the larger (right) one first
    assert all(9 <= row <= 22 for row in rows)


def test_hue_jitter_turns_colours_and_keeps_white():
    _, photos = synthetic_batch(4)
    turned = HintSampler(hue_jitter=1.0).jitter_hue(photos, torch.Generator().manual_seed(0))
    white = (photos > 0.99).all(dim=1)
    assert torch.allclose(
        turned.permute(0, 2, 3, 1)[white], photos.permute(0, 2, 3, 1)[white], atol=1e-3
    )
    assert (turned - photos).abs().amax() > 0.3
    assert torch.equal(HintSampler(hue_jitter=0.0).jitter_hue(photos, torch.Generator()), photos)


def test_random_synthetic_colours_keep_the_shapes():
    by_shape, random = (
        generate_pairs(6, size=48, seed=2),
        generate_pairs(6, size=48, seed=2, colours="random"),
    )
    paper = lambda photos: (photos > 250).all(dim=1)  # noqa: E731 - where no shape is
    assert (paper(by_shape[1]) == paper(random[1])).float().mean() > 0.99
    shapes = ~paper(by_shape[1])
    assert (by_shape[1].float() - random[1].float()).abs().permute(0, 2, 3, 1)[shapes].mean() > 40


def test_hint_input_alone_turns_hint_training_on(tmp_path, synthetic_dir):
    cfg = compose_config(tmp_path, ["model=unet", "model.net.hint_input=true"])
    assert cfg.data.hints.enabled is True
    assert compose_config(tmp_path, ["model=unet"]).data.hints.enabled is False
    assert (
        compose_config(tmp_path, []).data.hints.enabled is False
    )  # the autoencoder has no such key


def test_the_unet_uses_hints_and_none_means_no_hints():
    torch.manual_seed(0)
    net = ConditionedGenerator(depth=2, width=8, hint_input=True).eval()
    sketch = ring_sketch()
    hints = torch.zeros(1, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(sketch), net(sketch, hints))
        hints[0, :, 15, 15] = torch.tensor([1.0, -1.0, -1.0, 1.0])
        assert not torch.allclose(net(sketch), net(sketch, hints))
        residual = ConditionedGenerator(
            depth=2, width=8, hint_input=True, hint_residual=True
        ).eval()
        redder = residual(sketch, hints)[0, 0, 12:20, 12:20] - residual(sketch)[0, 0, 12:20, 12:20]
        assert redder.mean() > 0.5  # the spread hint is the base the network corrects


def test_training_hints_follow_seed_rank_and_batch_and_evaluation_hints_follow_the_image(
    train_config,
):
    from hydra.utils import instantiate

    datamodule = instantiate(train_config("model=unet", "model.net.hint_input=true").data)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    sketches, photos, index = (
        sketch_to_input(batch["sketch"]),
        to_model_range(batch["photo"]),
        batch["index"],
    )

    draws = (
        datamodule.hints
    )  # hints/protocol.py's HintDraws, which the batches get their hints from

    def training_draw(rank: int, batches_done: int) -> torch.Tensor:
        return draws.training(sketches, photos, rank, batches_done)[0]

    assert torch.equal(
        training_draw(0, 5), training_draw(0, 5)
    )  # a resumed run's batch 5 is batch 5
    assert not torch.equal(training_draw(0, 5), training_draw(0, 6))
    assert not torch.equal(training_draw(0, 5), training_draw(1, 5))  # each DDP rank its own
    whole = draws.evaluation(sketches, photos, index)
    halves = torch.cat(
        [
            draws.evaluation(sketches[:2], photos[:2], index[:2]),
            draws.evaluation(sketches[2:], photos[2:], index[2:]),
        ]
    )
    assert torch.equal(whole, halves)  # an image's evaluation hints do not depend on its batch


def test_a_hint_run_resumed_from_a_checkpoint_ends_as_an_uninterrupted_one(train_config, tmp_path):
    from sketch2photo.commands.train import train

    hints = [
        "model=unet",
        "model.net.depth=2",
        "model.net.width=8",
        "model.net.hint_input=true",
        "data.batch_size=4",
        "callbacks.sample_grids.num_samples=0",
    ]
    train(train_config(*hints, "trainer.max_epochs=4", "hydra.run.dir=whole"))
    whole = json.loads((tmp_path / "run" / "metrics.json").read_text())
    train(train_config(*hints, "trainer.max_epochs=2"))
    first_half = tmp_path / "run" / "checkpoints" / "last.ckpt"
    (tmp_path / "half.ckpt").write_bytes(first_half.read_bytes())
    train(train_config(*hints, "trainer.max_epochs=4", f"ckpt_path={tmp_path / 'half.ckpt'}"))
    resumed = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert resumed["epochs"] == whole["epochs"] == 4
    for name, value in whole["metrics"].items():
        assert resumed["metrics"][name] == pytest.approx(value, rel=1e-5, abs=1e-6), name


@pytest.mark.slow
def test_eval_sweeps_hint_counts_and_placements(hint_checkpoint, tiny_checkpoint, tmp_path):
    result = run_cli(
        "s2p-eval", f"ckpt_path={hint_checkpoint}", "hints=0,1,3", f"hydra.run.dir={tmp_path / 'e'}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "e" / "hints.csv")))
    assert [(row["placement"], int(row["hints"])) for row in rows] == [
        ("random", 0),
        ("random", 1),
        ("random", 3),
        ("regions", 0),
        ("regions", 1),
        ("regions", 3),
    ]
    assert json.loads((tmp_path / "e" / "hints.json").read_text())[2]["psnr"] == pytest.approx(
        float(rows[2]["psnr"])
    )
    assert (tmp_path / "e" / "hints.png").stat().st_size > 1000
    assert rows[0]["psnr"] == rows[3]["psnr"]  # no hints is no hints, whatever the placement
    # the same command in this process (the command line itself is checked above)
    evaluate(
        compose_config(tmp_path / "again", [f"ckpt_path={hint_checkpoint}", "hints=[3]"], "eval")
    )
    assert (
        list(csv.DictReader(open(tmp_path / "again" / "hints.csv")))[0]["psnr"] == rows[2]["psnr"]
    )  # seeded
    evaluate(
        compose_config(
            tmp_path / "within",
            [f"ckpt_path={hint_checkpoint}", "hints=[3]", "data.hints.within_region=true"],
            "eval",
        )
    )
    record = json.loads((tmp_path / "within" / "metrics.json").read_text())
    assert (
        record["hint_protocol"]["within_region"] is True
        and record["hint_protocol"]["max_size"] == 9
    )
    assert record["hints"][0]["psnr"] != pytest.approx(
        float(rows[2]["psnr"]), abs=1e-6
    )  # other hints
    refused = run_cli(
        "s2p-eval", f"ckpt_path={tiny_checkpoint}", "hints=0,3", f"hydra.run.dir={tmp_path / 'no'}"
    )
    assert refused.returncode == 1
    assert "this checkpoint's model takes no hints" in refused.stderr + refused.stdout
    assert "Traceback" not in refused.stderr


def test_hint_options_that_need_another_say_so():
    with pytest.raises(
        UserError, match="model.net.hint_residual=true .* needs model.net.hint_input=true"
    ):
        ConditionedGenerator(depth=2, width=8, hint_residual=True)
    with pytest.raises(
        UserError,
        match="model.net.hint_correction=0.25 bounds the correction of model.net.hint_residual",
    ):
        ConditionedGenerator(depth=2, width=8, hint_input=True, hint_correction=0.25)


def test_a_stroke_of_the_apps_default_brush_inside_a_region_colours_that_region_alone():
    """make demo's model sees 64 px, its corpus's sketches (the app's examples) are 64 px: a stroke
    with s2p-app's default brush through the centre of each region of real OpenMoji glyphs,
    rasterised into the hint layer as the editor does (a round dab at each pixel of the path, the
    path inside the region), changes the hints the model sees (spread over the regions) in that
    region only. The same stroke with Gradio's own default brush does not."""
    pytest.importorskip("scipy", reason="the openmoji extra is not installed")
    pytest.importorskip("resvg_py", reason="the openmoji extra is not installed")
    from scipy.ndimage import distance_transform_edt

    from sketch2photo.colouring import prepare_sketch
    from sketch2photo.commands.app import BRUSH_RADIUS
    from sketch2photo.data.corpora import openmoji
    from sketch2photo.hints.files import hints_from_image

    size, gradio_radius = 64, 25
    glyphs = {path.stem: path for path in openmoji.svg_files()}
    tested = spilled = 0
    for name in ("1F600", "1F3E0", "1F428"):  # grinning face, house, koala
        sketch = Image.fromarray(openmoji.render_pair(glyphs[name], size, "exact")[0], "L")
        _, labels = background_and_regions(prepare_sketch(sketch, size)[None])
        no_stroke = spread_hints(torch.zeros(1, 4, size, size), labels)[0]
        for label in labels.unique()[1:]:
            region = labels[0, 0] == label
            inside = distance_transform_edt(region.numpy())  # to the nearest pixel outside it
            y, x = np.unravel_index(inside.argmax(), inside.shape)
            # a careful stroke: its dabs' edges (anti-aliased: a faint pixel is a hint too) stay
            # off the lines
            path = [(x + dx, y) for dx in range(-3, 4) if inside[y, x + dx] > BRUSH_RADIUS + 1]
            if not path:  # no room for the brush inside the outline
                continue

            def seen_hints(radius: int, path=path, sketch=sketch, labels=labels) -> torch.Tensor:
                layer = Image.new("RGBA", sketch.size, (0, 0, 0, 0))
                draw = ImageDraw.Draw(layer)
                for px, py in path:
                    draw.ellipse((px - radius, py - radius, px + radius, py + radius), fill="red")
                return spread_hints(hints_from_image(layer, sketch.size, size)[None], labels)[0]

            changed = (seen_hints(BRUSH_RADIUS) != no_stroke).any(0)
            assert torch.equal(changed, region), f"{name}, region {label}: a stroke spilled"
            tested += 1
            spilled += bool(((seen_hints(gradio_radius) != no_stroke).any(0) & ~region).any())
    assert tested >= 5
    assert spilled == tested  # Gradio's 25 px radius crosses an outline every time
