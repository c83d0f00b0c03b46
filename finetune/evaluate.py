"""Evaluate a fine-tuned model on labelled records with the analyzer the server uses (same decoding, same parser).

    python -m finetune.evaluate --model runs/lora --data eval.jsonl [--backend auto|torch|onnx] [--out eval.json]

Reports per-field accuracy, sentiment macro-F1 on the 7-level scale and collapsed to 3 classes, exact match of all
fields, the parse-failure (neutral fallback) rate, single-item latency p50/p95 and batched items/s. Decoding is greedy
and constrained (deterministic); the prompt is never scored: only the generated answer is parsed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from bridge.cli import HelpFormatter
from bridge.errors import DataError, run_main
from bridge.lm.analyzer import BACKENDS, LMAnalyzer
from bridge.prompt import parse_output
from bridge.provenance import library_versions
from finetune.metrics import answer_items, score, score_intervals
from finetune.train import read_records


def gold_analyses(records: list[dict], schema, source) -> list:
    """The labelled answers of ``records``; a record whose ``output`` does not parse is a ``DataError``."""
    gold = []
    for i, r in enumerate(records, 1):
        parsed = parse_output(r["output"], schema)
        if not parsed.ok:
            raise DataError(
                f"record {i}: gold output does not parse: {'; '.join(parsed.problems)}", path=source
            )
        gold.append(parsed.analysis)
    return gold


def evaluate(
    model: str | Path,
    data: str | Path,
    backend: str = "torch",
    batch_size: int = 32,
    limit: int | None = None,
    latency_items: int = 16,
    int8: bool = False,
    progress: bool = True,
    intervals: bool = True,
) -> dict:
    """Scores (with 95% bootstrap intervals) and speed of ``model`` on the records in ``data``.

    Items are decoded in batches grouped by prompt length; a progress bar counts items. ``backend="auto"`` (the
    command's default) runs ONNX Runtime on a CPU: the model directory's export where one passed its parity check,
    else one built into the cache on first use and checked against torch; torch where that check fails, and on GPU.
    """
    analyzer = LMAnalyzer(model, backend=backend, batch_size=batch_size, int8=int8)
    schema = analyzer.schema
    records = read_records(data, schema)[:limit] if limit else read_records(data, schema)
    gold = gold_analyses(records, schema, data)
    texts = [r["input"] for r in records]
    from tqdm.auto import tqdm

    bar = tqdm(total=len(texts), desc=f"evaluate ({analyzer.backend})", unit="item", disable=not progress)
    t0 = time.perf_counter()
    pred = analyzer.analyze_texts(texts, progress=bar.update)
    batched_s = time.perf_counter() - t0
    bar.close()
    n_batches = -(-len(texts) // batch_size)
    forwards_per_batch = analyzer.stats["forwards"] / max(1, n_batches)
    lat = []
    analyzer.batch_size = 1  # latency is what one headline waits for, alone
    for text in texts[:latency_items]:
        t = time.perf_counter()
        analyzer.analyze_texts([text])
        lat.append(time.perf_counter() - t)
    analyzer.batch_size = batch_size
    result = score(gold, pred, schema)
    ci = score_intervals(gold, pred, schema) if intervals else {}
    result.update(
        {
            "latency_ms_p50": float(np.percentile(lat, 50) * 1000) if lat else None,
            "latency_ms_p95": float(np.percentile(lat, 95) * 1000) if lat else None,
            "items_per_s": len(texts) / batched_s if batched_s else None,
            "forward_passes_per_batch": forwards_per_batch,
        }
    )
    return {
        "model": str(model),
        "analyzer": analyzer.name,
        "backend": analyzer.backend,
        "data": str(data),
        "batch_size": batch_size,
        "metrics": result,
        "intervals_95": {k: [round(lo, 4), round(hi, 4)] for k, (lo, hi) in ci.items()},
        "seconds": round(batched_s, 2),
        "versions": library_versions(),
        # for paired comparisons of models scored on the same items
        "per_item": answer_items(gold, pred, schema),
    }


def format_table(metrics: dict, intervals: dict | None = None) -> str:
    intervals = intervals or {}
    rows = []
    for k, v in metrics.items():
        value = f"{v:.4f}" if isinstance(v, float) else str(v)
        ci = intervals.get(k)
        rows.append(f"| {k} | {value} | {f'{ci[0]:.3f} - {ci[1]:.3f}' if ci else ''} |")
    return "| metric | value | 95% interval |\n|---|---|---|\n" + "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m finetune.evaluate",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    ap.add_argument("--model", required=True, help="run directory or model directory")
    ap.add_argument("--data", required=True, help="labelled instruction records (JSONL/JSON)")
    ap.add_argument("--backend", choices=BACKENDS, default="auto", help="inference backend")
    ap.add_argument("--int8", action="store_true", help="with the onnx backend: the export with int8 weights")
    ap.add_argument("--batch-size", type=int, default=32, help="items per batch")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--limit", type=int, default=None, help="evaluate only the first N records")
    ap.add_argument("--latency-items", type=int, default=16, help="items timed one at a time for p50/p95")
    ap.add_argument("--out", default=None, help="write the results JSON here")
    args = ap.parse_args(argv)
    res = evaluate(
        args.model,
        args.data,
        args.backend,
        args.batch_size,
        args.limit,
        args.latency_items,
        args.int8,
        progress=not args.no_progress,
    )
    print(f"{res['analyzer']} on {args.data}: {res['metrics']['n']} items in {res['seconds']:.1f}s\n")
    print(format_table(res["metrics"], res["intervals_95"]))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
