"""The journal on an unlucky disk: full (a file-size limit in a child process), unusable paths, records of the wrong
type, revisions. Every acknowledged item must survive; every bad path is one line naming it, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from bridge.errors import DataError, UserError
from bridge.types import Analysis, NewsItem
from bridge.wire.journal import Journal

ROOT = Path(__file__).resolve().parents[1]

FULL_DISK_CHILD = textwrap.dedent(
    """
    import json, resource, signal, sys, time
    sys.path[:0] = [sys.argv[2], sys.argv[3]]
    from doubles import start_server
    from bridge.wire.client import LazyPirateClient

    journal, limit = sys.argv[1], int(sys.argv[4])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit write() fails with EFBIG instead of killing us
    server = start_server(journal=journal, clock="server")
    out = {"acked": [], "codes": [], "ping_while_full": None, "signal_while_full": None, "after": None}
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    with LazyPirateClient(server.endpoints["bind"], timeout_ms=5000, retries=1) as c:
        for i in range(200):
            rep = c.news(f"ECB raises rates by {i} basis points " + "x" * 300, currency="EUR",
                         time=1_700_000_000 + i, utc_offset=0)
            if rep["type"] == "ack":
                out["acked"].append(rep["news_id"])
            else:
                out["codes"].append(rep["code"])
        out["ping_while_full"] = c.ping()["type"]
        out["signal_while_full"] = c.signal("EURUSD")["type"]
        out["stats_full"] = c.stats()["stats"]
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # space comes back
        rep = c.news("Fed holds rates after the disk came back", currency="USD", time=1_700_001_000, utc_offset=0)
        out["after"] = rep
        if rep["type"] == "ack":
            out["acked"].append(rep["news_id"])
        out["stats_after"] = c.stats()["stats"]
    server.stop()
    print(json.dumps(out))
    """
)


def test_full_disk_refuses_with_storage_keeps_serving_recovers_and_loses_no_acked_item(tmp_path):
    journal = tmp_path / "j.jsonl"
    script = tmp_path / "child.py"
    script.write_text(FULL_DISK_CHILD)
    limit = 16 * 1024  # about 30 records of this size
    proc = subprocess.run(
        [sys.executable, str(script), str(journal), str(ROOT), str(ROOT / "tests"), str(limit)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["acked"] and out["codes"], out  # some accepted, then refused
    assert set(out["codes"]) == {"storage"}
    assert out["ping_while_full"] == "pong" and out["signal_while_full"] == "target"
    # every refusal is counted; so are analyses of accepted items that reached the journal after it filled, which
    # depends on how far the analysis worker lagged behind the intake
    errors = out["stats_full"]["storage_errors"]
    assert len(out["codes"]) <= errors <= len(out["codes"]) + len(out["acked"]), (errors, out)
    assert not out["stats_full"]["storage_ok"]
    assert out["after"]["type"] == "ack", out["after"]  # recovered by itself
    assert out["stats_after"]["storage_ok"]
    # every acknowledged item is in the journal, whole, exactly once; no half record is left in the file
    data = journal.read_bytes()
    assert data.endswith(b"\n")
    contents = Journal(journal).load()
    assert not contents.truncated_tail
    ids = [it.id for it in contents.items]
    assert sorted(ids) == sorted(out["acked"]) and len(set(ids)) == len(ids)
    assert len(data) <= limit + 4096  # the refused ones were not written


def _item(headline="ECB raises rates", actual=None) -> NewsItem:
    return NewsItem(
        time=pd.Timestamp("2024-03-01 12:00", tz="UTC"),
        headline=headline,
        currency="EUR",
        event="ECB Rate" if actual is not None else None,
        actual=actual,
        forecast=4.0 if actual is not None else None,
    )


def _serve(journal: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "bridge.serve",
            "--model",
            "none",
            "--bind",
            "tcp://127.0.0.1:0",
            "--pull",
            "",
            "--journal",
            journal,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


@pytest.mark.parametrize(
    "case", ["mode000", "readonly_dir", "is_dir", "parent_is_file", "dev_full", "bad_type"]
)
def test_unusable_journal_is_one_line_with_its_exit_code(tmp_path, case):
    if case in ("mode000", "readonly_dir") and os.geteuid() == 0:
        pytest.skip("root reads and writes regardless of file modes")
    path = tmp_path / "j.jsonl"
    code = 2
    if case == "mode000":
        path.write_text("")
        path.chmod(0)
    elif case == "readonly_dir":
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        path = ro / "j.jsonl"
    elif case == "is_dir":
        path.mkdir()
    elif case == "parent_is_file":
        (tmp_path / "file").write_text("x")
        path = tmp_path / "file" / "j.jsonl"
    elif case == "dev_full":
        path = Path("/dev/full")
    elif case == "bad_type":
        good = json.dumps({"kind": "news", "item": _item().to_dict()})
        bad = json.dumps({"kind": "news", "item": {**_item("x").to_dict(), "headline": 123}})
        path.write_text(f"{good}\n{bad}\n{good}\n")
        code = 3
    proc = _serve(str(path), tmp_path)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and str(path) in last, last
    if case == "bad_type":
        assert f"{path}:2:" in last and "headline" in last


def test_revision_replaces_the_earlier_version_and_its_analysis_on_restart(tmp_path):
    j = Journal(tmp_path / "j.jsonl", fsync=False)
    first, revised = _item(actual=4.5), _item(actual=3.5)
    assert first.id == revised.id and first != revised
    j.append_news(first)
    j.append_analysis(first.id, Analysis({"event": "economic data"}, 2, analyzer="t"))
    j.append_news(revised)
    j.close()
    contents = Journal(tmp_path / "j.jsonl").load()
    assert contents.items == [revised]
    assert contents.analyses == {}  # the first version's analysis does not hold for the corrected figure


def test_a_cut_off_last_line_is_dropped_but_a_bad_middle_line_is_named(tmp_path):
    path = tmp_path / "j.jsonl"
    good = json.dumps({"kind": "news", "item": _item().to_dict()})
    path.write_text(good + "\n" + good[:40])
    assert Journal(path).load().truncated_tail
    path.write_text(good + "\n[1, 2]\n" + good + "\n")
    with pytest.raises(DataError, match=r"j\.jsonl:2: "):
        Journal(path).load()


def test_journal_path_that_is_a_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not a regular file"):
        Journal(tmp_path).load()


ANALYSIS = Analysis({"event": "central_bank", "market": "EU"}, 2, analyzer="t")


def test_compaction_keeps_what_it_is_given_and_the_writers_lock(tmp_path):
    pytest.importorskip("fcntl")
    path = tmp_path / "j.jsonl"
    j = Journal(path)
    items = [_item(f"ECB item {i}") for i in range(10)]
    for it in items:
        j.append_news(it)
        j.append_analysis(it.id, ANALYSIS)
    j.compact([items[3], items[7]], {items[3].id: ANALYSIS})
    later = _item("ECB item after compaction")
    j.append_news(later)  # appends go to the new file
    contents = Journal(path).load()
    assert contents.items == [items[3], items[7], later] and contents.analyses == {items[3].id: ANALYSIS}
    with pytest.raises(UserError, match="in use by another running server"):
        Journal(path).append_news(_item("a second writer"))
    assert not path.with_name("j.jsonl.compact").exists()
    j.close()


def test_a_failed_compaction_leaves_the_old_journal_whole_and_in_use(tmp_path):
    from bridge.wire.journal import StorageError

    path = tmp_path / "j.jsonl"
    j = Journal(path)
    items = [_item(f"ECB item {i}") for i in range(3)]
    for it in items:
        j.append_news(it)
    path.with_name("j.jsonl.compact").mkdir()  # the new file cannot be created
    with pytest.raises(StorageError, match="cannot compact"):
        j.compact(items[:1], {})
    j.append_news(later := _item("ECB item after the failure"))
    j.close()
    assert Journal(path).load().items == [*items, later]


def test_a_live_server_restarts_from_a_snapshot_of_the_news_it_still_holds(tmp_path, monkeypatch):
    """Old news is pruned at restore and the journal rewritten as what is left, so the next restart reads that."""
    from doubles import KeywordAnalyzer

    from bridge.wire import server as server_module

    monkeypatch.setattr(server_module, "COMPACT_MIN_BYTES", 1)
    path = tmp_path / "j.jsonl"
    j = Journal(path, fsync=False)
    now = pd.Timestamp.now(tz="UTC").floor("s")
    old = [NewsItem(time=now - pd.Timedelta(days=2, minutes=i), headline=f"ECB old {i}") for i in range(500)]
    recent = [NewsItem(time=now - pd.Timedelta(minutes=i), headline=f"ECB recent {i}") for i in range(5)]
    for it in old + recent:
        j.append_news(it)
        j.append_analysis(it.id, ANALYSIS)
    j.close()
    before = path.stat().st_size
    server = server_module.BridgeServer(KeywordAnalyzer(), bind="tcp://127.0.0.1:*", journal=path)
    assert server.restore() == 505
    assert set(server.state.items) == {it.id for it in recent}
    server.journal.close()
    contents = Journal(path).load()
    assert contents.items == recent and set(contents.analyses) == {it.id for it in recent}
    assert path.stat().st_size < before / 50
