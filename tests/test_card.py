"""The model card is written from a run's records only: every figure in it comes from a file, with its interval."""

from __future__ import annotations

import json

from finetune.card import main

RUN = {
    "method": "lora",
    "method_config": {"r": 8, "alpha": 16},
    "model": "smollm2-135m",
    "train_config": {"schema": "fx_macro", "prompt_template": "short", "select_by": "wf1", "batch_size": 8},
    "data": {"train": "split/shipped.train.jsonl", "eval": "split/shipped.dev.jsonl"},
    "records": {"train": 17979, "eval": 400},
    "total_steps": 6744,
    "versions": {"python": "3.11.7", "torch": "2.13.0+cpu"},
}
EVAL = {
    "metrics": {"n": 2014, "wf1_sentiment_3": 0.8612, "acc_event": 0.9},
    "intervals_95": {"wf1_sentiment_3": [0.846, 0.8771]},
}


def test_card_names_the_real_base_the_command_and_each_score_with_its_interval(tmp_path, capsys):
    run_dir = tmp_path / "run"
    (run_dir / "model").mkdir(parents=True)
    (run_dir / "model" / "bridge_model.json").write_text(
        json.dumps({"method": "lora", "base": "smollm2-135m"})
    )
    (run_dir / "run.json").write_text(json.dumps(RUN))
    (tmp_path / "eval.json").write_text(json.dumps(EVAL))
    assert (
        main([str(run_dir), "--eval", f"TFNS test={tmp_path / 'eval.json'}", "--command", "make shipped"])
        == 0
    )
    card = (run_dir / "model" / "README.md").read_text()
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in card and "Apache-2.0" in card
    assert "| 3-class sentiment, weighted F1 | 0.861 [0.846, 0.877] |" in card
    assert "| event accuracy | 0.900 |" in card  # no interval recorded: none shown
    assert "| 7-level sentiment, macro F1 | - |" in card  # not measured: not invented
    assert "make shipped" in card and "TFNS test (n=2014)" in card


def test_a_bad_evaluation_argument_is_one_line(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps(RUN))
    assert main([str(run_dir), "--eval", "no-equals-sign"]) == 2
    assert "is not NAME=FILE" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{")
    assert main([str(run_dir), "--eval", f"x={tmp_path / 'bad.json'}"]) != 0
    assert "is not JSON" in capsys.readouterr().err


def test_an_extended_run_shows_each_stage_of_its_schedule():
    from finetune.card import schedule_text

    assert schedule_text({"lr": 0.001}) == "learning rate 0.001"
    stages = [
        {"start": 0, "end": 1000, "peak_lr": 1e-3, "warmup": 100},
        {"start": 1000, "end": 2000, "peak_lr": 5e-4, "warmup": 100},
    ]
    assert schedule_text({"lr": 1e-3, "schedule": stages}) == (
        "learning rate in 2 stages (steps 0-1000 warmed up over 100 to 0.001, decayed to 0; "
        "steps 1000-2000 warmed up over 100 to 0.0005, decayed to 0)"
    )
