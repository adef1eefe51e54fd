"""The benchmark's --small mode runs end to end, so the full-scale script cannot rot."""

import json

import pytest

from bench.run import main

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
"""Two minutes alone, 5.5 in the suite beside the other end-to-end tests (7 in a slow hour here): the
suite's 600 s is too close for the slow hours CI has seen; the script's own waits are bounded."""


def test_small_benchmark_produces_its_table(tmp_path):
    report = main(["--small", "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "results")])
    names = [f["figure"] for f in report["figures"]]
    assert names == [
        "floor: 4 training CSVs",
        "floor: 1 inference CSV",
        "cold full graph",
        "new batch: drop -> 3 assets (dagster dev)",
        "drifted labeled batch: drop -> challenger trained (dagster dev)",
        "drifted labeled batch: drop -> rescored by promoted model (dagster dev)",  # the retraining succeeded and promoted
    ]
    for figure in report["figures"]:
        assert figure["median_s"] > 0 and figure["peak_rss_gib"] > 0
    assert {"raw_training", "features", "model", "predictions", "business_value", "drift_report"} <= set(report["asset_step_seconds"])
    by_name = {f["figure"]: f for f in report["figures"]}
    floors = by_name["floor: 4 training CSVs"]["median_s"] + by_name["floor: 1 inference CSV"]["median_s"]
    assert by_name["cold full graph"]["ratio_to_floor"] == pytest.approx(by_name["cold full graph"]["median_s"] / floors)
    batch_floor = by_name["floor: 1 inference CSV"]["median_s"]
    new_batch = by_name["new batch: drop -> 3 assets (dagster dev)"]
    assert new_batch["ratio_to_floor"] == pytest.approx(new_batch["median_s"] / batch_floor)
    timeline = report["new_batch_timeline_s"]  # where the new batch's seconds went, in order
    assert list(timeline)[:3] == ["sensor: drop -> run requested", "run queue: requested -> launched", "run worker: process start, imports, code location loaded"]
    assert {"step predictions", "step business_value", "step drift_report"} <= set(timeline) and min(timeline.values()) >= 0
    assert new_batch["median_s"] - 3 < sum(timeline.values()) <= new_batch["median_s"]  # the figure adds only the polling
    retraining = report["retraining_timeline_s"]  # the drifted batch's path, run after run
    assert list(retraining)[0] == "scoring run: sensor: drop -> run requested"
    assert {"scoring run: step drift_report_html", "retraining run: sensor: previous run -> run requested", "retraining run: step model",
            "rescoring run: step predictions"} <= set(retraining) and min(retraining.values()) >= 0
    rescored = by_name["drifted labeled batch: drop -> rescored by promoted model (dagster dev)"]["median_s"]
    assert rescored - 3 < sum(retraining.values()) <= rescored
    for moment in ("before", "after"):  # the machine's speed at the time, to compare runs of different hours
        assert report["cpu_reference"][moment]["python_s"] > 0 and report["cpu_reference"][moment]["numpy_s"] > 0
    assert report["growth"][0]["rows_per_extract"] == 3_000 and report["growth"][0]["cold_graph_s_per_million_rows"] > 0
    [written] = (tmp_path / "results").glob("bench-small-*.json")
    assert json.loads(written.read_text())["figures"] == report["figures"]
