"""Training speed: today's recipe against the new one, step by step, same model, same examples, same run.

    python bench/train_speed.py --data tfns.jsonl                 # LoRA on SmolLM2-135M, 64 examples, 2 rounds
    python bench/train_speed.py --data tfns.jsonl --method adapter --examples 128 --rounds 3 --out /tmp/ts.json

``--data`` is instruction JSONL, e.g. ``sent_train.csv`` converted with ``python -m finetune.data convert --format
tfns``. Every recipe trains its own copy of the model (same seed, same method config, AdamW, the same learning rate)
over the same ``--examples`` records, ``--batch-size`` per step. Rows are cumulative, each adds one trick to the row
above, so each trick's share shows:

- ``today``: fp32, the ``alpaca`` prompt template (the schema's instruction on every item), batches in shuffled order,
  logits at every position (``model(**batch).loss``), as ``finetune.train`` did before;
- ``+bf16``: bf16 autocast (only where the CPU has native bf16: avx512_bf16 / amx_bf16, checked at run time;
  otherwise the row is skipped and says why);
- ``+short``: the ``short`` prompt template (the news text and a cue);
- ``+grouped``: batches grouped by length (``finetune.train.epoch_batches``);
- ``+answer logits``: the output layer only at answer positions;
- ``+bf16 frozen weights`` (= the new recipe, ``finetune.train``'s defaults): frozen linear weights stored in bf16
  once, instead of autocast casting them on every forward and backward;
- ``new, fp32``: the new recipe without bf16, what a CPU without native bf16 gets.

URLs are already stripped by ``finetune.data convert`` (``--keep-urls`` keeps them), so that trick is in the data of
every row alike; threads are the process's cores in every row.

Rounds alternate the order of the recipes, so drift in machine load (other jobs on a shared CPU) hits all of them;
each recipe's time is its median over rounds of one pass over the examples, after one untimed warm-up step. The ratio
to ``today`` in the same run is the figure to read; absolute numbers move with the load. ``tokens/s`` counts the
recipe's own real (non-padding) tokens, so a shorter template also lowers it per example: examples/s is the like-for-
like figure. Goal (issue 11): the new recipe at least 3x today's examples/s for LoRA on SmolLM2-135M.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bridge.cli import HelpFormatter  # noqa: E402
from bridge.errors import UserError, run_main  # noqa: E402
from bridge.lm.loading import DEFAULT_BASE, load_base  # noqa: E402
from bridge.lm.methods import METHODS  # noqa: E402
from bridge.provenance import default_results_dir, library_versions  # noqa: E402
from bridge.schema import load_schema  # noqa: E402
from finetune import train as T  # noqa: E402
from finetune.config import TrainConfig  # noqa: E402

GOAL = 3.0  # the new recipe's examples/s over today's


@dataclass(frozen=True)
class Recipe:
    name: str
    bf16: bool
    template: str
    grouped: bool
    answer_only: bool
    frozen_bf16: bool = False


RECIPES = [
    Recipe("today", False, "alpaca", False, False),
    Recipe("+bf16", True, "alpaca", False, False),
    Recipe("+short", True, "short", False, False),
    Recipe("+grouped", True, "short", True, False),
    Recipe("+answer logits", True, "short", True, True),
    Recipe("+bf16 frozen weights (new)", True, "short", True, True, True),
    Recipe("new, fp32", False, "short", True, True),
]


class Runner:
    """One recipe: its model copy, optimizer, examples and batches."""

    def __init__(self, recipe: Recipe, base, tokenizer, records, schema, args):
        self.recipe = recipe
        self.tcfg = TrainConfig(batch_size=args.batch_size, group_by_length=recipe.grouped, seed=args.seed)
        T.seed_everything(args.seed)
        spec = METHODS[args.method]
        self.model = spec.prepare(copy.deepcopy(base), spec.config_cls())
        if recipe.frozen_bf16:
            T.frozen_weights_to_bf16(self.model)
        self.model.train()
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=args.lr or spec.default_lr)
        self.examples = T.tokenize_records(records, tokenizer, schema, 192, recipe.template)
        lengths = [len(ids) for ids, _ in self.examples]
        self.batches = T.epoch_batches(lengths, args.batch_size, args.seed, 0, recipe.grouped)
        self.pad = tokenizer.pad_token_id
        self.amp = torch.bfloat16 if recipe.bf16 else None
        self.pass_seconds: list[float] = []
        self.real_tokens = sum(lengths)
        self.padded_tokens = sum(len(b) * max(lengths[i] for i in b) for b in self.batches)
        self.answer_tokens = sum(sum(t != T.IGNORE for t in y) for _, y in self.examples)

    def step(self, batch_ids: list[int]) -> float:
        batch = T.collate([self.examples[i] for i in batch_ids], self.pad)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=self.amp, enabled=self.amp is not None):
            if self.recipe.answer_only:
                loss = T.answer_loss(self.model, batch, True)[0]
            else:
                loss = self.model(**batch).loss  # today's path: the model's own loss over full logits
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def one_pass(self) -> float:
        t0 = time.perf_counter()
        for b in self.batches:
            self.step(b)
        seconds = time.perf_counter() - t0
        self.pass_seconds.append(seconds)
        return seconds


def measure(args) -> dict:
    torch.set_num_threads(args.threads or T.available_cores())
    bf16_ok, bf16_why = T.cpu_bf16_support()
    schema = load_schema()
    records = T.read_records(args.data, schema)
    if len(records) < args.examples:
        raise UserError(f"--data has {len(records)} records, fewer than --examples {args.examples}")
    keep = sorted(T.epoch_order(len(records), args.seed, -1)[: args.examples])
    records = [records[i] for i in keep]
    base, tokenizer = load_base(args.model)
    recipes = [r for r in RECIPES if not r.bf16 or bf16_ok]
    runners = [Runner(r, base, tokenizer, records, schema, args) for r in recipes]
    del base
    for run in runners:  # warm-up: first-call allocations and oneDNN kernel selection, not timed
        run.step(run.batches[0])
    from tqdm import tqdm

    bar = tqdm(total=args.rounds * len(runners), desc="train speed", unit="pass")
    for k in range(args.rounds):
        for run in runners if k % 2 == 0 else runners[::-1]:
            s = run.one_pass()
            bar.update(1)
            bar.set_postfix(recipe=run.recipe.name, s=f"{s:.1f}")
    bar.close()
    rows = []
    n_steps = len(runners[0].batches)
    for run in runners:
        sec = statistics.median(run.pass_seconds)
        rows.append(
            {
                "recipe": run.recipe.name,
                "bf16": run.recipe.bf16,
                "template": run.recipe.template,
                "grouped": run.recipe.grouped,
                "answer_logits_only": run.recipe.answer_only,
                "bf16_frozen_weights": run.recipe.frozen_bf16,
                "seconds_per_pass": [round(s, 3) for s in run.pass_seconds],
                "s_per_step": sec / n_steps,
                "examples_per_s": args.examples / sec,
                "tokens_per_s": run.real_tokens / sec,
                "tokens_per_example": run.real_tokens / args.examples,
                "padded_tokens_per_example": run.padded_tokens / args.examples,
                "answer_tokens_per_example": run.answer_tokens / args.examples,
            }
        )
    base_eps = rows[0]["examples_per_s"]
    for r in rows:
        r["x_today"] = r["examples_per_s"] / base_eps
    return {
        "bench": "train_speed",
        "method": args.method,
        "model": args.model,
        "data": str(args.data),
        "examples": args.examples,
        "batch_size": args.batch_size,
        "steps_per_pass": n_steps,
        "rounds": args.rounds,
        "threads": torch.get_num_threads(),
        "cpu_bf16": {"native": bf16_ok, "why": bf16_why},
        "goal_x": GOAL,
        "rows": rows,
        "versions": library_versions(),
    }


def table(res: dict) -> str:
    lines = [
        "| recipe | s/step | examples/s | tokens/s | tokens/example (padded) | answer tokens | x today |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        lines.append(
            f"| {r['recipe']} | {r['s_per_step']:.2f} | {r['examples_per_s']:.2f} | {r['tokens_per_s']:.0f} | "
            f"{r['tokens_per_example']:.1f} ({r['padded_tokens_per_example']:.1f}) | "
            f"{r['answer_tokens_per_example']:.1f} | {r['x_today']:.2f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python bench/train_speed.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    ap.add_argument("--data", required=True, type=Path, help="instruction JSONL (e.g. converted TFNS)")
    ap.add_argument("--model", default=DEFAULT_BASE, help="base model")
    ap.add_argument("--method", default="lora", choices=sorted(METHODS), help="tuning method")
    ap.add_argument("--examples", type=int, default=64, help="records every recipe trains on, per round")
    ap.add_argument("--batch-size", type=int, default=8, help="records per step")
    ap.add_argument("--rounds", type=int, default=2, help="timed passes per recipe (median reported)")
    ap.add_argument("--lr", type=float, default=None, help="learning rate (default: the method's)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the record draw, order and init")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: the process's cores)")
    ap.add_argument("--out", type=Path, default=default_results_dir("train_speed.json"), help="results JSON")
    args = ap.parse_args(argv)
    if args.examples < args.batch_size or args.rounds < 1:
        raise UserError("--examples must be >= --batch-size and --rounds >= 1")
    res = measure(args)
    print(f"\n{res['method']} on {res['model']}, {res['examples']} examples x {res['rounds']} rounds, "
          f"batch {res['batch_size']}, {res['threads']} threads; CPU bf16: {res['cpu_bf16']['why']}\n")  # fmt: skip
    print(table(res))
    new = next((r for r in res["rows"] if r["recipe"].endswith("(new)")), res["rows"][-1])
    print(f"\nnew recipe: {new['x_today']:.2f}x today's examples/s (goal {GOAL}x)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
