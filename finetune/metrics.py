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


def item_hits(gold: Sequence[Analysis], pred: Sequence[Analysis], schema: Schema) -> dict[str, list[bool]]:
    """Per item, whether each field, the sentiment, the related list (as a set) and the whole answer are right: the
    accuracies are their means."""
    pairs = list(zip(gold, pred, strict=True))
    hits = {
        f"acc_{f.name}": [g.labels.get(f.name) == p.labels.get(f.name) for g, p in pairs]
        for f in schema.fields
    }
    hits["acc_sentiment"] = [g.sentiment == p.sentiment for g, p in pairs]
    hits["acc_related"] = [set(g.related) == set(p.related) for g, p in pairs]
    hits["exact_match"] = [
        g.labels == p.labels and g.sentiment == p.sentiment and set(g.related) == set(p.related)
        for g, p in pairs
    ]
    return hits


def score(gold: Sequence[Analysis], pred: Sequence[Analysis], schema: Schema) -> dict[str, float]:
    """All label metrics for paired gold and predicted analyses."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold analyses but {len(pred)} predictions")
    n = len(gold)
    if n == 0:
        raise ValueError("nothing to score")
    out: dict[str, float] = {"n": n}
    out.update({name: sum(hits) / n for name, hits in item_hits(gold, pred, schema).items()})
    g7 = [g.sentiment for g in gold]
    p7 = [p.sentiment for p in pred]
    out["f1_sentiment_7"] = macro_f1(g7, p7, range(-3, 4))
    g3, p3 = [three_class(x) for x in g7], [three_class(x) for x in p7]
    out["f1_sentiment_3"] = macro_f1(g3, p3, (-1, 0, 1))
    out["wf1_sentiment_3"] = weighted_f1(g3, p3, (-1, 0, 1))
    out["acc_sentiment_3"] = sum(a == b for a, b in zip(g3, p3, strict=True)) / n
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


def _accuracy_statistic(gold: Sequence, pred: Sequence):
    """(stat, n): ``stat(sel)`` is the share of the items at the indices ``sel`` whose prediction is the gold."""
    if len(gold) == 0 or len(gold) != len(pred):
        raise ValueError(f"need paired, non-empty gold and pred, got {len(gold)} and {len(pred)}")
    hit = np.array([g == p for g, p in zip(gold, pred, strict=True)], dtype=float)
    return (lambda sel: float(hit[sel].mean())), hit.size


PAIRED_KINDS = ("macro_f1", "weighted_f1", "accuracy")


def paired_difference(
    gold: Sequence,
    runs_a: Sequence[Sequence],
    runs_b: Sequence[Sequence],
    labels: Sequence,
    kind: str = "weighted_f1",
    paired_runs: bool = False,
    samples: int = BOOTSTRAP_SAMPLES,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(difference, low, high): the mean F1 (``kind`` macro_f1, weighted_f1) or accuracy of the runs in ``runs_a`` (one
    prediction sequence per trained model, for example one per seed) minus that of ``runs_b``, all on the same gold
    items, with a paired percentile bootstrap interval (``labels`` is used by the F1 kinds only).

    Each draw resamples the test items once, shared by every model (two models scored on the same items err on many
    of the same items, so their scores move together and the difference's interval is narrower than two separate
    intervals would suggest), and resamples each side's runs, so that the interval holds some of the training noise
    between seeds as well as the sampling of the items. ``paired_runs``: run k of one side shares its training data
    with run k of the other (the same seed draws the same records), so both sides draw the same runs. With one run a
    side this is the plain paired bootstrap over items (a side of one run brings no training noise). With k runs the
    resampled runs carry only (k - 1) / k of their variance and no small-sample widening: with two or three seeds the
    seed part of the interval is about the range of the seeds' own differences, far narrower than a t interval over
    the seeds, so read it together with one (``finetune.compare.verdict`` does).
    """
    if kind not in PAIRED_KINDS:
        raise ValueError(f"unknown paired statistic {kind!r}")
    if not runs_a or not runs_b:
        raise ValueError("need at least one run a side")
    if paired_runs and len(runs_a) != len(runs_b):
        raise ValueError(f"paired runs need as many a side, got {len(runs_a)} and {len(runs_b)}")

    def statistic(pred):
        if kind == "accuracy":
            return _accuracy_statistic(gold, pred)[0]
        return _f1_statistic(gold, pred, labels, weighted=kind == "weighted_f1")[0]

    stats_a, stats_b = [statistic(p) for p in runs_a], [statistic(p) for p in runs_b]
    n = len(gold)
    rng = np.random.default_rng(seed)

    def pick(k: int) -> np.ndarray:
        # one run is always itself (and draws nothing, so one-run results reproduce the items-only bootstrap)
        return rng.integers(0, k, size=k) if k > 1 else np.zeros(1, dtype=int)

    diffs = []
    for _ in range(samples):
        sel = rng.integers(0, n, size=n)
        pick_a = pick(len(runs_a))
        pick_b = pick_a if paired_runs else pick(len(runs_b))
        diffs.append(np.mean([stats_a[k](sel) for k in pick_a]) - np.mean([stats_b[k](sel) for k in pick_b]))
    low, high = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    everything = np.arange(n)
    point = np.mean([st(everything) for st in stats_a]) - np.mean([st(everything) for st in stats_b])
    return float(point), float(low), float(high)


def answer_items(gold: Sequence[Analysis], pred: Sequence[Analysis], schema: Schema) -> dict[str, list]:
    """Each item's gold and predicted 7-level sentiment and label of every field, in order: what a paired comparison
    of two results needs (``gold_sentiment``, ``pred_sentiment``, ``gold_event``, ``pred_event``, ...)."""
    out: dict[str, list] = {
        "gold_sentiment": [g.sentiment for g in gold],
        "pred_sentiment": [p.sentiment for p in pred],
    }
    for f in schema.fields:
        out[f"gold_{f.name}"] = [g.labels.get(f.name) for g in gold]
        out[f"pred_{f.name}"] = [p.labels.get(f.name) for p in pred]
    return out


# the sentiment scores a paired comparison can take: (kind, labels, whether the 7 levels fold to 3 classes); besides
# these, the accuracy of any field whose answers were recorded (``acc_event``: ``gold_event`` / ``pred_event``)
PAIRED_SCORES = {
    "wf1_sentiment_3": ("weighted_f1", (-1, 0, 1), True),
    "f1_sentiment_3": ("macro_f1", (-1, 0, 1), True),
    "f1_sentiment_7": ("macro_f1", tuple(range(-3, 4)), False),
}


def paired_score_difference(
    runs_a: Sequence[dict], runs_b: Sequence[dict], metric: str, paired_runs: bool = False
) -> tuple[float, float, float] | None:
    """``paired_difference`` of ``metric`` (a ``PAIRED_SCORES`` name, or ``acc_<field>``) between two sides'
    results, each a list of ``answer_items`` (one per trained model); None for any other metric, or where any result
    is missing, lacks the field's answers (recorded before they were, or never, as for ``acc_related``) or their gold
    sequences differ (not scored on the same items, in the same order)."""
    if metric in PAIRED_SCORES:
        field, (kind, labels, fold) = "sentiment", PAIRED_SCORES[metric]
    elif metric.startswith("acc_"):
        field, kind, labels, fold = metric.removeprefix("acc_"), "accuracy", (), False
    else:
        return None
    gold_key, pred_key = f"gold_{field}", f"pred_{field}"
    runs = (*runs_a, *runs_b)
    if not runs_a or not runs_b or not all(runs) or any(gold_key not in r or pred_key not in r for r in runs):
        return None
    gold = runs_a[0][gold_key]
    if any(r[gold_key] != gold or r["gold_sentiment"] != runs_a[0]["gold_sentiment"] for r in runs):
        return None

    def levels(xs):
        return [three_class(x) for x in xs] if fold else list(xs)

    return paired_difference(
        levels(gold),
        [levels(r[pred_key]) for r in runs_a],
        [levels(r[pred_key]) for r in runs_b],
        labels,
        kind,
        paired_runs=paired_runs,
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
    for name, hits in item_hits(gold, pred, schema).items():
        out[name] = bootstrap_interval(hits, samples=samples, seed=seed)[1:]
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
