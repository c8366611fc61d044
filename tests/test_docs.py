"""The docs site's generated pages: the results page against bench/results/*.json, the commands
reference against the configs, and the README's links and pictures."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def tool(name: str, folder: str = "tools"):
    if str(ROOT / folder) not in sys.path:  # as `python bench/x.py` runs: it imports its siblings
        sys.path.insert(0, str(ROOT / folder))
    spec = importlib.util.spec_from_file_location(name, ROOT / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_results_page_is_what_the_result_files_give():
    page = (ROOT / "docs" / "results.md").read_text()
    assert page == tool("results_page").render(), "run python tools/results_page.py"


# Prose and provenance: their digits (commands' arguments, commit hashes) are not figures
NOT_FIGURES = {"commands", "command", "provenance", "setup", "notes", "needs_rerun", "title"}


def numbers_in(value) -> tuple[set[str], list[float]]:
    """Every figure a result file holds: as written in its table strings, and as values."""
    tokens, values = set(), []
    if isinstance(value, dict):
        value = [item for key, item in value.items() if key not in NOT_FIGURES]
    if isinstance(value, list):
        for item in value:
            more_tokens, more_values = numbers_in(item)
            tokens |= more_tokens
            values += more_values
    elif isinstance(value, str):
        tokens |= {token.replace(",", "") for token in NUMBER.findall(value)}
    elif isinstance(value, int | float) and not isinstance(value, bool):
        values.append(float(value))
    return tokens, values


def matches(token: str, tokens: set[str], values: list[float]) -> bool:
    """The page's figure is in the file as written, or is one of its values rounded as shown."""
    plain = token.replace(",", "")
    if plain in tokens:
        return True
    shown = float(plain)
    digits = len(plain.split(".")[1]) if "." in plain else 0
    significant = len(plain.lstrip("-").replace(".", "").lstrip("0"))
    for value in values:
        if abs(value - shown) <= 0.5 * 10**-digits + 1e-12:
            return True
        if value and float(f"{value:.{max(significant, 1)}g}") == shown:
            return True
    return False


def test_every_figure_in_the_results_tables_is_in_its_result_file():
    page = (ROOT / "docs" / "results.md").read_text()
    sections = page.split("\n## ")[1:]
    assert len(sections) == len(list(RESULTS.glob("*.json")))
    checked = 0
    for section in sections:
        source = re.search(r"Source: `bench/results/([\w.-]+)\.json`", section)
        assert source, f"section {section.splitlines()[0]!r} names no result file"
        record = json.loads((RESULTS / f"{source.group(1)}.json").read_text())
        tokens, values = numbers_in(record)
        rows = [line for line in section.splitlines() if line.startswith("| ")]
        for row in rows:
            for cell in row.strip("|").split(" | ")[1:]:  # the first cell names the row
                for token in NUMBER.findall(cell):
                    assert matches(token, tokens, values), (
                        f"{token} in {row!r} is not in bench/results/{source.group(1)}.json"
                    )
                    checked += 1
    assert checked > 500  # the tables are there, and were read


def test_a_new_result_file_is_picked_up_without_code_changes(tmp_path):
    record = {
        "schema": "sketch2photo.results/1",
        "title": "Pretraining on OpenMoji",
        "order": 5,
        "commands": ["python bench/pretrain.py --folds 0 1"],
        "tables": [
            {"columns": ["model", "PSNR"], "rows": [["scratch", 16.41], ["pretrained", "17.20"]]}
        ],
        "provenance": {"source": "measured"},
    }
    (tmp_path / "pretrain_transfer.json").write_text(json.dumps(record))
    page = tool("results_page").render(tmp_path)
    assert "## Pretraining on OpenMoji" in page and "Needs a rerun" not in page
    assert "python bench/pretrain.py --folds 0 1" in page
    assert "| scratch | 16.41 |" in page and "| pretrained | 17.20 |" in page
    assert "Source: `bench/results/pretrain_transfer.json`" in page
    record["needs_rerun"] = "fold 0 gave 16.9 when run again"
    (tmp_path / "pretrain_transfer.json").write_text(json.dumps(record))
    page = tool("results_page").render(tmp_path)
    assert '!!! warning "Needs a rerun"\n\n    fold 0 gave 16.9 when run again' in page


def test_a_file_of_another_form_is_refused_with_its_name(tmp_path):
    (tmp_path / "odd.json").write_text(json.dumps({"command": "python bench/x.py", "x": 1}))
    with pytest.raises(SystemExit, match="odd.json"):
        tool("results_page").render(tmp_path)


def test_transcribed_figures_say_so_and_the_cross_validation_was_measured():
    page = (ROOT / "docs" / "results.md").read_text()
    for path in RESULTS.glob("*.json"):
        record = json.loads(path.read_text())
        provenance = record.get("provenance", {"source": "measured"})
        assert provenance["source"] in ("measured", "transcribed"), path.name
        if provenance["source"] == "transcribed":
            assert re.fullmatch(r"[0-9a-f]{40}", provenance["readme_commit"]), path.name
    crossval = json.loads((RESULTS / "crossval.json").read_text())
    assert crossval["provenance"]["source"] == "measured" and "needs_rerun" not in crossval
    section = page.split("## 5-fold cross-validation")[1].split("\n## ")[0]
    assert "Needs a rerun" not in section and "Figures as the command wrote them" in section
    # the per-fold table and the mean ± std table are one measurement
    means, per_fold = crossval["tables"][0]["rows"], crossval["tables"][1]["rows"]
    assert len(means) == len(per_fold) == 7
    for (name, psnr, *_), (fold_name, *folds) in zip(means, per_fold, strict=True):
        assert name.startswith(fold_name) and len(folds) == 5
        assert abs(sum(map(float, folds)) / 5 - psnr["mean"]) < 0.005, name
    # the verdict on the 2 dB target is the per-fold table's
    seed, background = [list(map(float, row[1:])) for row in (per_fold[0], per_fold[4])]
    gains = [b - s for b, s in zip(background, seed, strict=True)]
    crossval_bench = tool("crossval", "bench")
    assert f"2 dB: {crossval_bench.verdict(gains)}.**" in crossval["notes"]
    hints_bench = tool("hints", "bench")
    assert list(hints_bench.references().values()) == [means[0][1]["mean"], means[4][1]["mean"]]


def test_the_cross_validation_verdict_on_the_2_db_target():
    verdict = tool("crossval", "bench").verdict
    assert verdict([2.8, 1.78, 3.53, 3.14, 3.28]) == "met on average, not on fold 1"
    assert verdict([2.8, 2.1, 3.53, 3.14, 3.28]) == "met, on every fold"
    assert verdict([1.9, 1.78, 2.1, 2.0, 1.5]) == "missed"


def test_commands_reference_is_what_the_configs_give():
    page = (ROOT / "docs" / "reference.md").read_text()
    assert page == tool("reference_page").render(), "run python tools/reference_page.py"


def test_commands_reference_has_every_command_and_every_top_level_key():
    reference = tool("reference_page")
    page = (ROOT / "docs" / "reference.md").read_text()
    commands = reference.commands()
    assert len(commands) == 8
    for script, config_name in commands:
        assert f"\n## {script}\n" in page
        section = page.split(f"\n## {script}\n")[1].split("\n## ")[0]
        config = yaml.safe_load((reference.CONFIGS / f"{config_name}.yaml").read_text())
        for key in config:
            if key not in ("defaults", "hydra"):
                assert f"| `{key}` |" in section, f"{script}: {key} missing"


def test_every_docs_page_is_in_the_nav_and_no_picture_is_missing():
    mkdocs = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def pages(nav) -> list[str]:
        found = []
        for entry in nav:
            value = next(iter(entry.values())) if isinstance(entry, dict) else entry
            found += pages(value) if isinstance(value, list) else [value]
        return found

    docs = ROOT / "docs"
    assert sorted(pages(mkdocs["nav"])) == sorted(p.name for p in docs.glob("*.md"))
    for text in [p.read_text() for p in docs.glob("*.md")]:
        for picture in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
            assert (docs / picture).is_file(), picture
    readme = (ROOT / "README.md").read_text()
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / link).is_file(), link
    assert len(readme.splitlines()) < 200
    assert not (docs / "crossval_fold0_outputs.png").exists()


def test_no_page_is_left_with_a_placeholder():
    pages = {p.name: p.read_text() for p in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]}
    assert not [name for name, text in pages.items() if "TODO" in text]
