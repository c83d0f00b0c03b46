"""Export: merged weights equal the unmerged model, the ONNX step graph matches torch within tolerance, and the
analyzer uses the export only while it belongs to the same weights. Real ONNX Runtime on tiny config-built models.
"""

from __future__ import annotations

import json
import time

import pytest
import torch

from bridge.errors import ModelError
from bridge.lm.analyzer import LMAnalyzer
from bridge.lm.loading import load_model
from finetune.export import FP32_TOLERANCE, export
from finetune.tiny import ODD_TEXTS, make_tiny_base, make_tiny_model_dir

# every method once, both block styles, adapters (forward hooks) traced on both
CASES = [("lora", "llama"), ("adapter", "llama"), ("full", "gpt2"), ("adapter", "gpt2")]


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    return {arch: str(make_tiny_base(root / arch, arch)) for arch in ("gpt2", "llama")}


@pytest.mark.parametrize("method,arch", CASES)
def test_export_parity_merged_weights_and_backend_choice(method, arch, bases, tmp_path):
    run = tmp_path / "run"
    make_tiny_model_dir(bases[arch], run / "model", method=method)
    report = export(run, onnx=True, int8=method == "lora" and arch == "llama", timing_items=2)
    assert report["fp32"]["passed"] and report["fp32"]["max_abs_diff"] <= FP32_TOLERANCE
    assert report["analyzer_same_answers"] == 1.0
    parity = json.loads((run / "model/onnx/parity.json").read_text())
    assert parity["prefill_ms"]["torch"] > 0 and parity["prefill_ms"]["onnx"] > 0
    if "int8" in report:
        assert (run / "model/onnx/model.int8.onnx").is_file() and report["int8"]["max_abs_diff"] > 0
        # weight-only: the weights of every matrix product are int8 blocks, the activations are not quantized
        import onnx

        ops = {n.op_type for n in onnx.load(str(run / "model/onnx/model.int8.onnx")).graph.node}
        assert "MatMulNBits" in ops and "DynamicQuantizeLinear" not in ops
    # merged weights give the unmerged model's logits
    unmerged, tok, _ = load_model(run)
    ids = torch.tensor([tok("### Response:\nevent: central bank decision")["input_ids"]])
    if method == "full":
        assert report["merged"] is None
    else:
        merged, _, info = load_model(run / "merged")
        assert info.merged
        with torch.no_grad():
            assert torch.allclose(unmerged(ids).logits, merged(ids).logits, atol=1e-5)
    # auto picks ONNX now, and both backends read the same
    auto = LMAnalyzer(run, backend="auto", batch_size=4)
    ref = LMAnalyzer(run, backend="torch", batch_size=4)
    assert auto.backend == "onnx" and auto.name.endswith(":onnx") and ref.name.endswith(":torch")
    a, b = auto.analyze_texts(ODD_TEXTS[:5]), ref.analyze_texts(ODD_TEXTS[:5])
    assert [(x.labels, x.sentiment, x.related) for x in a] == [(x.labels, x.sentiment, x.related) for x in b]
    assert all(not x.fallback for x in a)


def test_export_of_other_weights_is_not_used(bases, tmp_path, monkeypatch):
    monkeypatch.setenv("EA_BRIDGE_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    make_tiny_model_dir(bases["llama"], run / "model", method="adapter")
    export(run, onnx=True, timing_items=1)
    make_tiny_model_dir(bases["llama"], run / "model", method="adapter", seed=7)  # retrained after the export
    an = LMAnalyzer(run, backend="auto")
    assert (
        an._onnx_path is None and an._build_onnx
    )  # the stale export is ignored; a fresh one comes on first use


def test_failed_parity_is_never_used(bases, tmp_path, monkeypatch):
    monkeypatch.setenv("EA_BRIDGE_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    make_tiny_model_dir(bases["gpt2"], run / "model", method="lora")
    export(run, onnx=True, timing_items=1)
    parity_path = run / "model/onnx/parity.json"
    parity = json.loads(parity_path.read_text())
    parity["fp32"]["passed"] = False
    parity_path.write_text(json.dumps(parity))
    assert LMAnalyzer(run, backend="auto")._onnx_path is None
    with pytest.raises(ModelError, match="no ONNX export"):
        LMAnalyzer(run, backend="onnx")


def test_auto_builds_the_export_on_first_use_and_reuses_it(bases, tmp_path, monkeypatch):
    """No export step: the first analysis exports the step graph into the cache, checks parity and answers through
    ONNX Runtime as torch does; a second analyzer finds the export and loads no torch weights at all."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("EA_BRIDGE_CACHE", str(cache))
    run = tmp_path / "run"
    make_tiny_model_dir(bases["llama"], run / "model", method="lora")
    auto = LMAnalyzer(run, backend="auto", batch_size=4)
    assert auto.backend == "onnx" and auto.name.endswith(":onnx") and not auto.loaded
    got = auto.analyze_texts(ODD_TEXTS[:5])
    (record,) = [json.loads(p.read_text()) for p in cache.glob("onnx/*/parity.json")]
    assert record["fp32"]["passed"] and record["built"] == "on first use"
    assert type(auto.runner).__name__ == "_OnnxRunner"
    want = LMAnalyzer(run, backend="torch", batch_size=4).analyze_texts(ODD_TEXTS[:5])
    assert [(x.labels, x.sentiment, x.related) for x in got] == [
        (x.labels, x.sentiment, x.related) for x in want
    ]
    again = LMAnalyzer(run, backend="auto")
    assert again._onnx_path is not None and not again._build_onnx
    again.analyze_texts(ODD_TEXTS[:1])
    assert type(again.runner).__name__ == "_OnnxRunner"


def test_the_first_use_cache_keeps_the_most_recently_used_exports(bases, tmp_path, monkeypatch):
    """Each set of weights adds an export (hundreds of MB for a real base): beyond the bound the least recently used
    one goes, and using an export counts as a use."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("EA_BRIDGE_CACHE", str(cache))
    monkeypatch.setattr("bridge.lm.onnx.MAX_CACHED_EXPORTS", 2)
    folders = []
    for seed in range(3):
        run = make_tiny_model_dir(bases["llama"], tmp_path / f"run{seed}", method="lora", seed=seed)
        an = LMAnalyzer(run, backend="auto")
        an.analyze_texts(ODD_TEXTS[:1])
        folders.append(an._onnx_path.parent)
        if seed == 1:
            time.sleep(0.05)  # distinct mtimes
            # run0's export used again: run1's is now the oldest
            LMAnalyzer(tmp_path / "run0", backend="auto")
            time.sleep(0.05)
    assert [f.is_dir() for f in folders] == [True, False, True]
    assert len(list(cache.glob("onnx/*/model.onnx"))) == 2


def test_a_first_use_build_that_fails_on_a_full_disk_leaves_torch_and_no_half_export(
    bases, tmp_path, monkeypatch, caplog
):
    import errno

    cache = tmp_path / "cache"
    monkeypatch.setenv("EA_BRIDGE_CACHE", str(cache))

    def full_disk(model, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half an export")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("bridge.lm.onnx.export_onnx", full_disk)
    run = make_tiny_model_dir(bases["llama"], tmp_path / "run", method="lora")
    an = LMAnalyzer(run, backend="auto")
    with caplog.at_level("WARNING"):
        got = an.analyze_texts(ODD_TEXTS[:3])
    assert an.backend == "torch" and an.name.endswith(":torch") and not any(a.fallback for a in got)
    assert "could not be built (OSError" in caplog.text and "No space left" in caplog.text
    assert "the next start tries again" in caplog.text
    # the half export went with the failure, and nothing is recorded: the disk may have room at the next start
    assert list(cache.glob("onnx/*")) == []
    again = LMAnalyzer(run, backend="auto")
    assert again.backend == "onnx" and again._build_onnx  # the build is planned again
    want = LMAnalyzer(run, backend="torch").analyze_texts(ODD_TEXTS[:3])
    assert [(a.labels, a.sentiment) for a in got] == [(a.labels, a.sentiment) for a in want]


def test_pruning_removes_stale_temporary_folders_and_leaves_a_build_in_progress(tmp_path, monkeypatch):
    import os

    from bridge.lm.onnx import prune_cached_exports

    monkeypatch.setenv("EA_BRIDGE_CACHE", str(tmp_path))
    root = tmp_path / "onnx"
    stale, fresh = root / "aaa-graph2.part11", root / "bbb-graph2.part12"
    for d in (stale, fresh):
        d.mkdir(parents=True)
        (d / "model.onnx").write_bytes(b"x")
    os.utime(stale, (1, 1))  # killed long ago
    assert prune_cached_exports(keep=root / "ccc-graph2") == [stale]
    assert fresh.is_dir()  # a build in progress is left alone


def test_an_export_that_fails_parity_on_first_use_leaves_torch(bases, tmp_path, monkeypatch):
    monkeypatch.setenv("EA_BRIDGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("bridge.lm.onnx.FP32_TOLERANCE", -1.0)  # no export can pass
    run = tmp_path / "run"
    make_tiny_model_dir(bases["gpt2"], run / "model", method="lora")
    auto = LMAnalyzer(run, backend="auto")
    out = auto.analyze_texts(ODD_TEXTS[:2])
    assert auto.backend == "torch" and auto.name.endswith(":torch") and not any(a.fallback for a in out)
    assert not list((tmp_path / "cache").glob("onnx/*/model.onnx"))  # only the failed record is kept
    assert LMAnalyzer(run, backend="auto").backend == "torch"  # and it is not built again


@pytest.mark.parametrize("failure", ["parity", "raises", "raises unrecorded"])
def test_analyses_are_cached_under_the_backend_that_answered(failure, bases, tmp_path, monkeypatch):
    """A first use whose ONNX build fails answers with torch, and its analyses are kept under the torch name. The
    next run finds them all without loading the weights: torch from the start where the failure is recorded, or,
    where its record could not be written (a full or read-only cache), the build planned again and the cache looked
    up under the torch name too."""
    import pandas as pd

    from backtest.cache import AnalysisCache
    from bridge.analysis import NewsAnalyzer
    from bridge.types import NewsItem

    monkeypatch.setenv("EA_BRIDGE_CACHE", str(tmp_path / "cache"))
    if failure == "parity":
        monkeypatch.setattr("bridge.lm.onnx.FP32_TOLERANCE", -1.0)  # no export can pass
    else:

        def untraceable(model, path):
            raise RuntimeError("this graph cannot be traced")

        monkeypatch.setattr("bridge.lm.onnx.export_onnx", untraceable)
    if failure == "raises unrecorded":
        # injected: root writes anywhere, so a read-only cache cannot be made here
        monkeypatch.setattr("bridge.lm.onnx.record_build_error", lambda *args: None)
    run = tmp_path / "run"
    make_tiny_model_dir(bases["gpt2"], run / "model", method="lora")
    t = pd.Timestamp("2016-05-06 12:30", tz="UTC")
    items = [NewsItem(time=t, headline=text, source="wire") for text in ODD_TEXTS[:2]]
    with AnalysisCache(tmp_path / "analyses") as cache:
        first = NewsAnalyzer(LMAnalyzer(run, backend="auto"), None, cache=cache)
        assert first.name.endswith(":onnx")  # the build is planned
        answers = first.analyze(items)
        assert first.name.endswith(":torch") and first.computed == 2
        lm = LMAnalyzer(run, backend="auto")
        again = NewsAnalyzer(lm, None, cache=cache)
        assert again.name.endswith(":onnx" if failure == "raises unrecorded" else ":torch")
        assert again.analyze(items) == answers and again.computed == 0 and not lm.loaded
