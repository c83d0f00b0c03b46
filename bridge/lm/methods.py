"""The table of tuning methods: full, LoRA and bottleneck adapters, each a config class plus prepare and save.

``METHODS[name].prepare(model, cfg)`` makes exactly the method's parameters trainable (and adds modules where the
method has them); ``METHODS[name].save(model, tokenizer, model_dir, info)`` writes a model directory that
``bridge.lm.load_model`` reads back. Adding a method is adding a row here.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from bridge.lm.adapter import AdapterConfig, adapter_state_dict, insert_adapters
from bridge.lm.loading import ADAPTER_WEIGHTS, ModelInfo, hub_id, quiet_libraries, write_model_info

# Sensible LoRA targets per architecture: the attention projections (and GPT-2's fused MLP/attn output c_proj).
LORA_TARGETS = {
    "gpt2": ("c_attn", "c_proj"),
    "llama": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "mistral": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "qwen2": ("q_proj", "k_proj", "v_proj", "o_proj"),
}


@dataclass
class FullConfig:
    """Full fine-tuning: every weight trains. No options of its own; the learning rate is in ``TrainConfig``."""


@dataclass
class LoraConfig:
    """LoRA through peft: low-rank updates ``B @ A`` on the target linear layers, base frozen."""

    r: int = field(default=8, metadata={"help": "rank of the update matrices"})
    alpha: int = field(default=16, metadata={"help": "scaling numerator: the update is scaled by alpha / r"})
    dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA input during training"})
    target_modules: tuple[str, ...] | None = field(
        default=None,
        metadata={
            "help": "module names to adapt; None = per-architecture default (GPT-2 c_attn/c_proj, Llama q/k/v/o)"
        },
    )

    def __post_init__(self):
        if self.r < 1:
            raise ValueError(f"r must be >= 1, got {self.r}")
        if self.alpha <= 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.target_modules is not None:
            self.target_modules = tuple(self.target_modules)
            if not self.target_modules:
                raise ValueError("target_modules must name at least one module (or be None for the default)")


@dataclass(frozen=True)
class Method:
    """One row of the method table."""

    name: str
    config_cls: type
    default_lr: float  # per-method default: full tuning needs a much smaller step than LoRA or adapters
    prepare: Callable[[nn.Module, object], nn.Module]
    save: Callable[[nn.Module, object, Path, ModelInfo], None]
    summary: str


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters; tied weights counted once."""
    seen, trainable, total = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights the optimizer changes, by name (what a resumable checkpoint must hold)."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


# ---- full ---------------------------------------------------------------------------------------------------------


def _prepare_full(model: nn.Module, cfg: FullConfig) -> nn.Module:
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def _save_full(model: nn.Module, tokenizer, model_dir: Path, info: ModelInfo) -> None:
    model.save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)
    write_model_info(model_dir, info)


# ---- LoRA ---------------------------------------------------------------------------------------------------------


def lora_targets(model: nn.Module, cfg: LoraConfig) -> list[str]:
    if cfg.target_modules:
        return list(cfg.target_modules)
    model_type = getattr(model.config, "model_type", "")
    if model_type in LORA_TARGETS:
        return list(LORA_TARGETS[model_type])
    # other Llama-like architectures name their projections the same way
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    found = [t for t in LORA_TARGETS["llama"] if t in names]
    if not found:
        raise ValueError(f"no default LoRA targets for model type {model_type!r}; pass target_modules")
    return found


def _prepare_lora(model: nn.Module, cfg: LoraConfig) -> nn.Module:

    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    peft_cfg = PeftLoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=lora_targets(model, cfg),
        task_type="CAUSAL_LM",
        bias="none",
    )
    with quiet_libraries(), warnings.catch_warnings():
        # peft warns that GPT-2's Conv1D layers need fan_in_fan_out and then sets it itself
        warnings.simplefilter("ignore", UserWarning)
        return get_peft_model(model, peft_cfg)


def _save_lora(model: nn.Module, tokenizer, model_dir: Path, info: ModelInfo) -> None:
    for cfg in model.peft_config.values():
        # The real hub id (smollm2-135m -> HuggingFaceTB/SmolLM2-135M-Instruct) so plain peft can load it; the project
        # maps that id back to its local copy. Never a cache path of this machine.
        cfg.base_model_name_or_path = hub_id(info.base)
        # peft keeps the targets as a set and writes it in hash order, so each save would reorder them
        if isinstance(cfg.target_modules, set):
            cfg.target_modules = sorted(cfg.target_modules)
    with warnings.catch_warnings():
        # offline, peft cannot look that id up to see whether the vocabulary changed; it did not (no new tokens)
        warnings.filterwarnings("ignore", message="Could not find a config file", category=UserWarning)
        model.save_pretrained(model_dir, safe_serialization=True)
    write_model_info(model_dir, info)


# ---- bottleneck adapters ------------------------------------------------------------------------------------------


def _prepare_adapter(model: nn.Module, cfg: AdapterConfig) -> nn.Module:
    insert_adapters(model, cfg, freeze_base=True)
    return model


def _save_adapter(model: nn.Module, tokenizer, model_dir: Path, info: ModelInfo) -> None:
    from safetensors.torch import save_file

    Path(model_dir).mkdir(parents=True, exist_ok=True)
    save_file(adapter_state_dict(model), str(Path(model_dir) / ADAPTER_WEIGHTS))
    write_model_info(model_dir, info)


METHODS: dict[str, Method] = {
    "full": Method("full", FullConfig, 5e-5, _prepare_full, _save_full, "every weight trains"),
    "lora": Method(
        "lora", LoraConfig, 1e-3, _prepare_lora, _save_lora, "low-rank updates of attention (peft)"
    ),
    "adapter": Method(
        "adapter", AdapterConfig, 1e-3, _prepare_adapter, _save_adapter, "bottleneck adapters in every block"
    ),
}


def method_config_dict(method: str, cfg) -> dict | None:
    """The method config as stored in ``bridge_model.json`` (only adapters need theirs to rebuild modules)."""
    return cfg.to_dict() if method == "adapter" else None
