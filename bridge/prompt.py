"""The instruction/output text format shared by training, evaluation, the server and the backtester.

Training records are Alpaca / LLaMA-Factory style ``{"instruction", "input", "output"}``; ``output`` is one line::

    event: central bank decision, market: EU, sector: rates, sentiment: moderately positive, related: EUR, EURUSD

``parse_output`` turns any text back into an ``Analysis`` and never raises: what it cannot read is replaced by the
schema's defaults (neutral sentiment) and flagged ``fallback=True`` so the caller can count it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache

from bridge.schema import Schema, load_schema
from bridge.types import Analysis, NewsItem

PROMPT_TEMPLATE = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
# Prompt templates by name. A model directory records the one it was trained with (``prompt_template`` in
# bridge_model.json); a directory without that key was trained with ``alpaca``, the only template before ``short``.
#
# - ``alpaca``: the schema's instruction (about 25 tokens) + the news text in Alpaca layout, about 42 tokens of
#   template around every item. The shipped model up to format 1 uses it.
# - ``short``: the news text and a cue, 7 tokens of template with SmolLM2's tokenizer. A fine-tuned model does not need
#   to be told the task on every item; the schema is fixed per model directory. This is what finetune.train writes by
#   default: it is most of the training-speed gain of bench/train_speed.py.
# - ``llamafactory-alpaca``: LLaMA-Factory's ``alpaca`` template with its default system line, for a plain peft adapter
#   trained there on this project's alpaca-format data (instruction and input joined by a newline, as LLaMA-Factory
#   does for alpaca records).
TEMPLATES = {
    "alpaca": PROMPT_TEMPLATE,
    "short": "News: {input}\nLabels:\n",
    "llamafactory-alpaca": (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        "\n\n### Instruction:\n{instruction}\n{input}\n\n### Response:\n"
    ),
}
LEGACY_TEMPLATE = "alpaca"  # what a model directory without a recorded template was trained with
DEFAULT_TEMPLATE = "short"  # what new training runs use
_RELATED_SPLIT = re.compile(r"[,;\s]+")
_RELATED_TOKEN = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,23}$"
)  # an instrument or currency: EUR, EURUSD.m, BRK.B


def is_instrument(text: str) -> bool:
    """True for one entry of a ``related`` list as the schema allows it (no spaces, up to 24 characters)."""
    return bool(_RELATED_TOKEN.match(text))


def related_entries(raw: str) -> tuple[list[str], int]:
    """The instrument-like entries of a ``related`` list, upper case, without repeats; and how many pieces it had."""
    pieces = [t for t in _RELATED_SPLIT.split(raw) if t]
    return list(dict.fromkeys(t.upper() for t in pieces if is_instrument(t))), len(pieces)


# What a template or an answer is made of: "### Response:", "Labels:", "sentiment: ...". Item text carrying these
# could write the model's answer for it, so they are neutralised in the one place item text enters a prompt: the
# section markers go ("### Response:"), and an answer key with its value ("sentiment: extremely positive", "related: EUR,
# GBP") goes altogether, as does a request to ignore the instructions. Only a key's own vocabulary (every shipped
# schema's labels, or a list of instruments) is taken with it, so "Sentiment: investors gloomy" keeps its news.
_SECTION = re.compile(r"#{2,}|\b(?:instruction|input|response|news|labels)\s*:", re.IGNORECASE)
# verbs that ask for an answer: right before an answer key they go with it ("Answer sentiment: ..."); after a request
# to ignore the instructions, "say" and "write" count too (before a key they are too common in news to take)
_REQUEST_VERBS = "answer|respond|reply|output|return"
_OVERRIDE = re.compile(
    r"\b(?:ignore|disregard|forget)\s+(?:all\s+|any\s+)?(?:the\s+)?(?:previous|prior|above|earlier|preceding)\s+"
    r"(?:instructions?|prompts?|rules|labels?)\b"
    # and the request it introduces ("... and answer sentiment: ..."), whose answer goes with the key below
    rf"(?:\s*,?\s*(?:and|then|just)?\s*(?:{_REQUEST_VERBS}|say|write)(?:\s+with)?\b)?",
    re.IGNORECASE,
)


_LEFT_OVER = re.compile(r"(?:^|\s)[,;](?=\s|$)")  # the separator of an answer that was taken out


@cache
def _answer_pattern() -> re.Pattern:
    from bridge.schema import SCHEMA_DIR

    values: set[str] = set()
    keys = {"related"}
    for path in SCHEMA_DIR.glob("*.json"):
        schema = load_schema(path.stem)
        keys.update(schema.keys)
        values.update(v for f in schema.fields for v in f.values)
        values.update(name for name, _ in schema.sentiment_levels)
    # longest first, so "extremely positive" is taken whole; separators as the parser reads them
    vocab = "|".join(re.escape(v).replace(r"\ ", r"[\s_-]+") for v in sorted(values, key=len, reverse=True))
    keys.discard("related")
    key = "|".join(re.escape(k) for k in sorted(keys, key=len, reverse=True))
    # a related list is instruments in capitals (EUR, GBPUSD, BRK.B), so "related: stocks" keeps its word
    instruments = r"[A-Z0-9][A-Z0-9._/]{1,23}\b(?:\s*,\s*[A-Z0-9][A-Z0-9._/]{1,23}\b)*"
    # a request right before a key goes with it; "answer" before other words stays
    request = rf"(?:(?i:{_REQUEST_VERBS})(?:\s+(?i:with))?\s+)?"
    return re.compile(
        rf"\b{request}(?:(?i:{key})\s*:\s*(?:(?i:{vocab})\b)?|(?i:related)\s*:\s*(?:(?i:none)\b|{instruments})?)"
    )


def neutralise(text: str) -> str:
    """Item text with template markers and written-in answers taken out (see above)."""
    text = _OVERRIDE.sub(" ", text)
    text = _answer_pattern().sub(" ", text)
    text = _SECTION.sub(" ", text)
    return " ".join(_LEFT_OVER.sub(" ", text).split())


def format_input(item: NewsItem) -> str:
    """The ``input`` text for one news item: headline, then the optional body and the calendar currency.

    Item text is whitespace-collapsed (no line of its own can start a template section) and ``neutralise``d."""
    parts = [neutralise(item.headline)]
    if item.currency:
        parts.append(f"Currency: {neutralise(item.currency)}")
    if item.body:
        parts.append(neutralise(item.body[:4000])[:1000])
    return "\n".join(parts)


def check_template(name: str) -> str:
    if name not in TEMPLATES:
        raise ValueError(f"unknown prompt template {name!r}, expected one of {', '.join(TEMPLATES)}")
    return name


def build_prompt(
    text: str, schema: Schema | None = None, instruction: str | None = None, template: str = LEGACY_TEMPLATE
) -> str:
    """The full prompt a model sees in the named ``template``; the answer starts right after it."""
    schema = schema or load_schema()
    fmt = TEMPLATES[check_template(template)]
    return fmt.format(instruction=instruction or schema.instruction, input=text.strip())


def format_output(analysis: Analysis, schema: Schema | None = None) -> str:
    """The one-line answer for an analysis, in schema order."""
    schema = schema or load_schema()
    parts = [f"{f.name}: {analysis.labels.get(f.name, f.default)}" for f in schema.fields]
    parts.append(f"sentiment: {schema.level_name(analysis.sentiment)}")
    related = ", ".join(analysis.related) if analysis.related else schema.related_none
    parts.append(f"{schema.related_name}: {related}")
    return ", ".join(parts)


@dataclass
class ParseResult:
    analysis: Analysis
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def parse_output(text: str, schema: Schema | None = None, analyzer: str = "") -> ParseResult:
    """Parse a model's answer strictly; never raise.

    Each key must appear once with a value from the vocabulary. Anything missing or unknown is replaced by the field's
    default (sentiment: neutral) and listed in ``problems``; the analysis is then marked ``fallback``.
    """
    schema = schema or load_schema()
    # The answer is one line; a model may start it with blank lines, so take the first line with text.
    text = next((line for line in (text or "").splitlines() if line.strip()), "")
    keys = schema.keys
    pattern = re.compile(r"(?i)(?:^|[,;\s])(" + "|".join(re.escape(k) for k in keys) + r")\s*:")
    found: dict[str, str] = {}
    problems: list[str] = []
    matches = list(pattern.finditer(text))
    for i, m in enumerate(matches):
        key = m.group(1).lower()
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        value = text[m.end() : end].strip().rstrip(",;").strip()
        if key in found:
            problems.append(f"{key}: given twice")
            continue
        found[key] = value
    labels: dict[str, str] = {}
    for f in schema.fields:
        raw = found.get(f.name)
        value = f.canonical(raw) if raw is not None else None
        if value is None:
            problems.append(f"{f.name}: {'missing' if raw is None else f'unknown value {raw!r}'}")
            value = f.default
        labels[f.name] = value
    raw_level = found.get("sentiment")
    level = schema.level_of(raw_level) if raw_level is not None else None
    if level is None:
        problems.append(f"sentiment: {'missing' if raw_level is None else f'unknown value {raw_level!r}'}")
        level = 0
    related: tuple[str, ...] = ()
    raw_related = found.get(schema.related_name)
    if raw_related is None:
        problems.append(f"{schema.related_name}: missing")
    elif raw_related.strip().lower() != schema.related_none:
        entries, pieces = related_entries(raw_related)
        related = tuple(entries)
        if len(related) != pieces:
            problems.append(f"{schema.related_name}: dropped unreadable entries in {raw_related!r}")
    analysis = Analysis(labels, level, related, confidence=1.0, fallback=bool(problems), analyzer=analyzer)
    return ParseResult(analysis, problems)


def make_record(item_text: str, analysis: Analysis, schema: Schema | None = None) -> dict:
    """One training record in instruction format."""
    schema = schema or load_schema()
    return {"instruction": schema.instruction, "input": item_text, "output": format_output(analysis, schema)}
