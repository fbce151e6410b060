"""The demo evaluation: measured lift next to the effect the demo world planted (never part of the pipeline).

`beacon demo` runs this after its last day. It reads the demo world's truth folder (what every message's
planted chance Δ of adding an order was, `beacon.generate.responses`) beside the warehouse's lift results, and
writes the campaign report again with that annotation. The DAGs never call it and never read the truth folder:
their report (`beacon.measure.report.write_report`) shows the measured lift only.

Per campaign and arm:

- `planted`: the effect the world planted, the extra chance of one order for an average person who receives
  the campaign's message (`Effect.conversion`);
- `expected`: what the measured lift should be on the warehouse's own assignments, by intent to treat: over
  everyone assigned to the arm, the chance of a nudged order that the measurement can see, less what would
  have converted anyway: for each person 1 − Π(1 − Δ·f) over their messages, times (1 − p0), where f is the
  share of the effect's days observed before the warehouse clock (and the window) ends and p0 the chance of a
  baseline order in that time; divided by the people in the arm (those not sent, without a shop account or
  with no address count with 0). Exact when each person is in one campaign; overlapping campaigns add their
  nudged orders to both arms alike (approximately: the window is taken from the send, not the assignment);
- `measured`: the conversion lift and its 95% interval from `campaign_lift` (Newcombe), and whether the
  interval covers `expected` and excludes zero.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from beacon.generate.responses import read_book, read_messages
from beacon.measure.warehouse import campaign_lift

DAY_S = 86_400.0


def _nudge_share(msgs: pd.DataFrame, clock, window_days: float) -> pd.DataFrame:
    """Per campaign, arm and person: the chance of a nudged order the measurement sees (see module doc)."""
    m = msgs[msgs.reached & (msgs.delta > 0)].copy()
    if m.empty:
        return pd.DataFrame(columns=["campaign", "arm", "customer_id", "seen"])
    end = pd.Timestamp(clock)
    end = end.tz_localize("UTC") if end.tzinfo is None else end.tz_convert("UTC")
    sent = pd.to_datetime(m.sent_at, utc=True)
    follow = (np.minimum(end, sent + pd.Timedelta(days=window_days)) - sent).dt.total_seconds().clip(lower=0) / DAY_S
    m["f"] = np.clip(follow / m.effect_days.astype(float), 0.0, 1.0)
    m["p0"] = 1.0 - np.exp(-m.order_rate.fillna(0.0).astype(float) * follow)
    m["miss"] = 1.0 - m.delta.astype(float) * m.f
    g = m.groupby(["campaign", "arm", "customer_id"], sort=True).agg(miss=("miss", "prod"), p0=("p0", "max"))
    g["seen"] = (1.0 - g.miss) * (1.0 - g.p0)
    return g.reset_index()[["campaign", "arm", "customer_id", "seen"]]


def evaluate(con, world_dir: Path, clock, window_days: float | None = None, lift: dict | None = None) -> list[dict]:
    """One row per campaign and arm that was measured or messaged: planted, expected and measured lift."""
    d = lift or campaign_lift(con, window_days=window_days)
    window = float(d["window_days"])
    book = read_book(world_dir)
    msgs = read_messages(world_dir)
    arms = con.execute("""SELECT campaign, arm, count(*) FROM measurement.campaign_exposures GROUP BY 1, 2""").fetchall()
    n_arm = {(c, a): int(n) for c, a, n in arms}
    conv = {(r["campaign"], r["arm"]): r for r in d["results"] if r["outcome"] == "converted"}
    seen = _nudge_share(msgs, clock, window).groupby(["campaign", "arm"]).seen.sum().to_dict() if len(msgs) else {}
    sent = msgs[msgs.reached].groupby(["campaign", "arm"]).customer_id.nunique().to_dict() if len(msgs) else {}
    keys = sorted({k for k in n_arm if k[1] != "control"} | set(sent))
    rows = []
    for c, a in keys:
        eff = book.effect(c, a) if book else None
        n = n_arm.get((c, a), 0)
        r = conv.get((c, a))
        row = {"campaign": c, "arm": a, "planted": eff.conversion if eff else None, "people": n,
               "control": n_arm.get((c, "control"), 0), "people_messaged": int(sent.get((c, a), 0)),
               "expected": float(seen.get((c, a), 0.0)) / n if n else None,
               "measured": None, "low": None, "high": None, "covered": None, "excludes_zero": None, "note": ""}
        if r is not None:
            row.update(measured=r["abs_lift"], low=r["abs_low"], high=r["abs_high"],
                       excludes_zero=bool(r["abs_low"] > 0 or r["abs_high"] < 0))
            row["covered"] = bool(r["abs_low"] <= row["expected"] <= r["abs_high"])
        elif not n:
            row["note"] = "no assignments to compare: a journey without a control arm, or an audience without a holdout"
        else:
            row["note"] = "too few people in the control group to measure a lift yet"
        rows.append(row)
    return rows


def write_annotated_report(con, out_dir: Path, clock, world_dir: Path, window_days: float | None = None) -> dict:
    """The campaign report again, with the demo evaluation beside every result (`campaigns.html`)."""
    from beacon.measure.report import write_page

    d = campaign_lift(con, window_days=window_days)
    rows = evaluate(con, world_dir, clock, window_days, lift=d)
    path = write_page(con, out_dir, clock, d, window_days, planted=rows)
    return {"report": str(path), "planted": rows}
