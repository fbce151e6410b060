"""`beacon bench pipeline|warehouse|activation|journeys|score|ingest|measure|experiments|best-time|service|…`: benchmarks, JSON with --json."""

from __future__ import annotations

import argparse
from pathlib import Path

from beacon.cli.render import console, emit, err, kv_table, table


def cmd_score(args) -> int:
    from beacon.bench.score import bench_score

    d = bench_score(customers=args.customers, models=tuple(args.models.split(",")), seed=args.seed)

    def render(d):
        cols = ("model", "trees", "score s", "write s", "total s", "rows/s")
        t = table(f"Scoring benchmark, {d['customers']:,} customers", cols, right=cols[1:])
        for m in d["models"]:
            t.add_row(m["model"], str(m["trees"]), f"{m['score_seconds']:.2f}",
                      f"{m['write_seconds']:.2f}", f"{m['seconds']:.2f}", f"{m['rows_per_s']:,.0f}")
        console.print(t)
    emit(d, args.json, render)
    return 0


def cmd_pipeline(args) -> int:
    from beacon.bench.pipeline import bench_pipeline, with_median_stages

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


def register(sub) -> None:
    b = sub.add_parser("bench", help="benchmarks (JSON with --json)")
    bsub = b.add_subparsers(dest="bench_command", required=True)
    bp = bsub.add_parser("pipeline", help="per-stage wall seconds and rows/s of the whole pipeline")
    bp.add_argument("--people", type=int, default=20_000)
    bp.add_argument("--seed", type=int, default=42)
    bp.add_argument("--workdir", default=None, help="where to write the world (default: a temporary folder)")
    bp.add_argument("--keep", action="store_true", help="keep the work folder")
    bp.add_argument("--repeat", type=int, default=1, help="runs; with more than one, each stage's median is reported")
    bp.add_argument("--json", action="store_true")
    bp.set_defaults(func=cmd_pipeline)
    bs = bsub.add_parser("stack", help="the chain through the real scheduler (make up) on a fresh world")
    bs.add_argument("--people", type=int, default=20_000)
    bs.add_argument("--seed", type=int, default=42)
    bs.add_argument("--workdir", default=None, help="where to write the world and the stack (default: a temporary folder)")
    bs.add_argument("--keep", action="store_true", help="keep the work folder")
    bs.add_argument("--repeat", type=int, default=1, help="rounds (medians are reported)")
    bs.add_argument("--no-baseline", action="store_true", help="skip `beacon demo` (dag.test()) on the same world")
    bs.add_argument("--realtime-events", type=int, default=3,
                    help="after the chain: events posted to beacon serve, timed to the journey entry (0 skips)")
    bs.add_argument("--json", action="store_true")
    bs.set_defaults(func=cmd_stack)
    bw = bsub.add_parser("warehouse", help="the warehouse DAG (Cosmos) against a plain dbt build, same run")
    bw.add_argument("--people", type=int, default=20_000)
    bw.add_argument("--repeat", type=int, default=3, help="alternating runs of each; medians are compared")
    bw.add_argument("--seed", type=int, default=42)
    bw.add_argument("--world", default=None, help="reuse a generated world of --people (e.g. /tmp/beacon-1m-world)")
    bw.add_argument("--json", action="store_true")
    bw.set_defaults(func=cmd_warehouse)
    ba = bsub.add_parser("activation", help="diff of a large audience; webhook delivery under injected faults")
    ba.add_argument("--members", type=int, default=1_000_000)
    ba.add_argument("--changed", type=float, default=0.01, help="share of members changed between the two syncs")
    ba.add_argument("--rows", type=int, default=100_000, help="rows delivered to the faulty webhook receiver")
    ba.add_argument("--fault-rate", type=float, default=0.2)
    ba.add_argument("--repeat", type=int, default=3, help="runs of each measurement (the median is reported)")
    ba.add_argument("--repeats", dest="repeat", type=int, default=argparse.SUPPRESS, help=argparse.SUPPRESS)  # the old spelling, still accepted
    ba.add_argument("--json", action="store_true")
    ba.set_defaults(func=cmd_activation)
    bj = bsub.add_parser("journeys", help="advance every built-in journey over N people; state bytes per active person")
    bj.add_argument("--people", type=int, default=100_000)
    bj.add_argument("--days", type=int, default=30)
    bj.add_argument("--step-hours", type=int, default=24, help="hours between simulated runs (default 24)")
    bj.add_argument("--json", action="store_true")
    bj.set_defaults(func=cmd_journeys)
    bs = bsub.add_parser("score", help="score N synthetic customers through the real scoring path and write them")
    bs.add_argument("--customers", type=int, default=1_000_000)
    bs.add_argument("--models", default="lead_score,churn,ltv")
    bs.add_argument("--seed", type=int, default=42)
    bs.add_argument("--json", action="store_true")
    bs.set_defaults(func=cmd_score)
    bv = bsub.add_parser("service", help="beacon serve on loopback: collection, offers at 1M profiles, kill -9")
    bv.add_argument("--seconds", type=float, default=10.0, help="collection load duration")
    bv.add_argument("--concurrency", type=int, default=4, help="client threads (closed loop)")
    bv.add_argument("--batch-size", type=int, default=100, help="events per /v1/batch request")
    bv.add_argument("--profiles", type=int, default=1_000_000, help="people in the offers snapshot")
    bv.add_argument("--offer-requests", type=int, default=20_000)
    bv.add_argument("--kill-after", type=int, default=200, help="acknowledged batches (of 50) before kill -9")
    bv.add_argument("--action-events", type=int, default=3,
                    help="events for the event -> journey email phase (0 skips it)")
    bv.add_argument("--workdir", default=None, help="keep the work files here")
    bv.add_argument("--json", action="store_true")
    bv.set_defaults(func=cmd_service)
    bi = bsub.add_parser("ingest", help="events ingest rows/s and the ratio to DuckDB's own read_json of the same files")
    bi.add_argument("--people", type=int, default=20_000)
    bi.add_argument("--seed", type=int, default=42)
    bi.add_argument("--world", default=None, help="reuse a generated world (e.g. /tmp/beacon-1m-world)")
    bi.add_argument("--repeat", type=int, default=3)
    bi.add_argument("--json", action="store_true")
    bi.set_defaults(func=cmd_ingest)
    bd = bsub.add_parser("identity", help="train, store and reload the identity model, then predict + cluster a world")
    bd.add_argument("--world", required=True, help="a generated world (e.g. /tmp/beacon-1m-world)")
    bd.add_argument("--limit", type=int, default=None, help="records per source (default: all)")
    bd.add_argument("--threads", type=int, default=2)
    bd.add_argument("--repeat", type=int, default=3, help="predict+cluster runs with the stored model")
    bd.add_argument("--model-out", default=None, help="where to write the trained model JSON")
    bd.add_argument("--no-doubled", dest="doubled", action="store_false",
                    help="skip the run on twice the records (a second population)")
    bd.add_argument("--json", action="store_true")
    bd.set_defaults(func=cmd_identity)
    bsw = bsub.add_parser("identity-sweep", help="resolve generated worlds of several sizes and seeds; F1, largest cluster")
    bsw.add_argument("--sizes", default="10000,20000,50000,100000", help="people per world, comma-separated")
    bsw.add_argument("--seeds", default="1,2,3,4,5", help="generator seeds, comma-separated")
    bsw.add_argument("--json", action="store_true")
    bsw.set_defaults(func=cmd_identity_sweep)
    bbt = bsub.add_parser("best-time", help="best-time sends (hour bandit) against fixed-time sends on a generated world")
    bbt.add_argument("--people", type=int, default=20_000)
    bbt.add_argument("--seed", type=int, default=42)
    bbt.add_argument("--rounds", type=int, default=8, help="weekly campaigns simulated per policy")
    bbt.add_argument("--json", action="store_true")
    bbt.set_defaults(func=cmd_best_time)
    bm = bsub.add_parser("measure", help="interval coverage, CUPED and uplift Qini on worlds with planted effects")
    bm.add_argument("--worlds", type=int, default=100)
    bm.add_argument("--people", type=int, default=3000)
    bm.add_argument("--no-uplift", action="store_true")
    bm.add_argument("--json", action="store_true")
    bm.set_defaults(func=cmd_measure)
    be = bsub.add_parser("experiments", help="winner selection on simulated A/B/n worlds with daily looks: right "
                                            "winner, false winners, guardrails")
    be.add_argument("--worlds", type=int, default=200, help="worlds per kind (best, null, guardrail)")
    be.add_argument("--seed", type=int, default=0)
    be.add_argument("--days", type=int, default=28)
    be.add_argument("--daily", type=int, default=1200, help="people entering the split per day")
    be.add_argument("--lift", type=float, default=0.02, help="planted lift of the best arm (absolute, on 5%%)")
    be.add_argument("--json", action="store_true")
    be.set_defaults(func=cmd_experiments)
    bdp = bsub.add_parser("dag-parse", help="seconds to parse every DAG in a fresh interpreter (median)")
    bdp.add_argument("--repeat", type=int, default=5)
    bdp.add_argument("--json", action="store_true")
    bdp.set_defaults(func=cmd_dag_parse)
