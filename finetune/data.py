"""Training data: convert public sentiment sets and calendars into instruction JSONL, and load such files with checks.

    python -m finetune.data convert --format tfns sent_train.csv tfns.jsonl
    python -m finetune.data convert --format phrasebank Sentences_AllAgree.txt phrasebank.jsonl
    python -m finetune.data convert --format sentfin SEntFiN.csv sentfin.jsonl
    python -m finetune.data convert --format calendar forexfactory_2016.csv calendar.jsonl [--tz UTC-5]
    python -m finetune.data convert --format headlines headlines.csv to_annotate.jsonl
    python -m finetune.data split tfns.jsonl sentfin.jsonl --out splits/ [--dev 0.1 --test 0.1 --seed 0]
    python -m finetune.data check records.jsonl [--schema fx_macro]

Records are ``{"instruction", "input", "output"}`` (Alpaca / LLaMA-Factory); ``output`` is the one-line answer of
``bridge.prompt.format_output``; ``input`` is ``bridge.prompt.format_input`` of the news item, exactly what the model
sees at run time. Every output file gets a sidecar ``OUT.meta.json`` with the command's settings, the counts of written
and skipped rows (by reason), the input file's SHA-256 and the library versions, and an entry in the LLaMA-Factory
``dataset_info.json`` of its folder. ``split`` makes a fixed train/dev/test split, stratified by label, seeded, and
recorded in each output's sidecar. The mapping rules (3-class sentiment
to the 7-level scale, keyword rules for event/market/sector) are described in docs/training_data.md.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import re
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from bridge.cli import HelpFormatter
from bridge.errors import DataError, UserError, run_main
from bridge.news.loading import load_news_report
from bridge.news.surprise import SurpriseAnalyzer
from bridge.prompt import format_input, is_instrument, make_record, parse_output
from bridge.provenance import library_versions
from bridge.schema import DEFAULT_SCHEMA, Schema, load_schema
from bridge.textfile import read_text_file
from bridge.types import Analysis, NewsItem

FORMATS = ("tfns", "phrasebank", "sentfin", "fiqa", "calendar", "headlines")
REQUIRED_KEYS = ("instruction", "input", "output")
# A 3-class label names a direction, not a strength: map it to the middle of its side of the 7-level scale
# (moderately = 2), which is at most one level from any true strength (see docs/training_data.md).
DEFAULT_THREE_CLASS_LEVEL = 2
TFNS_LABELS = {"0": "negative", "1": "positive", "2": "neutral"}  # 0 = Bearish, 1 = Bullish, 2 = Neutral
# FiQA task 1 scores sentiment in [-1, 1]; the usual 3-class reading (FinGPT's benchmark among others): below -0.1
# negative, above +0.1 positive, neutral between.
FIQA_NEUTRAL_BAND = 0.1
_EPOCH = pd.Timestamp(
    "1970-01-01", tz="UTC"
)  # text-only sources have no time; the input text does not show it
_URL = re.compile(r"https?://\S+")
_TICKER = re.compile(r"\$([A-Za-z]{1,6}(?:\.[A-Za-z]{1,2})?)\b")
_SENTIMENT_WORDS = {
    "negative": "negative",
    "bearish": "negative",
    "neg": "negative",
    "-1": "negative",
    "positive": "positive",
    "bullish": "positive",
    "pos": "positive",
    "1": "positive",
    "neutral": "neutral",
    "neu": "neutral",
    "0": "neutral",
}


# ---------------------------------------------------------------------------------------------------------------------
# Keyword labels for text sources without FX labels


# First match wins; patterns are matched on the lower-cased text with word boundaries where it matters.
_EVENT_RULES = [
    (
        r"\b(rate (hike|cut|decision)|raises? rates|cuts? rates|hikes? rates|fomc|monetary policy|basis points|bps)\b",
        "central bank decision",
    ),
    (
        r"\b(powell|yellen|bernanke|draghi|lagarde|carney|bailey|kuroda|fed chair|governor|central bank)\b",
        "central bank speech",
    ),
    (
        r"\b(cpi|inflation|gdp|payrolls|jobs report|unemployment|jobless|pmi|retail sales|industrial production|"
        r"consumer confidence|housing starts|trade balance|trade deficit)\b",
        "economic data",
    ),
    (r"\b(tariffs?|trade war|trade deal|trade talks|import duty|export ban)\b", "trade policy"),
    (r"\b(stimulus|budget|fiscal|tax(es)?|government spending|deficit|debt ceiling)\b", "fiscal policy"),
    (r"\b(war|election|brexit|sanctions?|missile|coup|referendum|protests?)\b", "geopolitics"),
    (r"\b(oil|crude|opec|gold|silver|copper|wheat|natural gas|brent|wti)\b", "commodity"),
    (
        r"\b(dow|s&p|nasdaq|sensex|nifty|stocks|futures|markets?|index|indices|rally|sell-?off)\b",
        "market move",
    ),
]
_MARKET_RULES = [
    (r"\b(euro ?zone|euro area|ecb|germany|german|france|french|italy|italian|spain|eur)\b", "EU"),
    (r"\b(u\.?k\.?|britain|british|sterling|pound|boe|ftse|gbp)\b", "UK"),
    (r"\b(japan|japanese|yen|boj|nikkei|jpy)\b", "JP"),
    (r"\b(china|chinese|yuan|pboc|beijing|cny)\b", "CN"),
    (r"\b(canada|canadian|loonie|boc|cad)\b", "CA"),
    (r"\b(australia|australian|aussie|rba|aud)\b", "AU"),
    (r"\b(swiss|switzerland|franc|snb|chf)\b", "CH"),
    (r"\b(new zealand|kiwi|rbnz|nzd)\b", "NZ"),
    (r"\b(u\.?s\.?|america|american|fed|dollar|wall street|treasury|usd)\b", "US"),
]
_SECTOR_RULES = [
    (r"\b(bitcoin|crypto|ethereum|blockchain|btc)\b", "crypto"),
    (r"\b(oil|crude|opec|natural gas|brent|wti|energy)\b", "energy"),
    (r"\b(gold|silver|copper|wheat|corn|commodit(y|ies))\b", "commodities"),
    (r"\b(bonds?|yields?|rates?|treasur(y|ies)|fomc|fed|ecb)\b", "rates"),
    (r"\b(credit(?! suisse| agricole)|default|downgrade|junk|spreads?)\b", "credit"),
    (r"\b(dollar|euro|yen|sterling|pound|currenc(y|ies)|forex|fx)\b", "FX"),
]
_EVENT_SECTOR = {"central bank decision": "rates", "central bank speech": "rates", "commodity": "commodities"}


def _first(rules: Sequence[tuple[str, str]], text: str) -> str | None:
    for pattern, value in rules:
        if re.search(pattern, text):
            return value
    return None


def keyword_labels(text: str, default_market: str, schema: Schema) -> dict[str, str]:
    """Event, market and sector of a text source by keyword rules; defaults 'corporate', ``default_market``,
    'equities' (most tweets and headlines in these sets are about listed companies)."""
    low = text.lower()
    event = _first(_EVENT_RULES, low) or "corporate"
    market = _first(_MARKET_RULES, low) or default_market
    sector = _first(_SECTOR_RULES, low) or _EVENT_SECTOR.get(event) or "equities"
    labels = {"event": event, "market": market, "sector": sector}
    # A schema with other fields gets its own defaults for them; values outside its vocabulary fall back too.
    out = schema.defaults()
    for f in schema.fields:
        if f.name in labels and f.canonical(labels[f.name]) is not None:
            out[f.name] = f.canonical(labels[f.name])
    return out


def level_of_class(label: str, three_class_level: int) -> int:
    """Level on the 7-level scale of a 3-class label (negative / neutral / positive)."""
    return {"negative": -three_class_level, "neutral": 0, "positive": three_class_level}[label]


# ---------------------------------------------------------------------------------------------------------------------
# Conversion


@dataclass
class ConvertStats:
    """Counts of one conversion: rows read, records written, and skipped rows by reason (with first lines)."""

    rows: int = 0
    written: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: dict[str, list[int]] = field(default_factory=dict)

    def skip(self, reason: str, line: int | None = None) -> None:
        self.skipped[reason] += 1
        if line is not None:
            self.examples.setdefault(reason, [])
            if len(self.examples[reason]) < 5:
                self.examples[reason].append(line)

    def lines(self) -> list[str]:
        out = [f"rows read: {self.rows}", f"records written: {self.written}"]
        for reason, n in self.skipped.most_common():
            ex = self.examples.get(reason)
            out.append(f"skipped {n}: {reason}" + (f" (e.g. line {', '.join(map(str, ex))})" if ex else ""))
        return out

    def to_dict(self) -> dict:
        return {
            "rows": self.rows,
            "written": self.written,
            "skipped": dict(self.skipped),
            "examples": self.examples,
        }


@dataclass
class ConvertOptions:
    """Settings of a conversion (recorded in the sidecar)."""

    format: str
    schema: str = DEFAULT_SCHEMA
    tz: str | None = None
    three_class_level: int = DEFAULT_THREE_CLASS_LEVEL
    min_confidence: float = 0.2
    strip_urls: bool = True

    def __post_init__(self):
        if self.format not in FORMATS:
            raise UserError(
                f"unknown training-data format {self.format!r}", hint=f"one of {', '.join(FORMATS)}"
            )
        if self.three_class_level not in (1, 2, 3):
            raise UserError(
                "--three-class-level must be 1, 2 or 3", hint="2 (moderately) is the documented default"
            )
        if not 0.0 <= self.min_confidence <= 1.0:
            raise UserError("--min-confidence must be in [0, 1]")


def _no_text(body: str, strip_urls: bool) -> bool:
    """Nothing left to read (empty, or only a URL that conversion removes)."""
    return not (_URL.sub("", body) if strip_urls else body).strip()


def _one_sentiment(labels: set[str]) -> str | None:
    """The item's 3-class sentiment from its entities' or targets' labels: neutral when all are, else the one
    direction among them; None when they disagree (good for one, bad for another: no single sentiment)."""
    kinds = labels - {"neutral"}
    if len(kinds) > 1:
        return None
    return kinds.pop() if kinds else "neutral"


def _text_input(text: str, strip_urls: bool) -> str:
    if strip_urls:
        text = _URL.sub("", text)
    return format_input(NewsItem(time=_EPOCH, headline=" ".join(text.split())))


def _read_text(path: Path) -> tuple[str, str]:
    """File text and the encoding used: UTF-8, else Latin-1 (Financial PhraseBank ships in Latin-1)."""
    return read_text_file(path, "data file", latin1=True)


def _csv_rows(path: Path, text: str) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DataError("the file has no header line", path=path) from None

    def rows():
        prev = reader.line_num
        try:
            for rec in reader:
                start, prev = prev + 1, reader.line_num
                if rec and any(c.strip() for c in rec):
                    yield start, rec
        except csv.Error as exc:
            raise DataError(
                f"unreadable CSV: {exc}", path=path, line=prev + 1, hint="check quoting"
            ) from None

    return header, rows()


def _column(path: Path, header: list[str], names: Sequence[str], what: str) -> int:
    lower = [h.lower() for h in header]
    for n in names:
        if n in lower:
            return lower.index(n)
    raise DataError(
        f"missing the {what} column (found: {', '.join(header)}; expected one of: {', '.join(names)})",
        path=path,
        line=1,
        hint="check --format and the delimiter",
    )


def _convert_tfns(path: Path, opts: ConvertOptions, schema: Schema, stats: ConvertStats) -> Iterator[dict]:
    text, _ = _read_text(path)
    header, rows = _csv_rows(path, text)
    ti = _column(path, header, ("text", "tweet", "sentence"), "text")
    li = _column(path, header, ("label", "sentiment"), "label")
    for line, rec in rows:
        stats.rows += 1
        if len(rec) != len(header):
            stats.skip(f"{len(rec)} fields where the header has {len(header)}", line)
            continue
        label = TFNS_LABELS.get(rec[li].strip()) or _SENTIMENT_WORDS.get(rec[li].strip().lower())
        if label is None:
            stats.skip(f"label not 0/1/2 (bearish/bullish/neutral): e.g. {rec[li]!r}", line)
            continue
        body = rec[ti].strip()
        if _no_text(body, opts.strip_urls):
            stats.skip("no text (or only a URL)", line)
            continue
        related = tuple(dict.fromkeys(t.upper() for t in _TICKER.findall(body)))[:8]
        analysis = Analysis(
            keyword_labels(body, "US", schema), level_of_class(label, opts.three_class_level), related
        )
        yield make_record(_text_input(body, opts.strip_urls), analysis, schema)


def _phrasebank_rows(path: Path, text: str) -> Iterator[tuple[int, str, str]]:
    """(line, sentence, label) from ``sentence@label`` lines or a CSV with sentence and label columns."""
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), "")
    if "@" in first and _SENTIMENT_WORDS.get(first.rsplit("@", 1)[1].strip().lower()):
        for n, ln in enumerate(lines, start=1):
            if ln.strip():
                sentence, _, label = ln.rpartition("@")
                yield n, sentence if _ else ln, label if _ else ""
        return
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = list(enumerate(reader, start=1))
    if not rows:
        return
    head = [h.strip().lower() for h in rows[0][1]]
    if "label" in head or "sentiment" in head:
        li = head.index("label") if "label" in head else head.index("sentiment")
        si = next(
            (head.index(n) for n in ("sentence", "text", "headline") if n in head),
            1 - li if len(head) == 2 else None,
        )
        if si is None:
            raise DataError(
                f"no sentence column (found: {', '.join(head)})",
                path=path,
                line=1,
                hint="name it sentence or text",
            )
        body = rows[1:]
    else:
        # Headerless 'label,sentence' (the Kaggle copy) or 'sentence,label': the label is the column holding a class word.
        li = 0 if _SENTIMENT_WORDS.get(rows[0][1][0].strip().lower()) else 1
        si = 1 - li
        body = rows
    for n, rec in body:
        if len(rec) < 2:
            yield n, ",".join(rec), ""
        else:
            yield n, rec[si], rec[li]


def _convert_phrasebank(
    path: Path, opts: ConvertOptions, schema: Schema, stats: ConvertStats
) -> Iterator[dict]:
    text, _ = _read_text(path)
    for line, sentence, raw_label in _phrasebank_rows(path, text):
        stats.rows += 1
        label = _SENTIMENT_WORDS.get(raw_label.strip().lower())
        if label is None:
            stats.skip(
                "no label positive/negative/neutral (expected 'sentence@label' or sentence,label)", line
            )
            continue
        if not sentence.strip():
            stats.skip("empty sentence", line)
            continue
        analysis = Analysis(
            keyword_labels(sentence, "global", schema), level_of_class(label, opts.three_class_level)
        )
        yield make_record(_text_input(sentence, opts.strip_urls), analysis, schema)


_DECISION = re.compile(
    r"""(?:^\{|,)\s*(['"])(?P<name>.*?)\1\s*:\s*(['"])(?P<s>positive|negative|neutral)\3\s*(?=,|\}$)"""
)


def parse_decisions(text: str) -> dict[str, str] | None:
    """SEntFiN's ``Decisions`` cell (``{'Entity': 'positive', ...}``) as a dict; tolerates unescaped quotes in names
    (``'Osian's Art Fund'``). None when it cannot be read."""
    text = text.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return None
    out = {m.group("name"): m.group("s") for m in _DECISION.finditer(text)}
    return out or None


def _convert_sentfin(path: Path, opts: ConvertOptions, schema: Schema, stats: ConvertStats) -> Iterator[dict]:
    text, _ = _read_text(path)
    header, rows = _csv_rows(path, text)
    ti = _column(path, header, ("title", "headline", "text"), "title")
    di = _column(path, header, ("decisions",), "Decisions")
    for line, rec in rows:
        stats.rows += 1
        if len(rec) != len(header):
            stats.skip(f"{len(rec)} fields where the header has {len(header)}", line)
            continue
        decisions = parse_decisions(rec[di])
        if decisions is None:
            stats.skip("Decisions cell not readable as {entity: sentiment}", line)
            continue
        label = _one_sentiment(set(decisions.values()))
        if label is None:
            stats.skip("entities with opposite sentiments", line)
            continue
        related = tuple(e.upper() for e in decisions if is_instrument(e))[:8]
        title = rec[ti].strip()
        if not title:
            stats.skip("empty title", line)
            continue
        analysis = Analysis(
            keyword_labels(title, "global", schema), level_of_class(label, opts.three_class_level), related
        )
        yield make_record(_text_input(title, opts.strip_urls), analysis, schema)


def _convert_fiqa(path: Path, opts: ConvertOptions, schema: Schema, stats: ConvertStats) -> Iterator[dict]:
    """FiQA 2018 task 1 (``{id: {"sentence", "info": [{"sentiment_score", "target", ...}]}}``): one record per post,
    3-class by ``FIQA_NEUTRAL_BAND``; a post whose targets disagree in sign is skipped, as for SEntFiN."""
    text, _ = _read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"not JSON: {exc.msg}", path=path, line=exc.lineno) from None
    if not isinstance(data, dict):
        raise DataError("expected a JSON object of posts keyed by id (FiQA task 1)", path=path)
    for post in data.values():
        stats.rows += 1
        if not isinstance(post, dict) or not isinstance(post.get("sentence"), str):
            stats.skip("no 'sentence' text")
            continue
        infos = post.get("info") if isinstance(post.get("info"), list) else []
        scores, targets = [], []
        for info in infos:
            try:
                score = float(info["sentiment_score"])
            except (TypeError, KeyError, ValueError):
                continue
            if -1.0 <= score <= 1.0:
                scores.append(score)
                targets.append(str(info.get("target", "")).strip())
        if not scores:
            stats.skip("no sentiment_score in [-1, 1]")
            continue
        label = _one_sentiment(
            {
                "neutral" if abs(x) <= FIQA_NEUTRAL_BAND else "positive" if x > 0 else "negative"
                for x in scores
            }
        )
        if label is None:
            stats.skip("targets with opposite sentiments")
            continue
        body = post["sentence"].strip()
        if _no_text(body, opts.strip_urls):
            stats.skip("no text (or only a URL)")
            continue
        related = tuple(dict.fromkeys(t.upper() for t in targets if is_instrument(t.upper())))[:8]
        analysis = Analysis(
            keyword_labels(body, "US", schema), level_of_class(label, opts.three_class_level), related
        )
        yield make_record(_text_input(body, opts.strip_urls), analysis, schema)


def _convert_calendar(
    path: Path, opts: ConvertOptions, schema: Schema, stats: ConvertStats
) -> Iterator[dict]:
    items, report = load_news_report(path, "auto", opts.tz)
    if report.format == "headlines":
        raise UserError("this is a headline file, not a calendar", path=path, hint="use --format headlines")
    stats.rows = report.rows
    for p in report.problems:
        if p.skipped:
            stats.skipped[f"unusable row: {p.message}"] += len(p.lines)
            stats.examples[f"unusable row: {p.message}"] = p.lines[:5]
    if report.duplicates:
        stats.skipped["duplicate row"] += report.duplicates
        stats.examples["duplicate row"] = report.duplicate_lines[:5]
    # The whole file gives each indicator's typical surprise: these are labels of finished history, not trading
    # decisions, so later releases may inform the scale (the runtime analyzer is causal).
    analyzer = SurpriseAnalyzer(history=items, schema=schema, causal=False)
    for item, analysis in zip(items, analyzer.analyze(items), strict=True):
        if not item.is_calendar:
            stats.skip("no actual value or nothing to compare it with (holidays, speeches, unreleased)")
            continue
        if analysis.confidence < opts.min_confidence:
            stats.skip(f"surprise rule confidence below {opts.min_confidence} (indicator without direction)")
            continue
        yield make_record(format_input(item), analysis, schema)


def _convert_headlines(
    path: Path, opts: ConvertOptions, schema: Schema, stats: ConvertStats
) -> Iterator[dict]:
    # Headlines carry no labels. The records are written for annotation: output is empty, and load_records refuses
    # them until each output is filled in; id, time and source say which item each record is.
    items, report = load_news_report(path, "headlines", opts.tz)
    stats.rows = report.rows
    for p in report.problems:
        if p.skipped:
            stats.skipped[f"unusable row: {p.message}"] += len(p.lines)
    if report.duplicates:
        stats.skipped["duplicate row"] += report.duplicates
    for item in items:
        yield {
            "instruction": schema.instruction,
            "input": format_input(item),
            "output": "",
            "id": item.id,
            "time": item.time.isoformat(),
            "source": item.source,
        }


_CONVERTERS = {
    "tfns": _convert_tfns,
    "phrasebank": _convert_phrasebank,
    "sentfin": _convert_sentfin,
    "fiqa": _convert_fiqa,
    "calendar": _convert_calendar,
    "headlines": _convert_headlines,
}


def convert(
    in_path: str | Path, out_path: str | Path, opts: ConvertOptions, progress: bool = True
) -> ConvertStats:
    """Convert ``in_path`` to instruction JSONL at ``out_path`` with a sidecar ``.meta.json``; returns the counts."""
    in_path, out_path = Path(in_path), Path(out_path)
    schema = load_schema(opts.schema)
    stats = ConvertStats()
    records = _CONVERTERS[opts.format](in_path, opts, schema, stats)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".part")
    with tmp.open("w", encoding="utf-8") as f:
        for rec in tqdm(
            records, desc=f"convert {opts.format}", unit=" rec", disable=not progress, mininterval=0.5
        ):
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            stats.written += 1
    tmp.replace(out_path)  # a crash leaves no half-written training file under the real name
    meta = {
        "command": "finetune.data convert",
        "input": str(in_path),
        "input_sha256": hashlib.sha256(in_path.read_bytes()).hexdigest(),
        "output": str(out_path),
        "options": vars(opts),
        "counts": stats.to_dict(),
        "versions": library_versions(),
    }
    meta_path(out_path).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    write_dataset_info(out_path)
    return stats


DATASET_INFO = "dataset_info.json"


def write_dataset_info(data_path: str | Path, name: str | None = None) -> Path:
    """Add (or update) ``data_path``'s entry in the LLaMA-Factory ``dataset_info.json`` beside it.

    The records are alpaca format with LLaMA-Factory's default column names (instruction, input, output), so the
    entry names the file and says so; ``llamafactory-cli train --dataset_dir DIR --dataset NAME`` then reads it. The
    entry's name is the file name without ``.jsonl`` (``tfns.train.jsonl`` -> ``tfns.train``). Other entries of an
    existing file are kept.
    """
    data_path = Path(data_path)
    info_path = data_path.parent / DATASET_INFO
    name = name or (data_path.name[: -len(".jsonl")] if data_path.name.endswith(".jsonl") else data_path.stem)
    info: dict = {}
    if info_path.is_file():
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(
                f"unreadable {DATASET_INFO}: {exc.msg}",
                path=info_path,
                line=exc.lineno,
                hint="fix or delete it",
            ) from None
    info[name] = {
        "file_name": data_path.name,
        "formatting": "alpaca",
        "columns": {"prompt": "instruction", "query": "input", "response": "output"},
    }
    tmp = info_path.with_name(info_path.name + ".part")
    tmp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    tmp.replace(info_path)
    return info_path


# ---------------------------------------------------------------------------------------------------------------------
# A fixed, stratified train / dev / test split

SPLITS = ("train", "dev", "test")
STRATA = ("sentiment3", "sentiment", "event", "none")


def _stratum(record: dict, by: str, schema: Schema) -> str:
    if by == "none":
        return "all"
    a = parse_output(record["output"], schema).analysis
    if by == "sentiment3":
        return ("negative", "neutral", "positive")[(a.sentiment > 0) - (a.sentiment < 0) + 1]
    if by == "sentiment":
        return schema.level_name(a.sentiment)
    return a.labels.get("event", "")


def _stratum_seed(seed: int, key: str) -> int:
    # each stratum draws from its own stream: adding records of one label does not move the others' split
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "little")


def split_records(
    records: list[dict], dev: float, test: float, seed: int, by: str, schema: Schema, source: str = ""
) -> tuple[dict[str, list[int]], dict[str, dict[str, int]]]:
    """Indices of ``records`` per split (each in file order) and the counts per stratum and split.

    Stratified: within each stratum (the value of ``by`` in the record's output, per ``source``) a seeded permutation
    puts ``round(test * n)`` records in test, ``round(dev * n)`` in dev and the rest in train. The same records, seed
    and fractions give the same split on any machine.
    """
    import numpy as np

    groups: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        groups.setdefault(f"{source}{_stratum(r, by, schema)}", []).append(i)
    out: dict[str, list[int]] = {k: [] for k in SPLITS}
    counts: dict[str, dict[str, int]] = {}
    for key in sorted(groups):
        idx = groups[key]
        perm = np.random.default_rng(_stratum_seed(seed, key)).permutation(len(idx))
        n_test, n_dev = round(test * len(idx)), round(dev * len(idx))
        parts = {"test": perm[:n_test], "dev": perm[n_test : n_test + n_dev], "train": perm[n_test + n_dev :]}
        for name, sel in parts.items():
            out[name] += [idx[j] for j in sel]
        counts[key] = {name: len(sel) for name, sel in parts.items()}
    return {k: sorted(v) for k, v in out.items()}, counts


def split(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    dev: float = 0.1,
    test: float = 0.1,
    seed: int = 0,
    by: str = "sentiment3",
    schema_name: str = DEFAULT_SCHEMA,
    prefix: str = "",
) -> dict:
    """Split instruction files into ``OUT_DIR/{prefix}train|dev|test.jsonl`` (see ``split_records``; each input file is
    its own set of strata, so every source is split in the same proportions). Writes a sidecar ``.meta.json`` per
    output (inputs with their SHA-256, seed, fractions, stratification, counts) and the LLaMA-Factory
    ``dataset_info.json``; returns the meta record."""
    if not (0 <= dev < 1 and 0 <= test < 1 and dev + test < 1):
        raise UserError("--dev and --test must be fractions in [0, 1) with dev + test < 1")
    if by not in STRATA:
        raise UserError(f"unknown stratification {by!r}", hint=f"one of {', '.join(STRATA)}")
    schema = load_schema(schema_name)
    out_dir = Path(out_dir)
    chosen: dict[str, list[dict]] = {k: [] for k in SPLITS}
    counts: dict[str, dict[str, int]] = {}
    sources = []
    for path in inputs:
        path = Path(path)
        records = load_records(path, schema)
        idx, c = split_records(records, dev, test, seed, by, schema, source=f"{path.name}:")
        for name in SPLITS:
            chosen[name] += [records[i] for i in idx[name]]
        counts.update(c)
        sources.append(
            {
                "path": str(path),
                "records": len(records),
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            }
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": "finetune.data split",
        "inputs": sources,
        "seed": seed,
        "fractions": {"dev": dev, "test": test},
        "stratified_by": by,
        "schema": schema.name,
        "counts": {name: len(recs) for name, recs in chosen.items()},
        "counts_by_stratum": counts,
        "versions": library_versions(),
    }
    for name, recs in chosen.items():
        path = out_dir / f"{prefix}{name}.jsonl"
        tmp = path.with_name(path.name + ".part")
        with tmp.open("w", encoding="utf-8") as fh:
            for r in recs:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        tmp.replace(path)
        meta_path(path).write_text(json.dumps({**meta, "split": name, "output": str(path)}, indent=2) + "\n")
        write_dataset_info(path)
    return meta


def meta_path(out_path: str | Path) -> Path:
    """The sidecar file recording how ``out_path`` was made."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".meta.json")


# ---------------------------------------------------------------------------------------------------------------------
# Loading and validating a training file


def _records_from(path: Path, text: str) -> Iterator[tuple[int, object]]:
    """(line, parsed object) per record of a JSONL file or a JSON array file."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"invalid JSON: {exc.msg}",
                path=path,
                line=exc.lineno,
                hint="a .json training file must be one JSON array of records",
            ) from None
        # A JSON array has no line per record: report the line where each record starts.
        starts = _array_record_lines(text, len(data))
        yield from zip(starts, data, strict=True)
        return
    for n, ln in enumerate(text.split("\n"), start=1):
        if not ln.strip():
            continue
        try:
            yield n, json.loads(ln)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"invalid JSON on line {n}: {exc.msg} (column {exc.colno})",
                path=path,
                line=n,
                hint="each line must be one JSON object with instruction, input and output",
            ) from None


def _array_record_lines(text: str, count: int) -> list[int]:
    decoder = json.JSONDecoder()
    lines, pos = [], text.index("[") + 1
    for _ in range(count):
        while text[pos] in " \t\r\n,":
            pos += 1
        lines.append(text.count("\n", 0, pos) + 1)
        _, pos = decoder.raw_decode(text, pos)
    return lines


def load_records(path: str | Path, schema: Schema | str | None = None) -> list[dict]:
    """Read an instruction JSONL (or JSON array) training file and check every record; return the records.

    Each record must be an object with string ``instruction``, ``input`` and ``output``, non-empty input and output,
    and an output whose every label is in ``schema`` (default: fx_macro). Any failure is a ``DataError`` naming the
    file, the line and the field, and how many records are bad in all. Extra keys (id, time, source) are kept.
    """
    path = Path(path)
    schema = load_schema() if schema is None else load_schema(schema) if isinstance(schema, str) else schema
    text, _ = read_text_file(path, "training file")
    records: list[dict] = []
    errors: list[tuple[int, str, str]] = []
    for line, obj in _records_from(path, text):
        problem = _check_record(obj, schema)
        if problem:
            errors.append((line, *problem))
        else:
            records.append(obj)
    if errors:
        line, message, hint = errors[0]
        more = f"; {len(errors)} bad records in all (lines {', '.join(str(e[0]) for e in errors[:10])}" + (
            " ...)" if len(errors) > 10 else ")"
        )
        raise DataError(message + (more if len(errors) > 1 else ""), path=path, line=line, hint=hint)
    if not records:
        raise DataError("no records in the training file", path=path)
    return records


def _check_record(obj: object, schema: Schema) -> tuple[str, str] | None:
    """(message, hint) for a bad record, None for a good one."""
    if not isinstance(obj, dict):
        return f"a record must be a JSON object, got {type(obj).__name__}", "one object per line"
    for key in REQUIRED_KEYS:
        if key not in obj:
            return f"missing field {key!r}", "each record needs instruction, input and output"
        if not isinstance(obj[key], str):
            return (
                f"field {key!r} must be a string, got {type(obj[key]).__name__}",
                "write the text as a JSON string",
            )
    if not obj["input"].strip():
        return "empty input", "the news text goes in 'input'"
    if not obj["output"].strip():
        return (
            "empty output",
            "label the record (records written for annotation have an empty output until labelled)",
        )
    if "\n" in obj["output"].strip():
        return (
            "output has more than one line",
            "the answer is one line: event: ..., sentiment: ..., related: ...",
        )
    res = parse_output(obj["output"], schema)
    if not res.ok:
        return (
            f"output label not in the {schema.name} schema: {'; '.join(res.problems)}",
            f"use the values of bridge/schemas/{schema.name}.json",
        )
    return None


# ---------------------------------------------------------------------------------------------------------------------
# CLI


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m finetune.data convert|check``."""
    ap = argparse.ArgumentParser(
        prog="python -m finetune.data", description="Training data conversion and checks."
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser(
        "convert",
        help="convert a public data set or calendar to instruction JSONL",
        formatter_class=HelpFormatter,
    )
    c.add_argument("--format", required=True, choices=FORMATS)
    c.add_argument("input", type=Path)
    c.add_argument("output", type=Path)
    c.add_argument(
        "--tz", default=None, help="source clock of calendar/headline files (default: the format's own)"
    )
    c.add_argument("--schema", default=DEFAULT_SCHEMA, help="label schema name or JSON path")
    c.add_argument(
        "--three-class-level",
        type=int,
        default=DEFAULT_THREE_CLASS_LEVEL,
        choices=(1, 2, 3),
        help="7-level magnitude of a 3-class positive/negative label (2 = moderately)",
    )
    c.add_argument(
        "--min-confidence",
        type=float,
        default=0.2,
        help="calendar: skip events the surprise rule labels with less confidence",
    )
    c.add_argument("--keep-urls", action="store_true", help="keep URLs in tweet text (default: removed)")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    s = sub.add_parser(
        "split",
        help="a fixed, stratified train/dev/test split of instruction files",
        formatter_class=HelpFormatter,
    )
    s.add_argument("inputs", nargs="+", type=Path, help="instruction JSONL files (each split alike)")
    s.add_argument("--out", required=True, type=Path, help="folder for train.jsonl, dev.jsonl, test.jsonl")
    s.add_argument("--dev", type=float, default=0.1, help="fraction of each stratum for development")
    s.add_argument("--test", type=float, default=0.1, help="fraction of each stratum for test")
    s.add_argument("--seed", type=int, default=0, help="seed of the split (recorded in the meta files)")
    s.add_argument(
        "--by", default="sentiment3", choices=STRATA, help="stratify by this label (within each file)"
    )
    s.add_argument("--prefix", default="", help="file name prefix, e.g. shipped. -> shipped.train.jsonl")
    s.add_argument("--schema", default=DEFAULT_SCHEMA)
    k = sub.add_parser("check", help="validate a training file against a schema")
    k.add_argument("file", type=Path)
    k.add_argument("--schema", default=DEFAULT_SCHEMA)
    args = ap.parse_args(argv)
    if args.cmd == "split":
        meta = split(args.inputs, args.out, args.dev, args.test, args.seed, args.by, args.schema, args.prefix)
        print(", ".join(f"{k}: {v}" for k, v in meta["counts"].items()) + f" records in {args.out}")
        print(f"  split recorded in {meta_path(args.out / (args.prefix + 'train.jsonl'))} (and dev, test)")
        return 0
    if args.cmd == "check":
        records = load_records(args.file, args.schema)
        levels = Counter(
            parse_output(r["output"], load_schema(args.schema)).analysis.sentiment for r in records
        )
        print(f"{args.file}: {len(records)} records, all valid for the {args.schema} schema")
        print("sentiment levels: " + ", ".join(f"{lv:+d}: {levels[lv]}" for lv in range(-3, 4)))
        return 0
    opts = ConvertOptions(
        format=args.format,
        schema=args.schema,
        tz=args.tz,
        three_class_level=args.three_class_level,
        min_confidence=args.min_confidence,
        strip_urls=not args.keep_urls,
    )
    stats = convert(args.input, args.output, opts, progress=not args.no_progress)
    print(f"{args.input} -> {args.output} ({opts.format})")
    for line in stats.lines():
        print("  " + line)
    print(f"  settings and counts: {meta_path(args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
