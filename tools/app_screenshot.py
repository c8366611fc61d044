"""app_screenshot: the picture of s2p-app on docs/app.md, taken in Chromium.

It starts s2p-app on a checkpoint with a few glyphs of a rendered OpenMoji corpus (data=openmoji's
folder: testA/<name>_A.png sketches, testB/<name>_B.png colour) as its examples, uploads the first
glyph's sketch, paints one short stroke of a palette colour at a point of the sketch (fractions of
its width and height: pick a point inside a region, off the lines), waits for the hinted result
and saves the page. OpenMoji's graphics are CC BY-SA 4.0 (https://openmoji.org).

    python tools/app_screenshot.py --ckpt outputs/pretrain/openmoji-exact/checkpoints/last.ckpt \
        --corpus <data.data_dir of the run> --glyphs 1F438,1F608,1F602 \
        --at 0.5,0.45 --colour "#2a9d8f" --out docs/app_screenshot.png

Chromium is Debian's (/usr/bin/chromium), as in tests/test_app.py: nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from io import BytesIO
from pathlib import Path

from PIL import Image, ImageColor
from playwright.sync_api import sync_playwright

from sketch2photo.commands.app import PALETTE

CHROMIUM = "/usr/bin/chromium"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def copy_glyphs(corpus: Path, names: list[str], folder: Path) -> Path:
    """`folder` as a pairs dir holding the named glyphs of the corpus's test split."""
    for side in "AB":
        (folder / f"test{side}").mkdir(parents=True)
        for name in names:
            source = corpus / f"test{side}" / f"{name}_{side}.png"
            if not source.is_file():
                sys.exit(f"{source}: no such glyph in the corpus's test split")
            shutil.copy(source, folder / f"test{side}")
    return folder


def start_app(ckpt: Path, examples: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    overrides = [f"ckpt_path={ckpt}", f"port={port}", f"data.data_dir={examples}"]
    with log.open("w") as output:
        app = subprocess.Popen(
            [str(BIN / "s2p-app"), *overrides],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return app, f"http://127.0.0.1:{port}/"


def wait_listening(app: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 180
    while " at http://" not in log.read_text():
        if app.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"s2p-app did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.3)


def stop(app: subprocess.Popen) -> None:
    """Ctrl-C to the app's session, then SIGKILL if it has not ended in 30 s."""
    os.killpg(app.pid, signal.SIGINT)
    try:
        app.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(app.pid, signal.SIGKILL)
        app.wait()


def pixels(png: bytes) -> bytes:
    return Image.open(BytesIO(png)).convert("RGB").tobytes()


def screenshot(url: str, sketch: Path, at: tuple[float, float], colour: str, out: Path) -> None:
    rgb = "rgb({}, {}, {})".format(*ImageColor.getrgb(colour))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.goto(url, wait_until="networkidle")
        with page.expect_file_chooser() as chooser:
            page.click("#upload")
        chooser.value.set_files(sketch)
        page.locator("#result img").wait_for(timeout=60_000)
        plain_source = page.locator("#result img").get_attribute("src")
        plain = page.request.get(plain_source).body()

        page.locator("#sketch").get_by_role("button", name="Color").click()
        page.locator(f"#sketch menu.swatch button.color[style*='{rgb}']").click()
        page.locator("h3").first.click()  # closes the colour menu
        box = page.locator("#sketch canvas").first.bounding_box()
        # the sketch is drawn centred in the canvas, as large as fits
        side = min(box["width"], box["height"])
        x = box["x"] + (box["width"] - side) / 2 + at[0] * side
        y = box["y"] + (box["height"] - side) / 2 + at[1] * side
        page.mouse.move(x - 6, y)
        page.mouse.down()
        page.mouse.move(x + 6, y, steps=4)
        page.mouse.up()
        # every result is a file of its own: wait for one whose pixels differ from the plain one
        deadline = time.monotonic() + 60
        while True:
            source = page.locator("#result img").get_attribute("src")
            if source != plain_source and pixels(page.request.get(source).body()) != pixels(plain):
                break
            if time.monotonic() > deadline:
                sys.exit("the hinted result did not come within 60 s (is the stroke on a line?)")
            page.wait_for_timeout(300)
        page.wait_for_timeout(1000)
        page.screenshot(path=out)
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", type=Path, required=True, help="a run dir or a checkpoint")
    parser.add_argument("--corpus", type=Path, required=True, help="a rendered OpenMoji corpus")
    parser.add_argument("--glyphs", required=True, help="names, the first one coloured: 1F431,...")
    parser.add_argument("--at", default="0.5,0.5", help="where the stroke goes: x,y in [0, 1]")
    parser.add_argument("--colour", default="#1d4ed8", help="one of the app's palette colours")
    parser.add_argument("--out", type=Path, default=Path("docs/app_screenshot.png"))
    args = parser.parse_args()
    at = tuple(float(value) for value in args.at.split(","))
    if len(at) != 2 or not all(0 <= value <= 1 for value in at):
        parser.error(f"--at {args.at}: give x,y, each from 0 to 1")
    if args.colour.lower() not in PALETTE:
        parser.error(f"--colour {args.colour}: the app's palette is {', '.join(PALETTE)}")
    names = args.glyphs.split(",")

    with tempfile.TemporaryDirectory() as temp:
        examples = copy_glyphs(args.corpus, names, Path(temp) / "examples")
        log = Path(temp) / "app.log"
        app, url = start_app(args.ckpt.resolve(), examples, log)
        try:
            wait_listening(app, log)
            sketch = examples / "testA" / f"{names[0]}_A.png"
            screenshot(url, sketch, at, args.colour, args.out)
        finally:
            stop(app)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
