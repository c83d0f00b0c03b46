"""The analyzer's step graph in ONNX Runtime: export, parity check against torch, and the export built on first use.

An export is used only where its parity check passed and it was made from the same weights (checkpoint hash) and
graph version. ``python -m finetune.export RUN --onnx`` writes one into the model directory; otherwise the analyzer
builds one into the cache the first time a model is used with ``backend="auto"`` (``build_cached_export``): about a minute
for SmolLM2-135M, once per set of weights, with a progress bar. A failed parity check, or a build that raised, is
recorded there and the analyzer stays on torch (removing the record's folder builds again). The cache keeps the
``MAX_CACHED_EXPORTS`` most recently used exports.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from bridge.lm.analyzer import (
    GRAPH_VERSION,
    ONNX_FILE,
    PARITY_FILE,
    StepGraph,
    empty_past,
    kv_shape,
)
from bridge.lm.loading import cache_dir, encode_prompt
from bridge.provenance import library_versions

FP32_TOLERANCE = 1e-3  # max abs logit difference allowed between ONNX Runtime and torch in fp32
# int8 changes logits by design; beyond this it also changes answers (measured on SmolLM2 with activations quantized
# too: diff 19, event accuracy 0.68 -> 0.07), so such an export is recorded as failed and never loaded.
INT8_TOLERANCE = 1.0
# int8 weights: one scale per block of this many input rows (finetune.export.quantize_weights)
INT8_BLOCK = 32
OPSET = 17
# First-use exports kept in the cache (about 540 MB each for SmolLM2-135M in fp32); building one more removes the
# least recently used beyond this.
MAX_CACHED_EXPORTS = 4
PART = ".part"  # a build's temporary folder: <hash>-graphN.part<pid>
STALE_PART_S = 24 * 3600  # a temporary folder this old belongs to no running build
# Project-written headlines used only to time and check the export.
SAMPLE_HEADLINES = [
    "Fed raises rates by 25 basis points and signals more hikes ahead",
    "ECB leaves rates unchanged; Lagarde says inflation risks are balanced",
    "US nonfarm payrolls 150K vs 200K expected; unemployment rate rises to 4.1%",
    "Oil falls 3% as OPEC+ agrees to raise output",
    "Bank of Japan intervenes to support the yen",
    "UK retail sales beat forecasts in March",
    "Swiss franc jumps as SNB scraps the EUR/CHF floor",
    "China's exports slump, Australian dollar slides",
]


def sample_inputs(tokenizer, texts: list[str], schema, max_tokens: int):
    """A padded prefill chunk for ``texts`` (right padding, as the analyzer feeds it)."""
    seqs = [encode_prompt(tokenizer, t, schema, max_tokens=max_tokens) for t in texts]
    width = max(len(s) for s in seqs)
    ids = np.full((len(seqs), width), tokenizer.pad_token_id, np.int64)
    mask = np.zeros((len(seqs), width), np.int64)
    for b, s in enumerate(seqs):
        ids[b, : len(s)], mask[b, : len(s)] = s, 1
    pos = np.maximum(np.cumsum(mask, 1) - 1, 0)
    pick = np.array([[len(s) - 1] for s in seqs], np.int64)
    return ids, mask, pos, pick


def export_onnx(model, path: Path) -> None:
    """Trace ``StepGraph(model)`` to ONNX with dynamic batch, chunk and cache lengths."""
    layers, _, _ = kv_shape(model.config)
    graph = StepGraph(model).eval()
    b, c, p = 2, 3, 4
    ids = torch.ones((b, c), dtype=torch.long)
    mask = torch.ones((b, p + c), dtype=torch.long)
    pos = torch.arange(p, p + c).repeat(b, 1)
    pick = torch.tensor([[c - 1, 0]] * b, dtype=torch.long)
    past = [torch.randn(b, t.shape[1], p, t.shape[3]) for t in empty_past(b, model.config)]
    past_names = [f"past_{kind}_{i}" for i in range(layers) for kind in ("key", "value")]
    present_names = [f"present_{kind}_{i}" for i in range(layers) for kind in ("key", "value")]
    dyn = {"input_ids": {0: "batch", 1: "chunk"}, "attention_mask": {0: "batch", 1: "total"}}
    dyn.update({"position_ids": {0: "batch", 1: "chunk"}, "pick": {0: "batch", 1: "picks"}})
    dyn["logits"] = {0: "batch", 1: "picks"}
    dyn.update({n: {0: "batch", 2: "past"} for n in past_names})
    dyn.update({n: {0: "batch", 2: "total"} for n in present_names})
    path.parent.mkdir(parents=True, exist_ok=True)
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter(
            "ignore"
        )  # tracer warnings about Python control flow on shapes fixed at trace time
        torch.onnx.export(
            graph,
            (ids, mask, pos, pick, *past),
            str(path),
            input_names=["input_ids", "attention_mask", "position_ids", "pick", *past_names],
            output_names=["logits", *present_names],
            dynamic_axes=dyn,
            opset_version=OPSET,
            dynamo=False,
        )


def ort_session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def check_parity(model, session, tokenizer, schema, max_tokens: int) -> dict:
    """Max abs logit difference torch vs ONNX Runtime over the step shapes draft and verify feeds, each backend on
    its own KV cache: a padded prefill, one token on top of the cache, then that token rejected (masked out, a hole
    in the mask) and a three-token draft after it with logits picked at two of its positions."""
    graph = StepGraph(model).eval()
    ids, mask, pos, pick = sample_inputs(tokenizer, SAMPLE_HEADLINES[:2], schema, max_tokens)
    t_past = empty_past(ids.shape[0], model.config)
    o_past = [p.numpy() for p in t_past]
    names = [i.name for i in session.get_inputs()]
    diffs, top1 = [], True
    for step in range(3):
        with torch.inference_mode():
            t_out = graph(*(torch.from_numpy(x) for x in (ids, mask, pos, pick)), *t_past)
        o_out = session.run(None, dict(zip(names, [ids, mask, pos, pick, *o_past], strict=True)))
        t_logits = t_out[0].numpy()
        diffs.append(float(np.abs(t_logits - o_out[0]).max()))
        top1 = top1 and bool((t_logits.argmax(-1) == o_out[0].argmax(-1)).all())
        if step == 2:
            break
        t_past, o_past = [t.clone() for t in t_out[1:]], o_out[1:]
        nxt = t_logits[:, -1].argmax(-1)[:, None].astype(np.int64)
        if step == 0:  # one token per row on top of the cache (the chosen token)
            ids, pick = nxt, np.zeros((len(nxt), 1), np.int64)
            mask = np.concatenate([mask, np.ones_like(nxt)], 1)
        else:  # that token rejected, and a draft of three fed after the hole
            mask[:, -1] = 0
            ids = np.concatenate([nxt, nxt + 1, nxt + 2], 1) % model.config.vocab_size
            pick = np.array([[0, 2]] * len(nxt), np.int64)
            mask = np.concatenate([mask, np.ones_like(ids)], 1)
        pos = (np.cumsum(mask, 1) - 1)[:, -ids.shape[1] :]
    return {"max_abs_diff": max(diffs), "top1_agree": top1}


def cached_export_dir(weights_hash: str) -> Path:
    """Where the first-use export of some weights (their ``checkpoint_hash``) lives: one folder per hash and graph
    version."""
    return cache_dir() / "onnx" / f"{weights_hash}-graph{GRAPH_VERSION}"


def build_cached_export(
    model_dir: Path, weights_hash: str, model, tokenizer, schema, max_tokens: int
) -> dict:
    """Export ``model`` (the loaded, merged weights of ``model_dir``) into ``cached_export_dir`` and check its parity
    against torch; returns the parity record. A failed check keeps only the record, so it is not retried at every
    start. Written to a temporary folder and renamed, so a crash or a second process never leaves half an export in
    its place (a killed build's temporary folder is removed by a later build's prune)."""
    from tqdm.auto import tqdm

    folder = cached_export_dir(weights_hash)
    tmp = folder.with_name(f"{folder.name}{PART}{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with tqdm(total=2, desc=f"ONNX export of {model_dir.name} (first use, once)", unit="step") as bar:
            export_onnx(model, tmp / ONNX_FILE)
            bar.update()
            parity = check_parity(model, ort_session(tmp / ONNX_FILE), tokenizer, schema, max_tokens)
            bar.update()
    except BaseException as exc:  # disk full, interrupted: no half export stays behind
        shutil.rmtree(tmp, ignore_errors=True)
        # a build that cannot work with these weights and libraries is recorded; a full disk, too little memory or a
        # missing library may be gone by the next start, which tries again
        if isinstance(exc, Exception) and not isinstance(exc, (OSError, MemoryError, ImportError)):
            record_build_error(folder, model_dir, weights_hash, exc)
        raise
    passed = parity["max_abs_diff"] <= FP32_TOLERANCE
    record = {
        **build_record(model_dir, weights_hash, model.config),
        "fp32": {**parity, "tolerance": FP32_TOLERANCE, "passed": passed},
    }
    if not passed:
        (tmp / ONNX_FILE).unlink(missing_ok=True)
    (tmp / PARITY_FILE).write_text(json.dumps(record, indent=2) + "\n")
    try:
        tmp.rename(folder)
    except OSError:
        # a folder is there already: another process finished first (its export is the same), or one unusable (its
        # model file removed): replace that
        if not (folder / PARITY_FILE).is_file() or (passed and not (folder / ONNX_FILE).is_file()):
            shutil.rmtree(folder, ignore_errors=True)
            with contextlib.suppress(OSError):
                tmp.rename(folder)
        shutil.rmtree(tmp, ignore_errors=True)
    prune_cached_exports(keep=folder)
    return record


def build_record(model_dir: Path, weights_hash: str, config=None) -> dict:
    """What a first-use build's ``parity.json`` says besides its outcome."""
    shape = dict(zip(("layers", "kv_heads", "head_dim"), kv_shape(config), strict=True)) if config else {}
    return {
        "model": str(model_dir),
        "checkpoint": weights_hash,
        "graph": GRAPH_VERSION,
        **shape,
        "opset": OPSET,
        "built": "on first use",
        "versions": library_versions(),
    }


def record_build_error(folder: Path, model_dir: Path, weights_hash: str, exc: Exception) -> None:
    """Record a build that raised as a failed one, so that later starts use torch at once instead of spending the
    build again; removing ``folder`` retries it. Best effort: where the cache cannot be written (full, read-only), no
    record is left and the next start tries again."""
    record = {
        **build_record(model_dir, weights_hash),
        "fp32": {"passed": False, "error": f"{type(exc).__name__}: {exc}"},
    }
    tmp = folder.with_name(f"{folder.name}{PART}{os.getpid()}")
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / PARITY_FILE).write_text(json.dumps(record, indent=2) + "\n")
        tmp.rename(folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


def prune_cached_exports(keep: Path, limit: int | None = None) -> list[Path]:
    """Remove the least recently used first-use exports beyond ``limit`` (never ``keep``, the one just built);
    returns what was removed. The analyzer touches an export's folder each time it loads it, so its mtime is its
    last use. Folders holding only a failed parity record are small and kept (they stop a rebuild at every start)."""
    limit = MAX_CACHED_EXPORTS if limit is None else limit
    now = time.time()
    removed, exports = [], []
    for d in (cache_dir() / "onnx").glob("*-graph*"):
        try:
            mtime = d.stat().st_mtime
            if PART in d.name:
                # a build in progress elsewhere, or one a killed process left: gone after a day
                if now - mtime > STALE_PART_S:
                    removed.append(d)
            elif d != keep and (d / ONNX_FILE).is_file():
                exports.append((mtime, d))
        except OSError:  # removed meanwhile by another process
            continue
    exports.sort(reverse=True)
    removed += [d for _, d in exports[max(0, limit - 1) :]]
    for d in removed:
        shutil.rmtree(d, ignore_errors=True)
    return removed
