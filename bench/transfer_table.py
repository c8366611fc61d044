"""transfer_table: OpenMoji pretraining on the Pokémon folds, one row per way of using it.

Reads the result files bench/hints.py wrote (from scratch: hints_crossval.json; the pretrained
models with no Pokémon training: transfer_pretrained_<style>.json; fine-tuned from them:
transfer_finetuned_<style>[_<schedule>].json) and writes their random-placement PSNR rows side by
side into bench/results/transfer.json, for the results page, with a sentence per goal of the issue
(reached or missed), and draws the rows as curves into docs/transfer_psnr.png. Rows whose file is
missing are left out.

    python bench/transfer_table.py
"""

from __future__ import annotations

import json
from pathlib import Path

from hints import COUNTS
from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
FIGURE = ROOT / "docs" / "transfer_psnr.png"
ROWS = {
    "hints_crossval": "from scratch (`experiment=cv_unet_hints`, 640 epochs at 1e-3)",
    "transfer_pretrained_exact": "pretrained, exact sketches; no Pokémon training",
    "transfer_pretrained_xdog": "pretrained, XDoG sketches; no Pokémon training",
    "transfer_finetuned_exact": "exact, then fine-tuned 200 epochs at 1e-4",
    "transfer_finetuned_xdog": "XDoG, then fine-tuned 200 epochs at 1e-4",
    "transfer_finetuned_xdog_default": "XDoG, then fine-tuned 640 epochs at 1e-3",
}


# (rows whose name starts with, goal at 0 hints, goal at 10 random hints)
GOALS = {
    "fine-tuned": ("transfer_finetuned", 17.5, 20.0),
    "with no Pokémon training": ("transfer_pretrained", 17.0, 19.0),
}


def mean(cell: dict | str | float) -> float:
    if isinstance(cell, dict):
        return cell["mean"]
    return float(str(cell).split()[0])


def verdict(rows: dict[str, list]) -> str:
    """One sentence per goal: a row that reaches both figures, else the best at 10 hints."""
    at_0, at_10 = 1 + COUNTS.index(0), 1 + COUNTS.index(10)  # cell positions in a row
    sentences = []
    for what, (prefix, goal_0, goal_10) in GOALS.items():
        tried = {name: row for name, row in rows.items() if name.startswith(prefix)}
        if not tried:
            continue
        reaching = [
            name
            for name, row in tried.items()
            if mean(row[at_0]) >= goal_0 and mean(row[at_10]) >= goal_10
        ]
        shown = reaching[0] if reaching else max(tried, key=lambda name: mean(tried[name][at_10]))
        sentences.append(
            f"Goal {what}: {goal_0} dB at 0 hints and {goal_10} at 10 random hints, as fold "
            f"means. {'Reached by' if reaching else 'Best at 10 hints'}: {ROWS[shown]}, "
            f"{mean(tried[shown][at_0]):.2f} / {mean(tried[shown][at_10]):.2f}: "
            f"**{'reached' if reaching else 'missed'}**."
        )
    return " ".join(sentences)


def random_row(record: dict) -> list:
    """The first table's random-placement row, its 0 to 30 hint cells (bold taken off)."""
    rows = record["tables"][0]["rows"]
    row = next(row for row in rows if str(row[0]).startswith("random"))
    return [cell.strip("*") if isinstance(cell, str) else cell for cell in row[1 : 1 + len(COUNTS)]]


def plot(rows: dict[str, list], path: Path) -> None:
    figure = Figure(figsize=(7, 4.2))
    axes = figure.subplots()
    for label, *cells in rows.values():
        means = [mean(cell) for cell in cells]
        axes.plot(range(len(COUNTS)), means, marker="o", label=label.split(" (")[0])
    axes.set_xticks(range(len(COUNTS)), [str(count) for count in COUNTS])
    axes.set_xlabel("random colour hints")
    axes.set_ylabel("held-out PSNR (dB), mean of 5 folds")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    rows = {}
    for name, label in ROWS.items():
        path = RESULTS / f"{name}.json"
        if path.is_file():
            rows[name] = [label, *random_row(json.loads(path.read_text()))]
    record = {
        "schema": "sketch2photo.results/1",
        "title": "Transfer to the Pokémon folds: OpenMoji pretraining, with and without fine-tuning",
        "order": 56,
        "commands": ["python bench/transfer_table.py"],
        "setup": (
            "Held-out PSNR (dB) on the same 5 folds of the real pairs (16 training, 4 held-out "
            "pairs each), mean ± std over the folds, random hint placement; each row's own "
            "section below (and `bench/results/<file>.json`) has its command, both placements, "
            "SSIM and every fold. Pretraining: `experiment=pretrain_openmoji` (exact) and with "
            "`data.sketch_style=xdog`; fine-tuning: `init_from=<pretraining run>/checkpoints/"
            "last.ckpt` on `experiment=cv_unet_hints`."
        ),
        "tables": [
            {
                "caption": "held-out PSNR (dB) against the number of random hints",
                "columns": ["model", *(f"{count} hints" for count in COUNTS)],
                "rows": list(rows.values()),
            }
        ],
        "figures": [
            {
                "path": FIGURE.name,
                "alt": "held-out PSNR against the number of random hints, one curve per row",
                "caption": "The table's rows as curves (`docs/transfer_psnr.png`).",
            }
        ],
        "notes": verdict(rows),
        "provenance": {"source": "measured"},
    }
    out = RESULTS / "transfer.json"
    out.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    plot(rows, FIGURE)
    print(f"wrote {out.relative_to(ROOT)} ({len(rows)} rows) and {FIGURE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
