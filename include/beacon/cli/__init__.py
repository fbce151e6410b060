"""`beacon`: the single command-line entry point. Tables by default, JSON with --json.

One module per command group; each has `register(sub)` adding its subparsers, with its handlers beside
it. Output goes through `beacon.cli.render`; the work (and any SQL) lives in the library functions the
handlers call. To add a group: write `beacon/cli/<group>.py` with `register` and list it in GROUPS.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from beacon.cli import activate, audiences, bench, demo, identity, journeys, measure, ml, privacy, serve
from beacon.cli import stack as stack_cli
from beacon.cli import warehouse as warehouse_cli
from beacon.cli.render import err, stdout_to_stderr

# In the order of `beacon --help`.
GROUPS = (demo, audiences, activate, journeys, ml, identity, measure, privacy, bench, serve, stack_cli, warehouse_cli)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="beacon", description="Warehouse-native marketing automation.")
    sub = p.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # With --json, standard output is the JSON document alone: whatever the work prints goes to standard error.
    quiet = stdout_to_stderr() if getattr(args, "json", False) else contextlib.nullcontext()
    try:
        with quiet:
            return args.func(args)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
