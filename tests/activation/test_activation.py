"""Activation: governance reasons, the sync engine's modes and retries, file / S3 / customer-match destinations."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import timedelta

import pandas as pd
from support.activation_world import AS_OF, audience, consent, email_event, segment, warehouse

from beacon.activation.destinations import Batch, RowResult
from beacon.activation.destinations.ads import CustomerMatch, normalize_email, normalize_phone, sha256
from beacon.activation.destinations.file import FileExport, neutralize_formulas
from beacon.activation.governance import add_suppression, governed
from beacon.activation.sync import run_sync


class Recorder:
    """An in-memory destination that records every row it receives and can fail chosen members."""

    def __init__(self, channel: str = "webhook", mode: str = "mirror", fail: dict[str, int] | None = None,
                 fields: tuple[str, ...] | None = None):
        self.name, self.channel, self.default_mode, self.fields = f"rec_{channel}", channel, mode, fields
        self.required_any = ("email",) if channel == "email" else ()
        self.fail = dict(fail or {})
        self.received: list[dict] = []

    def plan(self, rows, name, meta):
        return [Batch(name=name, rows=rows.iloc[i:i + 500].reset_index(drop=True), meta=meta)
                for i in range(0, len(rows), 500)]

    def send(self, batch):
        out = []
        for r in batch.rows.to_dict(orient="records"):
            if self.fail.get(r["customer_id"], 0) > 0:
                self.fail[r["customer_id"]] -= 1
                out.append(RowResult(r["customer_id"], "failed", "boom"))
            else:
                self.received.append(r)
                out.append(RowResult(r["customer_id"], "delivered"))
        return out


def _ops(dest: Recorder) -> list[tuple[str, str]]:
    return sorted((r["customer_id"], r["operation"]) for r in dest.received)


# ---------------------------------------------------------------------------------------------- governance


def test_each_reason_is_decided_in_order_and_counted():
    con = warehouse(20)
    a = audience()
    segment(con, a.name, [f"c{i}" for i in range(12)])
    add_suppression(con, "erased", AS_OF, customer_id="c0")
    email_event(con, "c1", "complaint")
    email_event(con, "c2", "bounce", bounce_type="hard")
    email_event(con, "c3", "bounce", bounce_type="soft")  # a soft bounce does not suppress
    email_event(con, "c4", "unsubscribe", at="2026-03-01")
    email_event(con, "c5", "unsubscribe", at="2026-03-01")
    consent(con, "c5", "email", "opt_in", at="2026-04-01")  # re-subscribed after unsubscribing: allowed
    consent(con, "c6", "email", "opt_out")
    consent(con, "c7", "email", None)  # no record: email needs an opt-in
    con.execute("UPDATE marts.dim_customers SET email = NULL WHERE customer_id = 'c8'")
    add_suppression(con, "erased", AS_OF, email="P9@Example.com ")  # matched on the normalized email
    g = governed(con, a, [a], "email", AS_OF, required_any=("email",)).set_index("customer_id")
    assert g.reason.to_dict() == {
        "c0": "erased", "c1": "complained", "c2": "hard_bounced", "c3": None, "c4": "unsubscribed", "c5": None,
        "c6": "opted_out", "c7": "no_consent", "c8": "invalid", "c9": "erased", "c10": None, "c11": None}
    # A webhook needs no opt-in (opt-outs and suppressions still hold) and no email.
    w = governed(con, a, [a], "webhook", AS_OF).set_index("customer_id").reason
    assert w["c7"] is None and w["c8"] is None and w["c6"] == "opted_out" and w["c1"] == "complained"
    # A sync counts each reason and logs every member it did not send, an invalid row with the missing field.
    s = run_sync(con, a, [a], Recorder("email", "insert_only"), AS_OF)
    assert s.suppressed == {"erased": 2, "complained": 1, "hard_bounced": 1, "unsubscribed": 1, "opted_out": 1,
                            "no_consent": 1} and (s.invalid, s.adds) == (1, 4)
    log = con.execute("SELECT customer_id, status, reason, error FROM activation.sync_log WHERE operation = 'skip' "
                      "ORDER BY customer_id").fetchall()
    assert len(log) == 8 and ("c8", "invalid", "invalid", "the destination needs a value in one of: email") in log


def test_priority_gives_a_person_only_the_highest_priority_audience_on_a_channel():
    con = warehouse(10)
    hi, lo, tie = audience("hi", priority=90), audience("lo", priority=10), audience("a_tie", priority=10)
    segment(con, "hi", ["c0", "c1"])
    segment(con, "lo", ["c1", "c2", "c3"])
    segment(con, "a_tie", ["c3"])
    every = [hi, lo, tie]
    reasons = governed(con, lo, every, "email", AS_OF).set_index("customer_id").reason.to_dict()
    # c1 belongs to the higher 'hi'; c3 to 'a_tie' (same priority, earlier name wins the tie).
    assert reasons == {"c1": "lower_priority", "c2": None, "c3": "lower_priority"}
    assert governed(con, hi, every, "email", AS_OF).reason.isna().all()
    # A channel the higher audience is not delivered on does not compete.
    only_file = audience("hi", priority=90, channels=("file",))
    assert governed(con, lo, [only_file, lo], "email", AS_OF).reason.isna().all()


def test_frequency_cap_counts_messages_in_the_last_seven_days_across_audiences(monkeypatch):
    monkeypatch.setenv("BEACON_FREQUENCY_CAP", "2")
    con = warehouse(10)
    a, b = audience("a"), audience("b")
    segment(con, "a", ["c0", "c1", "c2"])
    segment(con, "b", ["c0", "c1", "c2"])
    # Clearing the state lets 'a' send again each time: only the log of messages counts for the cap.
    run_sync(con, a, [a], Recorder("email", "insert_only"), AS_OF - timedelta(days=8))  # outside the window
    con.execute("DELETE FROM activation.sync_state")
    run_sync(con, a, [a], Recorder("email", "insert_only", fail={"c2": 1}), AS_OF - timedelta(days=6))
    con.execute("DELETE FROM activation.sync_state")
    run_sync(con, a, [a], Recorder("email", "insert_only"), AS_OF - timedelta(days=1))
    # In the window: c0 and c1 got 2 messages, c2 got 1 (its first attempt failed) -> only c2 may get 'b'.
    g = governed(con, b, [b], "email", AS_OF).set_index("customer_id").reason.to_dict()
    assert g == {"c0": "frequency_cap", "c1": "frequency_cap", "c2": None}
    # Files are not messages: the cap does not apply to them.
    assert governed(con, b, [b], "file", AS_OF).reason.isna().all()


def test_holdout_is_deterministic_independent_per_audience_and_recorded_for_lift():
    con = warehouse(5000)
    a = audience("a", holdout=20)
    segment(con, "a", [f"c{i}" for i in range(5000)])
    one, two = governed(con, a, [a], "file", AS_OF), governed(con, a, [a], "file", AS_OF)
    assert (one.held_out == two.held_out).all() and 0.17 < one.held_out.mean() < 0.23
    expected = {c for c in one.customer_id
                if int(hashlib.md5(f"a:{c}".encode()).hexdigest()[:8], 16) % 10000 / 100 < 20}
    assert set(one[one.held_out].customer_id) == expected  # the documented hash, recomputed here
    segment(con, "other", [f"c{i}" for i in range(5000)])
    other = governed(con, audience("other", holdout=20), [], "file", AS_OF)
    assert (one.held_out.to_numpy() != other.held_out.to_numpy()).any()
    dest = Recorder()
    s = run_sync(con, a, [a], dest, AS_OF)
    assert s.held_out == len(expected) and not expected & {r["customer_id"] for r in dest.received}
    control = set(con.execute("SELECT customer_id FROM activation.control_group WHERE audience = 'a'").df().customer_id)
    assert control == expected


# ---------------------------------------------------------------------------------------------- sync engine


def test_mirror_sends_adds_updates_removes_and_a_rerun_sends_nothing():
    con = warehouse(50)
    a = audience()
    segment(con, a.name, [f"c{i}" for i in range(10)], points=range(10))
    dest = Recorder()
    s = run_sync(con, a, [a], dest, AS_OF)
    assert (s.adds, s.updates, s.removes, s.delivered) == (10, 0, 0, 10)
    assert run_sync(con, a, [a], dest, AS_OF).changes == 0 and len(dest.received) == 10  # re-run: nothing
    segment(con, a.name, [f"c{i}" for i in range(2, 12)], points=[2, 3, 40, 5, 6, 7, 8, 9, 10, 11])
    dest.received.clear()
    s = run_sync(con, a, [a], dest, AS_OF)
    assert _ops(dest) == [("c0", "remove"), ("c1", "remove"), ("c10", "add"), ("c11", "add"), ("c4", "update")]
    assert (s.adds, s.updates, s.removes, s.unchanged) == (2, 1, 2, 7)
    removed = next(r for r in dest.received if r["customer_id"] == "c0")
    assert removed["email"] == "p0@example.com"  # a remove carries the values last delivered
    # A person who opts out is removed from a mirrored destination, and comes back as a new version.
    consent(con, "c5", "email", "opt_out")
    dest.received.clear()
    run_sync(con, a, [a], dest, AS_OF)
    assert _ops(dest) == [("c5", "remove")]
    consent(con, "c5", "email", "opt_in", at="2026-05-01")
    dest.received.clear()
    run_sync(con, a, [a], dest, AS_OF)
    keys = con.execute("SELECT operation, idempotency_key FROM activation.sync_log WHERE customer_id = 'c5' "
                       "AND status = 'delivered' ORDER BY logged_at").fetchall()
    assert [k[0] for k in keys] == ["add", "remove", "add"] and len({k[1] for k in keys}) == 3


def test_upsert_never_removes_and_insert_only_sends_each_member_once():
    con = warehouse(20)
    a = audience()
    segment(con, a.name, ["c0", "c1", "c2"], points=[1, 2, 3])
    up, ins = Recorder(mode="upsert"), Recorder(channel="email", mode="insert_only")
    ins.name = "rec_email"
    run_sync(con, a, [a], up, AS_OF)
    run_sync(con, a, [a], ins, AS_OF)
    segment(con, a.name, ["c1", "c2", "c3"], points=[2, 30, 4])
    up.received.clear()
    ins.received.clear()
    s_up, s_ins = run_sync(con, a, [a], up, AS_OF), run_sync(con, a, [a], ins, AS_OF)
    assert _ops(up) == [("c2", "update"), ("c3", "add")] and s_up.removes == 0
    assert _ops(ins) == [("c3", "add")] and (s_ins.updates, s_ins.removes) == (0, 0)
    segment(con, a.name, ["c0", "c1", "c2", "c3"], points=[9, 9, 9, 9])  # c0 re-enters: insert-only never resends
    ins.received.clear()
    assert run_sync(con, a, [a], ins, AS_OF).changes == 0 and ins.received == []


def test_failed_rows_are_retried_next_run_under_the_same_idempotency_key():
    con = warehouse(30)
    a = audience()
    segment(con, a.name, [f"c{i}" for i in range(20)], points=range(20))
    dest = Recorder(fail={"c3": 2, "c17": 1})
    s1 = run_sync(con, a, [a], dest, AS_OF)
    assert (s1.delivered, s1.failed, s1.status) == (18, 2, "partial")
    s2 = run_sync(con, a, [a], dest, AS_OF)
    assert (s2.adds, s2.delivered, s2.failed) == (2, 1, 1)
    s3 = run_sync(con, a, [a], dest, AS_OF)
    assert (s3.adds, s3.delivered, s3.failed, s3.status) == (1, 1, 0, "succeeded")
    assert run_sync(con, a, [a], dest, AS_OF).changes == 0
    log = con.execute("""SELECT status, attempt, idempotency_key FROM activation.sync_log
        WHERE customer_id = 'c3' AND operation = 'add' ORDER BY attempt""").fetchall()
    assert [(st, at) for st, at, _ in log] == [("failed", 1), ("failed", 2), ("delivered", 3)]
    assert len({k for *_, k in log}) == 1
    assert sorted(r["customer_id"] for r in dest.received) == sorted(f"c{i}" for i in range(20))  # each once
    runs = con.execute("SELECT status, adds, delivered, failed FROM activation.sync_runs ORDER BY started_at").fetchall()
    assert runs == [("partial", 20, 18, 2), ("partial", 2, 1, 1), ("succeeded", 1, 1, 0), ("succeeded", 0, 0, 0)]


def test_dry_run_counts_and_samples_but_sends_and_records_nothing():
    con = warehouse(30)
    a = audience(holdout=30)
    segment(con, a.name, [f"c{i}" for i in range(30)], points=range(30))
    consent(con, "c1", "email", "opt_out")
    dest = Recorder()
    s = run_sync(con, a, [a], dest, AS_OF, dry_run=True, sample=5)
    assert dest.received == [] and s.status == "dry_run"
    assert s.adds + s.held_out + sum(s.suppressed.values()) == 30 and s.suppressed == {"opted_out": 1}
    assert len(s.sample) == 5 and all(r["operation"] == "add" for r in s.sample)
    for t in ("sync_log", "sync_state", "sync_runs", "control_group"):
        assert con.execute(f"SELECT count(*) FROM activation.{t}").fetchall()[0][0] == 0, t


# ---------------------------------------------------------------------------------------------- file export


def test_csv_export_has_a_manifest_that_matches_and_neutralizes_formulas(tmp_path):
    con = warehouse(10)
    a = audience()
    segment(con, a.name, ["c0", "c1", "c2"], note=["=HYPERLINK(\"http://x\")", "+1", "fine"])
    s = run_sync(con, a, [a], FileExport(str(tmp_path)), AS_OF)
    assert s.delivered == 3
    [csv] = list((tmp_path / a.name / "2026-06-30").glob("*.csv"))
    manifest = json.loads(csv.with_name(csv.stem + ".manifest.json").read_text())
    assert manifest["sha256"] == hashlib.sha256(csv.read_bytes()).hexdigest()
    df = pd.read_csv(csv)
    assert manifest["row_count"] == len(df) == 3
    assert [c["name"] for c in manifest["columns"]] == list(df.columns)
    assert df.set_index("customer_id").note.to_dict() == {"c0": "'=HYPERLINK(\"http://x\")", "c1": "'+1", "c2": "fine"}
    assert (df.operation == "add").all()
    out = neutralize_formulas(pd.DataFrame({"x": ["-2+3", "@SUM(A1)", "\tcmd", "ok", None]}))
    assert out.x.tolist() == ["'-2+3", "'@SUM(A1)", "'\tcmd", "ok", None]


def test_parquet_export_to_s3_configured_from_an_airflow_connection(tmp_path, monkeypatch):
    import boto3
    import s3fs
    from moto.server import ThreadedMotoServer

    from beacon.activation.destinations.registry import build

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                     region_name="us-east-1").create_bucket(Bucket="exports")
        monkeypatch.setenv("AIRFLOW_CONN_BEACON_FILE", json.dumps({
            "conn_type": "fs", "login": "test", "password": "test",
            "extra": {"url": "s3://exports/beacon", "format": "parquet", "endpoint_url": endpoint}}))
        dest = build("file", str(tmp_path))
        assert dest.fmt == "parquet" and dest.base_url == "s3://exports/beacon"
        con = warehouse(10)
        a = audience()
        segment(con, a.name, [f"c{i}" for i in range(6)], points=range(6))
        assert run_sync(con, a, [a], dest, AS_OF).delivered == 6
        fs = s3fs.S3FileSystem(key="test", secret="test", client_kwargs={"endpoint_url": endpoint})
        files = sorted(fs.ls(f"exports/beacon/{a.name}/2026-06-30"))
        [data] = [f for f in files if f.endswith(".parquet")]
        manifest = json.loads(fs.cat(data.replace(".parquet", ".manifest.json")))
        raw = fs.cat(data)
        assert manifest["sha256"] == hashlib.sha256(raw).hexdigest() and manifest["row_count"] == 6
        df = pd.read_parquet(io.BytesIO(raw))
        assert sorted(df.customer_id) == [f"c{i}" for i in range(6)] and df.points.dtype.kind == "i"
        assert not any(".partial" in f for f in files)
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------- customer match


def test_customer_match_normalizes_per_platform_rules():
    # Google: lowercase, trim, and no dots before @gmail.com / @googlemail.com; Meta: lowercase and trim only.
    assert normalize_email("  John.Doe+Promo@GMail.com ", "google") == "johndoe+promo@gmail.com"
    assert normalize_email("  John.Doe+Promo@GMail.com ", "meta") == "john.doe+promo@gmail.com"
    assert normalize_email("Jane.Roe@Example.org", "google") == "jane.roe@example.org"
    assert normalize_email("not-an-email", "google") is None
    # Phones: E.164 with + for Google; digits with country code for Meta; invalid numbers dropped.
    assert normalize_phone("(415) 555-2671", "google") == "+14155552671"
    assert normalize_phone("+44 20 7946 0958", "meta") == "442079460958"
    assert normalize_phone("12", "google") is None
    assert sha256("test@example.com") == "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"


def test_customer_match_upload_files_hash_adds_and_removes(tmp_path):
    con = warehouse(10)
    a = audience()
    segment(con, a.name, ["c0", "c1", "c2"])
    con.execute("UPDATE marts.dim_customers SET email = 'Ann.Lee@gmail.com' WHERE customer_id = 'c0'")
    dest = CustomerMatch(str(tmp_path), platform="google")
    assert run_sync(con, a, [a], dest, AS_OF).delivered == 3
    segment(con, a.name, ["c1", "c2"])
    assert run_sync(con, a, [a], dest, AS_OF).removes == 1
    folder = tmp_path / a.name / "2026-06-30"
    [adds] = list(folder.glob("*-add-*.csv"))
    [removes] = list(folder.glob("*-remove-*.csv"))
    up = pd.read_csv(adds)
    assert list(up.columns) == ["Email", "Phone"] and len(up) == 3
    assert sha256("annlee@gmail.com") in set(up.Email)
    assert sha256("+14155550001") in set(up.Phone)
    assert "@" not in adds.read_text()  # nothing leaves unhashed
    assert pd.read_csv(removes).Email.tolist() == [sha256("annlee@gmail.com")]


def test_governance_with_the_shared_email_aggregates_equals_each_audience_computing_its_own():
    # Issue 28: activate_destination computes the e-mail aggregates once per topic for all its audiences.
    from beacon.activation.governance import governed_query, shared_email_events

    con = warehouse(30)
    a, b = audience("a1", priority=60), audience("b1", priority=50)
    segment(con, a.name, [f"c{i}" for i in range(0, 20)])
    segment(con, b.name, [f"c{i}" for i in range(10, 30)])
    email_event(con, "c1", "complaint")
    email_event(con, "c12", "bounce", bounce_type="hard")
    email_event(con, "c14", "unsubscribe", at="2026-03-01")
    email_event(con, "c25", "unsubscribe", at="2026-07-01")  # after the clock: does not count yet
    consent(con, "c14", "email", "opt_in", at="2026-02-01")
    alone = {x.name: governed(con, x, [a, b], ch, AS_OF) for x in (a, b) for ch in ("email",)}
    with shared_email_events(con, AS_OF, [a.topic, b.topic]):
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '_gov_email_events_%'"
                           ).fetchall()[0][0] == 1  # one topic: one aggregate
        shared = {x.name: governed(con, x, [a, b], "email", AS_OF) for x in (a, b)}
        assert "_gov_email_events_0" in governed_query(con, a, [a, b], "email", AS_OF)[0]
    for name, g in alone.items():
        assert g.reason.notna().sum() >= 2, name
        pd.testing.assert_frame_equal(shared[name], g, obj=name)
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '_gov_email_events_%'"
                       ).fetchall()[0][0] == 0
