"""The fine-tuned language model as an ``Analyzer``: constrained decoding over the label schema, torch or ONNX Runtime.

Decoding (deterministic, never unparseable) is ``bridge.lm.decoding``'s: the answer in the schema's key order,
closed-vocabulary values by their token tries, ``related`` as an open list of instrument-like tokens, greedy at
every decision, several decisions checked per forward pass by drafting what follows (one item alone). The text is
then read by ``bridge.prompt.parse_output`` (the one parser); anything it still cannot read falls back to neutral
and is counted in ``stats["fallbacks"]``.

Backends: ``torch`` (eager, CPU or CUDA) and ``onnx`` (ONNX Runtime, the step graph exported by ``finetune.export``
with its KV cache as inputs/outputs). ``auto`` on a CPU uses ONNX: the model directory's export where its parity
check passed, else one built into the cache on first use (``bridge.lm.onnx.build_cached_export``); torch where that
build failed its parity check, and on GPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bridge.analysis import Analyzer
from bridge.errors import ModelError, UserError
from bridge.lm.decoding import LATENCY_AHEAD, THROUGHPUT_AHEAD, Decoder, Draft
from bridge.lm.loading import (
    ONNX_DIR,
    base_of,
    checkpoint_hash,
    encode_prompt,
    load_model,
    load_tokenizer,
    model_dir_of,
    read_model_info,
    resolve_base,
)
from bridge.prompt import format_input, parse_output, related_entries
from bridge.schema import load_schema
from bridge.types import Analysis, NewsItem

log = logging.getLogger(__name__)
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "default"
BACKENDS = ("auto", "torch", "onnx")
DEFAULT_BATCH = 8
ONNX_FILE = "model.onnx"
ONNX_INT8_FILE = "model.int8.onnx"
PARITY_FILE = "parity.json"
# the step graph's interface; 2: logits at the ``pick`` positions (an export of an older version is not used)
GRAPH_VERSION = 2


# ---- the step graph: one forward over a chunk appended to a KV cache ----------------------------------------------


class StepGraph(nn.Module):
    """``(ids, mask, positions, pick, *past) -> (logits at pick, *present)``.

    This is the forward path the analyzer runs, in torch and (exported) in ONNX Runtime. ``past`` is the flat list
    ``k0, v0, k1, v1, ...`` of shape (batch, kv_heads, past_len, head_dim); ``mask`` covers past and chunk. ``pick``
    (batch, k) names the chunk positions whose next-token logits are wanted, so the output layer (a fifth of
    SmolLM2's weights, most of Gemma's) runs at those positions only.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.decoder = model.get_decoder()
        self.head = model.get_output_embeddings()
        self.softcap = getattr(model.config, "final_logit_softcapping", None)
        self.n_layers = int(model.config.num_hidden_layers)

    def forward(self, input_ids, attention_mask, position_ids, pick, *past):
        from transformers import DynamicCache

        cache = DynamicCache()
        for i in range(self.n_layers):
            cache.update(past[2 * i], past[2 * i + 1], i)
        out = self.decoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=True,
        )
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)[:, None]
        logits = self.head(out.last_hidden_state[rows, pick]).float()
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        present = []
        for layer in out.cache.layers:
            present += [layer.keys, layer.values]
        return (logits, *present)


def kv_shape(config) -> tuple[int, int, int]:
    """(layers, kv heads, head dim) of a causal LM config (GPT-2 and Llama-style names)."""
    layers = int(config.num_hidden_layers)
    heads = int(config.num_attention_heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    return layers, kv_heads, head_dim


def empty_past(batch: int, config, dtype=torch.float32, device="cpu") -> list[torch.Tensor]:
    layers, kv_heads, head_dim = kv_shape(config)
    return [torch.zeros(batch, kv_heads, 0, head_dim, dtype=dtype, device=device) for _ in range(2 * layers)]


class _TorchRunner:
    def __init__(self, model: nn.Module):
        self.model = model
        self.graph = StepGraph(model).eval()
        self.config = model.config
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype

    def empty(self, batch: int):
        return empty_past(batch, self.config, self.dtype, self.device)

    @torch.inference_mode()
    def __call__(self, ids, mask, pos, pick, past):
        d = self.device
        out = self.graph(
            torch.from_numpy(ids).to(d), torch.from_numpy(mask).to(d), torch.from_numpy(pos).to(d),
            torch.from_numpy(pick).to(d), *past,
        )  # fmt: skip
        return out[0].float().cpu().numpy(), list(out[1:])


class _OnnxRunner:
    def __init__(self, path: Path, meta: dict):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"ONNX Runtime cannot load the export: {exc}", path=path) from exc
        self.layers, self.kv_heads, self.head_dim = meta["layers"], meta["kv_heads"], meta["head_dim"]
        self.past_names = [i.name for i in self.session.get_inputs()][4:]

    def empty(self, batch: int):
        return [
            np.zeros((batch, self.kv_heads, 0, self.head_dim), np.float32) for _ in range(2 * self.layers)
        ]

    def __call__(self, ids, mask, pos, pick, past):
        feed = {"input_ids": ids, "attention_mask": mask, "position_ids": pos, "pick": pick}
        feed.update(zip(self.past_names, past, strict=True))
        out = self.session.run(None, feed)
        return out[0], out[1:]


class LMAnalyzer:
    """A fine-tuned causal LM reading news in the terms of a label schema (see the module docstring)."""

    def __init__(
        self,
        model: str | Path | None = None,
        backend: str = "auto",
        batch_size: int = DEFAULT_BATCH,
        device: str = "cpu",
        int8: bool = False,
        speculate: bool = True,
    ):
        if backend not in BACKENDS:
            raise UserError(f"unknown backend {backend!r}", hint=f"one of {', '.join(BACKENDS)}")
        if batch_size < 1:
            raise UserError(f"batch size must be >= 1, got {batch_size}")
        self.model_dir = model_dir_of(model if model is not None else DEFAULT_MODEL_DIR)
        self.info = read_model_info(self.model_dir)
        self.schema = load_schema(self.info.schema)
        self.batch_size = batch_size
        self._hash = checkpoint_hash(self.model_dir)  # read once: it hashes the weight files
        self._onnx_path, self._onnx_meta = self._onnx_export(int8)
        # auto on the CPU: ONNX Runtime, with the export built into the cache on first use where none exists yet
        # (unless an earlier build failed its parity check: then torch)
        self._build_onnx = False
        if backend == "auto":
            if self._onnx_path is not None:
                backend = "onnx"
            elif device == "cpu" and not int8 and not self._onnx_failed_before():
                backend, self._build_onnx = "onnx", True
            else:
                backend = "torch"
        if backend == "onnx" and self._onnx_path is None and not self._build_onnx:
            raise ModelError(
                "no ONNX export with a passing parity check",
                path=self.model_dir / ONNX_DIR,
                hint="run python -m finetune.export RUN_DIR --onnx, or use --backend torch",
            )
        if backend == "torch" or self._build_onnx:
            # a missing base is an error now, not at the first item
            resolve_base(base_of(self.model_dir, self.info))
        self.backend, self.device = backend, device
        self.name = self._name(backend, int8)
        self.stats = {"items": 0, "fallbacks": 0, "forwards": 0, "seconds": 0.0}
        self.speculate = speculate
        # guessed decisions a draft holds (bridge.lm.decoding); "auto": LATENCY_AHEAD alone, THROUGHPUT_AHEAD in a batch
        self.ahead: int | None | str = "auto"

    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        tokenizer,
        info,
        batch_size: int = DEFAULT_BATCH,
        name: str = "lm:in-memory",
        speculate: bool = True,
    ):
        """An analyzer over a model already in memory (e.g. during training, to score the dev set): torch backend,
        the model's own dtype and device. The model is put in eval mode; the caller restores its mode."""
        self = cls.__new__(cls)
        self.model_dir = None
        self.info = info
        self.schema = load_schema(info.schema)
        self.batch_size = batch_size
        self.tokenizer = tokenizer
        self.runner = _TorchRunner(model)
        self.backend = "torch"
        self.decoder = Decoder(tokenizer, self.schema)
        self.name = name
        self.stats = {"items": 0, "fallbacks": 0, "forwards": 0, "seconds": 0.0}
        self.speculate = speculate
        # guessed decisions a draft holds (bridge.lm.decoding); "auto": LATENCY_AHEAD alone, THROUGHPUT_AHEAD in a batch
        self.ahead: int | None | str = "auto"
        return self

    # The weights load on first use: a backtest whose every item is in the analysis cache never loads them.
    @cached_property
    def _weights(self) -> tuple:
        """(tokenizer, runner) of this directory and backend."""
        if self.backend == "onnx" and not self._build_onnx:
            return self._tokenizer(), _OnnxRunner(self._onnx_path, self._onnx_meta)
        model_obj, tokenizer, _ = load_model(self.model_dir)
        if self._build_onnx:
            from bridge.lm.onnx import build_cached_export

            try:
                record = build_cached_export(
                    self.model_dir, self._hash, model_obj, tokenizer, self.schema, self.info.max_prompt_tokens
                )
                why = (
                    f"failed its parity check (max abs logit difference {record['fp32']['max_abs_diff']:.2e})"
                )
            except Exception as exc:  # a full or read-only cache, a tracing error: torch still answers
                why = f"could not be built ({type(exc).__name__}: {exc})"
            self._onnx_path, self._onnx_meta = self._onnx_export(False)
            if self._onnx_path is not None:
                del model_obj
                return tokenizer, _OnnxRunner(self._onnx_path, self._onnx_meta)
            from bridge.lm.onnx import cached_export_dir

            folder = cached_export_dir(self._hash)
            # a recorded failure pins torch until its folder goes; a full disk or a missing library is not recorded
            then = (
                f"remove {folder} to build it again"
                if (folder / "parity.json").exists()
                else "the next start tries again"
            )
            log.warning("ONNX export of %s %s: analysing with torch (%s)", self.model_dir, why, then)
            self.backend = "torch"
            self.name = self._name("torch", False)
        return tokenizer, _TorchRunner(model_obj.to(self.device))

    @cached_property
    def tokenizer(self):
        return self._weights[0]

    @cached_property
    def runner(self):
        return self._weights[1]

    @cached_property
    def decoder(self) -> Decoder:
        return Decoder(self.tokenizer, self.schema)

    @property
    def loaded(self) -> bool:
        """Whether the weights are in memory."""
        return "runner" in self.__dict__

    @property
    def cache_names(self) -> list[str]:
        """The names under which a cache may hold this analyzer's analyses, its own first. Before a first-use ONNX
        build has run, torch may yet answer (the build can fail, and one that could not write its record leaves
        nothing to say so), so the torch name too: torch's answers are what the ONNX export is checked against."""
        if getattr(self, "_build_onnx", False) and not self.loaded:
            return [self.name, self._name("torch", False)]
        return [self.name]

    def _tokenizer(self):
        if (self.model_dir / "tokenizer_config.json").is_file():
            return load_tokenizer(str(self.model_dir))
        return load_tokenizer(resolve_base(base_of(self.model_dir, self.info)))

    def _name(self, backend: str, int8: bool) -> str:
        """The backtester caches analyses by this name: it changes whenever the weights or the backend change."""
        label = "default" if self.model_dir.resolve() == DEFAULT_MODEL_DIR.resolve() else self.model_dir.name
        if label == "model":
            label = self.model_dir.parent.name
        suffix = "-int8" if backend == "onnx" and int8 else ""
        return f"lm:{label}@{self._hash}:{backend}{suffix}"

    def _onnx_failed_before(self) -> bool:
        from bridge.lm.onnx import cached_export_dir

        parity = cached_export_dir(self._hash) / PARITY_FILE
        try:
            record = json.loads(parity.read_text())
        except (OSError, ValueError):  # none yet, or unreadable: build (again)
            return False
        return isinstance(record, dict) and not (record.get("fp32") or {}).get("passed")

    def _onnx_export(self, int8: bool) -> tuple[Path | None, dict]:
        """The model directory's own export, else (fp32) the one built into the cache, where it is usable."""
        path, meta = self._onnx_export_in(self.model_dir / ONNX_DIR, int8)
        if path is None and not int8:
            from bridge.lm.onnx import cached_export_dir

            path, meta = self._onnx_export_in(cached_export_dir(self._hash), int8)
            if path is not None:
                # its last use, for the cache's bound (a read-only cache is fine)
                with contextlib.suppress(OSError):
                    os.utime(path.parent)
        return path, meta

    def _onnx_export_in(self, folder: Path, int8: bool) -> tuple[Path | None, dict]:
        parity = folder / PARITY_FILE
        if not parity.is_file():
            return None, {}
        try:
            meta = json.loads(parity.read_text())
        except json.JSONDecodeError:
            return None, {}
        key = "int8" if int8 else "fp32"
        entry = meta.get(key) or {}
        path = folder / (ONNX_INT8_FILE if int8 else ONNX_FILE)
        if not entry.get("passed") or not path.is_file() or meta.get("graph") != GRAPH_VERSION:
            return None, {}
        # An export of other weights than these must not be used: the checkpoint hash is recorded at export time.
        if meta.get("checkpoint") != self._hash:
            return None, {}
        return path, meta

    def analyze(self, items: Sequence[NewsItem]) -> list[Analysis]:
        """One analysis per item, in order."""
        return self.analyze_texts([format_input(it) for it in items])

    def analyze_texts(self, texts: Sequence[str], progress=None) -> list[Analysis]:
        """Analyses for ``input`` texts as ``bridge.prompt.format_input`` writes them, in batches, in input order.

        Batches are grouped by prompt length (items of similar length together, so little padding is computed);
        each item's answer does not depend on its batch. ``progress`` (a callable) is called with the number of
        items done after each batch, e.g. a tqdm bar's ``update``.
        """
        texts = list(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[Analysis | None] = [None] * len(texts)
        for start in range(0, len(texts), self.batch_size):
            chunk = order[start : start + self.batch_size]
            for i, a in zip(chunk, self._batch([texts[i] for i in chunk]), strict=True):
                out[i] = a
            if progress is not None:
                progress(len(chunk))
        return out  # type: ignore[return-value]

    def _batch(self, texts: list[str]) -> list[Analysis]:
        """Decode a batch: each pass feeds every unfinished item's draft (``bridge.lm.decoding``), its prompt too on
        the first pass, and reads the logits at the drafted positions back into its answer. Every pass appends its
        width of cache entries to every row; a row sees only its prompt's and its checked answer's entries."""
        t0 = time.perf_counter()
        n = len(texts)
        pad = self.tokenizer.pad_token_id
        prompts = [
            encode_prompt(
                self.tokenizer,
                t,
                self.schema,
                max_tokens=self.info.max_prompt_tokens,
                template=self.info.prompt_template,
            )
            for t in texts
        ]
        answers = [self.decoder.new() for _ in range(n)]
        ahead = (LATENCY_AHEAD if n == 1 else THROUGHPUT_AHEAD) if self.ahead == "auto" else self.ahead
        ahead = ahead if self.speculate else 0
        past = self.runner.empty(n)
        mask = np.zeros((n, 0), dtype=np.int64)
        while not all(a.done for a in answers):
            drafts = [
                Draft() if a.done else self.decoder.draft(a, None if a.prompt_cols else p, ahead)
                for a, p in zip(answers, prompts, strict=True)
            ]
            total, width = mask.shape[1], max(len(d.tokens) for d in drafts)
            ids = np.full((n, width), pad, dtype=np.int64)
            pos = np.zeros((n, width), dtype=np.int64)
            # what each row sees: its prompt's and checked answer's entries in the cache, and its chunk
            mask = np.zeros((n, total + width), dtype=np.int64)
            picks = [sorted(d.wants) for d in drafts]
            pick = np.zeros((n, max(1, max(len(p) for p in picks))), dtype=np.int64)
            for b, (a, d) in enumerate(zip(answers, drafts, strict=True)):
                m = len(d.tokens)
                ids[b, :m], pos[b, :m] = d.tokens, range(d.first_pos, d.first_pos + m)
                mask[b, a.visible] = 1
                mask[b, total : total + m] = 1
                pick[b, : len(picks[b])] = picks[b]
            logits, past = self.runner(ids, mask, pos, pick, past)
            self.stats["forwards"] += 1
            for b, (a, d) in enumerate(zip(answers, drafts, strict=True)):
                if d.tokens:
                    self.decoder.read(a, d, {q: logits[b, k] for k, q in enumerate(picks[b])}, total)
        analyses = []
        related = len(self.schema.keys) - 1
        for ans in answers:
            cut = ans.starts.get(related, len(ans.tokens))
            text = self.tokenizer.decode(ans.tokens[:cut], skip_special_tokens=True)
            text += " " + self._clean_related(
                self.tokenizer.decode(ans.tokens[cut:], skip_special_tokens=True)
            )
            parsed = parse_output(text, self.schema, analyzer=self.name)
            conf = min(1.0, max(0.0, ans.confidence))
            analyses.append(dataclasses.replace(parsed.analysis, confidence=conf if parsed.ok else 0.0))
            self.stats["fallbacks"] += int(parsed.analysis.fallback)
            self.decoder.remember(ans)
        self.stats["items"] += n
        self.stats["seconds"] += time.perf_counter() - t0
        return analyses

    def _clean_related(self, raw: str) -> str:
        """The related list as the parser reads it: instrument-like entries, upper case, no repeats, else none."""
        entries = [e for e in related_entries(raw)[0] if e.lower() != self.schema.related_none.lower()]
        return ", ".join(entries) if entries else self.schema.related_none

    def answer_texts(self, texts: Sequence[str]) -> list[str]:
        """The one-line answers the analyses were parsed from (for evaluation and debugging)."""
        from bridge.prompt import format_output

        return [format_output(a, self.schema) for a in self.analyze_texts(texts)]


def load_analyzer(model: str | None = None, backend: str = "auto") -> Analyzer:
    """The LM analyzer for a run/model directory; ``None`` means the shipped default model (bridge/models/default)."""
    if model is None and not (DEFAULT_MODEL_DIR / "bridge_model.json").is_file():
        raise ModelError(
            "the default model is not installed",
            path=DEFAULT_MODEL_DIR,
            hint="train one with python -m finetune.train (see bridge/models/TRAINING.md) or pass --model",
        )
    return LMAnalyzer(model, backend=backend)
