"""`beacon identity evaluate`: pairwise precision, recall and F1 of the linker on labelled data."""

from __future__ import annotations

from pathlib import Path

from beacon.cli.render import console, emit, kv_table


def cmd_evaluate(args) -> int:
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
        console.print(kv_table(f"Identity resolution on {d['dataset']}", {
            "records": d["records"], "true entities": d["true_entities"], "clusters": d["clusters"],
            **({"largest customer (records)": d["largest_cluster"]} if "largest_cluster" in d else {}),
            "pairwise precision": f"{d['precision']:.4f}", "pairwise recall": f"{d['recall']:.4f}",
            "pairwise F1": f"{d['f1']:.4f}", "seconds": d["seconds"],
            **({"day-2 F1": d["day2_f1"], "id stability after day 2": d["id_stability"],
                "people merged on day 2": d["merged_people"]} if d.get("id_stability") is not None else {})}))
    emit(d, args.json, render)
    return 0


def register(sub) -> None:
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
    ie.set_defaults(func=cmd_evaluate)
