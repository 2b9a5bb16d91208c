"""``rpnt bench attention`` runs end to end on a tiny size and prints its ratios."""

from __future__ import annotations

import json

import torch

from rpnt.cli import main
from rpnt.model.bench import peak_memory_bytes

torch.set_num_threads(1)


def test_bench_attention_cli(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["bench", "attention", "--batch", "2", "--heads", "2", "--d-model", "16",
               "--lengths", "6", "9", "--repeats", "2", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "context / sdpa:" in text and "context / conv2d:" in text
    data = json.loads(out.read_text())
    assert [r["T"] for r in data["ratios"]] == [6, 9]
    variants = {r["variant"] for r in data["rows"]}
    assert variants == {"sdpa", "context", "conv2d", "layer_standard", "layer_context"}
    assert all(r["time_min_ms"] > 0 and r["peak_mb"] >= 0 for r in data["rows"])
    assert "provenance" in data


def test_peak_memory_counts_live_allocations():
    def two_live():
        a = torch.empty(1 << 20)  # 4 MiB
        b = torch.empty(1 << 20)
        del a, b

    def one_at_a_time():
        for _ in range(2):
            a = torch.empty(1 << 20)
            del a

    assert peak_memory_bytes(two_live) >= 8 << 20
    assert peak_memory_bytes(one_at_a_time) < 8 << 20
