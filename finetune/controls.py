"""The controls of the tuning study: what a tuned model must beat to be worth its training.

- ``majority``: every field answered with its most frequent training label (no model at all).
- ``zero_shot_dir``: the base model untouched, read through the same constrained decoding as the tuned ones, with
  the schema's instruction in the prompt (the ``alpaca`` template); built as adapters whose up-projections are zero,
  which leave the base's outputs exactly as they are.
- ``linear_probe``: a multinomial logistic regression per field on the frozen base's last hidden state at the
  prompt's last token (what a tuned head on a frozen body can reach).

Each returns (or, for the zero-shot directory, is evaluated into) the same result shape as ``finetune.evaluate``:
``metrics`` and ``intervals_95`` from ``finetune.metrics`` on the same gold answers.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch

from bridge.lm.loading import ModelInfo, load_base
from bridge.prompt import build_prompt
from bridge.schema import Schema
from bridge.types import Analysis
from finetune.metrics import answer_items, score, score_intervals

PROBE_L2 = 1e-3  # weight decay of the probe, per example; features are standardised first
PROBE_STEPS = 200  # L-BFGS iterations (the problem is convex: this converges)


def _result(name: str, gold: list[Analysis], pred: list[Analysis], schema: Schema, **extra) -> dict:
    ci = score_intervals(gold, pred, schema)
    return {
        "analyzer": name,
        "metrics": score(gold, pred, schema),
        "intervals_95": {k: [round(lo, 4), round(hi, 4)] for k, (lo, hi) in ci.items()},
        "per_item": answer_items(gold, pred, schema),
        **extra,
    }


def majority(train_gold: list[Analysis], gold: list[Analysis], schema: Schema) -> dict:
    """Every field its most frequent training value (ties: the first seen)."""
    labels = {
        f.name: Counter(a.labels[f.name] for a in train_gold).most_common(1)[0][0] for f in schema.fields
    }
    level = Counter(a.sentiment for a in train_gold).most_common(1)[0][0]
    pred = [Analysis(dict(labels), level, analyzer="majority") for _ in gold]
    return _result("majority", gold, pred, schema, answer={**labels, "sentiment": level})


def zero_shot_dir(base: str, out: Path, schema: Schema) -> Path:
    """A model directory that is the untuned ``base`` (zero-initialised adapters) with the instruction in its
    prompt; evaluate it like any tuned model."""
    from bridge.lm.adapter import AdapterConfig
    from bridge.lm.methods import METHODS

    out = Path(out)
    if (out / "bridge_model.json").is_file():
        return out
    model, tok = load_base(base)
    cfg = AdapterConfig()
    model = METHODS["adapter"].prepare(
        model, cfg
    )  # up-projections start at zero: the base's outputs, unchanged
    info = ModelInfo(
        method="adapter", base=base, schema=schema.name, adapter=cfg.to_dict(), prompt_template="alpaca"
    )
    METHODS["adapter"].save(model, tok, out, info)
    return out


@torch.no_grad()
def features(
    base: str, texts: list[str], schema: Schema, batch_size: int = 16, progress=None
) -> torch.Tensor:
    """The frozen base's last hidden state at the last prompt token, one row per text (``short`` template)."""
    model, tok = load_base(base)
    rows = []
    for i in range(0, len(texts), batch_size):
        prompts = [build_prompt(t, schema=schema, template="short") for t in texts[i : i + batch_size]]
        enc = tok(prompts, return_tensors="pt", padding=True, truncation=True, max_length=192)
        out = model(**enc, output_hidden_states=True)
        last = enc["attention_mask"].sum(1) - 1
        hidden = out.hidden_states[-1]
        if tok.padding_side == "left":
            last = torch.full_like(last, hidden.shape[1] - 1)
        rows.append(hidden[torch.arange(len(prompts)), last].float())
        if progress is not None:
            progress(len(prompts))
    return torch.cat(rows)


def _fit_predict(x_train: torch.Tensor, y_train: list, x_eval: torch.Tensor) -> list:
    """Multinomial logistic regression (L2, L-BFGS) on standardised features; predictions for ``x_eval``."""
    classes = sorted(set(y_train), key=str)
    if len(classes) == 1:
        return [classes[0]] * len(x_eval)
    index = {c: k for k, c in enumerate(classes)}
    y = torch.tensor([index[v] for v in y_train])
    mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-6)
    xt, xe = (x_train - mean) / std, (x_eval - mean) / std
    torch.manual_seed(0)
    w = torch.zeros(xt.shape[1], len(classes), requires_grad=True)
    b = torch.zeros(len(classes), requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=PROBE_STEPS, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ w + b, y) + PROBE_L2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return [classes[k] for k in (xe @ w + b).argmax(1).tolist()]


def linear_probe(
    base: str,
    train_texts: list[str],
    train_gold: list[Analysis],
    texts: list[str],
    gold: list[Analysis],
    schema: Schema,
    progress=None,
) -> dict:
    """One probe per categorical field and one for the 7 sentiment levels, on the same features."""
    x_train = features(base, train_texts, schema, progress=progress)
    x_eval = features(base, texts, schema, progress=progress)
    fields = {
        f.name: _fit_predict(x_train, [a.labels[f.name] for a in train_gold], x_eval) for f in schema.fields
    }
    levels = _fit_predict(x_train, [a.sentiment for a in train_gold], x_eval)
    pred = [
        Analysis({name: fields[name][k] for name in fields}, int(levels[k]), analyzer="linear-probe")
        for k in range(len(gold))
    ]
    return _result(
        "linear-probe", gold, pred, schema, train_records=len(train_texts), features=x_train.shape[1]
    )
