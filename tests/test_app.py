"""s2p-app: the real server on a tiny hint model, driven by a headless Chromium (Playwright) and by
gradio_client; what it leaves behind (nothing but library caches), its refusals, and its speed."""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

import sketch2photo
from helpers import (
    free_port,
    run_cli,
    start_cli,
    tiny_unet_checkpoint,
    wait_until,
    write_sparse_png,
)
from sketch2photo.data.corpora.synthetic import write_dataset

pytest.importorskip("gradio", reason="the app extra is not installed: pip install -e .[app]")

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")  # Debian's; Playwright never downloads a browser here
PACKAGE = Path(sketch2photo.__file__).parent
BLUE = (29, 78, 216)  # PALETTE[4], "#1d4ed8"


def train_hint_model(
    run: Path, *overrides: str, pairs: int = 24, size: int = 32
) -> tuple[Path, Path]:
    """(checkpoint, its dataset): a tiny U-Net (depth 2, width 8, unless overridden) trained for 2
    epochs with simulated hints on shapes of random colours, which only hints can tell;
    hint_residual: the output is the spread hints plus a correction, so a hint shows even after so
    short a training."""
    data = write_dataset(run / "data", pairs, size=size, colours="random")
    return tiny_unet_checkpoint(
        run,
        data,
        f"data.image_size={size}",
        "trainer.max_epochs=2",
        "model.net.hint_input=true",
        "model.net.hint_residual=true",
        *overrides,
    ), data


@pytest.fixture(scope="module")
def hint_model(tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint, its dataset: the examples' source)."""
    return train_hint_model(tmp_path_factory.mktemp("app_hints"))


def circle_sketch(path: Path, size: int = 256, mode: str = "L") -> Path:
    """A black circle outline on white, filling most of the square: its centre is inside the
    figure."""
    image = Image.new("L", (size, size), 255)
    ImageDraw.Draw(image).ellipse(
        (size // 5, size // 5, size - size // 5, size - size // 5),
        outline=0,
        width=max(1, size // 32),
    )
    image.convert(mode).save(path)
    return path


def hint_layer(path: Path, size: int = 256, colour=BLUE) -> Path:
    """An RGBA layer, transparent but for a dot of `colour` at the centre."""
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    ImageDraw.Draw(layer).ellipse(
        (size * 7 // 16, size * 7 // 16, size * 9 // 16, size * 9 // 16), fill=(*colour, 255)
    )
    layer.save(path)
    return path


def centre_colour(image: Image.Image) -> np.ndarray:
    width, height = image.size
    box = (width * 7 // 16, height * 7 // 16, width * 9 // 16, height * 9 // 16)
    return np.asarray(image.convert("RGB").crop(box), dtype=float).reshape(-1, 3).mean(0)


def assert_moved_toward(plain: Image.Image, hinted: Image.Image, colour=BLUE) -> None:
    before = np.linalg.norm(centre_colour(plain) - colour)
    after = np.linalg.norm(centre_colour(hinted) - colour)
    assert after < 0.6 * before, (
        f"the hint did not pull the colour toward {colour}: centre {centre_colour(plain)} "
        f"without it, {centre_colour(hinted)} with it"
    )


def colour_through_api(app: App, downloads: Path):
    """colour(sketch, *layers, keep_size=True) -> the result, through gradio_client's /colour: what
    a script sends (the editor's value with files for the background and the layers)."""
    from gradio_client import Client, handle_file

    client = Client(app.url, download_files=str(downloads), verbose=False, analytics_enabled=False)

    def colour(sketch: Path, *layers: Path, keep_size: bool = True) -> Image.Image:
        value = {
            "background": handle_file(sketch),
            "layers": [handle_file(layer) for layer in layers],
            "composite": None,
        }
        return Image.open(client.predict(value, keep_size, api_name="/colour"))

    return colour


@dataclass
class App:
    """A running s2p-app in its own folders: cwd/, tmp/ (TMPDIR), home/ (HOME)."""

    url: str
    process: subprocess.Popen
    folder: Path
    log: Path

    def stop(self) -> str:
        """SIGTERM (as a service manager stops it), then its output."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.log.read_text()

    def leftovers(self) -> list[str]:
        """What it left in its folders: any file, any folder in cwd/ or tmp/. Not the font cache
        that matplotlib keeps in HOME, nor the empty torchinductor_<user> folder torch makes in
        TMPDIR: the package's imports leave those in every command."""
        found = []
        for path in sorted(self.folder.rglob("*")):
            parts = path.relative_to(self.folder).parts
            if (
                len(parts) == 1
                or parts[1:3] == (".cache", "matplotlib")
                or parts[1:3] == (".config", "matplotlib")
            ):
                continue
            if parts[0] == "tmp" and parts[1].startswith("torchinductor_") and path.is_dir():
                continue
            if path.is_file() or parts[0] in ("cwd", "tmp"):
                found.append("/".join(parts))
        return found


@pytest.fixture
def start_app(tmp_path):
    """start(checkpoint, *overrides) -> App, listening; stopped at the end of the test in any
    case."""
    apps: list[App] = []

    def start(ckpt: Path, *overrides: str) -> App:
        folder = tmp_path / f"app{len(apps)}"
        for name in ("cwd", "tmp", "home"):
            (folder / name).mkdir(parents=True)
        port = free_port()
        log = tmp_path / f"app{len(apps)}.log"
        with log.open("w") as output:
            process = start_cli(
                "s2p-app",
                f"ckpt_path={ckpt}",
                f"port={port}",
                *overrides,
                cwd=folder / "cwd",
                env={"TMPDIR": str(folder / "tmp"), "HOME": str(folder / "home")},
                stdout=output,
            )
        app = App(f"http://127.0.0.1:{port}/", process, folder, log)
        apps.append(app)
        try:
            wait_until(
                lambda: " at http://" in log.read_text(),
                "s2p-app to listen",
                process=process,
                interval=0.3,
            )
        except AssertionError as error:
            pytest.fail(f"{error}\n{log.read_text()[-3000:]}")
        return app

    yield start
    for app in apps:
        app.stop()


def assert_clean_stop(app: App) -> str:
    output = app.stop()
    assert app.process.returncode == 0, output[-3000:]
    assert "stopped" in output and "Traceback" not in output, output[-3000:]
    assert app.leftovers() == [], (
        f"files left outside the app's temporary dir (or it): {app.leftovers()}"
    )
    assert (
        list(PACKAGE.glob("*.pyi")) == []
    )  # Gradio writes stubs beside the source of Component subclasses
    return output


def test_a_hint_painted_in_the_browser_moves_the_colour_toward_it(hint_model, start_app, tmp_path):
    """Upload (a file that is not an image first: a message in the page), paint one stroke of blue
    with the mouse, see the result change, download it. The page asks for nothing outside the app
    (any other request is refused)."""
    playwright_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (the app extra)"
    )
    if not CHROMIUM.is_file():
        pytest.skip(
            f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium); Playwright must not download one"
        )
    ckpt, data_dir = hint_model
    app = start_app(ckpt, f"data.data_dir={data_dir}")
    sketch = circle_sketch(tmp_path / "circle.png")

    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            env={**os.environ, "HOME": str(tmp_path / "browser_home")},
        )
        page = browser.new_page(viewport={"width": 1280, "height": 720}, accept_downloads=True)
        outside: list[str] = []

        def local_only(route):
            if route.request.url.startswith(app.url):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        page.route("**/*", local_only)
        page.goto(app.url, wait_until="networkidle")
        assert page.locator("#sketch").get_by_role("button", name="Brush").count() == 1
        assert page.locator("img[src*='/examples/']").count() == 8

        def result(
            previous: str | None = None, unlike: Image.Image | None = None
        ) -> tuple[str, Image.Image]:
            """The next result in the page; with `unlike`, the next whose pixels differ from it
            (every result is a file of its own, so a repeat of the same picture is a new one)."""

            def new_result():
                image = page.locator("#result img")
                source = image.get_attribute("src") if image.count() else None
                if not source or source == previous:
                    return None
                picture = Image.open(BytesIO(page.request.get(source).body()))
                same = unlike is not None and np.array_equal(
                    np.asarray(picture), np.asarray(unlike)
                )
                return None if same else (source, picture)

            try:
                return wait_until(new_result, "a new result in the page", timeout=40, interval=0.2)
            except AssertionError as error:
                raise AssertionError(f"{error}; app log:\n{app.log.read_text()[-2000:]}") from None

        def upload(path: Path) -> None:
            with page.expect_file_chooser() as chooser:
                page.click("#upload")
            chooser.value.set_files(path)

        (tmp_path / "notes.png").write_text("not an image")
        upload(tmp_path / "notes.png")
        page.locator(".toast-body", has_text="notes.png: not an image").wait_for(timeout=30_000)
        page.locator(".toast-close").first.click()
        page.locator(".toast-body").first.wait_for(state="hidden", timeout=10_000)
        upload(sketch)
        plain_source, plain = result()

        page.locator("#sketch").get_by_role("button", name="Color").click()
        page.locator(f"#sketch menu.swatch button.color[style*='rgb{BLUE}']").click()
        page.locator("h3").first.click()  # closes the colour menu
        canvas = page.locator("#sketch canvas").first.bounding_box()
        x, y = (
            canvas["x"] + canvas["width"] / 2,
            canvas["y"] + canvas["height"] / 2,
        )  # the sketch is centred
        page.mouse.move(x - 12, y)
        page.mouse.down()
        page.mouse.move(x + 12, y, steps=6)
        page.mouse.up()
        _, hinted = result(plain_source, unlike=plain)
        page.wait_for_timeout(500)
        screenshot = tmp_path / "app.png"
        page.screenshot(path=screenshot)

        with page.expect_download() as download:
            page.locator("#result").get_by_role("button", name="Download").click()
        downloaded = tmp_path / download.value.suggested_filename
        download.value.save_as(downloaded)
        browser.close()

    assert outside == []
    assert plain.size == hinted.size == (256, 256)  # keep_size=true: the sketch's own size
    assert_moved_toward(plain, hinted)
    assert downloaded.suffix == ".png" and Image.open(downloaded).format == "PNG"
    assert 10_000 < screenshot.stat().st_size < 400_000
    assert_clean_stop(app)


def test_the_api_colours_uploads_of_any_kind_and_answers_a_bad_one_with_a_message(
    hint_model, start_app, tmp_path
):
    from gradio_client.exceptions import AppError

    app = start_app(hint_model[0])
    colour = colour_through_api(app, tmp_path / "downloads")

    sketch = circle_sketch(tmp_path / "circle.png")
    plain, hinted = colour(sketch), colour(sketch, hint_layer(tmp_path / "hint.png"))
    assert_moved_toward(plain, hinted)
    assert colour(sketch, keep_size=False).size == (32, 32)  # the model's size

    odd = {
        "grey16.png": Image.fromarray(np.asarray(Image.open(sketch), dtype=np.uint16) * 257),
        "transparent.png": Image.open(sketch).convert("LA"),
        "palette.png": Image.open(sketch).convert("P"),
        "cmyk.jpg": Image.open(sketch).convert("CMYK"),
    }
    for name, image in odd.items():
        image.save(tmp_path / name)
        assert colour(tmp_path / name).size == image.size, name
    Image.open(sketch).resize((3000, 2000)).save(tmp_path / "large.png")
    assert colour(tmp_path / "large.png").size == (2048, 1365)  # at most the canvas's 2048 px
    rotated = Image.open(sketch).convert("RGB").resize((300, 200))
    exif = rotated.getexif()
    exif[0x0112] = 6  # orientation: shown turned 90 degrees, as s2p-predict reads it
    rotated.save(tmp_path / "rotated.jpg", exif=exif)
    assert colour(tmp_path / "rotated.jpg").size == (200, 300)

    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(AppError, match="notes.png: not an image"):
        colour(tmp_path / "notes.png")
    wide = tmp_path / "wide.png"
    Image.open(hint_layer(wide)).resize((512, 256)).save(wide)
    with pytest.raises(AppError, match="aspect ratio"):
        colour(sketch, wide)
    output = assert_clean_stop(app)
    assert "refused: notes.png: not an image" in output


def test_a_model_without_hints_gets_a_plain_image_input_and_still_colours(
    tiny_checkpoint, start_app, tmp_path
):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    app = start_app(tiny_checkpoint)
    with urllib.request.urlopen(app.url + "config", timeout=30) as response:
        components = {component["type"] for component in json.loads(response.read())["components"]}
    assert "image" in components and not {"imageeditor", "uploadbutton"} & components
    client = Client(
        app.url, download_files=str(tmp_path / "downloads"), verbose=False, analytics_enabled=False
    )
    coloured = Image.open(
        client.predict(
            handle_file(circle_sketch(tmp_path / "circle.png", 100)), True, api_name="/colour"
        )
    )
    assert coloured.size == (100, 100) and coloured.mode == "RGB"
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(AppError, match="notes.png: not an image"):
        client.predict(handle_file(tmp_path / "notes.png"), True, api_name="/colour")
    assert_clean_stop(app)


def test_bad_settings_are_refused_with_a_message(hint_model, tmp_path):
    missing = run_cli("s2p-app", cwd=tmp_path)
    assert (
        missing.returncode == 1 and "ckpt_path=... is required" in missing.stdout + missing.stderr
    )
    refused = run_cli("s2p-app", f"ckpt_path={hint_model[0]}", "port=70000", cwd=tmp_path)
    assert (
        refused.returncode == 1
        and "port=70000 must be a whole number from 1 to 65535" in refused.stdout
    ), refused.stdout + refused.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = run_cli(
            "s2p-app", f"ckpt_path={hint_model[0]}", f"port={taken.getsockname()[1]}", cwd=tmp_path
        )
    assert busy.returncode == 1 and "cannot listen on host=127.0.0.1" in busy.stdout, (
        busy.stdout + busy.stderr
    )
    assert "Traceback" not in busy.stdout + busy.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_request_at_128_px_takes_well_under_a_second(start_app, tmp_path):
    """The default U-Net (depth 5, width 32) with hint input at 128 px: a sketch and a hint layer
    sent through gradio_client, the PNG back; the median of 8 requests, as the app runs
    (num_threads=1)."""
    from gradio_client import Client, handle_file

    ckpt, _ = train_hint_model(
        tmp_path / "run",
        "data.batch_size=4",
        "model.net.depth=5",
        "model.net.width=32",
        "trainer.limit_train_batches=1",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        "callbacks.sample_grids=null",
        pairs=8,
        size=128,
    )
    app = start_app(ckpt)
    client = Client(
        app.url, download_files=str(tmp_path / "downloads"), verbose=False, analytics_enabled=False
    )
    value = {
        "background": handle_file(circle_sketch(tmp_path / "circle.png", 128)),
        "layers": [handle_file(hint_layer(tmp_path / "hint.png", 128))],
        "composite": None,
    }
    times = []
    for _ in range(9):
        start = time.perf_counter()
        assert Image.open(client.predict(value, False, api_name="/colour")).size == (128, 128)
        times.append(time.perf_counter() - start)
    median = statistics.median(times[1:])  # the first: the client's own warm-up
    print(f"one request at 128 px through gradio_client: median {median:.3f} s of {len(times) - 1}")
    assert median < 1.0
    assert_clean_stop(app)


def test_100_requests_20_at_a_time_each_get_their_own_result(hint_model, start_app, tmp_path):
    """The same sketch and hints from 20 clients at once: the same result, which Gradio would store
    in one file named after its hash and rewrite while another request is still reading it."""
    app = start_app(hint_model[0])
    sketch = circle_sketch(tmp_path / "circle.png", 64)
    layer = hint_layer(tmp_path / "hint.png", 64)

    def request(number: int) -> np.ndarray:  # a client of its own: 20 callers at once
        return np.asarray(colour_through_api(app, tmp_path / f"downloads-{number}")(sketch, layer))

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(request, range(100)))  # any failed request raises here
    assert all(result.shape == (64, 64, 3) for result in results)
    assert all(np.array_equal(result, results[0]) for result in results)
    assert_clean_stop(app)


def test_uploads_are_bounded_and_a_large_one_does_not_hold_up_others(
    hint_model, start_app, tmp_path
):
    """An upload above the app's 4096 x 4096 is refused with a message; one at the limit is scaled
    to the canvas as it is decoded, so a small request sent while it is in flight is answered in
    about its own time, not after it."""
    from gradio_client.exceptions import AppError

    app = start_app(hint_model[0])
    colour = colour_through_api(app, tmp_path / "downloads")

    huge = write_sparse_png(tmp_path / "huge.png", 8000, 8000, {(4000, 4000): (*BLUE, 255)})
    small = circle_sketch(tmp_path / "small.png", 64)
    with pytest.raises(AppError, match=r"huge\.png: too large: 8000x8000 is 64\.0 megapixels"):
        colour(small, huge)  # as a hint layer: refused before it is decoded
    large_sketch = write_sparse_png(tmp_path / "large.png", 4096, 4096)  # at the limit
    large_hints = write_sparse_png(tmp_path / "hints.png", 4096, 4096, {(2048, 2048): (*BLUE, 255)})
    assert colour(large_sketch, large_hints).size == (2048, 2048)  # the canvas's size

    times = []
    for _ in range(3):
        start = time.perf_counter()
        colour(small)
        times.append(time.perf_counter() - start)
    alone = statistics.median(times)
    with ThreadPoolExecutor(max_workers=1) as pool:
        large = pool.submit(colour, large_sketch, large_hints)
        time.sleep(0.2)  # uploaded and being decoded
        start = time.perf_counter()
        colour(small)
        beside = time.perf_counter() - start
        assert large.result().size == (2048, 2048)
    print(f"a small request alone {alone:.2f} s, beside one at the upload limit {beside:.2f} s")
    assert beside < alone + 1.0
    output = assert_clean_stop(app)
    assert "refused: huge.png: too large" in output
