#!/usr/bin/env bash
# The tuning study (issue 11, section 4) on the shipped run's split (scripts/make_split.sh), in the order that
# answers the most per CPU hour: LoRA and adapters at 500 records with seed 0, full tuning at 500, the SmolLM2
# controls, seed 1 at 500 (every method: a second seed puts the training noise into the comparison), the Gemma LoRA
# cell and the Gemma controls (the choice of base), seed 2 at 500, LoRA at 2,000 and the other methods at 2,000,
# Gemma's second seed, seed 1 at 2,000 (LoRA and adapters first), then seed 2 at 2,000 (adapters, LoRA, full tuning),
# then Gemma at 2,000 with LoRA and with adapters, then every method on all the records.
# Seeds run one call per seed, every method in it, so that each finished call leaves every method with as many seeds
# (the comparison pairs them by seed); rerun an interrupted call to finish it.
# Each call runs only its cells; a rerun skips finished cells and resumes a half-trained one, so run it again in a
# later session to carry on. Cells train for up to 3 epochs, stop early (patience 3, every 50 steps, not before half
# of the schedule) and choose their checkpoint by weighted F1 on a seeded draw of 200 development records; everything
# is scored on a stratified quarter of the test parts (seed 0). A cell that stopped sooner than half its schedule
# (under the rule before --min-steps-share) is trained on from its checkpoint and scored again.
#
#   nohup scripts/run_study.sh >> runs/study.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
WORK=${1:-runs/shipped}
OUT=${2:-runs/study}
PY=${PY:-.venv/bin/python}
S="$WORK/split"
scripts/make_split.sh "$WORK"   # the shipped run's split, and the study's training and test files
study() {
    $PY -m finetune.compare --data "$S/study.train.jsonl" --eval "$S/study.dev.jsonl" --test "$S/studytest.test.jsonl" \
        --out "$OUT" --bases smollm2-135m gemma3-270m --sizes 500 2000 --seeds 3 --latency-items 8 \
        --train-args "--epochs 3 --eval-every 50 --patience 3 --max-eval-samples 200 --select-by wf1 --save-every 50 --min-steps-share 0.5" "$@"
}
study --only smollm2-135m/lora/500/seed0 smollm2-135m/adapter/500/seed0 --no-controls
study --only smollm2-135m/full/500/seed0 --no-controls
study --controls-only --bases smollm2-135m   # majority, zero-shot and linear probe, then the report
study --only smollm2-135m/500/seed1 --no-controls
study --only gemma3-270m/lora/500/seed0 --no-controls
study --controls-only   # the Gemma controls too, then the report
study --only smollm2-135m/500/seed2 --no-controls
study --only smollm2-135m/lora/2000/seed0 --no-controls   # the learning curve's second point, the shipped method first
study --only smollm2-135m/2000/seed0 --no-controls
study --only gemma3-270m/lora/500/seed1 --no-controls   # a second seed of the other base
# a second seed at 2,000 for the two methods whose one-seed difference there would choose the shipped method
study --only smollm2-135m/lora/2000/seed1 smollm2-135m/adapter/2000/seed1 --no-controls
study --only smollm2-135m/2000/seed1 --no-controls   # adapters' seed 1 stopped at step 250 of 750: trained on
study --only smollm2-135m/adapter/2000/seed2 --no-controls   # the method ahead at 2,000 on seeds 0 and 1 first
study --only smollm2-135m/lora/2000/seed2 --no-controls   # then the shipped method
study --only smollm2-135m/2000/seed2 --no-controls   # full tuning's third seed
study --only gemma3-270m/lora/2000/seed0 --no-controls   # the other base at 2,000: LoRA (as at 500)
study --only gemma3-270m/adapter/2000/seed0 --no-controls   # then the shipped method (adapters)
# the learning curve's last point, every record, one seed a method, the shipped method first: hours each, and a rerun
# resumes a cell from its last checkpoint
study --only smollm2-135m/adapter/all/seed0 --sizes 500 2000 all --no-controls
study --only smollm2-135m/lora/all/seed0 --sizes 500 2000 all --no-controls
study --only smollm2-135m/full/all/seed0 --sizes 500 2000 all --no-controls
study --controls-only   # the probes again where their recorded answers lack a field, then the report
