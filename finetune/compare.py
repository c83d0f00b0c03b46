"""The tuning study: full fine-tuning, LoRA and adapters compared on the same data, run in parts and resumed.

    python -m finetune.compare --data train.jsonl --eval dev.jsonl --test test.jsonl --out runs/study \
        --bases smollm2-135m --sizes 500 2000 all --seeds 3 --seeds-at-all 1
    python -m finetune.compare --data train.jsonl --eval dev.jsonl --out runs/study --only lora/500   # some cells
    python -m finetune.compare --data train.jsonl --eval dev.jsonl --out runs/study --report-only     # aggregate
    python -m finetune.compare --data train.jsonl --eval dev.jsonl --out runs/study_quick --quick

Each cell (base, method, training size, seed) is its own run directory under ``OUT/cells/``, trained in its own
process (``python -m finetune.train``, so each peak-memory figure belongs to one method alone) and scored by
``finetune.evaluate``. A rerun skips a finished cell (its evaluation is there), resumes a half-trained one from its
last checkpoint (``--resume``: an interrupted session loses at most ``--save-every`` steps) and the report aggregates
whatever cells exist, so a study of CPU hours can be run a few cells at a time. The training size takes the first N
records of a seeded shuffle of the training file (``finetune.train --max-train-samples``).

Controls per base (``finetune.controls``), under ``OUT/controls/``: the majority class, the base zero-shot through the
same constrained decoding, and a linear probe on the frozen base's last hidden state.

Output in ``--out``: ``results.md`` (the table, and which differences are larger than their intervals),
``results.csv``, ``results.json`` (every cell's run record and scores, the configs, library versions),
``learning_curve.png``, ``score_vs_time.png``, ``peak_memory.png``, ``loss_curves.png``. ``--quick`` is a smoke-sized
study (few records, few steps, one seed) to check the pipeline in minutes; its scores mean little.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bridge.cli import HelpFormatter
from bridge.errors import ModelError, UserError, run_main
from bridge.lm.loading import DEFAULT_BASE
from bridge.lm.methods import METHODS
from bridge.provenance import library_versions
from finetune.config import TrainConfig
from finetune.metrics import answer_items, paired_score_difference

SCORE = "wf1_sentiment_3"  # the headline score: 3-class sentiment weighted F1 (what the literature reports)
# the scores whose differences the report tests: the headline score, and the field the FX target is about
COMPARED = (SCORE, "acc_event")
METRICS = ("wf1_sentiment_3", "f1_sentiment_3", "f1_sentiment_7", "acc_event", "acc_market", "acc_sector")
METRICS += ("acc_related", "exact_match", "parse_failure_rate")
QUICK = {
    "train_records": 48,
    "max_steps": 6,
    "max_eval_samples": 16,
    "eval_items": 16,
    "latency_items": 4,
    "probe_records": 48,
}
CONTROLS = ("majority", "zero-shot", "linear-probe")


def _evaluate(
    py: str,
    run_dir: Path,
    data: str,
    backend: str,
    out_path: Path,
    latency_items: int,
    limit: int | None,
    log: Path,
) -> None:
    """Score ``run_dir`` on ``data`` with ``finetune.evaluate`` in a subprocess, writing its JSON to ``out_path``."""
    cmd = [py, "-m", "finetune.evaluate", "--model", str(run_dir), "--data", data, "--backend", backend]
    cmd += ["--out", str(out_path), "--latency-items", str(latency_items)]
    if limit:
        cmd += ["--limit", str(limit)]
    _run(cmd, log)


def _run(cmd: list[str], log: Path) -> None:
    """Run one step of the comparison in its own process; its output goes to a log file beside the results."""
    with log.open("w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = log.read_text()[-1500:]
        raise ModelError(f"step failed (exit {proc.returncode}): {' '.join(cmd[2:5])} ...\n{tail}", path=log)


# -- cells -------------------------------------------------------------------------------------------------------------


def slug(base: str) -> str:
    """A base model's name as a folder name (``HuggingFaceTB/SmolLM2`` -> ``HuggingFaceTB-SmolLM2``)."""
    return re.sub(r"[^A-Za-z0-9.-]+", "-", base).strip("-")


@dataclass(frozen=True)
class Cell:
    """One training run of the study: ``size`` None is the whole training file."""

    base: str
    method: str
    size: int | None
    seed: int

    @property
    def name(self) -> str:
        return f"{slug(self.base)}__{self.method}__n{self.size or 'all'}__seed{self.seed}"


def plan(bases, methods, sizes, seeds: int, seeds_at_all: int) -> list[Cell]:
    """Every cell, small sizes first (they finish soonest and already draw a learning curve)."""
    order = sorted(sizes, key=lambda n: float("inf") if n is None else n)
    return [
        Cell(base, method, size, seed)
        for size in order
        for base in bases
        for method in methods
        for seed in range(seeds_at_all if size is None else seeds)
    ]


def selected(cell: Cell, only: list[str]) -> bool:
    """``--only`` patterns such as ``lora``, ``lora/500``, ``smollm2-135m/full/all``: every part must match."""
    if not only:
        return True
    parts = {cell.base, cell.method, str(cell.size or "all"), f"seed{cell.seed}"}
    return any(set(p.split("/")) <= parts for p in only)


def study_train_config(extra: list[str]) -> TrainConfig:
    """The training options every cell gets (a bad one fails here, before any cell runs)."""
    from finetune.train import build_parser, configs_from_args

    args = build_parser().parse_args(["--method", "lora", "--data", "-", "--out", "-", *extra])
    return configs_from_args(args)[0]


def stopped_too_soon(run_dir: Path, tcfg: TrainConfig) -> bool:
    """Whether the cell stopped early sooner than ``tcfg``'s rule allows: it was trained under a stricter one, and
    resuming trains it on as if it had trained under this rule from the start (the rule only decides when to stop)."""
    from finetune.train import earliest_stop

    run = run_dir / "run.json"
    record = json.loads(run.read_text()) if run.is_file() else {}
    result = record.get("result") or {}
    if not result.get("stopped_early"):
        return False
    stage = (record.get("schedule") or [{"start": 0, "end": record["total_steps"]}])[-1]
    return result["steps"] < earliest_stop(stage, tcfg.min_steps_share)


def cell_state(run_dir: Path, tcfg: TrainConfig | None = None) -> str:
    """``done`` (scored), ``trained``, ``reopened`` (stopped sooner than ``tcfg``'s rule allows), ``partial`` (a
    checkpoint to resume from) or ``new``."""
    checkpoint = (run_dir / "checkpoints" / "last" / "trainer_state.json").is_file()
    if tcfg is not None and checkpoint and stopped_too_soon(run_dir, tcfg):
        return "reopened"
    if (run_dir / "eval_torch.json").is_file():
        return "done"
    run = run_dir / "run.json"
    result = json.loads(run.read_text()).get("result") if run.is_file() else None
    if result is not None and result.get("complete", True):
        return "trained"
    if checkpoint:
        return "partial"
    return "new"


def run_cell(
    cell: Cell,
    data: str,
    eval_data: str,
    score_data: str,
    out: Path,
    extra: list[str],
    tcfg: TrainConfig,
    eval_items,
    latency_items,
) -> str:
    """Bring one cell to ``done`` (trained with ``eval_data`` for early stopping and checkpoint choice, scored on
    ``score_data``); returns the state it was found in."""
    py = sys.executable
    run_dir = out / "cells" / cell.name
    found = cell_state(run_dir, tcfg)
    if found in ("new", "partial", "reopened"):
        if found == "new" and run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)  # a run that died before its first checkpoint: nothing to keep
        cmd = [py, "-m", "finetune.train", "--method", cell.method, "--model", cell.base, "--data", data]
        cmd += ["--eval", eval_data, "--out", str(run_dir), "--seed", str(cell.seed), "--no-progress", *extra]
        if cell.size is not None:
            cmd += ["--max-train-samples", str(cell.size)]
        if found != "new":
            cmd.append("--resume")
        _run(cmd, out / "logs" / f"{cell.name}.train.log")
        if found == "reopened":  # trained on: the scores of the model it had chosen before go
            for scored in ("eval_torch.json", "latency_onnx.json"):
                (run_dir / scored).unlink(missing_ok=True)
    if found != "done":
        # ONNX latency first (the export is built on first use into the cache), then the scores on torch, whose file
        # marks the cell done
        if not (run_dir / "latency_onnx.json").is_file():
            _evaluate(
                py, run_dir, score_data, "auto", run_dir / "latency_onnx.json", latency_items, latency_items,
                out / "logs" / f"{cell.name}.onnx.log",
            )  # fmt: skip
        _evaluate(
            py, run_dir, score_data, "torch", run_dir / "eval_torch.json", latency_items, eval_items,
            out / "logs" / f"{cell.name}.eval.log",
        )  # fmt: skip
    return found


def load_cell(cell: Cell, out: Path, tcfg: TrainConfig) -> dict | None:
    run_dir = out / "cells" / cell.name
    if cell_state(run_dir, tcfg) != "done":
        return None
    ev = json.loads((run_dir / "eval_torch.json").read_text())
    onnx = run_dir / "latency_onnx.json"  # absent in cells scored before it was measured
    onnx_ev = json.loads(onnx.read_text()) if onnx.is_file() else {}
    history = run_dir / "history.jsonl"
    return {
        "base": cell.base,
        "method": cell.method,
        "size": cell.size,
        "seed": cell.seed,
        "run": json.loads((run_dir / "run.json").read_text()),
        "eval": ev["metrics"],
        "intervals_95": ev.get("intervals_95", {}),
        "per_item": ev.get("per_item"),  # absent in cells scored before it was recorded
        # None where the cell's ONNX export failed its parity check (the analyzer then ran torch)
        "latency_ms_onnx": onnx_ev["metrics"].get("latency_ms_p50")
        if onnx_ev.get("backend") == "onnx"
        else None,
        "history": [json.loads(x) for x in history.read_text().splitlines()] if history.is_file() else [],
    }


# -- controls ----------------------------------------------------------------------------------------------------------


def run_controls(base: str, data: str, score_data: str, out: Path, probe_records: int, eval_items) -> dict:
    """Majority, zero-shot and linear probe for ``base``, scored on ``score_data``; each is computed once and kept
    as JSON (again when the scoring file or count changes)."""
    from bridge.schema import load_schema
    from finetune.controls import linear_probe, majority, zero_shot_dir
    from finetune.evaluate import gold_analyses
    from finetune.train import read_records

    folder = out / "controls" / slug(base)
    folder.mkdir(parents=True, exist_ok=True)
    schema = load_schema()
    train = read_records(data, schema)
    test = read_records(score_data, schema)[:eval_items] if eval_items else read_records(score_data, schema)
    train_gold, gold = gold_analyses(train, schema, data), gold_analyses(test, schema, score_data)
    scored = {"scored_on": str(score_data), "items": len(test)}

    def fresh(path: Path, answers: bool = False) -> bool:
        # computed already, on the same items (and, for the probe, with each item's answer of every field: the paired
        # differences compare the methods with it)
        if not path.is_file():
            return False
        rec = json.loads(path.read_text())
        if answers and not set(answer_items([], [], schema)) <= set(rec.get("per_item") or {}):
            return False
        return all(rec.get(k) == v for k, v in scored.items())

    results = {}
    path = folder / "majority.json"
    if not fresh(path):
        path.write_text(json.dumps({**majority(train_gold, gold, schema), **scored}, indent=2))
    results["majority"] = json.loads(path.read_text())
    path = folder / "zero-shot.json"
    if not fresh(path):
        model_dir = zero_shot_dir(base, folder / "zero-shot-model", schema)
        _evaluate(
            sys.executable, model_dir, score_data, "torch", path, 0, eval_items, folder / "zero-shot.log"
        )
        path.write_text(json.dumps({**json.loads(path.read_text()), **scored}, indent=2))
    results["zero-shot"] = json.loads(path.read_text())
    path = folder / "linear-probe.json"
    if not fresh(path, answers=True):
        from tqdm.auto import tqdm

        # the probe's training part: a seeded sample, as the cells draw theirs
        rng = np.random.default_rng(0)
        keep = sorted(rng.permutation(len(train))[:probe_records])
        texts = [train[k]["input"] for k in keep]
        with tqdm(total=len(texts) + len(test), desc=f"linear probe features ({base})", unit="item") as bar:
            res = linear_probe(
                base,
                texts,
                [train_gold[k] for k in keep],
                [r["input"] for r in test],
                gold,
                schema,
                bar.update,
            )
        path.write_text(json.dumps({**res, **scored}, indent=2))
    results["linear-probe"] = json.loads(path.read_text())
    return results


# -- the study ---------------------------------------------------------------------------------------------------------


def study(
    data: str,
    eval_data: str,
    out: Path,
    bases: list[str],
    methods: list[str],
    sizes: list[int | None],
    seeds: int = 3,
    seeds_at_all: int = 1,
    only: list[str] | None = None,
    quick: bool = False,
    train_args: list[str] | None = None,
    eval_items: int | None = None,
    latency_items: int = 8,
    probe_records: int = 2000,
    report_only: bool = False,
    controls: bool = True,
    test_data: str | None = None,
) -> dict:
    """Run the selected cells that are not done (unless ``report_only``), then aggregate every done cell. Cells stop
    early and choose their checkpoint on ``eval_data``; everything is scored on ``test_data`` (default: the same
    file, which flatters the cells by their checkpoint choice: give a separate part)."""
    score_data = test_data or eval_data
    out.mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(exist_ok=True)
    extra = list(train_args or [])
    if quick:
        seeds, seeds_at_all, sizes = 1, 1, [QUICK["train_records"]]
        extra += [
            "--max-steps",
            str(QUICK["max_steps"]),
            "--max-eval-samples",
            str(QUICK["max_eval_samples"]),
        ]
        extra += ["--eval-every", str(QUICK["max_steps"])]
        eval_items = eval_items or QUICK["eval_items"]
        latency_items = QUICK["latency_items"]
        probe_records = QUICK["probe_records"]
    tcfg = study_train_config(extra)
    cells = plan(bases, methods, sizes, seeds, seeds_at_all)
    found: dict[str, str] = {}
    t_all = time.perf_counter()
    if not report_only:
        from tqdm.auto import tqdm

        todo = [c for c in cells if selected(c, only or [])]
        for cell in tqdm(todo, desc="study cells", unit="cell"):
            found[cell.name] = run_cell(
                cell, data, eval_data, score_data, out, extra, tcfg, eval_items, latency_items
            )
        if controls:
            for base in bases:
                run_controls(base, data, score_data, out, probe_records, eval_items)
    done = [r for r in (load_cell(c, out, tcfg) for c in cells) if r is not None]
    ctrl = {}
    for base in bases:
        folder = out / "controls" / slug(base)
        ctrl[base] = {
            k: json.loads((folder / f"{k}.json").read_text())
            for k in CONTROLS
            if (folder / f"{k}.json").is_file()
        }
    table = summarize(done)
    results = {
        "config": {
            "data": data,
            "eval": eval_data,
            "test": score_data,
            "bases": bases,
            "methods": methods,
            "sizes": [s or "all" for s in sizes],
            "seeds": seeds,
            "seeds_at_all": seeds_at_all,
            "quick": quick,
            "train_args": extra,
            "eval_items": eval_items,
            "probe_records": probe_records,
        },  # fmt: skip
        "versions": library_versions(),
        "wall_seconds": round(time.perf_counter() - t_all, 1),
        "cells_planned": len(cells),
        "cells_done": len(done),
        "found": found,
        "table": table,
        "differences": {m: differences(table, ctrl, done, m) for m in COMPARED},
        # each model's answers stay in its own eval JSON (they are only needed for the differences)
        "controls": {b: {k: _without_items(v) for k, v in c.items()} for b, c in ctrl.items()},
        "cells": [_without_items(c) for c in done],
    }
    write_outputs(results, out)
    return results


def _without_items(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "per_item"}


# -- the report --------------------------------------------------------------------------------------------------------

# two-sided 95% Student t quantiles by degrees of freedom, for the interval of a mean over a few seeds
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def mean_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean over seeds and its 95% t interval (the training noise); (mean, nan, nan) for one value."""
    arr = np.array([v for v in values if v is not None], dtype=float)
    if not len(arr):
        return float("nan"), float("nan"), float("nan")
    m = float(arr.mean())
    if len(arr) < 2:
        return m, float("nan"), float("nan")
    half = T95.get(len(arr) - 1, 1.96) * float(arr.std(ddof=1)) / np.sqrt(len(arr))
    return m, m - half, m + half


def summarize(cells: list[dict]) -> list[dict]:
    """One row per (base, method, size): scores as the mean over seeds with a 95% interval, and the costs. With one
    seed the interval is the cell's bootstrap over the test items; with several, the t interval over the seeds,
    widened to at least the seeds' mean bootstrap interval and kept within [0, 1] (every score here is a share)."""
    groups: dict[tuple, list[dict]] = {}
    for c in cells:
        groups.setdefault((c["base"], c["method"], c["size"]), []).append(c)
    rows = []
    for (base, method, size), cs in groups.items():
        res = [c["run"]["result"] for c in cs]
        row = {
            "base": base,
            "method": method,
            "size": size or "all",
            "train_records": cs[0]["run"]["records"]["train"],
            "seeds": len(cs),
            "interval": "seeds" if len(cs) > 1 else "bootstrap",
            # each seed's training precision (bf16 autocast where the CPU has it natively, else fp32), in seed order:
            # cells trained on other machines differ in it, and in their times
            "precision": ", ".join(
                str(c["run"].get("device", {}).get("amp_dtype") or "fp32")
                for c in sorted(cs, key=lambda c: c["seed"])
            ),
            "trainable_params": cs[0]["run"]["params"]["trainable"],
            "trainable_pct": cs[0]["run"]["params"]["trainable_pct"],
            "train_seconds": mean_interval([r["train_seconds"] for r in res])[0],
            "steps": mean_interval([r["steps"] for r in res])[0],
            "samples_per_s": mean_interval([r["samples_per_s"] for r in res])[0],
            "tokens_per_s": mean_interval([r["tokens_per_s"] for r in res])[0],
            "peak_memory_mb": mean_interval([r["peak_memory_mb"] for r in res])[0],
            "peak_memory_kind": res[0]["peak_memory_kind"],
            "checkpoint_mb": res[0]["checkpoint_bytes"] / 2**20,
            "latency_ms_torch": mean_interval([c["eval"].get("latency_ms_p50") for c in cs])[0],
            "latency_ms_onnx": mean_interval([c.get("latency_ms_onnx") for c in cs])[0],
        }
        for m in METRICS:
            mean, lo, hi = mean_interval([c["eval"].get(m) for c in cs])
            items = np.array([c["intervals_95"].get(m, (np.nan, np.nan)) for c in cs], dtype=float)
            if len(cs) == 1:
                lo, hi = items[0]
            elif not np.isnan(items).any():
                # a t interval over two or three seeds can be wider than the scale or (where the seeds happen to
                # agree) no width at all; it is never narrower than the items' own sampling, nor beyond [0, 1]
                lo, hi = max(0.0, min(lo, items[:, 0].mean())), min(1.0, max(hi, items[:, 1].mean()))
            row[m], row[m + "_lo"], row[m + "_hi"] = mean, float(lo), float(hi)
        rows.append(row)
    rows.sort(key=lambda r: (r["base"], float("inf") if r["size"] == "all" else r["size"], r["method"]))
    return rows


def differences(rows: list[dict], controls: dict, cells: list[dict], metric: str = SCORE) -> list[str]:
    """Every pair of methods for each base and size (and each method against that base's linear probe), then every
    pair of bases for each method and size, as lines, each with ``verdict``'s test."""
    runs: dict[tuple, list[dict]] = {}  # each row's cells, by seed
    for c in sorted(cells, key=lambda c: c["seed"]):
        runs.setdefault((c["base"], c["method"], c["size"] or "all"), []).append(c)

    def side(r: dict, name: str) -> Side:
        cs = runs.get((r["base"], r["method"], r["size"]), [])
        return Side(name, r[metric], r[metric + "_lo"], r[metric + "_hi"], cs)

    lines = []
    for base, size in dict.fromkeys((r["base"], r["size"]) for r in rows):
        entries = [side(r, r["method"]) for r in rows if (r["base"], r["size"]) == (base, size)]
        probe = controls.get(base, {}).get("linear-probe")
        if probe:
            lo, hi = probe["intervals_95"].get(metric, (float("nan"), float("nan")))
            entry = {"seed": None, "per_item": probe.get("per_item"), "eval": probe["metrics"]}
            entries.append(Side("linear probe", probe["metrics"][metric], lo, hi, [entry]))
        lines += _pairs(f"{base}, {size} records", entries, metric)
    for method, size in dict.fromkeys((r["method"], r["size"]) for r in rows):
        entries = [side(r, r["base"]) for r in rows if (r["method"], r["size"]) == (method, size)]
        lines += _pairs(f"{method}, {size} records", entries, metric)
    return lines


def _pairs(label: str, entries: list[Side], metric: str) -> list[str]:
    lines = []
    for i, a in enumerate(entries):
        for b in entries[i + 1 :]:
            head = f"- {label}: {a.name} {a.score:.3f} [{a.lo:.3f}, {a.hi:.3f}] vs {b.name} "
            head += f"{b.score:.3f} [{b.lo:.3f}, {b.hi:.3f}]: "
            lines.append(head + verdict(a, b, metric))
    return lines


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a row's score and interval, and the trained models behind it (one per seed)."""

    name: str
    score: float
    lo: float
    hi: float
    models: list[dict]

    @property
    def seeds(self) -> list:
        return [m["seed"] for m in self.models]

    @property
    def answers(self) -> list:
        return [m.get("per_item") for m in self.models]


def verdict(a: Side, b: Side, metric: str) -> str:
    """One comparison's verdict.

    Where every model on both sides has its answers recorded on the same items: a paired bootstrap of the difference
    (``finetune.metrics.paired_difference``), resampling the items and each side's seeds, paired by seed where both
    ran the same seeds (at a sub-sampled size the same seed trains on the same records; at every size it shares the
    data order and the development draw). Where both sides ran the same two or more seeds, each seed's difference is
    given too, with a t interval over them: the bootstrap understates training noise with so few seeds, the t
    interval ignores the sampling of the items, so the difference counts only where both intervals exclude 0 on the
    same side. Otherwise (answers not recorded, or scored on other items) the two rows' 95% intervals are compared:
    distinguished when they do not overlap, which is conservative.
    """
    by_seed = len(a.models) > 1 and a.seeds == b.seeds
    paired = paired_score_difference(a.answers, b.answers, metric, paired_runs=by_seed)
    if paired is not None:
        d, lo, hi = paired
        n = len(a.answers[0]["gold_sentiment"])
        said = f"difference {d:+.3f} [{lo:+.3f}, {hi:+.3f}] (paired bootstrap over the same {n} items"
        if len(a.models) > 1 or len(b.models) > 1:
            said += f" and {_runs(a)} vs {_runs(b)}" + (", paired by seed" if by_seed else "")
        said += ")"
        beyond = lo > 0 or hi < 0
        if by_seed:
            each = [x["eval"][metric] - y["eval"][metric] for x, y in zip(a.models, b.models, strict=True)]
            _, t_lo, t_hi = mean_interval(each)
            listed = ", ".join(f"seed {s} {v:+.3f}" for s, v in zip(a.seeds, each, strict=True))
            said += f"; {listed}; t interval over the seeds [{t_lo:+.3f}, {t_hi:+.3f}]"
            beyond = beyond and (t_lo > 0 or t_hi < 0) and (t_lo > 0) == (lo > 0)
            if not beyond:
                return f"{said}: an interval contains 0: not distinguished"
        if beyond:
            return f"{said}: {a.name if d > 0 else b.name} is higher"
        return f"{said}: the interval contains 0: not distinguished"
    if any(np.isnan(x) for x in (a.score, a.lo, a.hi, b.score, b.lo, b.hi)):
        return "no interval to compare"
    if a.lo > b.hi or b.lo > a.hi:
        return f"{a.name if a.score > b.score else b.name} is higher, beyond the intervals"
    return "the intervals overlap: not distinguished"


def _runs(side: Side) -> str:
    """How many trained models a side stands for, as a line says it."""
    if side.seeds == [None]:
        return "one fit"
    return (
        f"{len(side.models)} seed"
        + ("s" if len(side.models) > 1 else "")
        + f" ({', '.join(map(str, side.seeds))})"
    )


def _fmt(v, digits=3) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _with_interval(r: dict, m: str) -> str:
    lo, hi = r[m + "_lo"], r[m + "_hi"]
    return f"{_fmt(r[m])} [{_fmt(lo)}, {_fmt(hi)}]" if not np.isnan(lo) else _fmt(r[m])


def markdown_table(rows: list[dict]) -> str:
    head = [
        "base", "method", "train records", "seeds", "precision", "trainable", "%", "train s", "samples/s", "tokens/s",
        "peak MB", "ckpt MB", "wF1-3", "F1-3", "F1-7", "event", "market", "sector", "related", "exact", "torch ms", "ONNX ms",
    ]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            r["base"], r["method"], _fmt(r["train_records"]), f"{r['seeds']} ({r['interval']})", r["precision"],
            _fmt(r["trainable_params"]), _fmt(r["trainable_pct"], 2), _fmt(r["train_seconds"], 0),
            _fmt(r["samples_per_s"], 2), _fmt(r["tokens_per_s"], 0), f"{_fmt(r['peak_memory_mb'], 0)}",
            _fmt(r["checkpoint_mb"], 1),
            *(_with_interval(r, m) for m in ("wf1_sentiment_3", "f1_sentiment_3", "f1_sentiment_7", "acc_event",
                                              "acc_market", "acc_sector", "acc_related", "exact_match")),
            _fmt(r["latency_ms_torch"], 0), _fmt(r["latency_ms_onnx"], 0),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def controls_table(controls: dict) -> str:
    lines = ["| base | control | wF1-3 | F1-3 | F1-7 | event | exact |", "|---|---|---|---|---|---|---|"]
    for base, ctrl in controls.items():
        for name, res in ctrl.items():
            cells = []
            for m in ("wf1_sentiment_3", "f1_sentiment_3", "f1_sentiment_7", "acc_event", "exact_match"):
                lo, hi = res.get("intervals_95", {}).get(m, (None, None))
                v = res["metrics"].get(m)
                cells.append(f"{_fmt(v)} [{_fmt(lo)}, {_fmt(hi)}]" if lo is not None else _fmt(v))
            lines.append(f"| {base} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_outputs(results: dict, out: Path) -> None:
    rows = results["table"]
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    if rows:
        with (out / "results.csv").open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    cfg = results["config"]
    md = [
        "# Full fine-tuning vs LoRA vs adapters",
        "",
        f"Train `{cfg['data']}`, early stopping and checkpoint choice on `{cfg['eval']}`, scores on `{cfg['test']}`"
        f"{' (the same file, which flatters the cells by their checkpoint choice)' if cfg['test'] == cfg['eval'] else ''}"
        f"; bases {', '.join(cfg['bases'])}; sizes "
        f"{', '.join(map(str, cfg['sizes']))}; {cfg['seeds']} seeds below the full size, {cfg['seeds_at_all']} at it; "
        f"quick: {cfg['quick']}; extra train options: `{' '.join(cfg['train_args']) or 'none'}`. "
        f"{results['cells_done']} of {results['cells_planned']} cells done.",
        "",
        "Scores are the mean over seeds with a 95% interval: over seeds (Student t) where a row has several, else the "
        "one cell's bootstrap interval over the scored items. Latency: one headline alone, p50, torch.",
        "",
        markdown_table(rows) if rows else "No cell is done yet.",
        "",
        "## Controls",
        "",
        controls_table(results["controls"]),
        "",
        "## Differences",
        "",
        "Paired bootstrap of the difference where every model on both sides has its answers on the same items: each "
        "draw resamples the items and each side's seeds (paired by seed where both ran the same seeds). With one "
        "seed a side it covers the sampling of the test items only; a side of one model brings no training noise. "
        "With a few seeds the bootstrap holds only part of the seed-to-seed spread, so where both sides ran the same "
        "seeds each seed's difference and a t interval over them are given too, and a difference counts only where "
        "both intervals exclude 0. Otherwise the two rows' intervals are compared. Each comparison is at 95% on its "
        "own, with no correction for how many are made.",
        "",
        *(line for m, lines in results["differences"].items() for line in (f"### {m}", "", *lines, "")),
        "Versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()),
        "",
    ]
    (out / "results.md").write_text("\n".join(md))
    if rows:
        plot(results, out)


COLORS = {"full": "tab:red", "lora": "tab:blue", "adapter": "tab:green"}


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = results["table"]

    def err(r):
        lo, hi = r[SCORE + "_lo"], r[SCORE + "_hi"]
        return [[0.0 if np.isnan(lo) else r[SCORE] - lo], [0.0 if np.isnan(hi) else hi - r[SCORE]]]

    # colour = method, marker and control-line colour = base; each base's points a little apart so that the
    # error bars of the same size do not overlap
    bases = list(dict.fromkeys([*(r["base"] for r in rows), *results["controls"]]))
    marker = {b: "os^D"[i % 4] for i, b in enumerate(bases)}
    shade = {b: ("dimgray", "darkgoldenrod", "slateblue", "black")[i % 4] for i, b in enumerate(bases)}
    shift = {b: 1.04**i for i, b in enumerate(bases)}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for base, method in dict.fromkeys((r["base"], r["method"]) for r in rows):
        rs = sorted(
            (r for r in rows if (r["base"], r["method"]) == (base, method)), key=lambda r: r["train_records"]
        )
        x = [r["train_records"] * shift[base] for r in rs]
        ax.plot(x, [r[SCORE] for r in rs], "-", color=COLORS.get(method), alpha=0.6)
        for xi, r in zip(x, rs, strict=True):
            ax.errorbar(xi, r[SCORE], yerr=err(r), fmt=marker[base], color=COLORS.get(method), capsize=3)
        ax.plot([], [], marker[base] + "-", color=COLORS.get(method), label=f"{method} ({base})")
    styles = {"majority": ":", "zero-shot": "-.", "linear-probe": "--"}
    for base, ctrl in results["controls"].items():
        for name, res in ctrl.items():
            ax.axhline(
                res["metrics"][SCORE], ls=styles.get(name, ":"), color=shade[base], label=f"{name} ({base})"
            )
    ax.set_xscale("log")
    # ticks at the sizes trained, and room either side even where only one size is done yet
    sizes = sorted({r["train_records"] for r in rows})
    ax.set_xlim(sizes[0] / 1.6, sizes[-1] * 1.6)
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("training records")
    ax.set_ylabel("3-class sentiment weighted F1")
    ax.set_title("Learning curves (95% intervals)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "learning_curve.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for r in rows:
        ax.errorbar(
            r["train_seconds"], r[SCORE], yerr=err(r), fmt=marker[r["base"]], color=COLORS.get(r["method"]),
            capsize=3,
        )  # fmt: skip
    for base, method in dict.fromkeys((r["base"], r["method"]) for r in rows):
        ax.plot([], [], marker[base], color=COLORS.get(method), label=f"{method} ({base})")
    ax.set_xscale("log")
    ax.set_xlabel("training wall time [s]")
    ax.set_ylabel("3-class sentiment weighted F1")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "score_vs_time.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.5, 4))
    labels = [f"{r['method']}\n{r['train_records']}\n{r['base']}" for r in rows]
    ax.bar(labels, [r["peak_memory_mb"] for r in rows], color=[COLORS.get(r["method"]) for r in rows])
    ax.set_ylabel(f"peak memory [MB] ({rows[0]['peak_memory_kind']})")
    ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(out / "peak_memory.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    largest = max(r["train_records"] for r in rows)
    for c in results["cells"]:
        if c["seed"] != 0 or c["run"]["records"]["train"] != largest:
            continue
        h = c["history"]
        ax.plot([e["step"] for e in h], [e["train_loss"] for e in h], color=COLORS.get(c["method"]), alpha=0.7,
                label=f"{c['method']} train")  # fmt: skip
        ev = [e for e in h if "eval_loss" in e]
        ax.plot([e["step"] for e in ev], [e["eval_loss"] for e in ev], "o--", color=COLORS.get(c["method"]),
                label=f"{c['method']} dev")  # fmt: skip
    ax.set_xlabel("step")
    ax.set_ylabel("answer loss")
    ax.set_title(f"Loss curves, {largest} records, seed 0")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "loss_curves.png", dpi=110)
    plt.close(fig)


def _size(text: str) -> int | None:
    if text.lower() == "all":
        return None
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a record count or 'all': {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"a training size must be >= 1, got {n}")
    return n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m finetune.compare", description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter
    )
    ap.add_argument("--data", required=True, help="training records")
    ap.add_argument("--eval", required=True, help="development records: early stopping and checkpoint choice")
    ap.add_argument(
        "--test", default=None, help="held-out records to score cells and controls on (default: --eval)"
    )
    ap.add_argument("--out", required=True, help="study directory (cells, controls, report)")
    ap.add_argument("--bases", nargs="+", default=[DEFAULT_BASE], help="base models")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS), help="methods")
    ap.add_argument(
        "--sizes", nargs="+", type=_size, default=[500, 2000, None], help="training sizes ('all')"
    )
    ap.add_argument("--seeds", type=int, default=3, help="seeds per cell below the full size")
    ap.add_argument("--seeds-at-all", type=int, default=1, help="seeds at the full training size")
    ap.add_argument(
        "--only", nargs="*", default=[], help="run only cells matching base/method/size/seedK parts"
    )
    ap.add_argument(
        "--report-only", action="store_true", help="run nothing; aggregate the cells that are done"
    )
    ap.add_argument("--no-controls", action="store_true", help="skip majority, zero-shot and linear probe")
    ap.add_argument("--controls-only", action="store_true", help="run the controls, no cell")
    ap.add_argument("--probe-records", type=int, default=2000, help="training records for the linear probe")
    ap.add_argument("--quick", action="store_true", help=f"smoke-sized study, one size and seed: {QUICK}")
    ap.add_argument("--limit", type=int, default=None, help="score only the first N eval records")
    ap.add_argument("--latency-items", type=int, default=8, help="headlines timed one at a time per cell")
    ap.add_argument(
        "--train-args", default="", help="extra finetune.train options for every cell, e.g. '--epochs 2'"
    )
    args = ap.parse_args(argv)
    if args.seeds < 1 or args.seeds_at_all < 1:
        raise UserError("--seeds and --seeds-at-all must be >= 1")
    for p in (args.data, args.eval, *([args.test] if args.test else [])):
        if not Path(p).is_file():
            raise UserError("no such file", path=p)
    # --controls-only runs the study with a cell pattern that matches no cell
    res = study(
        args.data,
        args.eval,
        Path(args.out),
        args.bases,
        args.methods,
        args.sizes,
        seeds=args.seeds,
        seeds_at_all=args.seeds_at_all,
        only=["no cell"] if args.controls_only else args.only,
        quick=args.quick,
        train_args=args.train_args.split(),
        eval_items=args.limit,
        latency_items=args.latency_items,
        probe_records=args.probe_records,
        report_only=args.report_only,
        controls=not args.no_controls,
        test_data=args.test,
    )
    print(markdown_table(res["table"]) if res["table"] else "no cell is done yet")
    print(f"\n{res['cells_done']} of {res['cells_planned']} cells done; report in {args.out}/results.md")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
