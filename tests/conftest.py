"""Test environment: a throwaway data folder and a project-local Airflow home, set before Airflow is imported."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_DATA = Path(tempfile.mkdtemp(prefix="beacon-test-"))
os.environ["BEACON_DATA_DIR"] = str(_DATA)
os.environ["BEACON_DBT_TARGET_DIR"] = str(_DATA / "dbt_target")
os.environ["AIRFLOW_HOME"] = str(ROOT / ".airflow-test")

from support.browser import browser_page  # noqa: E402,F401  (the headless-Chromium fixture)

from beacon.pipeline import airflow_env  # noqa: E402  (needs the variables above)

os.environ.update(airflow_env())


# Every skip the suite may take, with the condition that causes it (docs/testing.md lists them for people).
# In CI (CI or BEACON_REQUIRE_SHARED_DATA set) a skip whose test id is not listed here fails the run instead:
# CI must report zero skipped tests, so a missing tool or data set can never pass unnoticed.
ALLOWED_SKIPS_IN_CI: dict[str, str] = {}


def strict_skips() -> bool:
    """True in CI: a skip is a failure unless it is on the allow-list."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes") or os.environ.get("BEACON_REQUIRE_SHARED_DATA") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and strict_skips() \
            and item.nodeid not in ALLOWED_SKIPS_IN_CI:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} would be skipped in CI ({reason}); install what it needs, or add it "
                           f"to ALLOWED_SKIPS_IN_CI in tests/conftest.py and docs/testing.md with the reason")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _DATA


@pytest.fixture(scope="session")
def manifest() -> Path:
    """A current dbt manifest (DAG parsing and audience discovery read it)."""
    from beacon.dbt import ensure_manifest

    return ensure_manifest()


@pytest.fixture(scope="session")
def airflow_home(manifest) -> Path:
    from beacon.pipeline import ensure_airflow

    return ensure_airflow()


@pytest.fixture(scope="session")
def dagbag(manifest):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


# Hypothesis profiles. CI uses Hypothesis' own `ci` profile (loaded when CI is set): derandomized, the same
# examples every run. `journeys-thorough` (make test-journeys-thorough): 500 random journeys x worlds.
# `fuzz` (make fuzz, with BEACON_FUZZ=1 and a fresh --hypothesis-seed that the target prints): every Hypothesis
# test randomized, no example database, so each run tries new inputs.
from hypothesis import settings as _hyp_settings  # noqa: E402

_hyp_settings.register_profile("journeys-thorough", max_examples=500, deadline=None, derandomize=False)
_hyp_settings.register_profile("fuzz", deadline=None, derandomize=False, database=None, print_blob=True)
