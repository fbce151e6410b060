"""`beacon ml evaluate|models|promote|rollback`: the lead learner on any CSV and the model registry."""

from __future__ import annotations

from beacon.cli.render import console, emit, kv_table, table

# The registered models (ml.score.MODELS; not imported here because that loads LightGBM on every command).
MODELS = ["lead_score", "churn", "ltv"]


def cmd_evaluate(args) -> int:
    from ml.evaluate import SEED, main_evaluate

    d = main_evaluate(args.csv, args.target, positive=args.positive, drop=args.drop or (), sep=args.sep,
                      seed=SEED if args.seed is None else args.seed)

    def render(d):
        console.print(kv_table(f"Lead-scoring learner on {d['file']}", {
            "rows": d.get("rows"), "target": f"{d['target']} (positive = {d['positive']!r})",
            "cv AUC (5-fold, mean ± sd)": f"{d['cv_auc_mean']:.4f} ± {d['cv_auc_std']:.4f}",
            "time-ordered holdout AUC (last 20%)": f"{d['holdout_auc']:.4f}",
            "seconds": d.get("seconds")}))
    emit(d, args.json, render)
    return 0


def cmd_models(args) -> int:
    from beacon.config import settings
    from ml.registry import listing

    rows = listing(settings().registry_dir, args.model)

    def render(rows):
        t = table("Model versions (* = champion)",
                  ("model", "version", "", "trained_at", "train_cutoff", "metric", "value", "decision"))
        for r in rows:
            t.add_row(r["model"], r["version"], "*" if r["champion"] else "", str(r["trained_at"]),
                      str(r["train_cutoff"]), str(r["metric"]), str(r["value"]), str(r["decision"] or ""))
        console.print(t)
    emit(rows, args.json, render)
    return 0


def _champion_line(d: dict) -> None:
    console.print(f"{d['model']}: champion {d['champion']} (was {d['previous']})")


def cmd_promote(args) -> int:
    from beacon.config import settings
    from ml.registry import promote

    emit(promote(settings().registry_dir, args.model, args.version, reason=args.reason), args.json, _champion_line)
    return 0


def cmd_rollback(args) -> int:
    from beacon.config import settings
    from ml.registry import rollback

    emit(rollback(settings().registry_dir, args.model, reason=args.reason), args.json, _champion_line)
    return 0


def cmd_recommend(args) -> int:
    from beacon.personalize.recommend import write_recommendations
    from beacon.warehouse import connect

    with connect() as con:
        d = write_recommendations(con, k=args.k, holdout_days=args.holdout_days)

    def render(d):
        k = d["k"]
        console.print(kv_table("Recommendations (item-item on order co-occurrence) vs popularity", {
            "warehouse clock": d["as_of"], "time split (train before, test after)": d["cutoff"],
            "test customers (bought something new after the split)": d["test_customers"],
            f"recall@{k} model": d[f"recall_at_{k}_model"], f"recall@{k} popularity": d[f"recall_at_{k}_popularity"],
            "model version written": d["model_version_written"], "rows in ml.recommendations": d["rows_written"]}))
        for note in (d.get("note"), d.get("skipped")):
            if note:
                console.print(f"[yellow]{note}[/yellow]")
    emit(d, args.json, render)
    return 0


def register(sub) -> None:
    m = sub.add_parser("ml", help="machine learning")
    msub = m.add_subparsers(dest="ml_command", required=True)
    me = msub.add_parser("evaluate", help="cross-validated and time-ordered AUC of the lead learner on any CSV")
    me.add_argument("--csv", required=True)
    me.add_argument("--target", required=True)
    me.add_argument("--positive", default=None, help="the positive class value (inferred for yes/1/true)")
    me.add_argument("--drop", default=None, help="comma-separated columns to leave out")
    me.add_argument("--sep", default=None, help="field separator (sniffed when omitted)")
    me.add_argument("--seed", type=int, default=None, help="seed of the CV folds and the learner (default 7)")
    me.add_argument("--json", action="store_true")
    me.set_defaults(func=cmd_evaluate)
    mm = msub.add_parser("models", help="registered model versions, champion marked")
    mm.add_argument("--model", default=None, choices=MODELS)
    mm.add_argument("--json", action="store_true")
    mm.set_defaults(func=cmd_models)
    mp = msub.add_parser("promote", help="make a registered version the champion")
    mp.add_argument("model", choices=MODELS)
    mp.add_argument("version")
    mp.add_argument("--reason", default="manual promote")
    mp.add_argument("--json", action="store_true")
    mp.set_defaults(func=cmd_promote)
    mr = msub.add_parser("rollback", help="return to the previous champion")
    mr.add_argument("model", choices=MODELS)
    mr.add_argument("--reason", default="manual rollback")
    mr.add_argument("--json", action="store_true")
    mr.set_defaults(func=cmd_rollback)
    mc = msub.add_parser("recommend", help="train the product recommender, write ml.recommendations, print recall@k")
    mc.add_argument("--k", type=int, default=10, help="products per customer (default 10)")
    mc.add_argument("--holdout-days", type=int, default=60, help="the held-out window before the warehouse clock")
    mc.add_argument("--json", action="store_true")
    mc.set_defaults(func=cmd_recommend)
