"""OpenMoji's curation and split: measure every glyph by the rules in data/corpora/openmoji.py,
write the split the package ships (src/sketch2photo/data/corpora/openmoji_split.json), and report
what each rule drops, flags (regional-indicator pairs and tag sequences) and other glyphs apart.

    python bench/openmoji_curation.py [--workers 2] [--check]   # --check: compare, do not write

Needs the extra `openmoji` (pip install -e ".[openmoji]"). Graphics: OpenMoji, CC BY-SA 4.0.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

from sketch2photo.data.corpora import openmoji


def is_flag(name: str) -> bool:
    parts = name.split("-")
    regional = len(parts) == 2 and all("1F1E6" <= part <= "1F1FF" for part in parts)
    return regional or (
        parts[0] == "1F3F4" and len(parts) > 2
    )  # 🏴 + tag letters: subdivision flags


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument(
        "--check", action="store_true", help="compare with the shipped split, write nothing"
    )
    args = parser.parse_args()
    files = openmoji.svg_files()
    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        analyses = list(pool.map(openmoji.analyse, files, chunksize=32))
    made = openmoji.split_file(analyses, openmoji.openmoji().VERSION)
    print(f"{len(files)} glyphs measured in {time.perf_counter() - started:.0f} s")
    fates = openmoji.fates_of(made)
    flags = {name for name in fates if is_flag(name)}
    print(
        f"\n| rule | measures | keeps at least | drops (flags of {len(flags)}) | drops (others of "
        f"{len(fates) - len(flags)}) |\n|---|---|---|---|---|"
    )
    for rule, what, threshold in openmoji.CURATION:
        dropped = {name for name, fate in fates.items() if fate == f"dropped:{rule}"}
        print(
            f"| {rule} | {what} | {threshold} | {len(dropped & flags)} | {len(dropped - flags)} |"
        )
    counts = Counter(fate for fate in fates.values() if not fate.startswith("dropped"))
    groups = {openmoji.base_emoji(name) for name in made["test"]}
    print(
        f"\nkept: {counts['train']} train, {counts['test']} test ({len(groups)} base emoji in test)"
    )
    if args.check:
        shipped = openmoji.fates_of(openmoji.load_split())
        differ = [name for name in fates if shipped.get(name) != fates[name]]
        print(
            f"the shipped split: {len(differ)} glyph(s) differ"
            + (f": {differ[:10]}" if differ else "")
        )
        raise SystemExit(1 if differ else 0)
    openmoji.SPLIT_FILE.write_text(json.dumps(made, separators=(",", ":")) + "\n")
    print(f"wrote {openmoji.SPLIT_FILE} ({openmoji.SPLIT_FILE.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
