"""`make up` for real: Postgres and Airflow 3's scheduler, DAG processor, triggerer and API server run the
chain by themselves (ingest -> warehouse -> ml -> activation through Assets), the one-slot pool keeps the
warehouse writers apart under a parallelism above 1, and the Beacon page refuses anonymous callers and masks
personal data for marketers. Everything started here is stopped at the end, even on failure."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from beacon.config import settings
from beacon.pipeline import prepare_world
from beacon.stack import (
    Api,
    StackError,
    chain,
    down,
    free_port,
    paths,
    shared_env,
    status,
    trigger_chain,
    up,
    wait_for_chain,
)

pytestmark = pytest.mark.e2e

PEOPLE = 1500
CHAIN_TIMEOUT = 1800  # seconds: a generous bound for a condition (1-3 min on a quiet machine; > 10 min at load 15)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def stack():
    # Not pytest's tmp_path: its folders are private (0700), and Postgres runs as the `postgres` user.
    base = settings().home / ".beacon"
    base.mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="test-stack-", dir=base))
    root.chmod(0o755)
    env = {"BEACON_DATA_DIR": str(root / "data"), "BEACON_STACK_DIR": str(root / "beacon"),
           "BEACON_API_PORT": str(free_port()), "BEACON_RETRY_DELAY_SECONDS": "5"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        s = settings()
        prepare_world(s, people=PEOPLE, seed=7)
        try:
            info = up(s, say=print)
            api = Api.for_stack(s)
            since = datetime.now(UTC).isoformat()
            trigger_chain(api)
            runs = wait_for_chain(api, since, timeout=CHAIN_TIMEOUT, say=print)
            yield s, info, api, runs
        finally:
            pg_port = json.loads(paths(s).state.read_text()).get("pg_port") if paths(s).state.exists() else None
            down(s, say=print)
            st = status(s)
            # Nothing left behind: no component, no Postgres, both ports closed.
            assert not st["postgres"] and not any(st["components"].values()), st
            assert not _port_open(int(env["BEACON_API_PORT"]))
            assert pg_port is None or not _port_open(int(pg_port))
            shutil.rmtree(root, ignore_errors=True)


def test_the_chain_ran_by_itself_through_assets(stack):
    s, info, api, runs = stack
    dags = chain(s)
    assert set(runs) == set(dags) and dags[:4] == ("beacon_ingest", "beacon_warehouse", "beacon_ml",
                                                   "beacon_activation")
    # One ingest run (the trigger took the scheduled interval's date), the rest scheduled by their Assets.
    assert len(api.runs("beacon_ingest")) == 1
    assert {d: runs[d]["run_type"] for d in dags[1:]} == {d: "asset_triggered" for d in dags[1:]}
    # The exports: every file delivery the warehouse recorded is on disk with its manifest, row count matching.
    # The stack encrypts the warehouse at rest with the key it generated (docs/privacy.md).
    from beacon.config import override_env
    from beacon.warehouse import connect

    assert info["warehouse_key_file"] == str(paths(s).warehouse_key)
    with override_env(BEACON_WAREHOUSE_KEY_FILE=info["warehouse_key_file"]), \
            connect(s.warehouse_path, read_only=True) as con:
        delivered = con.execute("""SELECT audience, sum(adds) FROM activation.sync_runs
                                   WHERE destination = 'file' AND status = 'succeeded' GROUP BY 1""").fetchall()
    assert delivered and sum(n for _, n in delivered) > 0
    for audience, adds in delivered:
        manifests = list((s.exports_dir / audience).glob("*/*.manifest.json"))
        rows = sum(json.loads(m.read_text())["row_count"] for m in manifests)
        assert rows == adds, audience


def _writes(task_id: str) -> bool:
    """In a Cosmos task group only the producer's `dbt build` opens the warehouse: the consumers
    (`<group>.<model>_run`) are sensors reading the producer's reports, and `<group>.dbt_producer_watcher_done` is
    an EmptyOperator the scheduler marks done without running it (nor taking a pool slot). The same rule as
    tests/dags' check that every writer holds the pool."""
    group, _, name = task_id.rpartition(".")
    return not group.startswith("dbt") or name == "dbt_producer_watcher"


def test_warehouse_writers_never_overlap_under_parallelism(stack):
    s, info, api, runs = stack
    assert int(shared_env(s)["AIRFLOW__CORE__PARALLELISM"]) > 1
    tis = [t for d in chain(s) for t in api.task_instances(d, runs[d]["dag_run_id"])
           if t["pool"] == "duckdb_writer" and t["start_date"] and t["end_date"] and _writes(t["task_id"])]
    mapped = [t for t in tis if t["map_index"] >= 0]  # activation's per-destination syncs, journeys' advances
    assert len(mapped) > 1  # parallel mapped tasks competing for the one slot
    spans = sorted((t["start_date"], t["end_date"], t["task_id"]) for t in tis)
    overlaps = [(a[2], b[2]) for a, b in zip(spans, spans[1:], strict=False) if b[0] < a[1]]
    assert overlaps == []


def test_the_scheduler_warmed_the_task_processes_imports(stack):
    s, *_ = stack
    log = paths(s).log("scheduler").read_text(errors="replace")
    assert "beacon: warmed" in log and "warm import of" not in log  # every module imported, none failed


def test_make_up_is_idempotent_and_a_taken_port_is_named(stack, tmp_path, monkeypatch):
    s, info, api, runs = stack
    assert up(s, say=print)["started"] == []  # everything already runs: nothing started twice
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("BEACON_STACK_DIR", str(tmp_path / "other"))
        monkeypatch.setenv("BEACON_API_PORT", str(port))
        with pytest.raises(StackError, match=f"port {port} .* is taken.*BEACON_API_PORT"):
            up(settings(), say=print)


def test_the_beacon_page_needs_an_airflow_user_and_masks_personal_data_for_marketers(stack):
    s, info, api, runs = stack
    url = f"{info['url']}/beacon"
    assert requests.get(f"{url}/api/summary", timeout=30).status_code == 401
    assert requests.get(f"{url}/api/summary", headers={"Authorization": "Bearer forged"}, timeout=30).status_code \
        in (401, 403)
    admin = api.http.get(f"{url}/api/summary", timeout=30).json()
    marketer_api = Api.for_stack(s, "marketer")
    marketer = marketer_api.http.get(f"{url}/api/summary", timeout=30).json()
    from beacon.audiences import discover

    names = {a.name for a in discover(s.manifest_path)}
    assert {a["name"] for a in admin["audiences"]} == names
    assert admin["personal_data"] is True and marketer["personal_data"] is False
    emails = [m["email"] for a in admin["audiences"] for m in a["sample"] if m.get("email")]
    masked = [m["email"] for a in marketer["audiences"] for m in a["sample"] if m.get("email")]
    assert emails and len(masked) == len(emails)
    assert all("•••" in e for e in masked) and not set(masked) & set(emails)
    # The session cookie the Airflow UI sets works the same as the Bearer header (the page opens in an iframe).
    page = requests.get(f"{url}/", cookies={"_token": marketer_api.token}, headers={"Accept": "text/html"}, timeout=30)
    assert page.status_code == 200 and all(n in page.text for n in names)
    assert os.path.exists(s.data_dir / "ui" / "beacon_page.json")
    # Results (this run's lift per audience and arm) and journeys (the flow, people per node): statistics and
    # counts, the same for both roles.
    assert admin["measurement"] and marketer["measurement"] == admin["measurement"]
    for c in admin["measurement"]:
        assert c["campaign"].startswith(("audience:", "journey:")) and c["results"]
        for r in c["results"]:
            assert r["verdict"] and (r["abs_low"] is None or r["abs_low"] <= r["abs_lift"] <= r["abs_high"])
    # The journeys section. The activation DAG publishes the page; the chain's journeys run comes after it (on the
    # activation Asset), so the first publication may predate every journeys run. Then one more activation run
    # (the chain's journeys run has finished) publishes the page with the section, which must be there.
    from beacon.journeys.api import load

    if admin["journeys"] is None:
        run_id = f"page_journeys__{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
        api.call("POST", "dags/beacon_activation/dagRuns", json={"dag_run_id": run_id, "logical_date": None})
        deadline = time.monotonic() + 600
        while (state := api.call("GET", f"dags/beacon_activation/dagRuns/{run_id}")["state"]) in \
                ("queued", "running") and time.monotonic() < deadline:
            time.sleep(3)
        assert state == "success", state
        admin = api.http.get(f"{url}/api/summary", timeout=30).json()
        marketer = marketer_api.http.get(f"{url}/api/summary", timeout=30).json()
    assert admin["journeys"] is not None, "the Beacon page was published without its journeys section"
    assert {j["journey"] for j in admin["journeys"]} == {x.journey.name for x in load(strict=False).journeys}
    assert marketer["journeys"] == admin["journeys"]


def test_the_beacon_page_in_a_real_browser(stack, browser_page):
    """Signed in through Airflow's own login form, a marketer opens the Beacon page in the Airflow UI: every
    audience shows, personal data is masked, no console errors; signed out, the page refuses."""
    s, info, api, runs = stack
    from beacon.audiences import discover

    page, url = browser_page.page, info["url"]
    page.goto(f"{url}/")
    page.locator("input[name=username]").fill("marketer")
    page.locator("input[name=password]").fill(json.loads(paths(s).passwords.read_text())["marketer"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda u: "/auth/" not in u and "login" not in u, timeout=60_000)
    assert any(c["name"] == "_token" for c in page.context.cookies())
    # Before signing in, Airflow's own UI meets 401s (its config call) and logs them: not the page's errors.
    browser_page.console_errors.clear()
    page.goto(f"{url}/plugin/beacon")  # the Airflow UI with the page in its iframe
    frame = page.frame_locator("iframe")
    frame.locator("#audiences").wait_for(timeout=60_000)
    for a in discover(s.manifest_path):
        assert frame.locator(f'tr[data-audience="{a.name}"]').count() == 1, a.name
    assert "masked for your role" in frame.locator("body").inner_text()
    assert frame.locator("#measurement").count() == 1 and frame.locator("svg.interval").count() > 0
    assert frame.locator("#user").inner_text() == "marketer"
    browser_page.screenshot("beacon_page_marketer")
    assert browser_page.console_errors == []
    # Signed out (no session cookie): the page itself refuses, inside or outside the UI.
    page.context.clear_cookies()
    refused = page.goto(f"{url}/beacon/")
    assert refused.status == 401 and "Sign in to Airflow" in page.locator("#refused").inner_text()


def test_an_event_posted_to_beacon_serve_enters_a_journey_through_the_scheduler(stack):
    """Issue 19's trigger path under the real scheduler: `beacon serve` lands the event, `beacon_realtime` loads
    it and emits its Asset, the scheduler starts `beacon_journeys`, and the cart journey enters the person.
    Last in this module: it moves the warehouse clock to now."""
    from beacon.bench.stack import event_to_action

    s, info, api, runs = stack
    r = event_to_action(s, api, events=2, horizon=300)  # waits until both entered; 300 s is only the bound
    print("event -> journey entry through the scheduler:", r)
    assert r["posted"] == r["events"] == 2
    assert r["entered"] == 2, r  # both entered (the benchmark, not this test, holds the 60 s target)
    realtime = [x for x in api.runs("beacon_realtime") if x["state"] == "success"]
    assert realtime and all(x["run_type"] == "scheduled" for x in realtime)
    # The journeys run that entered them is one the realtime Asset started (not the 15-minute timer).
    journeys_runs = {x["dag_run_id"]: x for x in api.runs("beacon_journeys")}
    assert r["entry_dag_runs"], r
    for run_id in r["entry_dag_runs"]:
        assert journeys_runs[run_id]["run_type"] == "asset_triggered", journeys_runs[run_id]
        assert journeys_runs[run_id]["queued_at"] > runs["beacon_journeys"]["queued_at"]
