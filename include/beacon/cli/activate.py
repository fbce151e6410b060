"""`beacon activate`: one audience to one destination outside Airflow, or a dry run."""

from __future__ import annotations

from beacon.audiences import CHANNELS
from beacon.cli.render import console, emit, err, kv_table, records_table


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
        console.print(kv_table(title, {k: d[k] for k in ("status", "source_rows", "adds", "updates", "removes",
                                                         "unchanged", "invalid", "held_out", "delivered", "failed")}
                               | {f"suppressed: {k}": v for k, v in d["suppressed"].items()}))
        if d["sample"]:
            console.print(records_table("Sample of the changes" + (" that would be sent" if d["dry_run"] else ""),
                                        d["sample"]))
        if d["message"]:
            console.print(d["message"])
    emit(d, args.json, render)
    return 0 if d["status"] in ("succeeded", "dry_run") else 1


def register(sub) -> None:
    ac = sub.add_parser("activate", help="sync one audience to one destination outside Airflow (or --dry-run)")
    ac.add_argument("--audience", required=True)
    ac.add_argument("--destination", required=True, help=f"a channel of the audience: {', '.join(CHANNELS)}")
    ac.add_argument("--mode", default=None, choices=["upsert", "mirror", "insert_only"],
                    help="sync mode (default: the destination's)")
    ac.add_argument("--dry-run", action="store_true", help="show counters and a sample; send nothing")
    ac.add_argument("--sample", type=int, default=10)
    ac.add_argument("--json", action="store_true")
    ac.set_defaults(func=cmd_activate)
