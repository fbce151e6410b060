"""`beacon demo` over three days on a small world, through Airflow (dag.test): the world's people answer what Beacon
sent (exports and the email outbox) with planted effects, the journeys DAG runs in the chain, the DAGs never read
the truth folder while the world does, and the campaign report, opened in headless Chromium, shows for every
audience and journey the planted effect beside the measured interval.

A 2,000-person world has a tenth of the default world's people, so the planted effects are larger than the demo's
(docs/measurement.md: the default world recovers the demo's own effects)."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest

from beacon.config import settings
from beacon.generate.engagement import Effect, EffectBook
from beacon.generate.responses import read_messages

pytestmark = pytest.mark.e2e

PEOPLE, SEED, DAYS = 2000, 8, 3
BOOK = EffectBook(effects={"journey:win_back": {"email": Effect(conversion=0.60, days=1.0)},
                           "audience:engaged_browsers": {"treatment": Effect(conversion=0.25, days=1.0)},
                           "journey:cart_abandonment": {"reminders": Effect(conversion=0.02, days=1.0)}},
                  default=Effect(conversion=0.01, days=1.0), horizon_days=0.0)
_OPENED: list[str] = []
_GUARD: dict = {"root": None}


def _audit(event: str, args: tuple) -> None:
    root = _GUARD["root"]
    if root and event in ("open", "os.listdir", "os.scandir") and args and isinstance(args[0], str | bytes) \
            and str(args[0] if isinstance(args[0], str) else args[0].decode()).startswith(root):
        _OPENED.append(str(args[0]))


sys.addaudithook(_audit)  # records only while _GUARD["root"] is set


@pytest.fixture(scope="module")
def demo(airflow_home, tmp_path_factory):
    """run_demo for three days, with the truth folder moved away (and watched) whenever a DAG runs."""
    import beacon.pipeline as pipeline

    s = settings()
    hidden = tmp_path_factory.mktemp("truth-hidden") / "truth"
    real_run_dags = pipeline.run_dags
    runs: list[tuple[str, ...]] = []

    def run_dags_blind(day, progress=None, dags=pipeline.DAG_ORDER):
        runs.append(tuple(dags))
        shutil.move(str(s.truth_dir), str(hidden))
        _GUARD["root"] = str(s.truth_dir)
        try:
            return real_run_dags(day, progress, dags)
        finally:
            _GUARD["root"] = None
            shutil.move(str(hidden), str(s.truth_dir))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "run_dags", run_dags_blind)
        (s.data_dir / "world.json").unlink(missing_ok=True)  # a fresh world: another module's may be there
        result = pipeline.run_demo(people=PEOPLE, seed=SEED, days=DAYS, book=BOOK)
    return s, result, runs


def test_the_chain_runs_the_journeys_dag_each_day_and_never_reads_the_truth(demo):
    s, r, runs = demo
    assert runs == [pipeline_chain()] * DAYS and _OPENED == []
    assert r.day == "2026-07-02" and r.seconds["beacon_journeys (day 3)"] > 0


def pipeline_chain() -> tuple[str, ...]:
    from beacon.pipeline import DEMO_CHAIN

    assert DEMO_CHAIN[-1] == "beacon_journeys"
    return DEMO_CHAIN


def test_the_world_answered_and_its_orders_reached_the_warehouse(demo):
    from beacon.warehouse import connect

    s, r, _ = demo
    msgs = read_messages(s.data_dir)
    assert {d["day"] for d in r.world} == {"2026-06-30", "2026-07-01"}  # the messages of days 1 and 2
    assert msgs.reached.mean() > 0.8 and "journey:win_back" in set(msgs.campaign)
    with connect(read_only=True) as con:
        clicks = con.execute("""SELECT count(*) FROM marts.fct_email_events
            WHERE campaign_id LIKE 'cmp_beacon-%' AND event_name = 'click'""").fetchall()[0][0]
        sent = con.execute("SELECT count(*) FROM journeys.transitions WHERE journey = 'win_back' "
                           "AND transition = 'sent'").fetchall()[0][0]
    assert clicks > 0 and sent > 0


def test_summary_and_report_show_planted_beside_measured_in_chromium(demo, browser_page):
    s, r, _ = demo
    rows = {(x["campaign"], x["arm"]): x for x in r.planted}
    # Journeys with a planted effect of 3 points or more: the interval excludes zero. (On this small world an
    # audience's control group has about 20 people: its interval is shown, and covers the expected lift.)
    big = [x for x in r.planted if x["campaign"].startswith("journey:") and x["planted"] >= 0.03]
    assert [(x["campaign"], x["arm"]) for x in big] == [("journey:win_back", "email")]
    assert all(x["measured"] is not None and x["excludes_zero"] and x["low"] > 0 for x in big), big
    assert sum(bool(x["covered"]) for x in r.planted if x["covered"] is not None) >= 0.8 * len(
        [x for x in r.planted if x["covered"] is not None])
    page = browser_page.page
    page.goto(Path(r.campaign_report).resolve().as_uri())
    for (c, a), x in rows.items():
        cells = page.locator(f"#demo-evaluation tr[data-campaign='{c}'][data-arm='{a}']").locator("td").all_inner_texts()
        assert cells[2] == f"{100 * x['planted']:+.2f}", c
        if x["measured"] is not None:
            est, low, high = (float(v) for v in re.findall(r"[+-]\d+\.\d+", cells[5]))
            assert low <= est <= high and (low > 0) == (cells[7] == "yes") and cells[7] in ("yes", "no")
            if c.startswith("journey:") and x["planted"] >= 0.03:
                assert low > 0, c
            line = page.locator(f"section[data-campaign='{c}'] p.planted[data-arm='{a}']").inner_text()
            assert f"[95% interval {low:+.2f}, {high:+.2f}]" in line
    assert browser_page.console_errors == []
