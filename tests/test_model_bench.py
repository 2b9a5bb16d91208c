"""``rpnt bench attention`` runs end to end on a tiny size and prints its ratios."""

from __future__ import annotations

import json

import pytest
import torch

from rpnt.bench.attention import peak_rss_increase
from rpnt.cli import main
from rpnt.machine import cpu_model, reset_peak_rss

torch.set_num_threads(1)


def test_bench_attention_cli(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["bench", "attention", "--batch", "2", "--heads", "2", "--d-model", "16",
               "--lengths", "6", "9", "--repeats", "2", "--threads", "1",
               "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "context / sdpa:" in text and "context / conv2d:" in text
    assert cpu_model() in text  # the CPU the figures were measured on
    data = json.loads(out.read_text())
    assert data["machine"].startswith(cpu_model())
    assert sorted({(r["T"], r["threads"]) for r in data["ratios"]}) == [(6, 1), (9, 1)]
    variants = {r["variant"] for r in data["rows"]}
    assert variants == {"sdpa", "context", "conv2d", "k1", "layer_standard", "layer_context"}
    assert all(r["time_min_ms"] > 0 and r["clock"] == "cpu" for r in data["rows"])
    assert all(r["peak_rss_mb"] is None or r["peak_rss_mb"] >= 0 for r in data["rows"])
    assert "provenance" in data


@pytest.mark.skipif(not reset_peak_rss(), reason="the OS cannot reset the peak-RSS mark")
def test_peak_rss_counts_live_allocations():
    # 40 MiB blocks: above glibc's largest mmap threshold, so each is mapped when
    # allocated and unmapped when freed (smaller ones may land in heap holes that stay
    # resident after a free, which the OS rightly counts).
    def two_live():
        a = torch.ones(10 << 20)  # touched, so resident
        b = torch.ones(10 << 20)
        del a, b

    def one_at_a_time():
        for _ in range(2):
            a = torch.ones(10 << 20)
            del a

    assert peak_rss_increase(two_live) >= 78 << 20
    assert peak_rss_increase(one_at_a_time) < 60 << 20


def test_bench_units_cli(tmp_path, capsys):
    out = tmp_path / "units.json"
    rc = main(["bench", "units", "--units", "64", "--sizes", "tiny", "--batch", "2",
               "--window", "8", "--repeats", "1", "--json", str(out)])
    assert rc == 0
    assert cpu_model() in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert [(r["size"], r["objective"]) for r in data["rows"]] == [("tiny", "finetune"),
                                                                  ("tiny", "pretrain")]
    for r in data["rows"]:
        assert set(r["cpu_ms_min"]) == {"50", "64"} and r["time_ratio"] > 0


def test_bench_train_cli(tmp_path, capsys):
    out = tmp_path / "train.json"
    rc = main(["bench", "train", "--sizes", "tiny", "--batch", "2", "--window", "8",
               "--units", "8", "--repeats", "1", "--json", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert cpu_model() in printed and "rpnt / standard" in printed
    (row,) = json.loads(out.read_text())["rows"]
    assert set(row["cpu_ms_min"]) == {"rpnt", "standard", "rpnt -ctx", "rpnt -rope",
                                      "rpnt -drop"}
    assert row["rpnt_over_standard"] > 0


def test_standard_transformer_is_causal():
    import torch

    from rpnt.bench.train import StandardTransformer
    from rpnt.model.config import RPNTConfig
    from rpnt.model.rpnt import RPNT

    cfg = RPNTConfig.preset("tiny", n_units=6, window=10)
    ref = StandardTransformer(cfg, RPNT(cfg)).eval()
    x = torch.rand(1, 1, 10, 6)
    y = x.clone()
    y[:, :, 7:] += 1.0  # change the future from bin 7 on
    with torch.no_grad():
        a, b = ref(x), ref(y)
    assert torch.allclose(a[:, :7], b[:, :7], atol=1e-6)
    assert not torch.allclose(a[:, 7:], b[:, 7:])
