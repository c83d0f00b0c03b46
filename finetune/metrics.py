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


# ---- 95% bootstrap intervals -----------------------------------------------------------------------------------------

BOOTSTRAP_SAMPLES = 1000


def bootstrap_interval(
    values: Sequence[float] | None = None,
    gold: Sequence | None = None,
    pred: Sequence | None = None,
    labels: Sequence | None = None,
    kind: str = "mean",
    samples: int = BOOTSTRAP_SAMPLES,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(point, low, high): the statistic on the data and its percentile bootstrap interval (95% by default).

    ``kind`` ``mean``: the mean of per-item ``values`` (an accuracy is the mean of 0/1 values). ``macro_f1`` /
    ``weighted_f1``: F1 over ``labels`` of paired ``gold`` and ``pred``, as ``macro_f1`` and ``weighted_f1`` above.
    Items are resampled with replacement ``samples`` times with a fixed seed, so the interval is reproducible.
    """
    rng = np.random.default_rng(seed)
    if kind == "mean":
        x = np.asarray(values, dtype=float)
        if x.size == 0:
            raise ValueError("nothing to bootstrap")
        idx = rng.integers(0, x.size, size=(samples, x.size))
        stats = x[idx].mean(axis=1)
        point = float(x.mean())
    elif kind in ("macro_f1", "weighted_f1"):
        stat, n = _f1_statistic(gold, pred, labels, weighted=kind == "weighted_f1")
        point = stat(np.arange(n))
        stats = np.array([stat(rng.integers(0, n, size=n)) for _ in range(samples)])
    else:
        raise ValueError(f"unknown bootstrap statistic {kind!r}")
    low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return point, float(low), float(high)


def _f1_statistic(gold: Sequence, pred: Sequence, labels: Sequence, weighted: bool):
    """(stat, n): ``stat(sel)`` is the macro or weighted F1 over ``labels`` of the items at the indices ``sel``."""
    labels = list(labels)
    pos = {lab: i for i, lab in enumerate(labels)}
    # values outside ``labels`` count as an extra "other" class that is never scored
    k = len(labels)
    g = np.array([pos.get(v, k) for v in gold])
    p = np.array([pos.get(v, k) for v in pred])
    if g.size == 0 or g.size != p.size:
        raise ValueError(f"need paired, non-empty gold and pred, got {g.size} and {p.size}")
    pair = g * (k + 1) + p

    def stat(sel: np.ndarray) -> float:
        # gold x pred counts; errors against the unscored class still count in the row and column sums
        full = np.bincount(pair[sel], minlength=(k + 1) ** 2).reshape(k + 1, k + 1)
        tp = np.diag(full)[:k].astype(float)
        support = full[:k].sum(axis=1)
        predicted = full[:, :k].sum(axis=0)
        denom = support + predicted
        f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
        if weighted:
            return float((f1 * support).sum() / support.sum()) if support.sum() else 0.0
        present = denom > 0
        return float(f1[present].mean()) if present.any() else 0.0

    return stat, g.size


def paired_difference(
    gold: Sequence,
    pred_a: Sequence,
    pred_b: Sequence,
    labels: Sequence,
    kind: str = "weighted_f1",
    samples: int = BOOTSTRAP_SAMPLES,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(difference, low, high): F1 of ``pred_a`` minus F1 of ``pred_b`` on the same gold items, with a paired
    percentile bootstrap interval (both scored on the same resampled items each time).

    Two models scored on the same items err on many of the same items, so their scores move together from one draw
    of items to the next; the interval of the difference is therefore narrower than comparing two separate
    intervals, which is the right test when both saw the same items. It covers the sampling of the test items only,
    not the training noise across seeds.
    """
    if kind not in ("macro_f1", "weighted_f1"):
        raise ValueError(f"unknown paired statistic {kind!r}")
    stat_a, n = _f1_statistic(gold, pred_a, labels, weighted=kind == "weighted_f1")
    stat_b, _ = _f1_statistic(gold, pred_b, labels, weighted=kind == "weighted_f1")
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(samples):
        sel = rng.integers(0, n, size=n)
        diffs.append(stat_a(sel) - stat_b(sel))
    low, high = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    everything = np.arange(n)
    return stat_a(everything) - stat_b(everything), float(low), float(high)


def sentiment_items(gold: Sequence[Analysis], pred: Sequence[Analysis]) -> dict[str, list[int]]:
    """Each item's gold and predicted 7-level sentiment, in order: what a paired comparison of two results needs."""
    return {"gold_sentiment": [g.sentiment for g in gold], "pred_sentiment": [p.sentiment for p in pred]}


# the sentiment scores a paired comparison can take: (kind, labels, whether the 7 levels fold to 3 classes)
PAIRED_SCORES = {
    "wf1_sentiment_3": ("weighted_f1", (-1, 0, 1), True),
    "f1_sentiment_3": ("macro_f1", (-1, 0, 1), True),
    "f1_sentiment_7": ("macro_f1", tuple(range(-3, 4)), False),
}


def paired_score_difference(items_a: dict, items_b: dict, metric: str) -> tuple[float, float, float] | None:
    """``paired_difference`` of ``metric`` between two results' ``sentiment_items``; None where either is missing or
    their gold sequences differ (they were not scored on the same items, in the same order)."""
    if not items_a or not items_b or items_a["gold_sentiment"] != items_b["gold_sentiment"]:
        return None
    kind, labels, fold = PAIRED_SCORES[metric]

    def levels(xs):
        return [three_class(x) for x in xs] if fold else list(xs)

    gold = levels(items_a["gold_sentiment"])
    return paired_difference(
        gold, levels(items_a["pred_sentiment"]), levels(items_b["pred_sentiment"]), labels, kind
    )


def score_intervals(
    gold: Sequence[Analysis],
    pred: Sequence[Analysis],
    schema: Schema,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """95% bootstrap intervals ``(low, high)`` of the main metrics of ``score``, by the same names."""
    if len(gold) != len(pred) or not gold:
        raise ValueError(f"need paired, non-empty analyses, got {len(gold)} and {len(pred)}")
    out: dict[str, tuple[float, float]] = {}
    pairs = list(zip(gold, pred, strict=True))
    per_item = {
        f"acc_{f.name}": [g.labels.get(f.name) == p.labels.get(f.name) for g, p in pairs]
        for f in schema.fields
    }
    per_item["acc_sentiment"] = [g.sentiment == p.sentiment for g, p in pairs]
    per_item["exact_match"] = [
        g.labels == p.labels and g.sentiment == p.sentiment and set(g.related) == set(p.related)
        for g, p in pairs
    ]
    for name, vals in per_item.items():
        out[name] = bootstrap_interval(vals, samples=samples, seed=seed)[1:]
    g7, p7 = [g.sentiment for g in gold], [p.sentiment for p in pred]
    g3, p3 = [three_class(x) for x in g7], [three_class(x) for x in p7]
    out["f1_sentiment_7"] = bootstrap_interval(
        gold=g7, pred=p7, labels=range(-3, 4), kind="macro_f1", samples=samples, seed=seed
    )[1:]
    out["f1_sentiment_3"] = bootstrap_interval(
        gold=g3, pred=p3, labels=(-1, 0, 1), kind="macro_f1", samples=samples, seed=seed
    )[1:]
    out["wf1_sentiment_3"] = bootstrap_interval(
        gold=g3, pred=p3, labels=(-1, 0, 1), kind="weighted_f1", samples=samples, seed=seed
    )[1:]
    return out
