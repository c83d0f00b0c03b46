"""Evaluation speed: the analyzer over a labelled set as ``finetune.evaluate`` ran it before, against today's way.

    python bench/eval_speed.py --data tfns_dev.jsonl --items 500                   # the shipped model, torch
    python bench/eval_speed.py --model RUN_DIR --data tfns_dev.jsonl --onnx        # also ONNX (needs an export)

Rows, all in the same run on the same ``--items`` records:

- ``before``: batches of 8 in file order (what ``finetune.evaluate`` did: no length grouping), torch;
- ``grouped b16`` / ``grouped b32``: batches of 16 / 32 grouped by prompt length (``LMAnalyzer.analyze_texts``,
  ``finetune.evaluate``'s default is 32), torch;
- ``onnx grouped b16`` / ``b32``: the same through ONNX Runtime, when the model directory has an export with a passing parity
  check (``python -m finetune.export DIR --onnx``; export a copy of ``bridge/models/default``, not the folder itself).

Each row reports seconds, items/s and the time 2,500 such items would take at that rate (linear: every batch is
decoded independently, so time grows with the item count; items of another length distribution take another time),
and how many answers differ from ``before`` (the answer of an item must not depend on its batch; ONNX may differ
where two logits are within float noise). Other jobs on a shared CPU move the absolute figures; the ratio in one run
is the figure to read.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bridge.cli import HelpFormatter  # noqa: E402
from bridge.errors import UserError, run_main  # noqa: E402
from bridge.lm.analyzer import DEFAULT_MODEL_DIR, LMAnalyzer  # noqa: E402
from bridge.prompt import format_output  # noqa: E402
from bridge.provenance import default_results_dir, library_versions  # noqa: E402
from finetune.train import available_cores, read_records  # noqa: E402

EXTRAPOLATE_TO = 2500


def _before(an: LMAnalyzer, texts: list[str]) -> list:
    """The old evaluation loop: consecutive batches of 8 in file order."""
    out = []
    for start in range(0, len(texts), 8):
        out += an._batch(texts[start : start + 8])
    return out


def measure(args) -> dict:
    import torch

    torch.set_num_threads(available_cores())
    an = LMAnalyzer(args.model, backend="torch")
    records = read_records(args.data, an.schema)[: args.items]
    texts = [r["input"] for r in records]
    rows = []

    def row(name: str, fn, analyzer: LMAnalyzer) -> list[str]:
        t0 = time.perf_counter()
        pred = fn()
        sec = time.perf_counter() - t0
        answers = [format_output(a, analyzer.schema) for a in pred]
        rows.append(
            {"config": name, "backend": analyzer.backend, "seconds": sec, "items_per_s": len(texts) / sec}
        )
        return answers

    base = row("before (b8, file order)", lambda: _before(an, texts), an)
    for bs in (16, 32):
        an.batch_size = bs
        answers = row(f"grouped b{bs}", lambda: an.analyze_texts(texts), an)
        rows[-1]["answers_differing"] = sum(a != b for a, b in zip(answers, base, strict=True))
    if args.onnx:
        ox = LMAnalyzer(args.model, backend="onnx")
        for bs in (16, 32):
            ox.batch_size = bs
            answers = row(f"onnx grouped b{bs}", lambda: ox.analyze_texts(texts), ox)
            rows[-1]["answers_differing"] = sum(a != b for a, b in zip(answers, base, strict=True))
    for r in rows:
        r["x_before"] = r["items_per_s"] / rows[0]["items_per_s"]
        r[f"minutes_for_{EXTRAPOLATE_TO}"] = EXTRAPOLATE_TO / r["items_per_s"] / 60
    return {
        "bench": "eval_speed",
        "model": str(args.model),
        "analyzer": an.name,
        "data": str(args.data),
        "items": len(texts),
        "threads": torch.get_num_threads(),
        "rows": rows,
        "versions": library_versions(),
    }


def table(res: dict) -> str:
    lines = [
        f"| config | backend | s | items/s | x before | min for {EXTRAPOLATE_TO:,} | answers differing |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        lines.append(
            f"| {r['config']} | {r['backend']} | {r['seconds']:.1f} | {r['items_per_s']:.2f} | {r['x_before']:.2f} | "
            f"{r[f'minutes_for_{EXTRAPOLATE_TO}']:.1f} | {r.get('answers_differing', '-')} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python bench/eval_speed.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR, help="run or model directory")
    ap.add_argument("--data", required=True, type=Path, help="labelled instruction JSONL")
    ap.add_argument("--items", type=int, default=500, help="records to analyze (the first N)")
    ap.add_argument("--onnx", action="store_true", help="also time the model directory's ONNX export")
    ap.add_argument("--out", type=Path, default=default_results_dir("eval_speed.json"), help="results JSON")
    args = ap.parse_args(argv)
    if args.items < 1:
        raise UserError("--items must be >= 1")
    res = measure(args)
    print(f"\n{res['analyzer']} on {res['items']} items of {args.data}, {res['threads']} threads\n")
    print(table(res))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
