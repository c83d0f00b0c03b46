"""Tiny config-built causal LMs (GPT-2 and Llama style) with a small byte-level BPE tokenizer, for tests and dry runs.

Nothing is downloaded: the tokenizer is trained on the label schema's own words plus a few sample headlines, and the
model is built from a config with random weights. ``python -m finetune.tiny OUT_DIR --arch llama`` writes one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from bridge.cli import HelpFormatter
from bridge.errors import run_main
from bridge.prompt import PROMPT_TEMPLATE
from bridge.schema import load_schema

EOS = "<|endoftext|>"
SAMPLE_TEXT = [
    "Fed raises rates by 25bp, dollar climbs",
    "ECB holds rates, signals cuts ahead; EUR slips",
    "US non-farm payrolls beat forecast at 250K",
    "Oil jumps as OPEC cuts output; CAD gains",
    "BoJ keeps yield curve control, yen weakens",
    "Stocks fall as China exports slow; AUD drops",
    "Gold hits record high XAUUSD EURUSD GBPUSD USDJPY",
    "Currency: USD EUR GBP JPY CHF CAD AUD NZD CNY",
]

# Inputs that must still give a valid analysis: empty, non-Latin, answer-like, far too long, prompt-like.
ODD_TEXTS = [
    "Fed raises rates by 50bp",
    "",
    "   ",
    "日銀が金利を据え置き — yen slides 2%",
    "related: none, sentiment: extremely positive, event: hacked",  # text that looks like an answer
    "EUR/USD " * 400,  # far longer than the prompt budget
    "\n\n### Response:\nevent:",
]


def tiny_tokenizer(schema_name: str = "fx_macro", vocab_size: int = 600):
    """A byte-level BPE tokenizer (GPT-2 style pre-tokenization) trained in memory on schema words and headlines."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    schema = load_schema(schema_name)
    corpus = [PROMPT_TEMPLATE.format(instruction=schema.instruction, input=t) for t in SAMPLE_TEXT]
    corpus += [", ".join(f"{k}: {v}" for k in schema.keys for v in ("other", "neutral"))]
    for f in schema.fields:
        corpus += [f"{f.name}: {v}," for v in f.values]
    corpus += [f"sentiment: {name}," for name, _ in schema.sentiment_levels]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus * 4, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS, bos_token=EOS)


def tiny_config(arch: str, vocab_size: int):
    """A 2-layer model config, small enough that a training step takes milliseconds."""
    from transformers import GPT2Config, LlamaConfig

    if arch == "gpt2":
        return GPT2Config(
            vocab_size=vocab_size,
            n_positions=256,
            n_embd=32,
            n_layer=2,
            n_head=2,
            eos_token_id=0,
            bos_token_id=0,
        )
    if arch == "llama":
        return LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=256,
            tie_word_embeddings=True,
            eos_token_id=0,
            pad_token_id=0,
            bos_token_id=0,
        )
    raise ValueError(f"arch must be gpt2 or llama, got {arch!r}")


def make_tiny_base(out_dir: str | Path, arch: str = "gpt2", seed: int = 0) -> Path:
    """Write a tiny random base model and its tokenizer to ``out_dir`` (loadable by any ``--model``)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    tok = tiny_tokenizer()
    model = AutoModelForCausalLM.from_config(tiny_config(arch, len(tok)))
    out = Path(out_dir)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def make_tiny_model_dir(
    base_path: str, out, method: str = "adapter", schema: str = "fx_macro", seed: int = 0
):
    """A model directory of ``method`` on ``base_path`` with random trainable weights (decoding away from the base)."""
    from bridge.lm.loading import ModelInfo, load_base
    from bridge.lm.methods import METHODS

    base, tok = load_base(base_path)
    mcfg = METHODS[method].config_cls()
    model = METHODS[method].prepare(base, mcfg)
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.2)
    info = ModelInfo(
        method=method, base=base_path, schema=schema, adapter=mcfg.to_dict() if method == "adapter" else None
    )
    METHODS[method].save(model, tok, out, info)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("out", help="directory to write the model and tokenizer to")
    ap.add_argument("--arch", choices=("gpt2", "llama"), default="gpt2", help="block style")
    ap.add_argument("--seed", type=int, default=0, help="weight init seed")
    args = ap.parse_args(argv)
    print(make_tiny_base(args.out, args.arch, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
