"""`beacon up|down|status`: the local Airflow stack (scheduler, DAG processor, triggerer, API server on Postgres)."""

from __future__ import annotations

from beacon.cli.render import console, emit, kv_table


def cmd_up(args) -> int:
    from beacon.stack import StackError, up

    try:
        d = up(say=(lambda m: None) if args.json else (lambda m: console.log(m)))
    except StackError as exc:  # the message names the port or the component and its log tail
        raise RuntimeError(str(exc)) from None

    def render(d):
        console.print(kv_table("Beacon on Airflow", {
            "Airflow UI": d["url"], "Beacon page (marketers)": f"{d['url']}/plugin/beacon",
            "users": ", ".join(f"{u} ({r})" for u, r in d["users"].items()),
            "passwords": d["passwords_file"], "logs": d["logs"]}))
    emit(d, args.json, render)
    return 0


def cmd_down(args) -> int:
    from beacon.stack import down

    stopped = down(say=(lambda m: None) if args.json else (lambda m: console.log(m)))
    emit({"stopped": stopped}, args.json, lambda d: None)
    return 0


def cmd_status(args) -> int:
    from beacon.stack import status

    d = status()

    def render(d):
        console.print(kv_table("Stack", {"postgres": "running" if d["postgres"] else "stopped",
                                         **{n: f"pid {pid}" if pid else "stopped" for n, pid in d["components"].items()},
                                         "url": d["url"] or "-"}))
    emit(d, args.json, render)
    return 0


def register(sub) -> None:
    for name, func, text in (("up", cmd_up, "start the local Airflow stack on Postgres (idempotent)"),
                             ("down", cmd_down, "stop everything `beacon up` started"),
                             ("status", cmd_status, "what of the local stack is running")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=func)
