"""The segment contract: discovered from the manifest; malformed contracts fail naming file and field."""

from __future__ import annotations

import copy
import json

import pytest

from beacon.audiences import ContractError, discover

GOOD = {"name": "vip", "description": "d", "owner": "o", "channels": ["file"], "priority": 10,
        "holdout_pct": 5, "refresh": "daily"}


def _manifest(tmp_path, *metas, columns=("customer_id",), description=""):
    nodes = {}
    for i, meta in enumerate(metas):
        nodes[f"model.beacon.seg{i}"] = {
            "resource_type": "model", "name": f"seg{i}", "schema": "segments", "alias": f"seg{i}",
            "description": description,
            "original_file_path": f"models/segments/seg{i}.sql",
            "config": {"meta": {"audience": meta} if meta is not None else {}},
            "columns": {c: {} for c in columns},
        }
    nodes["model.beacon.dim_customers"] = {"resource_type": "model", "name": "dim_customers",
                                           "original_file_path": "models/marts/dim_customers.sql"}
    p = tmp_path / "manifest.json"
    p.write_text(json.dumps({"nodes": nodes}))
    return p


def test_discovers_audiences_by_priority(tmp_path):
    low = {**GOOD, "name": "low", "priority": 1}
    found = discover(_manifest(tmp_path, low, GOOD))
    assert [a.name for a in found] == ["vip", "low"]
    assert found[0].relation == "segments.seg1" and found[0].path == "models/segments/seg1.sql"


@pytest.mark.parametrize("change, message", [
    ({"owner": None}, "meta.audience.owner is missing"),
    ({"channels": ["fax"]}, "unknown channel(s) ['fax']"),
    ({"holdout_pct": 150}, "holdout_pct must be a number in [0, 100)"),
    ({"refresh": "sometimes"}, "refresh must be one of"),
    ({"priority": "high"}, "priority must be an integer"),
])
def test_malformed_contract_names_file_and_field(tmp_path, change, message):
    meta = copy.deepcopy(GOOD)
    for k, v in change.items():
        if v is None:
            meta.pop(k)
        else:
            meta[k] = v
    with pytest.raises(ContractError) as exc:
        discover(_manifest(tmp_path, meta))
    assert "models/segments/seg0.sql" in str(exc.value) and message in str(exc.value)


def test_name_and_description_default_to_the_models(tmp_path):
    bare = {k: v for k, v in GOOD.items() if k not in ("name", "description")}
    [a] = discover(_manifest(tmp_path, bare, description="Bought twice this month."))
    assert (a.name, a.description) == ("seg0", "Bought twice this month.")
    [b] = discover(_manifest(tmp_path, {**bare, "name": "vip", "description": "own"}, description="model's"))
    assert (b.name, b.description) == ("vip", "own")  # meta.audience wins where it says something
    with pytest.raises(ContractError, match=r"seg0.sql.*description is missing \(and the model has no description"):
        discover(_manifest(tmp_path, bare))


def test_duplicate_name_and_missing_key_column_fail(tmp_path):
    with pytest.raises(ContractError, match="already used by models/segments/seg0.sql"):
        discover(_manifest(tmp_path, GOOD, GOOD))
    with pytest.raises(ContractError, match="key column customer_id is not declared"):
        discover(_manifest(tmp_path, GOOD, columns=("email",)))
    with pytest.raises(ContractError, match="no meta.audience block"):
        discover(_manifest(tmp_path, None))


def test_project_segments_satisfy_the_contract(manifest):
    names = [a.name for a in discover(manifest)]
    assert "cart_abandoners" in names


def test_exposures_declare_every_builtin_audience_for_each_of_its_channels(manifest):
    # Lineage in dbt docs: an audience delivered on a channel is a dependency of that channel's exposure.
    doc = json.loads(manifest.read_text())
    exposure_for = {"file": "audience_file_exports", "email": "email_campaigns", "webhook": "crm_webhook",
                    "ads": "ad_audiences"}
    deps = {e["name"]: set(e["depends_on"]["nodes"]) for e in doc["exposures"].values()}
    for a in discover(manifest):
        for channel in a.channels:
            assert f"model.beacon.{a.model}" in deps[exposure_for[channel]], (a.name, channel)
