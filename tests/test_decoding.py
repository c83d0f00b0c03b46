"""Constrained decoding with drafts (bridge.lm.decoding): the grammar writes exactly the training answers, a draft is a
grammatical answer with its decisions marked, and every draft length answers as the plain greedy loop of one forward
pass per decision. Tiny config-built models with real tokenizers."""

from __future__ import annotations

import json

import pytest

from bridge.lm.analyzer import LMAnalyzer
from bridge.lm.decoding import END, LATENCY_AHEAD, Decoder
from bridge.lm.loading import encode, encode_answer
from bridge.prompt import format_output
from bridge.schema import SCHEMA_DIR, load_schema
from bridge.types import Analysis
from finetune.tiny import ODD_TEXTS, make_tiny_base, make_tiny_model_dir, tiny_tokenizer

AHEAD = {"one": 1, "one item alone's": LATENCY_AHEAD, "the whole answer": None}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny models of both architectures, and one whose market values prefix each other ("US", "US rates", ...)."""
    root = tmp_path_factory.mktemp("decoding")
    out = {arch: make_tiny_model_dir(str(make_tiny_base(root / arch, arch)), root / f"m_{arch}") for arch in
           ("gpt2", "llama")}  # fmt: skip
    schema = json.loads((SCHEMA_DIR / "fx_macro.json").read_text())
    schema["name"] = "prefixes"
    schema["fields"][1]["values"] = ["US", "US rates", "US rates curve", "global"]
    path = root / "prefixes.json"
    path.write_text(json.dumps(schema))
    out["prefixes"] = make_tiny_model_dir(str(root / "llama"), root / "m_prefixes", schema=str(path))
    return out


def test_the_grammar_writes_exactly_the_training_answers():
    tok = tiny_tokenizer()
    schema = load_schema()
    g = Decoder(tok, schema).grammar
    for labels, sentiment, related in [
        ({"event": "central bank decision", "market": "EU", "sector": "rates"}, 2, ["EUR", "EURUSD"]),
        ({"event": "other", "market": "global", "sector": "equities"}, 0, []),
        ({"event": "economic data", "market": "US", "sector": "FX"}, -3, ["USD"]),
    ]:
        output = format_output(Analysis(labels=labels, sentiment=sentiment, related=related), schema)
        state, written = g.start(), []
        for t in encode_answer(tok, output, schema):
            forced, options = g.step(state)
            assert t == forced or t in (options or []), (output, written, t)
            state, w = g.advance(state, t)
            written += [t] if w else []
        assert state == END
        assert written == encode_answer(tok, output, schema)[:-1]  # all but the end of sequence


def test_a_draft_is_a_grammatical_answer_with_its_decisions_marked():
    tok = tiny_tokenizer()
    dec = Decoder(tok, load_schema())
    g = dec.grammar
    ans = dec.new()
    prompt = encode(tok, "News: Fed raises rates\nLabels:\n")
    d = dec.draft(ans, prompt, None)
    assert d.tokens[: d.checked] == prompt + ans.tokens and d.first_pos == 0
    state, decisions = ans.state, 0
    for q in range(d.checked - 1, len(d.tokens)):
        forced, options = g.step(state)
        assert (q in d.wants) == (options is not None) and (q not in d.wants or d.wants[q] == state)
        decisions += options is not None
        if q + 1 == len(d.tokens):
            break
        t = d.tokens[q + 1]
        assert t == forced or t in options
        state = g.advance(state, t)[0]
    assert decisions >= len(g.keys)  # a guess at every decision: event, market, sector, sentiment, related
    one = dec.draft(ans, prompt, 1)
    assert (
        one.tokens == d.tokens[: len(one.tokens)] and len(one.wants) == 2
    )  # the prompt's end, and one guess on
    assert dec.draft(ans, prompt, 0).tokens == d.tokens[: d.checked]  # the plain loop: no draft


@pytest.mark.parametrize("model", ["gpt2", "llama", "prefixes"])
@pytest.mark.parametrize("ahead", list(AHEAD))
def test_every_draft_length_answers_as_the_plain_greedy_loop(model, ahead, models):
    """A tiny random model disagrees with its own guesses often, so rejected drafts masked out of the cache and
    guesses from earlier answers and passes are all exercised; batches mix finished and unfinished items."""
    texts = ODD_TEXTS * 2
    plain = LMAnalyzer(models[model], backend="torch", speculate=False)
    fast = LMAnalyzer(models[model], backend="torch")
    fast.ahead = AHEAD[ahead]
    for batch in (3, 1):
        plain.batch_size = fast.batch_size = batch
        want = plain.analyze_texts(texts)
        got = fast.analyze_texts(texts)
        for a, b in zip(want, got, strict=True):
            assert (a.labels, a.sentiment, a.related) == (b.labels, b.sentiment, b.related)
            assert a.confidence == pytest.approx(b.confidence, abs=1e-4)
    assert fast.stats["forwards"] < plain.stats["forwards"]
