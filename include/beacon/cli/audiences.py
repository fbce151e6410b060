"""`beacon audiences list|preview|history|diff`: the analyst's view of the dbt segment models."""

from __future__ import annotations

from beacon.cli.render import console, emit, kv_table, records_table, table


def _find(name: str):
    from beacon.audiences import find_audience
    from beacon.config import settings
    from beacon.dbt import ensure_manifest

    return find_audience(ensure_manifest(settings()), name)


def cmd_list(args) -> int:
    from beacon.audiences import discover, status
    from beacon.config import settings
    from beacon.dbt import ensure_manifest
    from beacon.warehouse import connect

    audiences = discover(ensure_manifest(settings()))
    with connect() as con:
        rows = status(con, audiences)

    def render(rows):
        t = table("Audiences", ("name", "owner", "size", "channels", "priority", "holdout_pct", "refresh", "last_refresh"))
        for r in rows:
            t.add_row(r["name"], r["owner"], "not built" if r["size"] is None else f"{r['size']:,}",
                      ", ".join(r["channels"]), str(r["priority"]), str(r["holdout_pct"]), r["refresh"],
                      r["last_refresh"] or "never")
        console.print(t)
    emit(rows, args.json, render)
    return 0


def cmd_preview(args) -> int:
    from beacon.audiences import preview
    from beacon.warehouse import connect

    audience, audiences = _find(args.name)
    with connect() as con:
        d = preview(con, audience, audiences, sample=args.sample)

    def render(d):
        console.print(f"[bold]{d['audience']}[/bold]: {d['size']:,} members")
        if d["sample"]:
            console.print(records_table("Sample members (the columns that qualified them)", d["sample"]))
        t = table("Overlap with other audiences", ("audience", "shared", "share_of_this"))
        for r in d["overlap"]:
            t.add_row(r["audience"], f"{r['shared']:,}", f"{r['share_of_this']:.1%}")
        console.print(t)
    emit(d, args.json, render)
    return 0


def cmd_history(args) -> int:
    from beacon.audiences import membership_changes
    from beacon.warehouse import connect

    with connect() as con:
        rows = membership_changes(con, args.name)

    def render(rows):
        t = table("Audience entries and exits per run", ("as_of", "audience", "entered", "exited"))
        for r in rows:
            t.add_row(r["as_of"], r["audience"], f"{r['entered']:,}", f"{r['exited']:,}")
        console.print(t)
    emit(rows, args.json, render)
    return 0


def cmd_diff(args) -> int:
    from beacon.activation.preview import diff
    from beacon.warehouse import connect

    audience, audiences = _find(args.name)
    with connect() as con:
        d = diff(con, audience, audiences, destination=args.destination)

    def render(d):
        console.print(kv_table(f"{d['audience']} -> {d['destination']}: changes against the delivery of "
                               f"{d['last_delivered'] or 'never'}",
                               {k: d[k] for k in ("delivered_then", "sendable_now", "would_enter", "would_update",
                                                  "would_leave", "unchanged", "held_out", "invalid")}
                               | {f"suppressed: {k}": v for k, v in d["suppressed"].items()}))
    emit(d, args.json, render)
    return 0


def register(sub) -> None:
    a = sub.add_parser("audiences", help="audiences defined as dbt segment models")
    asub = a.add_subparsers(dest="audiences_command", required=True)
    al = asub.add_parser("list", help="name, owner, size, channels, priority, holdout, refresh")
    al.add_argument("--json", action="store_true")
    al.set_defaults(func=cmd_list)
    ap = asub.add_parser("preview", help="size, sample members with qualifying columns, overlap with the others")
    ap.add_argument("name")
    ap.add_argument("--sample", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    ap.set_defaults(func=cmd_preview)
    ah = asub.add_parser("history", help="entries and exits per audience and run")
    ah.add_argument("name", nargs="?", default=None)
    ah.add_argument("--json", action="store_true")
    ah.set_defaults(func=cmd_history)
    ad = asub.add_parser("diff", help="who would enter and leave against the last delivered state")
    ad.add_argument("name")
    ad.add_argument("--destination", default="file", help="which destination's delivered state (default: file)")
    ad.add_argument("--json", action="store_true")
    ad.set_defaults(func=cmd_diff)
