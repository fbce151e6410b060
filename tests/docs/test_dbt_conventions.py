"""docs/conventions.md's dbt rules hold for every model: YAML beside it with a description, `source()` only in
staging, and a unit test for every SQL model with logic (Python models cannot have dbt unit tests)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "dbt_project" / "models"
# Staging views that only select a table's columns (with an empty stand-in before the table exists): no logic.
NO_LOGIC = {"stg_ml__scores", "stg_activation__sync_log", "stg_journeys__transitions", "stg_journeys__finished"}


def _model_files() -> list[Path]:
    files = sorted([*MODELS.rglob("*.sql"), *MODELS.rglob("*.py")])
    assert len(files) > 40, "no models found: the test looks in the wrong place"
    return files


def _yaml_beside(model: Path) -> dict:
    p = model.with_suffix(".yml")
    return yaml.safe_load(p.read_text()) if p.exists() else {}


def test_every_model_has_its_yaml_beside_it_with_a_description():
    missing = []
    for f in _model_files():
        entry = next((m for m in _yaml_beside(f).get("models") or [] if m.get("name") == f.stem), None)
        if not entry or not str(entry.get("description", "")).strip():
            missing.append(str(f.relative_to(MODELS)))
    assert missing == []


def test_no_model_yaml_outside_its_models_file():
    # Models are declared in <model>.yml only (sources and exposures may be grouped per folder).
    for p in MODELS.rglob("*.yml"):
        doc = yaml.safe_load(p.read_text()) or {}
        for m in doc.get("models") or []:
            assert p.stem == m["name"], f"{p.relative_to(MODELS)} declares {m['name']}"
        for t in doc.get("unit_tests") or []:
            assert p.stem == t["model"], f"{p.relative_to(MODELS)} has a unit test of {t['model']}"


def test_source_is_used_only_in_staging():
    offenders = [str(f.relative_to(MODELS)) for f in _model_files()
                 if f.parent.name != "staging" and re.search(r"\bsource\(", f.read_text())]
    assert offenders == []


def test_every_sql_model_with_logic_has_a_unit_test():
    untested = [f.stem for f in _model_files() if f.suffix == ".sql" and f.stem not in NO_LOGIC
                and not any(t.get("model") == f.stem for t in _yaml_beside(f).get("unit_tests") or [])]
    assert untested == []
    # The exemptions are real models and stay free of logic: one source, no join, no filter, no grouping.
    for name in NO_LOGIC:
        sql = next(MODELS.rglob(f"{name}.sql")).read_text().lower()
        assert not re.search(r"\b(join|where (?!false)|group by|qualify|case)\b", sql), name
