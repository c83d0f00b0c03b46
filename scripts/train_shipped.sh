#!/usr/bin/env bash
# The shipped model's training run (issue 11, section 3): bottleneck adapters on SmolLM2-135M with the CPU recipe
# (finetune.train's defaults: bf16 autocast where native, short template, length groups, answer-only logits), on the
# TFNS training set, SEntFiN and the project's FX/macro headlines (its split part and the training-only extra set),
# each split on its own with a fixed recorded seed (scripts/make_split.sh). The ForexFactory calendar is split and
# scored but not trained on: its licence is not stated, and only weights trained on the MIT sets and the project's own
# data may ship. Model choice and early stopping by the analyzer's 3-class weighted F1 on a fixed draw of 300
# development records, every 250 steps. Resumable: run it again and it continues from RUN/checkpoints/last. The test
# parts are scored once per chosen model, at the end, never to choose between models.
#
# Adapters because the tuning study found their event accuracy above LoRA's at 2,000 records (sentiment not
# distinguished). METHOD=lora (or full) trains that method with the same data, seed, batches and schedule instead
# (WORK/lora), for a like-for-like comparison of the candidates on the whole test parts.
#
#   scripts/train_shipped.sh [WORK]        # WORK defaults to runs/shipped (ignored by git)
#   nohup scripts/train_shipped.sh >> runs/shipped.log 2>&1 &
#   scripts/train_shipped.sh WORK --install   # then copy the chosen model, with its card, into bridge/models/default
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
WORK=${1:-runs/shipped}
PY=${PY:-.venv/bin/python}
METHOD=${METHOD:-adapter}
RUN="$WORK/$METHOD"
S="$WORK/split"

# 1. data: converted and split by scripts/make_split.sh (fixed seed, recorded in each *.meta.json)
scripts/make_split.sh "$WORK"

# 2. train (or resume) in two stages of one run, model choice by dev weighted F1 over both:
#  a. 2,000 steps of 8 (16,000 examples, 0.82 of an epoch) at the method's default rate (bridge/lm/methods.py),
#     warmed up over 100 steps and decayed to zero, no early stop before half of them;
#  b. extended to 3,500 steps (1.44 epochs; the data order carries on into a second pass over the file): warmed up
#     again over 100 steps to half that rate and decayed to zero. Stage a's dev score was still rising at its end.
if [ "${2:-}" != --install ]; then
    train() {
        local resume=()
        [ -f "$RUN/checkpoints/last/trainer_state.json" ] && resume=(--resume)
        $PY -m finetune.train --method "$METHOD" --model smollm2-135m \
            --data "$S/shipped.train.jsonl" --eval "$S/shipped.dev.jsonl" --out "$RUN" "${resume[@]}" \
            --batch-size 8 --warmup-steps 100 --eval-every 250 --save-every 50 --patience 4 \
            --max-eval-samples 300 --select-by wf1 --seed 0 --no-progress "$@"
    }
    steps_done() {
        $PY -c 'import json, sys; print(json.load(open(sys.argv[1]))["step"])' \
            "$RUN/checkpoints/last/trainer_state.json" 2>/dev/null || echo 0
    }
    rate() { $PY -c "from bridge.lm.methods import METHODS; print(METHODS['$METHOD'].default_lr / 2)"; }
    [ "$(steps_done)" -ge 2000 ] || train --max-steps 2000 --min-steps-share 0.5
    train --max-steps 3500 --lr "$(rate)"

    # 3. score the chosen model once on each test part, and write its card
    # (again whenever training chose a newer model than the one scored)
    for name in tfns sentfin fx calendar; do
        [ "$RUN/eval_$name.test.json" -nt "$RUN/model/bridge_model.json" ] || $PY -m finetune.evaluate \
            --model "$RUN" --data "$S/$name.test.jsonl" --no-progress --out "$RUN/eval_$name.test.json"
    done
    [ "$RUN/eval_fiqa.json" -nt "$RUN/model/bridge_model.json" ] || $PY -m finetune.evaluate \
        --model "$RUN" --data "$WORK/data/fiqa.jsonl" --no-progress --out "$RUN/eval_fiqa.json"
fi
$PY -m finetune.card "$RUN" --eval "TFNS test=$RUN/eval_tfns.test.json" --eval "SEntFiN test=$RUN/eval_sentfin.test.json" \
    --eval "FX headlines test=$RUN/eval_fx.test.json" --eval "calendar 2016 test=$RUN/eval_calendar.test.json" \
    --eval "FiQA task 1 (never trained on)=$RUN/eval_fiqa.json" \
    --command "$([ "$METHOD" = adapter ] || echo "METHOD=$METHOD ")scripts/train_shipped.sh"
if [ "${2:-}" = --install ]; then
    rm -rf bridge/models/default && cp -r "$RUN/model" bridge/models/default
    echo "installed $RUN/model as bridge/models/default"
fi
