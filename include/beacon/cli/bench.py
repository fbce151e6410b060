"""`beacon bench pipeline|warehouse|activation|journeys|score|ingest|measure|experiments|best-time|service|privacy|…`: benchmarks, JSON with --json."""

from __future__ import annotations

import argparse
from pathlib import Path

from beacon.cli.bench_engine import cmd_engine, engine_args
from beacon.cli.render import console, emit, err, kv_table, table


def cmd_score(args) -> int:
    from beacon.bench.score import bench_score

    d = bench_score(customers=args.customers, models=tuple(args.models.split(",")), seed=args.seed)

    def render(d):
        cols = ("model", "trees", "score s", "write s", "total s", "rows/s", "predict s", "x predict", "CPU x predict")
        t = table(f"Scoring benchmark, {d['customers']:,} customers (target: at most 2x a plain predict)", cols,
                  right=cols[1:])
        for m in d["models"]:
            cpu = "-" if m["cpu_ratio_to_predict"] is None else f"{m['cpu_ratio_to_predict']:.2f}"
            t.add_row(m["model"], str(m["trees"]), f"{m['score_seconds']:.2f}",
                      f"{m['write_seconds']:.2f}", f"{m['seconds']:.2f}", f"{m['rows_per_s']:,.0f}",
                      f"{m['predict_only_seconds']:.2f}", f"{m['ratio_to_predict']:.2f}", cpu)
        console.print(t)
    emit(d, args.json, render)
    return 0


def cmd_pipeline(args) -> int:
    from beacon.bench.pipeline import bench_pipeline, with_median_stages

    if args.days > 1 or args.dags:
        return _pipeline_days(args)
    if args.repeat > 1 and args.workdir:
        raise ValueError("--repeat needs fresh work folders: leave out --workdir")
    runs = [bench_pipeline(people=args.people, seed=args.seed, workdir=Path(args.workdir) if args.workdir else None,
                           keep=args.keep, progress=False if args.json else None) for _ in range(args.repeat)]
    d = runs[0] if len(runs) == 1 else with_median_stages(runs)

    def render(d):
        cols = ("stage", "seconds", "rows", "rows/s")
        t = table(f"Pipeline benchmark, {d['people']:,} people", cols, right=cols[1:])
        for st in d["stages"]:
            t.add_row(st["stage"], f"{st['seconds']:.2f}", f"{st['rows']:,}", f"{st['rows_per_s']:,.0f}")
        console.print(t)
    emit(d, args.json, render)
    return 0


def _with_growth(d: dict, chart: str | None) -> dict:
    from beacon.bench.growth import growth_summary, write_chart

    d["growth"] = growth_summary(d)
    if chart:
        d["chart"] = str(write_chart(d, Path(chart)))
    return d


def _render_growth(d: dict) -> None:
    g = d.get("growth") or {}
    shown = {}
    for key, what in (("seconds_vs_new_rows", "s per M new rows"), ("seconds_vs_history_rows", "s per M rows of history"),
                      ("cpu_vs_history_rows", "CPU s per M rows of history")):
        f = g.get(key)
        shown[what] = "-" if f is None else f"{f['per_million']:+.2f} ± {f['stderr_per_million']:.2f} (r {f['r']:+.2f})"
    console.print(kv_table(f"Growth over normal days {g.get('days')}", shown))
    if d.get("chart"):
        console.print(f"chart: {d['chart']}")


def cmd_growth(args) -> int:
    """Redraw the growth table and chart from the JSON a `bench pipeline --days D --json` run printed."""
    import json

    d = _with_growth(json.loads(Path(args.source).read_text()), args.chart)
    emit(d["growth"] | ({"chart": d["chart"]} if d.get("chart") else {}), args.json, lambda _: _render_growth(d))
    return 0


def _growth_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="the JSON of a `beacon bench pipeline --days D --json` run")
    p.add_argument("--chart", default=None, help="write the chart (SVG) here")


def _pipeline_days(args) -> int:
    from beacon.bench.pipeline_days import STAGES, bench_days

    d = bench_days(people=args.people, days=args.days, seed=args.seed,
                   workdir=Path(args.workdir) if args.workdir else None, keep=args.keep, dags=args.dags,
                   full_refresh=args.full_refresh, progress=False if args.json else None)
    _with_growth(d, args.chart)

    def render(d):
        days = d["per_day"]
        cols = ("seconds", *(f"day {x['day']}" for x in days))
        t = table(f"Daily pipeline, {d['people']:,} people, {d['days']} days", cols, right=cols[1:])
        for name in STAGES:
            sec = [{st["stage"]: st["seconds"] for st in x["stages"]}.get(name) for x in days]
            t.add_row(name, *("-" if v is None else f"{v:.1f}" for v in sec))
        t.add_row("total", *(f"{x['seconds']:.1f}" for x in days))
        t.add_row("vs day 1", *(f"{r:.2f}" for r in d["day_ratio"]))
        t.add_row("CPU s", *(f"{x['cpu_seconds']:.1f}" for x in days))
        t.add_row("CPU vs day 1", *(f"{r:.2f}" for r in d["day_cpu_ratio"]))
        t.add_row("load average", *(f"{x['load_average'][0]:.1f}" for x in days))
        t.add_row("floor", *(f"{x['floor']['seconds']:.2f}" for x in days))
        t.add_row("x floor", *("-" if x["floor_ratio"] is None else f"{x['floor_ratio']:.0f}" for x in days))
        t.add_row("peak MB", *(f"{x['peak_memory_mb']:,.0f}" for x in days))
        t.add_row("trained", *(", ".join(x["trained"]) or "-" for x in days))
        console.print(t)
        _render_growth(d)
        if "dags" in d:
            console.print(kv_table("Through the DAGs (dag.test())", {
                f"day {g['day']}": f"{g['seconds']:.1f} s ({r:.2f}x the stage functions)"
                for g, r in zip(d["dags"]["per_day"], d["dags_ratio"], strict=True)}))
    emit(d, args.json, render)
    return 0


def cmd_measure(args) -> int:
    from beacon.bench.measure import bench_coverage, bench_uplift

    d = {"coverage": bench_coverage(worlds=args.worlds, people=args.people)}
    if not args.no_uplift:
        d["uplift"] = bench_uplift()

    def render(d):
        console.print(kv_table(f"Coverage of 95% intervals over {d['coverage']['worlds']} worlds",
                               {k: round(v, 4) if isinstance(v, float) else v for k, v in d["coverage"].items()}))
        if "uplift" in d:
            console.print(kv_table("Uplift: held-out Qini coefficient (mean over worlds)",
                                   {k: round(v, 4) for k, v in d["uplift"]["qini"].items()}))
    emit(d, args.json, render)
    return 0


def cmd_experiments(args) -> int:
    from beacon.bench.experiments import bench_experiments

    d = bench_experiments(worlds=args.worlds, seed=args.seed, days=args.days, daily=args.daily, lift=args.lift)

    def render(d):
        console.print(kv_table(f"Winner selection, {d['worlds_per_kind']} worlds per kind, daily looks for "
                               f"{d['days']} days", {f"{kind}: {k}": v if not isinstance(v, float) else round(v, 3)
                                                     for kind in ("best", "null", "guardrail")
                                                     for k, v in d[kind].items()}))
    emit(d, args.json, render)
    return 0


def cmd_identity(args) -> int:
    from beacon.bench.identity import bench_identity

    d = bench_identity(Path(args.world), limit=args.limit, threads=args.threads, repeat=args.repeat,
                       model_out=Path(args.model_out) if args.model_out else None, doubled_run=args.doubled)

    def render(d):
        rows = {"records": d["records"], "threads": d["threads"], "prepare s": d["prepare_s"], "train s": d["train_s"],
                "predict + cluster s (median)": d["median_predict_plus_cluster_s"],
                "pairwise precision": f"{d['scores']['precision']:.4f}", "pairwise recall": f"{d['scores']['recall']:.4f}",
                "pairwise F1": f"{d['scores']['f1']:.4f}"}
        if "doubled" in d:
            rows |= {"doubled: records": d["doubled"]["records"],
                     "doubled: predict + cluster s": d["doubled"]["predict_plus_cluster_s"],
                     "doubled: pairwise F1": f"{d['doubled']['scores']['f1']:.4f}"}
        console.print(kv_table("Identity engine at scale", rows))
    emit(d, args.json, render)
    return 0


def cmd_warehouse(args) -> int:
    from beacon.bench.pipeline import bench_warehouse

    d = bench_warehouse(people=args.people, repeat=args.repeat, seed=args.seed,
                        world=Path(args.world) if args.world else None, progress=False if args.json else None)

    def render(d):
        console.print(kv_table(f"Warehouse orchestration overhead, {d['people']:,} people", {
            "plain dbt build (median s)": d["dbt_build_median"], "warehouse DAG via Cosmos (median s)": d["dag_median"],
            "ratio": d["overhead_ratio"], "Cosmos task group alone (median s)": d["dbt_group_median"],
            "task group ratio": d["dbt_group_ratio"], "tasks": d["tasks"]}))
    emit(d, args.json, render)
    return 0


def cmd_activation(args) -> int:
    from beacon.bench.activation import bench_activation

    d = bench_activation(members=args.members, changed=args.changed, rows=args.rows, fault_rate=args.fault_rate,
                         repeat=args.repeat)

    def render(d):
        console.print(kv_table("Activation diff", d["diff"]))
        console.print(kv_table("Webhook delivery", {k: v for k, v in d["webhook"].items() if not isinstance(v, dict)}))
    emit(d, args.json, render)
    return 0


def cmd_journeys(args) -> int:
    from beacon.bench.journeys import bench_journeys

    d = bench_journeys(people=args.people, days=args.days, step_hours=args.step_hours)

    def render(d):
        console.print(kv_table("Journeys: first advance of every built-in journey",
                               {"people": d["people"], "seconds": d["first_advance_seconds"],
                                **{k: v for k, v in d["after_first_run"].items()}}))
        console.print(kv_table("Simulated days", {"days": d["days"], "advance seconds": d["advance_seconds"],
                                                  "max file bytes per active person": d["max_file_bytes_per_active"]}))
    emit(d, args.json, render)
    return 0


def cmd_service(args) -> int:
    from beacon.bench.service import bench_service

    d = bench_service(seconds=args.seconds, concurrency=args.concurrency, batch_size=args.batch_size,
                      profiles=args.profiles, offer_requests=args.offer_requests, kill_after=args.kill_after,
                      action_events=args.action_events, workdir=Path(args.workdir) if args.workdir else None)

    def render(d):
        c, o, k = d["collection"]["batch"], d["offers"], d["crash"]
        console.print(kv_table("Service benchmark (loopback)", {
            "collection events/s": f"{c['events_per_s']:,.0f}", "collection p50 / p99 ms": f"{c['p50_ms']} / {c['p99_ms']}",
            "collection gzip events/s": f"{d['collection']['batch_gzip']['events_per_s']:,.0f}",
            "collection gzip p99 ms at 5,000/s": d["collection"]["batch_gzip_at_5000_per_s"]["p99_ms"],
            "single track req/s": f"{d['collection']['single_track']['requests_per_s']:,.0f}",
            "offers p50 / p99 ms": f"{o['p50_ms']} / {o['p99_ms']} ({o['profiles']:,} profiles)",
            "kill -9: acknowledged lost": k["acknowledged_lost"], "kill -9: loaded twice": k["loaded_twice"],
            **({"event -> journey email, median / max s": "{latency_s_median} / {latency_s_max} ({emails_received} of {events})"
                .format(**d["event_to_action"])} if "event_to_action" in d else {})}))
    emit(d, args.json, render)
    return 0


def cmd_ingest(args) -> int:
    from beacon.bench.ingest import bench_ingest

    d = bench_ingest(people=args.people, seed=args.seed, world=Path(args.world) if args.world else None,
                     repeat=args.repeat)

    def render(d):
        cols = ("run", "rows read", "seconds", "rows/s", "DuckDB read_json s", "ratio")
        t = table(f"Ingest benchmark (events), {d['people']:,} people", cols, right=cols)
        for r in d["runs"]:
            t.add_row(str(r["repeat"]), f"{r['rows_read']:,}", f"{r['seconds']:.2f}", f"{r['rows_per_s']:,}",
                      f"{r['duckdb_read_json_seconds']:.2f}", f"{r['ratio']:.2f}")
        console.print(t)
        console.print(f"median ratio {d['median_ratio']} (target <= {d['target_ratio']})")
    emit(d, args.json, render)
    return 0


def cmd_dag_parse(args) -> int:
    from beacon.bench.dag_parse import bench_dag_parse

    d = bench_dag_parse(repeat=args.repeat)

    def render(d):
        console.print(kv_table("DAG parse (fresh interpreters)", {
            "median s": d["median_seconds"], "min s": d["min_seconds"], "max s": d["max_seconds"],
            "target s": d["target_seconds"], "import errors": len(d["errors"])}))
    emit(d, args.json, render)
    return 0 if not d["errors"] else 1


def cmd_identity_sweep(args) -> int:
    from beacon.bench.identity_sweep import summarize, sweep

    sizes = [int(x) for x in args.sizes.split(",")]
    seeds = [int(x) for x in args.seeds.split(",")]
    rows = sweep(sizes, seeds, progress=None if args.json else lambda m: err.print(m, highlight=False))
    d = {"runs": rows, "summary": summarize(rows)}

    def render(d):
        cols = ("people", "seed", "precision", "recall", "F1", "largest cluster", "seconds")
        t = table("Identity sweep (generated worlds through the dbt identity models)", cols, right=cols)
        for r in d["runs"]:
            t.add_row(f"{r['people']:,}", str(r["seed"]), *(f"{r[k]:.4f}" if k in r else "error"
                                                           for k in ("precision", "recall", "f1")),
                      str(r.get("largest_cluster", "-")), f"{r['seconds']:.1f}")
        console.print(t)
        console.print(f"every world F1 >= {d['summary']['min_f1_bound']} and largest cluster <= "
                      f"{d['summary']['max_cluster_bound']}: {d['summary']['all_ok']}")
    emit(d, args.json, render)
    return 0 if d["summary"]["all_ok"] else 1


def cmd_best_time(args) -> int:
    from beacon.bench.best_time import bench_best_time

    d = bench_best_time(people=args.people, seed=args.seed, rounds=args.rounds)

    def render(d):
        cols = ("policy", "open rate", "sends")
        t = table(f"Best-time vs fixed-time sends: {d['people']:,} people on the list, {d['rounds']} weekly campaigns",
                  cols, right=cols[1:])
        labels = {"fixed": f"fixed {d['fixed_hour']}:00 local", "fixed_peak": f"fixed {d['peak_hour']}:00 local (audience peak)",
                  "best_time": "best time (Thompson bandit)", "oracle": "oracle: true hour (upper bound)"}
        for k, label in labels.items():
            t.add_row(label, f"{d['open_rate'][k]:.4f}", f"{d['sends_per_policy']:,}")
        console.print(t)
        console.print(f"lift vs fixed {d['lift_vs_fixed']:+.1%}, vs audience peak {d['lift_vs_fixed_peak']:+.1%}; "
                      f"explored {d['explore_share_last_round']:.0%} of sends in the last campaign")
    emit(d, args.json, render)
    return 0


def cmd_stack(args) -> int:
    from beacon.bench.stack import bench_stack

    d = bench_stack(people=args.people, seed=args.seed, workdir=Path(args.workdir) if args.workdir else None,
                    keep=args.keep, repeat=args.repeat, baseline=not args.no_baseline,
                    realtime_events=args.realtime_events)

    def render(d):
        rows = {"stack start-up s": d["startup_s"], "chain s (ingest start to activation end)": d["chain_s"],
                **{f"{k} s": v for k, v in d["dags_s"].items()},
                "task instances": sum(d["task_instances"].values())}
        if "ratio_median" in d:
            rows |= {f"dag.test() {k} s": v for k, v in d["demo_dags_s"].items()}
            rows |= {"dag.test() four DAGs s": d["demo_four_dags_s"], "ratio (chain / dag.test())": d["ratio_median"]}
        if "event_to_action" in d:
            e = d["event_to_action"]
            rows |= {"event -> journey entry, entered / posted": f"{e['entered']} / {e['events']}",
                     "event -> journey entry, median / max s": f"{e['median_s']} / {e['max_s']}"}
        console.print(kv_table(f"The chain through the real scheduler, {d['people']:,} people, "
                               f"median of {d['repeat']}", rows))
    emit(d, args.json, render)
    return 0


def cmd_privacy(args) -> int:
    from beacon.bench.privacy import bench_privacy

    d = bench_privacy(people=args.people, erase=args.erase, seed=args.seed,
                      workdir=Path(args.workdir) if args.workdir else None,
                      world=Path(args.world) if args.world else None, keep=args.keep,
                      progress=False if args.json else None)

    def render(d):
        cols = ("store", "rows or lines touched")
        t = table(f"Erasure benchmark: {d['erased']:,} people of {d['people']:,} "
                  f"({d['erase_seconds']['total']:.1f} s to erase, {d['resolve']['seconds']:.1f} s to resolve)",
                  cols, right=cols[1:])
        for store, n in d["rows_touched"].items():
            t.add_row(store, f"{n:,}")
        console.print(t)
    emit(d, args.json, render)
    return 0


def _privacy_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--people", type=int, default=1_000_000)
    p.add_argument("--erase", type=int, default=1_000, help="people to erase")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--workdir", default=None, help="where to build the world (default: a temporary folder)")
    p.add_argument("--world", default=None, help="copy this world (a `bench pipeline --keep` folder) instead")
    p.add_argument("--keep", action="store_true", help="keep the work folder")


def _pipeline_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--people", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--workdir", default=None, help="where to write the world (default: a temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--repeat", type=int, default=1, help="runs; with more than one, each stage's median is reported")
    p.add_argument("--days", type=int, default=1,
                   help="days of one world; from 2, every stage of each day (ingest ... measurement), its floor "
                        "and peak memory (beacon.bench.pipeline_days)")
    p.add_argument("--dags", action="store_true", help="with --days: the same days through dag.test(), and the ratio")
    p.add_argument("--full-refresh", action="store_true",
                   help="with --days: every day's dbt build rebuilds the incremental models whole (the cost before)")
    p.add_argument("--chart", default=None,
                   help="with --days: write an SVG of each day's stage seconds beside the history's rows")


def _stack_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--people", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--workdir", default=None, help="where to write the world and the stack (default: a temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--repeat", type=int, default=1, help="rounds (medians are reported)")
    p.add_argument("--no-baseline", action="store_true", help="skip `beacon demo` (dag.test()) on the same world")
    p.add_argument("--realtime-events", type=int, default=3,
                    help="after the chain: events posted to beacon serve, timed to the journey entry (0 skips)")


def _warehouse_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--people", type=int, default=20_000)
    p.add_argument("--repeat", type=int, default=3, help="alternating runs of each; medians are compared")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--world", default=None, help="reuse a generated world of --people (e.g. /tmp/beacon-1m-world)")


def _activation_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--members", type=int, default=1_000_000)
    p.add_argument("--changed", type=float, default=0.01, help="share of members changed between the two syncs")
    p.add_argument("--rows", type=int, default=100_000, help="rows delivered to the faulty webhook receiver")
    p.add_argument("--fault-rate", type=float, default=0.2)
    p.add_argument("--repeat", type=int, default=3, help="runs of each measurement (the median is reported)")
    p.add_argument("--repeats", dest="repeat", type=int, default=argparse.SUPPRESS, help=argparse.SUPPRESS)  # the old spelling, still accepted


def _journeys_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--people", type=int, default=100_000)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--step-hours", type=int, default=24, help="hours between simulated runs (default 24)")


def _score_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--customers", type=int, default=1_000_000)
    p.add_argument("--models", default="lead_score,churn,ltv")
    p.add_argument("--seed", type=int, default=42)


def _service_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=10.0, help="collection load duration")
    p.add_argument("--concurrency", type=int, default=4, help="client threads (closed loop)")
    p.add_argument("--batch-size", type=int, default=100, help="events per /v1/batch request")
    p.add_argument("--profiles", type=int, default=1_000_000, help="people in the offers snapshot")
    p.add_argument("--offer-requests", type=int, default=20_000)
    p.add_argument("--kill-after", type=int, default=200, help="acknowledged batches (of 50) before kill -9")
    p.add_argument("--action-events", type=int, default=3,
                    help="events for the event -> journey email phase (0 skips it)")
    p.add_argument("--workdir", default=None, help="keep the work files here")


def _ingest_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--people", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--world", default=None, help="reuse a generated world (e.g. /tmp/beacon-1m-world)")
    p.add_argument("--repeat", type=int, default=3)


def _identity_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--world", required=True, help="a generated world (e.g. /tmp/beacon-1m-world)")
    p.add_argument("--limit", type=int, default=None, help="records per source (default: all)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3, help="predict+cluster runs with the stored model")
    p.add_argument("--model-out", default=None, help="where to write the trained model JSON")
    p.add_argument("--no-doubled", dest="doubled", action="store_false",
                    help="skip the run on twice the records (a second population)")


def _identity_sweep_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", default="10000,20000,50000,100000", help="people per world, comma-separated")
    p.add_argument("--seeds", default="1,2,3,4,5", help="generator seeds, comma-separated")


def _best_time_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--people", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--rounds", type=int, default=8, help="weekly campaigns simulated per policy")


def _measure_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--worlds", type=int, default=100)
    p.add_argument("--people", type=int, default=3000)
    p.add_argument("--no-uplift", action="store_true")


def _experiments_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--worlds", type=int, default=200, help="worlds per kind (best, null, guardrail)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--days", type=int, default=28)
    p.add_argument("--daily", type=int, default=1200, help="people entering the split per day")
    p.add_argument("--lift", type=float, default=0.02, help="planted lift of the best arm (absolute, on 5%%)")


def _dag_parse_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repeat", type=int, default=5)


# (subcommand, help, command, its arguments); every subcommand also takes --json.
_SUBCOMMANDS = (
    ("pipeline", "per-stage wall seconds and rows/s of the whole pipeline", cmd_pipeline, _pipeline_args),
    ("growth", "from a `pipeline --days` JSON: does a day's cost follow its new rows or the history (slopes, chart)",
     cmd_growth, _growth_args),
    ("engine", "the pipeline's stages on DuckDB and on a local Spark, the same world and run",
     cmd_engine, engine_args),
    ("stack", "the chain through the real scheduler (make up) on a fresh world", cmd_stack, _stack_args),
    ("warehouse", "the warehouse DAG (Cosmos) against a plain dbt build, same run",
     cmd_warehouse, _warehouse_args),
    ("activation", "diff of a large audience; webhook delivery under injected faults",
     cmd_activation, _activation_args),
    ("journeys", "advance every built-in journey over N people; state bytes per active person",
     cmd_journeys, _journeys_args),
    ("score", "score N synthetic customers through the real scoring path and write them",
     cmd_score, _score_args),
    ("service", "beacon serve on loopback: collection, offers at 1M profiles, kill -9",
     cmd_service, _service_args),
    ("ingest", "events ingest rows/s and the ratio to DuckDB's own read_json of the same files",
     cmd_ingest, _ingest_args),
    ("identity", "train, store and reload the identity model, then predict + cluster a world",
     cmd_identity, _identity_args),
    ("identity-sweep", "resolve generated worlds of several sizes and seeds; F1, largest cluster",
     cmd_identity_sweep, _identity_sweep_args),
    ("best-time", "best-time sends (hour bandit) against fixed-time sends on a generated world",
     cmd_best_time, _best_time_args),
    ("measure", "interval coverage, CUPED and uplift Qini on worlds with planted effects",
     cmd_measure, _measure_args),
    ("experiments", "winner selection on simulated A/B/n worlds with daily looks: right winner, false winners, guardrails",
     cmd_experiments, _experiments_args),
    ("privacy", "erase N people from a world: seconds and rows touched per store",
     cmd_privacy, _privacy_args),
    ("dag-parse", "seconds to parse every DAG in a fresh interpreter (median)",
     cmd_dag_parse, _dag_parse_args),
)


def register(sub) -> None:
    b = sub.add_parser("bench", help="benchmarks (JSON with --json)")
    bsub = b.add_subparsers(dest="bench_command", required=True)
    for name, help_, func, add_args in _SUBCOMMANDS:
        p = bsub.add_parser(name, help=help_)
        add_args(p)
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=func)
