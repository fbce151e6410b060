"""The campaign report: one self-contained HTML file marketers read, written each run beside the model report.

Per audience (and journey) and arm: people and conversions in each group, the lift with its 95% interval,
cumulative conversions after exposure (treatment vs control), revenue per person, ROI, the sample-ratio check,
and one plain sentence per result that claims an effect only when the interval excludes zero.
"""

from __future__ import annotations

import base64
import html
import io
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and workers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:72em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}.bad{color:#b00;font-weight:bold}
.clear{color:#060}.note{color:#555;font-size:.9em}section{border-top:2px solid #ddd;margin-top:1.5em}
img{max-width:100%}"""


def _png(fig, alt: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _pct(v) -> str:
    return "" if v is None else f"{100 * v:.2f}%"


def _pts(v) -> str:
    return "" if v is None else f"{100 * v:+.2f}"


def _money(v) -> str:
    return "" if v is None else f"{v:+,.2f}"


def lift_chart(results: list[dict]) -> str:
    """Conversion lift (percentage points) with its 95% interval, one bar per campaign and arm."""
    conv = [r for r in results if r["outcome"] == "converted"]
    if not conv:
        return ""
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(conv)))
    y = np.arange(len(conv))
    est = np.array([100 * r["abs_lift"] for r in conv])
    lo = np.array([100 * r["abs_low"] for r in conv])
    hi = np.array([100 * r["abs_high"] for r in conv])
    colors = ["#2a7" if a > 0 else "#c33" if b < 0 else "#888" for a, b in zip(lo, hi, strict=True)]
    for i, color in enumerate(colors):  # green: interval above zero, red: below, grey: includes zero
        ax.errorbar(est[i], y[i], xerr=[[est[i] - lo[i]], [hi[i] - est[i]]], fmt="o", color=color, capsize=4)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y, [f"{r['campaign']} · {r['arm']}" for r in conv])
    ax.invert_yaxis()
    ax.set(xlabel="conversion lift, percentage points (95% interval)", title="Lift over the control group")
    return _png(fig, "conversion lift with 95% intervals per audience and arm")


def cumulative_chart(frame: pd.DataFrame, campaign: str, window: float) -> str:
    """Share converted by days since exposure, treatment vs control (the control's clock is its 'would have sent')."""
    fig, ax = plt.subplots(figsize=(4.5, 3))
    days = np.linspace(0, window, 50)
    for arm, g in frame.groupby("arm", sort=True):
        t = (pd.to_datetime(g.first_order_at, utc=True) - pd.to_datetime(g.exposed_at, utc=True)).dt.total_seconds()
        t = t.to_numpy() / 86400
        ax.plot(days, [100 * np.mean(t <= d) for d in days], label=f"{arm} (n={len(g):,})",
                color="#2a7" if arm != "control" else "#555")
    ax.set(xlabel="days since exposure", ylabel="converted, % of group", title=f"Cumulative conversions: {campaign}")
    ax.legend(loc="upper left", fontsize=8)
    return _png(fig, f"cumulative conversions treatment vs control for {campaign}")


def revenue_chart(results: list[dict]) -> str:
    rev = [r for r in results if r["outcome"] == "revenue"]
    if not rev:
        return ""
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(rev)))
    y = np.arange(len(rev))
    ax.barh(y - 0.2, [r["mean_arm"] for r in rev], height=0.4, color="#2a7", label="treatment arm")
    ax.barh(y + 0.2, [r["mean_control"] for r in rev], height=0.4, color="#999", label="control")
    ax.set_yticks(y, [f"{r['campaign']} · {r['arm']}" for r in rev])
    ax.invert_yaxis()
    ax.set(xlabel="revenue per assigned person in the window", title="Revenue per person")
    ax.legend(fontsize=8)
    return _png(fig, "revenue per person treatment vs control")


def roi_chart(rois: dict) -> str:
    rows = [(c, a, r) for c, arms in rois.items() for a, r in arms.items() if r.get("roi") is not None]
    if not rows:
        return ""
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(rows)))
    y = np.arange(len(rows))
    est = np.array([r["roi"] for *_, r in rows])
    lo, hi = np.array([r["roi_low"] for *_, r in rows]), np.array([r["roi_high"] for *_, r in rows])
    ax.errorbar(est, y, xerr=[est - lo, hi - est], fmt="o", capsize=4, color="#36c")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y, [f"{c} · {a}" for c, a, _ in rows])
    ax.invert_yaxis()
    ax.set(xlabel="ROI = (incremental revenue − cost) / cost (95% interval)", title="Return on message cost")
    return _png(fig, "ROI per audience and arm")


def _results_table(rs: list[dict]) -> str:
    head = ("outcome", "arm", "people (arm / control)", "total (arm / control)", "mean (arm / control)",
            "lift [95% interval]", "relative lift [95% interval]", "CUPED lift [95% interval]", "variance cut", "p")
    rows = []
    for r in rs:
        b = r["binary"]
        f = _pts if b else _money
        unit = " pts" if b else ""
        mean = f"{_pct(r['mean_arm'])} / {_pct(r['mean_control'])}" if b else \
            f"{r['mean_arm']:,.2f} / {r['mean_control']:,.2f}"
        rel = "" if r["rel_lift"] is None else \
            f"{100 * r['rel_lift']:+.1f}% [{100 * r['rel_low']:+.1f}%, {100 * r['rel_high']:+.1f}%]"
        cup = "" if r["cuped_abs_lift"] is None else \
            f"{f(r['cuped_abs_lift'])}{unit} [{f(r['cuped_low'])}, {f(r['cuped_high'])}]"
        cls = ' class="clear"' if r["significant"] else ""
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
            r["outcome"], r["arm"], f"{r['n_arm']:,} / {r['n_control']:,}",
            f"{r['total_arm']:,.0f} / {r['total_control']:,.0f}" if b else
            f"{r['total_arm']:,.2f} / {r['total_control']:,.2f}", mean))
            + f"<td{cls}>{f(r['abs_lift'])}{unit} [{f(r['abs_low'])}, {f(r['abs_high'])}]</td>"
            + f"<td>{rel}</td><td>{cup}</td><td>"
            + ("" if r["variance_reduction"] is None else f"{100 * r['variance_reduction']:.1f}%")
            + f"</td><td>{r['p_value']:.4f}</td></tr>")
    return "<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>"


PLANTED_NOTE = (
    "Written by <code>beacon demo</code> only: the demo world planted these effects (its truth folder, which the "
    "pipeline never reads), and the demo compares them with what Beacon measured. <b>Planted</b>: the extra chance "
    "of an order for an average person who receives the message. <b>Expected</b>: what the lift over everyone "
    "assigned to the arm should be (intent to treat), given who was actually sent (consent, an address, a shop "
    "account) and how much of the effect's time the warehouse has seen. <b>Measured</b>: the conversion lift with "
    "its 95% interval, as in the table of each section below.")


def _planted_cells(r: dict) -> list[str]:
    meas = "" if r["measured"] is None else f"{_pts(r['measured'])} [{_pts(r['low'])}, {_pts(r['high'])}]"
    yes = {True: "yes", False: "no", None: ""}
    return [r["campaign"], r["arm"], _pts(r["planted"]), _pts(r["expected"]), f"{r['people']:,} / {r['control']:,}",
            meas, yes[r["covered"]], yes[r["excludes_zero"]], r["note"]]


def planted_section(rows: list[dict]) -> str:
    """The demo evaluation: per campaign and arm, planted and expected effect beside the measured interval."""
    head = ("campaign", "arm", "planted (pts)", "expected lift (pts)", "people (arm / control)",
            "measured lift, pts [95% interval]", "interval covers expected", "interval excludes zero", "note")
    body = "".join(
        f"<tr data-campaign='{html.escape(r['campaign'])}' data-arm='{html.escape(r['arm'])}'>"
        + "".join(f"<td>{html.escape(str(c))}</td>" for c in _planted_cells(r)) + "</tr>" for r in rows)
    return (f"<section id='demo-evaluation'><h2>Demo evaluation: measured lift against the planted truth</h2>"
            f"<p class='note'>{PLANTED_NOTE}</p><table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"
            + body + "</table></section>")


def _planted_lines(rows: list[dict], campaign: str) -> str:
    out = []
    for r in rows:
        if r["campaign"] != campaign:
            continue
        meas = "not measured" if r["measured"] is None else \
            f"measured {_pts(r['measured'])} points [95% interval {_pts(r['low'])}, {_pts(r['high'])}]"
        out.append(f"<p class='planted' data-arm='{html.escape(r['arm'])}'>Planted in the demo world "
                   f"('{html.escape(r['arm'])}'): {_pts(r['planted'])} points for an average person sent the message; "
                   f"expected lift on these people {_pts(r['expected'])} points; {meas}.</p>")
    return "".join(out)


def render(d: dict, frame: pd.DataFrame, as_of, extra: dict | None = None) -> str:
    """The report's HTML from `campaign_lift` output and the per-assignment frame."""
    extra = extra or {}
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Beacon campaign report</title>"
             f"<style>{CSS}</style></head><body><h1>Campaign report</h1>",
             f"<p class='note'>Warehouse time {html.escape(str(as_of))}; outcomes within {d['window_days']:g} days of "
             "exposure; every assigned person counts in their group (intent to treat). Intervals are 95%. "
             f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.</p>"]
    gc = extra.get("global_control")
    if gc and not gc["pct"]:
        parts.append("<p class='note'>No global control group (BEACON_GLOBAL_CONTROL_PCT is 0): the whole program's "
                     "effect is not measured, only each audience's against its own holdout.</p>")
    elif gc:
        parts.append(f"<p>Global control group: period {gc['period']} ({gc['start']} to {gc['end']}), "
                     f"{gc['pct']:g}% of everyone, {gc['members']:,} people who receive no marketing.</p>")
    planted = extra.get("planted")
    if planted is not None:
        parts.append(planted_section(planted))
    parts.append("<h2>Lift over the control group</h2>" + lift_chart(d["results"]))
    parts.append(revenue_chart(d["results"]) + roi_chart(d.get("roi", {})))
    for note in d.get("notes", []):  # broken splits at the top; the other notes go to their audience's section
        if "mismatch" in note:
            parts.append(f"<p class='bad'>{html.escape(note)}</p>")
    for campaign, g in frame.groupby("campaign", sort=True):
        rs = [r for r in d["results"] if r["campaign"] == campaign]
        srm = d.get("srm_by_campaign", {}).get(campaign)
        parts.append(f"<section data-campaign='{html.escape(campaign)}'><h2>{html.escape(campaign)}</h2>")
        counts = g.arm.value_counts().to_dict()
        if planted:
            parts.append(_planted_lines(planted, campaign))
        parts.append("<p>" + ", ".join(f"{html.escape(a)}: {n:,} people" for a, n in sorted(counts.items()))
                     + f"; messages delivered: {int(g.sent.sum()):,}.</p>")
        for note in d.get("notes", []):
            if note.startswith(f"{campaign}:") and "mismatch" not in note:
                parts.append(f"<p class='note'>{html.escape(note[len(campaign) + 2:])}</p>")
        if srm:
            cls = "bad" if srm["mismatch"] else "note"
            parts.append(f"<p class='{cls}'>Sample-ratio check: p = {srm['p_value']:.4g}"
                         + (" — the split does not match the design; do not trust this lift." if srm["mismatch"]
                            else " (the split matches the design).") + "</p>")
        if rs:
            parts.append("<h3>What this means</h3><ul>"
                         + "".join(f"<li>{html.escape(r['verdict'])}</li>" for r in rs
                                   if r["outcome"] in ("converted", "revenue")) + "</ul>")
            parts.append(_results_table(rs))
            roi = d.get("roi", {}).get(campaign, {})
            for arm, r in roi.items():
                if "incremental_revenue" in r:
                    parts.append(f"<p>ROI ({html.escape(arm)}): cost {r['cost']:,.2f} for {r['messages']:,} messages; "
                                 f"incremental revenue {r['incremental_revenue']:+,.2f} "
                                 f"[{r['incremental_revenue_low']:+,.2f}, {r['incremental_revenue_high']:+,.2f}]"
                                 + (f"; ROI {r['roi']:+.2f} [{r['roi_low']:+.2f}, {r['roi_high']:+.2f}]"
                                    if "roi" in r else "") + ".</p>")
            if "control" in counts:
                parts.append(cumulative_chart(g, campaign, d["window_days"]))
        else:
            parts.append("<p class='note'>"
                         + ("No control group yet" if "control" not in counts else
                            f"Only {counts.get('control', 0)} person(s) in the control group")
                         + ", so no lift can be measured (each group needs at least 2 people).</p>")
        parts.append("</section>")
    lt = extra.get("last_touch")
    if lt is not None and len(lt):
        parts.append("<h2>Last-touch view (each order credited once)</h2><p class='note'>Not a measure of effect: "
                     "the lift above is. Each order goes to the latest message sent before it, within the window."
                     "</p><table><tr><th>campaign</th><th>orders</th><th>revenue</th></tr>"
                     + "".join(f"<tr><td>{html.escape(r.campaign)}</td><td>{r.orders:,}</td><td>{r.revenue:,.2f}</td></tr>"
                               for r in lt.itertuples()) + "</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(con, out_dir: Path, as_of, window_days: float | None = None, refit_uplift: bool = False) -> dict:
    """Compute lift for every campaign, store the results, and write `campaigns.html` (and a dated copy); score
    everyone's uplift, refitting the model when it is due (BEACON_RETRAIN_EVERY_DAYS, `beacon.measure.uplift_store`)
    or `refit_uplift`."""
    from beacon.config import settings
    from beacon.measure.warehouse import (
        campaign_frames,
        campaign_lift,
        refresh_global_control,
        refresh_uplift_scores,
        store_results,
    )

    gc = refresh_global_control(con, as_of)
    frames = campaign_frames(con, None, window_days)  # outcomes of every exposure: computed once, read three times
    d = campaign_lift(con, window_days=window_days, frames=frames)
    stored = store_results(con, d, as_of)
    latest = write_page(con, out_dir, as_of, d, window_days, gc=gc, frame=frames[0])
    uplift = refresh_uplift_scores(con, as_of, frames[1], frame=frames[0],
                                   every_days=settings().retrain_every_days, force=refit_uplift)
    campaigns = con.execute("SELECT count(DISTINCT campaign) FROM measurement.campaign_exposures").fetchall()[0][0]
    return {"report": str(latest), "campaigns": int(campaigns), "results": stored,
            "global_control": gc, "uplift": uplift}


def write_page(con, out_dir: Path, as_of, d: dict, window_days: float | None = None, gc: dict | None = None,
               planted: list[dict] | None = None, frame: pd.DataFrame | None = None) -> Path:
    """Write `campaigns.html` and its dated copy from `campaign_lift` output `d` (reads the warehouse only).

    `planted`: the demo evaluation's rows (`beacon.measure.planted`), shown beside the results; only `beacon demo`
    passes them (the DAG's report never knows a truth). `frame`: `campaign_frames`' rows, when the caller has them."""
    from beacon.measure.warehouse import attribution_last_touch, campaign_frames, global_control_info

    if frame is None:
        frame, _ = campaign_frames(con, None, window_days)
    page = render(d, frame, as_of, {"global_control": gc or global_control_info(con, as_of),
                                    "last_touch": attribution_last_touch(con, window_days), "planted": planted})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    day = pd.Timestamp(as_of).date().isoformat()
    (out_dir / f"campaigns_{day}.html").write_text(page)
    latest = out_dir / "campaigns.html"
    latest.write_text(page)
    return latest
