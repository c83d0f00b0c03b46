"""The prompt/answer format and its strict parser, on every label of every shipped schema."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.errors import UserError
from bridge.prompt import build_prompt, format_input, format_output, make_record, parse_output
from bridge.schema import SCHEMA_DIR, Schema, load_schema
from bridge.types import Analysis, NewsItem

SCHEMAS = sorted(p.stem for p in SCHEMA_DIR.glob("*.json"))


def test_both_schemas_ship():
    assert {"fx_macro", "cn_ashare"} <= set(SCHEMAS)


def _cases(schema: Schema):
    """One analysis per value of every field and every sentiment level, the other fields at their defaults."""
    base = schema.defaults()
    for f in schema.fields:
        for v in f.values:
            yield Analysis({**base, f.name: v}, 0, ("EURUSD",))
    for _, level in schema.sentiment_levels:
        yield Analysis(base, level, ())


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_label_round_trips(name):
    schema = load_schema(name)
    n = 0
    for a in _cases(schema):
        text = format_output(a, schema)
        res = parse_output(text, schema)
        assert res.ok, (text, res.problems)
        assert res.analysis.labels == a.labels
        assert res.analysis.sentiment == a.sentiment
        assert res.analysis.related == a.related
        assert not res.analysis.fallback
        n += 1
    assert n == sum(len(f.values) for f in schema.fields) + 7


@pytest.mark.parametrize("name", SCHEMAS)
def test_round_trip_survives_case_and_spacing(name):
    schema = load_schema(name)
    for a in _cases(schema):
        text = format_output(a, schema).upper().replace(": ", " :   ")
        res = parse_output(text, schema)
        assert res.analysis.labels == a.labels and res.analysis.sentiment == a.sentiment


def test_only_first_line_is_read():
    schema = load_schema("fx_macro")
    a = Analysis({"event": "central bank decision", "market": "EU", "sector": "rates"}, 2, ("EUR", "EURUSD"))
    res = parse_output(format_output(a, schema) + "\nsentiment: extremely negative", schema)
    assert res.ok and res.analysis.sentiment == 2


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "event: missing"),
        ("event: war, market: US, sector: FX, sentiment: neutral, related: none", "unknown value 'war'"),
        (
            "event: other, market: US, sector: FX, sentiment: very good, related: none",
            "sentiment: unknown value",
        ),
        (
            "event: other, event: other, market: US, sector: FX, sentiment: neutral, related: none",
            "given twice",
        ),
        ("event: other, market: US, sector: FX, sentiment: neutral", "related: missing"),
    ],
)
def test_bad_answers_fall_back_and_say_why(text, problem):
    res = parse_output(text, load_schema("fx_macro"))
    assert not res.ok and res.analysis.fallback
    assert any(problem in p for p in res.problems), res.problems


def test_fallback_is_neutral_defaults():
    schema = load_schema("fx_macro")
    a = parse_output("I think the euro goes up", schema).analysis
    assert a.fallback and a.sentiment == 0 and a.labels == schema.defaults()


@pytest.mark.parametrize("name", SCHEMAS)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=400))
def test_parser_never_raises_on_arbitrary_text(name, text):
    schema = load_schema(name)
    res = parse_output(text, schema)
    assert -3 <= res.analysis.sentiment <= 3
    for f in schema.fields:
        assert res.analysis.labels[f.name] in f.values


_KEYS = st.sampled_from(
    ["event", "market", "sector", "industry", "sentiment", "related", "EVENT", "Sentiment"]
)


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.tuples(_KEYS, st.text(max_size=30)), max_size=8),
    sep=st.sampled_from([", ", ";", " ", ",,"]),
)
def test_parser_never_raises_on_key_value_soup(parts, sep):
    # Text that looks like an answer is the hard case for a parser: keys in any order, odd values.
    text = sep.join(f"{k}: {v}" for k, v in parts)
    for name in SCHEMAS:
        schema = load_schema(name)
        res = parse_output(text, schema)
        assert res.analysis.fallback == (not res.ok)


def _schema_dict() -> dict:
    return json.loads((SCHEMA_DIR / "fx_macro.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.pop("fields"), "invalid label schema"),
        (lambda d: d["fields"][0].update(default="nonsense"), "is not one of its values"),
        (lambda d: d["fields"][0].update(name="sentiment"), "reserved"),
        (lambda d: d.update(sentiment=[["bad", -1], ["neutral", 0], ["good", 1]]), "-3..+3"),
    ],
)
def test_invalid_schema_is_a_user_error(change, message):
    d = _schema_dict()
    change(d)
    with pytest.raises(UserError, match=message):
        Schema.from_dict(d, source="test.json")


def test_unknown_schema_name_lists_known(tmp_path):
    with pytest.raises(UserError, match="fx_macro"):
        load_schema("no_such_schema")


def test_schema_file_with_bad_json_names_line(tmp_path):
    p = tmp_path / "s.json"
    p.write_text('{\n  "name": "x",\n  oops\n}', encoding="utf-8")
    with pytest.raises(UserError) as exc:
        load_schema(str(p))
    assert exc.value.line == 3


def test_record_and_prompt_use_the_schema_instruction():
    schema = load_schema("fx_macro")
    item = NewsItem(
        time="2016-12-02 13:30Z", headline="USD Non-Farm Employment Change: actual 178K", currency="USD"
    )
    a = Analysis({"event": "economic data", "market": "US", "sector": "FX"}, 1, ("USD",))
    rec = make_record(format_input(item), a, schema)
    assert set(rec) == {"instruction", "input", "output"}
    assert rec["instruction"] == schema.instruction
    assert rec["input"] == "USD Non-Farm Employment Change: actual 178K\nCurrency: USD"
    assert (
        rec["output"]
        == "event: economic data, market: US, sector: FX, sentiment: slightly positive, related: USD"
    )
    prompt = build_prompt(rec["input"], schema)
    assert prompt.startswith("### Instruction:\n" + schema.instruction) and prompt.endswith("### Response:\n")


def test_parser_reads_the_first_line_with_text():
    line = "event: other, market: US, sector: FX, sentiment: neutral, related: USD"
    result = parse_output("\n  \n" + line + "\nevent: corporate")
    assert result.ok and result.analysis.labels["event"] == "other"
