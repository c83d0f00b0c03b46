"""The fine-tuned language model as an ``Analyzer``: constrained decoding over the label schema, torch or ONNX Runtime.

Decoding (deterministic, never unparseable):

- The answer is produced piece by piece in the schema's key order. The fixed text between values (``, market:``) is
  appended without asking the model. Each closed-vocabulary field (event, market, sector, sentiment) is chosen by
  walking a token trie of its allowed values: where the trie has one way on, the token is appended without a decision;
  where it branches, the model's logits restricted to the allowed tokens pick the greedy (argmax) branch. One forward
  pass per real decision, with a KV cache, so a prompt is read once.
- ``related`` is an open list: tokens are restricted to instrument-like text (letters, digits, ``._/-``, comma, space)
  and end-of-sequence, at most ``MAX_RELATED_TOKENS``.
- The text is then read by ``bridge.prompt.parse_output`` (the one parser); anything it still cannot read falls back
  to neutral and is counted in ``stats["fallbacks"]``.
- Confidence is the probability of the chosen sentiment level under the constrained distribution: the product over
  the sentiment decisions of the softmax over the allowed tokens at that step.

Backends: ``torch`` (eager, CPU or CUDA) and ``onnx`` (ONNX Runtime, the step graph exported by ``finetune.export``
with its KV cache as inputs/outputs). ``auto`` uses ONNX when the model directory has an export whose parity check passed.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bridge.analysis import Analyzer
from bridge.errors import ModelError, UserError
from bridge.lm.loading import (
    ONNX_DIR,
    base_of,
    checkpoint_hash,
    encode,
    encode_prompt,
    field_prefix,
    load_model,
    load_tokenizer,
    model_dir_of,
    read_model_info,
    resolve_base,
)
from bridge.prompt import format_input, parse_output, related_entries
from bridge.schema import Schema, load_schema
from bridge.types import Analysis, NewsItem

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "default"
BACKENDS = ("auto", "torch", "onnx")
MAX_RELATED_TOKENS = 12
DEFAULT_BATCH = 8
ONNX_FILE = "model.onnx"
ONNX_INT8_FILE = "model.int8.onnx"
PARITY_FILE = "parity.json"


# ---- the step graph: one forward over a chunk appended to a KV cache ----------------------------------------------


class StepGraph(nn.Module):
    """``(ids, mask, positions, last_index, *past) -> (logits at last_index, *present)``.

    This is the forward path the analyzer runs, in torch and (exported) in ONNX Runtime. ``past`` is the flat list
    ``k0, v0, k1, v1, ...`` of shape (batch, kv_heads, past_len, head_dim); ``mask`` covers past and chunk.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.n_layers = int(model.config.num_hidden_layers)

    def forward(self, input_ids, attention_mask, position_ids, last_index, *past):
        from transformers import DynamicCache

        cache = DynamicCache()
        for i in range(self.n_layers):
            cache.update(past[2 * i], past[2 * i + 1], i)
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=True,
        )
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)
        logits = out.logits[rows, last_index].float()
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
        self.graph = StepGraph(model).eval()
        self.config = model.config
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype

    def empty(self, batch: int):
        return empty_past(batch, self.config, self.dtype, self.device)

    @torch.inference_mode()
    def __call__(self, ids, mask, pos, last, past):
        d = self.device
        out = self.graph(
            torch.from_numpy(ids).to(d), torch.from_numpy(mask).to(d), torch.from_numpy(pos).to(d),
            torch.from_numpy(last).to(d), *past,
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

    def __call__(self, ids, mask, pos, last, past):
        feed = {"input_ids": ids, "attention_mask": mask, "position_ids": pos, "last_index": last}
        feed.update(zip(self.past_names, past, strict=True))
        out = self.session.run(None, feed)
        return out[0], out[1:]


# ---- constrained decoding -----------------------------------------------------------------------------------------


class _Trie:
    """Token trie of a field's allowed values (each tokenized with its leading space, as in training)."""

    def __init__(self):
        self.children: dict[int, _Trie] = {}
        self.value: str | None = None  # set where a whole value ends

    def add(self, ids: list[int], value: str) -> None:
        node = self
        for t in ids:
            node = node.children.setdefault(t, _Trie())
        node.value = value


def _allowed_related(tokenizer) -> np.ndarray:
    """Vocabulary mask of tokens that may appear in the related list (instrument-like text, comma, space)."""
    ok = re.compile(r"^[ ,]*[A-Za-z0-9._/-]*$")
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    mask = np.array([bool(t) and bool(ok.match(t)) for t in texts], dtype=bool)
    mask[tokenizer.eos_token_id] = True
    return mask


def _softmax_pick(logits: np.ndarray, allowed: list[int]) -> tuple[int, float]:
    """Greedy choice among ``allowed`` (ties: the first listed) and its probability among them."""
    sub = logits[allowed].astype(np.float64)
    k = int(np.argmax(sub))
    p = np.exp(sub - sub[k])
    return allowed[k], float(1.0 / p.sum())


class _Decoder:
    """Builds each answer piece by piece; a generator per item yields whenever it needs the model's next logits."""

    def __init__(self, tokenizer, schema: Schema):
        self.tok = tokenizer
        self.schema = schema
        self.eos = tokenizer.eos_token_id
        self.prefix_ids = [encode(tokenizer, field_prefix(schema, i)) for i in range(len(schema.keys))]
        self.tries: dict[str, _Trie] = {}
        for f in schema.fields:
            self.tries[f.name] = self._trie([(v, v) for v in f.values])
        self.tries["sentiment"] = self._trie([(name, name) for name, _ in schema.sentiment_levels])
        self.related_mask = _allowed_related(tokenizer)
        self.related_ids = np.flatnonzero(self.related_mask).tolist()

    def _trie(self, values: list[tuple[str, str]]) -> _Trie:
        root = _Trie()
        seen: dict[tuple[int, ...], str] = {}
        for text, value in values:
            ids = encode(self.tok, " " + text)
            if tuple(ids) in seen:
                raise ModelError(f"values {seen[tuple(ids)]!r} and {value!r} tokenize identically")
            seen[tuple(ids)] = value
            root.add(ids, value)
        return root

    def program(self, seq: list[int], result: dict):
        """Append the answer to ``seq``; ``yield`` hands control back until the logits of ``seq`` are sent in."""
        keys = self.schema.keys
        confidence = 1.0
        for i, key in enumerate(keys):
            seq.extend(self.prefix_ids[i])
            if key == self.schema.related_name:
                result["related_start"] = len(seq)
                for _ in range(MAX_RELATED_TOKENS):
                    logits = yield
                    tok, _p = _softmax_pick(logits, self.related_ids)
                    if tok == self.eos:
                        break
                    seq.append(tok)
                continue
            # the token that follows a complete value: the next prefix, or EOS after the last key
            after = self.prefix_ids[i + 1][0] if i + 1 < len(keys) else self.eos
            node = self.tries[key]
            while node.children:
                options = list(node.children)
                if node.value is not None:
                    options.append(after)  # a complete value that is also the start of a longer one
                if len(options) == 1:
                    tok = options[0]  # forced: no decision, no forward pass
                else:
                    logits = yield
                    tok, p = _softmax_pick(logits, options)
                    if key == "sentiment":
                        confidence *= p
                if tok not in node.children:
                    break
                seq.append(tok)
                node = node.children[tok]
        result["confidence"] = confidence


def _pad_chunks(chunks: list[list[int]], pad: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    width = max(1, max(len(c) for c in chunks))
    ids = np.full((len(chunks), width), pad, dtype=np.int64)
    mask = np.zeros((len(chunks), width), dtype=np.int64)
    for b, c in enumerate(chunks):
        ids[b, : len(c)] = c
        mask[b, : len(c)] = 1
    last = np.array([max(len(c) - 1, 0) for c in chunks], dtype=np.int64)
    return ids, mask, last


class LMAnalyzer:
    """A fine-tuned causal LM reading news in the terms of a label schema (see the module docstring)."""

    def __init__(
        self,
        model: str | Path | None = None,
        backend: str = "auto",
        batch_size: int = DEFAULT_BATCH,
        device: str = "cpu",
        int8: bool = False,
    ):
        if backend not in BACKENDS:
            raise UserError(f"unknown backend {backend!r}", hint=f"one of {', '.join(BACKENDS)}")
        if batch_size < 1:
            raise UserError(f"batch size must be >= 1, got {batch_size}")
        self.model_dir = model_dir_of(model if model is not None else DEFAULT_MODEL_DIR)
        self.info = read_model_info(self.model_dir)
        self.schema = load_schema(self.info.schema)
        self.batch_size = batch_size
        self._onnx_path, self._onnx_meta = self._onnx_export(int8)
        if backend == "auto":
            backend = "onnx" if self._onnx_path is not None else "torch"
        if backend == "onnx" and self._onnx_path is None:
            raise ModelError(
                "no ONNX export with a passing parity check",
                path=self.model_dir / ONNX_DIR,
                hint="run python -m finetune.export RUN_DIR --onnx, or use --backend torch",
            )
        if backend == "torch":
            # a missing base is an error now, not at the first item
            resolve_base(base_of(self.model_dir, self.info))
        self.backend, self.device = backend, device
        label = "default" if self.model_dir.resolve() == DEFAULT_MODEL_DIR.resolve() else self.model_dir.name
        if label == "model":
            label = self.model_dir.parent.name
        suffix = "-int8" if backend == "onnx" and int8 else ""
        # The backtester caches analyses by this name: it must change whenever the weights or the backend change.
        self.name = f"lm:{label}@{checkpoint_hash(self.model_dir)}:{backend}{suffix}"
        self.stats = {"items": 0, "fallbacks": 0, "forwards": 0, "seconds": 0.0}

    @classmethod
    def from_model(
        cls, model: nn.Module, tokenizer, info, batch_size: int = DEFAULT_BATCH, name: str = "lm:in-memory"
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
        self.decoder = _Decoder(tokenizer, self.schema)
        self.name = name
        self.stats = {"items": 0, "fallbacks": 0, "forwards": 0, "seconds": 0.0}
        return self

    # The weights load on first use: a backtest whose every item is in the analysis cache never loads them.
    @cached_property
    def _weights(self) -> tuple:
        """(tokenizer, runner) of this directory and backend."""
        if self.backend == "onnx":
            return self._tokenizer(), _OnnxRunner(self._onnx_path, self._onnx_meta)
        model_obj, tokenizer, _ = load_model(self.model_dir)
        return tokenizer, _TorchRunner(model_obj.to(self.device))

    @cached_property
    def tokenizer(self):
        return self._weights[0]

    @cached_property
    def runner(self):
        return self._weights[1]

    @cached_property
    def decoder(self) -> _Decoder:
        return _Decoder(self.tokenizer, self.schema)

    @property
    def loaded(self) -> bool:
        """Whether the weights are in memory."""
        return "runner" in self.__dict__

    def _tokenizer(self):
        if (self.model_dir / "tokenizer_config.json").is_file():
            return load_tokenizer(str(self.model_dir))
        return load_tokenizer(resolve_base(base_of(self.model_dir, self.info)))

    def _onnx_export(self, int8: bool) -> tuple[Path | None, dict]:
        folder = self.model_dir / ONNX_DIR
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
        if not entry.get("passed") or not path.is_file():
            return None, {}
        # An export of other weights than these must not be used: the checkpoint hash is recorded at export time.
        if meta.get("checkpoint") != checkpoint_hash(self.model_dir):
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
        t0 = time.perf_counter()
        n = len(texts)
        pad = self.tokenizer.pad_token_id
        seqs = [
            encode_prompt(
                self.tokenizer,
                t,
                self.schema,
                max_tokens=self.info.max_prompt_tokens,
                template=self.info.prompt_template,
            )
            for t in texts
        ]
        answer_start = [len(s) for s in seqs]
        results = [{} for _ in range(n)]
        programs = [self.decoder.program(seqs[b], results[b]) for b in range(n)]
        active = []
        for prog in programs:
            try:
                next(prog)
                active.append(True)
            except StopIteration:
                active.append(False)
        fed = [0] * n
        past = self.runner.empty(n)
        mask_so_far = np.zeros((n, 0), dtype=np.int64)
        while any(active):
            # every active item has new tokens (its prompt, forced text, its last choice); finished ones feed nothing
            chunks = [seqs[b][fed[b] :] if active[b] else [] for b in range(n)]
            ids, chunk_mask, last = _pad_chunks(chunks, pad)
            mask = np.concatenate([mask_so_far, chunk_mask], axis=1)
            pos = np.maximum(np.cumsum(mask, axis=1) - 1, 0)[:, -ids.shape[1] :]
            logits, past = self.runner(ids, mask, pos, last, past)
            self.stats["forwards"] += 1
            mask_so_far = mask
            for b in range(n):
                if not active[b]:
                    continue
                fed[b] = len(seqs[b])
                try:
                    programs[b].send(logits[b])
                except StopIteration:
                    active[b] = False
        analyses = []
        for b in range(n):
            cut = results[b].get("related_start", len(seqs[b]))
            text = self.tokenizer.decode(seqs[b][answer_start[b] : cut], skip_special_tokens=True)
            text += " " + self._clean_related(self.tokenizer.decode(seqs[b][cut:], skip_special_tokens=True))
            parsed = parse_output(text, self.schema, analyzer=self.name)
            conf = min(1.0, max(0.0, results[b].get("confidence", 1.0)))
            analyses.append(dataclasses.replace(parsed.analysis, confidence=conf if parsed.ok else 0.0))
            self.stats["fallbacks"] += int(parsed.analysis.fallback)
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
