"""Constrained decoding of an analysis: greedy, several decisions checked per forward pass by drafting the answer.

The answer is the schema's keys in order (``event: ..., market: ..., ..., related: ...``), as a deterministic
automaton over tokens (``Grammar``): the fixed text between values is forced; each closed-vocabulary value (event,
market, sector, sentiment) is a walk down a token trie of its allowed values, with a decision wherever the trie
branches; ``related`` is an open list of instrument-like tokens (letters, digits, ``._/-``, comma, space) ended by
end-of-sequence or ``MAX_RELATED_TOKENS``. At a decision the greedy (argmax) token among the allowed ones is taken.

A forward pass costs about the same for one token as for a few dozen on a CPU (it streams every weight either way:
about 22 ms + 0.8 ms a token for SmolLM2-135M on ONNX Runtime here), so each pass feeds, after the checked answer,
a draft of what follows with a guess at each of the next decisions, and the step graph returns the logits at every
drafted position where a decision follows. The checked answer then runs on through the draft as long as the greedy
choice is the guess; the first disagreeing decision is taken on its own logits, and the next pass drafts from there.
The cache keeps the checked entries and masks out the rest. Guesses, in order: at the related list's start, the
choice of earlier answers given the headline's words and this answer's decisions so far (``Words``: its market and
sector say more of the list than logits computed after a wrong one); the greedy choice of the last pass's logits at
the same point of the grammar (seen after a context that may have been wrong a few tokens back: Jacobi decoding),
and at a value's later tokens where no pass has been, the ranking of them by the row that chose the value's first
token; at the closed keys, ``Words`` (the first pass has no logits to go on, and its event guess decides whether it
checks anything past the event); the decision the last finished answers took there; in ``related`` the token that
followed the previous one; else the first option (in ``related``: the end of sequence).

So the answers are those of the plain greedy loop (one pass per decision, ``ahead=0``), which a test checks, in one
pass per wrong guess plus one.

Measured on the shipped model (``bench/analysis_latency.py``; figures in ``bench/finetune_compare.md``), one FX
headline alone on ONNX Runtime, the decoder warmed on 374 others. ``Words`` as complement naive Bayes with the
answer's earlier decisions as evidence, and the later tokens' guesses, cut the passes from 3.25 to 2.90 a headline
with drafts of 8 (learnt from the labels of the 374 training headlines and scored on those of the 93 development
ones, the market guess was right for 75 against 44, the related list's start 86 against 43). With guesses that good
a longer draft pays: 12 guesses took 2.62 passes (16 and the whole answer: the same, and wider), 8 took 2.90, 4 took
3.50, 1 took 6.10. Drafts that also held every other value of a key (a tree, each token seeing its own path) cut no
passes, since a key guessed wrong stops the check at the next key wherever it sits, and cost more than they saved.
Related lists guessed whole from the headline's words, and naive Bayes at each token of a list, cut no passes worth
their state. A batch of 32 is bound by arithmetic, not by streaming the weights: with the old guesses the plain loop
was level with one guess ahead or faster in four runs (10.9, 11.2, 13.9 and 12.4 items/s, against 9.9, 9.1, 14.2 and
12.4); with these, one guess ahead was faster in three runs (1.09x, 1.19x and 1.04x the plain loop), and drafts of 12
slower (0.69-0.71x), so a batch drafts one guess ahead.

Confidence is the probability of the chosen sentiment level under the constrained distribution: the product over
the sentiment decisions of the softmax over the allowed tokens at that step.
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np

from bridge.errors import ModelError
from bridge.lm.loading import encode, field_prefix
from bridge.schema import Schema

MAX_RELATED_TOKENS = 12
# the related lists' decisions remembered from finished answers (for guesses); cleared past this
MEMORY_LIMIT = 4096
# the headline-word counts behind guesses are halved after this many answers (bounded, and recent answers weigh more)
WORDS_HALF_LIFE = 1000

# How many guessed decisions a draft holds (None: to the answer's end; 0: none, the plain greedy loop): one item alone,
# and a batch (see the module docstring for the measurements).
LATENCY_AHEAD: int | None = 12
THROUGHPUT_AHEAD: int | None = 1

END = ("end",)


class Trie:
    """Token trie of a field's allowed values (each tokenized with its leading space, as in training)."""

    def __init__(self):
        self.children: dict[int, Trie] = {}
        self.value: str | None = None  # set where a whole value ends

    def add(self, ids: list[int], value: str) -> None:
        node = self
        for t in ids:
            node = node.children.setdefault(t, Trie())
        node.value = value


def allowed_related(tokenizer) -> np.ndarray:
    """Vocabulary mask of tokens that may appear in the related list (instrument-like text, comma, space)."""
    ok = re.compile(r"^[ ,]*[A-Za-z0-9._/-]*$")
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    mask = np.array([bool(t) and bool(ok.match(t)) for t in texts], dtype=bool)
    mask[tokenizer.eos_token_id] = True
    return mask


class Options(list):
    """The related list's allowed tokens, in vocabulary order (ties go to the first): a list, with their numpy index
    and membership by the vocabulary mask (tens of thousands of tokens: a list's own scan would cost milliseconds)."""

    def __init__(self, mask: np.ndarray):
        self.array = np.flatnonzero(mask)
        super().__init__(self.array.tolist())
        self.mask = mask

    def __contains__(self, tok) -> bool:
        return isinstance(tok, int | np.integer) and 0 <= tok < len(self.mask) and bool(self.mask[tok])


def greedy_pick(logits: np.ndarray, allowed: list[int]) -> int:
    """Greedy choice among ``allowed`` (ties: the first listed)."""
    index = allowed.array if isinstance(allowed, Options) else allowed
    return allowed[int(np.argmax(logits[index]))]


def softmax_pick(logits: np.ndarray, allowed: list[int]) -> tuple[int, float]:
    """Greedy choice among ``allowed`` (ties: the first listed) and its probability among them."""
    sub = logits[allowed].astype(np.float64)
    k = int(np.argmax(sub))
    p = np.exp(sub - sub[k])
    return allowed[k], float(1.0 / p.sum())


class Grammar:
    """The answers the decoder may write. A state is a tuple: ``("prefix", i, j)``, the j-th token of key i's fixed
    text comes next; ``("trie", i, node)``, inside key i's value at ``node`` of its trie; ``("related", i, tokens)``,
    inside the related list (the last key) with ``tokens`` written so far; ``END``."""

    def __init__(self, tokenizer, schema: Schema):
        self.keys = schema.keys
        self.eos = tokenizer.eos_token_id
        self.prefix_ids = [encode(tokenizer, field_prefix(schema, i)) for i in range(len(self.keys))]
        self.tries = {f.name: self._trie(tokenizer, f.values) for f in schema.fields}
        self.tries["sentiment"] = self._trie(tokenizer, [name for name, _ in schema.sentiment_levels])
        self.sentiment = self.keys.index("sentiment")
        self.related_options = Options(allowed_related(tokenizer))

    @staticmethod
    def _trie(tokenizer, values) -> Trie:
        root = Trie()
        seen: dict[tuple[int, ...], str] = {}
        for value in values:
            ids = encode(tokenizer, " " + value)
            if tuple(ids) in seen:
                raise ModelError(f"values {seen[tuple(ids)]!r} and {value!r} tokenize identically")
            seen[tuple(ids)] = value
            root.add(ids, value)
        return root

    def start(self) -> tuple:
        return self._prefix(0)

    def _prefix(self, i: int) -> tuple:
        return ("prefix", i, 0) if i < len(self.keys) else END

    def _value(self, i: int) -> tuple:
        return ("related", i, ()) if i == len(self.keys) - 1 else self._node(i, self.tries[self.keys[i]])

    def _node(self, i: int, node: Trie) -> tuple:
        return ("trie", i, node) if node.children else self._prefix(i + 1)

    def step(self, state: tuple) -> tuple[int | None, list[int] | None]:
        """``(token, None)`` where the next token is forced, ``(None, options)`` at a decision, ``(None, None)`` at
        the end."""
        kind = state[0]
        if kind == "end":
            return None, None
        if kind == "prefix":
            return self.prefix_ids[state[1]][state[2]], None
        if kind == "related":
            return None, self.related_options
        node = state[2]
        options = list(node.children)
        if node.value is not None:  # a complete value that is also the start of a longer one
            i = state[1]
            options.append(self.prefix_ids[i + 1][0] if i + 1 < len(self.keys) else self.eos)
        return (options[0], None) if len(options) == 1 else (None, options)

    def advance(self, state: tuple, tok: int) -> tuple[tuple, bool]:
        """The state after ``tok``, and whether ``tok`` is written (the end of sequence is not)."""
        kind, i = state[0], state[1]
        if kind == "prefix":
            j = state[2] + 1
            return (("prefix", i, j) if j < len(self.prefix_ids[i]) else self._value(i)), True
        if kind == "related":
            if tok == self.eos:
                return END, False
            tokens = (*state[2], tok)
            return (("related", i, tokens) if len(tokens) < MAX_RELATED_TOKENS else END), True
        node = state[2]
        if tok in node.children:
            return self._node(i, node.children[tok]), True
        # the token after a complete value: the next key's fixed text, or the end
        return self.advance(("prefix", i + 1, 0), tok) if i + 1 < len(self.keys) else (END, False)

    def walk(self, state: tuple, choose):
        """From ``state`` on, step by step: forced tokens as they come, ``choose(state, options)`` at each decision
        (``None`` ends the walk there), until the end. Yields ``(token, written, next state)``."""
        while True:
            forced, options = self.step(state)
            if forced is None and options is None:
                return
            tok = forced if forced is not None else choose(state, options)
            if tok is None:
                return
            after, written = self.advance(state, tok)
            yield tok, written, after
            state = after


@dataclasses.dataclass
class Answer:
    """One item's answer as far as it is checked: ``tokens`` are the greedy answer's start, the first
    ``len(cols)`` of them in the KV cache (at those columns); ``state`` is where the grammar stands after them."""

    state: tuple
    tokens: list[int] = dataclasses.field(default_factory=list)
    cols: list[int] = dataclasses.field(default_factory=list)
    probs: dict[int, float] = dataclasses.field(default_factory=dict)  # sentiment decisions: position -> p
    decisions: list[tuple[tuple, int]] = dataclasses.field(default_factory=list)  # (state, token) taken
    # state -> the greedy token of the last logits there (guesses for the next pass)
    seen: dict[tuple, int] = dataclasses.field(default_factory=dict)
    starts: dict[int, int] = dataclasses.field(default_factory=dict)  # key index -> where its value starts
    prompt_cols: list[int] = dataclasses.field(default_factory=list)  # the prompt's cache columns
    words: frozenset[int] = frozenset()  # the prompt's distinct tokens (guesses from the headline's words)
    evidence: list[int] | None = (
        None  # those of them that tell answers apart (``Words.evidence``), from its prompt on
    )

    @property
    def visible(self) -> list[int]:
        """The cache columns this answer's next tokens attend to."""
        return self.prompt_cols + self.cols

    @property
    def done(self) -> bool:
        return self.state == END

    @property
    def confidence(self) -> float:
        return float(np.prod(list(self.probs.values()))) if self.probs else 1.0


@dataclasses.dataclass
class Draft:
    """The tokens one pass feeds for an item, in a row: the prompt (its first pass), the checked tokens not yet in the
    cache, then the draft. ``wants[q]`` is the decision state that the logits at token ``q`` decide."""

    tokens: list[int] = dataclasses.field(default_factory=list)
    first_pos: int = 0  # the position of the first token
    wants: dict[int, tuple] = dataclasses.field(default_factory=dict)
    prompt: int = 0  # how many tokens are the prompt
    checked: int = 0  # how many tokens are the prompt and checked tokens (the rest is the draft)


class Words:
    """Complement naive Bayes (Rennie et al., 2003) over the prompt's distinct tokens and the answer's earlier
    decisions: which token finished answers took at a decision, given the words of their headlines and what the answer
    chose before it (the market and sector say much of the related list). Guesses the closed keys (the event above
    all, which the first pass must guess before it has seen any logits) and the related list's start. Complement
    counts (every other choice's) are what make rare choices guessable from a few answers, where plain naive Bayes
    leans to the frequent ones. Tokens in more than half the prompts (the template's) carry no evidence and are
    skipped. Bounded: every count is halved each ``WORDS_HALF_LIFE`` answers."""

    def __init__(self):
        self.learnt = 0  # answers learnt
        self.answers = 0.0  # answers learnt, halved with the counts
        self.df: dict = {}  # feature -> answers that held it
        self.prior: dict[tuple, dict[int, float]] = {}  # state -> chosen token -> answers
        self.counts: dict[tuple, dict[int, dict]] = {}  # state -> chosen token -> feature -> count
        self.totals: dict[tuple, dict[int, float]] = {}  # state -> chosen token -> sum of its feature counts
        self.all_counts: dict[tuple, dict] = {}  # state -> feature -> count over every choice
        self.all_totals: dict[tuple, float] = {}  # state -> sum of those

    def learn(self, words: frozenset[int], decisions: list[tuple[tuple, int]]) -> None:
        """Learn one finished answer: its prompt's ``words`` and its ``decisions`` in order (state, token)."""
        if not words:
            return
        self.learnt += 1
        self.answers += 1
        for w in words:
            self.df[w] = self.df.get(w, 0.0) + 1
        for k, (state, tok) in enumerate(decisions):
            features = [*words, *decisions[:k]]
            prior = self.prior.setdefault(state, {})
            prior[tok] = prior.get(tok, 0.0) + 1
            counts = self.counts.setdefault(state, {}).setdefault(tok, {})
            every = self.all_counts.setdefault(state, {})
            for f in features:
                counts[f] = counts.get(f, 0.0) + 1
                every[f] = every.get(f, 0.0) + 1
            totals = self.totals.setdefault(state, {})
            totals[tok] = totals.get(tok, 0.0) + len(features)
            self.all_totals[state] = self.all_totals.get(state, 0.0) + len(features)
        if self.learnt % WORDS_HALF_LIFE == 0:
            self._halve()

    def guess(
        self, evidence: list[int] | None, state: tuple, options: list[int], path: list[tuple[tuple, int]] = ()
    ) -> int | None:
        """The option whose complement fits ``evidence`` (a headline's, None: no headline) and ``path`` (the answer's
        decisions before ``state``) worst, among those taken here before (ties: the more frequent), or None (none
        was)."""
        prior = self.prior.get(state)
        if not prior or evidence is None:
            return None
        features = [*evidence, *path]
        every, every_total = self.all_counts[state], self.all_totals[state]
        smooth = len(self.df) + 1
        best, best_key = None, (math.inf, 0.0)
        for tok, n in prior.items():
            if not n or tok not in options:
                continue
            counts = self.counts[state][tok]
            total = every_total - self.totals[state][tok] + smooth
            score = sum(math.log((every.get(f, 0.0) - counts.get(f, 0.0) + 1) / total) for f in features)
            if (score, -n) < best_key:
                best, best_key = tok, (score, -n)
        return best

    def evidence(self, words: frozenset[int]) -> list[int]:
        """The words seen before in at most half the prompts."""
        return [w for w in words if 0 < self.df.get(w, 0) <= self.answers / 2]

    def _halve(self) -> None:
        def half(table: dict) -> dict:
            return {k: v / 2 for k, v in table.items() if v >= 1}

        self.answers /= 2
        self.df = half(self.df)
        self.prior = {s: half(t) for s, t in self.prior.items()}
        # a choice's word counts go with it
        self.totals = {s: {c: self.totals[s][c] / 2 for c in t} for s, t in self.prior.items()}
        self.counts = {s: {c: half(self.counts[s][c]) for c in t} for s, t in self.prior.items()}
        self.all_counts = {s: half(self.all_counts[s]) for s in self.prior}
        self.all_totals = {s: self.all_totals[s] / 2 for s in self.prior}


class Decoder:
    """Builds each item's draft for a pass and reads the pass's logits back into its answer (see the module
    docstring). Holds the decisions of recent answers, for guesses."""

    def __init__(self, tokenizer, schema: Schema):
        self.grammar = Grammar(tokenizer, schema)
        # The token last chosen at each state in finished answers: of the closed keys and the related list's start
        # (as many as the grammar has such states), and inside related lists (a state per list so far: bounded, so
        # apart); and in related lists, the token that last followed each token.
        self.memory: dict[tuple, int] = {}
        self.lists: dict[tuple, int] = {}
        self.follow: dict[int, int] = {}
        self.words = Words()

    def new(self) -> Answer:
        ans = Answer(self.grammar.start())
        self._walk(ans, None, {}, {}, 0)  # the forced text before the first decision
        return ans

    def draft(self, ans: Answer, prompt: list[int] | None, ahead: int | None) -> Draft:
        """What the next pass feeds for ``ans``: ``prompt`` (its first pass) and the checked tokens not in the cache,
        then a draft with at most ``ahead`` guessed decisions (None: to the answer's end; 0: none, the plain loop)."""
        if prompt:  # no answer is learnt before the batch ends, so the evidence holds for all its passes
            ans.words = frozenset(prompt)
            ans.evidence = self.words.evidence(ans.words) if ans.words else None
        pending = ans.tokens[len(ans.cols) :]
        d = Draft(tokens=[*(prompt or []), *pending], prompt=len(prompt or []))
        d.first_pos = 0 if prompt else len(ans.prompt_cols) + len(ans.cols)
        d.checked = len(d.tokens)
        d.wants[d.checked - 1] = ans.state
        g, guesses = self.grammar, 0
        path = [(s, t) for s, t in ans.decisions if not self._in_list(s)]  # the draft's decisions so far

        def guess(state: tuple, options: list[int]) -> int | None:
            nonlocal guesses
            if ahead is not None and guesses == ahead:
                return None  # the draft ends at this decision
            guesses += 1
            tok = self._guess(ans, state, options, d.tokens[-1], path)
            path.append((state, tok))
            return tok

        for tok, written, after in g.walk(ans.state, guess):
            if written:
                d.tokens.append(tok)
            if g.step(after)[1] is not None:
                d.wants[len(d.tokens) - 1] = after
        return d

    def _guess(
        self, ans: Answer, state: tuple, options: list[int], previous: int, path: list[tuple[tuple, int]]
    ) -> int:
        list_start = state[0] == "related" and not state[2]
        if list_start:  # the answer's market and sector know more than logits after a wrong one
            tok = self.words.guess(ans.evidence, state, options, path)
            if tok is not None:
                return tok
        tok = ans.seen.get(state)
        if tok in options:
            return tok
        if not self._in_list(state) and not list_start:
            tok = self.words.guess(ans.evidence, state, options, path)
            if tok is not None:
                return tok
        tok = (self.lists if self._in_list(state) else self.memory).get(state)
        if tok in options:
            return tok
        if state[0] == "related":
            tok = self.follow.get(previous)
            return tok if tok is not None else self.grammar.eos
        return options[0]

    def read(self, ans: Answer, d: Draft, rows: dict[int, np.ndarray], first_col: int) -> None:
        """Take the pass's logits (``rows``: token index -> logits) into ``ans``: its fed checked tokens are now in
        the cache (token q at column ``first_col + q``), and the greedy answer runs on through the draft."""
        if d.prompt:
            ans.prompt_cols = [first_col + q for q in range(d.prompt)]
        ans.cols += [first_col + q for q in range(d.checked - (len(ans.tokens) - len(ans.cols)), d.checked)]
        g = self.grammar
        choices = {q: greedy_pick(row, g.step(d.wants[q])[1]) for q, row in rows.items()}
        for q, row in rows.items():  # guesses for the next pass
            state = d.wants[q]
            # a value's later tokens, where no pass has been: this row's ranking of them
            if state[0] == "trie":
                for child in state[2].children.values():
                    options = g.step(("trie", state[1], child))[1]
                    if options is not None:
                        ans.seen.setdefault(("trie", state[1], child), greedy_pick(row, options))
        for q, tok in choices.items():
            ans.seen[d.wants[q]] = tok
        self._walk(ans, d, rows, choices, first_col)

    def _walk(
        self,
        ans: Answer,
        d: Draft | None,
        rows: dict[int, np.ndarray],
        choices: dict[int, int],
        first_col: int,
    ) -> None:
        """Follow the greedy answer from ``ans.state``: forced tokens are written; a decision is taken on the logits
        at draft token ``cur`` (the last token written, while it matches the draft; ``choices``: their greedy
        choices). Tokens that match the draft are in the cache; the walk stops at the first decision without
        logits."""
        g = self.grammar
        drafted = d.tokens if d is not None else []
        cur = d.checked - 1 if d is not None else None

        def greedy(state: tuple, options: list[int]) -> int | None:
            if cur is None:
                return None  # a decision without logits: the next pass
            tok = choices[cur]
            if state[0] == "trie" and state[1] == g.sentiment:
                tok, ans.probs[len(ans.tokens)] = softmax_pick(rows[cur], options)
            ans.decisions.append((state, tok))
            return tok

        for tok, written, after in g.walk(ans.state, greedy):
            if written:
                ans.tokens.append(tok)
                # as drafted: in the cache
                if cur is not None and cur + 1 < len(drafted) and drafted[cur + 1] == tok:
                    cur += 1
                    ans.cols.append(first_col + cur)
                else:
                    cur = None
            if after[0] in ("trie", "related"):
                ans.starts.setdefault(after[1], len(ans.tokens))
            ans.state = after

    def remember(self, ans: Answer) -> None:
        """Learn the decisions of a finished answer (guesses for the next items). Bounded: ``memory`` by the
        grammar's states, ``lists`` and ``follow`` cleared past MEMORY_LIMIT."""
        for table in (self.lists, self.follow):
            if len(table) > MEMORY_LIMIT:
                table.clear()
        for state, tok in ans.decisions:
            if self._in_list(state):
                self.lists[state] = tok
                self.follow[state[2][-1]] = tok
            else:
                self.memory[state] = tok
        self.words.learn(ans.words, [(s, t) for s, t in ans.decisions if not self._in_list(s)])

    @staticmethod
    def _in_list(state: tuple) -> bool:
        """Inside a related list, after its first token."""
        return state[0] == "related" and bool(state[2])
