"""Identity resolution through the dbt identity models on generated worlds: a reduced sweep of sizes and seeds
(the 100k-people, seed-42 world collapsed to F1 0.015 before issue 12), and a guard trip that keeps the
previous ids and model and blocks activation."""

from __future__ import annotations

import json

import duckdb
import pytest

from beacon.bench.identity_sweep import SWEEP_MAX_CLUSTER, SWEEP_MIN_F1, summarize, sweep

pytestmark = pytest.mark.e2e


def test_reduced_sweep_never_collapses():
    rows = sweep((10_000, 30_000, 100_000), (42, 1, 2))
    print(json.dumps(summarize(rows), indent=1))
    for r in rows:
        assert "error" not in r, r
        assert r["f1"] >= SWEEP_MIN_F1, r
        assert r["largest_cluster"] <= SWEEP_MAX_CLUSTER, r
    issue_world = next(r for r in rows if r["people"] == 100_000 and r["seed"] == 42)
    assert issue_world["f1"] >= 0.99 and issue_world["precision"] >= 0.99


def _degenerate(model_json: str) -> str:
    """The model issue 12 found: a prior of 0.37 and no phone comparison."""
    d = json.loads(model_json)
    d["settings"]["probability_two_random_records_match"] = 0.369
    d["settings"]["comparisons"] = [c for c in d["settings"]["comparisons"] if c["output_column_name"] != "phone"]
    return json.dumps(d)


def test_a_guard_trip_keeps_ids_and_model_and_blocks_activation(tmp_path):
    from beacon.activation.activate import quality_gate
    from beacon.config import override_env, settings
    from beacon.generate import GenConfig, generate
    from beacon.identity.generated import _build, _persons_only_landing
    from beacon.ingest import load_landing

    data = tmp_path / "data"
    with override_env(BEACON_DATA_DIR=str(data), BEACON_DBT_TARGET_DIR=str(tmp_path / "dbt_target")):
        s = settings()
        persons = tmp_path / "persons"
        generate(GenConfig(people=3000, seed=5, day=1), data)
        _persons_only_landing(s.landing_dir, persons)
        load_landing(persons, warehouse=s.warehouse_path)
        _build(s, quiet=True)

        def snapshot():
            with duckdb.connect(str(s.warehouse_path)) as con:
                events = con.execute("SELECT * FROM intermediate.int_identity_events ORDER BY ALL").fetchall()
                models = con.execute("SELECT * FROM intermediate.identity_linker_models ORDER BY ALL").fetchall()
                gate = quality_gate(con, "test", "2026-07-01")
            return events, models, gate

        events1, models1, gate1 = snapshot()
        assert not gate1["open"] and len(models1) == 1
        # A corrupted model in the store (as if an earlier trainer had saved the degenerate one).
        with duckdb.connect(str(s.warehouse_path)) as con:
            con.execute("UPDATE intermediate.identity_linker_models SET model_json = ?", [_degenerate(models1[0][1])])
        _, bad_models, _ = snapshot()

        generate(GenConfig(people=3000, seed=5, day=2), data)
        _persons_only_landing(s.landing_dir, persons)
        load_landing(persons, warehouse=s.warehouse_path)
        with pytest.raises(RuntimeError, match="dbt build of the identity models failed"):
            _build(s, quiet=True)
        events2, models2, gate2 = snapshot()
        assert events2 == events1  # every record keeps its previous customer id; nothing was appended
        assert models2 == bad_models  # no model was stored by the refused run
        assert gate2["open"]
        assert any(f.startswith("identity_resolution: model_prior_plausible") for f in gate2["failures"])
        assert any(f.startswith("identity_resolution: model_has_every_comparison") for f in gate2["failures"])
        with duckdb.connect(str(s.warehouse_path)) as con:  # the gate recorded a blocked activation run
            status = con.execute("SELECT status, message FROM activation.sync_runs WHERE run_id = 'test'").fetchall()
        assert status and {row[0] for row in status} == {"blocked"} and "model_prior_plausible" in status[-1][1]

        # Repaired (the good model back): the next build passes its guards, resolves day 2, and closes the breaker.
        with duckdb.connect(str(s.warehouse_path)) as con:
            con.execute("UPDATE intermediate.identity_linker_models SET model_json = ?", [models1[0][1]])
        _build(s, quiet=True)
        events3, _, gate3 = snapshot()
        assert len(events3) > len(events1) and not gate3["open"]
