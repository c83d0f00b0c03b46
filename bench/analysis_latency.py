"""One headline's analysis, alone: latency and achieved GFLOP/s of the analyzer against a plain matrix multiply of the
same precision, measured in the same run (fp32 weights, then the same model with bf16 weights).

    python bench/analysis_latency.py --model runs/lora --data dev.jsonl --items 40

A forward pass costs about 2 x parameters x tokens floating-point operations; the analyzer's achieved rate is that
over the tokens it feeds per item (prompt and answer) divided by its time per item. Two baselines per precision: a
matrix-vector product (one token, what each decoding step is) and a 64-row matrix product, of the model's own hidden
and MLP sizes. The answers of the bf16 run are compared with fp32's. Goal (issue 11): p50 at most 100 ms.

Prints a table and writes JSON (config, versions, every figure) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ is run as a script

from bench.common import write_results  # noqa: E402
from bridge.cli import HelpFormatter  # noqa: E402
from bridge.lm.analyzer import LMAnalyzer, _TorchRunner  # noqa: E402
from bridge.prompt import build_prompt, format_output  # noqa: E402
from bridge.provenance import default_results_dir, library_versions  # noqa: E402


def matmul_gflops(rows: int, inner: int, outer: int, dtype: torch.dtype, seconds: float = 1.0) -> float:
    a, w = torch.randn(rows, inner, dtype=dtype), torch.randn(inner, outer, dtype=dtype)
    for _ in range(5):
        a @ w
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ w
        n += 1
    return 2 * rows * inner * outer * n / (time.perf_counter() - t0) / 1e9


def time_items(an: LMAnalyzer, texts: list[str]) -> tuple[list[float], list, float]:
    """Seconds per item alone, the analyses, and forwards per item."""
    an.analyze_texts(texts[:3])  # warm-up
    before = an.stats["forwards"]
    lat, out = [], []
    for text in texts:
        t0 = time.perf_counter()
        out.append(an.analyze_texts([text])[0])
        lat.append(time.perf_counter() - t0)
    return lat, out, (an.stats["forwards"] - before) / len(texts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    ap.add_argument("--model", required=True, help="a model or run directory")
    ap.add_argument("--data", required=True, help="records whose inputs are analysed")
    ap.add_argument("--items", type=int, default=40, help="headlines timed one at a time")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    ap.add_argument(
        "--out",
        default=str(default_results_dir("analysis_latency") / "analysis_latency.json"),
        help="JSON results file",
    )
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    records = [json.loads(line) for line in Path(args.data).read_text().splitlines() if line.strip()]
    texts = [r["input"] for r in records[: args.items]]
    an = LMAnalyzer(args.model, backend="torch", batch_size=1)
    model = an.runner.graph.model
    params = sum(p.numel() for p in model.parameters())
    cfg = model.config
    hidden, mlp = int(cfg.hidden_size), int(getattr(cfg, "intermediate_size", 4 * cfg.hidden_size))
    template = an.info.prompt_template
    results = {"config": vars(args), "versions": library_versions(), "parameters": params, "runs": {}}
    answers = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        if dtype is torch.bfloat16:
            an.__dict__["runner"] = _TorchRunner(model.to(torch.bfloat16))
        lat, out, forwards = time_items(an, texts)
        answers[name] = out
        tokens = [
            len(an.tokenizer(build_prompt(t, an.schema, template=template))["input_ids"])
            + len(an.tokenizer(format_output(a, an.schema))["input_ids"])
            for t, a in zip(texts, out, strict=True)
        ]
        flops = 2 * params * float(np.mean(tokens))
        p50 = float(np.median(lat))
        results["runs"][name] = {
            "p50_ms": 1e3 * p50,
            "p90_ms": 1e3 * float(np.percentile(lat, 90)),
            "forwards_per_item": forwards,
            "tokens_per_item": float(np.mean(tokens)),
            "analyzer_gflops": flops / p50 / 1e9,
            "matvec_gflops": matmul_gflops(1, hidden, mlp, dtype),
            "matmul64_gflops": matmul_gflops(64, hidden, mlp, dtype),
        }
    same = sum(
        (a.labels, a.sentiment, a.related) == (b.labels, b.sentiment, b.related)
        for a, b in zip(answers["fp32"], answers["bf16"], strict=True)
    )
    results["bf16_answers_equal"] = [same, len(texts)]
    print(f"\n{'':<6} {'p50 ms':>8} {'p90 ms':>8} {'fwd/item':>9} {'tok/item':>9} {'GFLOP/s':>8} {'matvec':>8} "
          f"{'ratio':>6} {'matmul64':>9} {'ratio':>6}")  # fmt: skip
    for name, r in results["runs"].items():
        print(
            f"{name:<6} {r['p50_ms']:>8.1f} {r['p90_ms']:>8.1f} {r['forwards_per_item']:>9.2f} "
            f"{r['tokens_per_item']:>9.1f} {r['analyzer_gflops']:>8.1f} {r['matvec_gflops']:>8.1f} "
            f"{r['analyzer_gflops'] / r['matvec_gflops']:>6.2f} {r['matmul64_gflops']:>9.1f} "
            f"{r['analyzer_gflops'] / r['matmul64_gflops']:>6.2f}"
        )
    print(f"bf16 answers equal to fp32's: {same} of {len(texts)}; goal: p50 <= 100 ms")
    write_results(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
