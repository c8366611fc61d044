"""gan_picture: the same held-out sketches coloured by each model of a bench/gan.py run, side by
side: a row of sketches, a row per model (no hints), a row of the truth. For docs/; OpenMoji's
attribution is written into the picture when the pairs are OpenMoji's.

    python bench/gan_picture.py bench/results/gan_openmoji data/openmoji-demo-64px-exact \
        --out docs/gan_openmoji.png [--count 8]

The sketches are `--count` of the folder's testA/ pairs, evenly spaced in name order.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from PIL import Image, ImageDraw
from torchvision.transforms.functional import pil_to_tensor, to_pil_image
from torchvision.utils import make_grid

from sketch2photo.checkpoints.read import load_module
from sketch2photo.colouring import colour
from sketch2photo.data.images import open_image

LABEL_WIDTH = 150
OPENMOJI = "Graphics: OpenMoji (openmoji.org), CC BY-SA 4.0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bench", type=Path, help="a bench/gan.py work folder (beside its JSON)")
    parser.add_argument("pairs", type=Path, help="the folder of the pairs it was tested on")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--count", type=int, default=8)
    args = parser.parse_args()

    models = json.loads(args.bench.with_suffix(".json").read_text())["budget"]["models"]
    sketches = sorted((args.pairs / "testA").glob("*_A.png"))
    chosen = [sketches[i * len(sketches) // args.count] for i in range(args.count)]
    photos = [path.parent.parent / "testB" / path.name.replace("_A.", "_B.") for path in chosen]
    size = None
    rows: list[tuple[str, list[Image.Image]]] = [("sketch", [open_image(p) for p in chosen])]
    for name in models:
        label = name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
        module = load_module(args.bench / "runs" / "split" / label / "checkpoints" / "last.ckpt")
        size = module.hparams.image_size
        rows.append((name, [colour(module, image, keep_size=False) for image in rows[0][1]]))
    rows.append(("truth", [open_image(p) for p in photos]))

    tiles = [
        pil_to_tensor(image.convert("RGB").resize((size, size))) for _, row in rows for image in row
    ]
    grid = to_pil_image(make_grid(torch.stack(tiles), nrow=args.count, padding=2, pad_value=255))
    footer = 16 if "openmoji" in str(args.pairs) else 0
    picture = Image.new("RGB", (LABEL_WIDTH + grid.width, grid.height + footer), "white")
    picture.paste(grid, (LABEL_WIDTH, 0))
    draw = ImageDraw.Draw(picture)
    for number, (name, _) in enumerate(rows):
        draw.text((4, 2 + number * (size + 2) + size // 2 - 6), name, fill="black")
    if footer:
        draw.text((4, grid.height + 2), OPENMOJI, fill="black")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    picture.save(args.out)
    print(f"wrote {args.out} ({picture.width}x{picture.height})")


if __name__ == "__main__":
    main()
