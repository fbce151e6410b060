"""`beacon journeys list|validate|preview|status|advance|simulate`: journeys for marketers and operators."""

from __future__ import annotations

import json

from beacon.cli.render import console, emit, records_table, table


def cmd_list(args) -> int:
    from beacon.journeys.api import listing

    rows = listing()

    def render(rows):
        t = table("Journeys", ("name", "version", "entry", "nodes", "sends", "enabled", "file"))
        for r in rows:
            if "problem" in r:
                continue
            t.add_row(r["name"], str(r["version"]), r["entry"], str(r["nodes"]), str(r["sends"]), str(r["enabled"]),
                      r["file"])
        console.print(t)
        for r in rows:
            if "problem" in r:
                console.print(f"[red]invalid:[/red] {r['problem']}")
    emit(rows, args.json, render)
    return 0


def cmd_validate(args) -> int:
    from beacon.journeys.validate import project_report

    rep = project_report(strict=False)
    out = {"valid": [x.journey.name for x in rep.journeys], "problems": rep.problems}

    def render(d):
        for n in d["valid"]:
            console.print(f"[green]ok[/green] {n}")
        for p in d["problems"]:
            console.print(f"[red]error[/red] {p}")
    emit(out, args.json, render)
    return 1 if rep.problems else 0


def cmd_preview(args) -> int:
    from beacon.journeys.api import find, preview
    from beacon.warehouse import clock, connect

    j = find(args.name)
    with connect() as con:
        d = preview(con, j, clock(con))

    def render(d):
        console.print(f"[bold]{d['journey']}[/bold] v{d['version']} at {d['clock']}: "
                      f"{d['would_enter']:,} would enter now")
        for node, counts in d["branches"].items():
            t = table(f"Node {node}: entrants per path if they were there now", ("path", "people"))
            for k, v in counts.items():
                t.add_row(str(k), f"{v:,}")
            console.print(t)
    emit(d, args.json, render)
    return 0


def cmd_status(args) -> int:
    from beacon.journeys.api import find, status
    from beacon.warehouse import connect

    j = find(args.name)  # an unknown name is an error naming the known ones
    with connect() as con:
        d = status(con, args.name, j)

    def render(d):
        console.print(f"[bold]{d['journey']}[/bold]: {d['in_flight']:,} in flight, {d['goals']:,} goals reached")
        for title, recs in (("People per node", d["per_node"]), ("Sends", d["sends"]),
                            ("Exits", [{"reason": k, "people": v} for k, v in d["exits"].items()])):
            if recs:
                console.print(records_table(title, recs))
        for x in d.get("experiments", []):
            head = f"Experiment at {x['node']} ({x.get('metric')}): {x.get('state')}"
            if x.get("winner"):
                head += f", winner {x['winner']} at {x['decided_at']}"
            console.print(f"[bold]{head}[/bold] — {x.get('reason')}")
            if x.get("arms"):
                console.print(records_table(f"Arms at {x['node']}", x["arms"]))
    emit(json.loads(json.dumps(d, default=str)), args.json, render)
    return 0


def cmd_advance(args) -> int:
    from beacon.journeys.api import find, run
    from beacon.warehouse import clock, connect

    find(args.name)
    with connect() as con:
        r = run(con, args.name, args.clock or clock(con)).to_dict()
    emit(r, args.json, lambda d: console.print(records_table("Advance", [d])))
    return 0


def cmd_simulate(args) -> int:
    from beacon.config import settings
    from beacon.journeys.api import find
    from beacon.journeys.simulate import simulate

    j = find(args.name)
    path = settings().warehouse_path
    if not path.exists():
        raise FileNotFoundError(f"no warehouse at {path}: run `beacon demo` first")
    d = simulate(path, j, args.days, step_minutes=args.step_minutes, seed=args.seed)

    def render(d):
        console.print(f"[bold]{d['journey']}[/bold]: {d['days']} simulated days from {d['start']}, "
                      f"{d['runs']} runs every {d['step_minutes']} min")
        for title, recs in (("Per day and node", d["per_day"]), ("In flight at the end", d["in_flight"])):
            if recs:
                console.print(records_table(title, recs))
        if d["arms"]:
            console.print(records_table("Arms", d["arms"]))
    emit(json.loads(json.dumps(d, default=str)), args.json, render)
    return 0


def register(sub) -> None:
    j = sub.add_parser("journeys", help="multi-step journeys defined in journeys/*.yml")
    js = j.add_subparsers(dest="journeys_command", required=True)
    p = js.add_parser("list", help="every journey file: entry, nodes, sends (and invalid files)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = js.add_parser("validate", help="check every journey file; exit 1 on any problem")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_validate)
    p = js.add_parser("preview", help="who would enter now and how many per branch (writes nothing)")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_preview)
    p = js.add_parser("status", help="people per node, sends, exits, goals, last runs")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    p = js.add_parser("advance", help="advance one journey now (what the DAG's mapped task does)")
    p.add_argument("name")
    p.add_argument("--clock", default=None, help="warehouse clock (default: marts.warehouse_as_of)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_advance)
    p = js.add_parser("simulate", help="run the engine over N simulated days on a copy of the demo warehouse")
    p.add_argument("name")
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--step-minutes", type=int, default=60, help="minutes between simulated runs (default 60)")
    p.add_argument("--seed", type=int, default=16)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_simulate)
