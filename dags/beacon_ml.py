"""
### ML scores

Trains the LightGBM lead-conversion score on point-in-time warehouse features (out-of-time
validation), registers it, and scores every customer into `ml.scores`.
Scheduled on `beacon_marts`; emits `beacon_scores`.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from beacon.orchestration import DEFAULT_ARGS, MARTS, SCORES, START


@dag(schedule=[MARTS], start_date=START, catchup=False, max_active_runs=1, tags=["beacon", "ml"],
     default_args=DEFAULT_ARGS, doc_md=__doc__)
def beacon_ml():
    @task
    def train_lead_score() -> dict:
        from beacon.config import settings
        from beacon.warehouse import connect
        from ml.train import train_lead_score as train

        with connect() as con:
            return train(con, settings().registry_dir).__dict__

    @task(outlets=[SCORES])
    def score_customers(trained: dict) -> dict:
        from beacon.config import settings
        from beacon.warehouse import connect
        from ml.score import score_customers as score

        with connect() as con:
            return {**score(con, settings().registry_dir), "auc": trained["auc"]}

    score_customers(train_lead_score())


beacon_ml()
