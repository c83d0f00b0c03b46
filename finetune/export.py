"""Export a trained run: merged weights, and an ONNX graph of the analyzer's forward step checked against torch.

    python -m finetune.export runs/lora --onnx [--int8]

- ``RUN_DIR/merged/``: a standalone model directory needing no base model. LoRA is merged into the base weights;
  a bottleneck-adapter model is saved whole, adapters included (they are non-linear, so they cannot be folded into the
  base weights; the small ``model/adapter.safetensors`` stays the primary artefact). Full tuning has nothing to merge.
- ``RUN_DIR/model/onnx/model.onnx`` (``--onnx``): the ``bridge.lm.analyzer.StepGraph`` the analyzer runs: a chunk of
  tokens plus the KV cache in, logits at the chosen chunk positions plus the new cache out. ``--int8`` adds a copy with int8
  weights (``model.int8.onnx``, weight-only: ``quantize_weights``), used only if its own, looser parity check passes.
- ``parity.json``: max abs logit difference between ONNX Runtime and torch on real prompts (prefill and a cached
  step, batch of two with padding), the tolerance, pass/fail, and the measured speed of both (graph and analyzer).
  ``bridge.lm.analyzer`` uses the export only when the parity check passed and the weights hash still matches.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bridge.cli import HelpFormatter
from bridge.errors import ModelError, UserError, run_main
from bridge.lm.analyzer import (
    GRAPH_VERSION,
    ONNX_FILE,
    ONNX_INT8_FILE,
    PARITY_FILE,
    LMAnalyzer,
    StepGraph,
    empty_past,
    kv_shape,
)
from bridge.lm.loading import (
    MERGED_WEIGHTS,
    ONNX_DIR,
    ModelInfo,
    checkpoint_hash,
    load_model,
    model_dir_of,
    read_model_info,
    write_model_info,
)
from bridge.lm.onnx import (
    FP32_TOLERANCE,
    INT8_BLOCK,
    INT8_TOLERANCE,
    OPSET,
    SAMPLE_HEADLINES,
    check_parity,
    export_onnx,
    ort_session,
    sample_inputs,
)
from bridge.provenance import library_versions
from bridge.schema import load_schema


def save_merged(run_dir: Path) -> Path | None:
    """Write ``RUN_DIR/merged`` (see the module docstring); None for full tuning, which has nothing to merge."""
    model_dir = model_dir_of(run_dir)
    info = read_model_info(model_dir)
    if info.method == "full" or info.merged:
        return None
    model, tokenizer, _ = load_model(model_dir, merge=True)
    out = Path(run_dir) / "merged"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    from safetensors.torch import save_file

    model.config.save_pretrained(out)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)  # tied to the input embeddings; safetensors refuses shared storage
    save_file(state, str(out / MERGED_WEIGHTS))
    tokenizer.save_pretrained(out)
    merged = ModelInfo(**{**info.to_dict(), "merged": True})
    write_model_info(out, merged)
    return out


def _time_graph(fn, repeats: int = 5) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def quantize_weights(
    src: Path, dst: Path, block_size: int = INT8_BLOCK, accuracy_level: int | None = None
) -> None:
    """An int8 weight-only copy of an export: every MatMul's constant weight in blocks of ``block_size`` along its
    input, one scale per block (ONNX Runtime's MatMulNBits); activations and the KV cache stay fp32. A decoding pass
    feeds a few tokens, so it streams every weight once for little arithmetic: it is bound by memory bandwidth, and a
    quarter of the bytes is the point. ``accuracy_level`` 4 also computes in int8 (see MatMulNBits)."""
    import logging

    import onnx

    try:
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
    except ImportError as exc:
        raise UserError(
            f"int8 weights need ONNX Runtime's 8-bit MatMulNBits quantizer: {exc}",
            hint="pip install -U onnxruntime onnx-ir (the versions that installing EA Bridge picks have it)",
        ) from exc

    # its progress lines are not the user's business
    logging.getLogger("onnxruntime.quantization").setLevel(logging.ERROR)
    quant = MatMulNBitsQuantizer(
        onnx.load(str(src)), bits=8, block_size=block_size, is_symmetric=True, accuracy_level=accuracy_level
    )
    quant.process()
    quant.model.save_model_to_file(str(dst), False)


def export(run_dir: str | Path, onnx: bool = True, int8: bool = False, timing_items: int = 8) -> dict:
    """Merged weights, ONNX export and parity report for a run or model directory; returns the report."""
    run_dir = Path(run_dir)
    model_dir = model_dir_of(run_dir)
    merged = save_merged(run_dir) if model_dir != run_dir else None
    report = {"run": str(run_dir), "merged": str(merged) if merged else None, "versions": library_versions()}
    if not onnx:
        return report
    model, tokenizer, info = load_model(model_dir, merge=True)
    schema = load_schema(info.schema)
    out = model_dir / ONNX_DIR
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    export_onnx(model, out / ONNX_FILE)
    report["export_seconds"] = round(time.perf_counter() - t0, 2)
    layers, kv_heads, head_dim = kv_shape(model.config)
    report.update({"layers": layers, "kv_heads": kv_heads, "head_dim": head_dim, "opset": OPSET})
    report["checkpoint"] = checkpoint_hash(model_dir)
    report["graph"] = GRAPH_VERSION
    parity = check_parity(model, ort_session(out / ONNX_FILE), tokenizer, schema, info.max_prompt_tokens)
    report["fp32"] = {
        **parity,
        "tolerance": FP32_TOLERANCE,
        "passed": parity["max_abs_diff"] <= FP32_TOLERANCE,
    }
    if int8:
        quantize_weights(out / ONNX_FILE, out / ONNX_INT8_FILE)
        p8 = check_parity(model, ort_session(out / ONNX_INT8_FILE), tokenizer, schema, info.max_prompt_tokens)
        passed = p8["top1_agree"] and p8["max_abs_diff"] <= INT8_TOLERANCE
        report["int8"] = {**p8, "tolerance": INT8_TOLERANCE, "passed": passed}
    # graph speed: one prefill of a single headline, torch eager vs ONNX Runtime
    graph = StepGraph(model).eval()
    ids, mask, pos, pick = sample_inputs(tokenizer, SAMPLE_HEADLINES[:1], schema, info.max_prompt_tokens)
    past_t = empty_past(1, model.config)
    sess = ort_session(out / ONNX_FILE)
    feed = dict(
        zip(
            [i.name for i in sess.get_inputs()],
            [ids, mask, pos, pick, *[p.numpy() for p in past_t]],
            strict=True,
        )
    )

    def torch_step():
        with torch.inference_mode():
            graph(*(torch.from_numpy(x) for x in (ids, mask, pos, pick)), *past_t)

    t_torch, t_onnx = _time_graph(torch_step), _time_graph(lambda: sess.run(None, feed))
    report["prefill_ms"] = {"torch": t_torch * 1000, "onnx": t_onnx * 1000, "speedup": t_torch / t_onnx}
    (out / PARITY_FILE).write_text(json.dumps(report, indent=2) + "\n")
    # analyzer speed: the whole constrained decode of each headline, batch size 1, both backends
    texts = (SAMPLE_HEADLINES * 4)[:timing_items]
    timing = {}
    for backend in ("torch", "onnx"):
        if backend == "onnx" and not report["fp32"]["passed"]:
            continue
        an = LMAnalyzer(model_dir, backend=backend, batch_size=1)
        an.analyze_texts(texts[:1])
        t = time.perf_counter()
        answers = an.analyze_texts(texts)
        timing[backend] = {"ms_per_item": (time.perf_counter() - t) * 1000 / len(texts), "answers": answers}
    if "onnx" in timing:
        same = [
            a.labels == b.labels and a.sentiment == b.sentiment
            for a, b in zip(timing["torch"]["answers"], timing["onnx"]["answers"], strict=True)
        ]
        report["analyzer_same_answers"] = sum(same) / len(same)
    report["analyzer_ms_per_item"] = {k: v["ms_per_item"] for k, v in timing.items()}
    if "onnx" in timing:
        report["analyzer_speedup"] = timing["torch"]["ms_per_item"] / timing["onnx"]["ms_per_item"]
    (out / PARITY_FILE).write_text(json.dumps(report, indent=2) + "\n")
    if not report["fp32"]["passed"]:
        raise ModelError(
            f"ONNX parity failed: max abs logit diff {report['fp32']['max_abs_diff']:.2e} > {FP32_TOLERANCE:.0e}",
            path=out / PARITY_FILE,
            hint="the analyzer will keep using torch for this model",
        )
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m finetune.export",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    ap.add_argument("run", help="run directory written by finetune.train (or a model directory)")
    ap.add_argument(
        "--onnx", action="store_true", help="export the analyzer's step graph to ONNX and check parity"
    )
    ap.add_argument(
        "--int8", action="store_true", help="also write an ONNX model with int8 weights (weight-only)"
    )
    ap.add_argument(
        "--timing-items", type=int, default=8, help="headlines timed through the analyzer per backend"
    )
    args = ap.parse_args(argv)
    rep = export(args.run, onnx=args.onnx, int8=args.int8, timing_items=args.timing_items)
    if rep.get("merged"):
        print(f"merged model: {rep['merged']}")
    if args.onnx:
        f = rep["fp32"]
        print(
            f"ONNX parity: max abs logit diff {f['max_abs_diff']:.2e} (tolerance {f['tolerance']:.0e}) -> {'pass' if f['passed'] else 'FAIL'}"
        )
        if "int8" in rep:
            print(
                f"int8: max abs diff {rep['int8']['max_abs_diff']:.3f}, greedy choices same: {rep['int8']['top1_agree']}"
            )
        p = rep["prefill_ms"]
        print(f"prefill: torch {p['torch']:.1f} ms, onnx {p['onnx']:.1f} ms, speedup {p['speedup']:.2f}x")
        a = rep["analyzer_ms_per_item"]
        print("analyzer ms/item: " + ", ".join(f"{k} {v:.1f}" for k, v in a.items()))
        if "analyzer_speedup" in rep:
            print(
                f"analyzer speedup {rep['analyzer_speedup']:.2f}x, same answers {rep['analyzer_same_answers']:.0%}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
