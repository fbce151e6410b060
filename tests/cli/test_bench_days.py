"""`beacon bench pipeline --days`: the parts that do not need a world (the floor, the process-tree memory, the
per-stage summary)."""

from __future__ import annotations

import subprocess
import sys
import time

from beacon.bench.pipeline_days import STAGES, PeakMemory, _merge_stages, floor_seconds


def test_the_floor_reads_every_landing_file_of_the_day_once(tmp_path):
    (tmp_path / "a.csv").write_text("id,name\n1,x\n2,y\n3,z\n")
    (tmp_path / "b.jsonl").write_text('{"k": 1}\n{"k": 2}\n')
    (tmp_path / "notes.txt").write_text("not a source")
    import pandas as pd

    pd.DataFrame({"v": range(5)}).to_parquet(tmp_path / "c.parquet")
    floor = floor_seconds(tmp_path)
    assert floor["rows"] == 3 + 2 + 5
    assert floor["seconds"] >= 0


def test_peak_memory_counts_the_children():
    # A child holding ~200 MB: the peak of the tree must include it, not just this process.
    code = "b = bytearray(200 * 2**20); import time; time.sleep(1.5)"
    with PeakMemory(interval=0.05) as mem:
        alone = mem.reset()
        child = subprocess.Popen([sys.executable, "-c", code])
        time.sleep(1.0)
        child.wait()
        peak = mem.reset()
    assert peak - alone > 150 * 2**20


def test_stages_are_one_entry_each_in_pipeline_order():
    merged = _merge_stages([{"stage": "scoring", "seconds": 1.0, "rows": 10},
                            {"stage": "ingest", "seconds": 2.0, "rows": 5},
                            {"stage": "scoring", "seconds": 0.5, "rows": 2}])
    assert merged == [{"stage": "ingest", "seconds": 2.0, "rows": 5},
                      {"stage": "scoring", "seconds": 1.5, "rows": 12}]
    assert [m["stage"] for m in merged] == [s for s in STAGES if s in ("ingest", "scoring")]


def test_merged_stages_sum_every_figure_and_keep_an_unmeasured_one_unmeasured():
    # Scoring and its segments are one stage: CPU seconds and rescored rows add up; identity's CPU is not
    # measured apart (it runs inside dbt's process), and a sum with an unmeasured part is unmeasured.
    merged = _merge_stages([{"stage": "scoring", "seconds": 1.0, "cpu_seconds": 0.5, "rows": 10, "rescored": 4},
                            {"stage": "identity", "seconds": 3.0, "cpu_seconds": None, "rows": 7},
                            {"stage": "scoring", "seconds": 0.5, "cpu_seconds": 0.25, "rows": 2}])
    assert merged == [{"stage": "identity", "seconds": 3.0, "cpu_seconds": None, "rows": 7},
                      {"stage": "scoring", "seconds": 1.5, "cpu_seconds": 0.75, "rows": 12, "rescored": 4}]


def test_a_stage_peak_is_its_own_and_the_day_peak_keeps_every_stage():
    # Two stages, the first holding ~200 MB in a child: its mark is high, the second's is not, and the day's
    # peak (reset) still holds the first stage's.
    code = "b = bytearray(200 * 2**20); import time; time.sleep(1.5)"
    with PeakMemory(interval=0.05) as mem:
        base = mem.reset()
        mem.mark()
        child = subprocess.Popen([sys.executable, "-c", code])
        time.sleep(1.0)
        child.wait()
        first = mem.mark()
        time.sleep(0.3)
        second = mem.mark()
        day = mem.reset()
    assert first - base > 150 * 2**20
    assert second < first - 150 * 2**20
    assert day >= first


def test_merged_stages_keep_the_larger_peak_memory():
    merged = _merge_stages([{"stage": "scoring", "seconds": 1.0, "rows": 10, "peak_memory_mb": 900.0},
                            {"stage": "scoring", "seconds": 0.5, "rows": 2, "peak_memory_mb": 400.0}])
    assert merged == [{"stage": "scoring", "seconds": 1.5, "rows": 12, "peak_memory_mb": 900.0}]
