"""The spark engine's configuration (issue 29; docs/scale.md): BEACON_ENGINE=spark picks profiles.yml's `spark` target,
whose session settings are the ones beacon.spark.session starts; the functions Spark lacks give DuckDB's results; a
raw column Spark has no type for is refused, named. No Spark session here (tests/dbt/test_spark_engine.py runs one)."""

from __future__ import annotations

import duckdb
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import Environment

from beacon.config import override_env
from beacon.config import settings as beacon_settings
from beacon.dbt import dbt_target
from beacon.spark.raw import spark_ddl
from beacon.spark.session import nfc_normalize, spark_conf, strip_accents


def _profile(env: dict[str, str]) -> dict:
    """profiles.yml rendered the way dbt renders it (env_var from `env`, as_number)."""
    text = (beacon_settings().dbt_project_dir / "profiles.yml").read_text()
    jinja = Environment()
    jinja.filters["as_number"] = lambda v: int(v)

    def render(node):
        if isinstance(node, dict):
            return {k: render(v) for k, v in node.items()}
        if isinstance(node, str) and "{{" in node:
            return jinja.from_string(node).render(env_var=lambda name, default=None: env.get(name, default))
        return node

    return render(yaml.safe_load(text))["beacon"]


def test_the_spark_engine_picks_the_spark_target(monkeypatch):
    monkeypatch.delenv("BEACON_WAREHOUSE_KEY", raising=False)
    with override_env(BEACON_ENGINE="spark"):
        assert dbt_target() == "spark"
    with override_env(BEACON_ENGINE="duckdb"):
        assert dbt_target() == "local"
    assert _profile({"BEACON_ENGINE": "spark"})["target"] == "spark"
    assert _profile({"BEACON_ENGINE": " Spark "})["target"] == "spark"
    assert _profile({})["target"] == "local"


def test_the_profile_starts_the_session_beacon_starts(tmp_path):
    with override_env(BEACON_DATA_DIR=str(tmp_path)):
        ours = spark_conf(beacon_settings())
    spark = _profile({"BEACON_DATA_DIR": str(tmp_path)})["outputs"]["spark"]
    assert spark["type"] == "spark" and spark["method"] == "session"
    assert {k: str(v) for k, v in spark["server_side_parameters"].items()} == ours
    assert ours["spark.master"] == "local[2]" and str(tmp_path / "spark" / "warehouse") in ours.values()


def test_the_thrift_target_reads_host_and_port_from_the_environment():
    thrift = _profile({"BEACON_SPARK_HOST": "spark.internal", "BEACON_SPARK_PORT": "10001"})["outputs"]["spark_thrift"]
    assert (thrift["method"], thrift["host"], int(thrift["port"])) == ("thrift", "spark.internal", 10001)
    assert not {"password", "token"} & set(thrift)  # no secret in the file


# Characters Python's Unicode database knows (Cn: unassigned there). DuckDB's utf8proc follows a later Unicode
# version, so a mark assigned since (e.g. U+1E4EC, Nag Mundari, Unicode 15) is stripped by DuckDB and kept by the
# Python function Spark runs: a documented difference (strip_accents' docstring), not a case to compare.
@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs", "Cn")), max_size=30))
def test_the_session_functions_give_duckdbs_results(text):
    con = duckdb.connect()
    want_nfc, want_plain = con.execute("SELECT nfc_normalize(?), strip_accents(nfc_normalize(?))",
                                       [text, text]).fetchone()
    assert nfc_normalize(text) == want_nfc
    assert strip_accents(nfc_normalize(text)) == want_plain
    assert strip_accents(None) is None and nfc_normalize(None) is None


def test_a_raw_column_spark_has_no_type_for_is_refused_by_name():
    assert spark_ddl([("id", "VARCHAR"), ("at", "TIMESTAMP"), ("n", "BIGINT")], "raw.t") == \
        "`id` string, `at` timestamp_ntz, `n` bigint"
    with pytest.raises(ValueError, match=r"raw\.t: no Spark type for column\(s\) tags VARCHAR\[\]"):
        spark_ddl([("id", "VARCHAR"), ("tags", "VARCHAR[]")], "raw.t")
