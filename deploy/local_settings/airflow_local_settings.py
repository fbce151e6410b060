"""Airflow imports `airflow_local_settings` in every process it starts; `make up` puts this folder on the path.

In the scheduler only, warm the imports Beacon's tasks need before the LocalExecutor forks its workers, so
every task process starts with them loaded (beacon.warm says why). The other components import nothing here.
"""

from __future__ import annotations

import os
import sys


def _is_scheduler() -> bool:
    return len(sys.argv) > 1 and sys.argv[1] == "scheduler" and os.environ.get("BEACON_WARM_IMPORTS", "1") != "0"


if _is_scheduler():
    import time
    from pathlib import Path

    from beacon.warm import warm

    _t0 = time.perf_counter()
    _took = warm(Path(os.environ.get("AIRFLOW__CORE__DAGS_FOLDER", "dags")))
    # Printed (logging is not configured yet at this point of Airflow's start): the scheduler's log keeps it.
    print(f"beacon: warmed {len(_took)} modules for the task processes in {time.perf_counter() - _t0:.1f} s",
          file=sys.stderr, flush=True)
