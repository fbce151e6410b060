"""`beacon privacy`: erasure, access and suppression requests (the urgent path: accepted and processed at once),
their status, and processing the queue outside Airflow (docs/privacy.md)."""

from __future__ import annotations

import getpass

from beacon.cli.render import console, emit, kv_table, records_table

_FIELDS = ("email", "phone", "customer_id", "anonymous_id")


def cmd_request(args) -> int:
    from beacon.config import settings
    from beacon.privacy.requests import process_request, submit

    s = settings()
    identifiers = {f: getattr(args, f) for f in _FIELDS if getattr(args, f)}
    if not identifiers:
        raise ValueError("give at least one of --email, --phone, --customer-id, --anonymous-id")
    req = submit(s, args.kind, identifiers, f"cli:{args.requested_by or getpass.getuser()}")
    d = {"request_id": req.request_id, "kind": req.kind, "status": "accepted",
         "accepted_at": req.accepted_at.isoformat(), "due_at": req.due_at.isoformat()}
    if not args.queue_only:
        from beacon.activation.erasure import remove_subject

        d = process_request(s, req, remove_subject)
    emit(d, args.json, lambda d: console.print(kv_table(f"privacy request {d['request_id']}", _flat(d))))
    return 0 if d["status"] in ("accepted", "completed") else 1


def _flat(d: dict) -> dict:
    out = {k: v for k, v in d.items() if k != "result"}
    res = d.get("result") or {}
    for k, v in (res.get("stores") or {}).items():
        out[f"store {k}"] = v
    for k, v in (res.get("destinations") or {}).items():
        out[f"destination {k}"] = v
    for u in res.get("unclean") or []:
        out[f"unclean {u.get('store')}: {u.get('place')}"] = u.get("reason")
    if res.get("access_document"):
        out["access document"] = res["access_document"]
    return out


def cmd_status(args) -> int:
    from beacon.config import settings
    from beacon.privacy.requests import statuses

    rows = statuses(settings(), args.request_id)
    if args.request_id and not rows:
        raise ValueError(f"no privacy request {args.request_id}")

    def render(rows):
        if args.request_id:
            console.print(kv_table(f"privacy request {args.request_id}", _flat(rows[0])))
        else:
            console.print(records_table("privacy requests", [{k: r.get(k) for k in (
                "request_id", "kind", "status", "accepted_at", "due_at", "completed_at")} for r in rows]))
    emit(rows[0] if args.request_id else rows, args.json, render)
    return 0


def cmd_process(args) -> int:
    from beacon.activation.erasure import remove_subject
    from beacon.config import settings
    from beacon.privacy.requests import load_queued, process_queued

    s = settings()
    load_queued(s)
    docs = process_queued(s, remove_subject)
    emit(docs, args.json, lambda rows: console.print(records_table("processed privacy requests", [
        {k: r.get(k) for k in ("request_id", "kind", "status", "completed_at", "error")} for r in rows])))
    return 0 if all(d["status"] == "completed" for d in docs) else 1


def cmd_prove(args) -> int:
    """The proof of erasure on a generated world (docs/privacy.md "How to prove it"), on a copy unless --in-place."""
    import os
    from pathlib import Path

    from beacon.activation.erasure import remove_subject
    from beacon.bench import privacy_proof
    from beacon.cli.render import err
    from beacon.config import settings

    if args.data:
        os.environ["BEACON_DATA_DIR"] = str(Path(args.data).resolve())
    s = settings()
    if not s.privacy_key:
        raise ValueError("BEACON_PRIVACY_KEY must be set (the requests' keyed hashes; docs/privacy.md)")
    if not (s.truth_dir.is_dir() and s.warehouse_path.exists()):
        raise ValueError(f"{s.data_dir}: no generated world there (a truth folder and a warehouse: `beacon demo`)")
    if not args.in_place:
        work = Path(args.work or s.data_dir.parent / "privacy-proof").resolve()
        err.log(f"copying the world into {work} (the proof erases people: --in-place to use the world itself)")
        s = privacy_proof.settings_for(privacy_proof.work_copy(s, work))
    result = privacy_proof.prove(s, args.sample, remove_subject, plant_every=args.plant_every,
                                 progress=lambda m: err.log(m))
    emit(result, args.json, lambda d: console.print(kv_table("proof of erasure", _flat_proof(d))))
    return 0 if result["proved"] else 1


def _flat_proof(d: dict) -> dict:
    out = {f"group {g}": f"{v['sampled']} sampled of {v['candidates']}" for g, v in d["groups"].items()}
    out.update({"people erased": d["people"], "identifiers asked": d["identifiers_asked"],
                "scan before: people found": f"{d['before']['people_found']}/{d['people']}",
                "scan before: values found": d["before"]["values"],
                "requests completed": d["requests"]["completed"], "stores unclean": len(d["requests"]["unclean"]),
                "destination statuses": d["requests"]["destinations"],
                "destinations failed": d["requests"]["destinations_failed"],
                "scan after: values found": d["after"]["leaks"]})
    out.update({f"resurrection {k}": (len(v) if k == "leaks" else v) for k, v in d["resurrection"].items()})
    out.update({f"audit {k}": (len(v) if k == "missing" else v) for k, v in d["audit"].items()})
    out.update({"seconds": d["seconds"], "proved": d["proved"]})
    return out


def register(sub) -> None:
    p = sub.add_parser("privacy", help="erasure, access and suppression requests (docs/privacy.md)")
    ps = p.add_subparsers(dest="privacy_command", required=True)
    for kind, text in (("erase", "erase a person from every store and destination (suppressed at once)"),
                       ("access", "write everything Beacon holds about a person (JSON and HTML)"),
                       ("suppress", "stop every send, offer and new data for a person, keep what is held")):
        c = ps.add_parser(kind, help=text)
        c.add_argument("--email", action="append", help="repeatable; all identifiers given are one person")
        c.add_argument("--phone", action="append")
        c.add_argument("--customer-id", dest="customer_id", action="append")
        c.add_argument("--anonymous-id", dest="anonymous_id", action="append")
        c.add_argument("--requested-by", help="who asked (recorded in the audit trail; default: your user name)")
        c.add_argument("--queue-only", action="store_true",
                       help="accept and suppress now, leave the processing to the beacon_privacy DAG")
        c.add_argument("--json", action="store_true")
        c.set_defaults(func=cmd_request, kind=kind)
    st = ps.add_parser("status", help="the status of one request, or of all")
    st.add_argument("request_id", nargs="?")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)
    pr = ps.add_parser("process", help="load and process every queued request now (what the DAG does)")
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(func=cmd_process)
    pv = ps.add_parser("prove", help="erase sampled people of a generated world and prove nothing of them is left")
    pv.add_argument("--sample", type=int, default=100, help="people to erase, a quarter from each group")
    pv.add_argument("--data", help="the world's data folder (default: BEACON_DATA_DIR)")
    pv.add_argument("--work", help="where the copy goes (default: privacy-proof beside the data folder)")
    pv.add_argument("--in-place", action="store_true", help="erase from the world itself, not a copy")
    pv.add_argument("--plant-every", type=int, default=25,
                    help="a world without service traffic gets collected events and preference records for every "
                         "n-th person (as beacon serve would land them), loaded by the ingest first")
    pv.add_argument("--json", action="store_true")
    pv.set_defaults(func=cmd_prove)
