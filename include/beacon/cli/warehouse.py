"""`beacon warehouse encrypt`: encrypt an existing plain warehouse file at rest (docs/privacy.md "Encryption at rest")."""

from __future__ import annotations

from beacon.cli.render import console, emit, kv_table


def cmd_encrypt(args) -> int:
    from beacon.config import settings
    from beacon.warehouse import KEY_VARS, encrypt_file, warehouse_key

    s = settings()
    key = warehouse_key(s)
    if not key:
        raise ValueError(f"set {KEY_VARS} to the key to encrypt {s.warehouse_path} with")
    if not s.warehouse_path.exists():
        raise FileNotFoundError(f"{s.warehouse_path} does not exist: nothing to encrypt (a new warehouse is created "
                                "encrypted when the key is set)")
    counts = encrypt_file(s.warehouse_path, key, s)
    d = {"warehouse": str(s.warehouse_path), "tables": len(counts), "rows": sum(counts.values())}
    emit(d, args.json, lambda d: console.print(kv_table("Warehouse encrypted", d)))
    return 0


def register(sub) -> None:
    w = sub.add_parser("warehouse", help="the warehouse file itself (encryption at rest)")
    wsub = w.add_subparsers(dest="warehouse_command", required=True)
    e = wsub.add_parser("encrypt", help="encrypt the plain warehouse file in place with BEACON_WAREHOUSE_KEY "
                                        "(no plain copy is kept)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_encrypt)
