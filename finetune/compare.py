"""Compare full, LoRA and adapter tuning on the same data, split and seeds; write a table and plots.

    python -m finetune.compare --model smollm2-135m --data train.jsonl --eval eval.jsonl --seeds 3 --out runs/compare
    python -m finetune.compare --data train.jsonl --eval eval.jsonl --quick --out runs/compare_quick

Every (method, seed) trains in its own process (``python -m finetune.train``) so that each peak-memory figure
(CUDA max allocated on a GPU, peak RSS on the CPU) belongs to one method alone; evaluation and the ONNX export of the
first seed's model also run in their own processes. ``--quick`` is a smoke-sized run (few records, few steps, one
seed) to check the whole pipeline in minutes; its scores mean little.

Output in ``--out``: ``results.md``, ``results.csv``, ``results.json`` (every run's ``run.json`` and metrics, the
configs, library versions), ``loss_curves.png``, ``score_vs_params.png``, ``score_vs_time.png``, ``peak_memory.png``,
and one run directory per method and seed.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bridge.cli import HelpFormatter
from bridge.errors import ModelError, UserError, run_main
from bridge.lm.loading import DEFAULT_BASE
from bridge.lm.methods import METHODS
from bridge.provenance import library_versions

SCORE = "f1_sentiment_3"  # the headline score: 3-class sentiment macro-F1
METRICS = ("f1_sentiment_3", "f1_sentiment_7", "wf1_sentiment_3", "acc_event", "acc_market", "acc_sector")
METRICS += ("exact_match", "parse_failure_rate")
QUICK = {
    "max_train_samples": 48,
    "max_steps": 6,
    "max_eval_samples": 16,
    "eval_items": 16,
    "latency_items": 4,
}


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


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.array([v for v in values if v is not None], dtype=float)
    if not len(arr):
        return float("nan"), float("nan")
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def compare(
    model: str,
    data: str,
    eval_data: str,
    out: Path,
    methods: list[str],
    seeds: int = 3,
    quick: bool = False,
    train_args: list[str] | None = None,
    eval_items: int | None = None,
    latency_items: int = 8,
    onnx: bool = True,
) -> dict:
    """Train, evaluate and export every method and seed; returns the results dict written to results.json."""
    out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    extra = list(train_args or [])
    if quick:
        seeds = 1
        extra += [
            "--max-train-samples",
            str(QUICK["max_train_samples"]),
            "--max-steps",
            str(QUICK["max_steps"]),
        ]
        extra += [
            "--max-eval-samples",
            str(QUICK["max_eval_samples"]),
            "--eval-every",
            str(QUICK["max_steps"]),
        ]
        eval_items = eval_items or QUICK["eval_items"]
        latency_items = QUICK["latency_items"]
    runs = []
    t_all = time.perf_counter()
    try:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(methods) * seeds, desc="compare", unit="run")
    except ImportError:  # pragma: no cover - tqdm is a dependency
        bar = None
    for method in methods:
        for seed in range(seeds):
            run_dir = out / f"{method}_seed{seed}"
            if not (run_dir / "run.json").exists() or "result" not in json.loads(
                (run_dir / "run.json").read_text()
            ):
                import shutil

                shutil.rmtree(run_dir, ignore_errors=True)
                cmd = [py, "-m", "finetune.train", "--method", method, "--model", model, "--data", data]
                cmd += [
                    "--eval",
                    eval_data,
                    "--out",
                    str(run_dir),
                    "--seed",
                    str(seed),
                    "--no-progress",
                    *extra,
                ]
                _run(cmd, out / f"{method}_seed{seed}.train.log")
            run = json.loads((run_dir / "run.json").read_text())
            ev_path = run_dir / "eval_torch.json"
            _evaluate(
                py,
                run_dir,
                eval_data,
                "torch",
                ev_path,
                latency_items,
                eval_items,
                out / f"{method}_seed{seed}.eval.log",
            )
            entry = {
                "method": method,
                "seed": seed,
                "run": run,
                "eval": json.loads(ev_path.read_text())["metrics"],
            }
            entry["history"] = [json.loads(x) for x in (run_dir / "history.jsonl").read_text().splitlines()]
            if onnx and seed == 0:
                _run([py, "-m", "finetune.export", str(run_dir), "--onnx"], out / f"{method}.export.log")
                entry["export"] = json.loads((run_dir / "model/onnx/parity.json").read_text())
                ev_onnx = run_dir / "eval_onnx.json"
                # ONNX is timed on the latency items only: its answers equal torch's (parity-checked at export).
                _evaluate(
                    py,
                    run_dir,
                    eval_data,
                    "onnx",
                    ev_onnx,
                    latency_items,
                    latency_items,
                    out / f"{method}.eval_onnx.log",
                )
                entry["eval_onnx"] = json.loads(ev_onnx.read_text())["metrics"]
            runs.append(entry)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    table = summarize(runs, methods)
    results = {
        "config": {
            "model": model,
            "data": data,
            "eval": eval_data,
            "methods": methods,
            "seeds": seeds,
            "quick": quick,
            "train_args": extra,
            "eval_items": eval_items,
            "latency_items": latency_items,
        },
        "versions": library_versions(),
        "wall_seconds": round(time.perf_counter() - t_all, 1),
        "table": table,
        "runs": runs,
    }
    write_outputs(results, out)
    return results


def summarize(runs: list[dict], methods: list[str]) -> list[dict]:
    """One row per method: costs from the runs, metrics as mean and std over seeds, latency from the first seed."""
    rows = []
    for method in methods:
        rs = [r for r in runs if r["method"] == method]
        if not rs:
            continue
        res = [r["run"]["result"] for r in rs]
        row = {
            "method": method,
            "seeds": len(rs),
            "trainable_params": rs[0]["run"]["params"]["trainable"],
            "trainable_pct": rs[0]["run"]["params"]["trainable_pct"],
            "train_seconds": _mean_std([x["train_seconds"] for x in res])[0],
            "samples_per_s": _mean_std([x["samples_per_s"] for x in res])[0],
            "tokens_per_s": _mean_std([x["tokens_per_s"] for x in res])[0],
            "peak_memory_mb": _mean_std([x["peak_memory_mb"] for x in res])[0],
            "peak_memory_kind": res[0]["peak_memory_kind"],
            "checkpoint_mb": res[0]["checkpoint_bytes"] / 2**20,
        }
        for m in METRICS:
            row[m], row[m + "_std"] = _mean_std([r["eval"][m] for r in rs])
        row["latency_ms_torch"] = rs[0]["eval"]["latency_ms_p50"]
        onnx = rs[0].get("eval_onnx")
        row["latency_ms_onnx"] = onnx["latency_ms_p50"] if onnx else None
        row["onnx_speedup"] = row["latency_ms_torch"] / row["latency_ms_onnx"] if onnx else None
        exp = rs[0].get("export")
        row["onnx_max_abs_diff"] = exp["fp32"]["max_abs_diff"] if exp else None
        rows.append(row)
    return rows


def _fmt(v, digits=3) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def markdown_table(rows: list[dict]) -> str:
    head = [
        "method", "trainable", "trainable %", "train s", "samples/s", "tokens/s", "peak MB", "ckpt MB",
        "F1-3 (macro)", "F1-7 (macro)", "exact", "parse fail", "torch ms", "ONNX ms", "ONNX x", "ONNX max diff",
    ]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            r["method"], _fmt(r["trainable_params"]), _fmt(r["trainable_pct"], 3), _fmt(r["train_seconds"], 1),
            _fmt(r["samples_per_s"], 2), _fmt(r["tokens_per_s"], 1), f"{_fmt(r['peak_memory_mb'], 0)} ({r['peak_memory_kind']})",
            _fmt(r["checkpoint_mb"], 1),
            f"{_fmt(r['f1_sentiment_3'])} ± {_fmt(r['f1_sentiment_3_std'])}",
            f"{_fmt(r['f1_sentiment_7'])} ± {_fmt(r['f1_sentiment_7_std'])}",
            f"{_fmt(r['exact_match'])} ± {_fmt(r['exact_match_std'])}", _fmt(r["parse_failure_rate"]),
            _fmt(r["latency_ms_torch"], 1), _fmt(r["latency_ms_onnx"], 1), _fmt(r["onnx_speedup"], 2),
            _fmt(r["onnx_max_abs_diff"], 7),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_outputs(results: dict, out: Path) -> None:
    rows = results["table"]
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    with (out / "results.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    cfg = results["config"]
    md = [
        f"# Full vs LoRA vs adapter on {cfg['model']}",
        "",
        f"Train `{cfg['data']}`, evaluate `{cfg['eval']}`; seeds: {cfg['seeds']}; quick: {cfg['quick']}; "
        f"extra train options: `{' '.join(cfg['train_args']) or 'none'}`; wall time {results['wall_seconds']:.0f} s.",
        "Metrics are mean ± std over seeds; latency is the p50 of one headline at a time (whole constrained decode), "
        "first seed's model.",
        "",
        markdown_table(rows),
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()),
        "",
    ]
    (out / "results.md").write_text("\n".join(md))
    plot(results, out)


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"full": "tab:red", "lora": "tab:blue", "adapter": "tab:green"}
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results["runs"]:
        if r["seed"] != 0:
            continue
        h = r["history"]
        c = colors.get(r["method"])
        ax.plot([e["step"] for e in h], [e["train_loss"] for e in h], color=c, label=f"{r['method']} train")
        ev = [e for e in h if "eval_loss" in e]
        ax.plot(
            [e["step"] for e in ev], [e["eval_loss"] for e in ev], "o--", color=c, label=f"{r['method']} eval"
        )
    ax.set_xlabel("step")
    ax.set_ylabel("answer loss")
    ax.set_title("Loss curves (seed 0)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "loss_curves.png", dpi=110)
    plt.close(fig)
    rows = results["table"]
    for fname, key, xlabel, logx in (
        ("score_vs_params.png", "trainable_params", "trainable parameters", True),
        ("score_vs_time.png", "train_seconds", "train wall time [s]", False),
    ):
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for r in rows:
            ax.errorbar(
                r[key],
                r[SCORE],
                yerr=r[SCORE + "_std"],
                fmt="o",
                color=colors.get(r["method"]),
                label=r["method"],
            )
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("sentiment macro-F1 (3 classes)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / fname, dpi=110)
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.bar(
        [r["method"] for r in rows],
        [r["peak_memory_mb"] for r in rows],
        color=[colors.get(r["method"]) for r in rows],
    )
    ax.set_ylabel(f"peak memory [MB] ({rows[0]['peak_memory_kind']})")
    fig.tight_layout()
    fig.savefig(out / "peak_memory.png", dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m finetune.compare",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    ap.add_argument("--model", default=DEFAULT_BASE, help="base model for every method")
    ap.add_argument("--data", required=True, help="training records")
    ap.add_argument(
        "--eval", required=True, help="held-out records: eval loss, early stopping and the scores"
    )
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument(
        "--methods", nargs="+", default=list(METHODS), choices=list(METHODS), help="methods to compare"
    )
    ap.add_argument("--seeds", type=int, default=3, help="seeds per method (0..N-1)")
    ap.add_argument("--quick", action="store_true", help=f"smoke-sized run: {QUICK}, one seed")
    ap.add_argument("--limit", type=int, default=None, help="score only the first N eval records")
    ap.add_argument("--latency-items", type=int, default=8, help="headlines timed one at a time per backend")
    ap.add_argument("--no-onnx", action="store_true", help="skip the ONNX export and its latency")
    ap.add_argument(
        "--train-args",
        default="",
        help="extra finetune.train options for every run, e.g. '--epochs 2 --batch-size 16'",
    )
    args = ap.parse_args(argv)
    if args.seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {args.seeds}")
    for p in (args.data, args.eval):
        if not Path(p).is_file():
            raise UserError("no such file", path=p)
    res = compare(
        args.model, args.data, args.eval, Path(args.out), args.methods, args.seeds, args.quick,
        args.train_args.split(), args.limit, args.latency_items, not args.no_onnx,
    )  # fmt: skip
    print(markdown_table(res["table"]))
    print(f"\nwall time {res['wall_seconds']:.0f} s; results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
