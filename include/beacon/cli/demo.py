"""generate, demo, ingest: write a world, run the pipeline in-process, load landing files."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from beacon.cli.render import console, emit, err, kv_table, table


def cmd_generate(args) -> int:
    from beacon.generate import GenConfig, generate

    cfg = GenConfig(people=args.people, seed=args.seed, day=args.day, bad_rate=args.bad_rate, dup_rate=args.dup_rate,
                    **({"as_of": date.fromisoformat(args.as_of)} if args.as_of else {}))
    s = generate(cfg, Path(args.out))

    def render(d):
        console.print(kv_table(f"Generated day {d['day']} ({d['date']}) in {d['seconds']} s",
                               {**{f"rows: {k}": v for k, v in d["rows"].items()},
                                **{f"bad rows: {k}": v for k, v in d["bad_rows"].items()},
                                "people (total)": d["people_total"], "people (new)": d["people_new"],
                                "landing": d["landing"], "truth": d["truth"]}))
    emit(s.to_dict(), args.json, render)
    return 0


def cmd_demo(args) -> int:
    from beacon.pipeline import run_demo

    if args.days < 1:
        err.print(f"error: --days must be at least 1, not {args.days}")
        return 2
    # Progress goes to standard error: standard output is the result (`beacon demo --json > result.json` is JSON).
    with err.status("starting") as status:
        def progress(stage: str) -> None:
            status.update(f"[bold]running {stage}[/bold]")
            err.log(f"{stage} …")
        result = run_demo(people=args.people, seed=args.seed, days=args.days, progress=progress)
    d = result.to_dict()

    def render(d):
        console.print(f"Engine: [bold]{d.get('engine', 'duckdb')}[/bold]")
        console.print(kv_table("Stage seconds", d["seconds"]))
        console.print(kv_table("Raw layer", {**d["raw"], **{f"quarantined: {k}": v for k, v in d["quarantine"].items()}}))
        console.print(kv_table("Warehouse rows", d["warehouse"]))
        counts = ("members", "exported", "held_out", "suppressed")
        t = table("Audiences", ("audience", *counts), right=counts)
        for a in d["audiences"]:
            t.add_row(a["audience"], *(f"{a[c]:,}" for c in counts))
        console.print(t)
        console.print(kv_table("Lead score model", d["model"]))
        if d.get("models"):
            console.print(kv_table("Champion models (holdout)", {
                m["model"]: f"{m['version']}  {m['metric']} {m['value']}  rows {m['train_rows']}/{m['valid_rows']}"
                for m in d["models"]}))
            console.print(f"Model report: [bold]{d['model_report']}[/bold]")
        if d.get("training"):  # the ML DAG retrains when due (ml.schedule), else scores with the champions
            console.print(kv_table("Model training per day (BEACON_RETRAIN_EVERY_DAYS)", {
                t["day"]: ("trained " + ", ".join(t["trained"]) if t["trained"] else "champions reused")
                + (f"; not trained: {', '.join(t['not_trained'])}" if t["trained"] and t["not_trained"] else "")
                for t in d["training"]}))
        if d.get("planted"):
            console.print(planted_table(d["planted"]))
        if d.get("campaign_report"):
            console.print(f"Campaign report: [bold]{d['campaign_report']}[/bold]")
        console.print(f"Exports: [bold]{d['exports_dir']}[/bold]  (one folder per audience and day: CSV + manifest.json)")
    emit(d, args.json, render)
    return 0


def planted_table(rows: list[dict]):
    """Measured lift next to the effect the demo world planted, per audience or journey and arm (points)."""
    def pts(v) -> str:
        return "" if v is None else f"{100 * v:+.2f}"

    cols = ("planted", "expected", "measured [95% interval]", "excludes 0")
    t = table("Lift vs the planted effect (conversion, points; demo world's truth)", ("campaign", "arm", *cols),
              right=cols)
    for r in rows:
        meas = r["note"] if r["measured"] is None else f"{pts(r['measured'])} [{pts(r['low'])}, {pts(r['high'])}]"
        t.add_row(r["campaign"], r["arm"], pts(r["planted"]), pts(r["expected"]), meas,
                  "" if r["excludes_zero"] is None else ("yes" if r["excludes_zero"] else "no"))
    return t


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
        console.print(kv_table("Ingest", {**d["totals"], **{f"quarantined: {k}": v for k, v in d["reasons"].items()},
                                          **{f"new columns: {k}": ", ".join(v) for k, v in d["schema_changes"].items()}}))
        for f in d["failures"]:
            err.print(f"[red]FAILED[/red] ({f['reason']}) {escape(f['error'])}", highlight=False, soft_wrap=True)
        if d["totals"]["files_failed"]:
            err.print(f"{d['totals']['files_failed']} of {len(d['files'])} file(s) failed; the others loaded")
    emit(d, args.json, render)
    return 1 if d["totals"]["files_failed"] else 0


def register(sub) -> None:
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

    d = sub.add_parser("demo", help="generate a world and run the DAGs in-process (dag.test) for a few days; the "
                                    "world answers what Beacon sends, and the lift is shown beside the planted effect")
    d.add_argument("--people", type=int, default=20_000)
    d.add_argument("--seed", type=int, default=42)
    d.add_argument("--days", type=int, default=3,
                   help="days to simulate (default 3): before each day after the first, the world's people answer "
                        "what Beacon sent the day before; 1 = the plain one-day run")
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
