"""Typed configs of a training run: the training loop's own, plus the method configs of ``bridge.lm.methods``.

Every field carries a help string (shown by ``--help``) and ``__post_init__`` rejects inconsistent values with a
``ValueError``, in the manner of peft's configs. The resolved configs are saved in every run directory (``run.json``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from bridge.lm.adapter import AdapterConfig
from bridge.lm.methods import LORA_TARGETS, FullConfig, LoraConfig
from bridge.prompt import DEFAULT_TEMPLATE, TEMPLATES
from bridge.schema import DEFAULT_SCHEMA

# The method configs live with their rows of the method table (bridge.lm.methods); re-exported for the CLIs.
__all__ = ["AdapterConfig", "FullConfig", "LoraConfig", "TrainConfig", "LORA_TARGETS"]


@dataclass
class TrainConfig:
    """The training loop; the same for every method so that a comparison changes only the method."""

    # data
    max_train_samples: int | None = field(
        default=None, metadata={"help": "use only the first N shuffled records"}
    )
    max_eval_samples: int | None = field(default=256, metadata={"help": "eval-loss records per evaluation"})
    max_prompt_tokens: int = field(
        default=192, metadata={"help": "prompt length cap in tokens (input text is cut)"}
    )
    schema: str = field(default=DEFAULT_SCHEMA, metadata={"help": "label schema name or JSON path"})
    prompt_template: str = field(
        default=DEFAULT_TEMPLATE,
        metadata={"help": f"prompt template ({', '.join(TEMPLATES)}); recorded in bridge_model.json"},
    )
    group_by_length: bool = field(
        default=True, metadata={"help": "batch records of similar length together (less padding)"}
    )
    # optimisation
    epochs: float = field(default=1.0, metadata={"help": "passes over the training data (fractions allowed)"})
    max_steps: int | None = field(
        default=None, metadata={"help": "train exactly this many optimizer steps (overrides epochs)"}
    )
    batch_size: int = field(default=8, metadata={"help": "records per micro-batch"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    lr: float | None = field(default=None, metadata={"help": "peak learning rate; None = method default"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    warmup_steps: int = field(default=10, metadata={"help": "linear warmup steps, then linear decay to 0"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm (0 = off)"})
    seed: int = field(default=0, metadata={"help": "seed for init, shuffling and dropout"})
    answer_logits_only: bool = field(
        default=True,
        metadata={
            "help": "compute the output layer only where the loss is (the answer), not on every prompt token"
        },
    )
    # evaluation, checkpoints, early stopping
    select_by: str = field(
        default="loss",
        metadata={
            "help": "model choice and early stopping: eval loss, or wf1 (3-class weighted sentiment F1 of the "
            "analyzer on the eval records)"
        },
    )
    eval_every: int = field(
        default=50, metadata={"help": "evaluate eval loss every N steps (and at the end)"}
    )
    save_every: int = field(default=50, metadata={"help": "write the resumable checkpoint every N steps"})
    patience: int = field(
        default=3, metadata={"help": "stop after N evaluations without a better eval loss (0 = off)"}
    )
    min_steps_share: float = field(
        default=0.0,
        metadata={
            "help": "early stopping waits until this share of the current stage of the schedule is trained "
            "(0-1), so that a dip of a noisy eval score early in the run does not end it"
        },
    )
    # hardware
    device: str = field(default="auto", metadata={"help": "auto (CUDA if present, else CPU), cpu, cuda"})
    precision: str = field(
        default="auto",
        metadata={
            "help": "auto (CUDA: bf16 if supported, else fp16; CPU: bf16 autocast where the CPU has native bf16 "
            "(avx512_bf16 / amx_bf16), else fp32), fp32, bf16, fp16"
        },
    )
    bf16_frozen_weights: bool = field(
        default=True,
        metadata={
            "help": "with bf16 autocast, store frozen linear weights in bf16 once instead of casting every step"
        },
    )
    threads: int | None = field(
        default=None, metadata={"help": "torch CPU threads; None = the cores this process may use"}
    )
    gradient_checkpointing: bool = field(default=False, metadata={"help": "trade compute for memory (GPU)"})

    def __post_init__(self):
        positive = ("batch_size", "grad_accum", "eval_every", "save_every", "max_prompt_tokens")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.epochs <= 0:
            raise ValueError(f"epochs must be > 0, got {self.epochs}")
        for name in ("max_steps", "max_train_samples", "max_eval_samples"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {v}")
        if self.lr is not None and self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.warmup_steps < 0 or self.patience < 0 or self.weight_decay < 0 or self.max_grad_norm < 0:
            raise ValueError("warmup_steps, patience, weight_decay and max_grad_norm must be >= 0")
        if not 0.0 <= self.min_steps_share <= 1.0:
            raise ValueError(f"min_steps_share must be between 0 and 1, got {self.min_steps_share}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be auto, fp32, bf16 or fp16, got {self.precision!r}")
        if self.prompt_template not in TEMPLATES:
            raise ValueError(
                f"prompt_template must be one of {', '.join(TEMPLATES)}, got {self.prompt_template!r}"
            )
        if self.select_by not in ("loss", "wf1"):
            raise ValueError(f"select_by must be loss or wf1, got {self.select_by!r}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {self.threads}")


def to_dict(cfg) -> dict:
    return asdict(cfg)
