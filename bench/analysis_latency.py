"""One headline's analysis, alone: latency of the plain greedy loop (one forward pass per decision, the baseline),
drafts of ``LATENCY_AHEAD`` guessed decisions (several decisions checked per pass, the analyzer's default for one
item), one guessed decision ahead (the analyzer's only draft before), with ONNX Runtime, with int8 weights and with
bf16 weights, measured in the same run against two kinds of floor; then draft lengths one headline alone, and
batched items/s of each.

Guesses learn from the answers before them, so each row starts from a copy of one decoder warmed on ``--warm`` other
headlines (``--warm-data``, by default the records after the timed and batched ones), as a server that has been
running a while: no row is helped by having seen the timed items.

    python bench/analysis_latency.py --model runs/lora --data test.jsonl --items 40 --warm-data train.jsonl --warm 400

Arithmetic: a forward pass costs about 2 x parameters x tokens floating-point operations; the analyzer's achieved
rate is that over the tokens it feeds per item (prompt and answer) divided by its time per item. Two baselines per
precision: a matrix-vector product (one token) and a 64-row matrix product, of the model's own hidden and MLP sizes.
Memory: a decoding pass feeds a few tokens, so it streams every weight once for little arithmetic; the floor of a
pass is one token through every linear weight of the model (its own tensors, in torch), against which each run's
time per forward pass is set. Every run's answers are compared with the baseline's. Goal (issue 11): p50 at most
100 ms.

Batched: ``--batch-items`` headlines in batches of ``--batch`` through ONNX Runtime (where its export passed),
items/s with each draft length, which is how the analyzer's choice for a batch (``THROUGHPUT_AHEAD``) is made.

Prints a table and writes JSON (config, versions, every figure) to ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ is run as a script

from bench.common import write_results  # noqa: E402
from bridge.cli import HelpFormatter  # noqa: E402
from bridge.errors import ModelError  # noqa: E402
from bridge.lm.analyzer import LMAnalyzer, _TorchRunner  # noqa: E402
from bridge.lm.decoding import LATENCY_AHEAD, THROUGHPUT_AHEAD, Decoder  # noqa: E402
from bridge.prompt import build_prompt, format_output  # noqa: E402
from bridge.provenance import default_results_dir, library_versions  # noqa: E402
from finetune.data import load_records  # noqa: E402
from finetune.train import cpu_bf16_support  # noqa: E402

# (name, backend, weights, guessed decisions a draft holds: 0 is the plain loop, None the whole answer); the first is
# the baseline. ONNX Runtime runs fp32 weights; its export is built on first use (not timed). The int8 row runs where
# the model directory has a passing int8 export (python -m finetune.export RUN --onnx --int8); bf16 rows only where
# the CPU has native bf16.
CONFIGS = (
    ("plain greedy, torch", "torch", torch.float32, 0),
    ("drafts, torch", "torch", torch.float32, LATENCY_AHEAD),
    ("plain greedy, ONNX", "onnx", torch.float32, 0),
    ("one ahead, ONNX", "onnx", torch.float32, 1),
    ("drafts, ONNX", "onnx", torch.float32, LATENCY_AHEAD),
    ("drafts, ONNX int8", "onnx-int8", torch.int8, LATENCY_AHEAD),
    ("drafts, torch bf16", "torch", torch.bfloat16, LATENCY_AHEAD),
)
# headlines through each row's runner before it is timed
RUNNER_WARM = 8
# batched: the plain loop (the baseline), one guess ahead, the drafts of one item alone (THROUGHPUT_AHEAD, what a
# batch runs, is chosen among these)
BATCHED = (("plain greedy", 0), ("one ahead", 1), ("drafts", LATENCY_AHEAD))
# one headline alone on ONNX Runtime: how many guessed decisions a draft holds (LATENCY_AHEAD's choice among these)
SWEEP = {f"{k} ahead": k for k in (1, 2, 4, 8, 12, 16)} | {"whole answer": None}


def matmul_gflops(rows: int, inner: int, outer: int, dtype: torch.dtype, seconds: float = 1.0) -> float:
    a, w = torch.randn(rows, inner, dtype=dtype), torch.randn(inner, outer, dtype=dtype)
    for _ in range(5):
        a @ w
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ w
        n += 1
    return 2 * rows * inner * outer * n / (time.perf_counter() - t0) / 1e9


def weights_pass(model: torch.nn.Module, seconds: float = 1.0) -> tuple[float, int]:
    """Seconds of one token through every linear weight of ``model`` (its own tensors and dtype, the output layer
    included), and their bytes: the least a decoding pass costs, since it streams every weight from memory once for
    little arithmetic."""
    mats = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]
    xs = [torch.randn(1, w.shape[1], dtype=w.dtype) for w in mats]

    def once():
        for x, w in zip(xs, mats, strict=True):
            torch.nn.functional.linear(x, w)

    with torch.inference_mode():
        for _ in range(3):
            once()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            once()
            n += 1
    return (time.perf_counter() - t0) / n, sum(
        w.numel() * w.element_size() for w in {id(w): w for w in mats}.values()
    )


def warmed_decoder(an: LMAnalyzer, texts: list[str]) -> Decoder:
    """A decoder that has seen the answers to ``texts`` (analysed in batches: the answers do not depend on it)."""
    an.__dict__.pop("decoder", None)  # a cached property: the next use builds a fresh one
    an.analyze_texts(texts)
    return an.decoder


def set_drafts(an: LMAnalyzer, ahead: int | None, warm: Decoder, runner_warm: list[str]) -> None:
    """Drafts of ``ahead`` guessed decisions, from a copy of the ``warm`` decoder, the runner warmed first."""
    an.speculate, an.ahead = ahead != 0, ahead
    an.analyze_texts(runner_warm)
    an.__dict__["decoder"] = copy.deepcopy(warm)


def same_answers(want: list, got: list) -> int:
    """How many analyses of ``got`` read as those of ``want`` (labels, sentiment, related), item by item."""
    return sum(
        (a.labels, a.sentiment, a.related) == (b.labels, b.sentiment, b.related)
        for a, b in zip(want, got, strict=True)
    )


def time_items(an: LMAnalyzer, texts: list[str]) -> tuple[list[float], list, float]:
    """Seconds per item alone, the analyses, and forwards per item."""
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
    ap.add_argument("--warm", type=int, default=40, help="other headlines each row's decoder has seen")
    ap.add_argument(
        "--warm-data",
        default=None,
        help="records of those headlines (default: --data's after the timed and batched ones)",
    )
    ap.add_argument("--batch", type=int, default=32, help="batch size of the batched rows")
    ap.add_argument("--batch-items", type=int, default=96, help="headlines of the batched rows (0: none)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    ap.add_argument(
        "--out",
        default=str(default_results_dir("analysis_latency") / "analysis_latency.json"),
        help="JSON results file",
    )
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch_an = LMAnalyzer(args.model, backend="torch", batch_size=1)
    # the project's loader: a bad file is one error naming its line and field
    records = load_records(args.data, torch_an.schema)
    texts = [r["input"] for r in records[: args.items]]
    if args.warm_data:
        warm = [r["input"] for r in load_records(args.warm_data, torch_an.schema)]
    else:
        warm = [r["input"] for r in records[max(args.items, args.batch_items) :]]
    warm = warm[: args.warm]
    if not warm:  # they also warm the runners
        ap.error("no headlines to warm the decoders: pass --warm-data, or fewer --items and --batch-items")
    model = torch_an.runner.model
    params = sum(p.numel() for p in model.parameters())
    cfg = model.config
    hidden, mlp = int(cfg.hidden_size), int(getattr(cfg, "intermediate_size", 4 * cfg.hidden_size))
    template = torch_an.info.prompt_template
    results = {
        "config": vars(args) | {"latency_ahead": LATENCY_AHEAD, "throughput_ahead": THROUGHPUT_AHEAD},
        "versions": library_versions(),
        "parameters": params,
        "runs": {},
    }
    answers = {}
    onnx = LMAnalyzer(args.model, backend="auto", batch_size=args.batch)
    warmed = warmed_decoder(onnx, warm)
    onnx.batch_size = 1
    native_bf16, why = cpu_bf16_support()
    for name, backend, dtype, ahead in CONFIGS:
        if dtype is torch.bfloat16 and not native_bf16:
            print(f"{name}: skipped, {why}")
            continue
        if backend == "onnx-int8":
            try:
                an = LMAnalyzer(args.model, backend="onnx", batch_size=1, int8=True)
            except ModelError as exc:
                print(f"{name}: skipped, {exc}")
                continue
        elif backend == "onnx":
            if onnx.backend != "onnx":
                print(f"{name}: skipped, no ONNX export passed its parity check")
                continue
            an = onnx
        else:
            an = torch_an
            if dtype is torch.bfloat16:
                an.__dict__["runner"] = _TorchRunner(model.to(torch.bfloat16))
        set_drafts(an, ahead, warmed, warm[:RUNNER_WARM])
        matmul_dtype = torch.float32 if dtype is torch.int8 else dtype
        lat, out, forwards = time_items(an, texts)
        answers[name] = out
        tokens = [
            len(an.tokenizer(build_prompt(t, an.schema, template=template))["input_ids"])
            + len(an.tokenizer(format_output(a, an.schema))["input_ids"])
            for t, a in zip(texts, out, strict=True)
        ]
        flops = 2 * params * float(np.mean(tokens))
        p50 = float(np.median(lat))
        # the torch model in this run's precision (int8 and ONNX rows: the fp32 weights, the bytes they start from)
        floor_s, weight_bytes = weights_pass(an.runner.model if backend == "torch" else model)
        results["runs"][name] = {
            "p50_ms": 1e3 * p50,
            "p90_ms": 1e3 * float(np.percentile(lat, 90)),
            "forwards_per_item": forwards,
            "tokens_per_item": float(np.mean(tokens)),
            "analyzer_gflops": flops / p50 / 1e9,
            # int8 weights: the matrix baselines stay fp32 (torch has no plain int8 matmul on the CPU)
            "matvec_gflops": matmul_gflops(1, hidden, mlp, matmul_dtype),
            "matmul64_gflops": matmul_gflops(64, hidden, mlp, matmul_dtype),
            "ms_per_forward": 1e3 * p50 / forwards,
            "weights_pass_ms": 1e3 * floor_s,
            "weights_gb_per_s": weight_bytes / floor_s / 1e9,
            "answers_equal_to_baseline": same_answers(answers[CONFIGS[0][0]], out),
        }
    base = results["runs"][CONFIGS[0][0]]["p50_ms"]
    for r in results["runs"].values():
        r["x_baseline_p50"] = base / r["p50_ms"]
    print(f"\n{'':<22} {'p50 ms':>8} {'p90 ms':>8} {'x base':>7} {'fwd/item':>9} {'tok/item':>9} {'GFLOP/s':>8} "
          f"{'matvec':>7} {'ratio':>6} {'matmul64':>9} {'ratio':>6} {'same':>5}")  # fmt: skip
    for name, r in results["runs"].items():
        print(
            f"{name:<22} {r['p50_ms']:>8.1f} {r['p90_ms']:>8.1f} {r['x_baseline_p50']:>7.2f} "
            f"{r['forwards_per_item']:>9.2f} {r['tokens_per_item']:>9.1f} {r['analyzer_gflops']:>8.1f} "
            f"{r['matvec_gflops']:>7.1f} {r['analyzer_gflops'] / r['matvec_gflops']:>6.2f} "
            f"{r['matmul64_gflops']:>9.1f} {r['analyzer_gflops'] / r['matmul64_gflops']:>6.2f} "
            f"{r['answers_equal_to_baseline']:>5}"
        )
    print(f"same: answers equal to the baseline's, of {len(texts)}; goal: p50 <= 100 ms")
    print(f"\n{'':<26} {'ms/forward':>10} {'weights pass ms':>16} {'GB/s':>6} {'x floor':>8}")
    for name, r in results["runs"].items():
        print(
            f"{name:<26} {r['ms_per_forward']:>10.1f} {r['weights_pass_ms']:>16.1f} {r['weights_gb_per_s']:>6.1f} "
            f"{r['ms_per_forward'] / r['weights_pass_ms']:>8.2f}"
        )
    print(
        "weights pass: one token through every linear weight in torch (the fp32 ones for ONNX and int8 rows)"
    )
    if onnx.backend == "onnx":
        results["draft_lengths"] = sweep(onnx, texts, warmed, warm[:RUNNER_WARM], answers[CONFIGS[0][0]])
    if onnx.backend == "onnx" and args.batch_items:
        batch_texts = [r["input"] for r in records[: args.batch_items]]
        results["batched"] = batched(onnx, batch_texts, warmed, warm[:RUNNER_WARM], args.batch)
    write_results(results, args.out)
    return 0


def sweep(an: LMAnalyzer, texts: list[str], warm: Decoder, runner_warm: list[str], want: list) -> dict:
    """One headline alone through ONNX Runtime with each draft length of ``SWEEP``."""
    out = {}
    print(f"\n{'one headline, ONNX':<22} {'p50 ms':>8} {'p90 ms':>8} {'fwd/item':>9} {'same':>5}")
    for name, ahead in SWEEP.items():
        set_drafts(an, ahead, warm, runner_warm)
        lat, got, forwards = time_items(an, texts)
        out[name] = {
            "ahead": ahead,
            "p50_ms": 1e3 * float(np.median(lat)),
            "p90_ms": 1e3 * float(np.percentile(lat, 90)),
            "forwards_per_item": forwards,
            "answers_equal_to_baseline": same_answers(want, got),
        }
        r = out[name]
        print(
            f"{name:<22} {r['p50_ms']:>8.1f} {r['p90_ms']:>8.1f} {forwards:>9.2f} {r['answers_equal_to_baseline']:>5}"
        )
    return out


def batched(an: LMAnalyzer, texts: list[str], warm: Decoder, runner_warm: list[str], batch: int) -> dict:
    """Items/s of ``texts`` in batches of ``batch`` with each draft length (ONNX Runtime), and answers as the plain
    loop's."""
    an.batch_size = batch
    out, want = {}, None
    print(f"\n{len(texts)} headlines in batches of {batch}, ONNX Runtime")
    print(f"{'':<14} {'items/s':>8} {'x plain':>8} {'fwd/batch':>10} {'same':>5}")
    for name, ahead in BATCHED:
        set_drafts(an, ahead, warm, runner_warm)
        before, t0 = dict(an.stats), time.perf_counter()
        got = an.analyze_texts(texts)
        seconds = time.perf_counter() - t0
        want = want or got
        out[name] = {
            "items_per_s": len(texts) / seconds,
            "forwards_per_batch": (an.stats["forwards"] - before["forwards"]) / -(-len(texts) // batch),
            "answers_equal_to_plain": same_answers(want, got),
        }
    for name, r in out.items():
        r["x_plain"] = r["items_per_s"] / out[BATCHED[0][0]]["items_per_s"]
        print(
            f"{name:<14} {r['items_per_s']:>8.2f} {r['x_plain']:>8.2f} {r['forwards_per_batch']:>10.1f} "
            f"{r['answers_equal_to_plain']:>5}"
        )
    return {"batch": batch, "items": len(texts), "runs": out}


if __name__ == "__main__":
    sys.exit(main())
