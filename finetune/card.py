"""A model card (``README.md`` in the model directory) from what a run recorded: base, method, data, command, scores
with their 95% intervals, licence.

    python -m finetune.card RUN_DIR --eval "TFNS test=eval_tfns.json" --eval "FX test=eval_fx.json" \\
        --command "scripts/train_shipped.sh"

Everything in the card is read from files (``run.json`` of ``finetune.train``, the JSON of ``finetune.evaluate``), so
a card cannot state a figure no run produced. The base's licence comes from ``bridge.lm.loading.LOCAL_BASES``; a base
the project does not know is said to be of unknown licence, for the user to check.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bridge.cli import HelpFormatter
from bridge.errors import DataError, UserError, run_main
from bridge.lm.loading import LOCAL_BASES, hub_id, local_base_name, model_dir_of

# (metric key, how the card names it), in the order of the scores table
CARD_METRICS = (
    ("wf1_sentiment_3", "3-class sentiment, weighted F1"),
    ("f1_sentiment_3", "3-class sentiment, macro F1"),
    ("f1_sentiment_7", "7-level sentiment, macro F1"),
    ("acc_event", "event accuracy"),
    ("acc_market", "market accuracy"),
    ("acc_sector", "sector accuracy"),
    ("acc_related", "related instruments accuracy"),
    ("exact_match", "all fields exact"),
)


def read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{what} not found", path=path) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{what} is not JSON: {exc}", path=path) from None


def scores_table(evals: dict[str, dict]) -> list[str]:
    """One column per evaluation set: the score and its 95% bootstrap interval."""
    names = list(evals)
    lines = ["| score | " + " | ".join(f"{n} (n={evals[n]['metrics'].get('n', '?')})" for n in names) + " |"]
    lines.append("|---|" + "---|" * len(names))
    for key, label in CARD_METRICS:
        cells = []
        for n in names:
            value = evals[n]["metrics"].get(key)
            lo, hi = (evals[n].get("intervals_95") or {}).get(key, (None, None))
            if value is None:
                cells.append("-")
            elif lo is None:
                cells.append(f"{value:.3f}")
            else:
                cells.append(f"{value:.3f} [{lo:.3f}, {hi:.3f}]")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def schedule_text(run: dict) -> str:
    """The learning-rate schedule in words: one stage, or each stage of an extended run (``finetune.train``)."""
    stages = run.get("schedule") or []
    if len(stages) < 2:
        return f"learning rate {run.get('lr', '?')}"
    parts = [
        f"steps {st['start']}-{st['end']} warmed up over {st['warmup']} to {st['peak_lr']:g}, decayed to 0"
        + (f" (stopped early at {st['stopped_at']})" if "stopped_at" in st else "")
        for st in stages
    ]
    return f"learning rate in {len(stages)} stages ({'; '.join(parts)})"


def card_text(run: dict, evals: dict[str, dict], command: str | None) -> str:
    base = run.get("model", "?")
    short = local_base_name(base)
    licence = (
        LOCAL_BASES[short].licence if short else "unknown: check the base model's own licence before shipping"
    )
    train = run.get("train_config", {})
    data = run.get("data", {})
    records = run.get("records", {})
    lines = [
        f"# {run.get('method', '?')} on {hub_id(base)}",
        "",
        "A news analyzer for EA Bridge: reads a headline (and body, calendar currency) and answers event, market, "
        f"sector, 7-level sentiment and related instruments in the `{train.get('schema', '?')}` schema, with the "
        "project's constrained decoding (`bridge.lm.analyzer`).",
        "",
        "## Model",
        "",
        f"- base: `{hub_id(base)}` (loaded offline from the project's local copy when it knows the id)",
        f"- method: {run.get('method', '?')}, config `{json.dumps(run.get('method_config', {}))}`",
        f"- parameters: {json.dumps(run.get('params', {}))}",
        f"- prompt template: `{train.get('prompt_template', '?')}`; at most {train.get('max_prompt_tokens', '?')} "
        "prompt tokens",
        "",
        "## Data and training",
        "",
        f"- training records: {records.get('train', '?')} from `{Path(str(data.get('train', '?'))).name}`",
        f"- development records (checkpoint choice by {train.get('select_by', '?')}): {records.get('eval', '?')} "
        f"from `{Path(str(data.get('eval', '?'))).name}`",
        f"- steps: {run.get('total_steps', '?')}"
        # --max-steps sets the length when given; --epochs only without it
        + (" (--max-steps)" if train.get("max_steps") else f" ({train.get('epochs', '?')} epochs at most)")
        + f", batch {train.get('batch_size', '?')}, {schedule_text(run)}, patience {train.get('patience', '?')}",
        f"- device: {run.get('device', '?')}; code at commit {run.get('git_commit', '?')}",
    ]
    if command:
        lines += ["", "Made with:", "", "```", command, "```"]
    lines += ["", "## Scores", ""]
    if evals:
        lines += [
            "Held-out parts never used for training or checkpoint choice; 95% bootstrap intervals in brackets.",
            "",
            *scores_table(evals),
        ]
    else:
        lines.append("No evaluation was recorded for this model.")
    versions = run.get("versions", {})
    lines += [
        "",
        "## Licence",
        "",
        f"- base model: {licence}",
        "- the fine-tuned weights: as the base's licence allows, with the training data's terms (see "
        "`bridge/models/TRAINING.md`)",
        "",
        "## Versions",
        "",
        ", ".join(
            f"{k} {v}" for k, v in versions.items() if k in ("python", "torch", "transformers", "peft")
        ),
        "",
    ]
    return "\n".join(lines)


def write_card(model_dir: Path, run: dict, evals: dict[str, dict], command: str | None = None) -> Path:
    path = Path(model_dir) / "README.md"
    path.write_text(card_text(run, evals, command), encoding="utf-8")
    return path


def _main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    ap.add_argument(
        "run_dir", help="a finetune.train run directory (its run.json; the card goes into its model/)"
    )
    ap.add_argument(
        "--eval",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="a finetune.evaluate JSON and the name of its set; repeatable",
    )
    ap.add_argument("--command", default=None, help="the command that made the model, shown in the card")
    args = ap.parse_args(argv)
    run_dir = Path(args.run_dir)
    record = read_json(run_dir / "run.json", "run record")
    evals = {}
    for spec in args.eval:
        name, sep, file = spec.partition("=")
        if not sep or not name.strip() or not file:
            raise UserError(f"--eval {spec!r} is not NAME=FILE")
        result = read_json(Path(file), "evaluation")
        if "metrics" not in result:
            raise DataError("not a finetune.evaluate result (no 'metrics')", path=file)
        evals[name.strip()] = result
    print(f"wrote {write_card(model_dir_of(run_dir), record, evals, args.command)}")
    return 0


def main(argv=None) -> int:
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
