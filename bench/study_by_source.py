"""The tuning study's scores by the source of each test item: the study's test file is a stratified draw from several
test parts (TFNS, SEntFiN, the calendar, the FX headlines), and a row's score over all of them can hide what it does
on the part that matters most to a trader (the FX headlines, the fewest items).

    python bench/study_by_source.py --study runs/study --test runs/shipped/split/studytest.test.jsonl

Each item is traced to its part by its input text, through the parts the test file's meta records. For every cell
and control whose answers are recorded per item: 3-class weighted F1 and event accuracy on each part, with 95%
bootstrap intervals over that part's items (a part of 38 items gives wide ones). Rows are the mean over a row's seeds
(over those that recorded the field's answers, where some did not).
Prints a table and writes JSON (config, versions, every figure) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ is run as a script

from bench.common import write_results  # noqa: E402
from bridge.cli import HelpFormatter  # noqa: E402
from bridge.provenance import default_results_dir, library_versions  # noqa: E402
from finetune.metrics import bootstrap_interval, three_class  # noqa: E402


def item_parts(test: Path) -> list[str]:
    """The part each test item came from, by its input text (``?`` where no part or several parts hold it)."""
    meta = json.loads(test.with_name(test.name + ".meta.json").read_text())
    where: dict[str, set[str]] = defaultdict(set)
    for part in meta["inputs"]:
        path = Path(part["path"])
        name = path.name.split(".")[0]
        for line in path.read_text().splitlines():
            if line.strip():
                where[json.loads(line)["input"]].add(name)
    parts = []
    for line in test.read_text().splitlines():
        if line.strip():
            found = where.get(json.loads(line)["input"], set())
            parts.append(next(iter(found)) if len(found) == 1 else "?")
    return parts


def part_scores(per_item: dict, parts: list[str]) -> dict[str, dict]:
    """wF1-3 and event accuracy on each part, with their intervals."""
    if len(per_item["gold_sentiment"]) != len(parts):
        raise ValueError(f"{len(per_item['gold_sentiment'])} answers for {len(parts)} test items")
    out = {}
    for part in sorted(set(parts)):
        idx = [i for i, p in enumerate(parts) if p == part]
        gold = [three_class(per_item["gold_sentiment"][i]) for i in idx]
        pred = [three_class(per_item["pred_sentiment"][i]) for i in idx]
        wf1 = bootstrap_interval(gold=gold, pred=pred, labels=(-1, 0, 1), kind="weighted_f1")
        row = {"n": len(idx), "wf1_sentiment_3": wf1}
        if "gold_event" in per_item:
            hits = [per_item["gold_event"][i] == per_item["pred_event"][i] for i in idx]
            row["acc_event"] = bootstrap_interval(hits)
        out[part] = row
    return out


def answered(study: Path) -> dict[str, dict]:
    """Every cell's and control's recorded answers, by name."""
    found = {}
    for path in sorted(study.glob("cells/*/eval_torch.json")):
        per_item = json.loads(path.read_text()).get("per_item")
        if per_item:
            found[path.parent.name] = per_item
    for path in sorted(study.glob("controls/*/*.json")):
        per_item = json.loads(path.read_text()).get("per_item")
        if per_item:
            found[f"{path.parent.name}__{path.stem}"] = per_item
    return found


def row_of(name: str) -> str:
    """A cell's row (base, method, size) without its seed; a control's name as it is."""
    return name.rsplit("__seed", 1)[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    ap.add_argument("--study", type=Path, default=Path("runs/study"), help="the study's output folder")
    ap.add_argument(
        "--test", type=Path, required=True, help="the study's --test file (its .meta.json beside it)"
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=default_results_dir("study_by_source") / "study_by_source.json",
        help="JSON",
    )
    args = ap.parse_args(argv)
    parts = item_parts(args.test)
    cells = {name: part_scores(per_item, parts) for name, per_item in answered(args.study).items()}
    rows: dict[str, list[dict]] = defaultdict(list)
    for name, scores in cells.items():
        rows[row_of(name)].append(scores)
    names = sorted(set(parts))
    print(f"{'row':<36} {'seeds':>5} " + " ".join(f"{p + ' wF1':>13} {p + ' event':>13}" for p in names))
    summary = {}
    for row, seeds in sorted(rows.items()):
        summary[row] = {}
        cols = []
        for p in names:
            summary[row][p] = {"n": seeds[0][p]["n"]}
            for k in ("wf1_sentiment_3", "acc_event"):
                have = [
                    s[p][k][0] for s in seeds if k in s[p]
                ]  # seeds scored before event answers were kept lack it
                summary[row][p][k] = float(np.mean(have)) if have else None
                summary[row][p][f"{k}_seeds"] = len(have)
                mark = f" ({len(have)})" if 0 < len(have) < len(seeds) else ""
                cols.append(f"{f'{np.mean(have):.3f}{mark}' if have else '-':>13}")
        print(f"{row:<36} {len(seeds):>5} " + " ".join(cols))
    print("items per part: " + ", ".join(f"{p} {parts.count(p)}" for p in names))
    print("(k): the mean of the k seeds whose answers to that field are recorded")
    results = {
        "config": {k: str(v) for k, v in vars(args).items()},
        "versions": library_versions(),
        "items_per_part": {p: parts.count(p) for p in names},
        "rows": summary,
        "cells": cells,  # each with (point, low, high) per score and part
    }
    write_results(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
