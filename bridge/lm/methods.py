"""The table of tuning methods: full, LoRA and bottleneck adapters, each a config class plus prepare and save.

``METHODS[name].prepare(model, cfg)`` makes exactly the method's parameters trainable (and adds modules where the
method has them); ``METHODS[name].save(model, tokenizer, model_dir, info)`` writes a model directory that
``bridge.lm.load_model`` reads back. Adding a method is adding a row here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from bridge.lm.adapter import ADAPTER_KEY, adapter_state_dict, insert_adapters
from bridge.lm.loading import ADAPTER_WEIGHTS, ModelInfo, write_model_info
from finetune.config import LORA_TARGETS, AdapterConfig, FullConfig, LoraConfig


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
    import warnings

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
    with warnings.catch_warnings():
        # peft warns that GPT-2's Conv1D layers need fan_in_fan_out and then sets it itself
        warnings.simplefilter("ignore", UserWarning)
        return get_peft_model(model, peft_cfg)


def _save_lora(model: nn.Module, tokenizer, model_dir: Path, info: ModelInfo) -> None:
    for cfg in model.peft_config.values():
        cfg.base_model_name_or_path = info.base  # the name the user gave, not a cache path of this machine
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


def is_adapter_param(name: str) -> bool:
    return ADAPTER_KEY in name


def method_config_dict(method: str, cfg) -> dict | None:
    """The method config as stored in ``bridge_model.json`` (only adapters need theirs to rebuild modules)."""
    return cfg.to_dict() if method == "adapter" else None
