"""`beacon`: the single command-line entry point. Tables by default, JSON with --json."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console(stderr=False)
err = Console(stderr=True)


def _emit(data, as_json: bool, render) -> None:
    if as_json:
        print(json.dumps(data, indent=2, default=str))
    else:
        render(data)


def _kv_table(title: str, rows: dict) -> Table:
    t = Table(title=title, title_justify="left")
    t.add_column("what")
    t.add_column("value", justify="right")
    for k, v in rows.items():
        t.add_row(str(k), f"{v:,}" if isinstance(v, int) else str(v))
    return t


# ---------------------------------------------------------------------------------------------- generate


def cmd_generate(args) -> int:
    from beacon.generate import GenConfig, generate

    cfg = GenConfig(people=args.people, seed=args.seed, day=args.day, bad_rate=args.bad_rate, dup_rate=args.dup_rate,
                    **({"as_of": date.fromisoformat(args.as_of)} if args.as_of else {}))
    s = generate(cfg, Path(args.out))

    def render(d):
        console.print(_kv_table(f"Generated day {d['day']} ({d['date']}) in {d['seconds']} s",
                                {**{f"rows: {k}": v for k, v in d["rows"].items()},
                                 **{f"bad rows: {k}": v for k, v in d["bad_rows"].items()},
                                 "people (total)": d["people_total"], "people (new)": d["people_new"],
                                 "landing": d["landing"], "truth": d["truth"]}))
    _emit(s.to_dict(), args.json, render)
    return 0


# ---------------------------------------------------------------------------------------------- demo


def cmd_demo(args) -> int:
    from beacon.pipeline import run_demo

    with console.status("starting") as status:
        def progress(stage: str) -> None:
            status.update(f"[bold]running {stage}[/bold]")
            console.log(f"{stage} …")
        result = run_demo(people=args.people, seed=args.seed, days=args.days, progress=progress)
    d = result.to_dict()

    def render(d):
        console.print(_kv_table("Stage seconds", d["seconds"]))
        console.print(_kv_table("Raw layer", {**d["raw"], **{f"quarantined: {k}": v for k, v in d["quarantine"].items()}}))
        console.print(_kv_table("Warehouse rows", d["warehouse"]))
        t = Table(title="Audiences", title_justify="left")
        for c in ("audience", "members", "exported", "held_out", "suppressed"):
            t.add_column(c, justify="right" if c != "audience" else "left")
        for a in d["audiences"]:
            t.add_row(a["audience"], *(f"{a[c]:,}" for c in ("members", "exported", "held_out", "suppressed")))
        console.print(t)
        console.print(_kv_table("Lead score model", d["model"]))
        if d.get("models"):
            console.print(_kv_table("Champion models (holdout)", {
                m["model"]: f"{m['version']}  {m['metric']} {m['value']}  rows {m['train_rows']}/{m['valid_rows']}"
                for m in d["models"]}))
            console.print(f"Model report: [bold]{d['model_report']}[/bold]")
        console.print(f"Exports: [bold]{d['exports_dir']}[/bold]  (one folder per audience and day: CSV + manifest.json)")
    _emit(d, args.json, render)
    return 0


# ---------------------------------------------------------------------------------------------- ingest


def cmd_ingest(args) -> int:
    from rich.markup import escape

    from beacon.config import settings
    from beacon.ingest import load_landing
    from beacon.warehouse import WarehouseBusy

    try:
        s = load_landing(args.landing or settings().landing_dir,  # a folder or an fsspec URL (s3://…)
                         until=date.fromisoformat(args.until) if args.until else None,
                         lock_wait=0 if args.no_wait else None)
    except WarehouseBusy as exc:  # one line, no traceback; nothing was loaded
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 2
    d = s.to_dict()

    def render(d):
        console.print(_kv_table("Ingest", {**d["totals"], **{f"quarantined: {k}": v for k, v in d["reasons"].items()},
                                           **{f"new columns: {k}": ", ".join(v) for k, v in d["schema_changes"].items()}}))
        for f in d["failures"]:
            err.print(f"[red]FAILED[/red] ({f['reason']}) {escape(f['error'])}", highlight=False, soft_wrap=True)
        if d["totals"]["files_failed"]:
            err.print(f"{d['totals']['files_failed']} of {len(d['files'])} file(s) failed; the others loaded")
    _emit(d, args.json, render)
    return 1 if d["totals"]["files_failed"] else 0


# ---------------------------------------------------------------------------------------------- audiences


def cmd_audiences_list(args) -> int:
    from beacon.audiences import discover
    from beacon.config import settings
    from beacon.dbt import ensure_manifest
    from beacon.warehouse import connect, table_exists

    s = settings()
    audiences = discover(ensure_manifest(s))
    rows = []
    with connect() as con:
        for a in audiences:
            schema, table = a.relation.split(".")
            size = con.execute(f"SELECT count(*) FROM {a.relation}").fetchall()[0][0] if table_exists(con, schema, table) else None
            last = None
            if table_exists(con, "audiences", "membership_events"):
                last = con.execute("SELECT max(as_of) FROM audiences.membership_events WHERE audience = ?",
                                   [a.name]).fetchall()[0][0]
            rows.append({"name": a.name, "owner": a.owner, "size": size, "channels": list(a.channels),
                         "last_refresh": str(last) if last else None,
                         "priority": a.priority, "holdout_pct": a.holdout_pct, "refresh": a.refresh, "path": a.path})

    def render(rows):
        t = Table(title="Audiences", title_justify="left")
        for c in ("name", "owner", "size", "channels", "priority", "holdout_pct", "refresh", "last_refresh"):
            t.add_column(c)
        for r in rows:
            t.add_row(r["name"], r["owner"], "not built" if r["size"] is None else f"{r['size']:,}",
                      ", ".join(r["channels"]), str(r["priority"]), str(r["holdout_pct"]), r["refresh"],
                      r["last_refresh"] or "never")
        console.print(t)
    _emit(rows, args.json, render)
    return 0


def _find_audience(name: str):
    from beacon.audiences import discover
    from beacon.config import settings
    from beacon.dbt import ensure_manifest

    audiences = discover(ensure_manifest(settings()))
    match = [a for a in audiences if a.name == name]
    if not match:
        raise ValueError(f"no audience named {name!r}; known: {', '.join(a.name for a in audiences)}")
    return match[0], audiences


def cmd_audiences_preview(args) -> int:
    from beacon.audiences import preview
    from beacon.warehouse import connect

    audience, audiences = _find_audience(args.name)
    with connect() as con:
        d = preview(con, audience, audiences, sample=args.sample)

    def render(d):
        console.print(f"[bold]{d['audience']}[/bold]: {d['size']:,} members")
        if d["sample"]:
            t = Table(title="Sample members (the columns that qualified them)", title_justify="left")
            cols = list(d["sample"][0].keys())
            for c in cols:
                t.add_column(c)
            for r in d["sample"]:
                t.add_row(*("" if r[c] is None else str(r[c]) for c in cols))
            console.print(t)
        t = Table(title="Overlap with other audiences", title_justify="left")
        for c in ("audience", "shared", "share_of_this"):
            t.add_column(c)
        for r in d["overlap"]:
            t.add_row(r["audience"], f"{r['shared']:,}", f"{r['share_of_this']:.1%}")
        console.print(t)
    _emit(d, args.json, render)
    return 0


def cmd_audiences_history(args) -> int:
    from beacon.audiences import membership_changes
    from beacon.warehouse import connect

    with connect() as con:
        rows = membership_changes(con, args.name)

    def render(rows):
        t = Table(title="Audience entries and exits per run", title_justify="left")
        for c in ("as_of", "audience", "entered", "exited"):
            t.add_column(c)
        for r in rows:
            t.add_row(r["as_of"], r["audience"], f"{r['entered']:,}", f"{r['exited']:,}")
        console.print(t)
    _emit(rows, args.json, render)
    return 0


def cmd_audiences_diff(args) -> int:
    from beacon.audiences import diff
    from beacon.warehouse import connect

    audience, audiences = _find_audience(args.name)
    with connect() as con:
        d = diff(con, audience, audiences, destination=args.destination)

    def render(d):
        console.print(_kv_table(f"{d['audience']} -> {d['destination']}: changes against the delivery of "
                                f"{d['last_delivered'] or 'never'}",
                                {k: d[k] for k in ("delivered_then", "sendable_now", "would_enter", "would_update",
                                                   "would_leave", "unchanged", "held_out", "invalid")}
                                | {f"suppressed: {k}": v for k, v in d["suppressed"].items()}))
    _emit(d, args.json, render)
    return 0


# ---------------------------------------------------------------------------------------------- activate


def cmd_activate(args) -> int:
    from beacon.activation.activate import activate, quality_gate
    from beacon.config import settings
    from beacon.dbt import ensure_manifest
    from beacon.warehouse import clock, connect

    s = settings()
    manifest = ensure_manifest(s)
    with connect() as con:
        as_of = clock(con)
        if not args.dry_run:
            gate = quality_gate(con, f"cli:{args.audience}:{args.destination}", as_of)
            if gate["open"]:
                err.print("[red]blocked:[/red] the data-quality circuit breaker is open; nothing was sent:")
                for f in gate["failures"]:
                    err.print(f"  - {f}")
                return 3
        d = activate(con, manifest, args.audience, args.destination, str(s.exports_dir), as_of, dry_run=args.dry_run,
                     mode=args.mode).to_dict()
    d["sample"] = d["sample"][: args.sample]

    def render(d):
        title = f"{d['audience']} -> {d['destination']} ({d['mode']}{', DRY RUN: nothing sent' if d['dry_run'] else ''})"
        console.print(_kv_table(title, {k: d[k] for k in ("status", "source_rows", "adds", "updates", "removes",
                                                          "unchanged", "invalid", "held_out", "delivered", "failed")}
                                | {f"suppressed: {k}": v for k, v in d["suppressed"].items()}))
        if d["sample"]:
            t = Table(title="Sample of the changes" + (" that would be sent" if d["dry_run"] else ""),
                      title_justify="left")
            cols = list(d["sample"][0].keys())
            for c in cols:
                t.add_column(c)
            for r in d["sample"]:
                t.add_row(*("" if r[c] is None else str(r[c]) for c in cols))
            console.print(t)
        if d["message"]:
            console.print(d["message"])
    _emit(d, args.json, render)
    return 0 if d["status"] in ("succeeded", "dry_run") else 1


# ---------------------------------------------------------------------------------------------- ml


def cmd_ml_evaluate(args) -> int:
    from ml.evaluate import SEED, main_evaluate

    d = main_evaluate(args.csv, args.target, positive=args.positive, drop=args.drop or (), sep=args.sep,
                      seed=SEED if args.seed is None else args.seed)

    def render(d):
        console.print(_kv_table(f"Lead-scoring learner on {d['file']}", {
            "rows": d.get("rows"), "target": f"{d['target']} (positive = {d['positive']!r})",
            "cv AUC (5-fold, mean ± sd)": f"{d['cv_auc_mean']:.4f} ± {d['cv_auc_std']:.4f}",
            "time-ordered holdout AUC (last 20%)": f"{d['holdout_auc']:.4f}",
            "seconds": d.get("seconds")}))
    _emit(d, args.json, render)
    return 0


# ---------------------------------------------------------------------------------------------- identity


def cmd_identity_evaluate(args) -> int:
    if (args.dataset is None) == (args.csv is None):
        raise ValueError("give either --dataset febrl3|febrl4|generated or --csv FILE --entity-col COL")
    if args.csv:
        if not args.entity_col:
            raise ValueError("--csv needs --entity-col (the true entity column, used only for scoring)")
        from beacon.identity.evaluate import evaluate_csv

        res = evaluate_csv(args.csv, args.entity_col, sep=args.sep, id_col=args.id_col)
    elif args.dataset == "generated":
        try:
            from beacon.identity.generated import evaluate_generated
        except ModuleNotFoundError as exc:
            if exc.name != "beacon.identity.generated":
                raise
            raise RuntimeError("--dataset generated needs beacon.identity.generated (the warehouse identity "
                               f"models), which is not installed here: {exc}") from exc
        res = evaluate_generated(people=args.people, seed=args.seed, world=Path(args.world) if args.world else None)
    else:
        from beacon.identity import evaluate as ev

        res = {"febrl1": lambda: ev.evaluate_febrl_dedupe(1), "febrl2": lambda: ev.evaluate_febrl_dedupe(2),
               "febrl3": ev.evaluate_febrl3, "febrl4": ev.evaluate_febrl4}[args.dataset]()
    d = res.to_dict() if hasattr(res, "to_dict") else dict(res)

    def render(d):
        console.print(_kv_table(f"Identity resolution on {d['dataset']}", {
            "records": d["records"], "true entities": d["true_entities"], "clusters": d["clusters"],
            "pairwise precision": f"{d['precision']:.4f}", "pairwise recall": f"{d['recall']:.4f}",
            "pairwise F1": f"{d['f1']:.4f}", "seconds": d["seconds"],
            **({"day-2 F1": d["day2_f1"], "id stability after day 2": d["id_stability"],
                "people merged on day 2": d["merged_people"]} if d.get("id_stability") is not None else {})}))
    _emit(d, args.json, render)
    return 0


def cmd_ml_models(args) -> int:
    from beacon.config import settings
    from ml.registry import listing

    rows = listing(settings().registry_dir, args.model)

    def render(rows):
        t = Table(title="Model versions (* = champion)", title_justify="left")
        for c in ("model", "version", "", "trained_at", "train_cutoff", "metric", "value", "decision"):
            t.add_column(c)
        for r in rows:
            t.add_row(r["model"], r["version"], "*" if r["champion"] else "", str(r["trained_at"]),
                      str(r["train_cutoff"]), str(r["metric"]), str(r["value"]), str(r["decision"] or ""))
        console.print(t)
    _emit(rows, args.json, render)
    return 0


def cmd_ml_promote(args) -> int:
    from beacon.config import settings
    from ml.registry import promote

    d = promote(settings().registry_dir, args.model, args.version, reason=args.reason)
    _emit(d, args.json, lambda d: console.print(f"{d['model']}: champion {d['champion']} (was {d['previous']})"))
    return 0


def cmd_ml_rollback(args) -> int:
    from beacon.config import settings
    from ml.registry import rollback

    d = rollback(settings().registry_dir, args.model, reason=args.reason)
    _emit(d, args.json, lambda d: console.print(f"{d['model']}: champion {d['champion']} (was {d['previous']})"))
    return 0


# ---------------------------------------------------------------------------------------------- bench


def cmd_bench_score(args) -> int:
    from ml.bench import bench_score

    d = bench_score(customers=args.customers, models=tuple(args.models.split(",")), seed=args.seed)

    def render(d):
        t = Table(title=f"Scoring benchmark, {d['customers']:,} customers", title_justify="left")
        for c in ("model", "trees", "score s", "write s", "total s", "rows/s"):
            t.add_column(c, justify="right" if c != "model" else "left")
        for m in d["models"]:
            t.add_row(m["model"], str(m["trees"]), f"{m['score_seconds']:.2f}",
                      f"{m['write_seconds']:.2f}", f"{m['seconds']:.2f}", f"{m['rows_per_s']:,.0f}")
        console.print(t)
    _emit(d, args.json, render)
    return 0


def cmd_bench_pipeline(args) -> int:
    from beacon.bench import bench_pipeline

    d = bench_pipeline(people=args.people, seed=args.seed, workdir=Path(args.workdir) if args.workdir else None,
                       keep=args.keep)

    def render(d):
        t = Table(title=f"Pipeline benchmark, {d['people']:,} people", title_justify="left")
        for c in ("stage", "seconds", "rows", "rows/s"):
            t.add_column(c, justify="right" if c != "stage" else "left")
        for st in d["stages"]:
            t.add_row(st["stage"], f"{st['seconds']:.2f}", f"{st['rows']:,}", f"{st['rows_per_s']:,.0f}")
        console.print(t)
    _emit(d, args.json, render)
    return 0


def cmd_bench_warehouse(args) -> int:
    from beacon.bench import bench_warehouse

    d = bench_warehouse(people=args.people, repeat=args.repeat, seed=args.seed,
                        world=Path(args.world) if args.world else None)

    def render(d):
        console.print(_kv_table(f"Warehouse orchestration overhead, {d['people']:,} people", {
            "plain dbt build (median s)": d["dbt_build_median"], "warehouse DAG via Cosmos (median s)": d["dag_median"],
            "ratio": d["overhead_ratio"], "Cosmos task group alone (median s)": d["dbt_group_median"],
            "task group ratio": d["dbt_group_ratio"], "tasks": d["tasks"]}))
    _emit(d, args.json, render)
    return 0


def cmd_bench_activation(args) -> int:
    from beacon.activation.bench import bench_activation

    d = bench_activation(members=args.members, changed=args.changed, rows=args.rows, fault_rate=args.fault_rate,
                         repeats=args.repeats)

    def render(d):
        console.print(_kv_table("Activation diff", d["diff"]))
        console.print(_kv_table("Webhook delivery", {k: v for k, v in d["webhook"].items() if not isinstance(v, dict)}))
    _emit(d, args.json, render)
    return 0


def cmd_bench_ingest(args) -> int:
    from beacon.ingest.bench import bench_ingest

    d = bench_ingest(people=args.people, seed=args.seed, world=Path(args.world) if args.world else None,
                     repeat=args.repeat)

    def render(d):
        t = Table(title=f"Ingest benchmark (events), {d['people']:,} people", title_justify="left")
        for c in ("run", "rows read", "seconds", "rows/s", "DuckDB read_json s", "ratio"):
            t.add_column(c, justify="right")
        for r in d["runs"]:
            t.add_row(str(r["repeat"]), f"{r['rows_read']:,}", f"{r['seconds']:.2f}", f"{r['rows_per_s']:,}",
                      f"{r['duckdb_read_json_seconds']:.2f}", f"{r['ratio']:.2f}")
        console.print(t)
        console.print(f"median ratio {d['median_ratio']} (target <= {d['target_ratio']})")
    _emit(d, args.json, render)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="beacon", description="Warehouse-native marketing automation.")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="write a seeded marketing world (landing files + ground truth)")
    g.add_argument("--people", type=int, default=20_000)
    g.add_argument("--out", required=True, help="folder that receives landing/ and truth/")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--day", type=int, default=1, help="1 = a year of history; 2, 3, … = daily increments")
    g.add_argument("--as-of", default=None, help="last calendar day of day 1 (YYYY-MM-DD)")
    g.add_argument("--bad-rate", type=float, default=0.002, help="share of bad rows per file")
    g.add_argument("--dup-rate", type=float, default=0.05, help="share of CRM people entered twice")
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=cmd_generate)

    d = sub.add_parser("demo", help="generate a world and run the four DAGs in-process (dag.test)")
    d.add_argument("--people", type=int, default=20_000)
    d.add_argument("--seed", type=int, default=42)
    d.add_argument("--days", type=int, default=1, help="also run the daily increments of days 2..N")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_demo)

    i = sub.add_parser("ingest", help="load landing files into the raw schema (outside Airflow)")
    i.add_argument("--landing", default=None)
    i.add_argument("--until", default=None, help="load landing days up to this date (YYYY-MM-DD)")
    i.add_argument("--no-wait", action="store_true",
                   help="refuse at once when another writer holds the warehouse (default: wait, "
                        "$BEACON_LOCK_WAIT_SECONDS or 300 s)")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_ingest)

    a = sub.add_parser("audiences", help="audiences defined as dbt segment models")
    asub = a.add_subparsers(dest="audiences_command", required=True)
    al = asub.add_parser("list", help="name, owner, size, channels, priority, holdout, refresh")
    al.add_argument("--json", action="store_true")
    al.set_defaults(func=cmd_audiences_list)
    ap = asub.add_parser("preview", help="size, sample members with qualifying columns, overlap with the others")
    ap.add_argument("name")
    ap.add_argument("--sample", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    ap.set_defaults(func=cmd_audiences_preview)
    ah = asub.add_parser("history", help="entries and exits per audience and run")
    ah.add_argument("name", nargs="?", default=None)
    ah.add_argument("--json", action="store_true")
    ah.set_defaults(func=cmd_audiences_history)
    ad = asub.add_parser("diff", help="who would enter and leave against the last delivered state")
    ad.add_argument("name")
    ad.add_argument("--destination", default="file", help="which destination's delivered state (default: file)")
    ad.add_argument("--json", action="store_true")
    ad.set_defaults(func=cmd_audiences_diff)

    ac = sub.add_parser("activate", help="sync one audience to one destination outside Airflow (or --dry-run)")
    ac.add_argument("--audience", required=True)
    ac.add_argument("--destination", required=True, help="a channel of the audience: file, email, webhook, ads")
    ac.add_argument("--mode", default=None, choices=["upsert", "mirror", "insert_only"],
                    help="sync mode (default: the destination's)")
    ac.add_argument("--dry-run", action="store_true", help="show counters and a sample; send nothing")
    ac.add_argument("--sample", type=int, default=10)
    ac.add_argument("--json", action="store_true")
    ac.set_defaults(func=cmd_activate)

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
    me.set_defaults(func=cmd_ml_evaluate)
    mm = msub.add_parser("models", help="registered model versions, champion marked")
    mm.add_argument("--model", default=None, choices=["lead_score", "churn", "ltv"])
    mm.add_argument("--json", action="store_true")
    mm.set_defaults(func=cmd_ml_models)
    mp = msub.add_parser("promote", help="make a registered version the champion")
    mp.add_argument("model", choices=["lead_score", "churn", "ltv"])
    mp.add_argument("version")
    mp.add_argument("--reason", default="manual promote")
    mp.add_argument("--json", action="store_true")
    mp.set_defaults(func=cmd_ml_promote)
    mr = msub.add_parser("rollback", help="return to the previous champion")
    mr.add_argument("model", choices=["lead_score", "churn", "ltv"])
    mr.add_argument("--reason", default="manual rollback")
    mr.add_argument("--json", action="store_true")
    mr.set_defaults(func=cmd_ml_rollback)

    idn = sub.add_parser("identity", help="identity resolution")
    isub = idn.add_subparsers(dest="identity_command", required=True)
    ie = isub.add_parser("evaluate", help="pairwise precision, recall, F1 of the linker on labelled person data")
    ie.add_argument("--dataset", choices=["febrl1", "febrl2", "febrl3", "febrl4", "generated"], default=None)
    ie.add_argument("--people", type=int, default=20_000, help="people in the generated world (--dataset generated)")
    ie.add_argument("--seed", type=int, default=42)
    ie.add_argument("--csv", default=None, help="any person CSV with a true entity column")
    ie.add_argument("--entity-col", default=None, help="true entity id column (used only for scoring)")
    ie.add_argument("--id-col", default=None, help="record id column (default: row number)")
    ie.add_argument("--sep", default=None, help="field separator (sniffed when omitted)")
    ie.add_argument("--json", action="store_true")
    ie.add_argument("--world", default=None,
                    help="(--dataset generated) reuse this generated day-1 world of the same --people and --seed")
    ie.set_defaults(func=cmd_identity_evaluate)

    b = sub.add_parser("bench", help="benchmarks (JSON with --json)")
    bsub = b.add_subparsers(dest="bench_command", required=True)
    bp = bsub.add_parser("pipeline", help="per-stage wall seconds and rows/s of the whole pipeline")
    bp.add_argument("--people", type=int, default=20_000)
    bp.add_argument("--seed", type=int, default=42)
    bp.add_argument("--workdir", default=None, help="where to write the world (default: a temporary folder)")
    bp.add_argument("--keep", action="store_true", help="keep the work folder")
    bp.add_argument("--json", action="store_true")
    bp.set_defaults(func=cmd_bench_pipeline)
    bw = bsub.add_parser("warehouse", help="the warehouse DAG (Cosmos) against a plain dbt build, same run")
    bw.add_argument("--people", type=int, default=20_000)
    bw.add_argument("--repeat", type=int, default=3, help="alternating runs of each; medians are compared")
    bw.add_argument("--seed", type=int, default=42)
    bw.add_argument("--world", default=None, help="reuse a generated world of --people (e.g. /tmp/beacon-1m-world)")
    bw.add_argument("--json", action="store_true")
    bw.set_defaults(func=cmd_bench_warehouse)
    ba = bsub.add_parser("activation", help="diff of a large audience; webhook delivery under injected faults")
    ba.add_argument("--members", type=int, default=1_000_000)
    ba.add_argument("--changed", type=float, default=0.01, help="share of members changed between the two syncs")
    ba.add_argument("--rows", type=int, default=100_000, help="rows delivered to the faulty webhook receiver")
    ba.add_argument("--fault-rate", type=float, default=0.2)
    ba.add_argument("--repeats", type=int, default=3, help="runs of each measurement (the median is reported)")
    ba.add_argument("--json", action="store_true")
    ba.set_defaults(func=cmd_bench_activation)
    bs = bsub.add_parser("score", help="score N synthetic customers through the real scoring path and write them")
    bs.add_argument("--customers", type=int, default=1_000_000)
    bs.add_argument("--models", default="lead_score,churn,ltv")
    bs.add_argument("--seed", type=int, default=42)
    bs.add_argument("--json", action="store_true")
    bs.set_defaults(func=cmd_bench_score)
    bi = bsub.add_parser("ingest", help="events ingest rows/s and the ratio to DuckDB's own read_json of the same files")
    bi.add_argument("--people", type=int, default=20_000)
    bi.add_argument("--seed", type=int, default=42)
    bi.add_argument("--world", default=None, help="reuse a generated world (e.g. /tmp/beacon-1m-world)")
    bi.add_argument("--repeat", type=int, default=3)
    bi.add_argument("--json", action="store_true")
    bi.set_defaults(func=cmd_bench_ingest)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
