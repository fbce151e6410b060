"""`beacon journeys status` shows a split's experiment: undecided with its figures, then the decision."""

from __future__ import annotations

import json
from datetime import timedelta

import duckdb
import yaml
from support.activation_world import AS_OF, segment, warehouse

from beacon.cli import main
from beacon.config import override_env, settings

JOURNEY = {"name": "ab_test", "version": 1, "entry": {"audience": "welcome_new_subscribers"}, "start": "test",
           "nodes": [{"id": "test", "type": "split", "arms": [{"name": "a", "weight": 1, "next": "hold"},
                                                              {"name": "b", "weight": 1, "next": "hold"}],
                      "winner": {"metric": "converted", "min_people": 50, "after": "1d"}},
                     {"id": "hold", "type": "wait", "duration": "7d", "next": "done"},
                     {"id": "done", "type": "exit"}]}


def test_status_shows_the_experiment_then_its_decision(tmp_path, capsys):
    home = tmp_path / "home"
    (home / "journeys" / "templates").mkdir(parents=True)
    (home / "journeys" / "ab_test.yml").write_text(yaml.safe_dump(JOURNEY))
    path = tmp_path / "w.duckdb"
    con = warehouse(400, duckdb.connect(str(path)))
    segment(con, "welcome_new_subscribers", [f"c{i}" for i in range(400)])
    con.execute("CREATE SCHEMA measurement")
    con.execute("""CREATE TABLE measurement.campaign_outcome_events (customer_id VARCHAR, event_type VARCHAR,
        occurred_at TIMESTAMP, revenue DOUBLE)""")
    con.close()
    with override_env(BEACON_HOME=str(home), BEACON_DBT_PROJECT_DIR=str(settings().dbt_project_dir),
                      BEACON_DATA_DIR=str(tmp_path / "data"), BEACON_WAREHOUSE=str(path)):
        assert main(["journeys", "advance", "ab_test", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["experiments"] == {"test": "nobody assigned yet"}
        assert main(["journeys", "status", "ab_test"]) == 0
        text = capsys.readouterr().out
        assert "Experiment at test (converted): undecided" in text and "too early" in text
        con = duckdb.connect(str(path))
        con.execute("""INSERT INTO measurement.campaign_outcome_events SELECT customer_id, 'order', ?, 10
            FROM journeys.transitions WHERE arm = 'b' AND hash(customer_id) % 2 = 0""", [AS_OF + timedelta(hours=1)])
        con.close()
        later = str(AS_OF + timedelta(days=1))
        assert main(["journeys", "advance", "ab_test", "--clock", later, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["experiments"]["test"].startswith("decided: b beats")
        assert main(["journeys", "status", "ab_test", "--json"]) == 0
        [x] = json.loads(capsys.readouterr().out)["experiments"]
        assert x["state"] == "decided" and x["winner"] == "b" and x["decided_at"] == later
        means = {a["arm"]: a["mean"] for a in x["arms"]}
        assert means["a"] == 0.0 and 0.3 < means["b"] < 0.7
        assert len(x["decisions"]) == 1 and x["decisions"][0]["rule"]["min_people"] == 50
        assert main(["journeys", "status", "ab_test"]) == 0
        assert "winner b at " + later in capsys.readouterr().out
