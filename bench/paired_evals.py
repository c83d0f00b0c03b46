"""Two models scored on the same held-out items, compared item by item: the difference of each score with a paired
bootstrap interval (both models resampled on the same items in every draw), so that a change of shipped model is
judged by what the two intervals of the difference say, not by two overlapping intervals.

    python bench/paired_evals.py --new runs/shipped/adapter --old bench/results/shipped \\
        --parts tfns.test sentfin.test fx.test calendar.test fiqa --out runs/bench/paired_evals.json

``--new`` and ``--old`` are folders of ``finetune.evaluate`` results named ``eval_<part>.json`` (the shipped run's
layout). A score is compared where both results recorded each item's answers for it (``per_item``: the sentiment
always, the other fields since they were recorded); otherwise its row says so and gives the two intervals. The
gold answers must agree item for item (the same test part, in the same order), else the part is refused.
Prints a table and writes JSON (config, versions, every figure) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ is run as a script

from bench.common import write_results  # noqa: E402
from bridge.cli import HelpFormatter  # noqa: E402
from bridge.provenance import default_results_dir, library_versions  # noqa: E402
from finetune.metrics import paired_score_difference  # noqa: E402

SCORES = ("wf1_sentiment_3", "f1_sentiment_3", "f1_sentiment_7", "acc_event", "acc_market", "acc_sector")


def compare_part(part: str, new: dict, old: dict) -> dict:
    """Each score of ``SCORES``: both results' values and intervals, and the paired difference new - old where the
    answers allow one (``None`` where they do not)."""
    if new["per_item"]["gold_sentiment"] != old["per_item"]["gold_sentiment"]:
        raise SystemExit(
            f"eval_{part}.json: the two results were not scored on the same items in the same order"
        )
    rows = {}
    for name in SCORES:
        paired = paired_score_difference([new["per_item"]], [old["per_item"]], name)
        difference = None if paired is None else dict(zip(("value", "low", "high"), paired, strict=True))
        rows[name] = {
            "new": new["metrics"].get(name),
            "old": old["metrics"].get(name),
            "new_95": new["intervals_95"].get(name),
            "old_95": old["intervals_95"].get(name),
            "difference": difference,
        }
    return rows


def verdict(row: dict) -> str:
    diff = row["difference"]
    if diff is None:
        return "no paired test (answers not recorded)"
    if diff["low"] > 0:
        return "new is higher"
    if diff["high"] < 0:
        return "new is lower"
    return "not distinguished"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("--new", required=True, help="folder of the new model's eval_<part>.json")
    ap.add_argument("--old", required=True, help="folder of the old model's eval_<part>.json")
    ap.add_argument("--parts", nargs="+", required=True, help="part names: eval_<part>.json in both folders")
    ap.add_argument(
        "--out",
        default=str(default_results_dir("paired_evals") / "paired_evals.json"),
        help="JSON results file",
    )
    args = ap.parse_args(argv)
    results = {"config": vars(args), "versions": library_versions(), "parts": {}}
    print("| part | score | old [95%] | new [95%] | new - old [paired 95%] | verdict |")
    print("|---|---|---|---|---|---|")
    for part in args.parts:
        new = json.loads((Path(args.new) / f"eval_{part}.json").read_text())
        old = json.loads((Path(args.old) / f"eval_{part}.json").read_text())
        rows = compare_part(part, new, old)
        results["parts"][part] = {"n": new["metrics"]["n"], "scores": rows}
        for name, row in rows.items():
            diff = row["difference"]
            shown = "-" if diff is None else f"{diff['value']:+.3f} [{diff['low']:+.3f}, {diff['high']:+.3f}]"
            old_95 = "" if row["old_95"] is None else " [{:.3f}, {:.3f}]".format(*row["old_95"])
            new_95 = "" if row["new_95"] is None else " [{:.3f}, {:.3f}]".format(*row["new_95"])
            print(
                f"| {part} (n={new['metrics']['n']}) | {name} | {row['old']:.3f}{old_95} | {row['new']:.3f}{new_95} "
                f"| {shown} | {verdict(row)} |"
            )
    write_results(results, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
