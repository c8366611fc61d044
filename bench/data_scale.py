"""data_scale: the decoded disk cache (data.cache=disk) at growing N, against data.cache=memory.

For N = 1k, 10k and 50k pairs at 256 px, in one run, each figure from a fresh process:
  - first-run cache build: pairs/s;
  - second-run data setup: from the start of `setup` to the first batch (median of 3 processes);
  - private (anonymous) memory of a training process, and its PSS;
  - summed PSS of 2 DDP ranks (trainer=ddp_cpu) against one process: each reads its whole shard
    once before measuring (bench/memory_probe.py), as a full epoch would;
  - data wait as a share of step time: SimpleProfiler, `--batches` batches of 16, the seed model.
data.cache=memory is measured beside it as the baseline (its 2-rank run is skipped where two copies
of the dataset would not fit in RAM).

    python bench/data_scale.py [--pairs 1000,10000,50000] [--size 256] [--batches 100]
    python bench/data_scale.py --larger-than-ram [--pairs 120000] [--batches 300]
    python bench/data_scale.py --setup-only [--pairs 50000]

--larger-than-ram trains --batches shuffled batches on one N whose cache is larger than RAM,
starting with none of it in the page cache (posix_fadvise DONTNEED), and reports the data wait,
major page faults and bytes read from disk.

The datasets cycle 1,000 distinct synthetic pairs under N names (generating 50k distinct ones
takes about 14 minutes; caching and memory do not depend on the pixels). They go to bench/results/
(git-ignored), their caches to bench/results/cache/; delete both to free the space.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from data_throughput import _profiled

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CACHE = RESULTS / "cache"
BIN = Path(sys.executable).parent
DISTINCT = 1000


def make_dataset(pairs: int, size: int) -> Path:
    from sketch2photo.data.corpora.synthetic import write_dataset

    out = RESULTS / f"scaled-{pairs}-{size}"
    if (out / "testA").is_dir():
        return out
    base = write_dataset(RESULTS / f"synthetic-{DISTINCT}-{size}", num_pairs=DISTINCT, size=size)
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    for folder, suffix in (("testA", "A"), ("testB", "B")):
        (staging / folder).mkdir(parents=True)
        for i in range(pairs):
            shutil.copyfile(
                base / folder / f"{i % DISTINCT}_{suffix}.png",
                staging / folder / f"{i}_{suffix}.png",
            )
    staging.rename(out)
    return out


def child(kind: str, data_dir: str, size: int, cache: str) -> dict:
    """One measurement in this (fresh) process."""
    from sketch2photo.data.datamodules.pairs import PairedSketchDataModule

    started = time.perf_counter()
    datamodule = PairedSketchDataModule(
        data_dir=data_dir,
        image_size=size,
        split="none",
        batch_size=16,
        cache=cache,
        cache_dir=str(CACHE),
    )
    datamodule.setup("fit")
    next(iter(datamodule.train_dataloader()))
    seconds = time.perf_counter() - started
    from memory_probe import memory_mib

    return {
        "kind": kind,
        "seconds": seconds,
        "pairs": len(datamodule.sets["train"]),
        **memory_mib(),
    }


def run_child(kind: str, data_dir: Path, size: int, cache: str) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(data_dir), str(size), cache],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.splitlines()[-1])


def train(
    data_dir: Path,
    size: int,
    cache: str,
    batches: int,
    ranks: int,
    out: Path,
    full_read: bool = True,
) -> dict:
    """A training run of `batches` batches: each rank's memory and the profiler's fetch/step
    times."""
    shutil.rmtree(out, ignore_errors=True)
    probe = [
        "+callbacks.memory_probe._target_=memory_probe.MemoryProbe",
        f"+callbacks.memory_probe.out_dir={out}",
    ]
    command = [
        str(BIN / "s2p-train"),
        "data=sketch2photo",
        f"data.data_dir={data_dir}",
        f"data.image_size={size}",
        "data.split=none",
        "data.batch_size=16",
        f"data.cache={cache}",
        f"paths.cache_dir={CACHE}",
        "model=autoencoder",
        "trainer.max_epochs=1",
        f"trainer.limit_train_batches={batches}",
        "logger=none",
        "callbacks.sample_grids=null",
        "callbacks.model_checkpoint=null",
        "callbacks.progress_bar=null",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        f"trainer.profiler={{_target_: lightning.pytorch.profilers.SimpleProfiler, dirpath: '{out}', filename: profile}}",
        f"hydra.run.dir={out}",
        *(probe if full_read else []),
        *(["trainer=ddp_cpu", f"trainer.devices={ranks}"] if ranks > 1 else ["trainer=cpu"]),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "bench")}
    started = time.perf_counter()
    subprocess.run(
        command, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    record = {"wall_s": time.perf_counter() - started}
    record["ranks"] = [json.loads(p.read_text()) for p in sorted(out.glob("memory-rank*.json"))]
    report = next(out.glob("fit-profile*.txt"), None)
    if report is not None:
        text = report.read_text()
        record["fetch"], record["step"] = (
            _profiled(text, "train_dataloader_next"),
            _profiled(text, "run_training_batch"),
        )
    return record


def scale(args) -> None:
    print(
        f"{'N':>7} {'cache':>6} | {'build pairs/s':>13} | {'setup to 1st batch':>18} | {'private MiB':>11} | "
        f"{'PSS 1 rank':>10} | {'PSS 2 ranks':>11} | {'2 / 1':>5} | {'data wait':>9}"
    )
    for pairs in args.pairs:
        data_dir = make_dataset(pairs, args.size)
        for cache in ("disk", "memory"):
            build = "-"
            if cache == "disk":
                for old in CACHE.glob(f"{data_dir.name}-*"):
                    shutil.rmtree(old)
                first = run_child("build", data_dir, args.size, "disk")
                build = f"{first['pairs'] / first['seconds']:.0f}"
            setups = sorted(
                run_child("setup", data_dir, args.size, cache)["seconds"] for _ in range(3)
            )
            one = train(
                data_dir, args.size, cache, args.batches, 1, RESULTS / "runs" / f"{pairs}-{cache}-1"
            )
            rank = one["ranks"][0]
            fetch, step = one["fetch"][0], one["step"][0]
            two_copies_mib = 2 * pairs * 4 * args.size**2 / 2**20
            if (
                cache == "memory"
                and two_copies_mib
                > 0.6 * os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20
            ):
                pss_two, ratio = "(no room)", "-"
            else:
                two = train(
                    data_dir,
                    args.size,
                    cache,
                    args.batches,
                    2,
                    RESULTS / "runs" / f"{pairs}-{cache}-2",
                )
                total = sum(r["after_full_read"]["pss_mib"] for r in two["ranks"])
                pss_two, ratio = f"{total:.0f}", f"{total / rank['after_full_read']['pss_mib']:.2f}"
            print(
                f"{pairs:>7} {cache:>6} | {build:>13} | {setups[1]:>16.2f} s | "
                f"{rank['after_training']['anonymous_mib']:>11.0f} | {rank['after_full_read']['pss_mib']:>10.0f} | "
                f"{pss_two:>11} | {ratio:>5} | {100 * fetch / (fetch + step):>8.2f}%",
                flush=True,
            )


def larger_than_ram(args) -> None:
    pairs = args.pairs[0]
    data_dir = make_dataset(pairs, args.size)
    first = run_child("build", data_dir, args.size, "disk")
    cache_bytes = sum(p.stat().st_size for p in CACHE.glob(f"{data_dir.name}-*/*.npy"))
    ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    print(
        f"{pairs} pairs at {args.size} px: cache {cache_bytes / 1e9:.1f} GB on a machine with {ram / 1e9:.1f} GB RAM; "
        f"built at {first['pairs'] / first['seconds']:.0f} pairs/s"
    )
    for npy in CACHE.glob(
        f"{data_dir.name}-*/*.npy"
    ):  # start cold: none of the cache in the page cache
        descriptor = os.open(npy, os.O_RDONLY)
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(descriptor)
    out = RESULTS / "runs" / f"{pairs}-larger-than-ram"
    before = _io_of_children()
    run = train(data_dir, args.size, "disk", args.batches, 1, out, full_read=False)
    after = _io_of_children()
    fetch, batches = run["fetch"]
    step, _ = run["step"]
    print(
        f"{batches} shuffled batches of 16: data wait {fetch:.1f} s of {fetch + step:.1f} s = "
        f"{100 * fetch / (fetch + step):.1f}% ({1000 * fetch / batches:.1f} ms per batch)"
    )
    print(
        f"major page faults {after['majflt'] - before['majflt']:.0f}, "
        f"read from disk {(after['read_bytes'] - before['read_bytes']) / 1e9:.2f} GB "
        f"(a batch is {16 * 4 * args.size**2 / 1e6:.1f} MB of cache)"
    )


def _io_of_children() -> dict:
    """Major page faults and bytes read from the block device, this process and its waited-for
    children (Linux adds a reaped child's I/O to its parent's /proc/self/io, as getrusage does for
    faults)."""
    import resource

    io = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return {
        "majflt": resource.getrusage(resource.RUSAGE_CHILDREN).ru_majflt,
        "read_bytes": int(io["read_bytes"]),
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, data_dir, size, cache = sys.argv[2:6]
        print(json.dumps(child(kind, data_dir, int(size), cache)))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--pairs", type=lambda text: [int(n) for n in text.split(",")], default=None
    )
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batches", type=int, default=None)
    parser.add_argument("--larger-than-ram", action="store_true")
    parser.add_argument(
        "--setup-only", action="store_true", help="only the second-run setup, median of 5"
    )
    args = parser.parse_args()
    if args.setup_only:
        for pairs in args.pairs or [50_000]:
            data_dir = make_dataset(pairs, args.size)
            run_child("build", data_dir, args.size, "disk")
            setups = sorted(
                run_child("setup", data_dir, args.size, "disk")["seconds"] for _ in range(5)
            )
            print(
                f"{pairs} pairs: setup to the first batch, disk cache: median {setups[2]:.2f} s "
                f"(range {setups[0]:.2f}-{setups[-1]:.2f})"
            )
    elif args.larger_than_ram:
        args.pairs, args.batches = args.pairs or [120_000], args.batches or 300
        larger_than_ram(args)
    else:
        args.pairs, args.batches = args.pairs or [1000, 10_000, 50_000], args.batches or 100
        scale(args)


if __name__ == "__main__":
    main()
