"""`beacon bench growth` / `bench pipeline --days D --chart`: does a day's cost follow its new rows or the history."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from beacon.bench.growth import growth_rows, growth_summary, write_chart


def _run(seconds_of, days: int = 7, new: int = 100_000) -> dict:
    """A bench JSON whose day d costs seconds_of(history rows so far); day 1 trained and loads 5M rows."""
    per_day, history = [], 0
    for day in range(1, days + 1):
        rows = 5_000_000 if day == 1 else new + 7_000 * day  # new rows vary a little from day to day
        history += rows
        sec = seconds_of(history, rows)
        per_day.append({"day": day, "generated_rows": rows, "seconds": sec, "cpu_seconds": 1.5 * sec,
                        "trained": ["churn"] if day == 1 else [],
                        "stages": [{"stage": "ingest", "seconds": sec / 3}, {"stage": "dbt", "seconds": 2 * sec / 3}]})
    return {"people": 1000, "per_day": per_day}


def test_history_accumulates_each_days_new_rows():
    rows = growth_rows(_run(lambda h, n: 10.0, days=3))
    assert [r["history_rows"] for r in rows] == [5_000_000, 5_114_000, 5_235_000]
    assert [r["trained"] for r in rows] == [True, False, False]


def test_a_cost_that_grows_with_history_shows_a_history_slope_and_a_flat_one_does_not():
    growing = growth_summary(_run(lambda h, n: 2.0 + h / 1e5))  # 10 s more per million rows of history
    slope = growing["seconds_vs_history_rows"]
    assert growing["days"] == [2, 3, 4, 5, 6, 7]  # day 1 (the initial load, and it trained) is not a normal day
    assert slope["per_million"] == pytest.approx(10.0, rel=1e-6) and slope["r"] == pytest.approx(1.0)
    flat = growth_summary(_run(lambda h, n: 2.0 + n / 1e5))  # cost follows the day's new rows only
    assert flat["seconds_vs_new_rows"]["per_million"] == pytest.approx(10.0, rel=1e-6)


def test_too_few_normal_days_give_no_slope():
    assert growth_summary(_run(lambda h, n: 1.0, days=3))["seconds_vs_history_rows"] is None


def test_the_chart_is_an_svg_and_redraws_byte_identical(tmp_path):
    d = _run(lambda h, n: 2.0 + h / 1e6, days=4)
    a = write_chart(d, tmp_path / "a.svg").read_bytes()
    b = write_chart(d, tmp_path / "b.svg").read_bytes()
    assert a.startswith(b"<?xml") and b"<svg" in a
    assert a == b


def test_the_cli_redraws_from_a_saved_run(tmp_path):
    src = tmp_path / "run.json"
    src.write_text(json.dumps(_run(lambda h, n: 2.0 + h / 1e5)))
    out = subprocess.run([sys.executable, "-m", "beacon.cli", "bench", "growth", str(src), "--chart",
                          str(tmp_path / "c.svg"), "--json"], capture_output=True, text=True, check=True)
    d = json.loads(out.stdout)
    assert d["seconds_vs_history_rows"]["per_million"] == pytest.approx(10.0, rel=1e-6)
    assert (tmp_path / "c.svg").exists()
