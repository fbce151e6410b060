"""Segments analysts own: a new audience is one SQL file plus one YAML block, no Python touched.

Runs the whole slice through Airflow on a copy of the dbt project that gained a segment, and finds
the new audience exported with the right members. Also: membership history and the analyst views.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from beacon.activation.preview import diff
from beacon.audiences import discover, membership_changes, preview, record_membership

ROOT = Path(__file__).resolve().parents[2]

NEW_SQL = """-- Buyers with at least three completed orders: a loyalty thank-you.
with customers as (
    select customer_id, email, first_name, order_count from {{ ref('dim_customers') }}
    where is_email_valid and order_count >= 3
),

final as (
    select * from customers
)

select * from final
"""

NEW_YAML = """version: 2

models:
  - name: frequent_buyers_thanks
    description: Three or more orders.
    config:
      meta:
        audience:
          name: frequent_buyers_thanks
          description: Three or more completed orders.
          owner: test-analyst
          channels: [file]
          priority: 5
          holdout_pct: 0
          refresh: daily
    columns:
      - name: customer_id
        data_tests: [unique, not_null]
"""


# Two shop records of one person that share no key on day 1 (one has only an email, the other only a phone, and
# they differ in address, city and birth date, so the probabilistic matcher keeps them apart): two customers.
# On day 2 a third record carries both the email and the phone and proves they are one: a merge must happen.
MERGE_DAY1 = ["SXMERGE0001,james.smith.bridge@example.com,James,Smith,,1 Bridge St,Springfield,IL,62701,1970-01-01,M,"
              "2026-01-05T10:00:00Z",
              "SXMERGE0002,,James,Smith,(503) 555-0199,99 Harbor Rd,Portland,OR,97201,,,2026-02-05T10:00:00Z"]
MERGE_DAY2 = ["SXMERGE0003,james.smith.bridge@example.com,James,Smith,503.555.0199,1 Bridge St,Springfield,IL,62701,"
              "1970-01-01,M,2026-07-01T09:00:00Z"]


def append_shop_rows(landing_day: Path, rows: list[str]) -> None:
    """Append rows to a landing day's shop_customers.csv (before it is loaded)."""
    with open(landing_day / "shop_customers.csv", "a", encoding="utf-8") as fh:
        fh.write("\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def new_segment_run(airflow_home, tmp_path_factory):
    """Copy the dbt project, add one SQL file and one YAML file, point Beacon at the copy, run the DAGs."""
    from beacon.config import override_env, settings
    from beacon.dbt import ensure_manifest
    from beacon.pipeline import prepare_world, run_dags

    work = tmp_path_factory.mktemp("analyst")
    project = work / "dbt_project"
    shutil.copytree(ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    (project / "models" / "segments" / "frequent_buyers_thanks.sql").write_text(NEW_SQL)
    (project / "models" / "segments" / "_frequent_buyers_thanks.yml").write_text(NEW_YAML)
    with override_env(BEACON_DBT_PROJECT_DIR=str(project), BEACON_DBT_TARGET_DIR=str(project / "target"),
                      BEACON_DATA_DIR=str(work / "data")):
        s = settings()
        day = prepare_world(s, people=2000, seed=21)
        append_shop_rows(s.landing_dir / day, MERGE_DAY1)
        ensure_manifest(s)
        run_dags(day)
        yield s, day


@pytest.mark.e2e  # runs the DAGs through Airflow
def test_new_segment_is_exported_with_the_right_members(new_segment_run):
    from beacon.warehouse import connect

    s, day = new_segment_run
    exported = pd.concat([pd.read_csv(p) for p in (s.exports_dir / "frequent_buyers_thanks" / day).glob("*.csv")])
    audiences = discover(s.manifest_path)
    # Priority 5: anyone in another audience delivered to files goes there instead (one audience per channel).
    others = " ".join(f"AND c.customer_id NOT IN (SELECT customer_id FROM {a.relation})" for a in audiences
                      if "file" in a.channels and a.name != "frequent_buyers_thanks")
    with connect() as con:
        expected = con.execute(f"""
            SELECT c.customer_id FROM marts.dim_customers c
            JOIN marts.dim_consent k ON k.customer_id = c.customer_id AND k.channel = 'email' AND k.status = 'opt_in'
            WHERE c.is_email_valid AND c.order_count >= 3
              AND NOT EXISTS (SELECT 1 FROM marts.fct_email_events e WHERE e.customer_id = c.customer_id
                              AND (e.event_name = 'complaint' OR (e.event_name = 'bounce' AND e.bounce_type = 'hard')
                                   OR (e.event_name = 'unsubscribe' AND e.event_at >= k.recorded_at)))
              {others}""").df()
    assert len(exported) > 0
    assert set(exported.customer_id) == set(expected.customer_id)  # holdout_pct is 0: every member the rules allow


@pytest.mark.e2e  # runs the DAGs through Airflow
def test_every_builtin_segment_is_built_and_recorded(new_segment_run):
    from beacon.warehouse import connect

    s, day = new_segment_run
    audiences = discover(s.manifest_path)
    assert len(audiences) >= 13
    with connect() as con:
        changes = {c["audience"]: c for c in membership_changes(con)}
        for a in audiences:
            n = con.execute(f"SELECT count(*) FROM {a.relation}").fetchall()[0][0]
            assert changes[a.name]["entered"] == n, a.name  # first run: everyone entered
        sizes = {a.name: con.execute(f"SELECT count(*) FROM {a.relation}").fetchall()[0][0] for a in audiences}
    # On a 2,000-person world the broad plays have members (narrow windows may legitimately be empty).
    for name in ("win_back_lapsed", "rfm_champions", "rfm_hibernating", "engaged_browsers", "hot_b2b_leads"):
        assert sizes[name] > 0, (name, sizes)


def test_membership_history_records_entries_and_exits(tmp_path):
    import duckdb

    from beacon.audiences import Audience

    con = duckdb.connect()
    con.execute("CREATE SCHEMA segments; CREATE TABLE segments.a AS SELECT * FROM (VALUES ('c1', 1), ('c2', 2)) t(customer_id, x)")
    aud = Audience("a", "d", "o", ("file",), 1, 0.0, "daily", "segments.a", "a", "models/segments/a.sql")
    assert record_membership(con, aud, "2026-06-01") == {"audience": "a", "as_of": "2026-06-01", "size": 2, "entered": 2,
                                                         "exited": 0}
    con.execute("DELETE FROM segments.a WHERE customer_id = 'c1'; INSERT INTO segments.a VALUES ('c3', 3)")
    assert record_membership(con, aud, "2026-06-02")["entered"] == 1
    again = record_membership(con, aud, "2026-06-02")  # re-running a day rewrites it
    assert (again["entered"], again["exited"]) == (1, 1)
    events = con.execute("SELECT customer_id, change, as_of::VARCHAR FROM audiences.membership_events "
                         "ORDER BY as_of, customer_id").fetchall()
    assert events == [("c1", "entered", "2026-06-01"), ("c2", "entered", "2026-06-01"),
                      ("c1", "exited", "2026-06-02"), ("c3", "entered", "2026-06-02")]
    # Why is c3 in? The qualifying row is kept.
    assert "\"x\":3" in con.execute("SELECT qualifying::VARCHAR FROM audiences.membership_events "
                                     "WHERE customer_id = 'c3'").fetchall()[0][0].replace(" ", "")


@pytest.mark.e2e  # runs the DAGs through Airflow
def test_preview_and_diff_on_the_run(new_segment_run):
    from beacon.warehouse import connect

    s, day = new_segment_run
    audiences = discover(s.manifest_path)
    target = next(a for a in audiences if a.name == "frequent_buyers_thanks")
    with connect() as con:
        p = preview(con, target, audiences, sample=5)
        d = diff(con, target)
        champions = con.execute("SELECT count(*) FROM segments.rfm_champions c JOIN segments.frequent_buyers_thanks f "
                                "USING (customer_id)").fetchall()[0][0]
    assert p["size"] > 0 and len(p["sample"]) == min(5, p["size"]) and "order_count" in p["sample"][0]
    assert next(o for o in p["overlap"] if o["audience"] == "rfm_champions")["shared"] == champions
    # Just delivered: nothing would enter or leave.
    assert d["last_delivered"] == day and d["would_enter"] == 0 and d["would_leave"] == 0
    assert d["unchanged"] == d["delivered_then"] > 0


@pytest.mark.e2e  # runs the DAGs through Airflow
def test_day_two_increment_records_exits_and_keeps_stages(new_segment_run):
    """Day 2 (new people, changed records, new events): entries and exits are recorded, and no
    lifecycle stage date moves later or disappears."""
    from beacon.pipeline import add_day, run_dags
    from beacon.warehouse import connect

    s, day1 = new_segment_run
    with connect() as con:
        before = con.execute("SELECT * FROM marts.customer_lifecycle").df().set_index("customer_id")
    day2 = add_day(s, people=2000, seed=21, day=2)
    append_shop_rows(s.landing_dir / day2, MERGE_DAY2)
    run_dags(day2)
    with connect() as con:
        after = con.execute("SELECT * FROM marts.customer_lifecycle").df().set_index("customer_id")
        changes = membership_changes(con)
    common = before.index.intersection(after.index)
    assert len(common) > 0.9 * len(before)
    for col in ("subscriber_at", "lead_at", "mql_at", "sql_at", "customer_at"):
        b, a = before.loc[common, col], after.loc[common, col]
        had = b.notna()
        assert a[had].notna().all(), col  # a reached stage never disappears
        assert (a[had] <= b[had]).all(), col  # and its date never moves later
    order = ["unknown", "subscriber", "lead", "mql", "sql", "customer"]
    rank_b = before.loc[common, "lifecycle_stage"].map(order.index)
    rank_a = after.loc[common, "lifecycle_stage"].map(order.index)
    assert (rank_a >= rank_b).all()
    day2_changes = [c for c in changes if c["as_of"] == day2]
    # Day 2 moves the windows a day on: some members leave and some join (both are promised, so both are checked).
    assert sum(c["exited"] for c in day2_changes) > 0 and sum(c["entered"] for c in day2_changes) > 0, day2_changes


@pytest.mark.e2e  # runs the DAGs through Airflow
def test_day_two_keeps_customer_ids_and_logs_merges(new_segment_run):
    """After day 2, every day-1 record keeps its customer id unless its customer was merged into an
    older one, and each such move is in the merge log with a surviving customer that exists."""
    from beacon.warehouse import connect

    with connect() as con:
        runs = con.execute("SELECT max(resolution_run) FROM intermediate.int_identity_events").fetchall()[0][0]
        assert runs >= 2  # day 2 ran the resolver incrementally on top of day 1
        first = con.execute("""SELECT record_key, arg_min(customer_id, resolution_run) AS day1_id
                               FROM intermediate.int_identity_events GROUP BY 1""").df()
        now = con.execute("SELECT record_key, customer_id FROM intermediate.int_customer_records_resolved").df()
        merges = con.execute("SELECT * FROM marts.identity_merge_log").df()
        customers = set(con.execute("SELECT customer_id FROM marts.dim_customers").df().customer_id)
    both = first.merge(now, on="record_key")
    moved = both[both.day1_id != both.customer_id]
    # The planted pair: two customers on day 1, one on day 2 under one of their ids, the other logged as merged.
    day1, current = first.set_index("record_key").day1_id, now.set_index("record_key").customer_id
    pair = {day1["shop:SXMERGE0001"], day1["shop:SXMERGE0002"]}
    [survivor] = set(current[[f"shop:SXMERGE000{i}" for i in (1, 2, 3)]])
    assert len(pair) == 2 and survivor in pair
    [gone] = pair - {survivor}
    assert (gone, survivor) in set(zip(merges.merged_customer_id, merges.surviving_customer_id, strict=True))
    assert len(moved) >= 1  # the checks below are not vacuous
    # Every moved record is explained by a merge from its old id to its new one.
    pairs = set(zip(merges.merged_customer_id, merges.surviving_customer_id, strict=True))
    assert all((a, b) in pairs for a, b in zip(moved.day1_id, moved.customer_id, strict=True))
    assert set(merges.surviving_customer_id) <= customers
    assert not (set(merges.merged_customer_id) & customers)  # a merged id no longer names a customer
    assert len(moved) <= 0.01 * len(both)
