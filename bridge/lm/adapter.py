"""Bottleneck adapters (Houlsby et al., 2019) inside every transformer block, for GPT-2 and Llama-style models.

Each adapter is down-projection, non-linearity, up-projection and a residual connection. It is applied to the output
of a block's attention and/or MLP sub-layer, before the block's own residual add, in every block of the stack. The
up-projection starts at zero, so a freshly adapted model computes exactly what the base model computes.

Adapters are attached as extra child modules of each block (``attn_adapter``/``mlp_adapter``) and run from forward hooks
on the sub-layers, so the base model's parameter names are untouched: the base weights load as usual and the adapter
weights are a separate small state dict (``adapter_state_dict``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from bridge.errors import ModelError

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}
PLACEMENTS = ("both", "attn", "mlp")
# Child names of the attention and MLP sub-layers in the block classes we support (GPT-2, Llama, Mistral, Qwen2, ...).
_ATTN_NAMES = ("attn", "self_attn", "attention", "self_attention")
_MLP_NAMES = ("mlp", "feed_forward", "ffn")
ADAPTER_KEY = "_adapter."


@dataclass
class AdapterConfig:
    """Bottleneck adapter settings; saved beside every adapter checkpoint so the same modules can be rebuilt."""

    bottleneck: int = field(default=32, metadata={"help": "hidden size of the adapter's down-projection"})
    activation: str = field(default="gelu", metadata={"help": f"non-linearity, one of {sorted(ACTIVATIONS)}"})
    placement: str = field(
        default="both", metadata={"help": "after which sub-layers of each block: both, attn or mlp"}
    )
    dropout: float = field(default=0.0, metadata={"help": "dropout inside the adapter during training"})
    init_std: float = field(
        default=1e-3, metadata={"help": "std of the down-projection init (the up-projection starts at zero)"}
    )

    def __post_init__(self):
        if self.bottleneck < 1:
            raise ValueError(f"bottleneck must be >= 1, got {self.bottleneck}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, got {self.placement!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.init_std < 0:
            raise ValueError(f"init_std must be >= 0, got {self.init_std}")

    def to_dict(self) -> dict:
        return asdict(self)


class BottleneckAdapter(nn.Module):
    """``x + up(act(down(x)))``; near identity at the start because ``up`` is zero."""

    def __init__(self, hidden: int, cfg: AdapterConfig):
        super().__init__()
        self.down = nn.Linear(hidden, cfg.bottleneck)
        self.act = ACTIVATIONS[cfg.activation]()
        self.dropout = nn.Dropout(cfg.dropout)
        self.up = nn.Linear(cfg.bottleneck, hidden)
        nn.init.normal_(self.down.weight, std=cfg.init_std)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.dropout(self.act(self.down(x))))


def _apply_hook(adapter: BottleneckAdapter):
    def hook(_module, _args, output):
        # Attention sub-layers return (hidden, weights, ...); MLPs return the hidden states alone.
        if isinstance(output, tuple):
            return (adapter(output[0]),) + tuple(output[1:])
        return adapter(output)

    return hook


def transformer_blocks(model: nn.Module) -> nn.ModuleList:
    """The stack of transformer blocks: the ModuleList with one entry per hidden layer."""
    n_layers = getattr(model.config, "num_hidden_layers", None) or getattr(model.config, "n_layer", None)
    for _name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers and n_layers:
            return module
    raise ModelError(
        f"cannot find the {n_layers} transformer blocks of {type(model).__name__}",
        hint="adapters support GPT-2 and Llama-style causal LMs",
    )


def _child(block: nn.Module, names: tuple[str, ...]) -> tuple[str, nn.Module]:
    for name in names:
        if hasattr(block, name):
            return name, getattr(block, name)
    raise ModelError(
        f"block {type(block).__name__} has none of the sub-layers {names}",
        hint="adapters support GPT-2 and Llama-style causal LMs",
    )


def hidden_size(model: nn.Module) -> int:
    cfg = model.config
    return int(getattr(cfg, "hidden_size", None) or cfg.n_embd)


def insert_adapters(
    model: nn.Module, cfg: AdapterConfig, freeze_base: bool = True
) -> list[BottleneckAdapter]:
    """Add adapters to every block of ``model`` (in place) and, by default, freeze everything else.

    Returns the adapters in block order. Calling it twice on one model is refused: the hooks would stack.
    """
    if getattr(model, "_bridge_adapters", None):
        raise ModelError("this model already has adapters inserted")
    hidden = hidden_size(model)
    ref = next(model.parameters())
    adapters: list[BottleneckAdapter] = []
    handles = []
    for block in transformer_blocks(model):
        targets = []
        if cfg.placement in ("both", "attn"):
            targets.append(("attn_adapter", _child(block, _ATTN_NAMES)[1]))
        if cfg.placement in ("both", "mlp"):
            targets.append(("mlp_adapter", _child(block, _MLP_NAMES)[1]))
        for attr, sublayer in targets:
            adapter = BottleneckAdapter(hidden, cfg).to(device=ref.device, dtype=ref.dtype)
            block.add_module(attr, adapter)
            handles.append(sublayer.register_forward_hook(_apply_hook(adapter)))
            adapters.append(adapter)
    model._bridge_adapters = adapters
    model._bridge_adapter_hooks = handles
    if freeze_base:
        for name, p in model.named_parameters():
            p.requires_grad = ADAPTER_KEY in name
    return adapters


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapter weights, by their full parameter names (a few hundred KB to a few MB)."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if ADAPTER_KEY in k}


def load_adapter_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: object = None) -> None:
    """Load adapter weights saved by ``adapter_state_dict``; every adapter must be covered, nothing else may be."""
    own = {k for k in model.state_dict() if ADAPTER_KEY in k}
    missing, unexpected = own - set(state), set(state) - own
    if missing or unexpected:
        raise ModelError(
            f"adapter weights do not match the model: {len(missing)} missing (e.g. {sorted(missing)[:2]}), "
            f"{len(unexpected)} unexpected (e.g. {sorted(unexpected)[:2]})",
            path=source,
            hint="was this adapter trained on a different base model or adapter config?",
        )
    model.load_state_dict(state, strict=False)
