"""Training-data converters on the real sentiment and calendar files, and the validating record loader."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from bridge.errors import DataError, UserError
from bridge.prompt import format_output, parse_output
from bridge.schema import load_schema
from bridge.types import Analysis
from finetune.data import (
    ConvertOptions,
    convert,
    keyword_labels,
    load_records,
    main,
    meta_path,
    parse_decisions,
)

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = load_schema("fx_macro")


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _level(record: dict) -> int:
    return parse_output(record["output"], SCHEMA).analysis.sentiment


def test_tfns_converts_every_row_with_documented_mapping(shared_data, tmp_path):
    src = shared_data / "sentiment/sent_train.csv"
    out = tmp_path / "tfns.jsonl"
    stats = convert(src, out, ConvertOptions("tfns"), progress=False)
    assert stats.rows == 9543
    assert stats.written + sum(stats.skipped.values()) == stats.rows
    # Only tweets that are nothing but a link are skipped.
    assert set(stats.skipped) <= {"no text (or only a URL)"}
    records = load_records(out, "fx_macro")
    assert len(records) == stats.written
    # 0 = Bearish -> moderately negative, 1 = Bullish -> moderately positive, 2 = Neutral -> neutral.
    with src.open(newline="", encoding="utf-8") as f:
        source = Counter(r["label"] for r in csv.DictReader(f))
    assert source == {"0": 1442, "1": 1923, "2": 6178}
    levels = Counter(_level(r) for r in records)
    assert set(levels) == {-2, 0, 2}
    assert levels[-2] <= 1442 and levels[2] <= 1923 and levels[0] <= 6178
    assert sum(levels.values()) >= 9543 - stats.skipped["no text (or only a URL)"]
    first = records[0]
    assert first["input"] == "$BYND - JPMorgan reels in expectations on Beyond Meat"
    assert first["output"].endswith("sentiment: moderately negative, related: BYND")
    meta = json.loads(meta_path(out).read_text())
    assert meta["options"]["three_class_level"] == 2 and meta["counts"]["written"] == stats.written
    assert "pandas" in meta["versions"] and len(meta["input_sha256"]) == 64


def test_three_class_level_is_configurable(shared_data, tmp_path):
    out = tmp_path / "tfns.jsonl"
    convert(
        shared_data / "sentiment/sent_train.csv",
        out,
        ConvertOptions("tfns", three_class_level=1),
        progress=False,
    )
    assert {_level(r) for r in load_records(out)} == {-1, 0, 1}


def test_sentfin_converts_and_reports_conflicting_rows(shared_data, tmp_path):
    out = tmp_path / "sentfin.jsonl"
    stats = convert(shared_data / "sentiment/SEntFiN.csv", out, ConvertOptions("sentfin"), progress=False)
    assert stats.rows == 10753
    assert stats.written + sum(stats.skipped.values()) == stats.rows
    assert set(stats.skipped) == {"entities with opposite sentiments"}
    records = load_records(out)
    assert records[0]["input"] == "SpiceJet to issue 6.4 crore warrants to promoters"
    assert (
        records[0]["output"]
        == "event: corporate, market: global, sector: equities, sentiment: neutral, related: SPICEJET"
    )


def test_fiqa_converts_scores_by_the_neutral_band_and_reports_bad_posts(shared_data, tmp_path):
    out = tmp_path / "fiqa.jsonl"
    stats = convert(
        shared_data / "sentiment/task1_post_ABSA_train.json", out, ConvertOptions("fiqa"), progress=False
    )
    assert stats.rows == stats.written == 675 and not stats.skipped
    records = load_records(out)
    assert records[0]["input"].startswith("Slowly adding some $FIO here")  # score 0.459
    assert records[0]["output"].endswith("sentiment: moderately positive, related: FIO")
    assert records[2]["output"].endswith("sentiment: moderately negative, related: AMZN")  # score -0.506
    hostile = {
        "a": {"sentence": "Stocks flat", "info": [{"sentiment_score": "0.05", "target": "SPY"}]},
        "b": {"sentence": "Mixed", "info": [{"sentiment_score": "0.5"}, {"sentiment_score": "-0.5"}]},
        "c": {"sentence": "No score", "info": [{"sentiment_score": "high"}, {"sentiment_score": "7"}]},
        "d": {"info": []},
        "e": ["not", "a", "post"],
    }
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(hostile))
    stats = convert(bad, tmp_path / "bad.jsonl", ConvertOptions("fiqa"), progress=False)
    assert (
        stats.written == 1 and _level(load_records(tmp_path / "bad.jsonl")[0]) == 0
    )  # |0.05| <= 0.1: neutral
    assert stats.skipped == {
        "targets with opposite sentiments": 1,
        "no sentiment_score in [-1, 1]": 1,
        "no 'sentence' text": 2,
    }
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="JSON object of posts"):
        convert(tmp_path / "list.json", tmp_path / "x.jsonl", ConvertOptions("fiqa"), progress=False)
    (tmp_path / "broken.json").write_text('{"a": ')
    with pytest.raises(DataError, match="not JSON"):
        convert(tmp_path / "broken.json", tmp_path / "x.jsonl", ConvertOptions("fiqa"), progress=False)


def test_sentfin_decisions_with_quotes_in_names():
    assert parse_decisions("{'Sebi': 'neutral', 'Osian's Art Fund': 'neutral'}") == {
        "Sebi": "neutral",
        "Osian's Art Fund": "neutral",
    }
    assert parse_decisions('{"Tata Motors": "positive", "M&M": "negative"}') == {
        "Tata Motors": "positive",
        "M&M": "negative",
    }
    assert parse_decisions("not a dict") is None


def test_calendar_labels_come_from_the_surprise_rule(shared_data, tmp_path):
    out = tmp_path / "cal.jsonl"
    stats = convert(
        shared_data / "calendar/forexfactory_2016.csv", out, ConvertOptions("calendar"), progress=False
    )
    assert stats.rows == 4474
    assert stats.written + sum(stats.skipped.values()) == stats.rows
    records = load_records(out)
    by_input = {r["input"].split("\n")[0]: r for r in records}
    nfp = by_input[
        "USD Non-Farm Employment Change: actual 255K, forecast 180K, previous 292K"
    ]  # 2016-08-05 beat
    assert nfp["input"].endswith("\nCurrency: USD")
    assert _level(nfp) > 0 and "market: US" in nfp["output"] and "related: USD" in nfp["output"]
    ue = [r for r in records if r["input"].startswith("USD Unemployment Rate:")]
    assert ue
    for r in ue:
        head = r["input"].split(": ", 1)[1]
        vals = dict(part.split(" ", 1) for part in head.split("\n")[0].split(", "))
        actual, forecast = float(vals["actual"].rstrip("%")), float(vals["forecast"].rstrip("%"))
        if actual > forecast:
            assert _level(r) < 0
        elif actual < forecast:
            assert _level(r) > 0
    # All seven levels are used: the scaled magnitude spreads surprises over the scale.
    assert {_level(r) for r in records} == set(range(-3, 4))


def test_calendar_rejects_a_headline_file(shared_data, tmp_path):
    with pytest.raises(UserError, match="headline file"):
        convert(
            shared_data / "headlines/@TopForexNewsCom_EURUSD.csv",
            tmp_path / "x.jsonl",
            ConvertOptions("calendar"),
            progress=False,
        )


def test_headlines_are_written_for_annotation_and_refused_until_labelled(shared_data, tmp_path):
    out = tmp_path / "h.jsonl"
    stats = convert(
        shared_data / "headlines/@TopForexNewsCom_EURUSD.csv",
        out,
        ConvertOptions("headlines"),
        progress=False,
    )
    assert stats.rows == stats.written == 994
    rows = _read_jsonl(out)
    assert all(r["output"] == "" and r["id"] and r["time"].endswith("+00:00") for r in rows)
    with pytest.raises(DataError, match="empty output; 994 bad records") as exc:
        load_records(out)
    assert exc.value.line == 1
    # Once labelled, the same file loads; the extra keys are kept.
    label = format_output(Analysis({"event": "market move", "market": "EU", "sector": "FX"}, 1, ("EURUSD",)))
    out.write_text("".join(json.dumps({**r, "output": label}) + "\n" for r in rows), encoding="utf-8")
    records = load_records(out)
    assert len(records) == 994 and records[0]["id"] == rows[0]["id"]


@pytest.mark.parametrize(
    "text",
    [
        "The company's operating profit rose to EUR 13.1 mn.@positive\nSales fell by 5 %.@negative\nNo change.@neutral\n",
        "sentence,label\nThe company's operating profit rose to EUR 13.1 mn.,positive\nSales fell by 5 %.,negative\n"
        "No change.,neutral\n",
        'positive,"The company\'s operating profit rose to EUR 13.1 mn."\nnegative,Sales fell by 5 %.\nneutral,No change.\n',
    ],
    ids=["at-lines", "csv-header", "csv-label-first"],
)
def test_phrasebank_formats(tmp_path, text):
    # Financial PhraseBank is not in the shared data (CC BY-NC-SA, not copied here); these lines follow its
    # published formats: 'sentence@label' (Latin-1 text files) and the sentence/label CSV copies.
    src = tmp_path / "pb.txt"
    src.write_bytes(text.encode("latin-1"))
    out = tmp_path / "pb.jsonl"
    stats = convert(src, out, ConvertOptions("phrasebank"), progress=False)
    assert (stats.rows, stats.written) == (3, 3)
    levels = [_level(r) for r in load_records(out)]
    assert levels == [2, -2, 0]


def test_phrasebank_bad_label_is_reported_with_line(tmp_path):
    src = tmp_path / "pb.txt"
    src.write_text("Profit rose.@positive\nSales fell.@terrible\n", encoding="utf-8")
    stats = convert(src, tmp_path / "pb.jsonl", ConvertOptions("phrasebank"), progress=False)
    assert stats.written == 1
    ((reason, n),) = stats.skipped.items()
    assert n == 1 and stats.examples[reason] == [2]


def test_tfns_bad_label_and_missing_column(tmp_path):
    src = tmp_path / "t.csv"
    src.write_text('text,label\n"$AAPL up big",1\n"$MSFT flat",7\n', encoding="utf-8")
    stats = convert(src, tmp_path / "t.jsonl", ConvertOptions("tfns"), progress=False)
    assert stats.written == 1 and sum(stats.skipped.values()) == 1
    src.write_text("tweet,score\nx,1\n", encoding="utf-8")
    with pytest.raises(DataError, match="missing the label column") as exc:
        convert(src, tmp_path / "t.jsonl", ConvertOptions("tfns"), progress=False)
    assert exc.value.line == 1


def test_keyword_labels_for_non_fx_text():
    assert keyword_labels("$AAPL beats on iPhone sales", "US", SCHEMA) == {
        "event": "corporate",
        "market": "US",
        "sector": "equities",
    }
    assert keyword_labels("ECB raises rates by 25 basis points", "US", SCHEMA) == {
        "event": "central bank decision",
        "market": "EU",
        "sector": "rates",
    }
    assert keyword_labels("Oil jumps as OPEC agrees cut", "global", SCHEMA)["sector"] == "energy"
    # Another schema keeps its own defaults for fields it does not share.
    cn = load_schema("cn_ashare")
    assert keyword_labels("Profit rose", "global", cn) == cn.defaults()


def test_bad_options():
    with pytest.raises(UserError):
        ConvertOptions("csv")
    with pytest.raises(UserError):
        ConvertOptions("tfns", three_class_level=4)


# ---------------------------------------------------------------------------------------------------------------------
# load_records


GOOD = {
    "instruction": SCHEMA.instruction,
    "input": "Fed hikes",
    "output": format_output(
        Analysis({"event": "central bank decision", "market": "US", "sector": "rates"}, 2, ("USD",))
    ),
}


def _jsonl(tmp_path: Path, lines: list[str]) -> Path:
    p = tmp_path / "r.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_load_records_good_file(tmp_path):
    p = _jsonl(tmp_path, [json.dumps(GOOD)] * 3)
    assert load_records(p, SCHEMA) == [GOOD] * 3


def test_load_records_json_array(tmp_path):
    p = tmp_path / "r.json"
    p.write_text(json.dumps([GOOD, GOOD], indent=2), encoding="utf-8")
    assert len(load_records(p)) == 2
    p.write_text(json.dumps([GOOD, {**GOOD, "output": ""}], indent=2), encoding="utf-8")
    with pytest.raises(DataError, match="empty output") as exc:
        load_records(p)
    assert exc.value.line == 7  # where the second record starts


@pytest.mark.parametrize(
    "bad, message",
    [
        ("{not json", "invalid JSON on line 2"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "output"}), "missing field 'output'"),
        (json.dumps({**GOOD, "output": "  "}), "empty output"),
        (json.dumps({**GOOD, "input": ""}), "empty input"),
        (json.dumps({**GOOD, "input": 5}), "field 'input' must be a string"),
        (json.dumps(["a", "b"]), "must be a JSON object"),
        (
            json.dumps({**GOOD, "output": GOOD["output"].replace("rates, sentiment", "bonds, sentiment")}),
            "label not in the fx_macro schema: sector: unknown value 'bonds'",
        ),
        (
            json.dumps({**GOOD, "output": GOOD["output"].replace("moderately", "hugely")}),
            "sentiment: unknown value",
        ),
    ],
)
def test_load_records_errors_name_line_and_field(tmp_path, bad, message):
    p = _jsonl(tmp_path, [json.dumps(GOOD), bad, json.dumps(GOOD)])
    with pytest.raises(DataError, match=message) as exc:
        load_records(p, "fx_macro")
    assert exc.value.line == 2 and exc.value.path == p


def test_load_records_empty_and_missing(tmp_path):
    p = tmp_path / "e.jsonl"
    p.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="empty"):
        load_records(p)
    with pytest.raises(UserError, match="does not exist"):
        load_records(tmp_path / "nope.jsonl")


def test_load_records_checks_against_the_given_schema(tmp_path):
    p = _jsonl(tmp_path, [json.dumps(GOOD)])
    with pytest.raises(DataError, match="cn_ashare"):
        load_records(p, "cn_ashare")


def test_project_training_set_is_valid():
    # The hand-labelled set shipped with the project must pass the same checks.
    path = ROOT / "finetune/datasets/fx_macro_headlines.jsonl"
    if not path.is_file():
        pytest.skip("no bundled training set in this checkout")
    assert len(load_records(path)) > 100


# ---------------------------------------------------------------------------------------------------------------------
# CLI


def test_cli_convert_and_check(shared_data, tmp_path, capsys):
    out = tmp_path / "cal.jsonl"
    src = shared_data / "calendar/dailyfx_2013.csv"
    assert main(["convert", "--format", "calendar", "--no-progress", str(src), str(out)]) == 0
    text = capsys.readouterr().out
    assert "rows read: 77" in text and "records written:" in text
    assert main(["check", str(out)]) == 0
    assert "all valid for the fx_macro schema" in capsys.readouterr().out


def test_cli_error_is_one_line(tmp_path):
    p = _jsonl(tmp_path, [json.dumps(GOOD), "{oops"])
    proc = subprocess.run(
        [sys.executable, "-m", "finetune.data", "check", str(p)], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr and ":2: invalid JSON on line 2" in proc.stderr


# ---- split and LLaMA-Factory dataset_info.json ------------------------------------------------------------------------


def _records_with_levels(levels: list[int]) -> list[str]:
    lines = []
    for i, lv in enumerate(levels):
        a = Analysis({"event": "other", "market": "US", "sector": "FX"}, lv)
        lines.append(
            json.dumps(
                {
                    "instruction": SCHEMA.instruction,
                    "input": f"headline {i}",
                    "output": format_output(a, SCHEMA),
                }
            )
        )
    return lines


def test_split_is_deterministic_stratified_and_recorded(tmp_path):
    from finetune.data import split

    levels = [0] * 600 + [2] * 250 + [-2] * 150  # 60% neutral, like TFNS
    src = tmp_path / "all.jsonl"
    src.write_text("\n".join(_records_with_levels(levels)) + "\n")
    meta = split([src], tmp_path / "a", dev=0.1, test=0.2, seed=5)
    split([src], tmp_path / "b", dev=0.1, test=0.2, seed=5)
    split([src], tmp_path / "c", dev=0.1, test=0.2, seed=6)
    parts = {name: _read_jsonl(tmp_path / "a" / f"{name}.jsonl") for name in ("train", "dev", "test")}
    for name in parts:  # same seed: byte-identical files; another seed: another split
        a, b = tmp_path / "a" / f"{name}.jsonl", tmp_path / "b" / f"{name}.jsonl"
        assert a.read_bytes() == b.read_bytes()
    assert (tmp_path / "a/test.jsonl").read_bytes() != (tmp_path / "c/test.jsonl").read_bytes()
    inputs = [r["input"] for p in parts.values() for r in p]
    # a partition: nothing lost or repeated
    assert sorted(inputs) == sorted(f"headline {i}" for i in range(1000))
    # stratified: each part has the classes in the source's proportions, exactly up to rounding
    for name, frac in (("test", 0.2), ("dev", 0.1)):
        c = Counter(_level(r) for r in parts[name])
        assert c == {0: round(600 * frac), 2: round(250 * frac), -2: round(150 * frac)}
    assert meta["counts"] == {"train": 700, "dev": 100, "test": 200} and meta["seed"] == 5
    recorded = json.loads(meta_path(tmp_path / "a/test.jsonl").read_text())
    assert recorded["stratified_by"] == "sentiment3" and recorded["split"] == "test"
    assert recorded["inputs"][0]["records"] == 1000 and len(recorded["inputs"][0]["sha256"]) == 64
    info = json.loads((tmp_path / "a/dataset_info.json").read_text())
    assert set(info) == {"train", "dev", "test"} and info["dev"]["file_name"] == "dev.jsonl"


def test_split_of_two_sources_keeps_each_sources_share(tmp_path):
    from finetune.data import split

    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("\n".join(_records_with_levels([0] * 100)) + "\n")
    b.write_text("\n".join(_records_with_levels([1] * 40)).replace("headline", "other") + "\n")
    meta = split([a, b], tmp_path / "out", dev=0.25, test=0.25, seed=0, prefix="mix.")
    test = _read_jsonl(tmp_path / "out/mix.test.jsonl")
    assert sum(r["input"].startswith("other") for r in test) == 10 and len(test) == 35
    assert meta["counts_by_stratum"]["b.jsonl:positive"] == {"test": 10, "dev": 10, "train": 20}


def test_split_cli_and_bad_fractions(tmp_path, capsys):
    src = tmp_path / "all.jsonl"
    src.write_text("\n".join(_records_with_levels([0, 1, -1] * 10)) + "\n")
    assert main(["split", str(src), "--out", str(tmp_path / "s"), "--test", "0.2", "--seed", "1"]) == 0
    assert "test: 6" in capsys.readouterr().out
    with pytest.raises(UserError, match="fractions"):
        main(["split", str(src), "--out", str(tmp_path / "s"), "--dev", "0.6", "--test", "0.5"])


def test_convert_writes_llamafactory_dataset_info(shared_data, tmp_path):
    out = tmp_path / "tfns.jsonl"
    convert(shared_data / "sentiment/sent_train.csv", out, ConvertOptions(format="tfns"), progress=False)
    (tmp_path / "dataset_info.json").write_text(
        json.dumps(
            {**json.loads((tmp_path / "dataset_info.json").read_text()), "mine": {"file_name": "x.json"}}
        )
    )
    convert(shared_data / "sentiment/sent_train.csv", out, ConvertOptions(format="tfns"), progress=False)
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert info["mine"] == {"file_name": "x.json"}  # other entries are kept
    assert info["tfns"]["file_name"] == "tfns.jsonl" and info["tfns"]["formatting"] == "alpaca"
    assert info["tfns"]["columns"] == {"prompt": "instruction", "query": "input", "response": "output"}
    first = _read_jsonl(out)[0]
    assert set(info["tfns"]["columns"].values()) <= set(first)
