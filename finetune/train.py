"""Fine-tune a causal LM on instruction records with one of the methods in ``bridge.lm.methods`` (full, lora, adapter).

    python -m finetune.train --method lora --model smollm2-135m --data train.jsonl --eval eval.jsonl --out runs/lora
    python -m finetune.train ... --out runs/lora --resume          # continue from runs/lora/checkpoints/last
    python -m finetune.train ... --out runs/lora --resume --max-steps 2000 --lr 5e-4   # extend a finished run
    torchrun --nproc_per_node 4 -m finetune.train ...              # multi-GPU (DDP): same script, one process per GPU

The loss covers only the answer tokens (the prompt is masked with -100). Training is seeded and deterministic on the
CPU: the data order of every epoch comes from the seed, and a checkpoint holds the trainable weights, optimizer,
scheduler and RNG states, so a resumed run continues exactly where it stopped. With ``--eval``, the eval loss is
measured every ``--eval-every`` steps, the best model so far is kept in ``RUN_DIR/model`` and training stops after
``--patience`` evaluations without improvement (not before ``--min-steps-share`` of the current stage). The run
directory holds:

    run.json            configs, library versions, device, git commit, parameter counts, speed and memory figures
    history.jsonl       train loss per step and eval loss per evaluation (the loss curves)
    model/              the model directory loaded by bridge.lm.load_model / the analyzer
    checkpoints/last/   the resumable state
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import resource
import shutil
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import torch

from bridge.cli import HelpFormatter, add_dataclass_arguments, dataclass_from_arguments
from bridge.errors import DataError, UserError, run_main
from bridge.lm.loading import (
    DEFAULT_BASE,
    ModelInfo,
    encode_answer,
    encode_prompt,
    load_base,
    local_base_name,
)
from bridge.lm.methods import METHODS, count_parameters, method_config_dict, trainable_state
from bridge.prompt import LEGACY_TEMPLATE
from bridge.provenance import git_commit, library_versions
from bridge.schema import load_schema
from finetune.config import TrainConfig

CHECKPOINT = "checkpoints/last"
IGNORE = -100


# ---- environment --------------------------------------------------------------------------------------------------


def cpu_bf16_support() -> tuple[bool, str]:
    """(native bf16 on this CPU, why): the CPU flags avx512_bf16 or amx_bf16 (Linux /proc/cpuinfo), checked at run
    time, and oneDNN's own bf16 check. Without native support bf16 autocast is emulated and slower than fp32."""
    try:
        onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        onednn = False
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    native = sorted(flags & {"avx512_bf16", "amx_bf16"})
    capability = torch.backends.cpu.get_cpu_capability()
    if native and onednn:
        return True, f"CPU flags {', '.join(native)}, torch capability {capability}"
    if not onednn:
        return False, f"oneDNN reports no bf16 support (torch capability {capability})"
    return (
        False,
        f"no avx512_bf16 / amx_bf16 CPU flag (torch capability {capability}): bf16 would be emulated",
    )


def pick_device(tcfg: TrainConfig) -> tuple[torch.device, torch.dtype | None]:
    """(device, autocast dtype or None). CUDA uses bf16 where supported, else fp16; the CPU uses bf16 autocast where it
    has native bf16 (``cpu_bf16_support``), else fp32. ``--precision bf16`` forces bf16 autocast on either."""
    if tcfg.device == "cuda" and not torch.cuda.is_available():
        raise UserError(
            "--device cuda was asked for but no CUDA device is available", hint="use --device auto"
        )
    use_cuda = tcfg.device == "cuda" or (tcfg.device == "auto" and torch.cuda.is_available())
    if not use_cuda:
        if tcfg.precision == "fp16":
            raise UserError("fp16 training is for CUDA only", hint="use --precision bf16 or fp32 on the CPU")
        if tcfg.precision == "bf16" or (tcfg.precision == "auto" and cpu_bf16_support()[0]):
            return torch.device("cpu"), torch.bfloat16
        return torch.device("cpu"), None
    local = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device("cuda", local)
    if tcfg.precision == "fp32":
        return device, None
    if tcfg.precision == "bf16" or (tcfg.precision == "auto" and torch.cuda.is_bf16_supported()):
        return device, torch.bfloat16
    return device, torch.float16


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), else the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    """CUDA max allocated on a GPU; the process's peak resident set size on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "peak_rss"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ---- data ---------------------------------------------------------------------------------------------------------


def read_records(path: str | Path, schema) -> list[dict]:
    """Validated instruction records (``finetune.data.load_records`` gives line-numbered errors for bad files)."""
    from finetune.data import load_records

    records = load_records(path, schema)
    out = []
    for r in records:
        out.append(
            r if isinstance(r, dict) else {k: getattr(r, k) for k in ("instruction", "input", "output")}
        )
    if not out:
        raise DataError("no training records", path=path, hint="the file is empty")
    return out


def tokenize_records(
    records: list[dict], tokenizer, schema, max_prompt_tokens: int, template: str = LEGACY_TEMPLATE
) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) per record; labels are -100 on the prompt so the loss sees only the answer."""
    out = []
    for r in records:
        prompt = encode_prompt(
            tokenizer, r["input"], schema, r.get("instruction") or None, max_prompt_tokens, template
        )
        answer = encode_answer(tokenizer, r["output"], schema)
        out.append((prompt + answer, [IGNORE] * len(prompt) + answer))
    return out


def collate(examples: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for b, (x, y) in enumerate(examples):
        ids[b, : len(x)] = torch.tensor(x)
        labels[b, : len(y)] = torch.tensor(y)
        mask[b, : len(x)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


GROUP_WINDOW = 32  # length grouping sorts windows of this many batches of the shuffled order


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int, group: bool) -> list[list[int]]:
    """The batches (record indices) of one epoch, a pure function of the seed and the epoch.

    Without grouping: consecutive slices of the epoch's shuffled order. With grouping: the shuffled order is cut into
    windows of ``GROUP_WINDOW`` batches, each window is sorted by length and sliced, and the batches are shuffled
    again, so a batch holds records of similar length (little padding) while the epoch stays a random order.
    """
    order = epoch_order(len(lengths), seed, epoch)
    if not group:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    window = batch_size * GROUP_WINDOW
    batches: list[list[int]] = []
    for w in range(0, len(order), window):
        chunk = sorted(order[w : w + window], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    perm = epoch_order(len(batches), seed + 7919, epoch)
    return [batches[i] for i in perm]


_BATCH_CACHE: dict[tuple, list[list[int]]] = {}


def micro_batch(examples, index: int, tcfg: TrainConfig, rank: int = 0, world: int = 1):
    """The ``index``-th micro-batch of the whole run: a pure function of the seed, so resuming needs only the step."""
    per_epoch = math.ceil(len(examples) / tcfg.batch_size)
    global_index = index * world + rank
    epoch, k = divmod(global_index, per_epoch)
    key = (id(examples), len(examples), tcfg.seed, epoch, tcfg.batch_size, tcfg.group_by_length)
    batches = _BATCH_CACHE.get(key)
    if batches is None:
        _BATCH_CACHE.clear()
        lengths = [len(ids) for ids, _ in examples]
        batches = _BATCH_CACHE[key] = epoch_batches(
            lengths, tcfg.batch_size, tcfg.seed, epoch, tcfg.group_by_length
        )
    return [examples[i] for i in batches[k]], epoch


def answer_loss(
    model, batch: dict, answer_only: bool = True, reduction: str = "mean"
) -> tuple[torch.Tensor, int]:
    """(loss, answer tokens) of a collated batch: next-token cross-entropy on the answer positions only.

    With ``answer_only`` the output layer (hidden size x vocabulary: about a fifth of SmolLM2's forward cost per token,
    and the 49,152-wide logits) runs only at the positions whose next token is an answer token; otherwise the model
    computes logits at every position, as a plain ``model(**batch)`` does. Both give the same loss.
    """
    labels = batch["labels"][:, 1:]
    sel = labels != IGNORE
    count = int(sel.sum())
    if answer_only:
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft wraps the LM
        body, head = inner.base_model, inner.get_output_embeddings()
        hidden = body(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        logits = head(hidden[:, :-1][sel]).float()
        cap = getattr(inner.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        target = labels[sel]
    else:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        logits, target = logits[:, :-1].float().reshape(-1, logits.shape[-1]), labels.reshape(-1)
    loss = torch.nn.functional.cross_entropy(logits, target, ignore_index=IGNORE, reduction=reduction)
    return loss, count


@torch.no_grad()
def eval_loss(model, examples, tcfg: TrainConfig, pad_id: int, device, amp_dtype) -> float:
    """Token-weighted mean answer loss over ``examples``."""
    model.eval()
    total, count = 0.0, 0
    # sorted by length: fewer padded positions; the token-weighted mean does not depend on the order
    ordered = sorted(examples, key=lambda e: len(e[0]))
    for start in range(0, len(ordered), tcfg.batch_size):
        batch = {
            k: v.to(device) for k, v in collate(ordered[start : start + tcfg.batch_size], pad_id).items()
        }
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss, n = answer_loss(model, batch, tcfg.answer_logits_only, reduction="sum")
        total += float(loss)
        count += n
    model.train()
    return total / max(count, 1)


def eval_wf1(
    model, tokenizer, records: list[dict], info: ModelInfo, amp_dtype=None, batch_size: int = 16
) -> float:
    """3-class support-weighted sentiment F1 of the analyzer (constrained decoding) on ``records``: in fp32, or under
    the training's autocast (bf16 frozen weights need it; the served model is fp32, so this is the dev figure of the
    bf16 forward)."""
    from bridge.lm.analyzer import LMAnalyzer
    from bridge.prompt import parse_output
    from finetune.metrics import score

    schema = load_schema(info.schema)
    was_training = model.training
    analyzer = LMAnalyzer.from_model(model, tokenizer, info, batch_size=batch_size)
    device_type = next(model.parameters()).device.type
    with torch.autocast(device_type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
        pred = analyzer.analyze_texts([r["input"] for r in records])
    gold = [parse_output(r["output"], schema).analysis for r in records]
    model.train(was_training)
    return score(gold, pred, schema)["wf1_sentiment_3"]


# ---- checkpoints --------------------------------------------------------------------------------------------------


def save_checkpoint(out: Path, model, optimizer, scheduler, state: dict) -> None:
    """Write the resumable state atomically (a crash mid-write leaves the previous checkpoint intact)."""
    from safetensors.torch import save_file

    final = out / CHECKPOINT
    tmp = final.with_name("last.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(trainable_state(model), str(tmp / "trainable.safetensors"))
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(),
        },
        tmp / "optimizer.pt",
    )
    (tmp / "trainer_state.json").write_text(json.dumps(state, indent=1))
    old = final.with_name("last.old")
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(out: Path, model, optimizer, scheduler) -> None:
    """Restore the trainable weights, optimizer, scheduler and RNG states; the progress is ``trainer_state``'s."""
    from safetensors.torch import load_file

    ck = out / CHECKPOINT
    weights = load_file(str(ck / "trainable.safetensors"))
    own = {n for n, p in model.named_parameters() if p.requires_grad}
    if set(weights) != own:
        raise UserError(
            "the checkpoint does not match this method/model",
            path=ck,
            hint="resume with the same --method and --model",
        )
    model.load_state_dict(weights, strict=False)
    extra = torch.load(ck / "optimizer.pt", weights_only=False)
    optimizer.load_state_dict(extra["optimizer"])
    scheduler.load_state_dict(extra["scheduler"])
    torch.set_rng_state(extra["torch_rng"])
    np.random.set_state(extra["numpy_rng"])
    random.setstate(extra["python_rng"])


def trainer_state(out: Path) -> dict:
    """What the last checkpoint carries besides the weights (``new_state``'s fields, and the schedule's stages)."""
    return json.loads((out / CHECKPOINT / "trainer_state.json").read_text())


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


# ---- training -----------------------------------------------------------------------------------------------------


def check_run(method: str, mcfg, out: Path, resume: bool):
    """The method's table row and config; a wrong method, config or run directory is a one-line user error."""
    if method not in METHODS:
        raise UserError(f"unknown method {method!r}", hint=f"one of {', '.join(METHODS)}")
    spec = METHODS[method]
    mcfg = mcfg if mcfg is not None else spec.config_cls()
    if not isinstance(mcfg, spec.config_cls):
        raise UserError(f"method {method} needs a {spec.config_cls.__name__}, got {type(mcfg).__name__}")
    if resume and not (out / CHECKPOINT / "trainer_state.json").is_file():
        raise UserError("nothing to resume", path=out / CHECKPOINT, hint="run without --resume first")
    if not resume and (out / "run.json").exists():
        raise UserError("the run directory is not empty", path=out, hint="use --resume, or another --out")
    return spec, mcfg


def load_data(data, eval_data, tcfg: TrainConfig, schema) -> tuple[list[dict], list[dict]]:
    """Training and eval records, each cut to its ``max_*_samples`` by a seeded draw (kept in file order)."""
    train_records = read_records(data, schema)
    eval_records = read_records(eval_data, schema) if eval_data else []
    if tcfg.max_train_samples and tcfg.max_train_samples < len(train_records):
        keep = sorted(epoch_order(len(train_records), tcfg.seed, -1)[: tcfg.max_train_samples])
        train_records = [train_records[i] for i in keep]
    if tcfg.max_eval_samples and tcfg.max_eval_samples < len(eval_records):
        keep = sorted(epoch_order(len(eval_records), tcfg.seed, -2)[: tcfg.max_eval_samples])
        eval_records = [eval_records[i] for i in keep]
    return train_records, eval_records


def prepare_model(model_name: str, spec, mcfg, tcfg: TrainConfig, device: torch.device):
    """The base model with the method applied (only its parameters trainable), on ``device``; and its tokenizer."""
    model, tokenizer = load_base(model_name)
    seed_everything(
        tcfg.seed
    )  # adapter/LoRA init draws from the seed, independent of how loading used the RNG
    model = spec.prepare(model, mcfg)
    model.to(device)
    if tcfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()  # frozen embeddings would otherwise cut the gradient path
    return model, tokenizer


def frozen_weights_to_bf16(model) -> int:
    """Store the frozen weights of linear layers in bf16; returns how many parameters were cast.

    Under bf16 autocast every matmul casts its fp32 weight to bf16 on each forward and backward; a frozen weight never
    changes, so it can be cast once. The matmuls then compute exactly what autocast computed, without the per-step
    cast (about 0.5 GB of memory traffic per step on SmolLM2) and with half the memory. Trainable weights (LoRA,
    adapters, everything in full tuning) stay fp32, and so do embeddings (tied to the output layer in SmolLM2), norms
    and biases. The saved model is unaffected: LoRA and adapter weights are fp32 and load onto a fresh fp32 base.
    """
    emb = model.get_input_embeddings()
    shared = {id(p) for p in emb.parameters()} if emb is not None else set()
    cast = 0
    for mod in model.modules():
        linear = isinstance(mod, torch.nn.Linear) or type(mod).__name__ == "Conv1D"  # GPT-2's Conv1D: addmm
        w = getattr(mod, "weight", None)
        if (
            linear
            and w is not None
            and not w.requires_grad
            and id(w) not in shared
            and w.dtype == torch.float32
        ):
            w.data = w.data.to(torch.bfloat16)
            cast += w.numel()
    return cast


def total_steps_of(n_examples: int, tcfg: TrainConfig, world: int) -> int:
    """Optimizer steps of the run: epochs over the data, or ``max_steps`` when given (as in transformers' Trainer)."""
    per_epoch = math.ceil(math.ceil(n_examples / tcfg.batch_size) / (tcfg.grad_accum * world))
    return tcfg.max_steps or max(1, math.ceil(per_epoch * tcfg.epochs))


def schedule_stages(
    out: Path, prior: dict | None, total_steps: int, lr: float, tcfg: TrainConfig
) -> tuple[list[dict], bool]:
    """The learning-rate schedule as stages, each a linear warm-up to its peak then a linear decay to zero at its end;
    and whether the run had stopped early.

    A new run has one stage. Resuming keeps the stages the checkpoint recorded, so an interrupted run continues on
    the same schedule (an explicit ``--lr`` must then be the unfinished stage's own), and so does one resumed with
    the same length that stopped early sooner than ``--min-steps-share`` now allows. Resuming a finished run (or
    one that stopped early) with a larger ``--max-steps`` or ``--epochs`` extends it: a new stage from where it
    stopped to the new total, warming up again over ``--warmup-steps`` to ``--lr``. The data order carries on (no
    example is seen twice before the epoch ends) and the optimizer keeps its moments, which a fresh run started from
    the trained weights would lose.
    """
    if prior is None:  # a new run
        return [{"start": 0, "end": total_steps, "peak_lr": lr, "warmup": tcfg.warmup_steps}], False
    ck = out / CHECKPOINT / "trainer_state.json"
    stages, stopped_early = prior.get("stages"), prior.get("stopped_early", False)
    if stages is None:
        # a checkpoint written before stages were recorded: its run.json says what its schedule was (the schedule
        # it names when an extension began after that checkpoint, else its one stage)
        rec = json.loads((out / "run.json").read_text())
        stages = rec.get("schedule") or [
            {
                "start": 0,
                "end": rec["total_steps"],
                "peak_lr": rec["lr"],
                "warmup": rec["train_config"]["warmup_steps"],
            }
        ]
        stopped_early = (rec.get("result") or {}).get("stopped_early", False)
    last, step = stages[-1], prior["step"]
    if stopped_early and total_steps == last["end"] and step < earliest_stop(last, tcfg.min_steps_share):
        # stopped by a rule that allowed a sooner stop: this one trains on (an extension instead starts its new
        # stage from where the run stopped)
        stopped_early = False
    unfinished = step < last["end"] and not stopped_early  # the last stage still has steps to train
    if total_steps == last["end"]:
        new_rate = tcfg.lr is not None and not math.isclose(tcfg.lr, last["peak_lr"], rel_tol=1e-9)
        if unfinished and new_rate:
            # the stage carries on at the rate it was started with; the record must not claim another
            raise UserError(
                f"the run stopped at step {step} of a stage that peaks at lr {last['peak_lr']!r}; "
                f"--lr {tcfg.lr!r} would change it",
                path=ck,
                hint=f"resume without --lr (or with --lr {last['peak_lr']!r}) to finish the stage; a new rate "
                "can start a new stage once it is finished",
            )
        return stages, stopped_early
    if unfinished:
        raise UserError(
            f"the run stopped at step {step} of its {last['end']}-step schedule; a different length would change it",
            path=ck,
            hint=f"resume with --max-steps {last['end']} to finish it, then resume again with more steps to extend it",
        )
    if total_steps <= step:
        raise UserError(
            f"the run has already trained {step} steps; --max-steps/--epochs give only {total_steps}",
            path=ck,
            hint=f"to extend the run, give more than {step} steps",
        )
    # an early stop ended the last stage before its end
    ended = {**last, "stopped_at": step} if step < last["end"] else last
    new = {"start": step, "end": total_steps, "peak_lr": lr, "warmup": tcfg.warmup_steps}
    return [*stages[:-1], ended, new], False


def earliest_stop(stage: dict, share: float) -> int:
    """The first step at which early stopping may end ``stage``: once ``share`` of its steps are trained."""
    # rounded first, so that a share such as 0.3 of 10 steps is 3 steps, not 4 (0.3 * 10 = 3.0000000000000004)
    return stage["start"] + math.ceil(round(share * (stage["end"] - stage["start"]), 9))


def lr_factor(stages: list[dict], step: int) -> float:
    """The scheduler's multiplier at ``step``: relative to the first stage's peak, which is the optimizer's base."""
    # a later stage takes over where an earlier one stopped
    stage = [st for st in stages if st["start"] <= step][-1]
    local, scale = step - stage["start"], stage["peak_lr"] / stages[0]["peak_lr"]
    if local < stage["warmup"]:
        return scale * (local + 1) / (stage["warmup"] + 1)
    return scale * max(0.0, (stage["end"] - step) / max(1, stage["end"] - stage["start"] - stage["warmup"]))


def make_optimizer(model, tcfg: TrainConfig, stages: list[dict]):
    """AdamW over the trainable parameters, its rate following ``stages`` (see ``schedule_stages``)."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=stages[0]["peak_lr"], weight_decay=tcfg.weight_decay)
    return (
        params,
        optimizer,
        torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(stages, step)),
    )


def device_record(device: torch.device, amp_dtype, world: int) -> dict:
    return {
        "type": device.type,
        "name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "amp_dtype": str(amp_dtype).replace("torch.", "") if amp_dtype else "fp32",
        "cpu_bf16": cpu_bf16_support()[1] if device.type == "cpu" else None,
        "world_size": world,
        "torch_threads": torch.get_num_threads(),
    }


def new_state() -> dict:
    """What a checkpoint carries besides the weights: progress, early-stopping memory, history and counters."""
    return {
        "step": 0,
        "best_eval": None,
        "bad_evals": 0,
        "history": [],
        "train_seconds": 0.0,
        "tokens": 0,
        "samples": 0,
        "stopped_early": False,
    }


def train_step(
    train_model,
    train_ex,
    step: int,
    tcfg: TrainConfig,
    pad_id: int,
    device,
    amp_dtype,
    scaler,
    rank: int,
    world: int,
) -> tuple[float, int, int, int]:
    """Forward and backward over ``grad_accum`` micro-batches; returns (loss, tokens, samples, epoch)."""
    step_loss, step_tokens, samples, epoch = 0.0, 0, 0, 0
    for k in range(tcfg.grad_accum):
        examples, epoch = micro_batch(train_ex, step * tcfg.grad_accum + k, tcfg, rank, world)
        batch = {key: v.to(device) for key, v in collate(examples, pad_id).items()}
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            # DDP must see the forward call itself to synchronise gradients: plain logits there
            only = tcfg.answer_logits_only and world == 1
            loss = answer_loss(train_model, batch, only)[0] / tcfg.grad_accum
        scaler.scale(loss).backward()
        step_loss += float(loss.detach())
        step_tokens += int(batch["attention_mask"].sum())
        samples += len(examples)
    return step_loss, step_tokens, samples, epoch


def result_record(
    state: dict, stopped_early: bool, load_s: float, device, out: Path, tcfg: TrainConfig
) -> dict:
    train_s = state["train_seconds"]
    peak, peak_kind = peak_memory_mb(device)
    return {
        "steps": state["step"],
        "stopped_early": stopped_early,
        "best_eval_loss": state["best_eval"] if tcfg.select_by == "loss" else None,
        "best_eval_wf1": -state["best_eval"]
        if tcfg.select_by == "wf1" and state["best_eval"] is not None
        else None,
        "final_train_loss": state["history"][-1]["train_loss"] if state["history"] else None,
        "load_seconds": round(load_s, 3),
        "train_seconds": round(train_s, 3),
        "samples_per_s": round(state["samples"] / train_s, 4) if train_s else None,
        "tokens_per_s": round(state["tokens"] / train_s, 2) if train_s else None,
        "peak_memory_mb": round(peak, 1),
        "peak_memory_kind": peak_kind,
        "checkpoint_bytes": dir_bytes(out / "model") if (out / "model").exists() else 0,
    }


def train(
    method: str,
    model_name: str,
    data: str | Path,
    out: str | Path,
    eval_data: str | Path | None = None,
    tcfg: TrainConfig | None = None,
    mcfg=None,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> dict:
    """Train and write a run directory; returns the contents of ``run.json``.

    ``stop_after`` ends the run (with a checkpoint) after that step without changing the schedule, as an interruption
    would; ``resume=True`` then continues it.
    """
    # -- the run: method, devices, data, model
    tcfg = tcfg or TrainConfig()
    out = Path(out)
    spec, mcfg = check_run(method, mcfg, out, resume)
    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    main_proc = rank == 0
    device, amp_dtype = pick_device(tcfg)
    if device.type == "cpu":
        torch.set_num_threads(tcfg.threads or available_cores())
    if world > 1:
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(device)
    schema = load_schema(tcfg.schema)
    seed_everything(tcfg.seed)
    train_records, eval_records = load_data(data, eval_data, tcfg, schema)
    t_load = time.perf_counter()
    model, tokenizer = prepare_model(model_name, spec, mcfg, tcfg, device)
    if amp_dtype == torch.bfloat16 and tcfg.bf16_frozen_weights:
        frozen_weights_to_bf16(model)
    load_s = time.perf_counter() - t_load
    tpl = tcfg.prompt_template
    train_ex = tokenize_records(train_records, tokenizer, schema, tcfg.max_prompt_tokens, tpl)
    eval_ex = tokenize_records(eval_records, tokenizer, schema, tcfg.max_prompt_tokens, tpl)
    pad_id = tokenizer.pad_token_id

    # -- optimisation
    total_steps = total_steps_of(len(train_ex), tcfg, world)
    lr = tcfg.lr or spec.default_lr
    prior = trainer_state(out) if resume else None
    stages, stopped_before = schedule_stages(out, prior, total_steps, lr, tcfg)
    params, optimizer, scheduler = make_optimizer(model, tcfg, stages)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    train_model = model
    if world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device] if device.type == "cuda" else None
        )

    # -- the record of the run, written before training so a crashed run still says what it was
    # A local base is recorded by absolute path so the model directory loads from anywhere; hub ids stay as given.
    local = local_base_name(model_name) is None and Path(model_name).exists()
    info = ModelInfo(
        method=method,
        base=str(Path(model_name).resolve()) if local else model_name,
        schema=tcfg.schema,
        adapter=method_config_dict(method, mcfg),
        max_prompt_tokens=tcfg.max_prompt_tokens,
        prompt_template=tcfg.prompt_template,
    )
    trainable, total = count_parameters(model)
    run = {
        "method": method,
        "method_config": asdict(mcfg),
        "train_config": asdict(tcfg),
        "model": model_name,
        "data": {"train": str(data), "eval": str(eval_data) if eval_data else None},
        "records": {"train": len(train_ex), "eval": len(eval_ex)},
        "lr": stages[0]["peak_lr"],
        "schedule": stages,
        "versions": library_versions(),
        "device": device_record(device, amp_dtype, world),
        "git_commit": git_commit(),
        "params": {"trainable": trainable, "total": total, "trainable_pct": 100.0 * trainable / total},
        "total_steps": total_steps,
    }
    state = prior or new_state()
    if resume:
        load_checkpoint(out, model, optimizer, scheduler)
    state["stopped_early"] = stopped_before
    if 0 < state["step"] == stages[-1]["start"]:
        # an extension starting: its own patience (the best model so far is the one to beat)
        state["bad_evals"] = 0
    state["stages"] = stages
    # the rate of the next step under the schedule, relative to the first stage's peak (a checkpoint holds the rate
    # and base of its own schedule; an extension's are new)
    scheduler.base_lrs = [stages[0]["peak_lr"]] * len(optimizer.param_groups)
    for group in optimizer.param_groups:
        group["lr"] = stages[0]["peak_lr"] * lr_factor(stages, state["step"])
    # resuming a finished run trains nothing and leaves its record as it is (unless it ended before writing it)
    finished = resume and (state["step"] >= total_steps or state["stopped_early"])
    record = json.loads((out / "run.json").read_text()) if finished else {}
    if "result" in record:
        if world > 1:
            torch.distributed.destroy_process_group()
        return record
    if main_proc:
        out.mkdir(parents=True, exist_ok=True)
        (out / "run.json").write_text(json.dumps(run, indent=2) + "\n")

    def save_model() -> None:
        if main_proc:
            shutil.rmtree(out / "model", ignore_errors=True)
            spec.save(model, tokenizer, out / "model", info)

    # -- the training loop: step, evaluate (keep the best), checkpoint, stop early or when interrupted
    model.train()
    bar = None
    if progress and main_proc:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=total_steps, initial=state["step"], desc=f"train {method}", unit="step", dynamic_ncols=True
        )
    # a run that stopped early trains no further (extending it starts a new stage, which clears the flag)
    stopped_early, interrupted = state["stopped_early"], False
    t0 = time.perf_counter() - state["train_seconds"]
    while state["step"] < total_steps and not stopped_early:
        optimizer.zero_grad(set_to_none=True)
        step_loss, step_tokens, samples, epoch = train_step(
            train_model, train_ex, state["step"], tcfg, pad_id, device, amp_dtype, scaler, rank, world
        )
        if tcfg.max_grad_norm:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, tcfg.max_grad_norm)
        used_lr = optimizer.param_groups[0]["lr"]
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        state["step"] = step = state["step"] + 1
        state["tokens"] += step_tokens
        state["samples"] += samples
        state["train_seconds"] = time.perf_counter() - t0
        entry = {
            "step": step,
            "epoch": epoch,
            "train_loss": round(step_loss, 6),
            "lr": used_lr,  # the rate this step was taken with
        }
        entry["elapsed_s"] = round(state["train_seconds"], 3)
        if eval_ex and (step % tcfg.eval_every == 0 or step == total_steps):
            ev = eval_loss(model, eval_ex, tcfg, pad_id, device, amp_dtype)
            entry["eval_loss"] = round(ev, 6)
            if tcfg.select_by == "wf1":
                wf1 = eval_wf1(model, tokenizer, eval_records, info, amp_dtype)
                entry["eval_wf1"] = round(wf1, 6)
                ev = -wf1  # lower is better, as for the loss
            if state["best_eval"] is None or ev < state["best_eval"]:
                state["best_eval"], state["bad_evals"] = ev, 0
                save_model()
            else:
                state["bad_evals"] += 1
                stopped_early = (
                    bool(tcfg.patience)
                    and state["bad_evals"] >= tcfg.patience
                    and step >= earliest_stop(stages[-1], tcfg.min_steps_share)
                )
        state["history"].append(entry)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(
                loss=f"{step_loss:.4f}",
                **({"eval": f"{entry['eval_loss']:.4f}"} if "eval_loss" in entry else {}),
                **({"wf1": f"{entry['eval_wf1']:.3f}"} if "eval_wf1" in entry else {}),
            )
        interrupted = stop_after is not None and step >= stop_after
        state["stopped_early"] = stopped_early  # an early-stopped run may be extended
        if main_proc and (step % tcfg.save_every == 0 or step == total_steps or stopped_early or interrupted):
            save_checkpoint(out, model, optimizer, scheduler, state)
        if stopped_early or interrupted:
            break
    if bar is not None:
        bar.close()

    # -- the model and the record
    if not eval_ex or state["best_eval"] is None:
        save_model()  # without an eval set the last weights are the model
    run["result"] = result_record(state, stopped_early, load_s, device, out, tcfg)
    run["result"]["complete"] = not interrupted  # --stop-after: resumable, not finished
    if main_proc:
        with (out / "history.jsonl").open("w") as fh:
            for e in state["history"]:
                fh.write(json.dumps(e) + "\n")
        (out / "run.json").write_text(json.dumps(run, indent=2) + "\n")
        title = f"{method} on {Path(str(model_name)).name}"
        plot_history(state["history"], out / "loss_curve.png", title=title)
    if world > 1:
        torch.distributed.destroy_process_group()
    return run


def plot_history(history: list[dict], path: Path, title: str = "") -> bool:
    """The loss curve (train loss per step, eval loss and eval weighted F1 where measured) as a PNG; False when
    matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [e["step"] for e in history]
    ax.plot(steps, [e["train_loss"] for e in history], lw=0.8, alpha=0.6, label="train loss")
    ev = [(e["step"], e["eval_loss"]) for e in history if "eval_loss" in e]
    if ev:
        ax.plot(*zip(*ev, strict=True), "o-", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("answer loss (cross-entropy per token)")
    f1 = [(e["step"], e["eval_wf1"]) for e in history if "eval_wf1" in e]
    if f1:
        ax2 = ax.twinx()
        ax2.plot(*zip(*f1, strict=True), "s--", color="tab:green", label="eval weighted F1 (3-class)")
        ax2.set_ylabel("weighted F1")
        ax2.legend(loc="upper center")
    ax.legend(loc="upper right")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


# ---- command line -------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m finetune.train",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    ap.add_argument("--method", choices=sorted(METHODS), required=True, help="tuning method")
    ap.add_argument(
        "--model", default=DEFAULT_BASE, help="base model: Hugging Face id, local path or smollm2-135m"
    )
    ap.add_argument("--data", required=True, help="training records, instruction JSONL/JSON")
    ap.add_argument("--eval", default=None, help="eval records for eval loss and early stopping")
    ap.add_argument("--out", required=True, help="run directory to create (or to continue with --resume)")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument(
        "--stop-after", type=int, default=None, help="end after step N (resumable; schedule unchanged)"
    )
    add_dataclass_arguments(ap.add_argument_group("training options (TrainConfig)"), TrainConfig)
    for name, spec in METHODS.items():
        if fields(spec.config_cls):
            group = ap.add_argument_group(f"{name} options ({spec.config_cls.__name__})")
            add_dataclass_arguments(group, spec.config_cls, prefix=f"{name}-")
    return ap


def configs_from_args(args) -> tuple[TrainConfig, object]:
    """The typed configs from parsed arguments; an inconsistent value becomes a one-line user error."""
    spec = METHODS[args.method]
    try:
        tcfg = dataclass_from_arguments(TrainConfig, args)
        mcfg = dataclass_from_arguments(spec.config_cls, args, prefix=f"{args.method}-")
    except ValueError as exc:
        raise UserError(f"bad option: {exc}", hint="see --help") from exc
    return tcfg, mcfg


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    tcfg, mcfg = configs_from_args(args)
    run = train(
        args.method,
        args.model,
        args.data,
        args.out,
        args.eval,
        tcfg,
        mcfg,
        resume=args.resume,
        progress=not args.no_progress,
        stop_after=args.stop_after,
    )
    r = run["result"]
    best = f"loss {r['best_eval_loss']}" if tcfg.select_by == "loss" else f"weighted F1 {r['best_eval_wf1']}"
    print(
        f"{args.method}: {r['steps']} steps in {r['train_seconds']:.1f}s, trainable {run['params']['trainable']:,} "
        f"({run['params']['trainable_pct']:.3f}%), best eval {best}, model in {Path(args.out) / 'model'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
