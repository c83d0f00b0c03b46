"""Constrained decoding with drafts (bridge.lm.decoding): the grammar writes exactly the training answers, a draft is a
grammatical answer with its decisions marked, and every draft length answers as the plain greedy loop of one forward
pass per decision. Tiny config-built models with real tokenizers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bridge.lm import decoding
from bridge.lm.analyzer import LMAnalyzer
from bridge.lm.decoding import END, LATENCY_AHEAD, MAX_RELATED_TOKENS, Decoder, Words
from bridge.lm.loading import encode, encode_answer
from bridge.prompt import format_output
from bridge.schema import SCHEMA_DIR, load_schema
from bridge.types import Analysis
from finetune.tiny import ODD_TEXTS, make_tiny_base, make_tiny_model_dir, tiny_tokenizer

STATE = ("trie", 0, "a decision")
AHEAD = {"one": 1, "one item alone's": LATENCY_AHEAD, "the whole answer": None, "auto": "auto"}


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


class ContextModel:
    """A stand-in for the step graph whose logits are a fixed function of exactly what the query sees: the (token,
    position) pairs of the cache entries and chunk entries the mask shows it, which must be a contiguous context
    0..L-1. So any slip of the KV cache bookkeeping (a column seen that should be masked, a position off by one)
    changes the answers. Biases make the end of the related list and a value that prefixes another reachable."""

    def __init__(self, vocab: int, boost: dict[int, float]):
        self.vocab, self.boost = vocab, boost

    def empty(self, batch: int):
        return [[] for _ in range(batch)]

    def __call__(self, ids, mask, pos, pick, past):
        n, width = ids.shape
        total = len(past[0])
        assert mask.shape == (n, total + width)
        chunks = [list(zip(ids[b].tolist(), pos[b].tolist(), strict=True)) for b in range(n)]
        out = np.zeros((n, pick.shape[1], self.vocab), np.float32)
        for b in range(n):
            seen = [past[b][c] for c in range(total) if mask[b, c]]
            for k, j in enumerate(pick[b].tolist()):
                if not mask[b, total + j]:
                    continue  # padding
                ctx = seen + [chunks[b][t] for t in range(j + 1) if mask[b, total + t]]
                assert [p for _, p in ctx] == list(range(len(ctx)))
                key = hash(tuple(t for t, _ in ctx)) & 0xFFFFFFFF
                row = np.random.default_rng(key).standard_normal(self.vocab).astype(np.float32)
                for t, v in self.boost.items():
                    row[t] += v
                out[b, k] = row
        return out, [past[b] + chunks[b] for b in range(n)]


@pytest.mark.parametrize("model", ["llama", "prefixes"])
def test_drafts_keep_the_cache_exact_token_for_token(model, models):
    """Against ``ContextModel``: every draft length and batch size writes exactly the plain loop's tokens and
    sentiment probabilities, and the answers include related lists ended early and the value "US" of the prefixes
    schema chosen before its longer "US rates"."""
    runs = {}
    for ahead in (0, 1, 2, 4, None):
        for batch in (1, 3):
            an = LMAnalyzer(models[model], backend="torch", batch_size=batch, speculate=ahead != 0)
            g = an.decoder.grammar
            comma = g.prefix_ids[2][0]  # ", sector:" begins with it: chosen after "US" it ends that value
            an.__dict__["runner"] = ContextModel(len(an.tokenizer), {g.eos: 2.5, comma: 2.5})
            an.ahead = ahead
            written = []
            related = len(g.keys) - 1
            an.decoder.remember = lambda ans, w=written, r=related: w.append(
                (ans.tokens, sorted(ans.probs.items()), len(ans.tokens) - ans.starts[r])
            )
            analyses = an.analyze_texts(ODD_TEXTS * 3)
            runs[ahead, batch] = written, analyses
    want, analyses = runs[0, 1]
    for key, (got, _) in runs.items():
        assert sorted(got) == sorted(want), key  # batches are decoded in length order: compare as sets
    related_tokens = [n for _, _, n in want]
    assert any(0 < n < MAX_RELATED_TOKENS for n in related_tokens), (
        related_tokens
    )  # ended by the end of sequence
    if model == "prefixes":
        assert any(a.labels["market"] == "US" for a in analyses)


def test_headline_words_guess_the_choice_their_earlier_headlines_took():
    """Complement naive Bayes over prompt tokens: a headline's words pick the choice of the earlier headlines that
    shared them; words in every prompt (the template's) are no evidence; a choice not among the options is never
    guessed."""
    w = Words()
    fed, oil, template = frozenset({1, 2, 3}), frozenset({4, 5, 6}), {100, 101}
    for _ in range(3):
        w.learn(fed | template, [(STATE, 7)])
        w.learn(oil | template, [(STATE, 8)])
    w.learn(frozenset({9}) | template, [(STATE, 8)])  # 8 is the more common choice
    both = [7, 8, 11]
    assert w.guess(w.evidence(frozenset({1, 2, 50}) | template), STATE, both) == 7
    assert w.guess(w.evidence(frozenset({5, 50}) | template), STATE, both) == 8
    assert w.guess(w.evidence(frozenset(template)), STATE, both) == 8  # no evidence: the prior
    assert w.guess(w.evidence(fed | template), STATE, [8, 11]) == 8
    assert w.guess(w.evidence(fed), STATE, [11]) is None
    assert w.guess(w.evidence(fed), ("prefix", 9, 0), both) is None  # never learnt there
    assert w.guess(None, STATE, both) is None  # no headline


def test_the_answers_earlier_decisions_are_evidence_too():
    """The same headline words with a different market before it: the related list's start follows the market
    chosen (the path), which the headline alone cannot tell."""
    w = Words()
    related, market = ("related", 4, ()), ("trie", 1, "market")
    words = frozenset({1, 2, 3})
    for _ in range(3):
        w.learn(words | {10}, [(market, 21), (related, 31)])  # "US": USD first
        w.learn(words | {11}, [(market, 22), (related, 32)])  # "UK": GBP first
    ev = w.evidence(words)
    assert w.guess(ev, related, [31, 32], [(market, 21)]) == 31
    assert w.guess(ev, related, [31, 32], [(market, 22)]) == 32


def test_headline_word_counts_stay_bounded(monkeypatch):
    monkeypatch.setattr(decoding, "WORDS_HALF_LIFE", 50)
    w = Words()
    for i in range(400):  # every answer with words and a choice never seen before
        w.learn(frozenset(range(5 * i, 5 * i + 5)), [(STATE, i)])
    assert len(w.df) <= 2 * 50 * 5
    assert len(w.prior[STATE]) <= 2 * 50 and len(w.counts[STATE]) <= 2 * 50
    assert w.guess(w.evidence(frozenset({5 * 399})), STATE, [398, 399]) == 399  # the recent answers are kept
    for _ in range(200):  # words in every prompt are still no evidence after halving
        w.learn(frozenset({1, 2}), [(STATE, 7)])
    w.learn(frozenset({1, 3}), [(STATE, 8)])
    assert w.evidence(frozenset({1, 3})) == [3]


def test_a_values_later_tokens_are_guessed_from_the_row_that_chose_its_first():
    """Where no pass has been (the last draft took another first token), a value's next decision is guessed from the
    logits of the row that decided its first token, ranked among that node's options."""
    tok = tiny_tokenizer()
    dec = Decoder(tok, load_schema())
    g = dec.grammar
    ans = dec.new()
    d = dec.draft(ans, encode(tok, "Fed raises rates"), None)
    drafted = set(d.wants.values())
    parent, child = next(
        (state, ("trie", state[1], node))
        for state in drafted
        if state[0] == "trie"
        for node in state[2].children.values()
        if ("trie", state[1], node) not in drafted and g.step(("trie", state[1], node))[1] is not None
    )
    options = g.step(child)[1]
    row = np.zeros(len(tok), np.float32)
    row[options[-1]] = 5.0  # the child's last option ranks first in the parent's row
    flat = np.zeros(len(tok), np.float32)
    rows = {q: row if state == parent else flat for q, state in d.wants.items()}
    dec.read(ans, d, rows, 0)
    assert ans.seen[child] == options[-1]


def test_the_first_draft_guesses_the_event_from_the_headline():
    """Before any logits, the event is guessed from the words of earlier headlines, not from the last answer."""
    tok = tiny_tokenizer()
    dec = Decoder(tok, load_schema())
    start = dec.new().state
    options = dec.grammar.step(start)[1]
    headlines = {"Fed raises rates": options[0], "Oil prices fall sharply": options[1]}
    for _ in range(3):
        for text, choice in headlines.items():
            ans = dec.new()
            ans.words, ans.decisions = frozenset(encode(tok, text)), [(start, choice)]
            dec.remember(ans)
    for text, choice in headlines.items():
        ans = dec.new()
        d = dec.draft(ans, encode(tok, text + " again"), 1)
        assert d.tokens[d.checked] == choice
