"""``avvp-bench metrics``: figures are written, and both timed paths compute the same numbers."""

from __future__ import annotations

import json

from avvp_lit.bench.metrics import random_case
from avvp_lit.cli.bench import main as bench_main
from avvp_lit.metrics import evaluate


def test_bench_writes_figures(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench_main(["metrics", "--videos", "60", "--repeats", "2", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["videos"] == 60 and figures["paths_agree"] is True
    assert 0 < figures["metric_seconds"] < 60 and 0 < figures["functional_seconds"] < 60
    assert "functional_seconds" in capsys.readouterr().out


def test_random_case_is_seeded_and_shaped():
    a, b = random_case(30, seed=4), random_case(30, seed=4)
    assert all(a[key].equal(b[key]) for key in a)
    assert a["frame_prob"].shape == (30, 10, 2, 25) and a["gt_audio"].shape == (30, 10, 25)
    scores = evaluate(
        a["global_prob"],
        a["a_prob"],
        a["v_prob"],
        a["frame_prob"],
        a["gt_audio"].transpose(1, 2),
        a["gt_visual"].transpose(1, 2),
    )
    assert 0 < scores["seg_a"] < 100  # a non-degenerate case: some hits, some misses
