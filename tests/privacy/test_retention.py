"""Retention (issue 27, item 8; docs/privacy.md "Retention"): rows and files older than their window go, younger ones
stay, the windows count back from the warehouse clock (never the wall clock), consent proof is kept while the consent
is in force and pseudonymized after an erasure."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from beacon.config import ConfigError, override_env, settings
from beacon.privacy.retention import (
    apply_retention,
    load_config,
    parse_duration,
    pseudonymize_consent,
    retention_summary,
    salted_hash,
)
from beacon.warehouse import connect

# The warehouse clock of these tests: far from today, so a window counted from the wall clock would delete everything.
AS_OF = datetime(2020, 6, 30, 23, 59, 59)


def _warehouse(con) -> None:
    con.execute("CREATE SCHEMA marts; CREATE SCHEMA raw; CREATE SCHEMA activation")
    con.execute("CREATE TABLE marts.warehouse_as_of AS SELECT ?::TIMESTAMP AS as_of_at", [AS_OF])
    con.execute("CREATE TABLE raw.web_events (message_id VARCHAR, email VARCHAR, event_at TIMESTAMP)")
    con.executemany("INSERT INTO raw.web_events VALUES (?, ?, ?)", [
        ("old", "old@example.org", datetime(2019, 5, 29)),      # 13 months + a day before the clock: goes
        ("edge", "edge@example.org", datetime(2019, 5, 30, 23, 59, 59)),  # exactly 13 months: stays
        ("young", "young@example.org", datetime(2020, 6, 1)),
    ])
    con.execute("CREATE TABLE raw.collected_events (message_id VARCHAR, event_at TIMESTAMP, received_at TIMESTAMP)")
    con.executemany("INSERT INTO raw.collected_events VALUES (?, ?, ?)", [
        ("c-old", datetime(2019, 1, 1), datetime(2019, 1, 1)), ("c-young", datetime(2020, 1, 1), None)])
    con.execute("CREATE TABLE raw._quarantine (source VARCHAR, payload VARCHAR, quarantined_at TIMESTAMP)")
    con.executemany("INSERT INTO raw._quarantine VALUES (?, ?, ?)", [
        ("web_events", '{"email": "q-old@example.org"}', datetime(2020, 5, 30)),   # 31 days: goes
        ("web_events", '{"email": "q-new@example.org"}', datetime(2020, 6, 15))])
    con.execute("CREATE TABLE activation.sync_log (customer_id VARCHAR, logged_at TIMESTAMP)")
    con.executemany("INSERT INTO activation.sync_log VALUES (?, ?)", [("c1", datetime(2019, 1, 1)),
                                                                      ("c2", datetime(2020, 6, 1))])
    con.execute("""CREATE TABLE activation.sync_state (customer_id VARCHAR, present BOOLEAN, synced_at TIMESTAMP,
                   payload VARCHAR)""")
    con.executemany("INSERT INTO activation.sync_state VALUES (?, ?, ?, ?)", [
        ("gone-old", False, datetime(2020, 1, 1), '{"email": "g@example.org"}'),   # removed long ago: cleared
        ("here-old", True, datetime(2020, 1, 1), '{"email": "h@example.org"}'),    # still a member: kept
        ("gone-new", False, datetime(2020, 6, 20), '{"email": "n@example.org"}')])
    con.execute("""CREATE TABLE raw.consent (consent_id VARCHAR, email VARCHAR, phone VARCHAR, channel VARCHAR,
                   status VARCHAR, source VARCHAR, recorded_at TIMESTAMP, topic VARCHAR, customer_id VARCHAR,
                   proof VARCHAR)""")
    con.executemany("INSERT INTO raw.consent VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
        # ann: an old opt-in replaced by a later withdrawal (its proof goes after 6 years); bob: an old opt-in still
        # in force (its proof stays whatever its age).
        ("k1", "ann@example.org", None, "email", "opted_in", "form", datetime(2013, 1, 1), None, None,
         '{"asked": "newsletter", "ip": "10.0.0.1", "email": "ann@example.org"}'),
        ("k2", "Ann@Example.org ", None, "email", "opted_out", "form", datetime(2014, 1, 1), None, None, None),
        ("k3", "bob@example.org", "+1 415 555 0100", "email", "opted_in", "form", datetime(2013, 1, 1), None, "c-bob",
         '{"asked": "newsletter", "email": "bob@example.org"}'),
    ])


def _day_folder(root, day: str, *names: str) -> None:
    d = root / day
    d.mkdir(parents=True, exist_ok=True)
    for n in names:
        p = d / n
        if n == "webhooks":
            p.mkdir()
            (p / "sendgrid-abc.json").write_text('[{"email": "w@example.org"}]')
        else:
            p.write_text("x")


@pytest.fixture
def world(tmp_path, monkeypatch):
    monkeypatch.setenv("BEACON_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("BEACON_WAREHOUSE", raising=False)
    monkeypatch.delenv("BEACON_WAREHOUSE_KEY", raising=False)
    monkeypatch.delenv("BEACON_RETENTION_CONFIG", raising=False)
    s = settings()
    _day_folder(s.landing_dir, "2019-05-01", "web_events.jsonl", "consent.csv")          # > 13 months: all goes
    _day_folder(s.landing_dir, "2020-05-20", "web_events.jsonl", "webhooks", "collected_events-1.jsonl")
    _day_folder(s.landing_dir, "2020-06-29", "webhooks", "collected_events-2.jsonl")
    (s.landing_dir / "_spool").mkdir()  # not a day folder: never touched
    for day in ("2020-03-01", "2020-04-01", "2020-06-30"):                              # exports: 90 days
        (s.exports_dir / "win_back" / day).mkdir(parents=True)
        (s.exports_dir / "win_back" / day / "win_back-1.csv").write_text("email\nx@example.org\n")
    with connect(s.warehouse_path) as con:
        _warehouse(con)
        yield s, con


def test_rows_older_than_the_window_go_and_younger_ones_stay(world):
    s, con = world
    report = {r["store"]: r for r in apply_retention(s, con)}
    assert [r[0] for r in con.execute("SELECT message_id FROM raw.web_events ORDER BY 1").fetchall()] == ["edge",
                                                                                                           "young"]
    assert report["raw.web_events"]["rows"] == 1 and report["raw.web_events"]["cutoff"] == "2019-05-30 23:59:59"
    assert con.execute("SELECT message_id FROM raw.collected_events").fetchall() == [("c-young",)]
    assert con.execute("SELECT payload FROM raw._quarantine").fetchall() == [('{"email": "q-new@example.org"}',)]
    assert con.execute("SELECT customer_id FROM activation.sync_log").fetchall() == [("c2",)]
    payloads = dict(con.execute("SELECT customer_id, payload FROM activation.sync_state").fetchall())
    assert payloads["gone-old"] is None and payloads["here-old"] and payloads["gone-new"]
    assert report["activation.sync_state"]["rows"] == 1
    # A second run finds nothing more to do.
    again = apply_retention(s, con)
    assert sum(r["rows"] + r["folders"] for r in again) == 0 and retention_summary(again).startswith("nothing")


def test_the_windows_count_back_from_the_warehouse_clock_not_the_wall_clock(world):
    s, con = world
    apply_retention(s, con)  # today is years after AS_OF: rows of 2020 would all be gone from the wall clock
    assert con.execute("SELECT count(*) FROM raw.web_events").fetchall()[0][0] == 2
    # An explicit as_of moves the windows: 13 months before 2021-07-02 is 2020-06-02, after both remaining rows.
    apply_retention(s, con, as_of=datetime(2021, 6, 1, 12))
    assert con.execute("SELECT message_id FROM raw.web_events").fetchall() == [("young",)]
    apply_retention(s, con, as_of=datetime(2021, 7, 2))
    assert con.execute("SELECT count(*) FROM raw.web_events").fetchall()[0][0] == 0


def test_files_older_than_their_window_are_deleted(world):
    s, con = world
    report = {r["store"]: r for r in apply_retention(s, con)}
    left = sorted(str(p.relative_to(s.landing_dir)) for p in s.landing_dir.rglob("*") if p.is_file())
    # 2019-05-01: past every window (folder removed). 2020-05-20: its webhook bodies and collected files are past
    # 30 days, its web events within 13 months. 2020-06-29: everything young.
    assert left == ["2020-05-20/web_events.jsonl", "2020-06-29/collected_events-2.jsonl",
                    "2020-06-29/webhooks/sendgrid-abc.json"]
    assert not (s.landing_dir / "2019-05-01").exists() and (s.landing_dir / "_spool").is_dir()
    assert (report["landing/<day>/webhooks"]["folders"], report["landing/<day>/collected_events-*"]["folders"],
            report["landing/<day>/* (other)"]["folders"]) == (1, 1, 2)
    assert sorted(p.name for p in (s.exports_dir / "win_back").iterdir()) == ["2020-04-01", "2020-06-30"]
    assert report["exports/<audience>/<day>"]["folders"] == 1


def test_consent_proof_is_kept_while_in_force_and_cleared_once_replaced_and_old(world):
    s, con = world
    apply_retention(s, con)
    proofs = dict(con.execute("SELECT consent_id, proof FROM raw.consent").fetchall())
    assert proofs["k1"] is None                     # replaced by k2, and older than 6 years
    assert proofs["k3"] and "bob@example.org" in proofs["k3"]  # still in force: kept
    # The consent records themselves are never deleted (they say who must not be sent to).
    assert con.execute("SELECT count(*) FROM raw.consent").fetchall()[0][0] == 3


def test_pseudonymize_consent_after_an_erasure(world):
    s, con = world
    salt = "tombstone-salt"

    def hash_identifier(kind: str, value: str) -> str:
        return salted_hash(kind, value, salt)

    erased = {salted_hash("email", "ANN@example.org", salt)}  # the erasure's hashes: any case, any spacing
    assert pseudonymize_consent(con, erased, hash_identifier) == 2
    rows = {r[0]: r[1:] for r in con.execute(
        "SELECT consent_id, email, phone, customer_id, status, recorded_at, proof FROM raw.consent").fetchall()}
    text = json.dumps({k: [str(x) for x in v] for k, v in rows.items()}).lower()
    assert "ann@example.org" not in text and "10.0.0.1" not in text
    assert rows["k1"][0] == rows["k2"][0] == "erased:" + next(iter(erased))
    assert rows["k1"][3:5] == ("opted_in", datetime(2013, 1, 1))  # what was consented to and when stays
    assert json.loads(rows["k1"][5])["erased"] is True and len(json.loads(rows["k1"][5])["proof_sha256"]) == 64
    assert rows["k3"][0] == "bob@example.org"  # someone else: untouched
    # By phone or customer id too.
    assert pseudonymize_consent(con, {salted_hash("phone", "(415) 555-0100", salt)}, hash_identifier) == 1
    assert con.execute("SELECT customer_id FROM raw.consent WHERE consent_id = 'k3'").fetchall()[0][0].startswith(
        "erased:")
    assert pseudonymize_consent(con, set(), hash_identifier) == 0


def test_the_config_is_strict_and_replaceable(tmp_path):
    assert parse_duration("13 months") == parse_duration("1 year") + parse_duration("1 month")
    assert parse_duration("forever") is None
    with pytest.raises(ValueError, match="expected '<n> days'"):
        parse_duration("13 moons")
    base = (load_config(settings()).model_dump())
    doc = {**base, "web_events": "2 years", "quarantine": "forever"}
    path = tmp_path / "retention.yml"
    path.write_text("\n".join(f"{k}: {v}" for k, v in doc.items()))
    with override_env(BEACON_RETENTION_CONFIG=str(path)):
        cfg = load_config(settings())
    assert cfg.window("web_events").years == 2 and cfg.window("quarantine") is None
    path.write_text("\n".join(f"{k}: {v}" for k, v in {**doc, "web_event": "1 day"}.items()))
    with override_env(BEACON_RETENTION_CONFIG=str(path)), pytest.raises(ConfigError, match="did you mean 'web_events'"):
        load_config(settings())
    path.write_text("\n".join(f"{k}: {v}" for k, v in {**doc, "exports": "ninety days"}.items()))
    with override_env(BEACON_RETENTION_CONFIG=str(path)), pytest.raises(ConfigError, match="exports"):
        load_config(settings())


def test_a_store_kept_forever_is_left_alone(world, tmp_path):
    s, con = world
    doc = {**load_config(s).model_dump(), "web_events": "forever"}
    path = tmp_path / "forever.yml"
    path.write_text("\n".join(f"{k}: {v}" for k, v in doc.items()))
    with override_env(BEACON_RETENTION_CONFIG=str(path)):
        report = {r["store"]: r for r in apply_retention(settings(), con)}
    assert report["raw.web_events"]["note"] == "kept forever"
    assert con.execute("SELECT count(*) FROM raw.web_events").fetchall()[0][0] == 3


def test_the_dag_task_skips_before_the_first_build_and_applies_after(tmp_path, monkeypatch):
    from beacon.privacy.retention import run_retention

    monkeypatch.setenv("BEACON_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("BEACON_WAREHOUSE", raising=False)
    monkeypatch.delenv("BEACON_WAREHOUSE_KEY", raising=False)
    monkeypatch.delenv("BEACON_RETENTION_CONFIG", raising=False)
    s = settings()
    assert "no marts yet" in run_retention(s)["skipped"]
    with connect(s.warehouse_path) as con:
        _warehouse(con)
    out = run_retention(s)
    assert out["as_of"] == str(AS_OF) and out["changed"]["raw.web_events"] == 1
    assert "@" not in json.dumps(out)  # counts and cutoffs only
