"""memory_limits: what one input can cost, against a baseline measured in the same run.

  1. s2p-predict, peak RSS of the whole command (os.wait4's rusage of the child): one 256 px
     sketch alone, against the same sketch with an 8000 x 8000 RGBA hint PNG (250 KB on disk,
     256 MB decoded), alternating; medians. Target: at most 2x.
  2. s2p-app, resident memory of the server (/proc/<pid>/status): idle, then the peak (VmHWM,
     reset through /proc/<pid>/clear_refs) while it colours one request at the documented upload
     limit, a 4096 x 4096 sketch with a 4096 x 4096 hint layer. Target: at most 500 MB above idle.
  3. s2p-app, the latency of a small request (a 64 px sketch) alone, and sent while a request at
     the upload limit is in flight; medians. Target: not held up for seconds.

    python bench/memory_limits.py [--repeats 3]

The model is a 128 px hint U-Net (depth 5, width 32) trained for one batch, in bench/results/
(git-ignored), as are the input files.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
RESULTS = ROOT / "bench" / "results" / "memory_limits"
BIN = Path(sys.executable).parent
BLUE = (29, 78, 216, 255)
os.environ.setdefault("S2P_CACHE_DIR", str(RESULTS / "cache"))  # the model's decoded pairs


def inputs() -> dict[str, Path]:
    from PIL import Image, ImageDraw

    from helpers import write_sparse_png

    RESULTS.mkdir(parents=True, exist_ok=True)
    files = {
        "sketch": RESULTS / "sketches" / "circle.png",
        "hint_layer": RESULTS / "hints" / "circle.png",
        "small": RESULTS / "small.png",
        "upload_sketch": RESULTS / "upload_sketch.png",
        "upload_hints": RESULTS / "upload_hints.png",
    }
    for size, path in ((256, files["sketch"]), (64, files["small"])):
        path.parent.mkdir(exist_ok=True)
        sketch = Image.new("L", (size, size), 255)
        ImageDraw.Draw(sketch).ellipse(
            (size // 5, size // 5, size * 4 // 5, size * 4 // 5), width=2
        )
        sketch.save(path)
    files["hint_layer"].parent.mkdir(exist_ok=True)
    if not files["hint_layer"].exists():
        write_sparse_png(files["hint_layer"], 8000, 8000, {(4000, 4000): BLUE})
    if not files["upload_sketch"].exists():
        write_sparse_png(files["upload_sketch"], 4096, 4096)  # transparent: white paper
        write_sparse_png(files["upload_hints"], 4096, 4096, {(2048, 2048): BLUE})
    return files


def checkpoint() -> Path:
    from helpers import tiny_unet_checkpoint
    from sketch2photo.data.corpora.synthetic import write_dataset

    run = RESULTS / "model"
    last = run / "checkpoints" / "last.ckpt"
    if not last.exists():
        data = write_dataset(RESULTS / "pairs", 8, size=128, colours="random")
        tiny_unet_checkpoint(
            run,
            data,
            "data.image_size=128",
            "data.batch_size=4",
            "model.net.depth=5",
            "model.net.width=32",
            "model.net.hint_input=true",
            "trainer.limit_train_batches=1",
            "trainer.limit_val_batches=1",
            "trainer.limit_test_batches=1",
            "callbacks.sample_grids=null",
        )
    return last


def peak_rss_mib(command: list[str]) -> float:
    """Run a command; the peak RSS of its process (and the children it waited for)."""
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=RESULTS
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{command} failed: {process.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024


def predict_memory(ckpt: Path, files: dict[str, Path], repeats: int) -> None:
    command = [
        str(BIN / "s2p-predict"),
        f"ckpt_path={ckpt}",
        f"input={files['sketch']}",
        f"output={RESULTS / 'out'}",
    ]
    alone, hinted = [], []
    for _ in range(repeats):
        alone.append(peak_rss_mib(command))
        hinted.append(peak_rss_mib([*command, f"hints={files['hint_layer']}"]))
    a, h = statistics.median(alone), statistics.median(hinted)
    print(
        f"s2p-predict peak RSS: sketch alone {a:.0f} MiB, with the 8000x8000 hint PNG "
        f"({files['hint_layer'].stat().st_size / 1e3:.0f} KB) {h:.0f} MiB: {h / a:.2f}x "
        f"(+{h - a:.0f} MiB; medians of {repeats}; target <= 2x)"
    )


def status_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def app_memory_and_latency(ckpt: Path, files: dict[str, Path], repeats: int) -> None:
    from gradio_client import Client, handle_file

    from helpers import free_port, wait_until

    port = free_port()
    log = RESULTS / "app.log"
    with log.open("w") as output:
        app = subprocess.Popen(
            [str(BIN / "s2p-app"), f"ckpt_path={ckpt}", f"port={port}"],
            cwd=RESULTS,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: " at http://" in log.read_text(), "s2p-app", process=app, interval=0.3)
        url = f"http://127.0.0.1:{port}/"

        def colour(sketch: Path, *layers: Path) -> float:
            client = Client(
                url,
                download_files=str(RESULTS / "downloads"),
                verbose=False,
                analytics_enabled=False,
            )
            value = {
                "background": handle_file(sketch),
                "layers": [handle_file(layer) for layer in layers],
                "composite": None,
            }
            started = time.perf_counter()
            client.predict(value, True, api_name="/colour")
            return time.perf_counter() - started

        colour(files["small"])  # the first request's one-off costs
        time.sleep(1)
        idle = status_mib(app.pid, "VmRSS")
        above = []
        for _ in range(repeats):
            Path(f"/proc/{app.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS now
            colour(files["upload_sketch"], files["upload_hints"])
            above.append(status_mib(app.pid, "VmHWM") - idle)
        print(
            f"s2p-app resident memory: idle {idle:.0f} MiB; peak while colouring one request at the "
            f"upload limit (4096x4096 sketch and hint layer) +{statistics.median(above):.0f} MiB "
            f"above idle ({', '.join(f'+{a:.0f}' for a in above)}; target <= 500 MB)"
        )

        alone = statistics.median(colour(files["small"]) for _ in range(2 * repeats + 1))
        beside = []
        with ThreadPoolExecutor(max_workers=1) as pool:
            for _ in range(repeats):
                large = pool.submit(colour, files["upload_sketch"], files["upload_hints"])
                time.sleep(0.2)  # uploaded and being worked on
                beside.append(colour(files["small"]))
                large_seconds = large.result()
        b = statistics.median(beside)
        print(
            f"s2p-app latency of a 64 px request: alone {alone:.2f} s, while one at the upload limit "
            f"is in flight {b:.2f} s: {b / alone:.2f}x (medians; the large one took "
            f"{large_seconds:.2f} s)"
        )
    finally:
        app.terminate()
        app.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    files, ckpt = inputs(), checkpoint()
    predict_memory(ckpt, files, args.repeats)
    app_memory_and_latency(ckpt, files, args.repeats)


if __name__ == "__main__":
    main()
