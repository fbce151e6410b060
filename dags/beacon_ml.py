"""
### ML scores

Trains (when due: every `BEACON_RETRAIN_EVERY_DAYS`, default 7, or when its scores drift; `ml/schedule.py`)
the three LightGBM scores — lead conversion (30 days), churn of past buyers (90 days) and
12-month lifetime value — on point-in-time warehouse features with out-of-time validation, registers
each version (champion/challenger on the same holdout) and writes the HTML model report; then scores
every customer with each champion into `ml.scores` (score, decile, top-3 reasons) and records drift
(PSI against the previous scoring run) and the fairness audit in `ml.drift` and `ml.fairness`; finally
builds the dbt segments that read the scores (a Cosmos task group, like the marts), so activation
sees today's scores; and writes product recommendations (`ml.recommendations`, item-item on order
co-occurrence, with recall@10 against popularity in `ml.recommendation_evaluations`).
With `BEACON_ENGINE=spark`, scoring and the score-based segments run on Spark (`beacon.spark.chain`); training
and recommendations stay on one node.
Scheduled on `beacon_marts`; emits `beacon_scores`.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from beacon.config import settings
from beacon.cosmos_render import dbt_task_group
from beacon.dbt import SCORE_BASED
from beacon.orchestration import DEFAULT_ARGS, MARTS, SCORES, START

_S = settings()


@dag(schedule=[MARTS], start_date=START, catchup=False, max_active_runs=1, tags=["beacon", "ml"],
     default_args=DEFAULT_ARGS, doc_md=__doc__)
def beacon_ml():
    @task
    def train_models() -> dict:
        # Only the models that are due (ml.schedule: weekly by default, or when the scores drift); the others keep
        # their published champion, which scoring uses.
        from beacon.warehouse import connect
        from ml.train import train_scheduled

        with connect() as con:
            return train_scheduled(con, _S.registry_dir, _S.retrain_every_days)

    @task
    def score_customers(trained: dict) -> dict:
        import logging

        from beacon.warehouse import connect
        from ml.score import score_all

        if _S.engine == "spark":  # the champions score on Spark (beacon.spark.chain)
            from beacon.spark.chain import score_all as score_on_spark

            scored = score_on_spark(_S.registry_dir)
        else:
            with connect() as con:
                scored = score_all(con, _S.registry_dir)
        if scored["drift_state"] != "ok":
            logging.getLogger(__name__).warning("ML drift state %s: %s", scored["drift_state"],
                                                {m: v["drifted"] for m, v in scored["models"].items()})
        return {**scored, "report": trained["report"]}

    @task
    def recommend_products() -> dict:
        # Item-item recommendations (ml.recommendations) with their recall@10 against popularity.
        from beacon.personalize.recommend import write_recommendations
        from beacon.warehouse import connect

        with connect() as con:
            return write_recommendations(con)

    @task(outlets=[SCORES])
    def publish_scores(scored: dict) -> dict:
        return scored

    scored = score_customers(train_models())
    # The segments that read ml.scores (hot_b2b_leads, high_value_churn_risk), with their tests.
    # In-process dbt: a build of two segments and their tests, smaller than starting dbt in a child process.
    if _S.engine == "spark":
        @task
        def build_scored_on_spark() -> dict:
            from beacon.spark.chain import build_score_based

            return build_score_based()

        segments = build_scored_on_spark()
    else:
        segments = dbt_task_group("dbt_scored", select=[SCORE_BASED], s=_S, in_process=True)
    scored >> segments
    published = publish_scores(scored)
    segments >> published
    scored >> recommend_products() >> published


beacon_ml()
