"""Scores of predicted analyses against gold ones: per-field accuracy, sentiment macro-F1 (7 levels and 3 classes),
exact match, parse-failure rate. Pure functions of two lists; no model in here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bridge.schema import Schema
from bridge.types import Analysis


def macro_f1(gold: Sequence, pred: Sequence, labels: Sequence) -> float:
    """Unweighted mean F1 over ``labels`` (a label absent from both gold and prediction is left out, as sklearn does
    with ``labels`` restricted to those present)."""
    scores = []
    for lab in labels:
        tp = sum(1 for g, p in zip(gold, pred, strict=True) if g == lab and p == lab)
        fp = sum(1 for g, p in zip(gold, pred, strict=True) if g != lab and p == lab)
        fn = sum(1 for g, p in zip(gold, pred, strict=True) if g == lab and p != lab)
        if tp + fp + fn == 0:
            continue
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def weighted_f1(gold: Sequence, pred: Sequence, labels: Sequence) -> float:
    """Support-weighted F1 (the figure FinGPT and FinBERT report on Twitter Financial News Sentiment)."""
    total, acc = 0, 0.0
    for lab in labels:
        support = sum(1 for g in gold if g == lab)
        if not support:
            continue
        tp = sum(1 for g, p in zip(gold, pred, strict=True) if g == lab and p == lab)
        fp = sum(1 for g, p in zip(gold, pred, strict=True) if g != lab and p == lab)
        fn = support - tp
        acc += support * (2 * tp / (2 * tp + fp + fn))
        total += support
    return acc / total if total else 0.0


def three_class(level: int) -> int:
    """-3..-1 -> -1 (negative), 0 -> 0 (neutral), 1..3 -> +1 (positive)."""
    return (level > 0) - (level < 0)


def score(gold: Sequence[Analysis], pred: Sequence[Analysis], schema: Schema) -> dict[str, float]:
    """All label metrics for paired gold and predicted analyses."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold analyses but {len(pred)} predictions")
    n = len(gold)
    if n == 0:
        raise ValueError("nothing to score")
    out: dict[str, float] = {"n": n}
    for f in schema.fields:
        out[f"acc_{f.name}"] = (
            sum(g.labels.get(f.name) == p.labels.get(f.name) for g, p in zip(gold, pred, strict=True)) / n
        )
    g7 = [g.sentiment for g in gold]
    p7 = [p.sentiment for p in pred]
    out["acc_sentiment"] = sum(a == b for a, b in zip(g7, p7, strict=True)) / n
    out["acc_related"] = sum(set(g.related) == set(p.related) for g, p in zip(gold, pred, strict=True)) / n
    out["f1_sentiment_7"] = macro_f1(g7, p7, range(-3, 4))
    g3, p3 = [three_class(x) for x in g7], [three_class(x) for x in p7]
    out["f1_sentiment_3"] = macro_f1(g3, p3, (-1, 0, 1))
    out["wf1_sentiment_3"] = weighted_f1(g3, p3, (-1, 0, 1))
    out["acc_sentiment_3"] = sum(a == b for a, b in zip(g3, p3, strict=True)) / n
    out["exact_match"] = (
        sum(
            g.labels == p.labels and g.sentiment == p.sentiment and set(g.related) == set(p.related)
            for g, p in zip(gold, pred, strict=True)
        )
        / n
    )
    out["parse_failure_rate"] = sum(p.fallback for p in pred) / n
    return out
