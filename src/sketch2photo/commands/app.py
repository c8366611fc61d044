"""s2p-app: colour sketches in the browser, with colour hints painted on a layer above the sketch.

    s2p-app ckpt_path=<run dir, file.ckpt or .safetensors> [data.data_dir=<pairs: examples>]
            [host=127.0.0.1] [port=7860]

A Gradio page (the optional extra `app`): the sketch is uploaded (or drawn on the Lines layer),
hints are painted with the brush on the Hints layer, and the result follows every stroke. Each
request goes through colouring.colour, as s2p-predict's files do, after the upload is decoded as a
sketch file is (data/images.read_image), within bounds: at most UPLOAD_BYTES and UPLOAD_PIXELS, a
sketch scaled to the canvas as it is decoded, CONCURRENT_REQUESTS coloured at once. A model
trained without hints gets a plain image input. The checkpoint is loaded once, through the safe
loader.

Nothing the page sends is written outside one temporary dir, removed when the app stops (Ctrl-C
or SIGTERM). Gradio is imported only once GRADIO_TEMP_DIR points there (it reads it on import);
no telemetry, no share link, nothing fetched from the network.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import signal
import tempfile
import time
import uuid
from pathlib import Path

import torch
from omegaconf import DictConfig
from PIL import Image

from sketch2photo.checkpoints.read import load_module
from sketch2photo.colouring import colour
from sketch2photo.data.images import (
    RESAMPLE,
    BadImageError,
    bands,
    open_image,
    read_image,
    split_aligned,
)
from sketch2photo.data.layouts import find_pairs
from sketch2photo.errors import UserError

log = logging.getLogger("sketch2photo.app")
HINTS, LINES = "Hints", "Lines"  # the editor's layers, top first: value["layers"] == [hints, lines]
PALETTE = ["#d62828", "#f77f00", "#fcbf49", "#2a9d8f", "#1d4ed8", "#7b2cbf", "#8d5524", "#000000"]
# The brush's radius in the sketch's pixels, at most 2 px at the model's size for a sketch at least
# that size: each hint pixel colours the whole region it falls in, so a stroke only has to stay
# off the lines. Gradio's own default (25 px) spans whole regions of make demo's 64 px sketches.
BRUSH_RADIUS = 2
MAX_CANVAS = 2048  # px on the long side of a sketch in the editor (browsers' canvases have limits)
UPLOAD_PIXELS = 4096 * 4096  # an upload larger is refused: each costs 4 bytes a pixel, decoded
UPLOAD_BYTES = "50mb"
# Requests coloured at once (Gradio's default is one): a small one is not held up behind an upload
# at the limit, and memory stays bounded at a few of those.
CONCURRENT_REQUESTS = 4


def read_upload(file, flatten: bool = True) -> Image.Image:
    """What the page sent (a path or FileData of an upload, or the bytes of the editor's canvas) ->
    an image, through the bounded reader s2p-predict uses (at most UPLOAD_PIXELS): a sketch
    flattened to L or RGB as s2p-predict reads one and fitted to the canvas, or a layer as it is
    (alpha kept)."""
    path = file if isinstance(file, str) else getattr(file, "path", None)
    image = read_image(
        path or file,
        flatten=flatten,
        max_pixels=UPLOAD_PIXELS,
        name=Path(path).name if path else "the canvas",
    )
    return fit_canvas(image) if flatten else image


def colour_request(module, value, keep_size: bool = True) -> Image.Image | None:
    """One request: the editor's {"background", "layers": [hints, lines], "composite"} or a plain
    image -> the coloured result (None: no sketch yet). The sketch is the background with the Lines
    layer over it; a Hints layer with nothing painted on it means no hints."""
    if value is None:
        return None
    if isinstance(value, Image.Image):
        return colour(module, value, keep_size=keep_size)
    layers = [layer for layer in value.get("layers") or [] if layer is not None]
    background = value.get("background")
    if background is None and not layers:
        return None
    hints, lines = (layers + [None, None])[:2]
    size = canvas_size(background.size if background is not None else layers[0].size)
    sketch = Image.new("RGBA", size, "white")
    for layer in (background, lines):  # at the canvas's size: a layer may be 4096 px
        if layer is not None:
            sketch.alpha_composite(layer.convert("RGBA").resize(size))
    return colour(
        module,
        sketch.convert("RGB"),
        hints if hints is not None and painted(hints) else None,
        keep_size,
    )


def painted(layer: Image.Image) -> bool:
    """Whether a hint layer holds any hint. One without transparency counts: colour() says what is
    wrong with it."""
    if "A" not in layer.getbands() and "transparency" not in layer.info:
        return True
    return any(band.convert("RGBA").getchannel("A").getbbox() for _, band in bands(layer))


def canvas_size(size: tuple[int, int]) -> tuple[int, int]:
    """A sketch's size, scaled down to MAX_CANVAS on its long side if larger."""
    scale = min(1.0, MAX_CANVAS / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def fit_canvas(image: Image.Image) -> Image.Image:
    """A sketch no larger than MAX_CANVAS on its long side, for the browser's canvas (the model sees
    far less)."""
    size = canvas_size(image.size)  # reducing_gap: a box reduce first, 3x faster, the same look
    return image if size == image.size else image.resize(size, RESAMPLE, reducing_gap=3.0)


def one_of_a_kind(picture: Image.Image) -> Image.Image:
    """The result with this request's own id in its PNG text. Gradio stores a result in a file named
    after the hash of its PNG, written in place: two requests with the same result would write the
    same file while the first is still being sent (a truncated response). The id makes every
    result a file of its own."""
    picture.info["sketch2photo-request"] = uuid.uuid4().hex
    return picture


def example_sketches(cfg: DictConfig, folder: Path) -> list[Path]:
    """The first cfg.examples sketches of data.data_dir (its test split when it has one), as PNGs
    in `folder`: Gradio serves examples only from its own dirs, and an aligned pair is cut first."""
    if not cfg.data.data_dir or cfg.examples <= 0:
        return []
    listing = find_pairs(cfg.data.data_dir, cfg.data.layout)
    pairs = next(
        (
            listing.splits[name]
            for name in ("test", "all", "val", "train")
            if listing.splits.get(name)
        ),
        [],
    )
    folder.mkdir()
    paths = []
    for pair in pairs[: cfg.examples]:
        try:
            image = open_image(pair.sketch)
            if pair.aligned:
                image = split_aligned(
                    image, pair.sketch, "left" if cfg.data.ab_order == "sketch_left" else "right"
                )[0]
        except BadImageError as error:
            log.warning("example skipped: %s", error)
            continue
        paths.append(folder / f"{pair.name}.png")
        image.save(paths[-1])
    if not paths:
        log.warning("data.data_dir=%s: no sketches to offer as examples", cfg.data.data_dir)
    return paths


def build(module, examples: list[Path], keep_size: bool = True, title: str = "sketch2photo"):
    """The page (a gr.Blocks): the sketch (and hints) | the result, the examples below. One API
    endpoint, /colour: (the editor's value, or an image without hints; keep_size) -> PNG."""
    import gradio as gr

    def in_page(function):
        """A UserError becomes a message in the page and one line in the log, not a traceback."""

        @functools.wraps(function)
        def call(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except UserError as error:
                log.warning("refused: %s", error)
                raise gr.Error(str(error), print_exception=False) from None

        return call

    # The inputs decode with read_upload, not Gradio's own conversion: their methods are replaced on
    # the instances, since Gradio writes a .pyi stub beside the source of any Component subclass.
    @in_page
    def decode_editor_image(file, flatten_on_white: bool = False):
        return None if file is None else read_upload(file, flatten=flatten_on_white)

    @in_page
    def decode_image(payload):
        return None if payload is None else read_upload(payload)

    hints = module.takes_hints
    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(3600, 3600)) as page:
        gr.Markdown(
            f"### {title}\n"
            + (
                "**Upload a sketch** (or draw one on the **Lines** layer: Layers, bottom right of the canvas), then paint "
                "colour hints with the brush on the **Hints** layer: pick a colour, stroke inside a region. Each hint "
                "pixel colours the whole region it falls in, so a stroke that crosses a line colours the regions on "
                "both sides. The result follows every stroke; the eraser and undo take hints back."
                if hints
                else "Upload a sketch. This model was trained without colour hints, so there is no brush."
            )
        )
        with gr.Row():
            with gr.Column():
                if hints:  # uploads go through the button: the editor's own decode in the browser and fail silently
                    sketch = gr.ImageEditor(
                        label="Sketch and colour hints",
                        type="pil",
                        image_mode="RGBA",
                        format="png",
                        elem_id="sketch",
                        sources=("clipboard",),
                        transforms=(),
                        canvas_size=(512, 512),
                        placeholder="Upload a sketch with the button below, or pick the Lines layer and draw one",
                        layers=gr.LayerOptions(
                            layers=[HINTS, LINES], allow_additional_layers=False
                        ),
                        brush=gr.Brush(
                            default_size=BRUSH_RADIUS,
                            colors=PALETTE,
                            default_color=PALETTE[0],
                            color_mode="defaults",
                        ),
                    )
                    sketch.convert_and_format_image = decode_editor_image
                    upload = gr.UploadButton(
                        "Upload a sketch",
                        file_types=["image"],
                        type="filepath",
                        variant="primary",
                        elem_id="upload",
                    )
                else:
                    sketch = gr.Image(
                        label="Sketch",
                        type="pil",
                        sources=("upload", "clipboard"),
                        elem_id="sketch",
                    )
                    sketch.preprocess = decode_image
            result = gr.Image(
                label="Coloured (PNG)",
                type="pil",
                format="png",
                interactive=False,
                height=350,
                buttons=["download", "fullscreen"],
                elem_id="result",
            )
        size = gr.Checkbox(
            value=keep_size,
            label="Result at the sketch's own size (else at the model's)",
            elem_id="keep-size",
        )
        gallery = (
            gr.Examples(
                [[str(path)] for path in examples],
                inputs=[sketch],
                label="Sketches from the dataset",
                cache_examples=False,
            )
            if examples
            else None
        )

        @in_page
        def colour_it(value, keep):
            picture = colour_request(module, value, keep)
            return None if picture is None else one_of_a_kind(picture)

        @in_page
        def load(path, keep):
            value = {"background": read_upload(path), "layers": [], "composite": None}
            return value, one_of_a_kind(colour_request(module, value, keep))

        request = dict(
            inputs=[sketch, size],
            outputs=result,
            trigger_mode="always_last",
            show_progress="minimal",
            concurrency_limit=CONCURRENT_REQUESTS,
            concurrency_id="colour",  # one limit for all the events that colour
        )
        gr.on([sketch.change, size.change], colour_it, api_name="colour", **request)
        if hints:
            # the editor's change misses a new background, and in one gr.on with upload, strokes
            # fire nothing (Gradio 6.31): a listener of its own
            sketch.upload(colour_it, api_visibility="private", **request)
            upload.upload(
                load,
                inputs=[upload, size],
                outputs=[sketch, result],
                api_visibility="private",
                concurrency_limit=CONCURRENT_REQUESTS,
                concurrency_id="colour",
            )
        if gallery:  # loading an example into the editor fires none of its events
            gallery.load_input_event.then(
                colour_it,
                inputs=[sketch, size],
                outputs=result,
                api_visibility="private",
                concurrency_limit=CONCURRENT_REQUESTS,
                concurrency_id="colour",
            )
    return page


def check_address(host, port) -> None:
    if not isinstance(host, str) or not host.strip():
        raise UserError(
            f"host={host!r} must be an address to listen on: 127.0.0.1 (this machine only) or 0.0.0.0 (all)."
        )
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise UserError(f"port={port!r} must be a whole number from 1 to 65535.")


def main(cfg: DictConfig) -> None:
    """Load the model, serve the page until Ctrl-C or SIGTERM, then remove everything it
    received."""
    if importlib.util.find_spec("gradio") is None:
        raise UserError("s2p-app needs gradio: pip install -e .[app] (or sketch2photo[app])")
    check_address(cfg.host, cfg.port)
    if cfg.num_threads is not None:
        if (
            isinstance(cfg.num_threads, bool)
            or not isinstance(cfg.num_threads, int)
            or cfg.num_threads < 1
        ):
            raise UserError(
                f"num_threads={cfg.num_threads!r} must be a positive whole number, or null (torch's default)."
            )
        torch.set_num_threads(cfg.num_threads)
    module = load_module(cfg.ckpt_path)
    size = module.hparams.image_size
    colour(
        module, Image.new("L", (size, size), "white")
    )  # the first request's one-off costs, paid here
    with tempfile.TemporaryDirectory(prefix="s2p-app-") as temp:
        signal.signal(
            signal.SIGTERM, signal.default_int_handler
        )  # stop as Ctrl-C does, cleaning up
        os.environ["GRADIO_TEMP_DIR"] = temp  # uploads, results, the examples' copies: nowhere else
        os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
        page = build(
            module,
            example_sketches(cfg, Path(temp) / "examples"),
            cfg.keep_size,
            title=f"sketch2photo: {Path(str(cfg.ckpt_path)).name}",
        )
        logging.getLogger("httpx").setLevel(
            logging.WARNING
        )  # Gradio's requests to itself at startup
        try:
            page.launch(
                server_name=cfg.host,
                server_port=cfg.port,
                share=False,
                prevent_thread_lock=True,
                quiet=True,
                max_file_size=UPLOAD_BYTES,
                footer_links=["api"],
                run_history=False,
                ssr_mode=False,
                pwa=False,
                mcp_server=False,
                enable_monitoring=False,
            )
        except OSError as error:
            raise UserError(
                f"cannot listen on host={cfg.host} port={cfg.port}: in use, or not an address of this "
                f"machine ({error}). Choose another port=, or host=127.0.0.1."
            ) from None
        log.info(
            "%s (%d px, %s) at http://%s:%d (Ctrl-C stops)",
            cfg.ckpt_path,
            size,
            "colour hints" if module.takes_hints else "no hints",
            cfg.host,
            page.server_port,
        )
        try:
            while (
                True
            ):  # short naps: a signal delivered to a server thread is handled at the next wake-up
                time.sleep(0.5)
        except KeyboardInterrupt:
            log.info("stopped")
        finally:
            page.close()
