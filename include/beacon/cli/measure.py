"""`beacon measure lift|uplift|plan`: lift with intervals on the warehouse or on any randomized CSV, uplift, sizing."""

from __future__ import annotations

from pathlib import Path

from beacon.cli.render import console, emit, kv_table, table


def _read_csv(path: str, sep: str | None):
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return pd.read_csv(p, sep=sep, engine="python" if sep is None else "c")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"{path}: not a readable CSV ({exc})") from exc


def _split(cols: str | None) -> list[str]:
    return [c.strip() for c in (cols or "").split(",") if c.strip()]


def _fmt(v, pct: bool) -> str:
    if v is None:
        return ""
    return f"{100 * v:+.2f} pts" if pct else f"{v:+,.4f}"


def _render_lift(d: dict) -> None:
    srm = d.get("srm")
    many = len({r.get("campaign") for r in d["results"]}) > 1
    t = table(d["title"], (*(("campaign",) if many else ()), "outcome", "arm", "n arm / control", "total arm / control", "mean arm / control",
                           "abs lift [95% CI]", "rel lift [95% CI]", "p", "CUPED lift [95% CI]", "var. red."))
    for r in d["results"]:
        pct = r["binary"]
        m = (f"{100 * r['mean_arm']:.2f}% / {100 * r['mean_control']:.2f}%" if pct
             else f"{r['mean_arm']:,.4f} / {r['mean_control']:,.4f}")
        rel = (f"{_fmt(r['rel_lift'], False)} [{_fmt(r['rel_low'], False)}, {_fmt(r['rel_high'], False)}]"
               if r["rel_lift"] is not None else "")
        cup = (f"{_fmt(r['cuped_abs_lift'], pct)} [{_fmt(r['cuped_low'], pct)}, {_fmt(r['cuped_high'], pct)}]"
               if r["cuped_abs_lift"] is not None else "")
        t.add_row(*((r["campaign"],) if many else ()), r["outcome"], r["arm"], f"{r['n_arm']:,} / {r['n_control']:,}",
                  f"{r['total_arm']:,.2f} / {r['total_control']:,.2f}", m,
                  f"{_fmt(r['abs_lift'], pct)} [{_fmt(r['abs_low'], pct)}, {_fmt(r['abs_high'], pct)}]", rel,
                  f"{r['p_value']:.4f}", cup,
                  f"{100 * r['variance_reduction']:.1f}%" if r["variance_reduction"] is not None else "")
    console.print(t)
    for r in d["results"]:
        if r.get("seq_low") is not None:
            console.print(f"always-valid interval ({r['outcome']}, {r['arm']}): "
                          f"[{_fmt(r['seq_low'], r['binary'])}, {_fmt(r['seq_high'], r['binary'])}]")
        console.print(f"• {r['campaign'] + ': ' if many else ''}{r['verdict']}")
    if srm:
        console.print(f"sample ratio check: p = {srm['p_value']:.4g}"
                      + (" — [red]MISMATCH: the split is broken, do not trust the lift[/red]" if srm["mismatch"] else " (ok)"))
    for note in d.get("notes", []):
        console.print(f"[yellow]{note}[/yellow]")


def _parse_split(s: str | None) -> dict[str, float] | None:
    if not s:
        return None
    out = {}
    for part in s.split(","):
        name, _, w = part.partition("=")
        try:
            out[name.strip()] = float(w)
        except ValueError as exc:
            raise ValueError(f"--split wants arm=weight pairs like treatment=0.9,control=0.1, not {part!r}") from exc
    return out


def cmd_lift(args) -> int:
    import pandas as pd

    from beacon.measure import stats

    if args.csv:
        if not args.arm_col or args.control is None or not args.outcome:
            raise ValueError("--csv needs --arm-col, --control and --outcome")
        df = _read_csv(args.csv, args.sep)
        results = stats.lift_table(df, args.arm_col, args.control, _split(args.outcome), _split(args.covariates),
                                   sequential=args.sequential, source=args.csv)
        d = {"title": f"Lift on {args.csv}", "source": args.csv, "rows": len(df),
             "results": [r.to_dict() | {"verdict": stats.verdict(r)} for r in results]}
        split = _parse_split(args.split)
        if split:
            labels, _ = stats.arm_labels(df[args.arm_col], args.control)
            keys, _ = stats.arm_labels(pd.Series(list(split)), args.control)
            d["srm"] = stats.srm(labels.value_counts().to_dict(), dict(zip(keys, split.values(), strict=True)))
    else:
        from beacon.config import settings
        from beacon.measure.warehouse import campaign_lift
        from beacon.warehouse import connect

        if not settings().warehouse_path.exists():
            raise FileNotFoundError(f"no warehouse at {settings().warehouse_path}: run `make demo` first, or use --csv")
        with connect(read_only=True) as con:
            d = campaign_lift(con, audience=args.audience, journey=args.journey, window_days=args.window,
                              sequential=args.sequential)
    emit(d, args.json, _render_lift)
    return 0


def _render_uplift(d: dict) -> None:
    def num(v) -> str:
        return "" if v is None else f"{v:+.4f}"

    split = f"mean of {d['repeats']} splits, each " if d["repeats"] > 1 else ""
    t = table(f"Uplift on {d['file']} ({split}held-out {d['test_rows']:,} of {d['rows']:,} rows; "
              f"control {d['control']!r})",
              ("treatment vs control", "outcome", "learner", "Qini coefficient", "uplift@10%", "uplift@30%"))
    for c in d["comparisons"]:
        for name, m in c["learners"].items():
            t.add_row(c["treatment"], c["outcome"], name, num(m["qini"]), num(m["uplift_at_10"]), num(m["uplift_at_30"]))
        t.add_row(c["treatment"], c["outcome"], "(overall uplift)", "", "", num(c["overall_uplift"]), end_section=True)
    console.print(t)
    cats = set(d["categorical"])
    console.print("features (pre-treatment): " + ", ".join(f + (" (categorical)" if f in cats else "")
                                                           for f in d["features"]))
    for col, why in d["excluded"].items():
        console.print(f"not a feature: {col}: {why}", markup=False, highlight=False)
    for note in d["notes"]:
        console.print(f"[yellow]{note}[/yellow]")


def cmd_uplift(args) -> int:
    from beacon.measure.uplift import evaluate_repeated

    if args.repeats < 1:
        raise ValueError(f"--repeats must be at least 1, not {args.repeats}")
    df = _read_csv(args.csv, args.sep)
    d = evaluate_repeated(df, args.arm_col, args.control, _split(args.outcome), repeats=args.repeats,
                          features=_split(args.features) or None, source=args.csv, exclude=_split(args.exclude),
                          treatments=_split(args.treatment) or None)
    d["file"] = args.csv
    emit(d, args.json, _render_uplift)
    return 0


def cmd_plan(args) -> int:
    from beacon.measure.stats import plan

    d = plan(args.baseline_rate, args.mde, power=args.power, alpha=args.alpha, ratio=args.ratio,
             relative=args.relative)

    def render(d):
        console.print(kv_table("Holdout size", {
            "baseline conversion rate": f"{100 * d['baseline_rate']:.2f}%",
            "rate to detect": f"{100 * d['target_rate']:.2f}% ({100 * d['mde_abs']:+.2f} points)",
            "power / alpha": f"{d['power']} / {d['alpha']}",
            "control (holdout) people": f"{d['control']:,}", "treatment people": f"{d['treatment']:,}",
            "total": f"{d['total']:,}", "holdout share": f"{d['holdout_pct']}%"}))
    emit(d, args.json, render)
    return 0


def register(sub) -> None:
    m = sub.add_parser("measure", help="did it work? lift with intervals, uplift, holdout sizing")
    msub = m.add_subparsers(dest="measure_command", required=True)
    ml = msub.add_parser("lift", help="lift per arm with 95%% intervals, on the warehouse or on a CSV")
    who = ml.add_mutually_exclusive_group()
    who.add_argument("--audience", default=None, help="one audience (default: all)")
    who.add_argument("--journey", default=None, help="one journey")
    ml.add_argument("--window", type=float, default=None, help="days after exposure that count (default: settings)")
    ml.add_argument("--csv", default=None, help="any randomized test exported as CSV (one row per person)")
    ml.add_argument("--arm-col", default=None)
    ml.add_argument("--control", default=None, help="the arm column's value for the control group")
    ml.add_argument("--outcome", default=None, help="outcome column(s), comma-separated")
    ml.add_argument("--covariates", default=None, help="pre-exposure covariate column(s) for CUPED")
    ml.add_argument("--split", default=None, help="designed split for the sample-ratio check, e.g. B=0.5,A=0.5")
    ml.add_argument("--sequential", action="store_true", help="add always-valid intervals (safe to look daily)")
    ml.add_argument("--sep", default=None, help="field separator (sniffed when omitted)")
    ml.add_argument("--json", action="store_true")
    ml.set_defaults(func=cmd_lift)
    mu = msub.add_parser("uplift", help="T- and X-learner uplift vs random and a response model (Qini) on a CSV, per treatment arm")
    mu.add_argument("--csv", required=True)
    mu.add_argument("--arm-col", required=True)
    mu.add_argument("--control", required=True)
    mu.add_argument("--outcome", required=True, help="outcome column(s), comma-separated; none is ever a feature")
    mu.add_argument("--features", default=None,
                    help="feature columns (default: every pre-treatment column: not the arm, an outcome, an "
                         "--exclude column, nor a column whose arms differ; text columns are categoricals)")
    mu.add_argument("--exclude", default=None, help="column(s) never to use as features (e.g. recorded after "
                                                    "assignment), comma-separated")
    mu.add_argument("--treatment", default=None,
                    help="treatment arm(s) to compare with the control, comma-separated; two or more are also "
                         "pooled (default: every non-control arm, each alone and pooled)")
    mu.add_argument("--repeats", type=int, default=1,
                    help="random train/held-out splits to average over (a single split of a real test is noisy)")
    mu.add_argument("--sep", default=None)
    mu.add_argument("--json", action="store_true")
    mu.set_defaults(func=cmd_uplift)
    mp = msub.add_parser("plan", help="people needed per arm to detect a change in a conversion rate")
    mp.add_argument("--baseline-rate", type=float, required=True, help="e.g. 0.05 for 5%%")
    mp.add_argument("--mde", type=float, required=True, help="absolute change to detect, e.g. 0.01 (see --relative)")
    mp.add_argument("--relative", action="store_true", help="--mde is relative (0.1 = +10%% of the baseline)")
    mp.add_argument("--power", type=float, default=0.8)
    mp.add_argument("--alpha", type=float, default=0.05)
    mp.add_argument("--ratio", type=float, default=1.0, help="treatment people per control person (9 for a 10%% holdout)")
    mp.add_argument("--json", action="store_true")
    mp.set_defaults(func=cmd_plan)
